"""QueryAPI and Maintenance of SqlStore as SQL (docs/stores.md, queries; docs/stores.md, retention and maintenance):
filters, counts, sums,
keyset cursors and deletions run in the database; only the post-hoc pricing of runs without a
stored ``cost_usd`` runs in Python (the part 2 cost calculator).

Behaviour (validation order, messages, cursor format, report shape) is the generic one of
``_query.py`` / ``_maintenance.py``, whose helpers are reused; both suites run on SqlStore.
Every operation first commits the store's write-behind buffers (read-your-writes).
"""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from typing import Any, Mapping

import sqlalchemy as sa

from ..core.errors import AsmError
from ..core.events import EventType
from ..core.serialization import format_datetime, utc_now
from ..persistence.retention import RetentionPolicy
from . import _sql_schema as S
from ._maintenance import PROTECTED_EVENT_TYPES, GenericMaintenance
from ._query import (EVENT_ORDERS, RUN_ORDERS, SESSION_ORDERS, GenericQueryAPI, _check_opts, _dt, _guard,
                     _limit, _one_or_many, _values, decode_cursor, encode_cursor, order_choice, run_search_options,
                     session_search_options)

__all__ = ["SqlQueryAPI", "SqlMaintenance"]


def _n(v: Any) -> int | float:
    """Database numbers → int when integral, else float (Decimal from PostgreSQL numeric)."""
    if v is None:
        return 0
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


