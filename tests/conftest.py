"""Shared fixtures: every test gets its own ASM_HOME and a clean default-store cache, and no test
reads a file outside the repository (see ``_ReadGuard``)."""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "providers"


class _ReadGuard:
    """Refuses opening or listing a path outside the repository folder but beside it: under the
    repository's top-level folder (``/work`` for ``/work/wt/x``, ``/home`` for ``/home/me/src/x``)
    and not inside the repository. The repository must stand alone, so a test that reads
    a sibling folder (``../team-material/...``) or another checkout would pass here and fail in a fresh clone. System folders
    (``/usr``, ``/etc``, ``/proc``, ...) are not beside it; the temp dir and the Python prefixes stay
    allowed (tests write there), and so do the home folder's dot-folders (``~/.jupyter``, ...).

    Installed as an audit hook (``sys.addaudithook``) for ``open``, ``os.listdir`` and ``os.scandir``;
    a refused path raises ``PermissionError`` and is recorded, so the test fails even if it swallows
    the error. Subprocesses (kernels, fake CLIs) are not watched."""

    def __init__(self, repo: pathlib.Path, allowed: tuple[str, ...], home: str | None = None) -> None:
        repo_s = str(repo).rstrip("/")
        self.repo = repo_s + "/"
        parts = repo_s.split("/")
        self.top = "/" + parts[1] + "/" if len(parts) > 2 else ""  # repository at /x: nothing beside it
        prefixes = [a.rstrip("/") + "/" for a in allowed if a]
        if home and self.repo.startswith(home.rstrip("/") + "/"):
            prefixes.append(home.rstrip("/") + "/.")  # the repo is in home: only its dot-folders
        elif home:
            prefixes.append(home.rstrip("/") + "/")
        self.allowed = tuple(prefixes)
        self.violations: list[str] = []

    def outside(self, path: object) -> bool:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        elif isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str) or not self.top:
            return False
        if not path.startswith("/"):
            path = os.path.abspath(path)
        full = os.path.normpath(path) + "/"
        if not full.startswith(self.top) or full.startswith(self.repo):
            return False
        return not full.startswith(self.allowed)

    def __call__(self, event: str, args: tuple) -> None:
        if event != "open" and args and _listed_on_sys_path(args[0]):
            return  # importlib.metadata lists every sys.path folder (an editable install's too)
        if args and self.outside(args[0]):
            self.violations.append(f"{event} {args[0]}")
            raise PermissionError(f"test read outside the repository: {args[0]} (copy it under tests/)")


def _listed_on_sys_path(path: object) -> bool:
    try:
        p = os.path.normpath(os.fsdecode(path)) if isinstance(path, (str, bytes, os.PathLike)) else None
    except TypeError:
        return False
    return p is not None and any(p == os.path.normpath(e) for e in sys.path if e)


def _allowed_roots() -> tuple[str, ...]:
    roots = {tempfile.gettempdir(), sys.prefix, sys.base_prefix, sys.exec_prefix}
    return tuple(os.path.realpath(r) for r in roots if r)


_active_guard: list[_ReadGuard] = [_ReadGuard(REPO, _allowed_roots(), os.path.realpath(os.path.expanduser("~")))]


def _audit(event: str, args: tuple, _active: list[_ReadGuard] = _active_guard) -> None:
    if event in ("open", "os.listdir", "os.scandir"):
        _active[0](event, args)


sys.addaudithook(_audit)


def _interruptible() -> None:
    """Undo an inherited "ignore SIGINT". A test run started as a background job of a
    non-interactive shell (``cmd &`` in a script, ``nohup``) ignores SIGINT, Python keeps that, and
    every child inherits it: ``sleep`` then outlives the SIGINT a cancel sends first, and the
    process tests (which check the child died of that SIGINT) fail for a reason that is not the
    product's (``timeout CMD`` happens to reset it; a plain background job does not)."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_interruptible()


@pytest.fixture(autouse=True)
def _no_reads_outside_the_repo():
    guard = _active_guard[0]
    before = len(guard.violations)
    yield
    if _active_guard[0] is guard and len(guard.violations) > before:
        pytest.fail("read outside the repository: " + "; ".join(guard.violations[before:]), pytrace=False)


@pytest.fixture
def read_guard():
    """``(guard class, active-guard slot)``: a test may put its own ``_ReadGuard`` in the slot; the
    repository's guard is put back afterwards."""
    saved = _active_guard[0]
    yield _ReadGuard, _active_guard
    _active_guard[0] = saved


@pytest.fixture(autouse=True)
def _fresh_once_per_process_warnings():
    """``UnpricedModelWarning`` is given once per (provider, model) per process: without a reset a
    test expecting it fails whenever an earlier test in the same worker priced that model."""
    try:
        from asm_nb.cost import calculator
    except Exception:  # pragma: no cover - collection of a broken tree
        yield
        return
    calculator._reset_warnings()
    yield


@pytest.fixture(autouse=True)
def _isolated_asm_home(tmp_path, monkeypatch):
    home = tmp_path / "asm_home"
    monkeypatch.setenv("ASM_HOME", str(home))
    try:
        from asm_nb import stores
    except Exception:  # pragma: no cover - collection of a broken tree
        yield home
        return
    stores._default_stores.clear()
    yield home
    for store in list(stores._default_stores.values()):
        try:
            store.close()
        except Exception:
            pass
    stores._default_stores.clear()


@pytest.fixture
def fixtures_dir() -> pathlib.Path:
    """``tests/fixtures/providers`` (recorded provider streams with manifests; see its README)."""
    if not FIXTURES.exists():
        pytest.fail(f"provider fixtures not found at {FIXTURES}")
    return FIXTURES


def pytest_sessionfinish(session, exitstatus):
    """Stop the throwaway PostgreSQL clusters this process started (tests/pg.py): a postmaster
    left running keeps its /tmp/asm-pg-* folder and memory after the tests end."""
    servers = getattr(sys.modules.get("_asm_test_pg_servers"), "servers", [])
    for srv in list(servers):
        try:
            srv.stop()
        except Exception:  # noqa: BLE001 - best effort; the next one still gets stopped
            pass
