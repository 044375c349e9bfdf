"""Claude Code session logs: ``<config>/projects/<project-slug>/<session-id>.jsonl``.

Where: every folder of ``$CLAUDE_CONFIG_DIR`` (comma-separated; each a config folder holding
``projects/`` or the ``projects/`` folder itself), else ``$XDG_CONFIG_HOME/claude`` (default
``~/.config/claude``) and ``~/.claude``. Sub-agent transcripts are ``agent-<id>.jsonl`` beside the
sessions (2.0.x) or ``<session-id>/subagents/agent-<id>.jsonl`` (later); each becomes its own
session whose parent is the session that started it.

One JSON object per line, ``type``:

- ``user``: ``message.content`` a string or content blocks. A prompt starts a turn (one asm run);
  ``tool_result`` blocks (``tool_use_id``, ``content``, ``is_error``) finish tool calls;
  ``isMeta`` lines (command caveats), ``isCompactSummary`` and local command output are context,
  not prompts; ``[Request interrupted by user…]`` marks the turn cancelled.
- ``assistant``: ``message`` is an Anthropic message (``id``, ``model``, ``content`` blocks
  ``text`` / ``thinking`` / ``tool_use``, ``usage`` with ``input_tokens``, ``output_tokens``,
  ``cache_creation_input_tokens``, ``cache_read_input_tokens``; later versions split the cache
  writes by lifetime in ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``:
  Claude Code writes mostly one-hour entries, billed at 2x input against 1.25x for five-minute
  ones, so that part is priced at its own rate) plus ``requestId``. A streamed
  message is written as several lines (one per content block) that all repeat its usage, with
  ``output_tokens`` growing to the final count on the last one: usage is counted once per
  ``message.id`` (+ ``requestId`` when present) across the whole store, taking the final (largest)
  figures — a later snapshot adds only its growth. A resumed session's file starts with the
  conversation it resumes copied in (same ``uuid``, times and message ids): a prompt whose
  ``uuid`` (kept as a ``ccu:`` key) or a message whose key another file of the store recorded
  starts a copied stretch that is not imported again, until the file's own next prompt or
  message; a project's files are read oldest first so the older session keeps them. Old versions also
  carry ``costUSD`` per line: that figure is kept as a reported cost. ``model: "<synthetic>"``
  lines (local notices, API errors with ``isApiErrorMessage``) have no billable usage.
- ``custom-title`` (``customTitle``: the user's ``/rename``), ``ai-title`` (``aiTitle``: the
  generated label the session picker shows) and ``summary`` (``summary``, ``leafUuid``): the
  session's title, in that order of strength (a later record of the same kind replaces it); else
  the first prompt's first line.
- ``system`` (``subtype`` e.g. ``compact_boundary``, ``level``): an ``error`` level becomes an
  ``error_occurred`` event; others are context.
- ``file-history-snapshot``, ``queue-operation``, ``progress``, ``attachment``, ``mode``,
  ``permission-mode``, ``last-prompt``, ``worktree-state`` and the other bookkeeping records of the
  harness (``_QUIET``) are skipped quietly; a record type never seen before is skipped with one
  warning per file.

Common fields: ``uuid``, ``parentUuid``, ``sessionId``, ``timestamp``, ``cwd``, ``gitBranch``,
``version``, ``isSidechain``, ``userType``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from ..core.errors import AsmError
from ..core.usage import TokenUsage, cache_creation_1h
from ._base import _ABSENT, FileJob, parse_ts
from ._builder import SessionBuilder

__all__ = ["config_dirs", "discover", "handle_line"]

SOURCE = "claude-code"
PROVIDER = "claude_code"
# bookkeeping records of the harness, not the conversation (session state re-appended when it
# changes, rewind checkpoints, hook progress, injected context): skipped without a warning
_QUIET = frozenset({"file-history-snapshot", "file-history-delta", "queue-operation", "progress", "tag",
                    "agent-name", "agent-color", "last-prompt", "pr-link", "attachment", "result", "mode",
                    "permission-mode", "worktree-state", "atis-latch", "bridge-session", "frame-link", "relocated",
                    "fork-context-ref", "content-replacement", "marble-origami-commit", "marble-origami-snapshot",
                    "task-summary"})
# the session's title, strongest first: the user's (/rename), the generated one, the summary
_TITLES = {"custom-title": ("customTitle", 3), "ai-title": ("aiTitle", 2), "summary": ("summary", 1)}
_INTERRUPTED = "[Request interrupted by user"
_TOOL_OUTPUT_MAX = 20_000
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def config_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """The Claude Code config folders to read (each has ``projects/``)."""
    env = os.environ if env is None else env
    raw = env.get("CLAUDE_CONFIG_DIR")
    if raw:
        out = []
        for part in (p.strip() for p in raw.split(",")):
            if not part:
                continue
            p = Path(part).expanduser()
            if p.name == "projects" and p.is_dir():
                p = p.parent
            if (p / "projects").is_dir() and p not in out:
                out.append(p)
        if not out:
            raise AsmError("not_found", f"CLAUDE_CONFIG_DIR={raw!r}: no folder there holds a projects/ folder")
        return out
    home = Path(env.get("HOME") or Path.home())
    xdg = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    return [p for p in (xdg / "claude", home / ".claude") if (p / "projects").is_dir()]


def _key(text: str) -> str:
    return _SAFE.sub("_", text)[:120]


def _job(path: Path, slug: str) -> FileJob:
    parent = None
    if path.parent.name == "subagents":  # <slug>/<session>/subagents/agent-x.jsonl
        sess = path.parent.parent.name
        key = f"{_key(sess)}_{_key(path.stem)}"
        parent = f"ses_cc_{_key(sess)}"
    else:
        key = _key(path.stem)
    return FileJob(path=path, source=SOURCE, provider=PROVIDER, agent_id=PROVIDER, key=key, id_prefix="cc_",
                   project=slug, parent_session_id=parent)


def _project_files(project_dir: Path) -> list[Path]:
    """A project's session files, oldest first (then by name): a resumed session's file starts
    with copies of the conversation it resumes, which belong to the older file (the first file
    read holds a copied turn; a later copy is not imported again)."""
    def age(p: Path) -> tuple[int, str]:
        try:
            return p.stat().st_mtime_ns, str(p)
        except OSError:
            return 0, str(p)

    files = sorted(project_dir.glob("*.jsonl"), key=age)
    files += sorted(project_dir.glob("*/subagents/*.jsonl"), key=age)
    return files


def _matches(project: str | None, slug: str) -> bool:
    if not project:
        return True
    p = project.lower()
    s = slug.lower()
    return p in s or p.replace("/", "-").replace("\\", "-").replace("_", "-") in s


def discover(path: str | os.PathLike | None = None, project: str | None = None,
             env: Mapping[str, str] | None = None) -> list[FileJob]:
    """The session files to import: under ``path`` (a config folder, its ``projects/``, one
    project folder or one ``.jsonl`` file) or the default folders; ``project`` keeps the projects
    whose folder name (the slugged path) contains it."""
    roots: list[Path]
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise AsmError("not_found", f"no such file or folder: {p}")
        if p.is_file():
            slug = p.parent.parent.parent.name if p.parent.name == "subagents" else p.parent.name
            return [_job(p, slug)] if _matches(project, slug) else []
        if (p / "projects").is_dir():
            roots = [p / "projects"]
        elif p.name == "projects" or any(c.is_dir() and any(c.glob("*.jsonl")) for c in p.iterdir()):
            roots = [p]
        else:
            return [_job(f, p.name) for f in _project_files(p) if _matches(project, p.name)]
    else:
        roots = [d / "projects" for d in config_dirs(env)]
    jobs = []
    for root in roots:
        for proj in sorted(c for c in root.iterdir() if c.is_dir()):
            if _matches(project, proj.name):
                jobs.extend(_job(f, proj.name) for f in _project_files(proj))
    return jobs


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for b in content:
            if type(b) is dict:
                if b.get("type") == "text" and isinstance(b.get("text"), str):
                    parts.append(b["text"])
                elif b.get("type") == "image":
                    parts.append("[image]")
            elif isinstance(b, str):
                parts.append(b)
        return "\n".join(parts)
    return ""


def _cap(text: str) -> Any:
    if len(text) <= _TOOL_OUTPUT_MAX:
        return text
    return text[:_TOOL_OUTPUT_MAX] + f"\n… [{len(text) - _TOOL_OUTPUT_MAX} more characters not imported]"


def _meta(obj: Mapping, b: SessionBuilder) -> None:
    # consecutive records repeat these four fields: the same four as the last record's leave the
    # metadata as the last record left it (nothing else sets these keys), so they are skipped
    seen = (obj.get("cwd"), obj.get("gitBranch"), obj.get("version"), obj.get("sessionId"))
    if b.scratch.get("meta") == seen:
        return
    b.scratch["meta"] = seen
    m = b.meta
    for src, dst in (("cwd", "cwd"), ("gitBranch", "git_branch"), ("version", "cli_version"),
                     ("sessionId", "external_id")):
        v = obj.get(src)
        if isinstance(v, str) and v and m.get(dst) != v:
            if dst == "external_id" and m.get(dst):
                continue  # the first one names the session
            m[dst] = v
    if b.job.key.startswith("agent-") and b.job.parent_session_id is None:
        sid = obj.get("sessionId")
        if isinstance(sid, str) and sid and sid != b.job.key:
            b.job.parent_session_id = f"ses_cc_{_key(sid)}"


def _elsewhere(key: str, b: SessionBuilder) -> bool:
    """Whether ``key`` was recorded by another file of this store (not this one): the line
    holding it is a copy (a resumed session starts with the conversation it resumes)."""
    return b.seen.get(key, _ABSENT) is not _ABSENT and key not in b.keys


def _user(obj: Mapping, b: SessionBuilder) -> None:
    msg = obj.get("message")
    content = msg.get("content") if type(msg) is dict else None
    if isinstance(content, list) and any(type(x) is dict and x.get("type") == "tool_result" for x in content):
        if b.extra.get("copy"):
            return  # the results of a copied turn's tool calls
        for block in content:
            if type(block) is not dict:
                continue
            if block.get("type") == "tool_result":
                out = _text(block.get("content"))
                b.tool_finished(block.get("tool_use_id"), _cap(out), failed=block.get("is_error") is True)
            elif block.get("type") == "text" and str(block.get("text", "")).startswith(_INTERRUPTED):
                b.set_status("cancelled")
        return
    text = _text(content)
    copy = b.extra.get("copy")
    if text.startswith(_INTERRUPTED):
        if not copy:
            b.set_status("cancelled")
        return
    if obj.get("isMeta") or obj.get("isCompactSummary") or text.startswith("<local-command-stdout>") \
            or text.startswith("<local-command-stderr>") or text.startswith("Caveat:"):
        return
    if obj.get("isSidechain"):  # a sub-agent's task prompt inside the parent's turn
        if copy:
            return
        if b.job.key.startswith("agent-") or "_agent-" in b.job.key:
            b.start_run(text)
        else:
            b.message("user", text, sidechain=True)
        return
    if not text.strip():
        return
    uuid = obj.get("uuid")
    if isinstance(uuid, str) and uuid:
        key = f"ccu:{uuid}"
        if _elsewhere(key, b):  # a prompt another session already holds: its copied turn
            b.extra["copy"] = True
            return
        b.seen[key] = b.keys[key] = None
    b.extra.pop("copy", None)
    b.start_run(text)
    if not b.meta.get("title") and b.run and b.run.get("prompt"):
        b.meta["title"] = b.run["prompt"].strip().splitlines()[0][:100]


def _assistant(obj: Mapping, b: SessionBuilder) -> None:
    msg = obj.get("message")
    if type(msg) is not dict:
        b.warn("assistant record without a message; skipped")
        return
    model = msg.get("model") if isinstance(msg.get("model"), str) else None
    synthetic = model == "<synthetic>"
    mid, rid = msg.get("id"), obj.get("requestId")
    # message.id is unique per API response; requestId is absent on some versions and gateways
    key = (f"cc:{mid}:{rid}" if isinstance(rid, str) and rid else f"cc:{mid}") if isinstance(mid, str) and mid \
        else None
    if key is not None and not synthetic:
        if _elsewhere(key, b):  # a message another session holds: copied (only a grown count adds)
            b.extra["copy"] = True
        else:
            b.extra.pop("copy", None)
    content = msg.get("content")
    if b.extra.get("copy"):
        blocks: list = []  # a copied turn's content is the other session's
    elif isinstance(content, list):
        blocks = content
    else:
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else []
    for block in blocks:
        if type(block) is not dict:
            continue
        bt = block.get("type")
        if bt == "text" and isinstance(block.get("text"), str) and block["text"]:
            if obj.get("isApiErrorMessage"):
                b.error(block["text"])
                b.set_status("failed", block["text"])
            else:
                b.message("assistant", block["text"], **({"sidechain": True} if obj.get("isSidechain") else {}))
        elif bt == "tool_use":
            b.tool_started(block.get("id"), str(block.get("name") or "tool"), block.get("input"))
    usage = msg.get("usage")
    if type(usage) is dict and not synthetic:
        u = TokenUsage.from_anthropic(usage)
        if u or obj.get("costUSD"):
            b.usage(model, u, key=key, reported_cost=obj.get("costUSD"), hour=cache_creation_1h(usage),
                    message_id=mid, request_id=rid)


def handle_line(obj: dict, b: SessionBuilder) -> None:
    """Map one Claude Code record to builder calls."""
    t = obj.get("type")
    title = _TITLES.get(t) if type(t) is str else None
    if title is not None:
        text = obj.get(title[0])
        if not isinstance(text, str):
            text = obj.get("title")
        if isinstance(text, str) and text.strip():
            if t == "summary":
                b.meta["summary"] = text
            if title[1] >= int(b.extra.get("title_rank") or 0):
                b.meta["title"] = text
                b.extra["title_rank"] = title[1]
        return
    if t in _QUIET:
        return
    if t not in ("user", "assistant", "system"):
        unknown = b.extra.setdefault("unknown_types", [])
        if t not in unknown:
            unknown.append(t)
            b.warn(f"unknown record type {t!r} skipped (further ones in this file are skipped silently)")
        return
    first = b.first_ts
    if not b.at(parse_ts(obj.get("timestamp"))):
        return
    _meta(obj, b)
    if t == "user":
        _user(obj, b)
    elif t == "assistant":
        _assistant(obj, b)
    elif obj.get("level") == "error" and isinstance(obj.get("content"), str) and not b.extra.get("copy"):
        b.error(obj["content"])
    if first is None and b.extra.get("copy"):
        b.first_ts = None  # a resumed session starts with its own first line, not the copied ones
