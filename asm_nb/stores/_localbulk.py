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
from typing import TYPE_CHECKING, Any, Sequence

from ..core.errors import AsmError
from ..core.events import Event
from ..core.run import Run
from ..core.serialization import format_datetime, to_jsonable
from ..core.session import Session
from . import _codec
from ._base import check_events, check_run, check_session, set_sequence_in_place, stamp_owner

if TYPE_CHECKING:  # pragma: no cover
    from ._sessionlog import _SessionLog
    from .local import LocalStore

__all__ = ["write_batch", "write_encoded"]


def write_batch(store: "LocalStore", events: Sequence[Event], upserts: Sequence[Sequence[Run] | Sequence[Session]]) -> None:
    """See the module doc and ``ports.BatchWriter``."""
    store._check_open()
    events = check_events(events)
    groups = _groups(upserts)
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
    _write_groups(store, groups)


def write_encoded(store: "LocalStore", logs: Sequence[tuple[str, bytes, int, datetime | None]],
                  upserts: Sequence[Sequence[Run] | Sequence[Session]]) -> None:
    """``write_batch`` with the events already encoded (a history import's worker processes,
    ``asm_nb/history/_workers.py``): ``logs`` holds, per file in order, ``(session id, its event
    lines numbered from 1, how many, the newest timestamp)``, each made by ``_codec.event_lines``
    from events ``check_events`` accepts. The lines get the numbers ``write_batch`` would give
    (``_codec.renumber`` when the log already has lines or a session has two files); the bytes
    written are those of ``write_batch``."""
    store._check_open()
    groups = _groups(upserts)
    by_sid: dict[str, list[tuple[bytes, int, datetime | None]]] = {}
    for sid, blob, n, newest in logs:
        if n:
            by_sid.setdefault(sid, []).append((blob, n, newest))
    for sid in sorted(by_sid):
        _write_log_encoded(store, store._log(sid), by_sid[sid])
    if by_sid:
        store._notify()
    _write_groups(store, groups)


def _groups(upserts: Sequence[Sequence[Run] | Sequence[Session]]) -> list[tuple[bool, list, list[dict]]]:
    groups: list[tuple[bool, list, list[dict]]] = []  # (is runs, objects, documents)
    for group in upserts:
        items = list(group)
        if not items:
            continue
        if all(isinstance(x, Run) for x in items):
            runs = [check_run(r) for r in items]
            groups.append((True, runs, [stamp_owner(run_doc(r)) for r in runs]))
        else:
            sessions = [check_session(x) for x in items]
            groups.append((False, sessions, [x.to_dict() for x in sessions]))
    return groups


def _write_groups(store: "LocalStore", groups: list[tuple[bool, list, list[dict]]]) -> None:
    if not groups:
        return

    def tx() -> None:
        for is_runs, objs, docs in groups:
            if is_runs:
                store._runs.append(docs, objs)
            else:
                store._sessions.append(docs)

    store._dtx(tx, "write_batch", sessions=any(not g[0] for g in groups), runs=any(g[0] for g in groups))


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(v: Any) -> bool:
    """Whether ``v`` is plain JSON already (exact ``dict`` with ``str`` keys, ``list``, ``str``,
    ``int``, ``float``, ``bool``, None, nested): ``to_jsonable(v)`` is then an equal copy of the
    same types, which encodes to the same bytes."""
    t = type(v)
    if t is dict:
        for k, x in v.items():
            if type(k) is not str or (type(x) not in _SCALARS and not _plain(x)):
                return False
        return True
    if t is list:
        for x in v:
            if type(x) not in _SCALARS and not _plain(x):
                return False
        return True
    return t in _SCALARS


def _j(v: Any) -> Any:
    return v if type(v) in _SCALARS or _plain(v) else to_jsonable(v)


def run_doc(r: Run) -> dict:
    """``r.to_dict()`` (equal, same key order, same bytes once encoded) without copying the plain
    values: the document is only encoded and indexed here, never handed out. (~40% of the cost
    of ``to_dict`` on imported runs; a test compares the two on every field shape.)"""
    return {
        "id": r.id, "session_id": r.session_id, "status": r.status.value, "input": _j(r.input),
        "output": _j(r.output), "error": _j(r.error), "metadata": _j(r.metadata), "turn_count": r.turn_count,
        "token_usage": _j(r.token_usage), "started_at": format_datetime(r.started_at),
        "ended_at": format_datetime(r.ended_at), "provider": r.provider, "cost_usd": r.cost_usd,
        "provider_metadata": _j(r.provider_metadata),
    }


def _write_log(store: "LocalStore", slog: "_SessionLog", events: list[Event]) -> None:
    """Number ``events`` (one session's, in order) after the log's highest number and write them
    with one ``os.write`` under the session's lock (a live run's buffered lines go out first)."""
    with slog.lock:
        try:
            slog.ensure_owned()  # the OS lock; what other processes appended is read, a torn tail cut
            slog.write_buffer()
            last = slog.last_seq
            first = last if last >= slog.meta_seq else slog.meta_seq
            try:
                lines, size = _codec.event_lines(events, first)
            except (TypeError, ValueError) as exc:
                raise AsmError("storage_error", f"Failed to append events: {exc!r}") from exc
            slog.buf = lines
            slog.buf_bytes = size
            slog.write_buffer()  # one os.write; on a failure the file is cut back and nothing is numbered
            seq = first
            setseq = set_sequence_in_place
            newest: datetime | None = None
            for e in events:  # numbered in place once written (fresh events: nobody else holds them)
                seq += 1
                setseq(e, seq)
                ts = e.timestamp
                if newest is None or ts > newest:
                    newest = ts
            slog.last_seq = seq
            # the parsed cache does not hold these lines: reads reaching them parse the file
            slog.trim()
            if newest is not None and (slog.trim_ts is None or newest > slog.trim_ts):
                slog.trim_ts = newest
        finally:
            store._release(slog)


def _write_log_encoded(store: "LocalStore", slog: "_SessionLog", chunks: list[tuple[bytes, int, datetime | None]]) -> None:
    """``_write_log`` for lines encoded already (numbered from 1 in each chunk)."""
    with slog.lock:
        try:
            slog.ensure_owned()
            slog.write_buffer()
            last = slog.last_seq
            first = last if last >= slog.meta_seq else slog.meta_seq
            if first == 0 and len(chunks) == 1:
                lines, size = [chunks[0][0]], len(chunks[0][0])
            else:
                lines, size = _codec.renumber([c[0] for c in chunks], first)
            slog.buf = lines
            slog.buf_bytes = size
            slog.write_buffer()
            slog.last_seq = first + sum(c[1] for c in chunks)
            slog.trim()
            for _, _, newest in chunks:
                if newest is not None and (slog.trim_ts is None or newest > slog.trim_ts):
                    slog.trim_ts = newest
        finally:
            store._release(slog)
