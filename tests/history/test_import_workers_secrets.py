"""What an import read by worker processes leaves behind: no secret (the default rules and the
caller's own ``redaction_patterns``, set in this process, which the workers are fresh
interpreters of, keep every secret of the logs off the disk) and no results folder (one left by
a killed import is removed by the next)."""

from __future__ import annotations

import json
import os
import sys
import warnings

import pytest

from asm_nb import config
from asm_nb.history import HistoryWarning, _workers, import_history
from asm_nb.stores import open_store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="worker processes are used on POSIX only")

KEY = "sk-ant-api03-" + "A1b2C3d4" * 12
CORP = "CORP-314159"  # matched by the caller's own pattern only


def _logs(root, files: int = 6) -> None:
    for i in range(files):
        d = root / "projects" / f"-home-ada-p{i}"
        d.mkdir(parents=True)
        lines = []
        for j in range(40):
            lines.append({"type": "user", "sessionId": f"s{i}", "uuid": f"u{i}-{j}", "timestamp": "2025-06-01T00:00:00Z",
                          "cwd": f"/home/ada/p{i}",
                          "message": {"role": "user", "content": f"use {KEY} and ticket {CORP} ({j})"}})
            lines.append({"type": "assistant", "sessionId": f"s{i}", "uuid": f"a{i}-{j}", "parentUuid": f"u{i}-{j}",
                          "timestamp": "2025-06-01T00:00:01Z", "cwd": f"/home/ada/p{i}",
                          "message": {"id": f"msg_{i}_{j}", "role": "assistant", "model": "claude-sonnet-4-5",
                                      "content": [{"type": "text", "text": f"I used {KEY} for {CORP}"}],
                                      "usage": {"input_tokens": 10, "output_tokens": 5}}})
        (d / f"s{i}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_workers_redact_with_the_callers_rules(tmp_path, pools):
    _logs(tmp_path)
    store = open_store(tmp_path / "store")
    with config.override(redaction_patterns=[r"CORP-\d{6}"]), warnings.catch_warnings():
        warnings.simplefilter("ignore", HistoryWarning)
        report = import_history("claude-code", store, path=tmp_path, workers=2)
    store.flush()
    assert report.events > 0
    assert pools and pools[0].stats["worker"] > 0, "the workers read no file: the test proves nothing"
    raw = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert KEY.encode() not in raw
    assert CORP.encode() not in raw
    assert raw.count(b"ticket ") >= 6 * 40  # the texts are there, the secrets in them are not
    store.close()


def test_a_killed_imports_result_folder_is_removed_by_the_next_one(tmp_path):
    """Worker results go to a memory-backed folder named after the importing process; SIGKILL
    leaves it behind (no ``finally`` runs). The next import with workers removes the folders of
    dead processes and keeps those of living ones."""
    import shutil
    import signal
    import subprocess

    base = _workers._result_base()
    dead = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphan = os.path.join(base, f"{_workers._DIR_PREFIX}{dead.pid}-test")
        living = os.path.join(base, f"{_workers._DIR_PREFIX}{alive.pid}-test")
        for d in (orphan, living):
            os.makedirs(d)
            with open(os.path.join(d, "0.pkl"), "wb") as f:
                f.write(b"x" * 1024)
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        _logs(tmp_path, files=3)
        store = open_store(tmp_path / "store")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HistoryWarning)
            import_history("claude-code", store, path=tmp_path, workers=2)
        store.close()
        assert not os.path.exists(orphan)
        assert os.path.exists(living)
        mine = [n for n in os.listdir(base) if n.startswith(f"{_workers._DIR_PREFIX}{os.getpid()}-")]
        assert mine == []  # this import removed its own folder when it ended
    finally:
        alive.kill()
        alive.wait()
        shutil.rmtree(living, ignore_errors=True)
        shutil.rmtree(orphan, ignore_errors=True)
