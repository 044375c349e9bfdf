"""Reading an import's files in several processes (``import_history(..., workers=N)``).

``workers=N`` is N processes reading: this one and N - 1 workers. Each worker is a fresh
interpreter (``python -c``, this asm_nb first on its path, started with ``subprocess``: no ``fork`` of a
process that may have threads, as a Jupyter kernel has, and no re-import of the caller's
``__main__`` as ``multiprocessing``'s spawn does). It gets the caller's whole configuration
(``config.snapshot()``: the redaction settings and the pricing table among it) and the usage keys
the store already holds, then reads the files it is handed exactly as the in-process import
does (``_driver._read_file``: parsing, the source's handler, events, redaction, pricing, runs, the
session with its new offset) and leaves, per file, a result in a private temporary folder
(memory-backed where the system has one: a pipe would make it wait until this process reads):
the event lines already encoded (``_codec.event_lines``, numbered from 1), the run and session
upserts, its warnings and the usage keys it looked up and set.

This process hands the workers the files a few ahead, reads the next file nobody reads itself
(or one further ahead while a worker still reads the next), and takes the results **in the
files' order**: the warnings, counts, progress and the bulk write (``_localbulk.write_encoded``;
the numbers are put in under the log's lock when a log already has lines) are those of the
one-process import. Usage keys are the one thing that crosses files (a streamed or resumed
message is counted once in the whole store): a file read before an earlier file set a key it
looked up is read again here with the keys as they are now, as the one-process import reads it;
a file a worker failed on (or one whose read here raised while reading ahead) is read again here
when its turn comes (its error, if any, raised from there). A worker that dies leaves its files
to the others. The stored bytes, events, runs, sessions and offsets are those of ``workers=1``
(tests compare the two stores byte for byte).

Used only with the default store's bulk path (a ``LocalStore`` whose writes nothing replaces)
on POSIX; otherwise, or for one file to read, everything runs in the calling process. Any
exception here (``KeyboardInterrupt`` included) kills and reaps the workers and removes their
folder before it propagates; a worker whose parent is gone sees its input close and exits.

An import that finishes keeps its idle workers for the next import in this process (a notebook
importing Claude Code then Codex, or again later): each import sends its own configuration, usage
keys and folder, and a kept worker serves only an import that would start it the same way (same
interpreter, asm_nb, working folder and environment). A kept worker is ended after
``SPARE_IDLE_S`` seconds unused (a timer here; it also leaves by itself after two minutes
without a message), at this process's exit, or on :func:`close_spares`; a child forked from this
process closes its copies of their pipes and never uses them.
"""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ..core.errors import AsmError
from ._base import ImportReport
from ._driver import flush_batch

__all__ = ["start_pool", "EncodedBatch", "resolve_workers", "close_spares", "AUTO_MIN_BYTES", "SPARE_IDLE_S"]

#: with ``workers=None`` a second process is used when the files to read hold at least this many
#: bytes (and there are two or more): below it, starting a worker (~0.15-0.2 s of CPU, a fresh
#: interpreter importing the import path) costs about what it saves
AUTO_MIN_BYTES = 16 << 20
_MAX_WORKERS = 64
# files handed to one worker ahead of the parent's in-order consumption: at least 2, more up to
# 8 files or 64 MB (a worker that has its files done waits for the parent to take them)
_IN_FLIGHT = 8
_IN_FLIGHT_BYTES = 64 << 20


