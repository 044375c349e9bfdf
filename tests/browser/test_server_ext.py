"""The server extension's data functions (behind ``asm-nb/sessions`` and ``asm-nb/runs/<id>``),
without a browser or a server: listing a store, its fallback without polars, a run's bundle,
the store location, and the extension points. The endpoints themselves (auth, routing) are
exercised over HTTP in ``test_lab.py``."""

from __future__ import annotations

import pytest

import asm_nb
from asm_nb import server_ext
from asm_nb.core.errors import AsmError
from asm_nb.testing import example_cassette


@pytest.fixture
def store_dir(tmp_path):
    d = tmp_path / ".asm"
    writer = asm_nb.open_store(d)  # like a kernel's store; closed (flushed) before the server reads
    asm_nb.run_once("echo one", provider="shell", store=writer, session="chores")
    asm_nb.run_once("echo two", provider="shell", store=writer, session="chores")
    asm_nb.run_once("What does this repository do?", provider="replay", store=writer,
                    options={"cassette": example_cassette("tools")})
    asm_nb.run_once("exit 3", provider="shell", store=writer)
    writer.close()
    return d


def test_store_path_prefers_asm_home(tmp_path, monkeypatch):
    monkeypatch.delenv("ASM_HOME", raising=False)
    assert server_ext.store_path(tmp_path) == tmp_path / ".asm"
    monkeypatch.setenv("ASM_HOME", str(tmp_path / "elsewhere"))
    assert server_ext.store_path(tmp_path) == tmp_path / "elsewhere"


def test_missing_store_is_empty_and_not_created(tmp_path):
    listing = server_ext.list_sessions(tmp_path / "nope")
    assert listing == {"store": str(tmp_path / "nope"), "exists": False, "sessions": []}
    assert not (tmp_path / "nope").exists()
    assert server_ext.run_bundle(tmp_path / "nope", "run_" + "0" * 32) is None


def _check_listing(listing):
    assert listing["exists"] is True
    sessions = listing["sessions"]
    assert len(sessions) == 3
    named = [s for s in sessions if s["name"] == "chores"]
    assert len(named) == 1
    chores = named[0]
    assert [r["prompt"] for r in chores["runs"]] == ["echo one", "echo two"]  # oldest first
    assert chores["run_count"] == 2
    assert all(r["status"] == "completed" and r["provider"] == "shell" for r in chores["runs"])
    statuses = sorted(r["status"] for s in sessions for r in s["runs"])
    assert statuses == ["completed", "completed", "completed", "failed"]
    replayed = [r for s in sessions for r in s["runs"] if r["provider"] == "replay"][0]
    assert replayed["cost_usd"] and replayed["cost_usd"] > 0
    assert replayed["input_tokens"] > 0 and isinstance(replayed["started_at"], str)
    # newest session first
    created = [s["created_at"] for s in sessions]
    assert created == sorted(created, reverse=True)


def test_list_sessions_groups_runs_by_session(store_dir):
    _check_listing(server_ext.list_sessions(store_dir))


def test_list_sessions_without_polars(store_dir, monkeypatch):
    def no_polars(*a, **k):
        raise AsmError("dependency_not_available", "no polars here")

    monkeypatch.setattr(asm_nb.frames, "sessions", no_polars)
    _check_listing(server_ext.list_sessions(store_dir))


def test_run_bundle_is_the_mime_payload(store_dir):
    listing = server_ext.list_sessions(store_dir)
    replayed = [r for s in listing["sessions"] for r in s["runs"] if r["provider"] == "replay"][0]
    bundle = server_ext.run_bundle(store_dir, replayed["run_id"])
    assert bundle["schema"] == "asm.run" and bundle["version"] == 1
    assert bundle["run"]["run_id"] == replayed["run_id"]
    assert bundle["run"]["status"] == "completed"
    assert bundle["prompt"] == "What does this repository do?"
    assert [c["name"] for c in bundle["tool_calls"]][:2] == ["bash", "read_file"]
    assert bundle["usage"]["input_tokens"] == replayed["input_tokens"]
    assert any(t["role"] == "user" for t in bundle["transcript"])

    failed = [r for s in listing["sessions"] for r in s["runs"] if r["status"] == "failed"][0]
    fb = server_ext.run_bundle(store_dir, failed["run_id"])
    assert fb["run"]["status"] == "failed" and fb["run"]["error"]["code"]

    assert server_ext.run_bundle(store_dir, "run_" + "f" * 32) is None


def test_extension_points():
    assert server_ext._jupyter_server_extension_points() == [{"module": "asm_nb.server_ext"}]
    pytest.importorskip("jupyter_server")
    patterns = [p for p, _ in server_ext._handlers()]
    assert patterns == ["asm-nb/sessions/?", "asm-nb/runs/(run_[A-Za-z0-9_-]+)/?", "asm-nb/search/?"]
