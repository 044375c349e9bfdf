"""Synthetic agent CLI session logs in the real on-disk formats, for tests and benchmarks of
``asm import`` (``asm_nb.history``): Claude Code ``projects/<slug>/<session>.jsonl`` and Codex
``sessions/YYYY/MM/DD/rollout-*.jsonl``. Deterministic for a seed.

>>> import tempfile
>>> info = write_claude_code_logs(tempfile.mkdtemp(), lines=40)
>>> info["lines"] >= 40
True
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..core.usage import TOKEN_KEYS

__all__ = ["write_claude_code_logs", "write_codex_logs"]

_WORDS = ("the", "agent", "reads", "README.md", "and", "runs", "tests", "fix", "parser", "dates", "cli", "module",
          "value", "error", "passed", "failed", "refactor", "import", "function", "return", "config", "für", "数据")
_MODELS_CC = ("claude-sonnet-4-5-20250929", "claude-sonnet-4-20250514", "claude-opus-4-1-20250805",
              "claude-haiku-4-5-20251001")
_MODELS_CX = ("gpt-5-codex", "gpt-5", "gpt-5-mini")


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def write_claude_code_logs(root: str | Path, *, lines: int = 1000, sessions: int = 10, projects: int = 3,
                           seed: int = 1, start: datetime | None = None) -> dict[str, Any]:
    """Write about ``lines`` Claude Code log lines under ``root/projects/`` and return
    ``{"root", "files", "lines", "usage"}`` where ``usage`` sums the four token counters of the
    distinct billed messages (what an import must count)."""
    rng = random.Random(seed)
    root = Path(root)
    t = start or datetime(2025, 9, 1, 8, 0, tzinfo=timezone.utc)
    per_session = max(lines // sessions, 4)
    total = dict.fromkeys(TOKEN_KEYS, 0)
    files, written, n_msg = [], 0, 0
    for s in range(sessions):
        slug = f"-home-dev-project-{s % projects}"
        sid = f"{seed:08x}-{s:04x}-4000-8000-{s:012x}"
        base = {"isSidechain": False, "userType": "external", "cwd": f"/home/dev/project-{s % projects}",
                "sessionId": sid, "version": "2.0.31", "gitBranch": "main"}
        path = root / "projects" / slug / f"{sid}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        out: list[str] = []
        parent = None
        k = 0
        while len(out) < per_session:
            t += timedelta(minutes=rng.randint(1, 40))
            k += 1
            uid = f"{sid}-u{k}"
            out.append(json.dumps({"parentUuid": parent, **base, "type": "user", "message": {
                "role": "user", "content": "Please " + _text(rng, rng.randint(8, 40))}, "uuid": uid,
                "timestamp": _iso(t)}))
            parent = uid
            for _ in range(rng.randint(1, 4)):
                n_msg += 1
                model = rng.choice(_MODELS_CC)
                usage = {"input_tokens": rng.randint(1, 50), "cache_creation_input_tokens": rng.randint(0, 5000),
                         "cache_read_input_tokens": rng.randint(0, 60000), "output_tokens": rng.randint(5, 900),
                         "service_tier": "standard"}
                for key, src in zip(TOKEN_KEYS, ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                                 "cache_creation_input_tokens")):
                    total[key] += usage[src]
                msg = {"id": f"msg_{seed:x}{n_msg:08d}", "type": "message", "role": "assistant", "model": model,
                       "stop_reason": None, "stop_sequence": None, "usage": usage}
                rid = f"req_{seed:x}{n_msg:08d}"
                t += timedelta(seconds=rng.randint(2, 30))
                tool_id = f"toolu_{n_msg:08d}"
                # a streamed message: one line per content block, each repeating the usage; the
                # first snapshot's output_tokens is partial, the last one has the final count
                blocks = ({"type": "text", "text": _text(rng, rng.randint(10, 80))},
                          {"type": "tool_use", "id": tool_id, "name": rng.choice(["Bash", "Read", "Edit"]),
                           "input": {"command": "pytest -q " + _text(rng, 3), "description": _text(rng, 5)}})
                for i, block in enumerate(blocks):
                    k += 1
                    uid = f"{sid}-u{k}"
                    snap = usage if i == len(blocks) - 1 else {**usage, "output_tokens": min(usage["output_tokens"], 3)}
                    out.append(json.dumps({"parentUuid": parent, **base, "type": "assistant",
                                           "message": {**msg, "usage": snap, "content": [block]}, "requestId": rid,
                                           "uuid": uid, "timestamp": _iso(t)}))
                    parent = uid
                k += 1
                uid = f"{sid}-u{k}"
                t += timedelta(seconds=rng.randint(1, 20))
                out.append(json.dumps({"parentUuid": parent, **base, "type": "user", "message": {
                    "role": "user", "content": [{"tool_use_id": tool_id, "type": "tool_result",
                                                 "content": "\n".join(_text(rng, 12) for _ in range(rng.randint(3, 40))),
                                                 "is_error": rng.random() < 0.1}]},
                    "uuid": uid, "timestamp": _iso(t), "toolUseResult": {"stdout": "...", "stderr": ""}}))
                parent = uid
            if rng.random() < 0.2:
                out.append(json.dumps({"type": "file-history-snapshot", "messageId": parent,
                                       "snapshot": {"trackedFileBackups": {}}, "isSnapshotUpdate": False}))
        path.write_text("\n".join(out) + "\n", encoding="utf-8")
        files.append(path)
        written += len(out)
    return {"root": root, "files": files, "lines": written, "usage": total}


def write_codex_logs(root: str | Path, *, lines: int = 1000, sessions: int = 10, seed: int = 1,
                     start: datetime | None = None) -> dict[str, Any]:
    """Write about ``lines`` Codex rollout lines under ``root/sessions/YYYY/MM/DD/`` and return
    ``{"root", "files", "lines", "usage"}`` (normalized counters: ``input_tokens`` without the
    cached part, as an import stores them)."""
    rng = random.Random(seed)
    root = Path(root)
    t = start or datetime(2025, 10, 1, 8, 0, tzinfo=timezone.utc)
    per_session = max(lines // sessions, 6)
    total = dict.fromkeys(TOKEN_KEYS, 0)
    files, written = [], 0
    for s in range(sessions):
        sid = f"0199{seed:04x}-{s:04x}-7000-8000-{s:012x}"
        t += timedelta(hours=rng.randint(1, 30))
        path = root / "sessions" / t.strftime("%Y/%m/%d") / f"rollout-{t.strftime('%Y-%m-%dT%H-%M-%S')}-{sid}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)

        def env(kind: str, payload: dict) -> str:
            return json.dumps({"timestamp": _iso(t), "type": kind, "payload": payload})

        out = [env("session_meta", {"id": sid, "timestamp": _iso(t), "cwd": f"/home/dev/project-{s % 3}",
                                    "originator": "codex_cli_rs", "cli_version": "0.46.0", "source": "cli"})]
        cum = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "reasoning_output_tokens": 0,
               "total_tokens": 0}
        n = 0
        while len(out) < per_session:
            t += timedelta(minutes=rng.randint(1, 30))
            prompt = "Please " + _text(rng, rng.randint(5, 30))
            out.append(env("event_msg", {"type": "user_message", "message": prompt, "kind": "plain"}))
            out.append(env("response_item", {"type": "message", "role": "user",
                                             "content": [{"type": "input_text", "text": prompt}]}))
            out.append(env("turn_context", {"cwd": f"/home/dev/project-{s % 3}", "model": rng.choice(_MODELS_CX),
                                            "approval_policy": "on-request"}))
            for _ in range(rng.randint(1, 3)):
                n += 1
                t += timedelta(seconds=rng.randint(2, 40))
                cid = f"call_{s}_{n}"
                out.append(env("response_item", {"type": "function_call", "name": "shell", "call_id": cid,
                                                 "arguments": json.dumps({"command": ["bash", "-lc", _text(rng, 4)]})}))
                inp = rng.randint(2000, 40000)
                cached = rng.randint(0, inp)
                last = {"input_tokens": inp, "cached_input_tokens": cached, "output_tokens": rng.randint(5, 800),
                        "reasoning_output_tokens": rng.randint(0, 300)}
                last["total_tokens"] = last["input_tokens"] + last["output_tokens"]
                for k2 in cum:
                    cum[k2] += last[k2]
                total["input_tokens"] += inp - cached
                total["cache_read_tokens"] += cached
                total["output_tokens"] += last["output_tokens"]
                out.append(env("event_msg", {"type": "token_count", "info": {"total_token_usage": dict(cum),
                                                                             "last_token_usage": last}}))
                out.append(env("response_item", {"type": "function_call_output", "call_id": cid, "output": json.dumps(
                    {"output": "\n".join(_text(rng, 10) for _ in range(rng.randint(2, 30))),
                     "metadata": {"exit_code": 0, "duration_seconds": 0.2}})}))
            out.append(env("response_item", {"type": "message", "role": "assistant",
                                             "content": [{"type": "output_text", "text": _text(rng, 40)}]}))
        path.write_text("\n".join(out) + "\n", encoding="utf-8")
        files.append(path)
        written += len(out)
    return {"root": root, "files": files, "lines": written, "usage": total}
