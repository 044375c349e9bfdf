"""Workers kept between imports: an import that finishes keeps its idle workers for the next
import in this process (Claude Code then Codex in a notebook), which sends its own configuration;
a kept worker serves only an import that would start it the same way, is ended once unused for
``SPARE_IDLE_S`` and never outlives a failed import; a forked child leaves it alone."""

from __future__ import annotations

import os
import time
import warnings

import pytest

from asm_nb import config
from asm_nb.history import HistoryWarning, _workers, import_history
from asm_nb.stores import open_store
from asm_nb.testing.history_logs import write_claude_code_logs, write_codex_logs

pytestmark = pytest.mark.skipif(os.name != "posix", reason="worker processes are used on POSIX only")


def _import(source, store, root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HistoryWarning)
        return import_history(source, store, path=root, **kw).to_dict()


def _pids(pool) -> list[int]:
    return [w.proc.pid for w in pool.workers]


def _bytes(root) -> dict:
    return {str(p.relative_to(root)): len(p.read_bytes()) for p in sorted(root.rglob("*.jsonl"))}


def test_the_next_import_uses_the_kept_worker_and_stores_what_one_process_stores(tmp_path, pools, monkeypatch):
    cc = write_claude_code_logs(tmp_path / "cc", lines=1500, sessions=6)
    cx = write_codex_logs(tmp_path / "cx", lines=1500, sessions=6)
    started: list[int] = []
    real_run = _workers._Pool.run

    def run(self, *a, **kw):
        started.extend(_pids(self))
        return real_run(self, *a, **kw)

    monkeypatch.setattr(_workers._Pool, "run", run)
    st = open_store(tmp_path / "s2")
    reports = [_import("claude-code", st, cc["root"], workers=2), _import("codex", st, cx["root"], workers=2)]
    st.close()
    assert len(pools) == 2 and pools[0].reused == 0 and pools[1].reused == 1
    assert started[0] == started[1]  # one worker process served both imports
    assert pools[1].stats["worker"] > 0, "the kept worker read no file: the test proves nothing"
    assert len(_workers._spares) == 1  # kept again after the second import
    ref = open_store(tmp_path / "s1")
    expected = [_import("claude-code", ref, cc["root"], workers=1), _import("codex", ref, cx["root"], workers=1)]
    ref.close()
    for got, want in zip(reports, expected):
        got.pop("duration_s"), want.pop("duration_s")
        assert got == want
    assert _bytes(tmp_path / "s2") == _bytes(tmp_path / "s1")


def test_a_kept_worker_takes_the_next_imports_configuration(tmp_path, pools):
    """The second import's redaction rule (set after the worker started) applies in it."""
    secret = "CORP-271828"
    for name in ("a", "b"):
        gen = write_claude_code_logs(tmp_path / name, lines=1200, sessions=4, seed=1 if name == "a" else 2)
        for f in gen["files"]:
            f.write_text(f.read_text().replace('"Please ', f'"Please see {secret} and '))
    st = open_store(tmp_path / "store")
    _import("claude-code", st, tmp_path / "a", workers=2)
    with config.override(redaction_patterns=[r"CORP-\d{6}"]):
        _import("claude-code", st, tmp_path / "b", workers=2)
    st.close()
    assert pools[1].reused == 1 and pools[1].stats["worker"] > 0
    b_sessions = [p for p in (tmp_path / "store").rglob("*.jsonl") if "00000002-" in p.name]
    raw_b = b"".join(p.read_bytes() for p in b_sessions)
    assert b_sessions and b"Please see " in raw_b and secret.encode() not in raw_b
    raw_a = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*.jsonl") if "00000001-" in p.name)
    assert secret.encode() in raw_a  # the first import had no such rule: the rule did change


def test_a_kept_worker_is_ended_when_unused_and_never_after_a_failed_import(tmp_path, pools, monkeypatch,
                                                                            interrupt_at):
    gen = write_claude_code_logs(tmp_path / "logs", lines=1200, sessions=4)
    monkeypatch.setattr(_workers, "SPARE_IDLE_S", 0.3)
    st = open_store(tmp_path / "s1")
    _import("claude-code", st, gen["root"], workers=2)
    st.close()
    (kept,) = [w for w, _, _ in _workers._spares]
    deadline = time.monotonic() + 10
    while _workers._spares and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _workers._spares and kept.proc.returncode is not None  # ended and reaped
    with pytest.raises(ProcessLookupError):
        os.kill(kept.proc.pid, 0)
    # a failed import keeps nothing
    interrupt_at(2)
    procs: list = []
    real_run = _workers._Pool.run

    def run(self, *a, **kw):
        procs.extend(w.proc for w in self.workers)
        return real_run(self, *a, **kw)

    monkeypatch.setattr(_workers._Pool, "run", run)
    st = open_store(tmp_path / "s2")
    with pytest.raises(KeyboardInterrupt):
        _import("claude-code", st, gen["root"], workers=2)
    st.close()
    assert procs and all(p.returncode is not None for p in procs)  # killed and reaped, not kept
    assert not _workers._spares


def test_a_kept_worker_serves_only_an_import_started_the_same_way(tmp_path, pools, monkeypatch):
    gen = write_claude_code_logs(tmp_path / "logs", lines=1200, sessions=4)
    st = open_store(tmp_path / "s1")
    _import("claude-code", st, gen["root"], workers=2)
    st.close()
    monkeypatch.setenv("ASM_TEST_KEPT_WORKER", "another environment")
    st = open_store(tmp_path / "s2")
    _import("claude-code", st, gen["root"], workers=2)
    st.close()
    assert pools[1].reused == 0 and len(_workers._spares) == 2  # a fresh worker; the other still kept
    assert _workers.close_spares() == 2 and not _workers._spares


def test_a_forked_child_leaves_the_kept_worker_alone(tmp_path, pools):
    gen = write_claude_code_logs(tmp_path / "logs", lines=1200, sessions=4)
    st = open_store(tmp_path / "s1")
    _import("claude-code", st, gen["root"], workers=2)
    st.close()
    (kept,) = [w for w, _, _ in _workers._spares]
    pid = os.fork()
    if pid == 0:  # the child: sees no kept worker, and its exit ends nothing
        os._exit(0 if not _workers._spares else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert kept.proc.poll() is None  # still alive, and still used by this process's next import
    st = open_store(tmp_path / "s2")
    _import("claude-code", st, gen["root"], workers=2)
    st.close()
    assert pools[1].reused == 1 and pools[1].stats["worker"] > 0
