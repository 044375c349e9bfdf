"""Generic QueryAPI: read-only, cross-session queries over any store that can enumerate its
rows (docs/stores.md, queries). SqlStore answers the same questions with SQL; InMemoryStore and
LocalStore use this scan implementation (``GenericQueryAPI(store)``).

The store must offer ``list_sessions()``, ``list_runs(None)`` (every run), ``get_session``,
``get_events(session_id)`` and preferably ``list_session_ids()`` (sessions known only from
their events). Cursors are URL-safe base64 of compact JSON ``{"r", "o", "v", "id"}`` (keyset
pagination tied to the resource and the order). Imports ``core``, ``config`` and ``cost``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, NamedTuple, TypeGuard

from .. import config
from ..core.errors import AsmError
from ..core.events import EventType
from ..core.run import RunStatus
from ..core.serialization import format_datetime, parse_datetime
from ..core.session import SessionStatus

__all__ = ["GenericQueryAPI", "query_api", "encode_cursor", "decode_cursor", "SESSION_ORDERS", "RUN_ORDERS",
           "EVENT_ORDERS"]

SESSION_ORDERS = ("updated_at_desc", "created_at_asc", "created_at_desc")
RUN_ORDERS = ("started_at_desc", "started_at_asc", "token_usage_desc")
EVENT_ORDERS = ("sequence_asc", "timestamp_asc", "timestamp_desc")

_RESOURCE_LABEL = {"session": "Session", "run": "Run", "event": "Event"}


def _guard(fn: Callable) -> Callable:
    """``AsmError`` passes through; anything else → ``query_error`` "<message>"."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AsmError:
            raise
        except Exception as exc:
            raise AsmError("query_error", str(exc) or repr(exc)) from exc

    return wrapper


# --------------------------------------------------------------------------------------------
# validation


