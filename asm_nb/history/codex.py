"""Codex rollout files: ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl``
(``CODEX_HOME`` default ``~/.codex``).

Current format (0.3x and later): every line is ``{"timestamp", "type", "payload"}`` with ``type``

- ``session_meta``: ``payload.id`` (the session), ``cwd``, ``cli_version``, ``originator``,
  ``source``, ``model_provider``, ``git`` (``branch``, ``commit_hash``, ``repository_url``);
- ``turn_context``: ``model``, ``cwd``, ``approval_policy``, ``sandbox_policy``, ``effort``: the
  model every later usage is billed to;
- ``response_item``: a Responses-API item: ``message`` (``role`` user / assistant / developer,
  ``content`` ``input_text`` / ``output_text`` blocks), ``function_call`` (``name``,
  ``arguments`` as a JSON string, ``call_id``), ``function_call_output`` (``call_id``, ``output``
  a string, often JSON with ``metadata.exit_code``), ``custom_tool_call`` / ``_output``,
  ``local_shell_call`` (``action``), ``web_search_call``, ``reasoning`` (summaries, encrypted
  content: not imported);
- ``event_msg``: ``user_message`` (the prompt: starts a turn), ``agent_message``,
  ``token_count`` (``info.last_token_usage`` and ``info.total_token_usage`` with
  ``input_tokens`` (cached included), ``cached_input_tokens``, ``output_tokens``,
  ``reasoning_output_tokens``, ``total_tokens``; ``info`` is null before the first call),
  ``turn_aborted``, ``error``, ``task_started`` / ``task_complete`` …;
- ``compacted``: a compaction summary (context, skipped).

Usage per model call is ``last_token_usage``, else the growth of ``total_token_usage`` since the
previous report; a report whose total did not change is a repeat and counts nothing.

Forks and sub-agents: a rollout whose first ``session_meta`` names a parent (``forked_from_id``,
or ``source.subagent.thread_spawn.parent_thread_id``) opens with the parent's history copied in:
the ancestors' ``session_meta`` lines, then their items and ``token_count`` reports, written in
one burst (re-stamped to the fork's time by most versions, kept at their first times by some).
That copy is the parent's work, already in the parent's own rollout, and is not imported again.
From the fork's time, a line less than a second after the previous one (or older than the fork)
is part of that burst; the first line a second or more later, or the file's own ``session_meta``
written again, ends it for good. In the burst no ``token_count`` is counted (it only moves the
baseline later deltas start from), and, once an ancestor's ``session_meta`` has shown that
history was copied, no item or event becomes a run or an event either (a rollout with an
ancestor's ``session_meta`` but no fork field is read the same way from that line). A
sub-agent's task prompt, written in the burst right after the copy, is kept: the burst's last
prompt with nothing but its own turn's lines after it starts the first run. The session
records the parent (``parent_session_id``, ``forked_from``, ``fork_kind``).

Older rollouts (before the envelope) start with ``{"id", "timestamp", "instructions"}`` and then
hold bare response items plus ``{"record_type": "state"}`` lines; they carry no token counts, so
their runs have no usage and no cost (rather than a cost of 0).
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from ..core.errors import AsmError
from ..core.usage import TokenUsage
from ._base import FileJob, parse_ts
from ._builder import SessionBuilder

__all__ = ["codex_home", "discover", "handle_line", "first_line"]

SOURCE = "codex"
PROVIDER = "codex"
_ENVELOPE = frozenset({"session_meta", "turn_context", "response_item", "event_msg", "compacted"})
_ITEMS = frozenset({"message", "function_call", "function_call_output", "custom_tool_call",
                    "custom_tool_call_output", "local_shell_call", "web_search_call", "reasoning"})
_BOILERPLATE = ("<environment_context>", "<user_instructions>", "# AGENTS.md instructions", "<permissions",
                "<user_shell_command>")
_UUID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", re.I)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_TOOL_OUTPUT_MAX = 20_000
_LONG_DIGITS = re.compile(r"[0-9]{19}")  # the reference of ``_long_digits``
# ``_long_digits``: ASCII digits -> "1", every other byte -> "0" (UTF-8 puts no non-ASCII
# character on an ASCII byte), then one substring test; ~6x faster than the regex search
_DIGIT_TABLE = bytes(49 if 48 <= i <= 57 else 48 for i in range(256))
_DIGIT_RUN = b"1" * 19
# a fork's copied history is written in one burst; its own first line comes later than this
_COPY_GAP = timedelta(seconds=1)


def _long_digits(text: str) -> bool:
    """Whether ``text`` holds a run of 19 ASCII digits (``_LONG_DIGITS.search``, exactly)."""
    return _DIGIT_RUN in text.encode("utf-8", "surrogatepass").translate(_DIGIT_TABLE)


def _json(text: str) -> Any:
    """``json.loads(text)``, exactly (the same value or the same ``ValueError``), ~3x faster:
    orjson parses when it can give the same value. It reads integers beyond 64 bits as floats
    (any text with a 19-digit run goes to ``json``) and rejects what ``json`` accepts as an
    extension (``NaN``, lone surrogates, overflowing floats): those go to ``json`` too."""
    if _orjson_loads is not None and not _long_digits(text):
        try:
            return _orjson_loads(text)
        except ValueError:
            pass
    return json.loads(text)


try:
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - orjson is a core dependency
    _orjson_loads = None


def codex_home(env: Mapping[str, str] | None = None) -> Path:
    """``$CODEX_HOME`` or ``~/.codex``."""
    env = os.environ if env is None else env
    home = env.get("CODEX_HOME")
    return Path(home).expanduser() if home else Path(env.get("HOME") or Path.home()) / ".codex"


def _first_cwd(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            line = f.readline(1 << 20)
        obj = json.loads(line)
    except (OSError, ValueError):
        return None
    payload = obj.get("payload") if isinstance(obj, dict) else None
    cwd = payload.get("cwd") if isinstance(payload, dict) else None
    return cwd if isinstance(cwd, str) else None


def _key(name: str) -> str:
    """The session key of a rollout named ``name`` (its file stem) or of a thread id: the UUID
    at its end, else the name made safe."""
    m = _UUID.search(name)
    return m.group(1).lower() if m else _SAFE.sub("_", name)[:120]


def _job(path: Path) -> FileJob:
    return FileJob(path=path, source=SOURCE, provider=PROVIDER, agent_id=PROVIDER, key=_key(path.stem),
                   id_prefix="cx_")


def _parent(payload: Mapping) -> tuple[str, str] | None:
    """``(parent thread id, "fork" | "subagent")`` when a ``session_meta`` names a parent."""
    fid = payload.get("forked_from_id")
    if isinstance(fid, str) and fid:
        return fid, "fork"
    src = payload.get("source")
    sub = src.get("subagent") if type(src) is dict else None
    spawn = sub.get("thread_spawn") if type(sub) is dict else None
    pid = spawn.get("parent_thread_id") if type(spawn) is dict else None
    if isinstance(pid, str) and pid:
        return pid, "subagent"
    return None


def discover(path: str | os.PathLike | None = None, project: str | None = None,
             env: Mapping[str, str] | None = None) -> list[FileJob]:
    """The rollout files under ``path`` (a Codex home, its ``sessions/``, any folder below, or one
    file) or ``$CODEX_HOME/sessions``; ``project`` keeps sessions whose ``cwd`` contains it."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise AsmError("not_found", f"no such file or folder: {p}")
        files = [p] if p.is_file() else sorted((p / "sessions" if (p / "sessions").is_dir() else p).rglob("*.jsonl"))
    else:
        root = codex_home(env) / "sessions"
        files = sorted(root.rglob("rollout-*.jsonl")) if root.is_dir() else []
    jobs = []
    for f in files:
        if project:
            cwd = _first_cwd(f)
            if cwd is None or project.lower() not in cwd.lower():
                continue
        jobs.append(_job(f))
    return jobs


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    if isinstance(content, list):
        for c in content:
            if type(c) is dict and isinstance(c.get("text"), str):
                parts.append(c["text"])
    return "\n".join(parts)


