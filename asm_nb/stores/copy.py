"""``copy_store(src, dst)``: copy sessions, runs, events and artifact records between any two
stores (``asm copy SRC_URL DST_URL``) — e.g. push a laptop's LocalStore to the team's PostgreSQL.

Idempotent: sessions and runs are upserts; events keep their ids and are appended in sequence
order, skipping ids the destination already holds, so re-running copies nothing twice. The
destination assigns sequence numbers; copying in order makes them match the source's as long as
the destination's session started empty (or from an earlier copy). Artifact records are copied
when both stores keep them; artifact bytes when ``src_artifacts``/``dst_artifacts`` are given.
A tqdm progress bar (stderr) counts events.
"""

from __future__ import annotations

from typing import Any, Callable

from ..core.errors import AsmError

__all__ = ["copy_store"]


def _open(target: Any) -> tuple[Any, bool]:
    from . import open_store

    if isinstance(target, str) or target is None or hasattr(target, "__fspath__"):
        return open_store(target), True
    return open_store(target), False


def _session_ids(store: Any) -> list[str]:
    lister: Callable[..., Any] | None = getattr(store, "list_session_ids", None)
    if callable(lister):
        return list(lister())
    ids = {s.id for s in store.list_sessions()} | {r.session_id for r in store.list_runs(None)}
    return sorted(ids)


def copy_store(src: Any, dst: Any, *, progress: bool = True, batch_size: int = 1000,
               src_artifacts: Any = None, dst_artifacts: Any = None) -> dict[str, int]:
    """Copy everything in ``src`` into ``dst`` (stores or anything ``open_store`` accepts).

    Returns counts: ``sessions``, ``runs``, ``events_copied``, ``events_skipped`` (already in
    ``dst``), ``artifacts``. Stores opened here from URLs/paths are closed afterwards.

    >>> copy_store("memory://", "memory://", progress=False)["events_copied"]
    0
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise AsmError("validation_error", "batch_size must be a positive integer")
    src_store, close_src = _open(src)
    try:
        dst_store, close_dst = _open(dst)
    except BaseException:
        if close_src:
            src_store.close()
        raise
    if src_store is dst_store:
        raise AsmError("validation_error", "copy_store: source and destination are the same store")
    counts = {"sessions": 0, "runs": 0, "events_copied": 0, "events_skipped": 0, "artifacts": 0}
    try:
        from tqdm.auto import tqdm

        sids = _session_ids(src_store)
        bar = tqdm(total=None, unit="ev", desc="asm copy", disable=not progress, leave=False)
        try:
            for s in src_store.list_sessions():
                dst_store.save_session(s)
                counts["sessions"] += 1
            for sid in sids:
                for run in src_store.list_runs(sid):
                    dst_store.save_run(run)
                    counts["runs"] += 1
                _copy_events(src_store, dst_store, sid, batch_size, counts, bar)
            counts["artifacts"] = _copy_artifacts(src_store, dst_store, src_artifacts, dst_artifacts)
            dst_store.flush()
        finally:
            bar.close()
    finally:
        try:
            if close_dst:
                dst_store.close()
        finally:
            if close_src:
                src_store.close()
    return counts


def _copy_events(src: Any, dst: Any, sid: str, batch_size: int, counts: dict[str, int], bar: Any) -> None:
    have: set[str] = set()
    after = 0
    while True:  # ids the destination already holds (paged: bounded memory per page)
        page = dst.get_events(sid, after=after, limit=batch_size)
        if not page:
            break
        have.update(e.id for e in page)
        after = page[-1].sequence_number
    after = 0
    while True:
        page = src.get_events(sid, after=after, limit=batch_size)
        if not page:
            break
        after = page[-1].sequence_number
        todo = [e for e in page if e.id not in have]
        if todo:
            dst.append_events(todo)
        counts["events_copied"] += len(todo)
        counts["events_skipped"] += len(page) - len(todo)
        bar.update(len(page))


def _copy_artifacts(src: Any, dst: Any, src_artifacts: Any, dst_artifacts: Any) -> int:
    lister: Callable[..., Any] | None = getattr(src, "list_artifact_records", None)
    saver = getattr(dst, "save_artifact_record", None)
    if not callable(lister) or not callable(saver):
        return 0
    n = 0
    for rec in lister():
        if src_artifacts is not None and dst_artifacts is not None and rec.get("key") and not rec.get("deleted_at"):
            dst_artifacts.put(rec["key"], src_artifacts.get(rec["key"]))
        saver(dict(rec))
        n += 1
    return n