def order_choice(value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` when it is one of the ``allowed`` orders, else the first (the default)."""
    return value if isinstance(value, str) and value in allowed else allowed[0]


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _limit(value: Any, default_key: str) -> int:
    if value is None:
        return int(config.get(default_key))
    mx = int(config.get("max_query_limit"))
    if _is_int(value) and value > 0:
        if value > mx:
            raise AsmError("validation_error", f"limit must be <= {mx}")
        return value
    raise AsmError("validation_error", "limit must be a positive integer")


def _values(value: Any, allowed: Iterable[str], field: str) -> set[str] | None:
    """Enum member / str / list of them → set of strings; None or [] → None (no filter)."""
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    if not items:
        return None
    allowed = set(allowed)
    out = set()
    for v in items:
        if not isinstance(v, str):  # str-enum members are str
            raise AsmError("validation_error", f"{field} values must be strings")
        s = getattr(v, "value", v)
        if s not in allowed:
            raise AsmError("validation_error", f"{field} contains unsupported value: {s!r}")
        out.add(s)
    return out


def _one_or_many(value: Any) -> set | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        return set(value) if value else None
    return {value}


def _dt(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    if isinstance(value, str):
        try:
            return parse_datetime(value)
        except ValueError:
            pass
    raise AsmError("validation_error", f"{name} must be a timezone-aware datetime")


def _check_opts(opts: Mapping[str, Any], allowed: Iterable[str], fn: str) -> None:
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise AsmError("validation_error", f"{fn}: unknown option(s): {', '.join(unknown)}")


# --------------------------------------------------------------------------------------------
# cursors


def encode_cursor(resource: str, order_by: str, value: Any, item_id: str) -> str:
    """URL-safe base64 of ``{"r", "o", "v", "id"}`` (compact JSON, no padding)."""
    raw = json.dumps({"r": resource, "o": order_by, "v": value, "id": item_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: Any, resource: str, order_by: str, default_order: str) -> tuple[Any, str]:
    """``(sort value, last id)`` from a cursor, with its error messages (docs/stores.md, queries)."""
    if order_by == "token_usage_desc":
        raise AsmError("invalid_cursor", "Cursor pagination is not supported for order_by token_usage_desc")
    if not isinstance(cursor, str) or not cursor:
        raise AsmError("invalid_cursor", "Cursor must be a non-empty string")
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise AsmError("invalid_cursor", "Cursor is not valid Base64") from None
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise AsmError("invalid_cursor", "Cursor payload could not be decoded") from None
    if not isinstance(payload, dict):
        raise AsmError("invalid_cursor", "Cursor payload could not be decoded")
    if payload.get("r") != resource or "v" not in payload or not isinstance(payload.get("id"), str):
        raise AsmError("invalid_cursor", "Cursor does not match expected format")
    order = payload.get("o")
    if order is None:
        if order_by != default_order:
            raise AsmError("invalid_cursor", "Cursor order does not match requested order_by")
    elif order != order_by:
        raise AsmError("invalid_cursor", "Cursor order does not match requested order_by")
    v = payload["v"]
    label = _RESOURCE_LABEL[resource]
    if order_by == "sequence_asc":
        if not _is_int(v):
            raise AsmError("invalid_cursor", f"{label} cursor has invalid sort value")
        return v, payload["id"]
    try:
        return parse_datetime(v), payload["id"]
    except (ValueError, TypeError):
        raise AsmError("invalid_cursor", f"{label} cursor has invalid sort value") from None


def _page(items: list, key: Callable[[Any], Any], desc: bool, limit: int, cursor: Any, resource: str,
          order_by: str, default_order: str, cursor_value: Callable[[Any], Any]) -> tuple[list, str | None]:
    """Sort by ``(key, id)``, apply the keyset cursor, cut to ``limit``, build the next cursor."""
    items = sorted(items, key=lambda x: (key(x), x.id), reverse=desc)
    if cursor is not None:
        cv, cid = decode_cursor(cursor, resource, order_by, default_order)
        if desc:
            items = [x for x in items if key(x) < cv or (key(x) == cv and x.id < cid)]
        else:
            items = [x for x in items if key(x) > cv or (key(x) == cv and x.id > cid)]
    page = items[:limit]
    if not page or order_by == "token_usage_desc":
        return page, None
    last = page[-1]
    return page, encode_cursor(resource, order_by, cursor_value(last), last.id)


def _num(v: Any) -> float | int:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def _total_tokens(tu: Any) -> int | float:
    """``token_usage["total_tokens"]`` when numeric; else input + output (cache excluded)."""
    tu = tu if isinstance(tu, Mapping) else {}
    t = tu.get("total_tokens")
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return t
    return _num(tu.get("input_tokens")) + _num(tu.get("output_tokens"))


def _model(run: Any) -> Any:
    pm = run.provider_metadata if isinstance(run.provider_metadata, Mapping) else {}
    return pm.get("model")


# --------------------------------------------------------------------------------------------
# search options (checked the same way by GenericQueryAPI and SqlQueryAPI)


class SessionSearch(NamedTuple):
    limit: int
    statuses: set[str] | None
    order_by: str
    after: datetime | None
    before: datetime | None
    providers: set | None
    tags: list


class RunSearch(NamedTuple):
    limit: int
    statuses: set[str] | None
    min_tokens: int | None
    order_by: str
    after: datetime | None
    before: datetime | None
    providers: set | None


def session_search_options(opts: Mapping[str, Any]) -> SessionSearch:
    """``search_sessions``' options, checked (unknown names, limit, status, dates) and defaulted."""
    _check_opts(opts, ("agent_id", "status", "provider", "tags", "created_after", "created_before",
                       "include_deleted", "order_by", "limit", "cursor"), "search_sessions")
    limit = _limit(opts.get("limit"), "default_session_query_limit")
    statuses = _values(opts.get("status"), (s.value for s in SessionStatus), "status")
    order_by = order_choice(opts.get("order_by"), SESSION_ORDERS)
    after, before = _dt(opts.get("created_after"), "created_after"), _dt(opts.get("created_before"), "created_before")
    providers = _one_or_many(opts.get("provider"))
    tags = opts.get("tags")
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    return SessionSearch(limit, statuses, order_by, after, before, providers, tags)


def run_search_options(opts: Mapping[str, Any]) -> RunSearch:
    """``search_runs``' options, checked (unknown names, limit, status, min_tokens, dates) and defaulted."""
    _check_opts(opts, ("session_id", "provider", "status", "started_after", "started_before", "min_tokens",
                       "order_by", "limit", "cursor"), "search_runs")
    limit = _limit(opts.get("limit"), "default_run_query_limit")
    statuses = _values(opts.get("status"), (s.value for s in RunStatus), "status")
    min_tokens = opts.get("min_tokens")
    if min_tokens is not None and not (_is_int(min_tokens) and min_tokens >= 0):
        raise AsmError("query_error", "min_tokens must be a non-negative integer")
    order_by = order_choice(opts.get("order_by"), RUN_ORDERS)
    after, before = _dt(opts.get("started_after"), "started_after"), _dt(opts.get("started_before"), "started_before")
    providers = _one_or_many(opts.get("provider"))
    return RunSearch(limit, statuses, min_tokens, order_by, after, before, providers)


class GenericQueryAPI:
    """The scan implementation of the QueryAPI protocol over ``store``.

    >>> from asm_nb.stores.memory import InMemoryStore
    >>> GenericQueryAPI(InMemoryStore()).search_sessions()["total_count"]
    0
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"GenericQueryAPI({self.store!r})"

    # -- row access -------------------------------------------------------------------------
    def _sessions(self) -> list:
        return list(self.store.list_sessions())

    def _runs(self) -> list:
        return list(self.store.list_runs(None))

    def _session_ids(self) -> list[str]:
        lister: Callable[..., Any] | None = getattr(self.store, "list_session_ids", None)
        if callable(lister):
            return list(lister())
        ids = {s.id for s in self._sessions()} | {r.session_id for r in self._runs()}
        return sorted(ids)

    def _events(self, session_ids: Iterable[str] | None = None) -> list:
        ids = self._session_ids() if session_ids is None else sorted(set(session_ids))
        out = []
        for sid in ids:
            out.extend(self.store.get_events(sid))
        return out

    # -- sessions ---------------------------------------------------------------------------
    @_guard
    def search_sessions(self, **opts: Any) -> dict[str, Any]:
        """Sessions matching ``agent_id``, ``status``, ``provider`` (having a run of it),
        ``tags`` (all present), ``created_after``/``created_before`` (inclusive),
        ``include_deleted`` (default False); ``order_by``, ``limit``, ``cursor``.
        → ``{"sessions", "cursor", "total_count"}``."""
        limit, statuses, order_by, after, before, providers, tags = session_search_options(opts)
        agent = opts.get("agent_id")
        with_provider = None
        if providers is not None:
            with_provider = {r.session_id for r in self._runs() if r.provider in providers}
        rows = []
        for s in self._sessions():
            if agent is not None and s.agent_id != agent:
                continue
            if statuses is not None and s.status.value not in statuses:
                continue
            if not opts.get("include_deleted", False) and s.deleted_at is not None:
                continue
            if after is not None and s.created_at < after:
                continue
            if before is not None and s.created_at > before:
                continue
            if tags and not all(t in (s.tags or []) for t in tags):
                continue
            if with_provider is not None and s.id not in with_provider:
                continue
            rows.append(s)
        col = "updated_at" if order_by == "updated_at_desc" else "created_at"
        page, cursor = _page(rows, lambda s: getattr(s, col), order_by.endswith("_desc"), limit,
                             opts.get("cursor"), "session", order_by, SESSION_ORDERS[0],
                             lambda s: format_datetime(getattr(s, col)))
        return {"sessions": page, "cursor": cursor, "total_count": len(rows)}

    @_guard
    def get_session_stats(self, session_id: str) -> dict[str, Any]:
        """Event/run counts, token totals, providers, first/last event time and run status
        counts of one session; missing → ``session_not_found`` "Session <id> not found"."""
        try:
            self.store.get_session(session_id)
        except AsmError as exc:
            if exc.code == "session_not_found":
                raise AsmError("session_not_found", f"Session {session_id} not found") from None
            raise
        runs = [r for r in self.store.list_runs(session_id)]
        events = list(self.store.get_events(session_id))
        totals: dict[str, int | float] = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        status_counts: dict[str, int] = {}
        for r in runs:
            tu = r.token_usage if isinstance(r.token_usage, Mapping) else {}
            totals["input_tokens"] += _num(tu.get("input_tokens"))
            totals["output_tokens"] += _num(tu.get("output_tokens"))
            totals["total_tokens"] += _total_tokens(tu)
            status_counts[r.status.value] = status_counts.get(r.status.value, 0) + 1
        times = [e.timestamp for e in events]
        return {"event_count": len(events), "run_count": len(runs), "token_totals": totals,
                "providers_used": sorted({r.provider for r in runs if r.provider is not None}),
                "first_event_at": min(times) if times else None, "last_event_at": max(times) if times else None,
                "status_counts": status_counts}

    # -- runs -------------------------------------------------------------------------------
    @_guard
    def search_runs(self, **opts: Any) -> dict[str, Any]:
        """Runs matching ``session_id``, ``provider`` (one or list), ``status``,
        ``started_after``/``started_before`` (inclusive), ``min_tokens``; ``order_by``, ``limit``,
        ``cursor``. → ``{"runs", "cursor"}``."""
        limit, statuses, min_tokens, order_by, after, before, providers = run_search_options(opts)
        sid = opts.get("session_id")
        rows = []
        for r in (self.store.list_runs(sid) if sid is not None else self._runs()):
            if providers is not None and r.provider not in providers:
                continue
            if statuses is not None and r.status.value not in statuses:
                continue
            if after is not None and r.started_at < after:
                continue
            if before is not None and r.started_at > before:
                continue
            if min_tokens is not None and _total_tokens(r.token_usage) < min_tokens:
                continue
            rows.append(r)
        if order_by == "token_usage_desc":
            if opts.get("cursor") is not None:
                decode_cursor(opts["cursor"], "run", order_by, RUN_ORDERS[0])
            page, cursor = _page(rows, lambda r: _total_tokens(r.token_usage), True, limit, None, "run", order_by,
                                 RUN_ORDERS[0], lambda r: None)
        else:
            page, cursor = _page(rows, lambda r: r.started_at, order_by.endswith("_desc"), limit,
                                 opts.get("cursor"), "run", order_by, RUN_ORDERS[0],
                                 lambda r: format_datetime(r.started_at))
        return {"runs": page, "cursor": cursor}

    def _usage_runs(self, opts: Mapping[str, Any]) -> list:
        sid = opts.get("session_id")
        providers = _one_or_many(opts.get("provider"))
        since, until = _dt(opts.get("since"), "since"), _dt(opts.get("until"), "until")
        runs = self.store.list_runs(sid) if sid is not None else self._runs()
        agent = opts.get("agent_id")
        agent_sessions = None
        if agent is not None:
            agent_sessions = {s.id for s in self._sessions() if s.agent_id == agent}
        out = []
        for r in runs:
            if providers is not None and r.provider not in providers:
                continue
            if since is not None and r.started_at < since:
                continue
            if until is not None and r.started_at > until:
                continue
            if agent_sessions is not None and r.session_id not in agent_sessions:
                continue
            out.append(r)
        return out

    @_guard
    def get_usage_summary(self, **opts: Any) -> dict[str, Any]:
        """Token totals over runs (``session_id``, ``provider``, ``since``/``until`` on
        ``started_at``, inclusive), overall and ``by_provider``."""
        _check_opts(opts, ("session_id", "provider", "since", "until"), "get_usage_summary")
        total: dict[str, int | float] = {"total_input_tokens": 0, "total_output_tokens": 0, "total_tokens": 0,
                                         "run_count": 0}
        by_provider: dict[str, dict[str, Any]] = {}
        for r in self._usage_runs(opts):
            tu = r.token_usage if isinstance(r.token_usage, Mapping) else {}
            i, o, t = _num(tu.get("input_tokens")), _num(tu.get("output_tokens")), _total_tokens(tu)
            total["total_input_tokens"] += i
            total["total_output_tokens"] += o
            total["total_tokens"] += t
            total["run_count"] += 1
            p = by_provider.setdefault(r.provider or "unknown",
                                       {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "run_count": 0})
            p["input_tokens"] += i
            p["output_tokens"] += o
            p["total_tokens"] += t
            p["run_count"] += 1
        return {**total, "by_provider": by_provider}

    @_guard
    def get_cost_summary(self, **opts: Any) -> dict[str, Any]:
        """USD over runs (usage filters + ``agent_id`` + ``pricing_table``): a run's stored
        ``cost_usd`` wins (a stored 0.0 is kept); else it is priced post hoc with the part 2
        calculator; no price → counted in ``unmapped_runs``."""
        _check_opts(opts, ("session_id", "provider", "since", "until", "agent_id", "pricing_table"),
                    "get_cost_summary")
        from ..cost.calculator import calculate_run_cost
        from ..cost.pricing import pricing_table, resolve_pricing

        table = opts.get("pricing_table")
        table = pricing_table() if table is None else resolve_pricing(table).table
        out: dict[str, Any] = {"total_cost_usd": 0.0, "run_count": 0, "by_provider": {}, "by_model": {},
                               "unmapped_runs": 0}
        for r in self._usage_runs(opts):
            out["run_count"] += 1
            cost = r.cost_usd
            if cost is None:
                try:
                    cost = calculate_run_cost(r, table)
                except Exception:
                    cost = None
            if not isinstance(cost, (int, float)) or isinstance(cost, bool):
                out["unmapped_runs"] += 1
                continue
            cost = float(cost)
            out["total_cost_usd"] += cost
            p = out["by_provider"].setdefault(r.provider or "unknown", {"cost_usd": 0.0, "run_count": 0})
            p["cost_usd"] += cost
            p["run_count"] += 1
            tu = r.token_usage if isinstance(r.token_usage, Mapping) else {}
            m = out["by_model"].setdefault(_model(r) or "unknown", {"cost_usd": 0.0, "input_tokens": 0,
                                                                     "output_tokens": 0})
            m["cost_usd"] += cost
            m["input_tokens"] += _num(tu.get("input_tokens"))
            m["output_tokens"] += _num(tu.get("output_tokens"))
        return out

    # -- events -----------------------------------------------------------------------------
    def _matching_events(self, opts: Mapping[str, Any]) -> list:
        types = _values(opts.get("types"), (t.value for t in EventType), "types")
        sids = opts.get("session_ids")
        sids = [sids] if isinstance(sids, str) else (list(sids) if sids else None)
        run_ids = _one_or_many(opts.get("run_ids"))
        providers = _one_or_many(opts.get("providers"))
        since, until = _dt(opts.get("since"), "since"), _dt(opts.get("until"), "until")
        corr = opts.get("correlation_id")
        out = []
        for e in self._events(sids):
            if run_ids is not None and e.run_id not in run_ids:
                continue
            if types is not None and e.type.value not in types:
                continue
            if providers is not None and e.provider not in providers:
                continue
            if since is not None and e.timestamp < since:
                continue
            if until is not None and e.timestamp > until:
                continue
            if corr is not None and e.correlation_id != corr:
                continue
            out.append(e)
        return out

    _EVENT_OPTS = ("session_ids", "run_ids", "types", "providers", "since", "until", "correlation_id")

    @_guard
    def search_events(self, **opts: Any) -> dict[str, Any]:
        """Events across sessions (``session_ids`` ([] = all), ``run_ids``, ``types``,
        ``providers``, ``since``/``until`` inclusive, ``correlation_id``); ``order_by``,
        ``limit``, ``cursor``. → ``{"events", "cursor"}``."""
        _check_opts(opts, (*self._EVENT_OPTS, "order_by", "limit", "cursor"), "search_events")
        limit = _limit(opts.get("limit"), "default_event_query_limit")
        order_by = order_choice(opts.get("order_by"), EVENT_ORDERS)
        rows = self._matching_events(opts)
        if order_by == "sequence_asc":
            page, cursor = _page(rows, lambda e: e.sequence_number or 0, False, limit, opts.get("cursor"), "event",
                                 order_by, EVENT_ORDERS[0], lambda e: e.sequence_number or 0)
        else:
            page, cursor = _page(rows, lambda e: e.timestamp, order_by.endswith("_desc"), limit, opts.get("cursor"),
                                 "event", order_by, EVENT_ORDERS[0], lambda e: format_datetime(e.timestamp))
        return {"events": page, "cursor": cursor}

    @_guard
    def count_events(self, **opts: Any) -> int:
        """Number of events matching the ``search_events`` filters (no limit/cursor)."""
        _check_opts(opts, self._EVENT_OPTS, "count_events")
        return len(self._matching_events(opts))

    @_guard
    def export_session(self, session_id: str, *, include_artifacts: bool = False) -> dict[str, Any]:
        """``{"session", "runs", "events" (sequence order), "artifacts"?}`` of one session
        (soft-deleted ones too); missing → ``session_not_found`` "Session <id> not found"."""
        try:
            session = self.store.get_session(session_id)
        except AsmError as exc:
            if exc.code == "session_not_found":
                raise AsmError("session_not_found", f"Session {session_id} not found") from None
            raise
        out: dict[str, Any] = {"session": session, "runs": list(self.store.list_runs(session_id)),
                               "events": list(self.store.get_events(session_id))}
        if include_artifacts:
            lister: Callable[..., Any] | None = getattr(self.store, "list_artifact_records", None)
            out["artifacts"] = list(lister(session_id)) if callable(lister) else []
        return out


def query_api(store: Any) -> Any:
    """``store.query`` when the store has its own QueryAPI, else a ``GenericQueryAPI``. A
    non-store → ``validation_error`` "QueryAPI ref must implement QueryAPI, got: <repr>"."""
    q = getattr(store, "query", None)
    if q is not None and callable(getattr(q, "search_sessions", None)):
        return q
    if callable(getattr(store, "list_sessions", None)) and callable(getattr(store, "get_events", None)):
        return GenericQueryAPI(store)
    raise AsmError("validation_error", f"QueryAPI ref must implement QueryAPI, got: {store!r}")
