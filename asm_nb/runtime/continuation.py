"""What a run is given besides its adapter options: the input messages recorded as
``message_sent`` and the transcript injected for continuation (docs/runtime.md, continuation),
cached per store so a follow-up turn reads only the events stored since the last one."""

from __future__ import annotations

import json
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ..core.errors import AsmError
from ..core.session import Session


def extract_input_messages(input: Any) -> list[dict[str, str]]:
    """The user/system messages of a run input (docs/runtime.md, the session manager)."""
    if isinstance(input, str):
        input = {"prompt": input}
    if not isinstance(input, Mapping):
        return []
    raw: list[Any]
    if isinstance(input.get("messages"), list):
        raw = [m for m in input["messages"] if isinstance(m, Mapping)]
    elif isinstance(input.get("prompt"), str) and input["prompt"]:
        raw = [{"role": "user", "content": input["prompt"]}]
    else:
        return []
    out = []
    for m in raw:
        role = m.get("role")
        role = getattr(role, "value", role)
        role = role.lower() if isinstance(role, str) and role else "user"
        content = m.get("content")
        if content is None:
            content = ""
        elif isinstance(content, list):
            texts = [b.get("text") for b in content if isinstance(b, Mapping) and b.get("type") == "text"]
            content = "\n".join(t for t in texts if isinstance(t, str)) if texts else json.dumps(content, default=str)
        elif not isinstance(content, str):
            content = str(content)
        if content:
            out.append({"role": role, "content": content})
    return out


NATIVE_UNAVAILABLE = ('Native continuation is not available for this provider. '
                      'Use continuation: "auto" to fall back to transcript replay.')


def _native_resume_id(session: Session, adapter: Any) -> str | None:
    """The provider's own session/thread id recorded for ``adapter`` by an earlier run, if any."""
    ps = session.metadata.get("provider_sessions")
    entry = ps.get(getattr(adapter, "name", None)) if isinstance(ps, Mapping) else None
    psid = entry.get("provider_session_id") if isinstance(entry, Mapping) else None
    return psid if isinstance(psid, str) and psid else None


def _continuation_transcript(store: Any, session: Session, mode: Any, opts: Mapping[str, Any] | None,
                             adapter: Any = None) -> Any:
    """The transcript to inject for continuation mode ``mode`` (docs/runtime.md, continuation), or None.

    ``"native"`` needs an adapter with ``supports_native_continuation`` (it then resumes from
    ``session.metadata["provider_sessions"][adapter.name]`` itself); ``"auto"`` prefers native
    resume when the adapter supports it and a provider session id is recorded, else replays.
    ``opts``: store query keys and truncation keys (``max_messages``, ``max_chars``,
    ``max_tokens_approx``; docs/event-model.md, transcripts)."""
    mode = getattr(mode, "value", mode)
    if mode is None or mode is False:
        return None
    if mode is True:
        raise AsmError("validation_error",
                       'Boolean continuation is not supported. Use continuation: "auto", "replay", "native", or False.')
    if mode not in ("auto", "replay", "native"):
        raise AsmError("validation_error",
                       f'Invalid continuation value: {mode!r}. Use continuation: "auto", "replay", "native", or False.')

    opts = dict(opts or {})
    native = bool(getattr(adapter, "supports_native_continuation", False))
    if mode == "native":
        if not native:
            raise AsmError("invalid_operation", NATIVE_UNAVAILABLE)
        return None  # the adapter resumes from provider_sessions in the session metadata
    if mode == "auto" and native and _native_resume_id(session, adapter) is not None:
        return None
    return session_transcript(store, session.id, opts)


_TRANSCRIPTS: "weakref.WeakKeyDictionary[Any, OrderedDict[str, Any]]" = weakref.WeakKeyDictionary()
_TRANSCRIPTS_PER_STORE = 16


def session_transcript(store: Any, session_id: str, opts: Mapping[str, Any] | None = None) -> Any:
    """The session's transcript for continuation, kept per store with its last sequence number:
    a follow-up turn reads only the events stored since (``update_from_store``), not the whole
    session. Truncation options apply to the returned copy; store query options bypass the cache."""
    from ..core.transcript import STORE_QUERY_KEYS, from_store, maybe_truncate, update_from_store

    opts = dict(opts or {})
    if any(k in opts for k in STORE_QUERY_KEYS):
        return from_store(store, session_id, **opts)
    try:
        cache = _TRANSCRIPTS.setdefault(store, OrderedDict())
    except TypeError:  # a store that cannot be weakly referenced: no cache
        return from_store(store, session_id, **opts)
    cached = cache.pop(session_id, None)
    if cached is not None and isinstance(cached.last_sequence, int):
        latest = getattr(store, "get_latest_sequence", None)
        try:
            newest = latest(session_id) if callable(latest) else None
            if isinstance(newest, int) and newest < cached.last_sequence:
                cached = None  # events were deleted meanwhile (session deleted, pruned): rebuild
        except AsmError:
            cached = None
    elif cached is not None:
        cached = None
    full = update_from_store(store, cached) if cached is not None else from_store(store, session_id)
    cache[session_id] = full
    while len(cache) > _TRANSCRIPTS_PER_STORE:
        cache.popitem(last=False)
    return maybe_truncate(full, **opts) if opts else full
