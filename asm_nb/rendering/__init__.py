"""Rendering: turn event streams into text (Compact / Verbose / Studio / Passthrough
renderers) and deliver it to sinks (TTY, file, JSONL, callback, PubSub). See docs/rendering.md.

>>> from asm_nb.rendering import stream, StudioRenderer, TTYSink
>>> stream(events, renderer=StudioRenderer(tty=False), sinks=[TTYSink()])  # doctest: +SKIP

Standard library only: importing this package never imports ipywidgets (the notebook's
``WidgetSink`` lives in ``asm_nb.notebook.widgets``).
"""

from __future__ import annotations

from .pipeline import LivePipeline, astream, live, stream
from .renderers import (
    CompactRenderer, PassthroughRenderer, StudioRenderer, VerboseRenderer, renderer_for, short_model, short_reason,
)
from .sinks import CallbackSink, FileSink, JSONLSink, PubSubSink, TTYSink, strip_ansi
from .studio import ToolSummary

__all__ = [
    "stream", "astream", "LivePipeline", "live", "CompactRenderer", "VerboseRenderer", "StudioRenderer", "PassthroughRenderer",
    "renderer_for", "short_model", "short_reason", "TTYSink", "FileSink", "JSONLSink", "CallbackSink",
    "PubSubSink", "strip_ansi", "ToolSummary",
]