def resolve_workers(workers: Any) -> int | None:
    """``workers`` checked: None (automatic) or an int from 1 to 64; anything else raises
    ``AsmError`` (``validation_error``)."""
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= _MAX_WORKERS:
        raise AsmError("validation_error", f"workers must be None or an integer from 1 to {_MAX_WORKERS}, "
                                           f"got {workers!r}")
    return workers


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _idle_cores(window: float = 0.05) -> float:
    """How many cores sat idle over ``window`` seconds (Linux ``/proc/stat``; elsewhere every
    core counts as idle). This process sleeps meanwhile, so its own core counts as idle."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat", "rb") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        return sum(vals), vals[3] + (vals[4] if len(vals) > 4 else 0)  # all, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(window)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return float(_cpus())
    if t1 <= t0:
        return float(_cpus())
    return (i1 - i0) / (t1 - t0) * (os.cpu_count() or 1)


def _cpu_stall_us() -> int | None:
    """The machine's cumulative CPU stall time in microseconds (Linux pressure stall information,
    ``/proc/pressure/cpu``, "some": time during which a runnable task waited for a core), or None
    where the system does not keep it."""
    try:
        with open("/proc/pressure/cpu", "rb") as f:
            return int(f.readline().rsplit(b"total=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None


class _Probe:
    """Whether the second process of an automatic choice contends with other work, measured while
    both already work (no wait before the import starts): from the pool's start, once ``WINDOW``
    seconds have passed, the share of that time some runnable task waited for a core. This
    process and one worker on an otherwise idle two-core machine make none; another busy
    process makes about half of the time. Above ``LIMIT`` the workers are ended and their files
    read here."""

    WINDOW = 0.05
    LIMIT = 0.2

    def __init__(self, t0: float, stall0: int) -> None:
        self.t0 = t0
        self.stall0 = stall0
        self.share: float | None = None  # the stall share measured (None until then)

    @classmethod
    def start(cls) -> "_Probe | None":
        """A probe from now, or None where the system keeps no stall times."""
        import time

        s = _cpu_stall_us()
        return None if s is None else cls(time.perf_counter(), s)

    def contended(self) -> bool | None:
        """None until ``WINDOW`` has passed; then whether the stall share exceeded ``LIMIT``."""
        import time

        dt = time.perf_counter() - self.t0
        if dt < self.WINDOW:
            return None
        s = _cpu_stall_us()
        self.share = 0.0 if s is None else max(s - self.stall0, 0) / 1e6 / dt
        return self.share > self.LIMIT


def encoded_path(store: Any, bulk: Any) -> bool:
    """Whether ``store`` is written by ``LocalStore.write_batch`` itself, which
    ``_localbulk.write_encoded`` stands for (the same bytes from lines encoded beforehand);
    a replacement of it, or another store, gets its own ``write_batch`` with events."""
    from ..stores.local import LocalStore

    fn = getattr(bulk, "__func__", None)
    return isinstance(store, LocalStore) and getattr(fn, "__module__", None) == LocalStore.__module__ \
        and getattr(fn, "__qualname__", None) == "LocalStore.write_batch"


def start_pool(workers: int | None, jobs: Sequence[Any], plans: Sequence[tuple], source: str,
               since: datetime | None, seen: Mapping[str, Any]) -> "_Pool | None":
    """The worker processes for this import (``workers - 1`` of them: this process reads files
    too), or None when it runs in this process alone (one process asked for or chosen, one file
    to read, another store, not POSIX, a configuration that cannot be sent)."""
    n = resolve_workers(workers)
    if n == 1 or os.name != "posix" or not sys.executable:
        return None
    reads = [p for p in plans if p[0] != "skip"]
    probe = None
    if n is None:
        # two processes for a large import, when a second core is there and idle: with the
        # cores busy with other work a second process only adds its start and the hand-over.
        # Where the system keeps CPU stall times the worker starts at once and is ended if it
        # contends (``_Probe``); elsewhere the cores are sampled first (``_idle_cores``, 50 ms)
        todo = sum(max(p[0].st_size - p[3], 0) for p in reads)
        n = 1
        if todo >= AUTO_MIN_BYTES and len(reads) >= 2 and _cpus() >= 2:
            probe = _Probe.start()
            n = 2 if probe is not None or _idle_cores() >= 1.5 else 1
    n = min(n, len(reads))
    if n <= 1:
        return None
    from .. import config, telemetry
    from ..persistence.redaction import EVENT_REDACTED

    notices = bool(telemetry.has_handlers(EVENT_REDACTED) and telemetry.enabled())
    try:
        init = pickle.dumps({"source": source, "config": config.snapshot(), "seen": dict(seen), "since": since,
                             "notices": notices}, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # a setting that cannot be sent (an object of the caller's): in-process
        return None
    return _Pool(n - 1, init, source, notices, probe)


_DIR_PREFIX = "asm-import-"


def _result_base() -> str:
    """The folder the results' folders go in: memory-backed when the system has one."""
    import tempfile

    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else tempfile.gettempdir()


