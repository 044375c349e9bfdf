"""``call_store``: call a (synchronous) SessionStore method from async code.

Stores are synchronous; the runtime, the session server and the pub/sub bridge are asyncio.
An ``inline_safe`` store (in-memory) is called inline; any other runs in a worker thread so a
slow disk or database never blocks the event loop. A failure that is not already an
``AsmError`` becomes ``storage_connection_failed``, so callers see one error family.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..core.errors import AsmError
from ..core.session import Session
from .redaction import redact_map

__all__ = ["call_store", "session_for_store"]


def session_for_store(session: Session) -> Session:
    """The copy of ``session`` that is written: its name (``metadata.name``), metadata, context,
    tags and agent id go through the redactor."""
    from dataclasses import replace

    fields = {"metadata": session.metadata, "context": session.context, "tags": session.tags,
              "agent_id": session.agent_id}
    red = redact_map(fields, None)
    if red is fields:
        return session
    return replace(session, **{k: v for k, v in red.items() if v is not fields[k]})


async def call_store(store: Any, op: str, *args: Any, _operation: str | None = None, **kw: Any) -> Any:
    """``store.<op>(*args, **kw)``, off the loop unless the store is ``inline_safe``; a session is
    written redacted (``save_session``), whoever saves it."""
    if op == "save_session" and args and isinstance(args[0], Session):
        args = (session_for_store(args[0]),) + args[1:]
    elif op == "get_or_create_named_session" and len(args) >= 2 and isinstance(args[1], Session):
        args = (redact_map({"v": args[0]}, None)["v"], session_for_store(args[1])) + args[2:]
    try:
        fn = getattr(store, op)
        if getattr(store, "inline_safe", False):
            return fn(*args, **kw)
        return await asyncio.to_thread(fn, *args, **kw)
    except AsmError:
        raise
    except Exception as exc:
        raise AsmError("storage_connection_failed",
                       f"SessionStore {_operation or op} failed because the store became unavailable",
                       details={"reason": repr(exc)}) from exc
