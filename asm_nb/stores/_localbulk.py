"""``LocalStore.write_batch``: the bulk write path of a history import (``asm_nb/history``).

A batch is fresh events (ids new to the store, held by nobody else), then groups of run or
session upserts. Per batch: each session's log is locked once (its ``.lock``, then caught up with
the file and a torn tail cut, as any append does), its numbers are assigned in one go after the
highest one on disk or in ``meta.json``, each line is built whole with its number
(``_codec.event_line``) and the session's lines go out with one ``os.write``; then ``db.lock`` is
taken once and each group is one ``DocLog.append`` to ``runs.jsonl`` (run summaries and index
checkpoints kept as every save keeps them) or ``sessions.jsonl``. The bytes are exactly what
``append_events`` / ``save_runs`` / ``save_session`` write (docs/store-format.md); only the
number of lock rounds and writes differs.

Order on disk: every event of the batch before any upsert, the groups in the given order (an
import saves each file's offset in its session, last: a session line never names lines whose
events are not written).

The written events are not kept parsed in memory: the session's log is left "trimmed" (reads
that reach into it parse the file, ``_sessionlog.py``), so an import of any size holds no cache.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Sequence

from ..core.errors import AsmError
from ..core.events import Event
from ..core.run import Run
from ..core.session import Session
from . import _codec
from ._base import check_events, check_run, check_session, set_sequence_in_place, stamp_owner

if TYPE_CHECKING:  # pragma: no cover
    from ._sessionlog import _SessionLog
    from .local import LocalStore

__all__ = ["write_batch"]


def write_batch(store: "LocalStore", events: Sequence[Event], upserts: Sequence[Sequence[Run] | Sequence[Session]]) -> None:
    """See the module doc and ``ports.BatchWriter``."""
    store._check_open()
    events = check_events(events)
    groups: list[tuple[bool, list, list[dict]]] = []  # (is runs, objects, documents)
    for group in upserts:
        items = list(group)
        if not items:
            continue
        if all(isinstance(x, Run) for x in items):
            for r in items:
                check_run(r)
            groups.append((True, items, [stamp_owner(r.to_dict()) for r in items]))
        else:
            for x in items:
                check_session(x)
            groups.append((False, items, [x.to_dict() for x in items]))
    by_sid: dict[str, list[Event]] = {}
    for e in events:
        group = by_sid.get(e.session_id)
        if group is None:
            group = by_sid[e.session_id] = []
        group.append(e)
    for sid in sorted(by_sid):
        _write_log(store, store._log(sid), by_sid[sid])
    if by_sid:
        store._notify()
    if not groups:
        return

    def tx() -> None:
        for is_runs, objs, docs in groups:
            if is_runs:
                store._runs.append(docs, objs)
            else:
                store._sessions.append(docs)

    store._dtx(tx, "write_batch", sessions=any(not g[0] for g in groups), runs=any(g[0] for g in groups))


def _write_log(store: "LocalStore", slog: "_SessionLog", events: list[Event]) -> None:
    """Number ``events`` (one session's, in order) after the log's highest number and write them
    with one ``os.write`` under the session's lock (a live run's buffered lines go out first)."""
    with slog.lock:
        try:
            slog.ensure_owned()  # the OS lock; what other processes appended is read, a torn tail cut
            slog.write_buffer()
            last = slog.last_seq
            seq = first = last if last >= slog.meta_seq else slog.meta_seq
            line = _codec.event_line
            lines = []
            add = lines.append
            size = 0
            newest: datetime | None = None
            try:
                for e in events:
                    seq += 1
                    ln = line(e, seq)
                    add(ln)
                    size += len(ln)
                    ts = e.timestamp
                    if newest is None or ts > newest:
                        newest = ts
            except (TypeError, ValueError) as exc:
                raise AsmError("storage_error", f"Failed to append events: {exc!r}") from exc
            slog.buf = lines
            slog.buf_bytes = size
            slog.write_buffer()  # one os.write; on a failure the file is cut back and nothing is numbered
            seq = first
            setseq = set_sequence_in_place
            for e in events:  # numbered in place once written (fresh events: nobody else holds them)
                seq += 1
                setseq(e, seq)
            slog.last_seq = seq
            # the parsed cache does not hold these lines: reads reaching them parse the file
            slog.trim()
            if newest is not None and (slog.trim_ts is None or newest > slog.trim_ts):
                slog.trim_ts = newest
        finally:
            store._release(slog)
