"""One daemon thread owns the asyncio event loop that runs providers ("async core, sync face").

Sync callers (magics, ``asm_nb.run_once``, the CLI) submit coroutines with ``run_sync`` and
wait in short timed waits, so a KeyboardInterrupt (the notebook's stop button) reaches Python
promptly. The caller's ``contextvars`` context travels with the coroutine, so
``config.override(...)`` in a cell applies inside the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import select
import signal
import sys
import threading
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_pid: int | None = None

WAIT_SLICE_S = 0.05


def _pidfd_usable() -> bool:
    if not hasattr(os, "pidfd_open") or not hasattr(asyncio, "PidfdChildWatcher"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))  # Linux >= 5.3 and not filtered by a sandbox
    except OSError:
        return False
    try:
        # CPython's private transport; typeshed does not list it
        from asyncio.unix_events import _UnixSubprocessTransport  # noqa: F401  # pyright: ignore[reportAttributeAccessIssue]
    except ImportError:  # pragma: no cover - CPython internals moved
        return False
    return True


def _new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for the runtime thread. On Python < 3.12 on Linux its child processes
    are watched with a pidfd on the loop itself, as Python 3.12+ does by default, instead of
    asyncio's default there (a new thread per child process, which costs a thread start and
    two thread switches per command)."""
    if sys.version_info >= (3, 12) or sys.platform != "linux" or not _pidfd_usable():
        return asyncio.new_event_loop()
    return _PidfdLoop()


