"""Session stores and ``open_store``: one call that turns a target into a SessionStore.

``InMemoryStore`` (``stores/memory.py``), ``LocalStore`` (``stores/local.py``, the default) and
``SqlStore`` (``stores/sql.py``) are imported only when asked for, so ``import asm_nb`` stays light.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..core.errors import AsmError

if TYPE_CHECKING:  # pragma: no cover
    from ..ports import SessionStore
    from .local import LocalStore
    from .memory import InMemoryStore

__all__ = ["open_store", "artifact_store", "default_root", "default_store", "resolve_store", "InMemoryStore",
           "LocalStore"]

_ACCEPTED = ("None (LocalStore at $ASM_HOME or ./.asm), 'memory://', a directory path (str, Path or "
             "'file://...'), an SQLAlchemy URL ('sqlite:///...', 'postgresql://...', "
             "'postgresql+psycopg://...'), a scheme registered in the 'asm_nb.stores' entry-point group, "
             "or an object implementing the SessionStore protocol")

_SQL_PREFIXES = ("sqlite:", "sqlite+", "postgresql:", "postgresql+", "postgres:")

_STORE_METHODS = ("save_session", "get_session", "list_sessions", "delete_session", "save_run", "get_run",
                  "list_runs", "get_active_run", "append_event", "append_event_with_sequence", "append_events",
                  "flush", "get_events", "get_latest_sequence", "close")


def default_root() -> Path:
    """Where ``open_store()`` puts the LocalStore: ``$ASM_HOME`` if set, else ``./.asm``."""
    home = os.environ.get("ASM_HOME")
    return Path(home).expanduser() if home else Path.cwd() / ".asm"


def _is_store(obj: Any) -> bool:
    return all(callable(getattr(obj, m, None)) for m in _STORE_METHODS)


def open_store(target: Any = None, *, artifacts: Any = None, artifact_options: Mapping[str, Any] | None = None,
               **opts: Any) -> "SessionStore":
    """Open a SessionStore.

    >>> store = open_store("memory://")        # a fresh InMemoryStore
    >>> # open_store()                          LocalStore at $ASM_HOME or ./.asm
    >>> # open_store("runs/")                   LocalStore in that folder
    >>> # open_store("sqlite:///runs.db")       SqlStore (SQLAlchemy URL)
    >>> # open_store("postgresql://...", artifacts="s3://bucket/asm/")   sessions in SQL, bytes in S3

    ``opts`` go to the store's constructor (e.g. ``durability="fsync"`` for LocalStore).
    A store object is returned as is. Anything else → ``validation_error``.

    ``artifacts`` puts artifact bytes (workspace patches) elsewhere: ``"s3://bucket/prefix"``
    (``S3ArtifactStore``; ``artifact_options`` such as ``endpoint_url``, ``region_name`` go to it;
    credentials come from the usual AWS environment), ``"file:///path"`` or a folder path
    (``FileArtifactStore``), or an artifact store object. The result is a
    ``CompositeSessionStore``: sessions, runs and events in the session store, bytes in the
    artifact store, one registry row per artifact in the session store.
    """
    if artifacts is not None:
        from .composite import CompositeSessionStore

        arts = artifact_store(artifacts, **dict(artifact_options or {}))
        return CompositeSessionStore(open_store(target, **opts), arts)
    if artifact_options:
        raise AsmError("validation_error", "artifact_options needs artifacts=...")
    if target is None:
        from .local import LocalStore

        return LocalStore(default_root(), **opts)
    if isinstance(target, Path):
        from .local import LocalStore

        return LocalStore(target, **opts)
    if isinstance(target, str):
        s = target.strip()
        if s == "memory://" or s == "memory":
            if opts:
                raise AsmError("validation_error", f"InMemoryStore takes no options, got: {sorted(opts)}")
            from .memory import InMemoryStore

            return InMemoryStore()
        if s.startswith(_SQL_PREFIXES):
            return _open_sql(s, opts)
        if s.startswith("file://"):
            s = s[len("file://"):]
            if not s:
                raise AsmError("validation_error", "file:// URL without a path")
        elif "://" in s:
            plugin = _plugin_store(s, opts)
            if plugin is not None:
                return plugin
            raise AsmError("validation_error", f"unsupported store URL {target!r}; accepted: {_ACCEPTED}")
        if not s:
            raise AsmError("validation_error", f"empty store target; accepted: {_ACCEPTED}")
        from .local import LocalStore

        return LocalStore(Path(s).expanduser(), **opts)
    if _is_store(target):
        return target
    raise AsmError("validation_error", f"cannot open a store from {target!r}; accepted: {_ACCEPTED}")


def artifact_store(target: Any, **options: Any) -> Any:
    """An artifact store from ``"s3://bucket/prefix"``, ``"file:///path"`` / a folder path, or an
    object with ``put``/``get``/``delete`` (returned as is).

    >>> artifact_store("file:///tmp/asm-artifacts")  # doctest: +ELLIPSIS
    FileArtifactStore('/tmp/asm-artifacts', layout='content')
    """
    if all(callable(getattr(target, m, None)) for m in ("put", "get", "delete")):
        return target
    if isinstance(target, Path):
        target = str(target)
    if not isinstance(target, str) or not target.strip():
        raise AsmError("validation_error", f"artifacts must be 's3://bucket/prefix', 'file:///path' or an artifact "
                                           f"store, got {target!r}")
    t = target.strip()
    if t.startswith("s3://"):
        bucket, _, prefix = t[len("s3://"):].partition("/")
        if not bucket:
            raise AsmError("validation_error", f"S3 artifacts URL without a bucket: {target!r}")
        try:
            from .s3 import S3ArtifactStore
        except ModuleNotFoundError as exc:
            raise AsmError("dependency_not_available", "S3 artifacts need boto3: pip install 'asm_nb[s3]'",
                           details={"missing": exc.name}) from None
        return S3ArtifactStore(bucket, prefix=prefix, **options)
    if t.startswith("file://"):
        t = t[len("file://"):]
    elif "://" in t:
        raise AsmError("validation_error", f"unsupported artifacts URL {target!r}; use s3://bucket/prefix or "
                                           "file:///path")
    from .artifacts import FileArtifactStore

    return FileArtifactStore(os.path.expanduser(t), layout="content", **options)


def _plugin_store(url: str, opts: dict[str, Any]) -> "SessionStore | None":
    """A store from the ``asm_nb.stores`` entry-point group whose name is the URL's scheme: the
    entry point names a callable ``factory(url, **opts)`` returning a SessionStore. None when no
    plugin registers the scheme."""
    from importlib.metadata import entry_points

    scheme = url.split("://", 1)[0]
    for ep in entry_points(group="asm_nb.stores"):
        if ep.name != scheme:
            continue
        try:
            factory = ep.load()
        except Exception as exc:
            raise AsmError("dependency_not_available",
                           f"store plugin {ep.value!r} for {scheme}:// could not be loaded: {exc}",
                           details={"entry_point": ep.value}) from None
        store = factory(url, **opts)
        if not _is_store(store):
            raise AsmError("validation_error",
                           f"store plugin {ep.value!r} returned {type(store).__name__}, not a SessionStore")
        return store
    return None


def _open_sql(url: str, opts: dict[str, Any]) -> "SessionStore":
    try:
        from .sql import SqlStore
    except ModuleNotFoundError as exc:
        missing = exc.name or "asm_nb.stores.sql"
        if missing == "asm_nb.stores.sql":
            msg = f"SqlStore (asm_nb.stores.sql) is not available in this build; cannot open {url!r}"
        else:
            msg = (f"SqlStore needs the '{missing.split('.')[0]}' package to open {url!r}; "
                   "install it with: pip install 'asm_nb[sql]'")
        raise AsmError("dependency_not_available", msg, details={"missing": missing}) from None
    return SqlStore(url, **opts)


_store_lock = threading.Lock()
_default_stores: dict[str, Any] = {}  # resolved location -> the one store object for it in this process


def default_store() -> "SessionStore":
    """The store used when none is given: config ``default_store`` (path/URL), else LocalStore at
    ``$ASM_HOME`` or ``./.asm`` (one instance per resolved location per process)."""
    from .. import config

    target = config.get("default_store")
    if target is not None and not isinstance(target, str):
        return target
    key = target or os.path.abspath(os.environ.get("ASM_HOME") or ".asm")
    with _store_lock:
        store = _default_stores.get(key)
        if store is None:
            store = open_store(target)
            _default_stores[key] = store
        return store


def resolve_store(store: Any = None) -> "SessionStore":
    """A store object from ``None`` (default store), a path/URL string, or a store instance.

    A path or URL opens one store per process (later calls with the same string share it);
    ``"memory://"`` is a fresh store every time.
    """
    if store is None:
        return default_store()
    if isinstance(store, str) or hasattr(store, "__fspath__"):
        target = str(store)
        if target == "memory://":
            return open_store(target)
        with _store_lock:
            cached = _default_stores.get(target)
            if cached is None:
                cached = open_store(target)
                _default_stores[target] = cached
            return cached
    return store


def __getattr__(name: str) -> Any:
    if name == "InMemoryStore":
        from .memory import InMemoryStore

        return InMemoryStore
    if name == "LocalStore":
        from .local import LocalStore

        return LocalStore
    raise AttributeError(f"module 'asm_nb.stores' has no attribute {name!r}")
