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

__all__ = ["call_store"]


async def call_store(store: Any, op: str, *args: Any, _operation: str | None = None, **kw: Any) -> Any:
    """``store.<op>(*args, **kw)``, off the loop unless the store is ``inline_safe``."""
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
