"""How a managed child ended: ``ProcessResult`` (exit code or signal, whether asm_nb signalled it
and why, timing, bounded stderr, escaped descendants) and ``signal_name``.

Split out of ``process/managed.py``, which re-exports both.
"""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass, field
from typing import Any


def signal_name(signum: int | None) -> str | None:
    """``15`` → ``"SIGTERM"``; None → None."""
    if signum is None:
        return None
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@dataclass(frozen=True)
class ProcessResult:
    """How a child ended.

    ``exit_code`` is set when it exited normally, ``signal`` when a signal killed it.
    ``signalled_by_us`` is True when this layer sent it a signal (cancel, timeout), so callers
    can tell a cancel (exit 130/143 or SIGINT/SIGTERM death after our signal) from a crash.
    """

    argv: list[str]
    pid: int
    exit_code: int | None
    signal: int | None
    signalled_by_us: bool
    reason: str | None  # why we signalled it: "cancelled", "timeout", "idle_timeout", or the caller's
    timed_out: bool
    duration_ms: int
    stderr: str
    stderr_truncated: bool
    signals_sent: tuple[str, ...] = field(default_factory=tuple)
    #: pids of descendants that left the process group (``setsid``) and still held its output
    #: open when it ended: not killed (they escaped on purpose), reported with a warning
    survivors: tuple[int, ...] = field(default_factory=tuple)

    @property
    def signal_name(self) -> str | None:
        return signal_name(self.signal)

    @property
    def returncode(self) -> int:
        """Shell convention: the exit code, or 128 + signal number."""
        return self.exit_code if self.exit_code is not None else 128 + int(self.signal or 0)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        """``"exited with status 2"`` / ``"killed by SIGTERM (sent by asm_nb: cancelled)"``."""
        if self.exit_code is not None:
            text = f"exited with status {self.exit_code}"
        else:
            text = f"killed by {self.signal_name}"
        if self.signalled_by_us:
            text += f" (after asm_nb sent {'/'.join(self.signals_sent) or 'a signal'}: {self.reason})"
        return text

    def error_attrs(self, kind: str, message: str | None = None, **details: Any) -> dict[str, Any]:
        """Attrs for ``normalize_provider_error``: kind, message, exit code, stderr, truncated."""
        attrs: dict[str, Any] = {"kind": kind, "exit_code": self.exit_code, "stderr": self.stderr or None,
                                 "truncated": True if self.stderr_truncated else None}
        if message:
            attrs["message"] = message
        d = {k: v for k, v in details.items() if v is not None}
        if self.signal is not None:
            d.setdefault("signal", self.signal_name)
        if d:
            attrs["details"] = d
        return attrs
