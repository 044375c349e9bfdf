"""``CompositeSessionStore``: one object that is a SessionStore and an ArtifactStore (docs/stores.md, artifacts).

Session operations forward unchanged to ``.sessions``; ``put/get/delete`` go to ``.artifacts``,
with any non-``AsmError`` failure turned into ``storage_error`` "Artifact store <op> failed: …"
(connection problems: "… failed because backend is unavailable"), so a crashing artifact backend
never disturbs session operations. ``close()`` closes both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..core.errors import AsmError

if TYPE_CHECKING:
    from ..ports import SessionStore

__all__ = ["CompositeSessionStore"]

_SESSION_METHODS = ("save_session", "get_session", "list_sessions", "delete_session", "save_run", "get_run",
                    "list_runs", "get_active_run", "append_event", "append_event_with_sequence", "append_events",
                    "flush", "get_events", "get_latest_sequence")


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    name = type(exc).__name__
    return name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
                    "NoCredentialsError")


class CompositeSessionStore:
    """Pair a session store with an artifact store.

    >>> from asm_nb.stores.memory import InMemoryStore
    >>> from asm_nb.stores.artifacts import InMemoryArtifactStore
    >>> store = CompositeSessionStore(InMemoryStore(), InMemoryArtifactStore())
    >>> store.put("k", b"v"); store.get("k")
    b'v'
    """

    def __init__(self, session_store: Any, artifact_store: Any) -> None:
        if session_store is None or artifact_store is None:
            raise AsmError("validation_error", "CompositeSessionStore needs a session store and an artifact store")
        self.sessions = session_store
        self.artifacts = artifact_store

    if TYPE_CHECKING:  # the forwarders installed below, as a type checker should see them
        save_session = SessionStore.save_session
        get_session = SessionStore.get_session
        list_sessions = SessionStore.list_sessions
        delete_session = SessionStore.delete_session
        save_run = SessionStore.save_run
        get_run = SessionStore.get_run
        list_runs = SessionStore.list_runs
        get_active_run = SessionStore.get_active_run
        append_event = SessionStore.append_event
        append_event_with_sequence = SessionStore.append_event_with_sequence
        append_events = SessionStore.append_events
        flush = SessionStore.flush
        get_events = SessionStore.get_events
        get_latest_sequence = SessionStore.get_latest_sequence

    def __repr__(self) -> str:
        return f"CompositeSessionStore({self.sessions!r}, {self.artifacts!r})"

    @property
    def inline_safe(self) -> bool:
        """Session calls are as cheap as the inner store's."""
        return bool(getattr(self.sessions, "inline_safe", False))

    def __getattr__(self, name: str) -> Any:
        # every SessionStore method (and extras such as LocalStore.root) forwards unchanged
        if name in ("sessions", "artifacts"):
            raise AttributeError(name)
        return getattr(self.sessions, name)

    # -- artifacts ---------------------------------------------------------------------------
    def _artifact_call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.artifacts, op)(*args, **kwargs)
        except AsmError:
            raise
        except Exception as exc:
            if _unavailable(exc):
                raise AsmError("storage_error", f"Artifact store {op} failed because backend is unavailable",
                               details={"reason": repr(exc)}) from exc
            raise AsmError("storage_error", f"Artifact store {op} failed: {exc}",
                           details={"reason": repr(exc)}) from exc

    def put(self, key: str, data: Any, **opts: Any) -> None:
        """Store bytes in the artifact store and register them (artifact registry row in the
        session store: checksum, size, ``storage_backend``/``storage_ref`` of the artifact store)."""
        from .artifacts import to_bytes

        payload = to_bytes(data)
        self._artifact_call("put", key, payload, **opts)
        self._register(key, payload, opts)

    def _register(self, key: str, payload: bytes, opts: Mapping[str, Any]) -> None:
        saver = getattr(self.sessions, "save_artifact_record", None)
        lister: Callable[..., Any] | None = getattr(self.sessions, "list_artifact_records", None)
        if not callable(saver) or not callable(lister):
            return
        import hashlib
        import secrets

        from ..core.serialization import utc_now

        old = next((r for r in lister(opts.get("session_id")) if r.get("key") == key), None)
        if old is None and opts.get("session_id") is not None:
            old = next((r for r in lister(None) if r.get("key") == key), None)
        backend, ref = _storage_of(self.artifacts, key)
        rec = {**(old or {}), "id": (old or {}).get("id") or "art_" + secrets.token_urlsafe(12), "key": key,
               "byte_size": len(payload), "checksum_sha256": hashlib.sha256(payload).hexdigest(),
               "storage_backend": backend, "storage_ref": ref, "deleted_at": None,
               "created_at": (old or {}).get("created_at") or utc_now()}
        for k in ("session_id", "run_id", "content_type"):
            if opts.get(k) is not None or k not in rec:
                rec[k] = opts.get(k)
        rec["metadata"] = dict(opts.get("metadata") or rec.get("metadata") or {})
        saver(rec)

    def get(self, key: str, **opts: Any) -> bytes:
        """Bytes from the artifact store (``not_found`` passes through)."""
        return self._artifact_call("get", key, **opts)

    def delete(self, key: str, **opts: Any) -> None:
        """Delete from the artifact store (idempotent); its registry row is soft deleted."""
        self._artifact_call("delete", key, **opts)
        lister: Callable[..., Any] | None = getattr(self.sessions, "list_artifact_records", None)
        if callable(lister):
            from ..core.serialization import utc_now

            for r in lister(None):
                if r.get("key") == key and not r.get("deleted_at"):
                    self.sessions.save_artifact_record({**r, "deleted_at": utc_now()})

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the session store, then the artifact store (when it has ``close``)."""
        try:
            self.sessions.close()
        finally:
            closer = getattr(self.artifacts, "close", None)
            if callable(closer):
                closer()

    def __enter__(self) -> "CompositeSessionStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _storage_of(artifacts: Any, key: str) -> tuple[str, str]:
    """``(storage_backend, storage_ref)`` of ``key`` in ``artifacts``."""
    bucket = getattr(artifacts, "bucket", None)
    if isinstance(bucket, str):
        return "s3", f"s3://{bucket}/{artifacts.object_key(key)}"
    root = getattr(artifacts, "root", None)
    if root is not None:
        try:
            return "file", "file://" + str(artifacts.path_for(key))
        except AsmError:
            return "file", "file://" + str(root)
    return type(artifacts).__name__, key


# explicit forwarding methods (visible to Protocol checks and help(); __getattr__ covers the rest)
def _forward(name: str) -> Any:
    def method(self: CompositeSessionStore, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.sessions, name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"Forwarded to the session store's ``{name}``."
    return method


def _install_forwarders() -> None:
    for name in _SESSION_METHODS:
        setattr(CompositeSessionStore, name, _forward(name))


_install_forwarders()
