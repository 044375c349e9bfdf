"""The live views of a comparison. ``CompareView``: one ``RunWidget`` per provider in an
``ipywidgets.HBox`` (one column each, fed its own run's events; its Cancel button cancels that run
only) and a summary row filled in when the comparison ends; without a widget front end it shows the
same deterministic text. ``_CompareTextView``: ``%%asm --compare`` outside a widget front end,
each run rendered into its own buffer and printed column after column, then the table.
ipywidgets / IPython are imported only when a view is built or displayed.
"""

from __future__ import annotations

import queue
import sys
import threading
from typing import Any, Callable, Mapping, Sequence

from ..core.errors import AsmError
from .compare_result import CompareResult, _column_block


class CompareView:
    """Live side-by-side view: one ``RunWidget`` per provider in an ``HBox``, then a summary row.

    The view protocol ``compare`` / the magic drive: ``on_event(label, event)`` (any thread),
    ``poll()`` (main thread; displays the view on the first call), ``attach_cancel(label, fn)``,
    ``finish(compare_result)``, ``result_display(result)``, ``plain_text()``.
    """

    def __init__(self, labels: Sequence[str], *, models: Mapping[str, Any] | None = None,
                 max_fps: float = 20.0, **widget_options: Any) -> None:
        import ipywidgets as W

        from .widgets import LiveRunView, RunWidget

        models = dict(models or {})
        self.labels = list(labels)
        self.columns: dict[str, Any] = {
            label: LiveRunView(RunWidget(provider=label, model=models.get(label), max_fps=max_fps, **widget_options))
            for label in self.labels}
        for col in self.columns.values():
            col._shown = True  # the compare view displays them; a column never displays itself
            col.widget.close_on_finish = False  # the compare view replaces and closes them all
            col.widget.root.layout.flex = "1 1 0%"
            col.widget.root.layout.min_width = "0"
        self.summary = W.HTML(value=f'<span class="asm-muted">comparing {len(self.labels)} providers…</span>')
        self.row = W.HBox([c.widget.root for c in self.columns.values()],
                          layout=W.Layout(width="100%", align_items="flex-start", grid_gap="12px"))
        self.root = W.VBox([self.row, self.summary])
        self.root.add_class("asm-compare")
        self.result: CompareResult | None = None
        self._shown = False
        self._handle: Any = None
        self._lock = threading.Lock()

    @property
    def widgets(self) -> dict[str, Any]:
        """label → ``RunWidget``."""
        return {label: col.widget for label, col in self.columns.items()}

    def on_event(self, label: str, event: dict) -> None:
        col = self.columns.get(label)
        if col is not None:
            col.on_event(event)

    def poll(self) -> None:
        if not self._shown:
            self._shown = True
            self.display()
        for col in self.columns.values():
            col.widget.poll()

    def display(self) -> Any:
        from IPython.display import display

        self._shown = True
        self._handle = display(self, display_id=True)
        return self._handle

    def attach_cancel(self, label: str, fn: Callable[[], Any]) -> None:
        col = self.columns.get(label)
        if col is not None:
            col.attach_cancel(fn)

    def finish(self, result: CompareResult) -> None:
        """Finish every column from its ``RunResult`` and fill in the summary row."""
        with self._lock:
            self.result = result
        for label, col in self.columns.items():
            r = result.results.get(label)
            if r is not None:
                col.finish(r)
            else:
                col.fail(AsmError("cancelled", "Run was cancelled"))
        self.summary.value = result.table_html()
        if self._handle is not None:
            # the output becomes the static comparison (panes + table): a saved notebook keeps it
            try:
                self._handle.update(result)
            except Exception:  # the output may be gone
                pass
            self.close()

    def close(self) -> None:
        """Close every widget model of the view (its panes' too)."""
        for col in self.columns.values():
            col.widget.close()
        for w in (self.summary, self.row, self.root):
            try:
                w.close()
            except Exception:
                pass

    def fail(self, exc: BaseException) -> None:
        for col in self.columns.values():
            col.fail(exc)

    def result_display(self, result: Any) -> Any:
        if self._shown:
            return None
        self._shown = True
        return self

    def live_display(self) -> Any:
        self._shown = True
        return self

    def plain_text(self) -> str:
        """Deterministic text: each column's text under a header, then (when finished) the table."""
        parts = []
        for label, col in self.columns.items():
            w = col.widget
            r = self.result.results.get(label) if self.result is not None else None
            parts.append(_column_block(label, w.state.status, w.plain_text(), r.output if r is not None else None))
        text = "\n".join(parts)
        if self.result is not None:
            text += "\n" + self.result.table_text() + "\n"
        return text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict:
        from .widgets import WIDGET_MIME

        if self.result is not None:  # finished: the static comparison, no widget
            return self.result._repr_mimebundle_()
        data: dict[str, Any] = {"text/plain": self.plain_text()}
        data[WIDGET_MIME] = {"version_major": 2, "version_minor": 0, "model_id": self.root.model_id}
        return data

    def __repr__(self) -> str:
        return f"<CompareView {', '.join(self.labels)}>"


class _CompareTextView:
    """The text view of ``%%asm --compare`` outside a widget front end: each run's events are
    rendered into its own buffer (the same text a single ``%%asm`` cell prints), then printed
    column after column under a header, followed by the table. Deterministic."""

    def __init__(self, labels: Sequence[str], renderer: str, *, budget: Any = None) -> None:
        from .magics import _TextView

        self.renderer = renderer
        self.budget = budget  # the kernel budget (guard.BUDGET): every run's cost counts
        self.columns = {label: _TextView(renderer) for label in labels}

    def on_event(self, label: str, event: dict) -> None:
        col = self.columns.get(label)
        if col is not None:
            col.on_event(event)

    def poll(self) -> None:
        pass

    def attach_cancel(self, label: str, fn: Callable[[], Any]) -> None:
        pass

    def text(self, result: CompareResult) -> str:
        parts = []
        for label, col in self.columns.items():
            chunks = []
            while True:
                try:
                    chunks.append(col.pending.get_nowait())
                except queue.Empty:
                    break
            if col.renderer is not None:
                chunks.append(col.renderer.finish() or "")
            r = result.results.get(label)
            status = r.status if r is not None else "cancelled"
            parts.append(_column_block(label, status, "".join(chunks), r.output if r is not None else None))
        return "\n".join(parts) + "\n" + result.table_text() + "\n"

    def finish(self, result: CompareResult) -> None:
        if self.budget is not None:
            for r in result.results.values():
                self.budget.record(r.cost_usd)
        if self.renderer == "none":
            return
        text = self.text(result)
        if self.budget is not None and self.budget.budget_usd is not None:
            text += f"budget: {self.budget.label()}\n"
        sys.stdout.write(text)
        sys.stdout.flush()

    def fail(self, exc: BaseException) -> None:
        print(f"compare failed: {exc}", file=sys.stderr)

    def result_display(self, result: Any) -> Any:
        return None

    def live_display(self) -> Any:
        return None