def _cap(v: Any) -> Any:
    if isinstance(v, str) and len(v) > _TOOL_OUTPUT_MAX:
        return v[:_TOOL_OUTPUT_MAX] + f"\n… [{len(v) - _TOOL_OUTPUT_MAX} more characters not imported]"
    return v


def _prompt(text: str, b: SessionBuilder, via: str) -> None:
    """A user prompt: both ``response_item`` and ``event_msg`` record it; the second of the
    pair is the same turn, not a new one."""
    run = b.run
    if run is not None and run.get("_raw", run.get("prompt")) == text and run.get("via") not in (None, via) \
            and not run["messages"] and not run["tool_calls"]:
        return
    b.start_run(text)
    assert b.run is not None
    b.run["via"] = via
    b.run["_raw"] = text  # in memory only (the state keeps the redacted prompt)
    if not b.meta.get("title") and b.run.get("prompt", "").strip():
        b.meta["title"] = b.run["prompt"].strip().splitlines()[0][:100]


def _tool_output(raw: Any) -> tuple[Any, bool]:
    """(output, failed) from a ``function_call_output.output`` (a string, often JSON)."""
    failed = False
    out = raw
    if isinstance(raw, Mapping):  # {"content": ..., "success": bool}
        failed = raw.get("success") is False
        out = raw.get("content", raw)
    if isinstance(out, str) and out.startswith("{"):
        try:
            doc = _json(out)
        except ValueError:
            doc = None
        if isinstance(doc, Mapping):
            md = doc.get("metadata")
            code = md.get("exit_code") if isinstance(md, Mapping) else None
            if isinstance(code, int) and code != 0:
                failed = True
            if "output" in doc:
                out = doc["output"]
    return _cap(out), failed


