"""The one subprocess layer: spawn a child in its own process group, stream its output,
bound its stderr, time it out, and kill the whole group on cancel.

Used by ``process/exec.py`` (workspace commands), the shell adapter and the Claude Code, Codex and Amp CLI
adapters, so process handling (and its bugs) live in one place. Imports only ``core`` and
``config``: both the adapters and ``workspace`` build on it. The launch steps (environment,
executable lookup, the shielded spawn) are in ``launch.py``, process-group signalling and escaped
descendants in ``groups.py``, ``ProcessResult`` in ``result.py``; their public names are
re-exported here.

Usage::

    async with ManagedProcess.start(["codex", "exec", "--json"], cwd=path, stdin_text=prompt,
                                    idle_timeout_ms=600_000, provider="codex",
                                    install_hint="npm install -g @openai/codex") as proc:
        async for line in proc.lines():      # str, newline stripped, any length
            handle(line)
        result = await proc.wait()           # ProcessResult
    # leaving the block (normally, by exception or by task cancellation) kills what is left
    # of the process group

    await proc.terminate("cancelled")        # from anywhere (e.g. adapter.cancel): SIGINT →
                                             # SIGTERM → SIGKILL to the group, short graces

What it guarantees:

- The child starts with ``start_new_session=True``: it leads a new session and process group,
  so signals reach its descendants too (a grandchild that calls ``setsid`` itself escapes, as
  with any process-group scheme).
- stdout is read in chunks by a background pump (no ``readline`` limit: a 5 MiB JSON line is
  fine), decoded as UTF-8 with ``errors="replace"``. Consume it once, with exactly one of
  ``lines()``, ``chunks()`` or ``byte_chunks()``; ``wait()`` drains and discards whatever
  nobody read, so a child never blocks on a full pipe.
- stderr is captured concurrently into a bounded buffer (``error_text_max_bytes`` /
  ``error_text_max_lines`` from config unless given), with ``stderr_truncated`` set when cut;
  ``merge_stderr=True`` sends it into stdout instead (``2>&1``).
- ``timeout_ms`` (overall) and ``idle_timeout_ms`` (no output on stdout or stderr for that
  long) terminate the group like a cancel, with ``ProcessResult.timed_out`` set.
- ``terminate(reason)`` is idempotent and never raises: it sends each signal of ``signals``
  (default SIGINT, SIGTERM, SIGKILL) to the group, waiting ``grace_ms`` (default 500 ms) for the
  child to exit after each, then SIGKILLs any member still left in the group.
- When the child exits on its own but a descendant keeps the stdout pipe open, the group is
  SIGKILLed after ``exit_drain_ms`` (default 1 s) so readers see EOF instead of hanging.
- A binary that is not installed fails before spawning, with ``AsmError("command_not_found")``
  (or, when ``provider=`` is given, ``AsmError("provider_error")`` whose ``provider_error.kind``
  is ``"cli_not_found"``), naming the binary and the install hint.
- Live process groups are SIGKILLed at interpreter exit (a restarted kernel leaves no orphans).
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal as _signal
import time
from typing import Any, AsyncIterator, Callable, Sequence

from .. import config
from ..core.errors import AsmError
from ..core.provider_errors import truncate_text
# the result type, process-group handling and the launch steps live in result / groups / launch;
# the names other modules and tests use are re-exported here (``process.managed`` stays the path)
from .groups import EscapedProcessWarning as EscapedProcessWarning
from .groups import _LIVE, _killpg, _pipe_holders, _pipe_inodes
from .launch import EnvSpec as EnvSpec
from .launch import _create_process, _resolve_launch
from .launch import build_env as build_env
from .launch import command_not_found_error as command_not_found_error
from .launch import resolve_executable as resolve_executable
from .result import ProcessResult as ProcessResult
from .result import signal_name as signal_name

__all__ = [
    "ManagedProcess",
    "ProcessResult",
    "DEFAULT_SIGNALS",
    "DEFAULT_GRACE_MS",
    "build_env",
    "resolve_executable",
    "command_not_found_error",
    "signal_name",
    "EscapedProcessWarning",
]

DEFAULT_SIGNALS: tuple[int, ...] = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGKILL)
DEFAULT_GRACE_MS = 500
DEFAULT_EXIT_DRAIN_MS = 1_000
_READ_SIZE = 65_536
_QUEUE_CHUNKS = 32  # backpressure: the pump stops reading when ~2 MiB are waiting


class _Starter:
    """What ``ManagedProcess.start`` returns: awaitable (→ started process) and an async
    context manager (kills the group on exit)."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self._kwargs = kwargs
        self._proc: ManagedProcess | None = None

    def __await__(self):
        return ManagedProcess.spawn(**self._kwargs).__await__()

    async def __aenter__(self) -> "ManagedProcess":
        self._proc = await ManagedProcess.spawn(**self._kwargs)
        return self._proc

    async def __aexit__(self, et, exc, tb) -> None:
        assert self._proc is not None
        reason = "closed" if et is None else ("cancelled" if issubclass(et, asyncio.CancelledError) else "error")
        await self._proc.aclose(reason=reason)


