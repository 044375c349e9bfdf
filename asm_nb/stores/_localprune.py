"""Pruning hooks of LocalStore's event logs (used by ``stores/_maintenance.py``): remove stored
events while numbering never goes back (``meta.json`` keeps the high-water mark), list and drop
sequence counters. Functions over a ``LocalStore``; its methods of the same names call them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable

from ..core.errors import AsmError
from . import _codec
from ._base import check_session_id
from ._atomic import write_atomic as _write_atomic
from ._sessionlog import decode_session_id

if TYPE_CHECKING:  # pragma: no cover
    from .local import LocalStore


def delete_events(store: "LocalStore", session_id: str, event_ids: Iterable[str]) -> int:
    """Remove stored events (pruning): the log is rewritten (temp file + ``os.replace``) under
    the session lock; when the newest event goes, ``meta.json`` keeps the high-water mark
    first, so numbering never goes back. Returns how many events were removed."""
    check_session_id(session_id)
    store._check_open()
    ids = set(event_ids)
    slog = store._log(session_id)
    with slog.lock:
        slog.ensure_owned()
        try:
            slog.write_buffer()
            slog.ensure_complete(owner=True)
            keep = [e for e in slog.events if e.id not in ids]
            removed = len(slog.events) - len(keep)
            if not removed:
                return 0
            newest = max(slog.last_seq, slog.meta_seq)
            if not keep or (keep[-1].sequence_number or 0) < newest:
                _write_atomic(slog.meta_path, _codec.dumps({"last_sequence": newest}) + b"\n")
                slog.meta_seq = newest
            kept_lines = []
            for line in slog.path.read_bytes()[:slog.offset].split(b"\n"):
                if not line:
                    continue
                try:
                    doc_id = _codec.loads(line).get("id")
                except (ValueError, AttributeError):
                    doc_id = None  # unreadable lines stay as they were (readers skip them)
                if doc_id not in ids:
                    kept_lines.append(line + b"\n")
            body = b"".join(kept_lines)
            _write_atomic(slog.path, body, fsync=slog.fsync)
            slog.events = keep
            slog.ids = {e.id: e for e in keep}
            slog.offset = len(body)
            slog.n_flushed = len(keep)
            slog.ino = os.stat(slog.path).st_ino
        except OSError as exc:
            raise AsmError("storage_error", f"delete_events failed: {exc!r}") from exc
        finally:
            store._release(slog)
    return removed


def sequence_counters(store: "LocalStore") -> dict[str, int]:
    """``session_id → highest sequence ever assigned`` for every session with a log or mark."""
    names = set()
    try:
        for name in os.listdir(store._events_dir):
            if name.endswith(".jsonl"):
                names.add(name[:-len(".jsonl")])
            elif name.endswith(".meta.json"):
                names.add(name[:-len(".meta.json")])
    except FileNotFoundError:
        pass
    sids = {decode_session_id(n) for n in names}
    with store._logs_lock:
        sids.update(sid for sid, slog in store._logs.items() if slog.last_seq or slog.meta_seq)
    out = {sid: store.get_latest_sequence(sid) for sid in sorted(sids)}
    return {sid: n for sid, n in out.items() if n}


def delete_sequence_counter(store: "LocalStore", session_id: str) -> None:
    """Forget the counter of a session that has no events left (no-op otherwise)."""
    check_session_id(session_id)
    store._check_open()
    slog = store._log(session_id)
    with slog.lock:
        slog.ensure_owned()
        try:
            slog.write_buffer()
            slog.ensure_complete(owner=True)
            if slog.events:
                return
            for p in (slog.meta_path, slog.path):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
            slog._reset()
        finally:
            slog.owned = False
            slog.flock.remove_and_release()
            with store._timer_cond:
                store._owned.discard(slog)
