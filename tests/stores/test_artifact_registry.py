"""ArtifactRegistry over every store kind, and workspace patches registered as artifacts on SQL and
composite (S3 / file) stores instead of kept inline: through ``run_once(..., snapshot=True)`` and
``open_store(url, artifacts=...)``."""

from __future__ import annotations

import hashlib

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.persistence.artifact_registry import ArtifactRegistry
from asm_nb.stores.artifacts import artifact_store_for

SHA = hashlib.sha256(b"abc").hexdigest()


def _good(**over):
    return {"key": "patch-1", "byte_size": 3, "checksum_sha256": SHA, "storage_backend": "s3",
            "storage_ref": "s3://b/patch-1", "session_id": "ses_1", "run_id": "run_1", **over}


@pytest.fixture(params=["memory", "local", "sqlite"])
def store(request, tmp_path):
    pytest.importorskip("sqlalchemy") if request.param == "sqlite" else None
    target = {"memory": "memory://", "local": str(tmp_path / "st"), "sqlite": f"sqlite:///{tmp_path / 'a.db'}"}
    st = asm_nb.open_store(target[request.param])
    yield st
    st.close()


def test_register_validates_fields_and_refuses_duplicates(store):
    reg = ArtifactRegistry(store)
    for field in ("key", "byte_size", "checksum_sha256", "storage_backend", "storage_ref"):
        bad = _good()
        del bad[field]
        with pytest.raises(AsmError) as e:
            reg.register(bad)
        assert (e.value.code, e.value.message) == ("validation_error", f"missing required artifact field: {field}")
    for bad, word in ((_good(byte_size=-1), "byte_size"), (_good(byte_size=True), "byte_size"),
                      (_good(checksum_sha256="xyz"), "checksum_sha256"), (_good(key=""), "key"),
                      (_good(metadata=[1]), "metadata"), (_good(session_id=5), "session_id")):
        with pytest.raises(AsmError) as e:
            reg.register(bad)
        assert e.value.code == "validation_error" and word in e.value.message
    art_id = reg.register(_good(content_type="text/x-diff", metadata={"a": 1}))
    assert art_id.startswith("art_") and len(art_id) == 20
    got = reg.get_by_key("patch-1")
    assert got["id"] == art_id and got["byte_size"] == 3 and got["metadata"] == {"a": 1}
    assert "deleted_at" not in got
    with pytest.raises(AsmError) as e:
        reg.register(_good())
    assert e.value.code == "already_exists"


def test_session_stats_list_and_soft_delete(store):
    reg = ArtifactRegistry(store)
    reg.register(_good())
    reg.register(_good(key="patch-2", byte_size=10))
    reg.register(_good(key="other", session_id="ses_2", byte_size=7))
    assert reg.session_stats("ses_1") == {"artifact_count": 2, "total_bytes": 13}
    assert [r["key"] for r in reg.list_by_session("ses_1")] == ["patch-1", "patch-2"]
    reg.delete("patch-1")
    reg.delete("patch-1")  # idempotent
    assert reg.get_by_key("patch-1") is None
    assert reg.session_stats("ses_1") == {"artifact_count": 1, "total_bytes": 10}
    # soft: the row is still there with deleted_at, and its key stays taken
    rows = [r for r in store.list_artifact_records("ses_1") if r["key"] == "patch-1"]
    assert len(rows) == 1 and rows[0]["deleted_at"]
    with pytest.raises(AsmError) as e:
        reg.register(_good())
    assert e.value.code == "already_exists"
    assert reg.session_stats("nobody") == {"artifact_count": 0, "total_bytes": 0}