class _Dialect:
    """JSON expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, pg: bool) -> None:
        self.pg = pg

    def num(self, col: Any, key: str) -> Any:
        """``col[key]`` when it is a JSON number, else 0."""
        if self.pg:
            return sa.case((sa.func.json_typeof(col.op("->")(key)) == "number",
                            sa.cast(col.op("->>")(key), sa.Numeric)), else_=0)
        return sa.case((sa.func.json_type(col, f"$.{key}").in_(("integer", "real")),
                        sa.func.json_extract(col, f"$.{key}")), else_=0)

    def is_num(self, col: Any, key: str) -> Any:
        if self.pg:
            return sa.func.json_typeof(col.op("->")(key)) == "number"
        return sa.func.json_type(col, f"$.{key}").in_(("integer", "real"))

    def total_tokens(self, col: Any) -> Any:
        """``total_tokens`` when numeric, else input + output (as ``_query._total_tokens``)."""
        return sa.case((self.is_num(col, "total_tokens"), self.num(col, "total_tokens")),
                       else_=self.num(col, "input_tokens") + self.num(col, "output_tokens"))

    def text(self, col: Any, key: str) -> Any:
        if self.pg:
            return col.op("->>")(key)
        return sa.func.json_extract(col, f"$.{key}")

    def has_tag(self, col: Any, tag: str) -> Any:
        if self.pg:
            je = sa.func.json_array_elements_text(col).table_valued("value")
        else:
            je = sa.func.json_each(col).table_valued("value")
        return sa.exists(sa.select(sa.literal(1)).select_from(je).where(je.c.value == tag))


def _keyset(col: Any, idcol: Any, desc: bool, value: Any, cid: str) -> Any:
    if desc:
        return sa.or_(col < value, sa.and_(col == value, idcol < cid))
    return sa.or_(col > value, sa.and_(col == value, idcol > cid))


def _order(col: Any, idcol: Any, desc: bool) -> tuple:
    return (col.desc(), idcol.desc()) if desc else (col.asc(), idcol.asc())


class SqlQueryAPI(GenericQueryAPI):
    """QueryAPI over a ``SqlStore`` with SQL (same results as ``GenericQueryAPI``)."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.d = _Dialect(store.dialect == "postgresql")

    def __repr__(self) -> str:
        return f"SqlQueryAPI({self.store!r})"

    def _rows(self, q: Any) -> list:
        self.store.flush()
        return self.store._read(lambda c: c.execute(q).mappings().all())

    def _scalar(self, q: Any) -> Any:
        self.store.flush()
        return self.store._read(lambda c: c.execute(q).scalar())

    # -- sessions ---------------------------------------------------------------------------
    @_guard
    def search_sessions(self, **opts: Any) -> dict[str, Any]:
        """As ``GenericQueryAPI.search_sessions``, in SQL."""
        from .sql import session_from_row

        limit, statuses, order_by, after, before, providers, tags = session_search_options(opts)
        t = S.sessions
        where = []
        if opts.get("agent_id") is not None:
            where.append(t.c.agent_id == opts["agent_id"])
        if statuses is not None:
            where.append(t.c.status.in_(sorted(statuses)))
        if not opts.get("include_deleted", False):
            where.append(t.c.deleted_at.is_(None))
        if after is not None:
            where.append(t.c.created_at >= after)
        if before is not None:
            where.append(t.c.created_at <= before)
        for tag in tags:
            where.append(self.d.has_tag(t.c.tags, tag))
        if providers is not None:
            where.append(t.c.id.in_(sa.select(S.runs.c.session_id).where(S.runs.c.provider.in_(sorted(providers)))))
        total = self._scalar(sa.select(sa.func.count()).select_from(t).where(*where))
        col = t.c.updated_at if order_by == "updated_at_desc" else t.c.created_at
        desc = order_by.endswith("_desc")
        page_where = list(where)
        if opts.get("cursor") is not None:
            cv, cid = decode_cursor(opts["cursor"], "session", order_by, SESSION_ORDERS[0])
            page_where.append(_keyset(col, t.c.id, desc, cv, cid))
        rows = self._rows(sa.select(t).where(*page_where).order_by(*_order(col, t.c.id, desc)).limit(limit))
        page = [session_from_row(r) for r in rows]
        cursor = None
        if page:
            last = page[-1]
            cursor = encode_cursor("session", order_by, format_datetime(getattr(last, col.name)), last.id)
        return {"sessions": page, "cursor": cursor, "total_count": int(total or 0)}

    @_guard
    def get_session_stats(self, session_id: str) -> dict[str, Any]:
        """As ``GenericQueryAPI.get_session_stats``, in SQL."""
        self.store.flush()
        if self._scalar(sa.select(sa.func.count()).select_from(S.sessions).where(S.sessions.c.id == session_id)) == 0:
            raise AsmError("session_not_found", f"Session {session_id} not found")
        e, r = S.events, S.runs
        ev = self._rows(sa.select(sa.func.count().label("n"), sa.func.min(e.c.timestamp).label("first"),
                                  sa.func.max(e.c.timestamp).label("last")).where(e.c.session_id == session_id))[0]
        tu = r.c.token_usage
        agg = self._rows(sa.select(r.c.status, sa.func.count().label("n"),
                                   sa.func.sum(self.d.num(tu, "input_tokens")).label("i"),
                                   sa.func.sum(self.d.num(tu, "output_tokens")).label("o"),
                                   sa.func.sum(self.d.total_tokens(tu)).label("t"))
                         .where(r.c.session_id == session_id).group_by(r.c.status))
        providers = self._rows(sa.select(r.c.provider).distinct()
                               .where(r.c.session_id == session_id, r.c.provider.is_not(None)))
        totals: dict[str, int | float] = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        status_counts: dict[str, int] = {}
        for row in agg:
            status_counts[row["status"]] = int(row["n"])
            totals["input_tokens"] += _n(row["i"])
            totals["output_tokens"] += _n(row["o"])
            totals["total_tokens"] += _n(row["t"])
        first, last = ev["first"], ev["last"]
        col = S.Timestamp()  # the events.timestamp column's type: text in the database, datetimes out
        return {"event_count": int(ev["n"]), "run_count": sum(status_counts.values()), "token_totals": totals,
                "providers_used": sorted(p["provider"] for p in providers),
                "first_event_at": None if first is None else col.process_result_value(first, self._dialect()),
                "last_event_at": None if last is None else col.process_result_value(last, self._dialect()),
                "status_counts": status_counts}

    def _dialect(self) -> Any:
        return self.store._engine.dialect

    # -- runs -------------------------------------------------------------------------------
    @_guard
    def search_runs(self, **opts: Any) -> dict[str, Any]:
        """As ``GenericQueryAPI.search_runs``, in SQL."""
        from .sql import run_from_row

        limit, statuses, min_tokens, order_by, after, before, providers = run_search_options(opts)
        t = S.runs
        where = []
        if opts.get("session_id") is not None:
            where.append(t.c.session_id == opts["session_id"])
        if providers is not None:
            where.append(t.c.provider.in_(sorted(providers)))
        if statuses is not None:
            where.append(t.c.status.in_(sorted(statuses)))
        if after is not None:
            where.append(t.c.started_at >= after)
        if before is not None:
            where.append(t.c.started_at <= before)
        total_expr = self.d.total_tokens(t.c.token_usage)
        if min_tokens is not None:
            where.append(total_expr >= min_tokens)
        if order_by == "token_usage_desc":
            if opts.get("cursor") is not None:
                decode_cursor(opts["cursor"], "run", order_by, RUN_ORDERS[0])
            rows = self._rows(sa.select(t).where(*where).order_by(total_expr.desc(), t.c.id.desc()).limit(limit))
            return {"runs": [run_from_row(r) for r in rows], "cursor": None}
        desc = order_by.endswith("_desc")
        if opts.get("cursor") is not None:
            cv, cid = decode_cursor(opts["cursor"], "run", order_by, RUN_ORDERS[0])
            where.append(_keyset(t.c.started_at, t.c.id, desc, cv, cid))
        rows = self._rows(sa.select(t).where(*where).order_by(*_order(t.c.started_at, t.c.id, desc)).limit(limit))
        page = [run_from_row(r) for r in rows]
        cursor = encode_cursor("run", order_by, format_datetime(page[-1].started_at), page[-1].id) if page else None
        return {"runs": page, "cursor": cursor}

    def _run_where(self, opts: Mapping[str, Any]) -> list:
        t = S.runs
        where = []
        if opts.get("session_id") is not None:
            where.append(t.c.session_id == opts["session_id"])
        providers = _one_or_many(opts.get("provider"))
        if providers is not None:
            where.append(t.c.provider.in_(sorted(providers)))
        since, until = _dt(opts.get("since"), "since"), _dt(opts.get("until"), "until")
        if since is not None:
            where.append(t.c.started_at >= since)
        if until is not None:
            where.append(t.c.started_at <= until)
        if opts.get("agent_id") is not None:
            where.append(t.c.session_id.in_(sa.select(S.sessions.c.id).where(S.sessions.c.agent_id == opts["agent_id"])))
        return where

    @_guard
    def get_usage_summary(self, **opts: Any) -> dict[str, Any]:
        """As ``GenericQueryAPI.get_usage_summary``, with one ``GROUP BY provider``."""
        _check_opts(opts, ("session_id", "provider", "since", "until"), "get_usage_summary")
        t = S.runs
        tu = t.c.token_usage
        rows = self._rows(sa.select(t.c.provider, sa.func.count().label("n"),
                                    sa.func.sum(self.d.num(tu, "input_tokens")).label("i"),
                                    sa.func.sum(self.d.num(tu, "output_tokens")).label("o"),
                                    sa.func.sum(self.d.total_tokens(tu)).label("t"))
                          .where(*self._run_where(opts)).group_by(t.c.provider))
        out: dict[str, Any] = {"total_input_tokens": 0, "total_output_tokens": 0, "total_tokens": 0, "run_count": 0}
        by_provider: dict[str, dict[str, Any]] = {}
        for r in rows:
            i, o, tt, n = _n(r["i"]), _n(r["o"]), _n(r["t"]), int(r["n"])
            out["total_input_tokens"] += i
            out["total_output_tokens"] += o
            out["total_tokens"] += tt
            out["run_count"] += n
            p = by_provider.setdefault(r["provider"] or "unknown",
                                       {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "run_count": 0})
            p["input_tokens"] += i
            p["output_tokens"] += o
            p["total_tokens"] += tt
            p["run_count"] += n
        return {**out, "by_provider": by_provider}

    @_guard
    def get_cost_summary(self, **opts: Any) -> dict[str, Any]:
        """As ``GenericQueryAPI.get_cost_summary``: stored costs are summed in SQL (``GROUP BY``
        provider, model); only runs without a stored cost are fetched and priced in Python."""
        from ..cost.calculator import calculate_run_cost
        from ..cost.pricing import pricing_table, resolve_pricing
        from .sql import run_from_row

        _check_opts(opts, ("session_id", "provider", "since", "until", "agent_id", "pricing_table"),
                    "get_cost_summary")
        table = opts.get("pricing_table")
        table = pricing_table() if table is None else resolve_pricing(table).table
        t = S.runs
        where = self._run_where(opts)
        tu = t.c.token_usage
        model = self.d.text(t.c.provider_metadata, "model")
        out: dict[str, Any] = {"total_cost_usd": 0.0, "run_count": 0, "by_provider": {}, "by_model": {},
                               "unmapped_runs": 0}

        def add(provider: Any, model_name: Any, cost: float, n: int, i: Any, o: Any) -> None:
            out["total_cost_usd"] += cost
            p = out["by_provider"].setdefault(provider or "unknown", {"cost_usd": 0.0, "run_count": 0})
            p["cost_usd"] += cost
            p["run_count"] += n
            m = out["by_model"].setdefault(model_name or "unknown", {"cost_usd": 0.0, "input_tokens": 0,
                                                                      "output_tokens": 0})
            m["cost_usd"] += cost
            m["input_tokens"] += _n(i)
            m["output_tokens"] += _n(o)

        stored = self._rows(sa.select(t.c.provider, model.label("model"), sa.func.count().label("n"),
                                      sa.func.sum(t.c.cost_usd).label("c"),
                                      sa.func.sum(self.d.num(tu, "input_tokens")).label("i"),
                                      sa.func.sum(self.d.num(tu, "output_tokens")).label("o"))
                            .where(*where, t.c.cost_usd.is_not(None)).group_by(t.c.provider, model))
        for r in stored:
            out["run_count"] += int(r["n"])
            add(r["provider"], r["model"], float(r["c"] or 0.0), int(r["n"]), r["i"], r["o"])
        for row in self._rows(sa.select(t).where(*where, t.c.cost_usd.is_(None))):
            run = run_from_row(row)
            out["run_count"] += 1
            try:
                cost = calculate_run_cost(run, table)
            except Exception:  # noqa: BLE001 - unpriced
                cost = None
            if not isinstance(cost, (int, float)) or isinstance(cost, bool) or math.isnan(cost):
                out["unmapped_runs"] += 1
                continue
            tokens = run.token_usage if isinstance(run.token_usage, Mapping) else {}
            add(run.provider, (run.provider_metadata or {}).get("model"), float(cost), 1,
                tokens.get("input_tokens") if isinstance(tokens.get("input_tokens"), (int, float)) else 0,
                tokens.get("output_tokens") if isinstance(tokens.get("output_tokens"), (int, float)) else 0)
        return out

    # -- events -----------------------------------------------------------------------------
    def _event_where(self, opts: Mapping[str, Any]) -> list:
        types = _values(opts.get("types"), (t.value for t in EventType), "types")
        t = S.events
        where = []
        sids = opts.get("session_ids")
        sids = [sids] if isinstance(sids, str) else (list(sids) if sids else None)
        if sids is not None:
            where.append(t.c.session_id.in_(sids))
        run_ids = _one_or_many(opts.get("run_ids"))
        if run_ids is not None:
            where.append(t.c.run_id.in_(sorted(run_ids, key=str)))
        if types is not None:
            where.append(t.c.type.in_(sorted(types)))
        providers = _one_or_many(opts.get("providers"))
        if providers is not None:
            where.append(t.c.provider.in_(sorted(providers, key=str)))
        since, until = _dt(opts.get("since"), "since"), _dt(opts.get("until"), "until")
        if since is not None:
            where.append(t.c.timestamp >= since)
        if until is not None:
            where.append(t.c.timestamp <= until)
        if opts.get("correlation_id") is not None:
            where.append(t.c.correlation_id == opts["correlation_id"])
        return where

    @_guard
    def search_events(self, **opts: Any) -> dict[str, Any]:
        """As ``GenericQueryAPI.search_events``, in SQL."""
        from .sql import event_from_row

        _check_opts(opts, (*self._EVENT_OPTS, "order_by", "limit", "cursor"), "search_events")
        limit = _limit(opts.get("limit"), "default_event_query_limit")
        order_by = order_choice(opts.get("order_by"), EVENT_ORDERS)
        t = S.events
        where = self._event_where(opts)
        col = t.c.sequence_number if order_by == "sequence_asc" else t.c.timestamp
        desc = order_by.endswith("_desc")
        if opts.get("cursor") is not None:
            cv, cid = decode_cursor(opts["cursor"], "event", order_by, EVENT_ORDERS[0])
            where.append(_keyset(col, t.c.id, desc, cv, cid))
        rows = self._rows(sa.select(t).where(*where).order_by(*_order(col, t.c.id, desc)).limit(limit))
        page = [event_from_row(r) for r in rows]
        cursor = None
        if page:
            last = page[-1]
            v = last.sequence_number if order_by == "sequence_asc" else format_datetime(last.timestamp)
            cursor = encode_cursor("event", order_by, v, last.id)
        return {"events": page, "cursor": cursor}

    @_guard
    def count_events(self, **opts: Any) -> int:
        """Number of events matching the ``search_events`` filters (one ``COUNT``)."""
        _check_opts(opts, self._EVENT_OPTS, "count_events")
        return int(self._scalar(sa.select(sa.func.count()).select_from(S.events).where(*self._event_where(opts))) or 0)

    @_guard
    def export_session(self, session_id: str, *, include_artifacts: bool = False) -> dict[str, Any]:
        """As ``GenericQueryAPI.export_session`` (the store's own SQL reads)."""
        self.store.flush()
        return super().export_session(session_id, include_artifacts=include_artifacts)