class ManagedProcess:
    """A running child process in its own process group. Build with ``ManagedProcess.start``."""

    def __init__(self) -> None:  # use start()/spawn()
        self.argv: list[str] = []
        self.pid: int = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._t0 = 0.0
        self._t_end: float | None = None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)
        self._stdout_eof = False
        self._stderr_buf = bytearray()
        self._stderr_truncated = False
        self._stderr_max_bytes = 0
        self._stderr_max_lines = 0
        self._on_stderr: Callable[[str], Any] | None = None
        self._last_activity = 0.0
        self._signals_sent: list[str] = []
        self._reason: str | None = None
        self._timed_out = False
        self._signals: tuple[int, ...] = DEFAULT_SIGNALS
        self._grace_s = DEFAULT_GRACE_MS / 1000
        self._exit_drain_s = DEFAULT_EXIT_DRAIN_MS / 1000
        self._tasks: list[asyncio.Task] = []
        self._watch_limits: tuple[float | None, float | None] = (None, None)
        self._watch_handle: asyncio.TimerHandle | None = None
        self._drain_handle: asyncio.TimerHandle | None = None
        self._bg: set[asyncio.Future] = set()
        self._exited: asyncio.Event = asyncio.Event()
        self._terminating: asyncio.Future | None = None
        self._stdin_task: asyncio.Task | None = None
        self._stderr_task: asyncio.Task | None = None
        self._stdout_task: asyncio.Task | None = None
        self._result: ProcessResult | None = None
        self.partial_last_line = False
        self._label: str | None = None
        self._pipe_inodes: frozenset[int] = frozenset()
        self._survivors: tuple[int, ...] = ()

    # -- construction ------------------------------------------------------------------
    @staticmethod
    def start(argv: Sequence[str], *, cwd: str | os.PathLike | None = None, env: EnvSpec = None,
              inherit_env: bool = True, stdin_text: str | bytes | None = None, keep_stdin_open: bool = False,
              merge_stderr: bool = False, timeout_ms: int | None = None, idle_timeout_ms: int | None = None,
              signals: Sequence[int] | None = None, grace_ms: int | None = None,
              exit_drain_ms: int | None = None, stderr_max_bytes: int | None = None,
              stderr_max_lines: int | None = None, on_stderr: Callable[[str], Any] | None = None,
              provider: str | None = None, install_hint: str | None = None,
              label: str | None = None) -> _Starter:
        """Start ``argv`` (no shell). ``await`` it for the process, or use ``async with``.

        Args:
            argv: program and arguments; ``argv[0]`` is looked up on the child's ``PATH``.
            cwd: working directory (must exist); default the current directory.
            env: added to the inherited environment (``inherit_env=False``: the whole env);
                a None value removes a variable.
            stdin_text: written to stdin, which is then closed (unless ``keep_stdin_open``;
                then use ``write_stdin``/``close_stdin``). None and not kept open: /dev/null.
            merge_stderr: send stderr into stdout (``2>&1``); ``ProcessResult.stderr`` is then "".
            timeout_ms / idle_timeout_ms: overall / no-output deadlines (None or <= 0: none).
            signals / grace_ms: termination escalation (default SIGINT, SIGTERM, SIGKILL, 500 ms each).
            exit_drain_ms: after the child exits, how long descendants may hold stdout open.
            stderr_max_bytes / stderr_max_lines: stderr bound (default: config error_text_*).
            on_stderr: called with each decoded stderr line (exceptions swallowed).
            provider / install_hint / label: shape the error for a missing binary
                (see ``command_not_found_error``).
        Raises:
            AsmError: ``validation_error`` (empty argv, bad cwd), ``command_not_found`` /
                ``provider_error`` (missing binary), ``provider_error``/``internal_error``
                (spawn failed).
        """
        return _Starter(dict(argv=argv, cwd=cwd, env=env, inherit_env=inherit_env, stdin_text=stdin_text,
                             keep_stdin_open=keep_stdin_open, merge_stderr=merge_stderr, timeout_ms=timeout_ms,
                             idle_timeout_ms=idle_timeout_ms, signals=signals, grace_ms=grace_ms,
                             exit_drain_ms=exit_drain_ms, stderr_max_bytes=stderr_max_bytes,
                             stderr_max_lines=stderr_max_lines, on_stderr=on_stderr, provider=provider,
                             install_hint=install_hint, label=label))

    @classmethod
    async def spawn(cls, *, argv: Sequence[str], cwd: Any = None, env: EnvSpec = None, inherit_env: bool = True,
                    stdin_text: str | bytes | None = None, keep_stdin_open: bool = False,
                    merge_stderr: bool = False, timeout_ms: int | None = None, idle_timeout_ms: int | None = None,
                    signals: Sequence[int] | None = None, grace_ms: int | None = None,
                    exit_drain_ms: int | None = None, stderr_max_bytes: int | None = None,
                    stderr_max_lines: int | None = None, on_stderr: Callable[[str], Any] | None = None,
                    provider: str | None = None, install_hint: str | None = None,
                    label: str | None = None) -> "ManagedProcess":
        """Keyword form of ``start`` that returns the started process (see ``start``)."""
        argv, cwd, child_env, exe = _resolve_launch(argv, cwd, env, inherit_env, provider=provider,
                                                    install_hint=install_hint, label=label)
        self = cls()
        self.argv = argv
        self._signals = tuple(signals) if signals else DEFAULT_SIGNALS
        self._grace_s = (DEFAULT_GRACE_MS if grace_ms is None else max(0, int(grace_ms))) / 1000
        self._exit_drain_s = (DEFAULT_EXIT_DRAIN_MS if exit_drain_ms is None else max(0, int(exit_drain_ms))) / 1000
        self._stderr_max_bytes = int(stderr_max_bytes or config.get("error_text_max_bytes") or 0)
        self._stderr_max_lines = int(stderr_max_lines or config.get("error_text_max_lines") or 0)
        self._on_stderr = on_stderr
        want_stdin = stdin_text is not None or keep_stdin_open
        proc = await _create_process(exe, argv, cwd, child_env, want_stdin=want_stdin, merge_stderr=merge_stderr,
                                     provider=provider, install_hint=install_hint, label=label)
        self._proc = proc
        self.pid = proc.pid
        self._label = label
        self._pipe_inodes = _pipe_inodes(proc)
        self._t0 = self._last_activity = time.monotonic()
        _LIVE.add(self)
        self._start_tasks(stdin_text, keep_stdin_open=keep_stdin_open, merge_stderr=merge_stderr,
                          timeout_ms=timeout_ms, idle_timeout_ms=idle_timeout_ms)
        return self

    def _start_tasks(self, stdin_text: str | bytes | None, *, keep_stdin_open: bool, merge_stderr: bool,
                     timeout_ms: int | None, idle_timeout_ms: int | None) -> None:
        """The background tasks of a started child: stdout/stderr pumps and stdin feed; the exit
        is handled in the transport's exit notice (``_hook_exit``, no task) and the deadlines by a
        loop timer (``_watch_fire``)."""
        loop = asyncio.get_running_loop()
        self._stdout_task = loop.create_task(self._pump_stdout())
        if not merge_stderr:
            self._stderr_task = loop.create_task(self._pump_stderr())
        if stdin_text is not None:
            self._stdin_task = loop.create_task(self._feed_stdin(stdin_text, close=not keep_stdin_open))
        self._tasks = [t for t in (self._stdout_task, self._stderr_task, self._stdin_task) if t is not None]
        if not self._hook_exit():  # pragma: no cover - a protocol without process_exited: a polling task
            self._tasks.append(loop.create_task(self._watch_exit()))
        t = timeout_ms if isinstance(timeout_ms, (int, float)) and timeout_ms > 0 else None
        i = idle_timeout_ms if isinstance(idle_timeout_ms, (int, float)) and idle_timeout_ms > 0 else None
        if t or i:
            self._watch_limits = (t, i)
            self._watch_fire()  # arms a loop timer (no task): nothing is due at the start


    # -- background tasks --------------------------------------------------------------
    async def _pump_stdout(self) -> None:
        assert self._proc and self._proc.stdout
        reader = self._proc.stdout
        try:
            while True:
                chunk = await reader.read(_READ_SIZE)
                if not chunk:
                    break
                self._last_activity = time.monotonic()
                await self._queue.put(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            self._stdout_eof = True
            try:
                self._queue.put_nowait(None)
            except asyncio.QueueFull:
                await self._queue.put(None)

    async def _pump_stderr(self) -> None:
        assert self._proc and self._proc.stderr
        reader = self._proc.stderr
        pending = b""
        try:
            while True:
                chunk = await reader.read(_READ_SIZE)
                if not chunk:
                    break
                self._last_activity = time.monotonic()
                room = self._stderr_max_bytes - len(self._stderr_buf) if self._stderr_max_bytes > 0 else len(chunk)
                if room >= len(chunk):
                    self._stderr_buf += chunk
                else:
                    self._stderr_buf += chunk[:max(room, 0)]
                    self._stderr_truncated = True
                if self._on_stderr is not None:
                    pending += chunk
                    *done, pending = pending.split(b"\n")
                    for ln in done:
                        self._call_on_stderr(ln)
                    if len(pending) > _READ_SIZE * 16:  # a runaway line: hand it over anyway
                        self._call_on_stderr(pending)
                        pending = b""
        except (ConnectionError, OSError):
            pass
        if pending and self._on_stderr is not None:
            self._call_on_stderr(pending)

    def _call_on_stderr(self, raw: bytes) -> None:
        try:
            self._on_stderr(raw.decode("utf-8", errors="replace").rstrip("\r"))  # type: ignore[misc]
        except Exception:  # a logging hook must not break the process handling
            pass

    async def _feed_stdin(self, text: str | bytes, *, close: bool) -> None:
        assert self._proc and self._proc.stdin
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        try:
            if data:
                self._proc.stdin.write(data)
                await self._proc.stdin.drain()
            if close:
                self._proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the child exited without reading its input: its exit status tells the story

    def _hook_exit(self) -> bool:
        """Handle the child's exit in its transport's exit notice (the protocol's
        ``process_exited``, called by every child watcher once the exit status is known): no task
        waits for it. asyncio's Process.wait() only returns once every pipe is closed too (3.11),
        so a descendant holding stdout would hide the exit there. False (nothing hooked) when
        the protocol has no such hook."""
        assert self._proc
        proto = getattr(self._proc, "_protocol", None)
        notify = getattr(proto, "process_exited", None)
        if proto is None or notify is None:
            return False

        def process_exited() -> None:
            try:
                notify()
            finally:
                self._on_exit()

        proto.process_exited = process_exited  # type: ignore[method-assign]
        if self._proc.returncode is not None:  # reported before the hook was in place
            self._on_exit()
        return True

    async def _watch_exit(self) -> None:  # pragma: no cover - only for a protocol without process_exited
        assert self._proc
        waiter = asyncio.ensure_future(self._proc.wait())
        self._tasks.append(waiter)
        poll = 0.005
        while self._proc.returncode is None:
            done, _ = await asyncio.wait([waiter], timeout=poll)
            if done:
                break
            poll = min(poll * 2, 0.1)
        self._on_exit()

    def _on_exit(self) -> None:
        """The child exited: mark it (``_mark_exited``; ``wait()`` wakes in the next loop turn)
        and, when stdout/stderr are still open (a descendant may hold them and make readers
        hang), give them ``exit_drain_ms`` (a loop timer, cancelled when they close) before
        what is left of the group is killed (``_drain_expired``)."""
        if self._exited.is_set():
            return
        self._mark_exited()
        pumps = [t for t in (self._stdout_task, self._stderr_task) if t is not None and not t.done()]
        if not pumps:
            return
        # after our own terminate the group is being killed anyway: a short drain is enough
        drain = min(self._exit_drain_s, 0.3) if self._terminating is not None else self._exit_drain_s
        self._drain_handle = asyncio.get_running_loop().call_later(drain, self._drain_expired, pumps)
        left = set(pumps)

        def closed(t: asyncio.Task) -> None:
            left.discard(t)
            if not left and self._drain_handle is not None:
                self._drain_handle.cancel()
                self._drain_handle = None

        for t in pumps:
            t.add_done_callback(closed)

    def _drain_expired(self, pumps: list[asyncio.Task]) -> None:
        """``exit_drain_ms`` after the exit, output still open: SIGKILL the group, then
        (``_after_drain``) stop reading from a descendant that escaped it."""
        self._drain_handle = None
        pending = [t for t in pumps if not t.done()]
        if not pending:
            return
        _killpg(self.pid, _signal.SIGKILL)
        self._tasks.append(asyncio.ensure_future(self._after_drain(pending)))

    async def _after_drain(self, pending: list[asyncio.Task]) -> None:
        assert self._proc
        _, still = await asyncio.wait(pending, timeout=0.2)
        if still:
            # a descendant escaped the group (setsid) and holds the pipes: name it, stop
            # reading (so readers see EOF and a cancel returns), leave it running
            self._survivors = tuple(_pipe_holders(self._pipe_inodes))
            if self._survivors:
                import warnings

                warnings.warn(f"{self._label or self.argv[0]}: process(es) {', '.join(map(str, self._survivors))} "
                              "left the process group (setsid) and survive it; asm_nb stopped reading their "
                              "output. Kill them with: kill " + " ".join(map(str, self._survivors)),
                              EscapedProcessWarning, stacklevel=2)
            for t in still:
                t.cancel()
            for fd in (1, 2):
                try:
                    pipe = self._proc._transport.get_pipe_transport(fd)  # type: ignore[union-attr]
                    if pipe is not None:
                        pipe.close()
                except Exception:  # noqa: BLE001 - best effort: the pump tasks are cancelled anyway
                    pass

    def _mark_exited(self) -> None:
        """The child has exited (once): its end time, ``_exited`` set, deadlines disarmed."""
        if self._exited.is_set():
            return
        self._t_end = time.monotonic()
        self._exited.set()
        self._cancel_watch()
        _LIVE.discard(self)

    def _watch_fire(self) -> None:
        """The deadlines (``timeout_ms`` overall, ``idle_timeout_ms`` without output): a loop timer
        re-armed for the nearest one, not a task waiting on the exit (a task's creation and two
        steps per command). When one passes, the group is terminated as ``terminate`` does
        (reason ``timeout`` / ``idle_timeout``, ``timed_out`` set); the exit cancels the timer."""
        self._watch_handle = None
        if self._exited.is_set() or self._terminating is not None:
            return
        total_ms, idle_ms = self._watch_limits
        now = time.monotonic()
        waits = []
        if total_ms:
            deadline = self._t0 + total_ms / 1000
            if now >= deadline:
                self._start_terminate("timeout")
                return
            waits.append(deadline - now)
        if idle_ms:
            idle_deadline = self._last_activity + idle_ms / 1000
            if now >= idle_deadline:
                self._start_terminate("idle_timeout")
                return
            waits.append(idle_deadline - now)
        self._watch_handle = asyncio.get_running_loop().call_later(max(min(waits), 0.001), self._watch_fire)

    def _start_terminate(self, reason: str) -> None:
        """A deadline passed: ``terminate(reason)``'s start (escalation task, reason), synchronously."""
        self._timed_out = True
        if self._terminating is None and self._result is None:
            self._reason = reason
            self._terminating = asyncio.ensure_future(self._escalate(self._signals, self._grace_s))

    def _cancel_watch(self) -> None:
        if self._watch_handle is not None:
            self._watch_handle.cancel()
            self._watch_handle = None

    # -- stdout consumption ------------------------------------------------------------
    async def byte_chunks(self) -> AsyncIterator[bytes]:
        """stdout as raw byte chunks, as they arrive, until EOF."""
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                self._queue.put_nowait(None)  # later readers (wait()) see EOF too
                return
            yield chunk

    async def chunks(self) -> AsyncIterator[str]:
        """stdout as decoded text chunks (UTF-8, ``errors="replace"``; a character split
        across reads is kept whole)."""
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in self.byte_chunks():
            text = dec.decode(chunk)
            if text:
                yield text
        tail = dec.decode(b"", final=True)
        if tail:
            yield tail

    async def lines(self) -> AsyncIterator[str]:
        """stdout as lines without their ``\\n`` (or ``\\r\\n``), of any length. A last line
        with no newline is yielded too, and ``partial_last_line`` is then True."""
        buf = bytearray()
        async for chunk in self.byte_chunks():
            start = 0
            nl = chunk.find(b"\n")
            if nl < 0:
                buf += chunk
                continue
            while nl >= 0:
                if buf:
                    buf += chunk[start:nl]
                    raw = bytes(buf)
                    buf.clear()
                else:
                    raw = chunk[start:nl]
                yield _decode_line(raw)
                start = nl + 1
                nl = chunk.find(b"\n", start)
            buf += chunk[start:]
        if buf:
            self.partial_last_line = True
            yield _decode_line(bytes(buf))

    # -- stdin -------------------------------------------------------------------------
    async def write_stdin(self, text: str | bytes) -> None:
        """Write to stdin (only with ``keep_stdin_open=True``)."""
        if self._proc is None or self._proc.stdin is None:
            raise AsmError("invalid_operation", "stdin is not open for this process")
        await self._feed_stdin(text, close=False)

    def close_stdin(self) -> None:
        if self._proc is not None and self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()

    # -- state -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return not self._exited.is_set()

    @property
    def stderr_text(self) -> str:
        """stderr captured so far (bounded)."""
        return bytes(self._stderr_buf).decode("utf-8", errors="replace")

    @property
    def elapsed_ms(self) -> int:
        end = self._t_end if self._t_end is not None else time.monotonic()
        return max(0, int((end - self._t0) * 1000))

    # -- ending ------------------------------------------------------------------------
    async def wait(self) -> ProcessResult:
        """Wait for the child to exit and its output to close; discard unread stdout."""
        if self._result is not None:
            return self._result
        async for _ in self.byte_chunks():  # drain: a child must never block on a full pipe
            pass
        await self._exited.wait()
        for t in (self._stderr_task, self._stdin_task):
            if t is not None and not t.done():
                try:
                    await asyncio.wait_for(asyncio.shield(t), timeout=self._exit_drain_s + 0.5)
                except asyncio.TimeoutError:
                    t.cancel()
        if self._terminating is not None:
            await asyncio.shield(self._terminating)
        self._result = self._build_result()
        return self._result

    def _build_result(self) -> ProcessResult:
        if self._result is not None:
            return self._result
        assert self._proc is not None
        rc = self._proc.returncode
        stderr, cut = truncate_text(self.stderr_text, self._stderr_max_bytes, self._stderr_max_lines)
        return ProcessResult(
            argv=list(self.argv), pid=self.pid,
            exit_code=rc if rc is not None and rc >= 0 else None,
            signal=-rc if rc is not None and rc < 0 else None,
            signalled_by_us=bool(self._signals_sent), reason=self._reason, timed_out=self._timed_out,
            duration_ms=self.elapsed_ms, stderr=stderr or "", stderr_truncated=self._stderr_truncated or cut,
            signals_sent=tuple(self._signals_sent), survivors=self._survivors)

    async def terminate(self, reason: str = "cancelled", *, signals: Sequence[int] | None = None,
                        grace_ms: int | None = None) -> ProcessResult:
        """Stop the whole process group: each signal in turn, ``grace_ms`` apart, until the child
        exits, then SIGKILL any member left. Idempotent (later calls join the first); safe to call
        from any task on the process's loop (it does not read stdout, so a task iterating
        ``lines()`` simply sees EOF); never raises for a process that already ended. Returns the
        result as known at exit (``wait()`` gives the final one, with all of stderr)."""
        if self._terminating is None and self._result is None:
            self._reason = reason
            sigs = tuple(signals) if signals else self._signals
            grace = self._grace_s if grace_ms is None else max(0, grace_ms) / 1000
            self._terminating = asyncio.ensure_future(self._escalate(sigs, grace))
        if self._terminating is not None:
            await asyncio.shield(self._terminating)
        await self._exited.wait()
        return self._build_result()

    def request_terminate(self, reason: str = "cancelled") -> None:
        """Start ``terminate`` in the background without waiting (for sync cancel hooks)."""
        if self._terminating is None:
            t = asyncio.ensure_future(self.terminate(reason))
            self._bg.add(t)  # keep a strong reference: the loop only holds tasks weakly
            t.add_done_callback(self._bg.discard)

    async def _escalate(self, sigs: tuple[int, ...], grace: float) -> None:
        for sig in sigs:
            if self._exited.is_set():
                break
            if _killpg(self.pid, sig):
                self._signals_sent.append(signal_name(sig) or str(sig))
            try:
                await asyncio.wait_for(self._exited.wait(), timeout=grace)
            except asyncio.TimeoutError:
                continue
        if not self._exited.is_set():  # custom signal list without SIGKILL, and still alive
            if _killpg(self.pid, _signal.SIGKILL):
                self._signals_sent.append("SIGKILL")
            await self._exited.wait()
        _killpg(self.pid, _signal.SIGKILL)  # descendants that outlived the leader

    def kill(self) -> None:
        """Synchronous SIGKILL to the group (last resort; no waiting)."""
        if self.pid and self._result is None:
            if _killpg(self.pid, _signal.SIGKILL) and not self._exited.is_set():
                self._signals_sent.append("SIGKILL")
                self._reason = self._reason or "killed"

    async def aclose(self, reason: str = "closed") -> ProcessResult | None:
        """End the process if still running (``terminate(reason)``), reap it, kill leftovers in
        its group and stop the background tasks. Called by the ``async with`` exit."""
        try:
            if not self._exited.is_set():
                await asyncio.shield(self.terminate(reason))
            # the usual case: the caller already waited (no task to shield a cached result)
            res = self._result if self._result is not None else await asyncio.shield(self.wait())
        except asyncio.CancelledError:
            self.kill()  # cancelled again while cleaning up: do not leave the group behind
            raise
        finally:
            if self._exited.is_set():
                _killpg(self.pid, _signal.SIGKILL)  # background descendants must not outlive us
            self._cancel_watch()
            if self._drain_handle is not None:  # the group is killed above: no drain left to give
                self._drain_handle.cancel()
                self._drain_handle = None
            for t in self._tasks:
                if not t.done():
                    t.cancel()
        return res


def _decode_line(raw: bytes) -> str:
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.decode("utf-8", errors="replace")
