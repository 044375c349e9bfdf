"""The live run widget (plain ipywidgets, no front-end build) and the notebook ``WidgetSink``.

``RunWidget`` public API (what ``magics.py`` uses)::

    w = RunWidget(provider="claude", model="claude-sonnet-4-5", max_fps=20)
    w.display()                 # display(w, display_id=True); finish() updates that output
    w.on_cancel(fn)             # fn(widget) when Cancel is clicked (or w.cancel() is called)
    w.on_approval(fn)           # fn(decision, request) on Approve / Deny; decision "approve" | "deny"
    w.handle_event(event)       # from ANY thread: a normalized event dict (docs/providers.md, event envelope)
    w.flush()                   # redraw now (exact); w.poll() redraws only when one is due
    w.finish(result)            # final, exact state from the RunResult (or its dict); freezes
    w.fail(exc)                 # finish as failed/cancelled from an exception
    w.text                      # assistant text so far (redacted)
    w.plain_text()              # deterministic Studio text (the text/plain fallback)
    w.static_html()             # self-contained HTML snapshot (no buttons, no ids)

Constructor: ``RunWidget(*, provider=None, model=None, session_id=None, run_id=None,
max_fps=20.0, deterministic=False, redact=None, seal_chars=2000, on_cancel=None,
on_approval=None, clock=time.monotonic, autoflush=True)``. ``deterministic=True`` leaves wall
clock durations out of ``static_html()`` (and so out of the saved ``text/html``), for nbval.
``redact``: None → the effective redaction config, a dict → that config, False → raw.

Layout (standard widgets only): a header ``HTML`` (provider · model · status), a transcript
``VBox`` of ``HTML`` rows — streamed text as escaped Markdown-ish HTML, one row per tool call
(◐ spinner + ToolSummary → ✓/✗ with duration, a ``<details>`` block with input and output) —
an approval bar (``HTML`` + Approve / Deny buttons, shown on ``tool_approval_requested``),
and a footer with token / cost counters and a Cancel button.

Throttle (ARCHITECTURE "Widgets throttle"): events only update the pure-Python ``RunState``;
a redraw happens when at least ``1/max_fps`` s passed since the previous one, otherwise a
timer schedules a trailing redraw, so at most ``max_fps`` redraws a second reach the front end
whatever the event rate, and ``finish()`` always draws the exact final state. A redraw sends
only what changed: streamed text is cut into sealed rows (≈ ``seal_chars`` each, never re-sent)
plus a small open tail, so no message carries the whole transcript.

Without a widget front end (nbconvert, nbval, terminal IPython) the output shows
``text/plain`` = ``plain_text()``: the Studio rendering, deterministic (no timestamps, ids or
timings). After ``finish()`` the bundle also carries ``text/html`` = ``static_html()``.

``ipywidgets`` is imported when a widget is built, never at module import.
"""

from __future__ import annotations

import html
import logging
import math
import threading
import time
from typing import Any, Callable

from ..rendering.runview import STYLE, RunState

__all__ = ["RunWidget", "WidgetSink", "LiveRunView", "make_live_view", "WIDGET_MIME"]

log = logging.getLogger(__name__)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_ENDED = frozenset({"completed", "failed", "cancelled"})