if sys.platform == "linux" and sys.version_info < (3, 12):

    class _PidfdLoop(asyncio.SelectorEventLoop):  # type: ignore[misc,valid-type]
        """``SelectorEventLoop`` whose subprocesses are reaped through a loop-private
        ``PidfdChildWatcher`` (the body is CPython 3.10/3.11's ``_make_subprocess_transport`` with
        that watcher instead of the process-wide one)."""

        #: a start here has no suspension point (``_SyncPipesTransport``: no cancel lands between
        #: the fork and the returned process) and a failed one kills the child's whole new process
        #: group, so ``process.launch`` need not shield the start in a task of its own
        _asm_kills_group_on_cancelled_start = True

        def __init__(self) -> None:
            super().__init__()
            self._asm_watcher = asyncio.PidfdChildWatcher()
            self._asm_watcher.attach_loop(self)

        def _asm_child_exited(self, pid: int, returncode: int, transp: Any) -> None:
            # called by the watcher's pidfd reader, on this loop: the transport learns the exit
            # now (no self-pipe write, and no loop turn: it schedules its protocol's callbacks
            # itself)
            transp._process_exited(returncode)

        async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout, stderr, bufsize,
                                             extra=None, **kwargs):
            transp = _SyncPipesTransport(self, protocol, args, shell, stdin, stdout, stderr, bufsize, extra=extra,
                                         **kwargs)
            self._asm_watcher.add_child_handler(transp.get_pid(), self._asm_child_exited, transp)
            try:
                transp._asm_connect_pipes()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                transp._asm_drop_unconnected()
                if kwargs.get("start_new_session") or kwargs.get("process_group") == 0:
                    # asyncio kills the leader alone (below): a child it already started would
                    # survive in the new group
                    try:
                        os.killpg(transp.get_pid(), signal.SIGKILL)
                    except OSError:
                        pass
                # SIGKILL to the leader and the pipes closed; the watcher reaps it. Not awaited: a
                # transport whose protocol never got connection_made never reports it finished
                # (asyncio's own waiter path would hang here the same way)
                transp.close()
                raise
            return transp

    import collections
    import subprocess
    from asyncio import base_subprocess, transports
    from asyncio.unix_events import _UnixSubprocessTransport  # pyright: ignore[reportAttributeAccessIssue]  # private, not in typeshed

    class _SyncPipesTransport(_UnixSubprocessTransport):  # type: ignore[misc,valid-type]
        """CPython 3.10/3.11's subprocess transport with its pipes connected at once, by the loop
        that made it (``_asm_connect_pipes``), instead of in a ``_connect_pipes`` task that waits
        a loop turn per pipe for the pipe protocol's ``connection_made`` and one more for the
        caller's waiter (a task and three loop turns per command). The constructor is
        ``BaseSubprocessTransport.__init__`` (the same in 3.10 and 3.11) without that task; the
        start then has no suspension point, so no cancel can land between the fork and the
        returned process."""

        def __init__(self, loop, protocol, args, shell, stdin, stdout, stderr, bufsize, extra=None,
                     **kwargs) -> None:
            transports.SubprocessTransport.__init__(self, extra)
            self._closed = False
            self._protocol = protocol
            self._loop = loop
            self._proc = None
            self._pid = None
            self._returncode = None
            self._exit_waiters = []
            self._pending_calls = collections.deque()
            self._pipes = {}
            self._finished = False
            if stdin == subprocess.PIPE:
                self._pipes[0] = None
            if stdout == subprocess.PIPE:
                self._pipes[1] = None
            if stderr == subprocess.PIPE:
                self._pipes[2] = None
            try:
                self._start(args=args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr, bufsize=bufsize,
                            **kwargs)
            except:  # noqa: E722 - as CPython: close on anything, re-raise
                self.close()
                raise
            proc: Any = self._proc
            self._pid = proc.pid
            self._extra["subprocess"] = proc

        def _asm_connect_pipes(self) -> None:
            """``BaseSubprocessTransport._connect_pipes`` without awaiting: each pipe transport is
            made as ``connect_*_pipe`` makes it (it queues its protocol's ``connection_made`` and,
            after it, the reader registration: no data is read before), its protocol's ``pipe`` is
            set now, and the subprocess protocol's ``connection_made`` runs here, so the caller's
            ``Process`` has its streams when ``create_subprocess_exec`` returns."""
            proc: Any = self._proc
            loop: Any = self._loop
            proto: Any
            for fd, pipe in ((0, proc.stdin), (1, proc.stdout), (2, proc.stderr)):
                if pipe is None:
                    continue
                if fd == 0:
                    proto = base_subprocess.WriteSubprocessPipeProto(self, 0)
                    proto.pipe = loop._make_write_pipe_transport(pipe, proto)
                else:
                    proto = base_subprocess.ReadSubprocessPipeProto(self, fd)
                    proto.pipe = loop._make_read_pipe_transport(pipe, proto)
                self._pipes[fd] = proto
            self._protocol.connection_made(self)
            pending: Any = self._pending_calls
            for callback, data in pending:
                loop.call_soon(callback, *data)
            self._pending_calls = None

        def _asm_drop_unconnected(self) -> None:
            """After a failed ``_asm_connect_pipes``: close the pipes no transport took and forget
            them, so the transport can finish (it waits for every pipe it knows to disconnect)."""
            proc: Any = self._proc
            files = {0: proc.stdin, 1: proc.stdout, 2: proc.stderr}
            for fd in [fd for fd, proto in self._pipes.items() if proto is None]:
                del self._pipes[fd]
                f = files.get(fd)
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass


def get_loop() -> asyncio.AbstractEventLoop:
    """The runtime loop, started on first use (and restarted in a forked child)."""
    global _loop, _thread, _pid
    with _lock:
        if _loop is not None and _pid == os.getpid() and _thread is not None and _thread.is_alive():
            return _loop
        loop = _new_loop()
        ready = threading.Event()

        def _run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=_run, name="asm-runtime-loop", daemon=True)
        thread.start()
        ready.wait()
        _loop, _thread, _pid = loop, thread, os.getpid()
        return loop


def in_loop_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, T], *, context: contextvars.Context | None = None) -> concurrent.futures.Future:
    """Schedule ``coro`` on the runtime loop inside ``context`` (default: a copy of the caller's)."""
    loop = get_loop()
    ctx = context if context is not None else contextvars.copy_context()
    fut: concurrent.futures.Future = concurrent.futures.Future()

    def _start() -> None:
        try:
            if sys.version_info >= (3, 11):
                task = loop.create_task(coro, context=ctx)
            else:  # 3.10: no context= yet; the task runs in a copy of ctx
                task = ctx.run(loop.create_task, coro)
        except BaseException as exc:  # pragma: no cover - create_task failing is a bug
            fut.set_exception(exc)
            return

        def _done(t: asyncio.Task) -> None:
            if fut.done():
                return
            if t.cancelled():
                fut.cancel()
            elif t.exception() is not None:
                fut.set_exception(t.exception())
            else:
                fut.set_result(t.result())

        task.add_done_callback(_done)
        fut.add_done_callback(lambda f: loop.call_soon_threadsafe(task.cancel) if f.cancelled() else None)

    loop.call_soon_threadsafe(_start)
    return fut


