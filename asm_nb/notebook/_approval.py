"""Widget Approve / Deny answering an awaited approval question on the runtime loop.

The widget shows the approval bar as soon as ``tool_approval_requested`` arrives, which can be
before the adapter or policy runtime starts awaiting the answer; a click that comes first is
kept and answers the next question.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any


class ButtonAnswers:
    """``await answers(...)`` → ``"approve"`` | ``"deny"``; ``answers.decide(decision)`` from any
    thread (the widget's button handler)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = deque()
        self._early: deque[str] = deque()

    async def ask(self) -> str:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._early:
                return self._early.popleft()
            fut = loop.create_future()
            self._pending.append((loop, fut))
        try:
            return await fut
        finally:
            with self._lock:
                if (loop, fut) in self._pending:
                    self._pending.remove((loop, fut))

    async def __call__(self, *_args: Any, **_kw: Any) -> str:
        return await self.ask()

    def decide(self, decision: str, request: Any = None) -> None:
        with self._lock:
            while self._pending:
                loop, fut = self._pending.popleft()
                if not fut.done():
                    loop.call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(decision))
                    return
            self._early.append(decision)