def _sweep_orphans(base: str) -> list[str]:
    """Remove the results' folders of imports whose process is gone (killed with SIGKILL, which
    no ``finally`` outlives): in a memory-backed folder they would hold their results' memory
    until a reboot. A folder is named after its process (``asm-import-<pid>-...``); one of a
    living process, or of a process this user may not signal, is left alone. Returns the
    folders removed."""
    import shutil

    removed: list[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(_DIR_PREFIX):
            continue
        pid = name[len(_DIR_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path = os.path.join(base, name)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        except OSError:  # alive under another user (EPERM), or cannot tell: keep it
            continue
    return removed


def _result_dir() -> str:
    """Where workers leave their results (memory-backed when the system has it): a pipe would
    make a worker wait for this process to read each result. Folders orphaned by a killed
    import are removed first."""
    import tempfile

    base = _result_base()
    _sweep_orphans(base)
    return tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-", dir=base)


class _Worker:
    def __init__(self, code: str) -> None:
        from collections import deque
        from multiprocessing.connection import Connection

        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        # the pipes are the connections' now (closed with them, not with the file objects)
        self.send = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self.recv = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.assigned: deque[int] = deque()  # files handed over, in order (it answers in order)

    def close(self) -> None:
        """End the worker: it holds nothing of the store's (no lock, no file), so it is killed
        whether it finished or not (no wait for an interpreter's shutdown) and reaped."""
        for c in (self.send, self.recv):
            try:
                c.close()
            except OSError:  # pragma: no cover
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


#: a worker is kept after an import for the next one in this process (its start, ~0.15 s of CPU
#: in a fresh interpreter, is saved): ended once unused for this many seconds, at this process's
#: exit, or (its pipes only) in a child forked from this process
SPARE_IDLE_S = 20.0
# a kept worker leaves by itself after this long without a message (should this process not
# end it: the parent's timer is the rule, this the backstop)
_WORKER_IDLE_S = 120.0
_spare_lock = threading.Lock()
_spares: list[tuple["_Worker", float, tuple]] = []  # (worker, kept since (monotonic), its start key)
_spare_timer: threading.Timer | None = None


def _start_key(root: str) -> tuple:
    """What a worker was started with and keeps: the interpreter, this asm_nb, the working
    folder and the environment. A kept worker serves only an import that would start the same."""
    return (sys.executable, root, os.getcwd(), tuple(sorted(os.environ.items())))


def _take_spares(n: int, key: tuple) -> list["_Worker"]:
    """Up to ``n`` kept workers started as ``key`` would start them, still alive."""
    import time

    got: list[_Worker] = []
    with _spare_lock:
        keep = []
        for entry in _spares:
            w, since, k = entry
            if len(got) < n and k == key and w.proc.poll() is None and time.monotonic() - since < SPARE_IDLE_S:
                got.append(w)
            else:
                keep.append(entry)
        _spares[:] = keep
    return got


def _keep(w: "_Worker", key: tuple) -> None:
    """Keep ``w`` for the next import (ended after ``SPARE_IDLE_S`` unused)."""
    import time

    global _spare_timer
    with _spare_lock:
        _spares.append((w, time.monotonic(), key))
        if _spare_timer is None:
            _spare_timer = threading.Timer(SPARE_IDLE_S, _end_idle_spares)
            _spare_timer.daemon = True
            _spare_timer.start()


def _end_idle_spares() -> None:
    """End the kept workers unused for ``SPARE_IDLE_S`` (the timer), and time the next check."""
    import time

    global _spare_timer
    now = time.monotonic()
    with _spare_lock:
        old = [e for e in _spares if now - e[1] >= SPARE_IDLE_S - 0.05]
        _spares[:] = [e for e in _spares if e not in old]
        _spare_timer = None
        if _spares:
            _spare_timer = threading.Timer(max(SPARE_IDLE_S - (now - min(e[1] for e in _spares)), 0.05),
                                           _end_idle_spares)
            _spare_timer.daemon = True
            _spare_timer.start()
    for w, _, _ in old:
        w.close()


def close_spares() -> int:
    """End every kept worker now (also run at this process's exit); returns how many."""
    global _spare_timer
    with _spare_lock:
        old = list(_spares)
        _spares.clear()
        if _spare_timer is not None:
            _spare_timer.cancel()
            _spare_timer = None
    for w, _, _ in old:
        w.close()
    return len(old)


def _forget_spares_in_child() -> None:  # pragma: no cover - runs in forked children
    """A forked child does not use (or end) its parent's workers: it only closes its copies of
    their pipes."""
    global _spare_lock, _spare_timer
    _spare_lock = threading.Lock()
    _spare_timer = None
    for w, _, _ in _spares:
        for c in (w.send, w.recv):
            try:
                c.close()
            except OSError:
                pass
    _spares.clear()


def _install_spare_hooks() -> None:
    import atexit

    atexit.register(close_spares)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_forget_spares_in_child)


_install_spare_hooks()


# results (files read ahead, here or by a worker) kept before this process waits instead of
# reading further ahead: 16 files, or their 128 MB of log
_AHEAD = 16
_AHEAD_BYTES = 128 << 20
# events per bulk write with workers: smaller batches than in one process (20,000), so the last
# write, which nobody works beside, is short
_FLUSH_EVENTS = 4000


class _Pool:
    """The worker processes of one import; ``with pool:`` ends them (killed on an exception)."""

    def __init__(self, n: int, init: bytes, source: str, notices: bool, probe: _Probe | None = None) -> None:
        self.n_workers = n
        # how the files were read: by a worker (result taken), here (in order or ahead), read
        # again here (a worker's usage keys were stale, or it failed), workers lost, workers
        # ended because they contended with other work (``_Probe``)
        self.stats = {"worker": 0, "here": 0, "again": 0, "lost_workers": 0, "contended": 0}
        self.probe = probe
        self.stall_share: float | None = None  # what the probe measured, once it has
        self.dir = _result_dir()
        init = pickle.dumps(("init", self.dir, init), protocol=pickle.HIGHEST_PROTOCOL)
        self.source = source
        self.notices = notices
        # the workers import this very asm_nb, first on their path (before the working folder,
        # which may hold another copy; a notebook may have this one on sys.path only)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = (f"import sys; sys.path.insert(0, {root!r}); "
                "from asm_nb.history._workers import _worker_main; _worker_main()")
        self.key = _start_key(root)
        self.workers: list[_Worker] = []
        self.reused = 0  # workers kept from an earlier import
        try:
            kept = _take_spares(n, self.key)
            for w in kept + [None] * (n - len(kept)):
                fresh = w is None
                w = _Worker(code) if w is None else w
                try:
                    w.send.send_bytes(init)
                except OSError:  # it ended already: the others (or this process) read its share
                    w.close()
                    if fresh:
                        self.stats["lost_workers"] += 1
                    continue
                self.reused += not fresh
                self.workers.append(w)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "_Pool":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(keep=exc_type is None)

    def close(self, keep: bool = False) -> None:
        """End the workers, or with ``keep`` (the import finished) keep the idle ones for the
        next import; remove the results' folder."""
        import shutil

        for w in self.workers:
            if keep and not w.assigned and w.proc.poll() is None:
                _keep(w, self.key)
            else:
                w.close()
        self.workers = []
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, jobs: Sequence[Any], plans: Sequence[tuple], report: ImportReport, bar: Any,
            batch: "EncodedBatch", seen: dict[str, Any], read: Callable[..., tuple[Any, int]]) -> None:
        """Read the files (the workers a few ahead, this process the next one nobody reads, or
        one ahead while it waits) and take the results in the files' order into ``batch``.
        ``read(job, plan, seen, report, emit_redacted)`` reads a file in this process."""
        from collections import deque
        from multiprocessing.connection import wait

        from ._driver import _skip

        todo = deque(i for i, p in enumerate(plans) if p[0] != "skip")
        results: dict[int, tuple[int, Any]] = {}  # file -> (files consumed when read (-1: none), result)
        set_here: set = set()  # the usage keys the files consumed so far set
        written: list[tuple[int, set]] = []  # (file, the keys it set), consumed files that set any

        def size(i: int) -> int:
            return max(plans[i][0].st_size - plans[i][3], 0)

        def lose(w: _Worker, died: bool = True) -> None:  # its files are read by the others or here
            back = sorted([*todo, *w.assigned])
            todo.clear()
            todo.extend(back)
            w.assigned.clear()
            self.workers.remove(w)
            w.close()
            if died:
                self.stats["lost_workers"] += 1

        def feed() -> None:
            for w in list(self.workers):
                # near the end, a worker gets few files: what it holds then, this process waits for
                while todo and (len(w.assigned) < 2 or (len(w.assigned) < min(_IN_FLIGHT, len(todo))
                                                        and sum(size(k) for k in w.assigned) < _IN_FLIGHT_BYTES)):
                    i = todo.popleft()
                    w.assigned.append(i)
                    try:
                        w.send.send_bytes(pickle.dumps(("file", i, jobs[i], plans[i]), protocol=pickle.HIGHEST_PROTOCOL))
                    except OSError:
                        lose(w)
                        break

        def poll(block: bool) -> None:
            busy = {w.recv: w for w in self.workers if w.assigned}
            if not busy:
                return
            for conn in wait(list(busy), timeout=None if block else 0):
                w = busy[conn]  # type: ignore[index]
                try:
                    i = int(w.recv.recv_bytes())
                    path = os.path.join(self.dir, f"{i}.pkl")
                    with open(path, "rb") as f:
                        r = pickle.loads(f.read())
                    os.unlink(path)
                    if r is not None:
                        r["upserts"] = unpack_upserts(r["upserts"])
                except (EOFError, OSError):
                    lose(w)
                    continue
                w.assigned.popleft()
                results[i] = (-1, r)

        def check() -> None:  # an automatic second process that contends with other work is ended
            probe = self.probe
            if probe is None:
                return
            verdict = probe.contended()
            if verdict is None:
                return
            self.probe = None
            self.stall_share = probe.share
            if verdict:
                self.stats["contended"] = len(self.workers)
                for w in list(self.workers):
                    lose(w, died=False)

        def ahead(i: int, consumed: int) -> None:
            try:
                r = read_result(read, jobs[i], plans[i], seen, self.source, self.notices)
            except Exception:  # raised (again) when its turn comes, after the files before it are kept
                r = None
            results[i] = (consumed, r)

        for i, (job, plan) in enumerate(zip(jobs, plans)):
            if _skip(job, plan, report, bar):
                continue
            check()
            while i not in results:
                if todo and todo[0] == i:  # nobody reads it yet: read here (nothing before it is pending)
                    todo.popleft()
                    feed()
                    results[i] = (i, read_result(read, job, plan, seen, self.source, self.notices))
                    break
                feed()
                poll(False)
                if i in results:
                    break
                if todo and len(results) < _AHEAD and sum(size(k) for k in results) < _AHEAD_BYTES:
                    ahead(todo.popleft(), i)  # read ahead while a worker reads file i
                    check()
                else:
                    poll(True)
            consumed, r = results.pop(i)
            if r is not None and consumed != i:
                looked = r["looked"]
                if consumed < 0:
                    stale = not set_here.isdisjoint(looked)
                else:  # read here after the files before ``consumed``: the ones since matter
                    stale = False
                    for k in range(len(written) - 1, -1, -1):
                        if written[k][0] < consumed:
                            break
                        if not written[k][1].isdisjoint(looked):
                            stale = True
                            break
                if stale:
                    r = None
            if r is None:
                # a worker failed, or a usage key it looked up was set by an earlier file since:
                # read it again here with the keys as they are now (what the in-process import does)
                r = read_result(read, job, plan, seen, self.source, self.notices)
                self.stats["again"] += 1
            else:
                self.stats["worker" if consumed < 0 else "here"] += 1
            writes = r["writes"]
            if writes:
                seen.update(writes)
                set_here.update(writes)
                written.append((i, set(writes)))
            report.files_read += 1
            report.lines_read += r["lines"]
            report.usage_records += r["usage_records"]
            for text in r["warnings"]:
                report.warn(text)
            report.warning_count += r["warning_count"] - len(r["warnings"])
            if r["notices"]:
                from ..persistence.redaction import emit_redacted

                for notice in r["notices"]:
                    emit_redacted(*notice)
            bar.update(r["end"] - plan[3])
            batch.add_encoded(r)
            if batch.n_events >= _FLUSH_EVENTS:
                batch.flush()