class SqlMaintenance(GenericMaintenance):
    """Maintenance over a ``SqlStore`` with SQL (same behaviour as ``GenericMaintenance``)."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.d = _Dialect(store.dialect == "postgresql")

    def __repr__(self) -> str:
        return f"SqlMaintenance({self.store!r})"

    def _exec(self, fn: Any, what: str) -> Any:
        box: list = [None]

        def run(conn: sa.Connection) -> None:
            box[0] = fn(conn)

        try:
            self.store._write(run, what)
        except AsmError as exc:
            raise AsmError("maintenance_error", exc.message) from exc
        return box[0]

    def _rows(self, q: Any) -> list:
        self.store.flush()
        return self.store._read(lambda c: c.execute(q).all())

    def soft_delete_expired_sessions(self, policy: RetentionPolicy) -> int:
        """One ``UPDATE … SET deleted_at`` (rules of ``GenericMaintenance``)."""
        days = policy.max_completed_session_age_days
        if isinstance(days, float) and math.isinf(days):
            return 0
        now = utc_now()
        t = S.sessions
        where = [t.c.deleted_at.is_(None), t.c.updated_at < now - timedelta(days=days)]
        if policy.exempt_statuses:
            where.append(t.c.status.not_in(list(policy.exempt_statuses)))
        for tag in policy.exempt_tags or []:
            where.append(sa.not_(self.d.has_tag(t.c.tags, tag)))
        return int(self._exec(lambda c: c.execute(sa.update(t).where(*where).values(deleted_at=now)).rowcount,
                              "soft delete") or 0)

    def hard_delete_expired_sessions(self, policy: RetentionPolicy) -> int:
        """Sessions soft-deleted before the cutoff, each deleted with the cascade in its own
        transaction; the first failure → ``maintenance_error``."""
        days = policy.hard_delete_after_days
        if isinstance(days, float) and math.isinf(days):
            return 0
        t = S.sessions
        ids = [r[0] for r in self._rows(sa.select(t.c.id).where(t.c.deleted_at < utc_now() - timedelta(days=days))
                                        .order_by(t.c.id))]
        for sid in ids:
            try:
                self.store.delete_session(sid)
            except Exception as exc:
                msg = exc.message if isinstance(exc, AsmError) else repr(exc)
                raise AsmError("maintenance_error", f"hard delete of session {sid} failed: {msg}") from exc
        return len(ids)

    def prune_session_events(self, session_id: str, policy: RetentionPolicy) -> int:
        """Pick the oldest prunable events with two ``SELECT … ORDER BY sequence_number LIMIT``
        and delete them in ``batch_size`` chunks."""
        limit = policy.max_events_per_session
        if isinstance(limit, float) and math.isinf(limit):
            return 0
        e = S.events
        count = self._rows(sa.select(sa.func.count()).select_from(e).where(e.c.session_id == session_id))[0][0]
        excess = int(count) - int(limit)
        if excess <= 0:
            return 0
        first = list(policy.prune_event_types_first or [])
        chosen: list[str] = []
        if first:
            chosen = [r[0] for r in self._rows(sa.select(e.c.id).where(e.c.session_id == session_id, e.c.type.in_(first))
                                               .order_by(e.c.sequence_number).limit(excess))]
        left = excess - len(chosen)
        if left > 0:
            q = sa.select(e.c.id).where(e.c.session_id == session_id, e.c.type.not_in(sorted(PROTECTED_EVENT_TYPES)))
            if first:
                q = q.where(e.c.type.not_in(first))
            chosen += [r[0] for r in self._rows(q.order_by(e.c.sequence_number).limit(left))]
        if not chosen:
            return 0
        deleted = 0
        try:
            for i in range(0, len(chosen), policy.batch_size):
                deleted += self.store.delete_events(session_id, chosen[i:i + policy.batch_size])
        except AsmError as exc:
            raise AsmError("maintenance_error", f"pruning session {session_id} failed: {exc.message}") from exc
        return deleted

    def _prune_all(self, policy: RetentionPolicy) -> int:
        limit = policy.max_events_per_session
        if isinstance(limit, float) and math.isinf(limit):
            return 0
        e = S.events
        sids = [r[0] for r in self._rows(sa.select(e.c.session_id).group_by(e.c.session_id)
                                         .having(sa.func.count() > int(limit)).order_by(e.c.session_id))]
        total, errors = 0, []
        for sid in sids:
            try:
                total += self.prune_session_events(sid, policy)
            except AsmError as exc:
                errors.append(exc.message)
        if errors and total == 0:
            raise AsmError("maintenance_error", errors[0])
        return total

    def clean_orphaned_artifacts(self, *, artifact_store: Any = None) -> int:
        """``DELETE`` artifact records whose session has no row (and, with ``artifact_store``,
        their blobs first)."""
        a = S.artifacts
        orphan = sa.and_(a.c.session_id.is_not(None), a.c.session_id.not_in(sa.select(S.sessions.c.id)))
        if artifact_store is not None:
            for (key,) in self._rows(sa.select(a.c.key).where(orphan)):
                try:
                    artifact_store.delete(key)
                except Exception:  # noqa: BLE001 - the record goes anyway
                    pass
        return int(self._exec(lambda c: c.execute(sa.delete(a).where(orphan)).rowcount, "clean artifacts") or 0)

    def clean_orphaned_sequences(self) -> int:
        """``DELETE`` counters of sessions with neither a row nor any event."""
        q = S.sequences
        cond = sa.and_(q.c.session_id.not_in(sa.select(S.sessions.c.id)),
                       ~sa.exists().where(S.events.c.session_id == q.c.session_id))
        return int(self._exec(lambda c: c.execute(sa.delete(q).where(cond)).rowcount, "clean sequences") or 0)

    def health_check(self) -> list[str]:
        """Orphan counts and counters below the stored maximum, each one query."""
        e, r, s, q = S.events, S.runs, S.sessions, S.sequences
        orphan_events = self._rows(sa.select(sa.func.count()).select_from(e).where(e.c.session_id.not_in(
            sa.select(s.c.id))))[0][0]
        orphan_runs = self._rows(sa.select(sa.func.count()).select_from(r).where(r.c.session_id.not_in(
            sa.select(s.c.id))))[0][0]
        mx = sa.select(e.c.session_id.label("sid"), sa.func.max(e.c.sequence_number).label("m")) \
            .group_by(e.c.session_id).subquery()
        counter = sa.func.coalesce(q.c.last_sequence, 0)
        mism = self._rows(sa.select(mx.c.sid, counter, mx.c.m).select_from(
            mx.outerjoin(q, q.c.session_id == mx.c.sid)).where(counter < mx.c.m).order_by(mx.c.sid))
        issues = []
        if orphan_events:
            issues.append(f"{orphan_events} events reference non-existent sessions")
        if orphan_runs:
            issues.append(f"{orphan_runs} runs reference non-existent sessions")
        return issues + [f"Sequence mismatch for {sid}: counter={c}, max_sequence={m}" for sid, c, m in mism]
