"""S3ArtifactStore (docs/stores.md, artifacts): a fake client for key layout and error mapping, and a real
S3-compatible server on 127.0.0.1 (moto server mode, started here on a free port)."""

from __future__ import annotations

import pytest

from asm_nb.core.errors import AsmError
from asm_nb.stores.composite import CompositeSessionStore
from asm_nb.stores.memory import InMemoryStore
from asm_nb.stores.s3 import Boto3S3Client, S3ArtifactStore, S3NotFound


class FakeClient:
    def __init__(self, fail: Exception | None = None) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.calls: list[tuple] = []
        self.fail = fail

    def put_object(self, bucket, key, data, **opts):
        self.calls.append(("put", bucket, key, data, opts))
        if self.fail:
            raise self.fail
        self.objects[(bucket, key)] = data

    def get_object(self, bucket, key, **opts):
        self.calls.append(("get", bucket, key))
        if self.fail:
            raise self.fail
        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise S3NotFound(key) from None

    def delete_object(self, bucket, key, **opts):
        self.calls.append(("delete", bucket, key))
        if self.fail:
            raise self.fail
        if (bucket, key) not in self.objects:
            raise S3NotFound(key)
        del self.objects[(bucket, key)]


def test_bucket_required():
    for bad in (None, ""):
        with pytest.raises(AsmError) as e:
            S3ArtifactStore(bad, client=FakeClient())
        assert (e.value.code, e.value.message) == ("validation_error", "bucket is required")


def test_prefix_is_plain_concatenation():
    c = FakeClient()
    S3ArtifactStore("b", prefix="asm/", client=c).put("patch-abc123", b"x")
    S3ArtifactStore("b", client=c).put("patch-abc123", "y")
    S3ArtifactStore("b", prefix="runs", client=c).put("k", [b"a", "b"])
    assert c.objects == {("b", "asm/patch-abc123"): b"x", ("b", "patch-abc123"): b"y", ("b", "runsk"): b"ab"}


def test_fake_client_error_mapping():
    s = S3ArtifactStore("b", prefix="p/", client=FakeClient())
    with pytest.raises(AsmError) as e:
        s.get("missing")
    assert (e.value.code, e.value.message) == ("not_found", "Artifact not found: missing")  # unprefixed
    s.delete("missing")  # not found is success
    broken = S3ArtifactStore("b", client=FakeClient(fail=RuntimeError("down")))
    for op, args, msg in (("put", ("k", b"v"), "Failed to put S3 object: RuntimeError('down')"),
                          ("get", ("k",), "Failed to get S3 object: RuntimeError('down')"),
                          ("delete", ("k",), "Failed to delete S3 object: RuntimeError('down')")):
        with pytest.raises(AsmError) as e:
            getattr(broken, op)(*args)
        assert (e.value.code, e.value.message) == ("storage_error", msg)


def test_custom_client_gets_options_unchanged():
    c = FakeClient()
    S3ArtifactStore("b", client=c).put("k", b"v", content_type="text/x-diff", run_id="run_1")
    assert c.calls[0][4] == {"content_type": "text/x-diff", "run_id": "run_1"}


# ---------------------------------------------------------------------------------------------- moto
@pytest.fixture(scope="module")
def s3_endpoint():
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_endpoint, monkeypatch, request):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    import boto3

    bucket = "asm-" + request.node.name.replace("_", "-").lower()[:40]
    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    raw.create_bucket(Bucket=bucket)
    store = S3ArtifactStore(bucket, prefix="asm/", endpoint_url=s3_endpoint, region_name="us-east-1")
    yield store, raw
    store.close()


def test_real_server_round_trip(s3_store):
    store, raw = s3_store
    data = bytes(range(256)) * 100  # binary
    store.put("patch-1", data, content_type="application/octet-stream", run_id="run_9")
    assert store.get("patch-1") == data
    head = raw.head_object(Bucket=store.bucket, Key="asm/patch-1")
    assert head["ContentType"] == "application/octet-stream" and head["Metadata"] == {"run-id": "run_9"}
    store.put("patch-1", b"overwritten")
    store.put("patch-2", "other ✓")
    assert store.get("patch-1") == b"overwritten" and store.get("patch-2") == "other ✓".encode()
    keys = sorted(o["Key"] for o in raw.list_objects_v2(Bucket=store.bucket)["Contents"])
    assert keys == ["asm/patch-1", "asm/patch-2"]
    store.delete("patch-1")
    store.delete("patch-1")  # idempotent
    with pytest.raises(AsmError) as e:
        store.get("patch-1")
    assert (e.value.code, e.value.message) == ("not_found", "Artifact not found: patch-1")
    assert store.get("patch-2") == "other ✓".encode()  # isolation between keys


def test_real_server_missing_bucket_is_storage_error(s3_store):
    store, _ = s3_store
    other = S3ArtifactStore("no-such-bucket-here", client=store.client)
    with pytest.raises(AsmError) as e:
        other.put("k", b"v")
    assert e.value.code == "storage_error" and "NoSuchBucket" in e.value.message
    with pytest.raises(AsmError) as e:
        other.get("k")
    assert e.value.code == "storage_error"


def test_real_server_behind_composite(s3_store):
    store, _ = s3_store
    comp = CompositeSessionStore(InMemoryStore(), store)
    comp.put("c", b"composite")
    assert comp.get("c") == b"composite"
    with pytest.raises(AsmError) as e:
        comp.get("absent")
    assert e.value.code == "not_found"


def test_boto3_client_wraps_an_existing_client(s3_store):
    store, raw = s3_store
    c = Boto3S3Client(client=raw)
    c.put_object(store.bucket, "direct", b"d")
    assert c.get_object(store.bucket, "direct") == b"d"
    with pytest.raises(S3NotFound):
        c.get_object(store.bucket, "nope")