class _Waker:
    """A thread's eventfd (Linux): the loop thread wakes a waiting caller by writing to it, a
    system call made without the GIL held, instead of releasing the caller's lock inside
    ``Future.set_result`` with the GIL held (the woken caller then preempts the loop thread only
    to block on the GIL it still holds, and is woken a second time when it lets go). Closed
    when the thread's last reference goes (thread exit, or a future still holding its callback)."""

    __slots__ = ("fd", "pid")

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)  # type: ignore[attr-defined]
        self.pid = os.getpid()

    def wake(self, _fut: Any = None) -> None:
        try:
            os.eventfd_write(self.fd, 1)  # type: ignore[attr-defined]
        except OSError:  # pragma: no cover - closed (fork) or the counter is full: the waiter polls anyway
            pass

    def drain(self) -> None:
        try:
            os.eventfd_read(self.fd)  # type: ignore[attr-defined]
        except (BlockingIOError, OSError):
            pass

    def __del__(self) -> None:
        if self.pid == os.getpid():
            try:
                os.close(self.fd)
            except OSError:  # pragma: no cover
                pass


_wakers = threading.local()


def _waker() -> _Waker | None:
    """This thread's ``_Waker`` (a new one in a forked child), or None without ``os.eventfd``."""
    if not hasattr(os, "eventfd"):
        return None
    w = getattr(_wakers, "w", None)
    if w is None or w.pid != os.getpid():
        try:
            w = _Waker()
        except OSError:  # pragma: no cover - out of descriptors: wait on the future itself
            return None
        _wakers.w = w
    return w


def wait(fut: concurrent.futures.Future, *, on_interrupt: Callable[[], Any] | None = None,
         interrupt_grace_s: float = 10.0, poll: Callable[[], Any] | None = None) -> Any:
    """Block until ``fut`` is done, in short slices so KeyboardInterrupt arrives promptly.

    On KeyboardInterrupt, ``on_interrupt()`` is called (e.g. cancel the run), the future is given
    ``interrupt_grace_s`` to settle (so ``run_cancelled`` gets persisted), then the interrupt is
    re-raised. ``poll`` is called between slices (a widget can process pending comm messages).
    On Linux the caller sleeps on its thread's eventfd, written by the future's done callback
    (see ``_Waker``); elsewhere on the future's own condition.
    """
    waker = _waker()
    if waker is not None:
        fut.add_done_callback(waker.wake)  # runs at once when fut is already done
    while True:
        try:
            if waker is None:
                try:
                    return fut.result(timeout=WAIT_SLICE_S)
                except concurrent.futures.TimeoutError:
                    pass
            else:
                if not fut.done():
                    select.select([waker.fd], [], [], WAIT_SLICE_S)
                waker.drain()  # a wake left over from an earlier wait only costs one more look
                if fut.done():
                    return fut.result()
            if poll is not None:  # inside the outer try: an interrupt during poll() counts too
                poll()
        except KeyboardInterrupt:
            try:
                if on_interrupt is not None:
                    on_interrupt()
                concurrent.futures.wait([fut], timeout=interrupt_grace_s)
            except KeyboardInterrupt:
                pass
            raise


def run_sync(coro: Coroutine[Any, Any, T], *, on_interrupt: Callable[[], Any] | None = None,
             poll: Callable[[], Any] | None = None) -> T:
    """Run ``coro`` on the runtime loop and wait for its result from synchronous code."""
    if in_loop_thread():
        coro.close()
        raise RuntimeError("run_sync() called from the asm runtime loop thread; await the async API instead")
    return wait(submit(coro), on_interrupt=on_interrupt, poll=poll)


async def maybe_await(value: Any) -> Any:
    if isinstance(value, Awaitable):  # type: ignore[arg-type]
        return await value
    return value