def _item(p: Mapping, b: SessionBuilder) -> None:
    t = p.get("type")
    if t == "message":
        role = p.get("role")
        text = _text(p.get("content"))
        if role == "user":
            if text.strip() and not text.lstrip().startswith(_BOILERPLATE):
                _prompt(text, b, "item")
        elif role == "assistant" and text:
            b.message("assistant", text)
    elif t == "function_call":
        args = p.get("arguments")
        if isinstance(args, str):
            try:
                args = _json(args)
            except ValueError:
                pass
        b.tool_started(p.get("call_id") or p.get("id"), str(p.get("name") or "function"), args)
    elif t == "custom_tool_call":
        b.tool_started(p.get("call_id") or p.get("id"), str(p.get("name") or "tool"), p.get("input"))
    elif t == "local_shell_call":
        b.tool_started(p.get("call_id") or p.get("id"), "shell", p.get("action"))
    elif t == "web_search_call":
        cid = p.get("id") or p.get("call_id")
        b.tool_started(cid, "web_search", p.get("action"))
        b.tool_finished(cid, p.get("status"))
    elif t in ("function_call_output", "custom_tool_call_output"):
        out, failed = _tool_output(p.get("output"))
        b.tool_finished(p.get("call_id"), out, failed=failed)


def _counts(u: Any) -> dict | None:
    return dict(u) if isinstance(u, Mapping) else None


def _token_count(p: Mapping, b: SessionBuilder, copied: bool = False) -> None:
    """One ``token_count`` report; ``copied``: in a fork's copied history (only the baseline
    moves)."""
    info = p.get("info")
    if isinstance(info, Mapping):
        total, last = _counts(info.get("total_token_usage")), _counts(info.get("last_token_usage"))
    elif "input_tokens" in p:  # early envelope versions: the counters on the payload itself
        total, last = None, _counts(p)
    else:
        return  # info null: no model call yet (rate-limit only report)
    prev = b.extra.get("total")
    if total is not None:
        if total == prev:
            return  # the same report again
        b.extra["total"] = total
    if copied:
        return
    if last is not None:
        raw = last
    elif total is not None:
        raw = {k: max((total.get(k) or 0) - ((prev or {}).get(k) or 0), 0) for k in total
               if isinstance(total.get(k), int)}
    else:
        return
    u = TokenUsage.from_openai(raw)
    if not u:
        return
    model = (info.get("model") if isinstance(info, Mapping) else None) or p.get("model") or b.extra.get("model")
    b.usage(model if isinstance(model, str) else None, u)


def _event(p: Mapping, b: SessionBuilder) -> None:
    t = p.get("type")
    if t == "user_message":
        msg = p.get("message")
        if isinstance(msg, str) and msg.strip():
            _prompt(msg, b, "event")
    elif t == "token_count":
        _token_count(p, b)
    elif t == "turn_aborted":
        b.set_status("cancelled", None)
    elif t in ("error", "stream_error"):
        msg = p.get("message")
        b.error(str(msg) if msg is not None else t)


def first_line(obj: dict, b: SessionBuilder) -> bool:
    """The legacy first line ``{"id", "timestamp", "instructions"}`` (no ``type``)."""
    if "type" in obj or "id" not in obj:
        return False
    b.extra["no_usage_in_log"] = True
    b.at(parse_ts(obj.get("timestamp")))
    b.meta["external_id"] = obj.get("id")
    b.meta["format"] = "legacy"
    git = obj.get("git")
    if isinstance(git, Mapping) and isinstance(git.get("branch"), str):
        b.meta["git_branch"] = git["branch"]
    return True


