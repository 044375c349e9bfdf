"""The rendering pipeline: one renderer × N sinks over an event stream (docs/rendering.md).

``stream(events, renderer=..., sinks=[...])`` renders each event and hands the event and its
text to every sink in order (even when the text is ``""``), writes the renderer's final text,
then flushes and closes every sink — in a ``finally``, so an exception still flushes/closes
before it propagates. ``astream`` does the same for async iterables.

Before rendering, event data goes through ``asm_nb.persistence.redaction.redact_map`` with
the effective config (``redact=None``, the default): live renderers see raw adapter events,
and secrets must never reach notebook outputs or logs (docs/event-model.md, redaction).

Imports ``asm_nb.core``; the redactor is imported lazily.
"""

from __future__ import annotations

import logging
from typing import Any, AsyncIterable, Callable, Iterable, Mapping, Sequence

from ..core.errors import AsmError

__all__ = ["stream", "astream", "build", "redactor", "LivePipeline", "live"]

log = logging.getLogger(__name__)
_warned_no_redactor = False


def _construct(spec: Any, what: str) -> Any:
    if isinstance(spec, tuple) and len(spec) == 2 and callable(spec[0]) and isinstance(spec[1], Mapping):
        cls, kwargs = spec
        try:
            return cls(**kwargs)
        except AsmError as exc:
            raise AsmError("validation_error", f"{what} construction failed: {exc.message}") from exc
        except Exception as exc:
            raise AsmError("validation_error", f"{what} construction failed: {exc}") from exc
    return spec


def build(renderer: Any, sinks: Sequence[Any] = ()) -> tuple[Any, list[Any]]:
    """Construct a renderer and sinks given as instances or ``(cls, kwargs)`` pairs, in order.
    A construction error closes the sinks already built and raises ``validation_error``."""
    built: list[Any] = []
    try:
        r = _construct(renderer, "renderer")
        for s in sinks:
            built.append(_construct(s, "sink"))
    except Exception:
        for s in built:
            _safe(s.close)
        raise
    return r, built


