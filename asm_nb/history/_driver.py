"""``run_import``: the incremental driver every history source uses. Lists the sessions earlier
imports made (their saved offsets and usage keys), skips unchanged files without opening them,
reads each changed file from its saved offset line by line (a half-written last line waits for
the next import), hands each parsed object to the source's handler and a :class:`SessionBuilder`,
then writes the file's session, events and runs to the store, the new offset last.
"""

from __future__ import annotations

import gc
import json
import os
import time
import warnings
from datetime import datetime
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ..core.session import Session
from ..ports import batch_writer
from ._base import STATE_KEY, FileJob, HistoryWarning, ImportReport, _keys
from ._builder import SessionBuilder, _Pricer

__all__ = ["run_import", "LineHandler"]

LineHandler = Callable[[dict, SessionBuilder], None]


def _blocks(f: Any, start: int, chunk: int = 1 << 20) -> Iterator[list[bytes]]:
    """The complete lines from ``start``, one list per block read (the caller counts offsets: one
    generator step per MiB, not per line); a last line without a newline (being written) is left
    for the next import."""
    f.seek(start)
    rest = b""
    while True:
        block = f.read(chunk)
        if not block:
            return
        block = rest + block
        lines = block.split(b"\n")
        rest = lines.pop()
        if lines:
            yield lines


