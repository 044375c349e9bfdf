"""Artifact stores (docs/stores.md, artifacts): FileArtifactStore in both layouts, InMemoryArtifactStore,
artifact_store_for, and CompositeSessionStore's isolation of artifact failures."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.core.session import Session
from asm_nb.stores.artifacts import (BlobStore, FileArtifactStore, InMemoryArtifactStore, artifact_store_for,
                                     key_file_name)
from asm_nb.stores.composite import CompositeSessionStore
from asm_nb.stores.local import LocalStore
from asm_nb.stores.memory import InMemoryStore


def _stores(tmp_path):
    return [FileArtifactStore(str(tmp_path / "key")), FileArtifactStore(tmp_path / "content", layout="content"),
            InMemoryArtifactStore()]


@pytest.mark.parametrize("kind", [0, 1, 2], ids=["file-key", "file-content", "memory"])
def test_port_behaviour(tmp_path, kind):
    s = _stores(tmp_path)[kind]
    s.put("patch-abc123", b"one")
    assert s.get("patch-abc123") == b"one"
    s.put("patch-abc123", "two ✓")  # overwrite silently; str is UTF-8
    assert s.get("patch-abc123") == "two ✓".encode()
    s.put("iodata", [b"a", "b", [bytearray(b"c"), memoryview(b"d")]])
    assert s.get("iodata") == b"abcd"
    s.put("other", b"\x00\xff binary")
    assert s.get("other") == b"\x00\xff binary" and s.get("patch-abc123") == "two ✓".encode()
    s.delete("patch-abc123")
    s.delete("patch-abc123")  # idempotent
    s.delete("never-there")
    with pytest.raises(AsmError) as e:
        s.get("patch-abc123")
    assert (e.value.code, e.value.message) == ("not_found", "Artifact not found: patch-abc123")
    with pytest.raises(AsmError) as e:
        s.put("x", 123)
    assert e.value.code == "validation_error"


def test_key_layout_file_names(tmp_path):
    s = FileArtifactStore(str(tmp_path / "arts"))
    s.put("patch-abc123", b"p")
    h = hashlib.sha256(b"patch-abc123").hexdigest()[:16]
    assert os.listdir(tmp_path / "arts") == [f"patch-abc123_{h}"]
    assert key_file_name("a/b c") == "a_b_c_" + hashlib.sha256(b"a/b c").hexdigest()[:16]
    assert key_file_name("é" * 40).startswith("_" * 32 + "_")  # one "_" per UTF-8 byte, cut at 32
    assert len(key_file_name("x" * 100)) == 32 + 1 + 16


def test_root_required_and_created(tmp_path):
    for bad in (None, "", 5):
        with pytest.raises(AsmError) as e:
            FileArtifactStore(bad)
        assert (e.value.code, e.value.message) == ("validation_error", "root directory is required")
    FileArtifactStore(str(tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(AsmError) as e:
        FileArtifactStore(str(tmp_path / "file" / "sub"))
    assert e.value.code == "storage_error" and e.value.message.startswith("Failed to create artifact root:")


def test_content_layout_dedupes_and_soft_deletes(tmp_path):
    s = FileArtifactStore(tmp_path / "c", layout="content")
    s.put("k1", b"same bytes", session_id="ses_1", run_id="run_1", content_type="text/plain")
    s.put("k2", b"same bytes")
    sha = hashlib.sha256(b"same bytes").hexdigest()
    blob = tmp_path / "c" / sha[:2] / sha[2:]
    assert blob.read_bytes() == b"same bytes"
    assert [p.name for p in (tmp_path / "c" / sha[:2]).iterdir()] == [sha[2:]]  # stored once, no temp files left
    rec = s.record("k1")
    assert rec["checksum_sha256"] == sha and rec["byte_size"] == 10 and rec["storage_backend"] == "local"
    assert rec["storage_ref"] == f"blob:sha256:{sha}" and rec["session_id"] == "ses_1" and rec["id"].startswith("art_")
    assert [r["key"] for r in s.list_records("ses_1")] == ["k1"]
    s.delete("k1")
    assert s.record("k1") is None and blob.exists()  # the blob stays for maintenance
    assert s.get("k2") == b"same bytes"
    s.put("k1", b"back")
    assert s.get("k1") == b"back"


def test_artifact_store_for_local_store_uses_blobs_and_db_table(tmp_path):
    store = LocalStore(tmp_path / "asm")
    arts = artifact_store_for(store)
    assert artifact_store_for(store) is arts
    assert arts.root == store.root / "blobs"
    arts.put("patch_a_b_c", b"diff --git", session_id="ses_x")
    table = json.loads((store.root / "db" / "artifacts.json").read_text())["artifacts"]
    (rec,) = table.values()
    assert rec["key"] == "patch_a_b_c" and rec["session_id"] == "ses_x"
    sha = hashlib.sha256(b"diff --git").hexdigest()
    assert (store.root / "blobs" / sha[:2] / sha[2:]).is_file()
    # a second process-level handle (fresh objects) sees the record
    other = FileArtifactStore(store.root / "blobs", layout="content", records_root=store.root)
    assert other.get("patch_a_b_c") == b"diff --git"
    # deleting the session cascades to its artifact records (LocalStore's own rule)
    store.save_session(Session.new(agent_id="a").replace(id="ses_x"))
    store.delete_session("ses_x")
    assert other.record("patch_a_b_c") is None
    store.close()


def test_artifact_store_for_other_stores():
    mem = InMemoryStore()
    assert isinstance(artifact_store_for(mem), InMemoryArtifactStore)
    assert artifact_store_for(mem) is artifact_store_for(mem)
    assert artifact_store_for(InMemoryStore()) is not artifact_store_for(mem)
    comp = CompositeSessionStore(InMemoryStore(), InMemoryArtifactStore())
    assert artifact_store_for(comp) is comp
    assert artifact_store_for(object()) is None


def test_blob_store(tmp_path):
    b = BlobStore(tmp_path)
    sha = b.put(b"x")
    assert b.has(sha) and b.get(sha) == b"x" and b.put(b"x") == sha
    b.remove(sha)
    assert not b.has(sha)
    with pytest.raises(AsmError):
        b.get(sha)
    with pytest.raises(AsmError):
        b.path_for("../etc")


# ---------------------------------------------------------------------------------------------- composite
class _Crashing:
    def __init__(self, exc):
        self.exc = exc
        self.closed = False

    def put(self, key, data, **opts):
        raise self.exc

    def get(self, key, **opts):
        raise self.exc

    def delete(self, key, **opts):
        raise self.exc

    def close(self):
        self.closed = True


def test_composite_forwards_and_isolates_artifact_failures():
    inner = InMemoryStore()
    arts = _Crashing(RuntimeError("boom"))
    comp = CompositeSessionStore(inner, arts)
    s = Session.new(agent_id="a")
    comp.save_session(s)
    assert comp.get_session(s.id) == inner.get_session(s.id)
    for op, args in (("put", ("k", b"v")), ("get", ("k",)), ("delete", ("k",))):
        with pytest.raises(AsmError) as e:
            getattr(comp, op)(*args)
        assert (e.value.code, e.value.message) == ("storage_error", f"Artifact store {op} failed: boom")
    # session operations still work after the artifact backend crashed
    assert [x.id for x in comp.list_sessions()] == [s.id]
    with pytest.raises(AsmError) as e:
        comp.get_session("ses_missing")
    assert e.value.code == "session_not_found"  # errors of the session store pass through
    assert comp.sessions is inner and comp.artifacts is arts and comp.inline_safe is True
    comp.close()
    assert arts.closed


def test_composite_unavailable_backend_and_not_found_pass_through():
    comp = CompositeSessionStore(InMemoryStore(), _Crashing(ConnectionError("refused")))
    with pytest.raises(AsmError) as e:
        comp.put("k", b"v")
    assert e.value.message == "Artifact store put failed because backend is unavailable"
    assert "refused" in e.value.details["reason"]
    ok = CompositeSessionStore(InMemoryStore(), InMemoryArtifactStore())
    with pytest.raises(AsmError) as e:
        ok.get("missing")
    assert e.value.code == "not_found"
    ok.put("k", b"v")
    assert ok.get("k") == b"v"