def _snapshot_run(store, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.txt").write_text("one\n")
    r = asm_nb.run_once("echo two >> a.txt", provider="shell", cwd=str(work), snapshot=True, store=store)
    assert r.ok, r.error
    ws = store.get_run(r.run_id).metadata["workspace"]
    assert ws["patch_ref"] and "patch" not in ws["diff"]  # offloaded, not inline on the run
    return r, ws["patch_ref"]


def test_sql_runs_register_their_patches_as_artifacts(tmp_path):
    pytest.importorskip("sqlalchemy")
    store = asm_nb.open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    r, key = _snapshot_run(store, tmp_path)
    reg = ArtifactRegistry(store)
    rec = reg.get_by_key(key)
    assert rec["run_id"] == r.run_id and rec["session_id"] == r.session_id
    assert rec["storage_backend"] == "sql" and rec["content_type"] == "text/x-diff"
    patch = artifact_store_for(store).get(key)
    assert "+two" in patch.decode() and rec["checksum_sha256"] == hashlib.sha256(patch).hexdigest()
    assert reg.session_stats(r.session_id) == {"artifact_count": 1, "total_bytes": len(patch)}
    artifact_store_for(store).delete(key)  # soft in SQL: the row stays, the bytes until vacuum
    assert reg.get_by_key(key) is None
    assert [row["deleted_at"] is not None for row in store.list_artifact_records(r.session_id)] == [True]
    with pytest.raises(AsmError) as e:
        artifact_store_for(store).get(key)
    assert e.value.code == "not_found"
    assert artifact_store_for(store).vacuum() == 1
    store.close()


def test_open_store_with_file_artifacts_builds_the_composite(tmp_path):
    store = asm_nb.open_store(str(tmp_path / "st"), artifacts=f"file://{tmp_path / 'blobs'}")
    assert type(store).__name__ == "CompositeSessionStore"
    r, key = _snapshot_run(store, tmp_path)
    assert "+two" in store.get(key).decode()
    rec = ArtifactRegistry(store).get_by_key(key)
    assert rec["storage_backend"] == "file" and rec["run_id"] == r.run_id
    assert rec["storage_ref"].startswith("file://" + str(tmp_path / "blobs"))
    with pytest.raises(AsmError):
        asm_nb.open_store("memory://", artifacts="ftp://nope")


@pytest.fixture(scope="module")
def s3_endpoint():
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_open_store_with_s3_artifacts_puts_patches_in_the_bucket(tmp_path, s3_endpoint, monkeypatch):
    pytest.importorskip("sqlalchemy")
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    import boto3

    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    raw.create_bucket(Bucket="asm-composite")
    store = asm_nb.open_store(f"sqlite:///{tmp_path / 'runs.db'}", artifacts="s3://asm-composite/team/",
                              artifact_options={"endpoint_url": s3_endpoint, "region_name": "us-east-1"})
    r, key = _snapshot_run(store, tmp_path)
    body = raw.get_object(Bucket="asm-composite", Key=f"team/{key}")["Body"].read()
    assert "+two" in body.decode()
    rec = ArtifactRegistry(store).get_by_key(key)
    assert rec["storage_backend"] == "s3" and rec["storage_ref"] == f"s3://asm-composite/team/{key}"
    assert rec["checksum_sha256"] == hashlib.sha256(body).hexdigest()
    store.delete(key)
    assert ArtifactRegistry(store).get_by_key(key) is None
    store.close()


def test_gc_vacuums_sql_artifact_bytes_after_the_retention_pass(tmp_path):
    """``asm gc`` (and ``asm_nb.gc``) end with the artifact vacuum: the bytes of a deleted patch
    go, a live one stays; the dry run counts without deleting; a LocalStore says n/a."""
    pytest.importorskip("sqlalchemy")
    import json
    import os
    import subprocess
    import sys

    from asm_nb.analytics.gc import gc

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = asm_nb.open_store(url)
    keys = []
    for n in ("one", "two"):  # two different patches (content-addressed bytes are shared otherwise)
        work = tmp_path / n
        work.mkdir()
        (work / "a.txt").write_text(f"{n}\n")
        r = asm_nb.run_once(f"echo {n}-more >> a.txt", provider="shell", cwd=str(work), snapshot=True, store=store)
        assert r.ok, r.error
        keys.append(store.get_run(r.run_id).metadata["workspace"]["patch_ref"])
    gone_key, live_key = keys
    arts = artifact_store_for(store)
    live_patch = arts.get(live_key)
    arts.delete(gone_key)
    assert arts.vacuum(dry_run=True) == 1
    store.close()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root, "ASM_HOME": str(tmp_path / "home")}

    def asm(*args):
        return subprocess.run([sys.executable, "-m", "asm_nb.cli", *args, "--store", url], capture_output=True,
                              text=True, env=env, timeout=120)

    dry = asm("gc", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["artifact_blobs_vacuumed"] == 1
    p = asm("gc")
    assert p.returncode == 0, p.stderr
    assert "artifact_blobs_vacuumed      1" in p.stdout
    store = asm_nb.open_store(url)
    try:
        arts = artifact_store_for(store)
        assert arts.vacuum(dry_run=True) == 0  # gone: nothing left to vacuum
        assert arts.get(live_key) == live_patch  # the live patch is untouched
        assert gc(store)["artifact_blobs_vacuumed"] == 0
    finally:
        store.close()
    local = asm_nb.open_store(str(tmp_path / "local"))
    try:
        assert gc(local)["artifact_blobs_vacuumed"] is None
    finally:
        local.close()
