"""``asm_nb.query`` and ``asm_nb.maintenance``: the QueryAPI and Maintenance of a store.

- :func:`query` — the store's QueryAPI (its own ``query`` when it has one, else the generic
  scan implementation of ``stores/_query.py``);
- :func:`maintenance` — the store's Maintenance (its own, else ``stores/_maintenance.py``).

Imports ``core`` and ``stores``; no Jupyter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ports import SessionStore, StoreRef

__all__ = ["query", "maintenance"]


def _store(store: StoreRef) -> SessionStore:
    from ..stores import resolve_store

    return resolve_store(store)


def query(store: StoreRef = None) -> Any:
    """The QueryAPI of ``store`` (a store, a path/URL, or None for the default store): the
    store's own ``query`` when it has one (SqlStore answers with SQL), else a
    ``GenericQueryAPI`` scanning its rows.

    >>> q = query("memory://")
    >>> q.search_runs()["runs"]
    []
    """
    from ..stores._query import query_api

    return query_api(_store(store))


def maintenance(store: StoreRef = None) -> Any:
    """The Maintenance of ``store`` (its own ``maintenance`` when it has one, else a
    ``GenericMaintenance``): ``execute(policy)``, ``health_check()``, ...

    >>> maintenance("memory://").health_check()
    []
    """
    from ..stores._maintenance import maintenance as _maintenance

    return _maintenance(_store(store))