def read_result(read: Callable[..., tuple[Any, int]], job: Any, plan: tuple, base: Mapping[str, Any], source: str,
                notices: bool) -> dict[str, Any]:
    """Read one file (``read``: ``_driver._read_file`` bound to this process's pricer, handlers,
    ...) against the usage keys ``base`` without changing them; the result as the parent takes it
    (``encode_file`` plus the keys looked up and set, the file's counts, warnings and redaction
    notices)."""
    rep = ImportReport(source=source)
    sn = _Seen(base)
    got: list = []
    b, end = read(job, plan, sn, rep, (lambda *a: got.append(a)) if notices else (lambda *a: None))
    r = encode_file(b, plan[1], end, plan[0])
    r.update({"looked": sn.looked, "writes": dict(sn), "lines": rep.lines_read, "usage_records": rep.usage_records,
              "warnings": rep.warnings, "warning_count": rep.warning_count, "notices": got, "end": end})
    return r


@functools.cache
def _run_fields() -> tuple[Any, list] | None:
    """``(attrgetter of every field, their slot setters)`` of ``Run``, or None when ``Run`` is
    not a slotted dataclass (then runs are pickled as they are)."""
    import dataclasses
    import operator
    import types

    from ..core.run import Run

    try:
        names = [f.name for f in dataclasses.fields(Run)]
        slots = [Run.__dict__[n] for n in names]
    except (TypeError, KeyError):  # pragma: no cover - core changed
        return None
    if not all(isinstance(d, types.MemberDescriptorType) for d in slots):  # pragma: no cover
        return None
    return operator.attrgetter(*names), [d.__set__ for d in slots]