class RunWidget:
    """Live view of one run; see the module docstring for the API."""

    def __init__(self, *, provider: str | None = None, model: str | None = None, session_id: str | None = None,
                 run_id: str | None = None, max_fps: float = 20.0, deterministic: bool = False, redact: Any = None,
                 seal_chars: int = 2000, on_cancel: Callable[["RunWidget"], Any] | None = None,
                 on_approval: Callable[[str, dict], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, autoflush: bool = True) -> None:
        import ipywidgets as W
        from ipywidgets.widgets.widget_string import HTMLStyle

        self.state = RunState(provider=provider, model=model, session_id=session_id, run_id=run_id,
                              seal_chars=seal_chars, redact=redact, clock=clock)
        self.deterministic = deterministic
        self.clock = clock
        self.autoflush = autoflush
        self.interval = 1.0 / max_fps if max_fps and max_fps > 0 else 0.0
        self.redraw_count = 0
        self._lock = threading.RLock()
        self._last_flush = -math.inf
        self._timer: threading.Timer | None = None
        self._dirty = True
        self._frozen = False
        self._cancel_requested = False
        self._cancel_cbs: list[Callable] = [on_cancel] if on_cancel else []
        self._approval_cbs: list[Callable] = [on_approval] if on_approval else []
        self._handle: Any = None
        self._events: list[Any] = []  # every event applied: the static bundle is rebuilt from them
        self._result: Any = None
        #: when the run ends, replace the displayed output with the static run bundle and close
        #: the widget models (a compare pane leaves that to its ``CompareView``)
        self.close_on_finish = True
        self._widgets: list[Any] = []

        # Rows share one Layout and one style so each new row opens a single comm.
        self._row_layout = W.Layout(margin="0", width="100%")
        self._row_style = HTMLStyle()
        self._header = W.HTML(value="", layout=self._row_layout, style=self._row_style)
        self._body = W.VBox([])
        self._seg_widgets: list[Any] = []
        self._approval_html = W.HTML(value="", style=self._row_style)
        self._approve_btn = W.Button(description="Approve", button_style="success", icon="check")
        self._deny_btn = W.Button(description="Deny", button_style="warning", icon="times")
        self._approval_box = W.HBox([self._approval_html, self._approve_btn, self._deny_btn],
                                    layout=W.Layout(display="none", align_items="center"))
        # Approve / Deny on the waiting tool row itself: the row's HTML, the buttons and the policy
        # that asked (if any) on one line, in the row's place in the transcript
        self._approval_note = W.HTML(value="", style=self._row_style)
        self._approval_row = W.HBox([], layout=W.Layout(align_items="center", width="100%"))
        self._approval_row.add_class("asm-approval-row")
        self._approval_on_row: int | None = None
        self._counters = W.HTML(value="", style=self._row_style)
        self._cancel_btn = W.Button(description="Cancel", button_style="danger", icon="stop",
                                    layout=W.Layout(width="auto"))
        self._footer = W.HBox([self._counters, self._cancel_btn], layout=W.Layout(align_items="center"))
        self.root = W.VBox([self._header, self._body, self._approval_box, self._footer])
        self.root.add_class("asm-run")
        self._widgets = [self._header, self._body, self._approval_html, self._approve_btn, self._deny_btn,
                         self._approval_box, self._approval_note, self._approval_row, self._counters, self._cancel_btn, self._footer, self.root,
                         self._row_layout, self._row_style]
        self._cancel_btn.on_click(lambda _b: self.cancel())
        self._approve_btn.on_click(lambda _b: self._decide("approve"))
        self._deny_btn.on_click(lambda _b: self._decide("deny"))
        with self._lock:
            self._flush_locked(self.clock())

    # -- public API -------------------------------------------------------------------------------

    def handle_event(self, event: Any) -> None:
        """Fold a normalized event into the view; safe from any thread. Redraws at most
        ``max_fps`` times a second (a timer delivers the trailing redraw)."""
        with self._lock:
            if self._frozen:
                return
            self.state.apply(event)
            self._events.append(event)
            if self.state.status in _ENDED:  # this run is over: no Cancel, whatever else runs on
                self._cancel_btn.layout.display = "none"
            self._dirty = True
            self._maybe_flush()

    def poll(self) -> None:
        """Redraw if something changed and a redraw is due (for callers that poll)."""
        with self._lock:
            if self._dirty and not self._frozen:
                self._maybe_flush()

    def flush(self) -> None:
        """Redraw now, exactly."""
        with self._lock:
            self._flush_locked(self.clock())

    def finish(self, result: Any = None) -> None:
        """Apply the run result (status, exact usage and cost), draw the final state, hide the
        buttons and freeze the view. The output made by ``display()`` is then *replaced* by the
        static run bundle (``application/vnd.asm.run+json`` + ``text/html`` + ``text/plain``)
        and the widget models are closed, so a saved notebook reopens as the run card, with or
        without a kernel (never "Error displaying widget: model not found")."""
        with self._lock:
            if self._frozen:
                return
            self._cancel_timer()
            self.state.finish(result)
            self._result = result
            self._frozen = True
            self.state.approval_dirty = True  # a row still waiting goes back to a plain row
            self._flush_locked(self.clock())
            self._cancel_btn.layout.display = "none"
            self._approval_box.layout.display = "none"
            handle = self._handle
        if handle is not None and self.close_on_finish:
            try:
                data, metadata = self.static_bundle()
                handle.update(data, raw=True, metadata=metadata)
            except Exception:  # the display may be gone (cleared output)
                log.debug("display update failed", exc_info=True)
            self.close()

    def static_bundle(self) -> tuple[dict, dict]:
        """``(data, metadata)``: the finished run as the static run bundle (the card), built
        from the run result and the events this view received. No widget MIME type."""
        from ..rendering.mime import run_result_mimebundle
        from ..rendering.runview import result_fields

        with self._lock:
            r = result_fields(self._result)
            if not r.get("events"):
                r["events"] = list(self._events)
            st = self.state
            r.setdefault("status", st.status)
            for key, value in (("provider", st.provider), ("model", st.model), ("run_id", st.run_id),
                               ("session_id", st.session_id), ("cost_usd", st.cost_usd),
                               ("token_usage", dict(st.usage)), ("duration_ms", st.duration_ms)):
                if r.get(key) in (None, "", {}):
                    r[key] = value
            if st.error and not r.get("error"):
                r["error"] = {"message": st.error}
            data = run_result_mimebundle(r, deterministic=self.deterministic)
            ids = {k: v for k, v in (("run_id", st.run_id), ("session_id", st.session_id)) if v}
        return data, ({"asm": ids} if ids else {})

    def close(self) -> None:
        """Close the widget models (the front end forgets them). The view keeps its state:
        ``static_bundle()``, ``plain_text()`` and the rich display still work."""
        for w in self._seg_widgets + self._widgets:
            try:
                w.close()
            except Exception:
                log.debug("widget close failed", exc_info=True)

    def fail(self, exc: BaseException) -> None:
        """Finish from an exception (``AsmError`` code ``cancelled`` → status cancelled)."""
        code = getattr(exc, "code", None)
        status = "cancelled" if code == "cancelled" or isinstance(exc, KeyboardInterrupt) else "failed"
        self.finish({"status": status, "error": {"message": getattr(exc, "message", None) or str(exc) or repr(exc)}})

    def on_cancel(self, callback: Callable[["RunWidget"], Any]) -> Callable:
        """Register ``callback(widget)`` for the Cancel button; returns it (usable as decorator)."""
        self._cancel_cbs.append(callback)
        return callback

    def on_approval(self, callback: Callable[[str, dict], Any]) -> Callable:
        """Register ``callback(decision, request)`` for Approve / Deny; decision is
        ``"approve"`` or ``"deny"``, request the ``tool_approval_requested`` data."""
        self._approval_cbs.append(callback)
        return callback

    def cancel(self) -> None:
        """What the Cancel button does: mark the run cancelling and call the callbacks once."""
        with self._lock:
            if self._frozen or self._cancel_requested:
                return
            self._cancel_requested = True
            self.state.status = "cancelling"
            self.state.header_dirty = True
            self._cancel_btn.disabled = True
            self._flush_locked(self.clock())
            callbacks = list(self._cancel_cbs)
        for cb in callbacks:
            try:
                cb(self)
            except Exception:
                log.exception("on_cancel callback raised")

    def approve(self) -> None:
        """Approve the pending tool call (same as the Approve button)."""
        self._decide("approve")

    def deny(self) -> None:
        """Deny the pending tool call (same as the Deny button)."""
        self._decide("deny")

    def display(self) -> Any:
        """Display the widget in the current cell output and remember the handle so
        ``finish()`` can replace the output with the final bundle."""
        from IPython.display import display

        self._handle = display(self, display_id=True)
        return self._handle

    @property
    def text(self) -> str:
        """The assistant's text so far (redacted)."""
        with self._lock:
            return self.state.text

    @property
    def finished(self) -> bool:
        return self._frozen

    def plain_text(self) -> str:
        """Deterministic plain text (Studio renderer, no colours/ids/timings), redacted."""
        with self._lock:
            return self.state.plain_text()

    def static_html(self, deterministic: bool | None = None) -> str:
        """A self-contained HTML snapshot of the view (for nbviewer / saving)."""
        with self._lock:
            return self.state.static_html(self.deterministic if deterministic is None else deterministic)

    def tool_rows(self) -> list[dict]:
        """One dict per tool row: id, name, status, summary (as shown), duration_ms."""
        from ..rendering.studio import ToolSummary

        with self._lock:
            out = []
            for row in self.state.tools.values():
                info = row.info()
                line = ToolSummary.spinner_text(info) if row.status == "running" else ToolSummary.summary_line(info)
                out.append({"id": row.id, "name": row.name, "status": row.status, "summary": line,
                            "duration_ms": row.duration_ms, "approval": row.approval})
            return out

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> Any:
        if self._frozen:  # finished: the static card, never a widget that a saved notebook loses
            data, metadata = self.static_bundle()
            return (data, metadata) if metadata else data
        data: dict[str, Any] = {"text/plain": self.plain_text()}
        data[WIDGET_MIME] = {"version_major": 2, "version_minor": 0, "model_id": self.root.model_id}
        ids = {k: v for k, v in (("run_id", self.state.run_id), ("session_id", self.state.session_id)) if v}
        if ids:  # output metadata links a saved notebook's output back to its events in the store
            return data, {"asm": ids}
        return data

    def __repr__(self) -> str:
        return f"<RunWidget {self.state.provider or 'asm'} {self.state.status}>"

    # -- internals --------------------------------------------------------------------------------

    def _decide(self, decision: str) -> None:
        with self._lock:
            request = self.state.approval
            if request is None or self._frozen:
                return
            self.state._on_tool_approval_granted(dict(request), decision="granted" if decision == "approve"
                                                 else "denied")
            self._flush_locked(self.clock())
            callbacks = list(self._approval_cbs)
        for cb in callbacks:
            try:
                cb(decision, dict(request))
            except Exception:
                log.exception("on_approval callback raised")

    def _waiting_row_index(self) -> int | None:
        """The transcript index of the tool row waiting for approval (None: no such row)."""
        tcid = (self.state.approval or {}).get("tool_call_id")
        if tcid is None:
            return None
        for i, seg in enumerate(self.state.segments):
            if seg.kind == "tool" and seg.tool_id == str(tcid):
                return i if i < len(self._seg_widgets) else None
        return None

    def _maybe_flush(self) -> None:
        now = self.clock()
        wait = self.interval - (now - self._last_flush)
        if wait <= 0:
            self._flush_locked(now)
        elif self.autoflush and self._timer is None:
            self._timer = threading.Timer(min(max(wait, 0.005), self.interval), self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            if self._dirty and not self._frozen:
                self._maybe_flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _flush_locked(self, now: float) -> None:
        """Push changed state to the widgets (lock held). Each widget gets at most one update."""
        import ipywidgets as W

        s = self.state
        self._last_flush = now
        self._dirty = False
        self.redraw_count += 1
        if s.header_dirty:
            s.header_dirty = False
            value = STYLE + s.header_html()  # the header changes rarely; the CSS rides along
            if self._header.value != value:
                self._header.value = value
        added = False
        for i in s.take_dirty():
            value = s.segment_html(i, deterministic=False)
            if i < len(self._seg_widgets):
                w = self._seg_widgets[i]
                if w.value != value:
                    w.value = value
            else:
                while len(self._seg_widgets) < i:  # not expected: segments are marked on creation
                    self._seg_widgets.append(W.HTML(value=s.segment_html(len(self._seg_widgets)),
                                                    layout=self._row_layout, style=self._row_style))
                self._seg_widgets.append(W.HTML(value=value, layout=self._row_layout, style=self._row_style))
                added = True
        approval_changed = s.approval_dirty
        if s.approval_dirty:
            s.approval_dirty = False
            pending = s.approval is not None and not self._frozen
            self._approval_on_row = self._waiting_row_index() if pending else None
            on_row = self._approval_on_row is not None
            value = s.approval_html() if pending and not on_row else ""
            if self._approval_html.value != value:
                self._approval_html.value = value
            display = "flex" if pending and not on_row else "none"
            if self._approval_box.layout.display != display:
                self._approval_box.layout.display = display
            # one view of each button: on the row, or in the bar
            bar = (self._approval_html,) if on_row else (self._approval_html, self._approve_btn, self._deny_btn)
            if tuple(self._approval_box.children) != bar:
                self._approval_box.children = bar
        if added or approval_changed:
            children = list(self._seg_widgets)
            i = self._approval_on_row
            if i is not None and i < len(children):
                policy = (s.approval or {}).get("policy_name")
                self._approval_note.value = (f'<span class="asm-muted">policy <code>{html.escape(str(policy))}'
                                             "</code></span>" if policy else "")
                row = (children[i], self._approve_btn, self._deny_btn)
                self._approval_row.children = row + ((self._approval_note,) if policy else ())
                children[i] = self._approval_row
            elif self._approval_row.children:
                self._approval_row.children = ()
            if tuple(children) != tuple(self._body.children):
                self._body.children = tuple(children)
        if s.counters_dirty:
            s.counters_dirty = False
            value = s.counters_html(deterministic=False)
            if self._counters.value != value:
                self._counters.value = value


class WidgetSink:
    """A rendering-pipeline sink feeding a ``RunWidget`` (docs/rendering.md, sinks).

    ``write_event`` passes the structured event to the view (rows, counters, status) and, with
    ``renderer_text``, keeps the rendered text in ``self.text``; ``write(final)`` and ``flush()``
    redraw exactly; ``close()`` finishes (freezes) the view, leaving the static snapshot.
    """

    def __init__(self, view: RunWidget | None = None, *, max_fps: float = 20.0, renderer_text: bool = True) -> None:
        self.view = view if view is not None else RunWidget(max_fps=max_fps)
        self.renderer_text = renderer_text
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        """The rendered text received so far (when ``renderer_text``)."""
        return "".join(self._parts)

    def write(self, text: str) -> None:
        """Keep the final text and redraw now."""
        if self.renderer_text and text:
            self._parts.append(text)
        self.view.flush()

    def write_event(self, event: Any, text: str) -> None:
        """Feed the event to the view (throttled redraw)."""
        if self.renderer_text and text:
            self._parts.append(text)
        self.view.handle_event(event)

    def flush(self) -> None:
        """Redraw now."""
        self.view.flush()

    def close(self) -> None:
        """Freeze the view with its final state."""
        self.view.finish()


class LiveRunView:
    """The view object ``magics.py`` drives: ``on_event`` (loop thread), ``poll`` (main thread,
    while waiting), ``attach_cancel``, ``finish``, ``fail``, ``result_display``, ``live_display``.

    Foreground runs display the widget on the first ``poll`` (main thread, the running cell's
    output); background runs return it from ``live_display()`` as the cell's output.
    """

    def __init__(self, widget: RunWidget) -> None:
        self.widget = widget
        self._shown = False

    def _show(self) -> None:
        if not self._shown:
            self._shown = True
            self.widget.display()

    def on_event(self, event: dict) -> None:
        self.widget.handle_event(event)

    def poll(self) -> None:
        self._show()
        self.widget.poll()

    def attach_cancel(self, fn: Callable[[], Any]) -> None:
        self.widget.on_cancel(lambda _w: fn())

    def finish(self, result: Any) -> None:
        self.widget.finish(result)

    def fail(self, exc: BaseException) -> None:
        self.widget.fail(exc)

    def result_display(self, result: Any) -> Any:
        if self._shown:
            return None
        self._shown = True
        return self.widget  # shown as the cell's result (already final)

    def live_display(self) -> Any:
        self._shown = True
        return self.widget


def make_live_view(*, provider: str | None = None, model: str | None = None, **opts: Any) -> LiveRunView:
    """A ``LiveRunView`` around a new ``RunWidget`` (options as ``RunWidget``)."""
    return LiveRunView(RunWidget(provider=provider, model=model, **opts))