def _pending_prompt(t: str, payload: Mapping, stamp: Any, x: dict) -> None:
    """Inside a copied burst, keep the last prompt while nothing but its own turn's lines follow
    it: a sub-agent's task prompt is written at once after the copy of its parent's history (in
    the same burst), so a prompt still last when the burst ends is the child's own first turn. A
    copied prompt is followed by its answer (items, events) and is dropped."""
    kind = payload.get("type")
    if t == "event_msg" and kind == "user_message":
        msg = payload.get("message")
        if isinstance(msg, str) and msg.strip():
            x["pending"] = [msg, stamp]
            return
    pending = x.get("pending")
    if pending is None or t == "turn_context":
        return
    if t == "response_item" and kind == "message" and payload.get("role") in ("user", "developer"):
        text = _text(payload.get("content"))
        if payload.get("role") == "developer" or text == pending[0] or text.lstrip().startswith(_BOILERPLATE):
            return  # the prompt's own item, or context written with it
    x.pop("pending", None)


def _session_meta(payload: Mapping, b: SessionBuilder, ts: Any, stamp: Any) -> None:
    """The file's first ``session_meta`` names its session (and its parent, for a fork or a
    sub-agent: copied history may follow from its time). A later one with another id is an
    ancestor's: history copied in follows (from its time, when no fork time was given). The
    file's own id again ends the copied history."""
    x = b.extra
    sid = payload.get("id")
    sid = sid if isinstance(sid, str) and sid else None
    own = x.get("own")
    if own is not None:
        if sid is None:
            return
        if sid == own:
            x.pop("burst", None)
            x.pop("copied", None)
            x.pop("pending", None)
        else:
            x["copied"] = True
            if "burst" not in x and isinstance(stamp, str) and ts is not None:
                x["burst"] = stamp
        return
    if not b.at(ts):
        return
    x["own"] = sid or ""
    m = b.meta
    m["external_id"] = sid or m.get("external_id")
    for k in ("cwd", "cli_version", "originator", "source", "model_provider"):
        if isinstance(payload.get(k), (str, int)):
            m[k] = payload[k]
    git = payload.get("git")
    if isinstance(git, Mapping) and isinstance(git.get("branch"), str):
        m["git_branch"] = git["branch"]
    parent = _parent(payload)
    if parent is not None:
        m["forked_from"], m["fork_kind"] = parent
        b.job.parent_session_id = f"ses_cx_{_key(parent[0])}"
        if ts is not None and isinstance(stamp, str):
            x["burst"] = stamp  # the fork's time: the copied history is written from it


def handle_line(obj: dict, b: SessionBuilder) -> None:
    """Map one rollout line to builder calls."""
    t = obj.get("type")
    payload = obj.get("payload")
    if t in _ENVELOPE and type(payload) is dict:
        ts = parse_ts(obj.get("timestamp"))
        if t == "session_meta":
            _session_meta(payload, b, ts, obj.get("timestamp"))
            return
        x = b.extra
        burst = x.get("burst")
        if burst is not None:  # a fork's copied history, until a gap ends it
            last = parse_ts(burst)
            if ts is not None and last is not None and ts - last < _COPY_GAP:
                if ts > last:
                    x["burst"] = obj.get("timestamp")
                if t == "turn_context" and isinstance(payload.get("model"), str):
                    x["model"] = payload["model"]
                if t == "event_msg" and payload.get("type") == "token_count":
                    _token_count(payload, b, copied=True)
                    return
                if x.get("copied"):  # history copied from an ancestor: not imported again
                    _pending_prompt(t, payload, obj.get("timestamp"), x)
                    return
            else:
                del x["burst"]
                x.pop("copied", None)
                pending = x.pop("pending", None)
                if pending is not None:  # the burst's last prompt, nothing after it: the child's own
                    if b.at(parse_ts(pending[1])):
                        _prompt(pending[0], b, "event")
        if not b.at(ts):
            return
        if t == "turn_context":
            if isinstance(payload.get("model"), str):
                b.extra["model"] = payload["model"]
                b.meta["model"] = payload["model"]
            if isinstance(payload.get("cwd"), str) and not b.meta.get("cwd"):
                b.meta["cwd"] = payload["cwd"]
        elif t == "response_item":
            _item(payload, b)
        elif t == "event_msg":
            _event(payload, b)
        return
    if obj.get("record_type") == "state":
        return
    if t in _ITEMS:  # legacy: a bare response item
        b.extra["no_usage_in_log"] = True
        b.at(None)
        _item(obj, b)
        return
    unknown = b.extra.setdefault("unknown_types", [])
    if str(t) not in unknown:
        unknown.append(str(t))
        b.warn(f"unknown record type {t!r} skipped (further ones in this file are skipped silently)")