def pack_upserts(upserts: list[list]) -> list[tuple[bool, list]]:
    """A result's upsert groups for pickling: a group of runs as their field tuples (pickling a
    slotted dataclass goes through Python-level ``__getstate__``/``__setstate__``: ~40 us a run,
    a tuple ~10 us), anything else as it is."""
    from ..core.run import Run

    rf = _run_fields()
    out: list[tuple[bool, list]] = []
    for g in upserts:
        if rf is not None and g and all(type(x) is Run for x in g):
            out.append((True, [rf[0](r) for r in g]))
        else:
            out.append((False, g))
    return out


def unpack_upserts(packed: list[tuple[bool, list]]) -> list[list]:
    """``pack_upserts`` undone: the same runs (every field set through its slot, as the
    dataclass's ``__setstate__`` does)."""
    from ..core.run import Run

    rf = _run_fields()
    out: list[list] = []
    new = object.__new__
    for is_runs, g in packed:
        if not is_runs:
            out.append(g)
            continue
        assert rf is not None
        setters = rf[1]
        runs = []
        for values in g:
            r = new(Run)
            for put, v in zip(setters, values):
                put(r, v)
            runs.append(r)
        out.append(runs)
    return out


class _Seen(dict):
    """The usage keys as a worker's builder sees them: its own writes (this dict) over the
    store's keys at the start (``base``); every key looked up is recorded."""

    def __init__(self, base: Mapping[str, Any]) -> None:
        super().__init__()
        self.base = base
        self.looked: set = set()

    def get(self, key: Any, default: Any = None) -> Any:  # type: ignore[override]
        self.looked.add(key)
        if key in self:
            return self[key]
        return self.base.get(key, default)