def _lines(f: Any, start: int, chunk: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """``(offset after the line, line)`` for every complete line from ``start`` (``_blocks`` line
    by line)."""
    pos = start
    for lines in _blocks(f, start, chunk):
        for ln in lines:
            pos += len(ln) + 1
            yield pos, ln


def run_import(source: str, jobs: Iterable[FileJob], handler: LineHandler, *, store: Any, since: datetime | None,
               progress: bool, finish: Callable[[SessionBuilder], None] | None = None,
               first_line: Callable[[dict, SessionBuilder], bool] | None = None, workers: int | None = 1,
               worker_source: str | None = None) -> ImportReport:
    """Import ``jobs`` into ``store`` (the driver every source uses). ``handler`` maps one parsed
    JSON object to builder calls; ``finish`` runs after a file's last line. ``worker_source``
    (``"claude-code"`` / ``"codex"``: the handlers ``import_history`` passes) lets ``workers``
    processes read the files (``_workers.py``; None: chosen by the import's size); without it,
    or with ``workers=1``, everything runs in this process."""
    t0 = time.perf_counter()
    report = ImportReport(source=source)
    jobs = list(jobs)
    report.files_seen = len(jobs)
    existing: dict[str, Session] = {}
    seen: dict[str, Any] = {}
    for s in store.list_sessions():
        st = s.context.get(STATE_KEY) if isinstance(s.context, Mapping) else None
        if isinstance(st, Mapping) and st.get("source") == source:
            existing[s.id] = s
            for k, v in _keys(st.get("keys")).items():  # a key counted in two sessions: the larger figures
                old = seen.get(k)
                seen[k] = v if old is None or v is None else [max(a, b) for a, b in zip(old, v)]
    pricer = _Pricer()
    loads = _loads()
    bar = _progress(progress, sum(_size(j.path) for j in jobs), source)
    # the import makes no reference cycles (tested): the cyclic collector's passes over the
    # growing event lists only cost time. Measured per 40k lines: ~380 passes, ~0.13 s of ~1.6 s
    # CPU, become ~11 passes, ~0.05-0.09 s (objects still alive afterwards are scanned once then;
    # those freed within the import never are) -- a few percent, within the bench's noise
    gc_was_on = gc.isenabled()
    gc.disable()
    bulk = batch_writer(store)
    batch: Any = None
    rows = False  # the store's own bulk path: events are built as rows, encoded straight into lines
    if bulk is not None:
        from ._workers import EncodedBatch, encoded_path

        rows = encoded_path(store, bulk)
        batch = EncodedBatch(store, report) if rows else _Batch(bulk, report)
    try:
        plans = [_plan(job, existing) for job in jobs]
        pool = None
        if rows and worker_source is not None:
            from ._workers import start_pool

            pool = start_pool(workers, jobs, plans, worker_source, since, seen)
        if pool is not None:
            with pool:
                pool.run(jobs, plans, report, bar, batch, seen,
                         lambda job, p, sn, rep, emit: _read_file(job, p, sn, pricer, rep, since, _NoBar(), loads,
                                                                  handler, first_line, finish, emit, True))
        else:
            for job, p in zip(jobs, plans):
                if _skip(job, p, report, bar):
                    continue
                st, prev, pstate, offset = p
                b, end = _read_file(job, p, seen, pricer, report, since, bar, loads, handler, first_line, finish,
                                    None, rows)
                if batch is None:
                    _write(store, b, prev, end, st, report)
                elif rows:
                    batch.add_builder(b, prev, end, st)
                    if batch.n_events >= _BATCH_EVENTS:
                        batch.flush()
                else:
                    batch.add(b, prev, end, st)
                    if len(batch.events) >= _BATCH_EVENTS:
                        batch.flush()
        if batch is not None:
            batch.flush()
    except BaseException:
        if batch is not None and batch.pending and not batch.failed:
            try:  # the files read before the failure are kept, as the per-file writes keep them
                batch.flush()
            except Exception:  # pragma: no cover - the first error is the one reported
                pass
        raise
    finally:
        if gc_was_on:
            gc.enable()
        bar.close()
    report.duration_s = round(time.perf_counter() - t0, 3)
    if report.warning_count:
        first = report.warnings[0] if report.warnings else ""
        warnings.warn(f"history import ({source}): {report.warning_count} line(s) skipped; first: {first}",
                      HistoryWarning, stacklevel=3)
    return report


_BATCH_EVENTS = 20_000  # events collected from whole files before one bulk write

#: what ``_plan`` found for one file: read it (``(stat, previous session, its state, offset)``)
#: or skip it (``(kind, stat or None, warning or None)``)
Plan = tuple


def _plan(job: FileJob, existing: Mapping[str, Session]) -> Plan:
    """Whether (and from which offset) ``job`` is read; nothing is reported yet (``_skip``)."""
    try:
        st = os.stat(job.path)
    except OSError as exc:
        return ("skip", None, f"{job.path}: cannot read: {exc.strerror or exc}")
    prev = existing.get(job.session_id)
    pstate = prev.context.get(STATE_KEY) if prev is not None else None
    offset = int(pstate.get("offset") or 0) if isinstance(pstate, Mapping) else 0
    if isinstance(pstate, Mapping) and pstate.get("path") not in (None, str(job.path)):
        offset = 0 if pstate.get("size") != st.st_size else offset
    if offset == st.st_size and pstate is not None:
        return ("skip", st, None)
    if offset > st.st_size:
        return ("skip", st, f"{job.path}: the file is shorter than what was imported before (it was "
                            f"rewritten); its new content is not imported")
    return (st, prev, pstate, offset)


def _row(*fields: Any) -> tuple:
    """An event as a row: the arguments of the event constructor, in its order."""
    return fields


def _skip(job: FileJob, plan: Plan, report: ImportReport, bar: Any) -> bool:
    """Report a skipped file (in the files' order); False for a file to read."""
    if plan[0] != "skip":
        return False
    _, st, warning = plan
    if warning is not None:
        report.warn(warning)
    else:
        report.files_unchanged += 1
    if st is not None:
        bar.update(st.st_size)
    return True


def _read_file(job: FileJob, plan: Plan, seen: dict[str, Any], pricer: _Pricer, report: ImportReport,
               since: datetime | None, bar: Any, loads: Callable[[bytes], Any], handler: LineHandler,
               first_line: Callable[[dict, SessionBuilder], bool] | None,
               finish: Callable[[SessionBuilder], None] | None,
               emit_redacted: Callable[..., None] | None = None, rows: bool = False) -> tuple[SessionBuilder, int]:
    """Read one file from its offset into a new builder; returns it and the offset after the
    last complete line. ``emit_redacted``: where the builder's redaction notices go (default:
    telemetry, ``redaction.emit_redacted``). ``rows``: the builder's ``events`` are rows
    ``(id, type, timestamp, session_id, run_id, data, metadata, provider, correlation_id)``, not
    ``Event`` objects (for ``_workers.encode_file``, which encodes them as the events' lines)."""
    _, _, pstate, offset = plan
    b = SessionBuilder(job, pstate.get("builder") if isinstance(pstate, Mapping) else None, seen, pricer,
                       report, since)
    if emit_redacted is not None:
        b._emit_redacted = emit_redacted
    if rows:
        b._make_event = _row
    report.files_read += 1
    end = shown = offset
    lines_before = b.line_no
    with open(job.path, "rb") as f:
        pos = offset
        for block in _blocks(f, offset):
            for raw in block:
                pos += len(raw) + 1
                b.line_no += 1
                if pos - shown >= 1 << 16:  # the bar moves per 64 KiB read, not per line
                    bar.update(pos - shown)
                    shown = pos
                if not raw or raw.isspace():  # (``strip`` would copy every line)
                    continue
                try:
                    obj = loads(raw)
                except ValueError as exc:
                    b.warn(f"malformed JSON line skipped ({str(exc)[:80]})")
                    continue
                if not isinstance(obj, dict):
                    b.warn(f"line is not a JSON object ({type(obj).__name__}); skipped")
                    continue
                try:
                    if first_line is not None and b.line_no == 1 and first_line(obj, b):
                        continue
                    handler(obj, b)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    b.warn(f"line skipped: {type(exc).__name__}: {exc}")
            end = pos
    report.lines_read += b.line_no - lines_before
    bar.update(end - shown)
    if finish is not None:
        finish(b)
    return b, end


def _final_state(b: SessionBuilder, end: int, st: os.stat_result) -> dict:
    """The session's import state after this pass (the offset it names is saved last)."""
    state = {"source": b.source, "path": str(b.job.path), "offset": end, "size": st.st_size,
             "mtime_ns": st.st_mtime_ns, "keys": b.keys, "builder": b.to_state(end, st.st_size, st.st_mtime_ns)}
    state["builder"].pop("keys", None)
    b.keys = state["keys"]
    return state


class _Batch:
    """Whole files' events, runs and sessions collected for one ``write_batch`` (``ports.BatchWriter``):
    the store writes all events first, then per file (in order) its new session's first line, its
    runs and its session with the new offset, so a session never names lines whose events or runs
    are not on disk. The lines written are those ``_write`` writes file by file."""

    def __init__(self, write: Callable[..., None], report: ImportReport) -> None:
        self.write = write
        self.report = report
        self.events: list = []
        self.upserts: list[list] = []
        self.counts = [0, 0, 0, 0]  # events, runs, new sessions, updated sessions
        self.pending = False
        self.failed = False

    def add(self, b: SessionBuilder, prev: Session | None, end: int, st: os.stat_result) -> None:
        self.pending = True
        upserts, kind = file_upserts(b, prev, end, st)
        self.upserts.extend(upserts)
        if kind is None:
            return
        self.events.extend(b.events)
        c = self.counts
        c[0] += len(b.events)
        c[1] += b.new_runs
        c[kind] += 1

    def flush(self) -> None:
        if flush_batch(self, lambda: self.write(self.events, self.upserts)):
            self.events = []


def flush_batch(batch: Any, write: Callable[[], None]) -> bool:
    """The flush of a batch (``_Batch``, ``_workers.EncodedBatch``): nothing when nothing is
    pending; else ``write()`` (a failure marks the batch failed and propagates), the counts added
    to the report and the batch's upserts and counts reset (the caller resets its own lines).
    Returns whether it wrote."""
    if not batch.pending:
        return False
    try:
        write()
    except BaseException:
        batch.failed = True
        raise
    r, c = batch.report, batch.counts
    r.events += c[0]
    r.runs += c[1]
    r.sessions_new += c[2]
    r.sessions_updated += c[3]
    batch.upserts = []
    batch.counts = [0, 0, 0, 0]
    batch.pending = False
    return True


def file_upserts(b: SessionBuilder, prev: Session | None, end: int,
                 st: os.stat_result) -> tuple[list[list], int | None]:
    """One read file's upsert groups for a batch (after its events): a new session's first line,
    its runs, its session with the new offset; and which count it adds to (2: new session, 3:
    updated; None: nothing but the offset changed, its events are not written)."""
    if not b.events and not b.touched and prev is not None:
        state = {**prev.context.get(STATE_KEY, {}), "offset": end, "size": st.st_size,
                 "mtime_ns": st.st_mtime_ns}
        return [[prev.replace(context={**prev.context, STATE_KEY: state})]], None
    upserts: list[list] = []
    runs = b.runs()
    pending_state = dict(prev.context.get(STATE_KEY, {})) if prev is not None else {"source": b.source}
    session = b.session(prev, pending_state or {"source": b.source})
    if prev is None:
        upserts.append([session])
    state = _final_state(b, end, st)
    if runs:
        upserts.append(runs)
    upserts.append([session.replace(context={**session.context, STATE_KEY: state})])
    return upserts, 2 if prev is None else 3


def _write(store: Any, b: SessionBuilder, prev: Session | None, end: int, st: os.stat_result,
           report: ImportReport) -> None:
    """Session first (with the new offset only after the events and runs are written: an
    interrupted import re-reads the lines instead of losing them), then events, then runs."""
    if not b.events and not b.touched and prev is not None:
        state = {**prev.context.get(STATE_KEY, {}), "offset": end, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        store.save_session(prev.replace(context={**prev.context, STATE_KEY: state}))
        return
    runs = b.runs()
    pending_state = dict(prev.context.get(STATE_KEY, {})) if prev is not None else {"source": b.source}
    session = b.session(prev, pending_state or {"source": b.source})
    if prev is None:
        store.save_session(session)
    events = b.events
    # the builder's events are fresh and held by nobody else: numbered in place instead of copied
    # (as the event pipeline does); a store without the hook gets the public method
    from ..persistence.pipeline import _unshared_appender

    append = _unshared_appender(store, "_append_events_unshared", "append_events") or store.append_events
    for i in range(0, len(events), 5000):
        append(events[i:i + 5000])
    saver = getattr(store, "save_runs", None)
    if callable(saver):
        saver(runs)
    else:
        for r in runs:
            store.save_run(r)
    state = _final_state(b, end, st)
    store.save_session(session.replace(context={**session.context, STATE_KEY: state}))
    report.events += len(events)
    report.runs += b.new_runs
    if prev is None:
        report.sessions_new += 1
    else:
        report.sessions_updated += 1


def _size(p: Path) -> int:
    try:
        return os.stat(p).st_size
    except OSError:
        return 0


def _loads() -> Callable[[bytes], Any]:
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover - orjson is a core dependency
        return json.loads


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(enabled: bool, total: int, source: str) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=total, unit="B", unit_scale=True, desc=f"asm import {source}", leave=False, mininterval=0.2)
