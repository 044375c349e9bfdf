"""The document side of LocalStore: ``store.json`` and the upgrade from format 1, sessions, runs
and artifact records (``db/*.jsonl`` through ``DocLog``, ``db/artifacts.json`` through TinyDB), all
written under ``db.lock``. ``LocalDocuments`` is a base class of ``LocalStore`` (``local.py``), which
adds the event logs; docs/store-format.md describes the files.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.errors import AsmError
from ..core.run import Run
from ..core.session import Session
from . import _codec
from ._base import StoreBase, check_session, filter_runs, filter_sessions, interrupted_runs, pick_active_run
from ._doclog import DocLog
from ._atomic import write_atomic as _write_atomic
from ._tinydb import TinyTables

log = logging.getLogger("asm_nb.stores.local")

STORE_FORMAT = "asm-local"
STORE_VERSION = 2


class LocalDocuments(StoreBase):
    """Sessions, runs and artifact records of a LocalStore, and its layout (see the module doc).
    The attributes are set by ``LocalStore.__init__``."""

    root: Path
    _events_dir: Path
    _legacy: bool
    _closed: bool
    _reaped_at: float
    _tables: TinyTables
    _sessions: DocLog
    _runs: DocLog
    _reap_due: bool  # runs of dead owners not yet marked since the store was opened

    # -- layout -------------------------------------------------------------------------------
    def _open_layout(self) -> None:
        created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        if created:  # a store made beside a notebook stays out of git (docs/stores.md, LocalStore)
            (self.root / ".gitignore").write_text("# made by asm_nb: a run store, not source\n*\n")
        marker = self.root / "store.json"
        if marker.exists():
            try:
                info = _codec.loads(marker.read_bytes())
            except ValueError as exc:
                raise AsmError("storage_error", f"{marker} is not valid JSON: {exc}") from None
            fmt = info.get("format") if isinstance(info, dict) else None
            version = info.get("version") if isinstance(info, dict) else None
            if fmt != STORE_FORMAT:
                raise AsmError("storage_error", f"{self.root} is not a LocalStore ({marker} says format {fmt!r})")
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise AsmError("storage_error", f"{marker} has an invalid version: {version!r}")
            self._legacy = version < STORE_VERSION
            if version > STORE_VERSION:
                raise AsmError("migration_required",
                               f"LocalStore at {self.root} has format version {version}; this asm_nb reads "
                               f"version {STORE_VERSION}. Upgrade asm_nb to open it.",
                               details={"found": version, "supported": STORE_VERSION})
        else:
            self._legacy = False
            tmp = marker.with_name(f".store.json.{os.getpid()}.tmp")
            tmp.write_bytes(_codec.dumps({"format": STORE_FORMAT, "version": STORE_VERSION}) + b"\n")
            os.replace(tmp, marker)
        self._events_dir.mkdir(exist_ok=True)
        (self.root / "db").mkdir(exist_ok=True)

    def _upgrade_v1(self) -> None:
        """Version 1 → 2 in place, under ``db.lock``: the TinyDB ``db/sessions.json`` and
        ``db/runs.json`` become ``db/sessions.jsonl`` and ``db/runs.jsonl`` (one line per row), then
        ``store.json`` says version 2, then the old files go. A crash before the marker is written
        leaves version 1 intact (the next open redoes the upgrade)."""
        marker = self.root / "store.json"
        with self._tables.lock:
            self._tables.file_lock.acquire()
            try:
                info = _codec.loads(marker.read_bytes())
                if isinstance(info, dict) and isinstance(info.get("version"), int) \
                        and info["version"] >= STORE_VERSION:
                    return  # another process upgraded it meanwhile
                for name in ("sessions", "runs"):
                    old = self.root / "db" / f"{name}.json"
                    rows: dict = {}
                    if old.exists():
                        raw = old.read_bytes()
                        try:
                            data = _codec.loads(raw) if raw.strip() else {}
                        except ValueError as exc:
                            raise AsmError("storage_error", f"cannot upgrade {old}: {exc}") from None
                        rows = data.get(name, {}) if isinstance(data, dict) else {}
                    lines = [_codec.dumps({**doc, "id": doc.get("id") or key}) + b"\n"
                             for key, doc in rows.items() if isinstance(doc, dict)]
                    _write_atomic(self.root / "db" / f"{name}.jsonl", b"".join(lines), fsync=True)
                _write_atomic(marker, _codec.dumps({"format": STORE_FORMAT, "version": STORE_VERSION}) + b"\n",
                              fsync=True)
                for name in ("sessions", "runs"):
                    try:
                        os.unlink(self.root / "db" / f"{name}.json")
                    except FileNotFoundError:
                        pass
                log.info("LocalStore at %s upgraded from format version 1 to %d", self.root, STORE_VERSION)
            finally:
                self._tables.file_lock.release()
        self._legacy = False

    # -- sessions ---------------------------------------------------------------------------------
    @contextmanager
    def _db(self, sessions: bool = True, runs: bool = True):
        """A write of the document tables: ``db.lock`` held, the tables it touches caught up (torn
        tails cut)."""
        with self._tables.lock:
            self._tables.file_lock.acquire()
            try:
                if sessions:
                    self._sessions.sync(owner=True)
                if runs:
                    self._runs.sync(owner=True)
                yield
            finally:
                self._tables.file_lock.release()

    def _dtx(self, fn, what: str, sessions: bool = True, runs: bool = True) -> Any:
        try:
            with self._db(sessions, runs):
                return fn()
        except AsmError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise AsmError("storage_error", f"{what} failed: {exc!r}") from exc

    def save_session(self, session: Session) -> None:
        """Upsert by id (one line appended to ``db/sessions.jsonl`` under ``db.lock``)."""
        check_session(session)
        self._check_open()
        doc = session.to_dict()
        self._dtx(lambda: self._sessions.append([doc]), "save_session", runs=False)

    def get_session(self, session_id: str) -> Session:
        s = None
        if isinstance(session_id, str):
            self._sessions.sync()
            s = self._sessions.get(session_id)
        if s is None:
            raise AsmError("session_not_found", f"Session not found: {session_id}")
        return s

    def get_or_create_named_session(self, name: str, session: Session) -> tuple[Session, bool]:
        """``(the newest session whose metadata name is name, False)``, or ``session`` saved and
        ``True`` when there is none, atomically across processes (under ``db.lock``)."""
        check_session(session)
        self._check_open()

        def run() -> tuple[Session, bool]:
            ids = self._sessions.groups.get(name)
            if ids:
                found = self._sessions.get_many(sorted(ids))
                if found:
                    return max(found, key=lambda x: (x.created_at, x.id)), False
            self._sessions.append([session.to_dict()])
            return session, True

        return self._dtx(run, "get_or_create_named_session", runs=False)

    def list_sessions(self, *, status: Any = None, agent_id: str | None = None, limit: int | None = None,
                      offset: int = 0) -> list[Session]:
        """All sessions (soft-deleted included) by ``created_at`` then id."""
        self._sessions.sync()
        rows = self._sessions.all()
        return filter_sessions(rows, status=status, agent_id=agent_id, limit=limit, offset=offset)

    # -- artifact records (used by the artifact registry) ------------------------------------
    def save_artifact_record(self, record: dict) -> None:
        """Upsert an artifact metadata record (a dict with a string ``id``) in ``db/artifacts.json``."""
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
            raise AsmError("validation_error", "artifact record must be a dict with a non-empty string id")
        self._check_open()
        from ..core.serialization import to_jsonable

        doc = to_jsonable(record)
        self._tx(lambda t: t["artifacts"].update(lambda rows: _put(rows, record["id"], doc)), "save_artifact_record")

    def list_artifact_records(self, session_id: str | None = None) -> list[dict]:
        """Artifact records (all, or of one session), by ``created_at`` then id; copies."""
        with self._tables.lock:
            rows = [dict(r) for r in self._tables["artifacts"].objects().values()
                    if session_id is None or r.get("session_id") == session_id]
        rows.sort(key=lambda r: (str(r.get("created_at") or ""), str(r.get("id"))))
        return rows

    def delete_artifact_record(self, record_id: str) -> None:
        """Remove an artifact record (idempotent). Blobs are not touched."""
        self._check_open()
        self._tx(lambda t: t["artifacts"].update(lambda rows: rows.pop(record_id, None) is not None),
                 "delete_artifact_record")

    # -- runs -------------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        if self._reap_due:
            self._reap_interrupted(force=True)
        r = None
        if isinstance(run_id, str):
            self._runs.sync()
            r = self._runs.get(run_id)
        if r is None:
            raise AsmError("run_not_found", f"Run not found: {run_id}")
        return r

    def list_runs(self, session_id: str | None, *, status: Any = None, limit: int | None = None) -> list[Run]:
        """Runs of one session (``None``: of every session) by ``started_at`` then id. Runs whose
        owner process is gone are marked interrupted first."""
        self._reap_interrupted()
        self._runs.sync()
        if session_id is None:
            rows = self._runs.all()
        else:
            rows = self._runs.get_many(sorted(self._runs.groups.get(session_id, ())))
        return filter_runs(rows, status=status, limit=limit)

    def get_active_run(self, session_id: str) -> Run | None:
        if self._reap_due:
            self._reap_interrupted(force=True)
        self._runs.sync()
        with self._runs.lock:
            ids = [rid for rid in self._runs.groups.get(session_id, ())
                   if self._runs.index[rid][2][1] == "running"]
        return pick_active_run(self._runs.get_many(ids))

    def _reap_interrupted(self, force: bool = False) -> None:
        """Mark runs whose owner process is gone as failed (``interrupted``); at most once a second
        unless ``force``."""
        now = time.monotonic()
        if self._reap_due:
            force = True
        if self._closed or (not force and now - self._reaped_at < 1.0):
            return
        self._reaped_at = now
        self._reap_due = False
        self._runs.sync()
        candidates = [rid for rid, (_o, _l, m) in list(self._runs.index.items()) if m[1] in ("pending", "running")]
        if not candidates:
            return
        interrupted_runs(self, self._runs.get_many(candidates))

    # -- run summaries (frames read these instead of the run documents) ------------------------------
    def run_summaries(self) -> tuple[bytes, list[bytes]] | None:
        """Summary lines of every run document line, in order (docs/store-format.md, run
        summaries): ``(lines of db/runs.summary.jsonl after its header, lines for the document
        lines it does not cover yet)``. The last line of an id wins; ``"deleted": true`` removes
        it. A missing or stale summary is rebuilt first (under ``db.lock``); None when that is not
        possible (a closed store), and the caller lists the runs instead. Runs of dead owners
        are not marked here: a caller seeing ``pending``/``running`` rows lists the runs."""
        summary = self._runs.summary
        if summary is None:
            return None
        snap = summary.read()
        if snap is None and not self._closed:
            try:
                with self._db(sessions=False):
                    if self._runs.ino is None:  # no run was ever written
                        return b"", []
                    summary.append(self._runs.ino, self._runs.offset, [], None, [])
            except OSError:
                return None
            snap = summary.read()
        return snap

    def runs_at(self, places: list[tuple[str, int, int]]) -> dict[str, Run]:
        """``{id: Run}`` for ``(id, offset, length)`` places named by run summaries (``o``, ``n``):
        each document is read at its place (no index of the table is built); one that is not there
        any more (the table was compacted meanwhile) is looked up by id."""
        out: dict[str, Run] = {}
        missed: list[str] = []
        try:
            with open(self._runs.path, "rb") as f:
                fd = f.fileno()
                for rid, off, length in places:
                    try:
                        doc = _codec.loads(os.pread(fd, length, off))
                        run = Run.from_dict(doc) if isinstance(doc, dict) and doc.get("id") == rid else None
                    except (ValueError, AsmError, TypeError):
                        run = None
                    if run is None:
                        missed.append(rid)
                    else:
                        out[rid] = run
        except FileNotFoundError:
            missed = [rid for rid, _o, _n in places]
        for rid in missed:
            try:
                out[rid] = self.get_run(rid)
            except AsmError:
                pass
        return out

    def _tx(self, fn, what: str) -> Any:
        try:
            with self._tables.transaction() as t:
                return fn(t)
        except AsmError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise AsmError("storage_error", f"{what} failed: {exc!r}") from exc


_TERMINAL_RUN = frozenset({"completed", "failed", "cancelled"})


def _session_meta(doc: dict) -> tuple:
    md = doc.get("metadata")
    name = md.get("name") if isinstance(md, dict) else None
    return (name if isinstance(name, str) and name else None,)


def _run_meta(doc: dict) -> tuple:
    return (doc.get("session_id"), doc.get("status"))


def _put(rows: dict, doc_id: str, doc: dict) -> bool:
    rows[doc_id] = doc
    return True


def _drop(rows: dict, pred) -> bool:
    doomed = [k for k, d in rows.items() if pred(d)]
    for k in doomed:
        del rows[k]
    return bool(doomed)