class EncodedBatch:
    """``_driver._Batch`` for encoded results: files' event lines (numbered from 1, renumbered
    under the lock when a log has lines already) and upserts, written by
    ``_localbulk.write_encoded``."""

    def __init__(self, store: Any, report: ImportReport) -> None:
        self.store = store
        self.report = report
        self.logs: list[tuple[str, bytes, int, datetime | None]] = []
        self.upserts: list[list] = []
        self.counts = [0, 0, 0, 0]
        self.n_events = 0
        self.pending = False
        self.failed = False

    def add_builder(self, b: Any, prev: Any, end: int, st: Any) -> None:
        """A file read in this process."""
        self.add_encoded(encode_file(b, prev, end, st))

    def add_encoded(self, r: Mapping[str, Any]) -> None:
        self.pending = True
        self.upserts.extend(r["upserts"])
        kind = r["kind"]
        if kind is None:
            return
        if r["n"]:
            self.logs.append((r["sid"], r["blob"], r["n"], r["newest"]))
        c = self.counts
        c[0] += r["n"]
        c[1] += r["new_runs"]
        c[kind] += 1
        self.n_events += r["n"]

    def flush(self) -> None:
        from ..stores._localbulk import write_encoded

        if flush_batch(self, lambda: write_encoded(self.store, self.logs, self.upserts)):
            self.logs = []
            self.n_events = 0


