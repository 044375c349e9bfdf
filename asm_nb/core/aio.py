"""Small asyncio helpers shared by the layers above (standard library only)."""

from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

__all__ = ["within"]

T = TypeVar("T")

_IN_TASK_TIMEOUT = hasattr(asyncio, "timeout")  # Python 3.11+


async def within(aw: Awaitable[T], seconds: float) -> T:
    """``await aw`` with a deadline; raises ``asyncio.TimeoutError`` when it passes.

    On Python 3.11+ the deadline is set on the calling task (``asyncio.timeout``): no second task
    and no extra loop turns, which ``asyncio.wait_for`` costs (it runs ``aw`` in a task of its
    own); Python 3.10 falls back to ``wait_for``."""
    if _IN_TASK_TIMEOUT:
        async with asyncio.timeout(seconds):  # type: ignore[attr-defined]
            return await aw
    return await asyncio.wait_for(aw, seconds)  # pragma: no cover - Python 3.10
