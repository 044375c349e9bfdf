"""``S3ArtifactStore``: artifact bytes in an S3 bucket or any S3-compatible server (docs/stores.md, artifacts).

Object key = ``prefix + key`` (plain concatenation). The store talks to an ``S3Client``
(``put_object(bucket, key, data, **opts)``, ``get_object(bucket, key, **opts) -> bytes``,
``delete_object(bucket, key, **opts)``, raising :class:`S3NotFound` for a missing object);
the default :class:`Boto3S3Client` wraps ``boto3`` (imported only when built), with
``endpoint_url`` for MinIO, moto, Ceph, R2, ... and credentials from the usual AWS environment.
The store is blocking and network-bound (``inline_safe = False``): async callers use
``asyncio.to_thread``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..core.errors import AsmError
from .artifacts import to_bytes

__all__ = ["S3ArtifactStore", "Boto3S3Client", "S3NotFound"]

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3NotFound(Exception):
    """Raised by an ``S3Client`` when the object does not exist."""


class Boto3S3Client:
    """``S3Client`` over a boto3 S3 client (``ClientError`` NoSuchKey / 404 / NotFound → ``S3NotFound``).

    ``Boto3S3Client(endpoint_url="http://127.0.0.1:9000", region_name="us-east-1")`` or
    ``Boto3S3Client(client=boto3.client("s3"))``. Extra keyword arguments go to ``boto3.client``
    (``aws_access_key_id``, ``config``, ...)."""

    def __init__(self, *, client: Any = None, endpoint_url: str | None = None, region_name: str | None = None,
                 **client_kwargs: Any) -> None:
        if client is None:
            try:
                import boto3
            except ImportError as exc:  # pragma: no cover - optional dependency
                raise AsmError("dependency_not_available", "S3ArtifactStore needs boto3: pip install boto3") from exc
            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region_name, **client_kwargs)
        self.client = client

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _NOT_FOUND_CODES or status == "404" and code in ("", "404"):
                raise S3NotFound(code or status) from exc
            raise

    def put_object(self, bucket: str, key: str, data: bytes, **opts: Any) -> None:
        """Upload ``data``; ``opts`` are boto3 ``put_object`` arguments (``ContentType``, ...)."""
        self._call(self.client.put_object, Bucket=bucket, Key=key, Body=data, **opts)

    def get_object(self, bucket: str, key: str, **opts: Any) -> bytes:
        """Download an object's bytes."""
        resp = self._call(self.client.get_object, Bucket=bucket, Key=key, **opts)
        body = resp["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def delete_object(self, bucket: str, key: str, **opts: Any) -> None:
        """Delete an object (S3 answers success for a missing key too)."""
        self._call(self.client.delete_object, Bucket=bucket, Key=key, **opts)


# Port-level put options that are not S3 request parameters: content_type maps to ContentType,
# the rest become user metadata (x-amz-meta-*), so callers can pass the same options to any store.
_META_OPTS = ("session_id", "run_id")


class S3ArtifactStore:
    """Artifact bytes in ``bucket`` under ``prefix + key`` (ArtifactStore port).

    >>> # S3ArtifactStore(bucket="my-bucket", prefix="asm/", endpoint_url="http://127.0.0.1:9000")
    """

    inline_safe = False

    def __init__(self, bucket: str | None = None, *, prefix: str = "", client: Any = None,
                 endpoint_url: str | None = None, region_name: str | None = None, **client_kwargs: Any) -> None:
        if not isinstance(bucket, str) or not bucket:
            raise AsmError("validation_error", "bucket is required")
        if not isinstance(prefix, str):
            raise AsmError("validation_error", f"prefix must be a string, got {type(prefix).__name__}")
        self.bucket = bucket
        self.prefix = prefix
        self.client = client if client is not None else Boto3S3Client(endpoint_url=endpoint_url,
                                                                      region_name=region_name, **client_kwargs)

    def __repr__(self) -> str:
        return f"S3ArtifactStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def object_key(self, key: str) -> str:
        """``prefix + key``."""
        if not isinstance(key, str) or not key:
            raise AsmError("validation_error", "artifact key must be a non-empty string")
        return self.prefix + key

    def put(self, key: str, data: Any, **opts: Any) -> None:
        """Upload ``data`` (overwrites). ``content_type`` → ``ContentType``; ``session_id``,
        ``run_id`` and ``metadata`` → object metadata (``_`` in names becomes ``-``: ``run-id``); other options go to the
        client unchanged. Failure → ``storage_error`` "Failed to put S3 object: <repr>"."""
        okey = self.object_key(key)
        payload = to_bytes(data)
        try:
            self.client.put_object(self.bucket, okey, payload, **_s3_opts(opts, isinstance(self.client, Boto3S3Client)))
        except Exception as exc:
            raise AsmError("storage_error", f"Failed to put S3 object: {exc!r}",
                           details={"bucket": self.bucket, "key": okey}) from exc

    def get(self, key: str, **opts: Any) -> bytes:
        """Download ``key``'s bytes; missing → ``not_found`` "Artifact not found: <key>"."""
        okey = self.object_key(key)
        try:
            return bytes(self.client.get_object(self.bucket, okey, **opts))
        except S3NotFound:
            raise AsmError("not_found", f"Artifact not found: {key}") from None
        except Exception as exc:
            raise AsmError("storage_error", f"Failed to get S3 object: {exc!r}",
                           details={"bucket": self.bucket, "key": okey}) from exc

    def delete(self, key: str, **opts: Any) -> None:
        """Delete ``key``; a missing object is success."""
        okey = self.object_key(key)
        try:
            self.client.delete_object(self.bucket, okey, **opts)
        except S3NotFound:
            return
        except Exception as exc:
            raise AsmError("storage_error", f"Failed to delete S3 object: {exc!r}",
                           details={"bucket": self.bucket, "key": okey}) from exc

    def close(self) -> None:
        """Close the boto3 client's connections when it has them."""
        inner = getattr(self.client, "client", None)
        closer = getattr(inner, "close", None)
        if callable(closer):
            closer()


def _s3_opts(opts: Mapping[str, Any], boto: bool) -> dict[str, Any]:
    if not boto:  # a custom client gets the options as given
        return dict(opts)
    out = {k: v for k, v in opts.items() if k not in (*_META_OPTS, "content_type", "metadata")}
    if opts.get("content_type"):
        out.setdefault("ContentType", str(opts["content_type"]))
    # header-safe names (x-amz-meta-run-id): many proxies and servers drop headers with "_"
    meta = {k.replace("_", "-"): str(opts[k]) for k in _META_OPTS if opts.get(k) is not None}
    if isinstance(opts.get("metadata"), Mapping):
        meta.update({str(k).replace("_", "-"): str(v) for k, v in opts["metadata"].items()})
    if meta:
        out["Metadata"] = {**meta, **out.get("Metadata", {})}
    return out
