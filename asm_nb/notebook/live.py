"""``%asm runs --live``: a table of the runs in flight, refreshed while you watch.

Rows come from the store (runs ``pending`` / ``running``, newest first) and from this process's
batches (``asm_nb.batch``: done / total per state). In a notebook with ipywidgets the table is an
``HTML`` widget redrawn every ``--interval`` seconds by a daemon thread for ``--for`` seconds
(default 600) or until ``view.stop()``; without a widget front end it prints once.

Options: ``%asm runs --live [SESSION_ID] [--interval 1.0] [--for 600]``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..core.serialization import utc_now

__all__ = ["running_rows", "batch_rows", "render_html", "render_text", "LiveRunsView", "live_runs"]

COLUMNS = ["run_id", "session", "status", "provider", "model", "age_s", "in", "out", "cost_usd"]


def running_rows(store: Any, session_id: str | None = None) -> list[dict[str, Any]]:
    """Runs not finished yet (pending or running), newest first."""
    runs = []
    for status in ("running", "pending"):
        try:
            runs += store.list_runs(session_id, status=status)
        except TypeError:  # a store whose list_runs has no status filter
            runs += [r for r in store.list_runs(session_id) if r.status.value == status]
    now = utc_now()
    rows = []
    for r in sorted(runs, key=lambda r: (r.started_at or r.created_at), reverse=True):
        u = r.token_usage or {}
        since = r.started_at or r.created_at
        rows.append({"run_id": r.id, "session": r.session_id, "status": r.status.value,
                     "provider": r.provider or (r.metadata or {}).get("provider"),
                     "model": (r.provider_metadata or {}).get("model"),
                     "age_s": round((now - since).total_seconds(), 1) if since else None,
                     "in": u.get("input_tokens"), "out": u.get("output_tokens"), "cost_usd": r.cost_usd})
    return rows


def batch_rows() -> list[dict[str, Any]]:
    """One row per batch of this process still running: counts per state."""
    try:
        from ..runtime.batch import active_batches
    except ImportError:  # pragma: no cover
        return []
    out = []
    for b in active_batches():
        s = b.summary()
        done = sum(v for k, v in s.items() if k in ("completed", "failed", "cancelled"))
        out.append({"session": b.session_id, "total": len(b.items), "done": done, "running": s.get("running", 0),
                    "queued": s.get("queued", 0), "failed": s.get("failed", 0),
                    "elapsed_s": round(time.monotonic() - b.started_at, 1)})
    return out


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if v < 1 else f"{v:.1f}"
    return str(v)


def render_text(rows: list[dict[str, Any]], batches: list[dict[str, Any]]) -> str:
    from ..rendering.tables import text_table as _table

    parts = [_table(rows, COLUMNS) if rows else "no runs in flight"]
    if batches:
        parts.append(_table(batches, ["session", "total", "done", "running", "queued", "failed", "elapsed_s"]))
    return "\n\n".join(parts)


def render_html(rows: list[dict[str, Any]], batches: list[dict[str, Any]]) -> str:
    from ..rendering.tables import html_table

    def table(data: list[dict[str, Any]], cols: list[str]) -> str:
        return html_table(data, cols, cell=_cell)

    out = [f"<b>Runs in flight: {len(rows)}</b>", table(rows, COLUMNS) if rows else "<i>none</i>"]
    if batches:
        out += ["<b>Batches</b>", table(batches, ["session", "total", "done", "running", "queued", "failed",
                                                  "elapsed_s"])]
    return "<div class='asm-live-runs'>" + "".join(out) + "</div>"


class LiveRunsView:
    """An ipywidgets ``HTML`` table redrawn by a daemon thread."""

    def __init__(self, store: Any, session_id: str | None = None, *, interval_s: float = 1.0,
                 duration_s: float = 600.0) -> None:
        import ipywidgets as widgets

        self.store, self.session_id = store, session_id
        self.interval_s, self.duration_s = max(0.1, interval_s), duration_s
        self.widget = widgets.HTML()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshes = 0

    def refresh(self) -> None:
        self.widget.value = render_html(running_rows(self.store, self.session_id), batch_rows())
        self.refreshes += 1

    def start(self) -> "LiveRunsView":
        self.refresh()

        def loop() -> None:
            deadline = time.monotonic() + self.duration_s
            while not self._stop.wait(self.interval_s) and time.monotonic() < deadline:
                try:
                    self.refresh()
                except Exception:  # a closed store or widget: stop quietly
                    break

        self._thread = threading.Thread(target=loop, name="asm-live-runs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        # a text front end (jupyter console) shows the table, not the widget's HTML(value=...) repr
        data["text/plain"] = render_text(running_rows(self.store, self.session_id), batch_rows())
        return data


def _widgets_available() -> bool:
    try:
        from IPython.core.getipython import get_ipython

        ip = get_ipython()
        if ip is None or not getattr(ip, "kernel", None):
            return False
        import ipywidgets  # noqa: F401
    except Exception:
        return False
    return True


def live_runs(magics: Any, rest: list[str]) -> Any:
    """``%asm runs --live [SESSION_ID] [--interval S] [--for S]``."""
    from IPython.core.error import UsageError

    interval, duration, session_id = 1.0, 600.0, None
    args = list(rest)
    while args:
        a = args.pop(0)
        if a in ("--interval", "--for"):
            if not args:
                raise UsageError(f"{a} needs a number of seconds")
            try:
                v = float(args.pop(0))
            except ValueError:
                raise UsageError(f"{a} needs a number of seconds") from None
            if a == "--interval":
                interval = v
            else:
                duration = v
        elif a.startswith("-"):
            raise UsageError(f"unknown option {a!r}; usage: %asm runs --live [SESSION_ID] [--interval S] [--for S]")
        else:
            session_id = a
    store = magics._store()
    if not _widgets_available():
        print(render_text(running_rows(store, session_id), batch_rows()))
        return None
    view = LiveRunsView(store, session_id, interval_s=interval, duration_s=duration).start()
    from IPython.display import display

    display(view)
    return None
