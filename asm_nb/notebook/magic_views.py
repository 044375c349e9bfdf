"""The views a ``%%asm`` cell drives while its run streams and when it ends (besides the widget,
``widgets.make_live_view``): ``_TextView`` (plain text rendered on the loop thread, printed on the
main thread; deterministic), ``_CardView`` (nothing live, then the finished run's card) and
``_make_view`` that picks one for a renderer name.
"""

from __future__ import annotations

import queue
import sys
from typing import Any

from .. import config
from ._magic_common import _want_widget


class _TextView:
    """Plain-text live view: events are rendered on the loop thread, printed on the main thread."""

    def __init__(self, renderer: str) -> None:
        from ..rendering.renderers import renderer_for

        opts: dict[str, Any] = {"color": False}
        if renderer == "studio":
            # the prompt is the cell body right above; turns show through their text and tools
            opts["skip_types"] = ("message_sent", "turn_completed")
        self.renderer = renderer_for(renderer, **opts) if renderer != "none" else None
        self.pending: "queue.SimpleQueue[str]" = queue.SimpleQueue()
        self._last_error: Any = None

    def on_event(self, event: dict) -> None:
        if self.renderer is None:
            return
        ev = _redacted(event)
        if ev.get("type") in ("error_occurred", "run_failed"):
            msg = ev["data"].get("error_message")
            if msg is not None and msg == self._last_error:
                return  # the terminal event repeats the error just shown
            self._last_error = msg
        if ev.get("type") == "run_started" and not ev["data"].get("model"):
            ev["data"] = {**ev["data"], "model": ev.get("provider")}  # "● shell session started"
        text = self.renderer.render_event(ev)
        if text:
            self.pending.put(text)

    def poll(self) -> None:
        out = []
        while True:
            try:
                out.append(self.pending.get_nowait())
            except queue.Empty:
                break
        if out:
            sys.stdout.write("".join(out))
            sys.stdout.flush()

    def attach_cancel(self, fn: Any) -> None:
        pass

    def finish(self, result: Any) -> None:
        self.poll()
        if self.renderer is not None:
            tail = self.renderer.finish()
            if tail:
                sys.stdout.write(tail if tail.endswith("\n") else tail + "\n")
                sys.stdout.flush()

    def fail(self, exc: BaseException) -> None:
        self.poll()
        print(f"run failed: {exc}", file=sys.stderr)

    def result_display(self, result: Any) -> Any:
        return None  # the text stream is the display; the result is bound to _ / --out

    def live_display(self) -> Any:
        return None


def _publish_ids(result: Any) -> None:
    """An empty output whose metadata names the run and session: a saved notebook links each
    ``%%asm`` output back to its events (``%asm show RUN``); the visible text stays id-free."""
    run_id, session_id = getattr(result, "run_id", None), getattr(result, "session_id", None)
    if not run_id:
        return
    from IPython.display import publish_display_data

    publish_display_data({"text/plain": ""}, metadata={"asm": {"run_id": run_id, "session_id": session_id}})


def _redacted(event: dict) -> dict:
    from ..persistence.redaction import redact_map

    ev = dict(event)
    ev["data"] = redact_map(event.get("data") or {}, None)
    return ev


class _CardView(_TextView):
    """``--renderer card``: no live output; the finished run shows as its card (the static run
    bundle: ``application/vnd.asm.run+json`` + ``text/html`` + ``text/plain``)."""

    def __init__(self) -> None:
        super().__init__("none")

    def result_display(self, result: Any) -> Any:
        return _Card(result)


class _Card:
    def __init__(self, result: Any) -> None:
        self.result = result

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> Any:
        from ..rendering.mime import run_result_mimebundle

        deterministic = bool(config.get("deterministic_display"))
        data = run_result_mimebundle(self.result, deterministic=deterministic)
        ids = {k: getattr(self.result, k, None) for k in ("run_id", "session_id")}
        ids = {k: v for k, v in ids.items() if v}
        return (data, {"asm": ids}) if ids else data  # metadata: links the output to the store


def _make_view(renderer: str, *, provider: str, model: str | None) -> Any:
    if renderer == "card":
        return _CardView()
    if _want_widget(renderer):
        from .widgets import make_live_view

        return make_live_view(provider=provider, model=model)
    return _TextView("studio" if renderer in ("auto", "widget") else renderer)