def encode_file(b: Any, prev: Any, end: int, st: Any) -> dict[str, Any]:
    """One read file as the batch takes it: upserts, its events' lines numbered from 1 (what
    ``LocalStore.write_batch`` checks and encodes: ``_codec.row_lines`` from the builder's rows,
    else the events built from them, checked and encoded as ``write_batch`` does), counts."""
    from ..stores import _codec
    from ._driver import file_upserts

    upserts, kind = file_upserts(b, prev, end, st)
    out: dict[str, Any] = {"upserts": upserts, "kind": kind, "n": 0, "new_runs": b.new_runs, "sid": b.sid,
                           "blob": b"", "newest": None}
    rows = b.events
    if kind is None or not rows:
        return out
    encoded = _codec.row_lines(rows, 0)
    if encoded is None:
        from ..persistence.pipeline import _make_event
        from ..stores._base import check_events

        events = check_events([_make_event(*r) for r in rows])
        try:
            encoded = _codec.event_lines(events, 0)
        except (TypeError, ValueError) as exc:
            raise AsmError("storage_error", f"Failed to append events: {exc!r}") from exc
    out["blob"] = b"".join(encoded[0])
    out["n"] = len(rows)
    out["newest"] = max(r[2] for r in rows)
    return out


# -- the worker process ---------------------------------------------------------------------------


def _worker_main() -> None:  # pragma: no cover - runs in the worker processes (tested through them)
    import gc
    import queue
    import signal
    from multiprocessing.connection import Connection

    # the channel is the original stdin/stdout; anything printed goes to stderr instead
    rd = Connection(os.dup(0), writable=False)
    wr = Connection(os.dup(1), readable=False)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides (and kills the workers)
    gc.disable()  # as the in-process import: it makes no reference cycles
    inbox: queue.Queue = queue.Queue()

    def reader() -> None:  # drains the input so the parent never blocks sending
        try:
            while True:
                inbox.put(rd.recv_bytes())
        except (EOFError, OSError):
            inbox.put(None)

    threading.Thread(target=reader, daemon=True).start()
    state: dict[str, Any] = {}
    while True:
        try:
            msg = inbox.get(timeout=_WORKER_IDLE_S)
        except queue.Empty:
            return  # kept, then forgotten by its parent: leave
        if msg is None:
            return
        kind, *rest = pickle.loads(msg)
        if kind == "init":  # an import (the first, or the next one for a kept worker)
            state = _worker_init(*rest)
            continue
        i, job, plan = rest
        try:
            r = read_result(state["read"], job, plan, state["base"], state["source"], state["notices"])
            r["upserts"] = pack_upserts(r["upserts"])
            out = pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # the parent reads this file itself (and raises its error from there)
            out = pickle.dumps(None, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            with open(os.path.join(state["where"], f"{i}.pkl"), "wb") as f:
                f.write(out)
            wr.send_bytes(b"%d" % i)
        except OSError:
            return  # the parent is gone (or its folder)


def _worker_init(where: str, init: bytes) -> dict[str, Any]:  # pragma: no cover - in the workers
    """A worker's set-up for one import: the caller's whole configuration (every key, so nothing
    of an earlier import's stays), the source's handler, a pricer from the active table."""
    from .. import config

    d = pickle.loads(init)
    for k, v in d["config"].items():
        config.set_global(k, v)
    from . import _source
    from ._builder import _Pricer
    from ._driver import _loads, _NoBar, _read_file

    handler, first_line, finish = _source(d["source"])
    pricer = _Pricer()
    loads = _loads()
    since = d["since"]

    def read(job: Any, plan: tuple, sn: Any, rep: Any, emit: Any) -> tuple[Any, int]:
        return _read_file(job, plan, sn, pricer, rep, since, _NoBar(), loads, handler, first_line, finish, emit,
                          True)

    return {"where": where, "read": read, "base": d["seen"], "source": d["source"], "notices": d["notices"]}


if __name__ == "__main__":  # pragma: no cover
    _worker_main()
