"""A throwaway PostgreSQL cluster for tests and benchmarks (no ``test_`` prefix: not collected).

``server()`` starts one cluster per process (an xdist worker starts its own) on 127.0.0.1, a
free port, with its unix socket and data in a temp dir; it is stopped and removed at exit.
``server().new_database()`` returns the URL of a fresh database (``CREATE DATABASE … TEMPLATE``
of a migrated template, so each test is isolated and starts with the schema in place).

Running as root, the cluster runs as the ``postgres`` user (``runuser``), since ``initdb``
refuses root. Binaries: ``/usr/lib/postgresql/*/bin`` or ``initdb`` on PATH.

Test modules load this file by path (imports between test files do not work in importlib mode)::

    _pg = _load_pg()  # see tests/stores/conftest.py (which also gives the store tests ``pg_server``)

``require()`` is what fixtures call: in CI (env ``CI=true``) a cluster that cannot start FAILS
the test; elsewhere, missing binaries skip it with the reason.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import threading
import types
import time
import uuid

TEMPLATE = "asm_template"


def bindir() -> str | None:
    """Directory holding ``initdb`` and ``pg_ctl`` (newest Debian version first), or None."""
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0, reverse=True)
    if cands:
        return os.path.dirname(cands[0])
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _registry() -> list:
    """Every cluster this process started, across copies of this module (some tests load it by
    path under another name): tests/conftest.py stops them all when the session ends, because
    atexit hooks do not run in every worker shutdown path and a leaked postmaster outlives us."""
    mod = sys.modules.get("_asm_test_pg_servers")
    if mod is None:
        mod = types.ModuleType("_asm_test_pg_servers")
        mod.servers = []
        sys.modules["_asm_test_pg_servers"] = mod
    return mod.servers


class PgServer:
    """One running cluster. ``url(db)`` → SQLAlchemy URL; ``new_database()`` → URL of a fresh DB."""

    def __init__(self) -> None:
        bdir = bindir()
        if bdir is None:
            raise RuntimeError("PostgreSQL binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on "
                               "PATH); install them with scripts/install_postgres.sh")
        self.bindir = bdir
        self.tmp = tempfile.mkdtemp(prefix="asm-pg-")
        self.data = os.path.join(self.tmp, "data")
        self.sock = self.tmp
        self.port = 0  # picked when the postmaster starts
        self.log = os.path.join(self.tmp, "server.log")
        self.user_prefix: list[str] = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run the cluster as") from None
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            self.user_prefix = ["runuser", "-u", "postgres", "--"]
        self._lock = threading.Lock()
        self._owner = os.getpid()  # a forked child inherits atexit hooks: only the owner stops the cluster
        self._started = False
        self._ready: queue.Queue | None = None
        try:
            self._run([os.path.join(bdir, "initdb"), "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                       "--no-sync", "--locale=C"])
            self._start_postmaster()
            self._started = True
            _registry().append(self)
            self._make_template()
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)  # tests/conftest.py also stops every cluster at session end

    def _start_postmaster(self) -> None:
        """Start the cluster on a free port. The port is picked free and bound by the postmaster a
        moment later: another process (the other test worker) can take it meanwhile, and the
        postmaster then stops with "Address already in use"; it is started again on another port
        (a few times)."""
        for attempt in range(3):
            self.port = _free_port()
            opts = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                    "-c shared_buffers=32MB")
            if os.path.exists(self.log):
                os.remove(self.log)  # this attempt's messages only
            try:
                self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log, "-o", opts,
                           "-w", "-t", "30", "start"])
                return
            except RuntimeError as exc:
                if attempt == 2 or "Address already in use" not in str(exc):
                    raise

    def _run(self, cmd: list[str]) -> None:
        res = subprocess.run(self.user_prefix + cmd, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            tail = ""
            if os.path.exists(self.log):
                with open(self.log, errors="replace") as f:
                    tail = f.read()[-2000:]
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({res.returncode}): {res.stderr[-2000:]}{tail}")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    def _make_template(self) -> None:
        from asm_nb.stores.sql import migrate

        self._admin(f"CREATE DATABASE {TEMPLATE}")
        migrate(self.url(TEMPLATE))

    def _create(self, migrated: bool) -> str:
        name = "t_" + uuid.uuid4().hex[:16]
        with self._lock:
            self._admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {TEMPLATE}" if migrated else ""))
        return self.url(name)

    def new_database(self, migrated: bool = True) -> str:
        """URL of a new, empty database (with the SqlStore schema unless ``migrated=False``).
        Migrated ones are made a few ahead by a background thread (CREATE DATABASE takes
        ~0.1-0.3 s; the tests using them mostly wait on I/O meanwhile)."""
        if not migrated:
            return self._create(False)
        if self._ready is None:
            self._ready = queue.Queue(maxsize=2)
            threading.Thread(target=self._prefetch, name="asm-pg-prefetch", daemon=True).start()
        item = self._ready.get(timeout=60)
        if isinstance(item, BaseException):
            raise item
        return item

    def _prefetch(self) -> None:
        while self._started:
            try:
                item: object = self._create(True)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                item = exc
            while self._started:
                try:
                    self._ready.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def stop(self) -> None:
        if os.getpid() != self._owner:
            return
        if self._started:
            self._started = False
            try:
                self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
            self._kill_postmaster()  # pg_ctl failed or timed out under load: never leave a server behind
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        """SIGKILL the cluster's postmaster (from ``postmaster.pid``) if it still runs; its backends
        exit when it is gone."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                pid = int(f.readline().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)


_SERVER: PgServer | None = None
_ERROR: BaseException | None = None
_LOCK = threading.Lock()


def server() -> PgServer:
    """The process's cluster (started on first use; a failed start is remembered and re-raised)."""
    global _SERVER, _ERROR
    with _LOCK:
        if _SERVER is None and _ERROR is None:
            try:
                _SERVER = PgServer()
            except BaseException as exc:  # noqa: BLE001
                _ERROR = exc
        if _ERROR is not None:
            raise _ERROR
        return _SERVER


def require() -> PgServer:
    """For fixtures: the cluster, or FAIL (in CI) / skip (elsewhere, binaries absent)."""
    import pytest

    if bindir() is None and not in_ci():
        pytest.skip("PostgreSQL binaries not installed (run scripts/install_postgres.sh); CI runs these tests")
    try:
        return server()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"could not start the test PostgreSQL cluster: {exc}", pytrace=False)
