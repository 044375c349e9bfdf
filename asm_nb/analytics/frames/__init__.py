"""DataFrames over a store: sessions, runs, events, messages, tool calls, costs, transcripts
and workspace diffs (exposed as ``asm_nb.frames``).

Every frame is built with polars; ``backend="pandas"`` (the default) converts at the end through
Arrow. Columns are typed: datetimes are tz-aware UTC (``Datetime("us", "UTC")`` /
``datetime64[us, UTC]``), statuses are enums / pandas categoricals, providers, models, event types
and tool names are categoricals, token counts are ``Int64``, costs ``Float64``.

Sources (``ARCHITECTURE.md``: events are the source of truth; runs carry summaries):

- sessions and runs come from ``store.list_sessions()`` / ``store.list_runs(None)``;
- events come, for a store exposing ``event_log_paths()`` (LocalStore), straight from its JSONL
  logs read by ``polars`` (after ``store.flush()`` so buffered events are included; an unreadable
  log — e.g. a torn last line being written by another process — falls back to a line-by-line
  read that skips bad lines with a warning); for any other store, from
  ``store.get_events(session_id)`` over ``store.list_session_ids()`` (or the sessions and runs).

In the events frame ``data`` and ``metadata`` are JSON text (nothing is lost whatever keys a
payload has; ``parse_data=True`` decodes them to structs). The derived frames (messages,
tool_calls, transcript) extract their fields from that JSON.

Common filters (each accepts one value or a list; None = no filter): ``session_id``, ``run_id``,
``provider``, ``model``, ``status`` (the run status; ``sessions`` → session status;
``tool_calls`` → the call's status, see ``run_status``), and a time range ``since`` (inclusive) /
``until`` (exclusive) given as datetimes (naive = UTC), ISO strings or dates — applied to
``created_at`` for sessions, ``started_at`` for runs and costs, ``timestamp`` for event frames.

Heavy imports (polars, pandas) happen inside the functions.

The package is split by frame family: ``_common`` (backend, dtypes, filters), ``run_tables``
(runs, sessions), ``event_log`` (events, audit), ``conversation`` (messages, transcript,
tool calls), ``spend`` (costs, usage) and ``derived`` (diffs, evals, scores, search). Every frame
is imported here: ``asm_nb.frames`` / ``asm_nb.analytics.frames`` stay the import paths.
"""

from __future__ import annotations

from ._common import EVENT_COLUMNS
from .conversation import messages, tool_calls, transcript
from .derived import diff_summaries, diffs, evals, scores, search
from .event_log import audit, events
from .run_tables import runs, sessions
from .spend import costs, usage

# the shared helpers the other analytics modules (usage, cost, search) build on: ``frames._x``
from ._common import Backend as Backend
from ._common import _as_list as _as_list
from ._common import _check_backend as _check_backend
from ._common import _Filters as _Filters
from ._common import _finish as _finish
from ._common import _polars as _polars
from ._common import _resolve_store as _resolve_store
from ._common import _utc as _utc
from .conversation import _jp as _jp
from .event_log import AUDIT_COLUMNS as AUDIT_COLUMNS
from .event_log import _events_lazy as _events_lazy
from .run_tables import _all_runs as _all_runs
from .run_tables import _float_or_none as _float_or_none
from .run_tables import _int_or_none as _int_or_none
from .run_tables import _model_of as _model_of

__all__ = ["sessions", "runs", "events", "audit", "messages", "tool_calls", "costs", "usage", "transcript", "diffs",
           "diff_summaries", "evals", "scores",
           "search", "EVENT_COLUMNS"]