def _safe(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:
        log.exception("sink flush/close failed")


def redactor(redact: Any = None) -> Callable[[Any], Any] | None:
    """The per-event redaction function for a ``redact`` option: None/True → ``redact_map``
    with the effective global config; a dict → that redaction config; False → None (raw)."""
    global _warned_no_redactor
    if redact is False:
        return None
    try:
        from ..persistence.redaction import redact_map
    except ImportError:
        if not _warned_no_redactor:
            _warned_no_redactor = True
            log.warning("asm_nb.persistence.redaction is unavailable; rendering events unredacted")
        return None
    config = redact if isinstance(redact, Mapping) else None

    def apply(event: Any) -> Any:
        if not isinstance(event, Mapping):
            to_dict = getattr(event, "to_dict", None)
            if not callable(to_dict):
                return event
            event = to_dict()
        data = event.get("data")
        if not isinstance(data, Mapping) or not data:
            return event
        new = redact_map(data, config)
        return event if new is data else {**event, "data": new}

    return apply


def _one(event: Any, renderer: Any, sinks: list[Any], redact_fn: Callable | None) -> None:
    if redact_fn is not None:
        event = redact_fn(event)
    text = renderer.render_event(event)
    for sink in sinks:
        sink.write_event(event, text)


def _finish(renderer: Any, sinks: list[Any]) -> None:
    final = renderer.finish()
    if final:
        for sink in sinks:
            sink.write(final)


def _close_all(sinks: list[Any]) -> None:
    for sink in sinks:
        _safe(sink.flush)
    for sink in sinks:
        _safe(sink.close)


def stream(events: Iterable[Any], *, renderer: Any, sinks: Sequence[Any] = (), redact: Any = None) -> None:
    """Render ``events`` through ``renderer`` into every sink (docs/rendering.md).

    >>> from asm_nb.rendering import CompactRenderer, CallbackSink
    >>> seen = []
    >>> stream([{"type": "run_started", "data": {}}], renderer=CompactRenderer(color=False),
    ...        sinks=[CallbackSink(lambda e, t: seen.append(t))], redact=False)
    >>> seen
    ['r+']
    """
    r, built = build(renderer, sinks)
    redact_fn = redactor(redact)
    try:
        for event in events:
            _one(event, r, built, redact_fn)
        _finish(r, built)
    finally:
        _close_all(built)


async def astream(events: AsyncIterable[Any] | Iterable[Any], *, renderer: Any, sinks: Sequence[Any] = (),
                  redact: Any = None) -> None:
    """``stream`` for an async iterable (a plain iterable works too)."""
    r, built = build(renderer, sinks)
    redact_fn = redactor(redact)
    try:
        if hasattr(events, "__aiter__"):
            async for event in events:  # type: ignore[union-attr]
                _one(event, r, built, redact_fn)
        else:
            for event in events:  # type: ignore[union-attr]
                _one(event, r, built, redact_fn)
        _finish(r, built)
    finally:
        _close_all(built)


class LivePipeline:
    """The pipeline driven one event at a time, for a run's ``on_event`` callback.

    ``stream`` pulls from an iterable; a live run pushes events as the provider streams them.
    ``LivePipeline(renderer, sinks)`` is callable with each event (so it can be passed as
    ``run_once(..., on_event=pipe)``); ``close()`` writes the renderer's final text and flushes and
    closes the sinks (idempotent; also on leaving a ``with`` block). Events are redacted as in
    ``stream``. This is what ``asm run --renderer/--log/--jsonl`` and ``%%asm --log/--jsonl``
    use.

    >>> from asm_nb.rendering import CompactRenderer, CallbackSink
    >>> seen = []
    >>> with LivePipeline(CompactRenderer(color=False), [CallbackSink(lambda e, t: seen.append(t))]) as pipe:
    ...     pipe({"type": "run_started", "data": {}})
    >>> seen[0]
    'r+'
    """

    def __init__(self, renderer: Any, sinks: Sequence[Any] = (), *, redact: Any = None) -> None:
        self.renderer, self.sinks = build(renderer, sinks)
        self._redact = redactor(redact)
        self.closed = False

    def __call__(self, event: Any) -> None:
        if not self.closed:
            _one(event, self.renderer, self.sinks, self._redact)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            _finish(self.renderer, self.sinks)
        finally:
            _close_all(self.sinks)

    def __enter__(self) -> "LivePipeline":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def live(renderer: Any = "studio", *, log: Any = None, jsonl: Any = None, device: Any = None,
         tty: bool = True, color: bool | None = None, jsonl_mode: str = "full",
         extra_sinks: Sequence[Any] = (), redact: Any = None) -> LivePipeline:
    """A ``LivePipeline`` for one run: ``renderer`` by name (``studio``, ``compact``,
    ``verbose``, ``passthrough``) or instance, printed to ``device`` (default the current
    ``sys.stdout``; ``tty=False`` prints nothing), the same text ANSI-free to the ``log`` file,
    and every event as one JSON line to ``jsonl`` (``jsonl_mode`` ``full`` or ``compact``).

    >>> pipe = live("passthrough", tty=False)
    >>> pipe({"type": "run_started", "data": {}}); pipe.close()
    """
    from .renderers import renderer_for
    from .sinks import FileSink, JSONLSink, TTYSink

    if isinstance(renderer, str):
        renderer = renderer_for(renderer) if renderer == "passthrough" else renderer_for(renderer, color=color)
    sinks: list[Any] = []
    if tty:
        sinks.append(TTYSink(device))
    if log is not None:
        sinks.append((FileSink, {"path": log}))
    if jsonl is not None:
        sinks.append((JSONLSink, {"path": jsonl, "mode": jsonl_mode}))
    sinks.extend(extra_sinks)
    return LivePipeline(renderer, sinks, redact=redact)
