"""More ``asm`` subcommands and the run printer, kept apart from ``cli.py`` to keep it short.

- ``asm run --renderer studio|compact|verbose|passthrough --log FILE --jsonl FILE``: the run's
  events go through the rendering pipeline (one renderer x TTY / file / JSONL sinks,
  ``asm_nb.rendering.live``).
- ``asm providers``: every registered provider's manifest (capabilities, adapter class).
- ``asm audit``: the audit log (run started / completed / failed records).
- ``asm search TEXT``: full-text search over prompts, outputs, tool inputs and outputs.
- ``asm otel export``: stored runs as OpenTelemetry GenAI spans to an OTLP/HTTP endpoint.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

RENDERERS = ("studio", "compact", "verbose", "passthrough")


def add_run_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--renderer``, ``--log``, ``--jsonl`` for ``asm run`` / ``asm replay``."""
    parser.add_argument("--renderer", choices=RENDERERS, default="studio",
                        help="how events print while the run streams (default: studio)")
    parser.add_argument("--log", metavar="FILE", help="also write the rendered text (no colour) to FILE")
    parser.add_argument("--jsonl", metavar="FILE", help="write every event as one JSON line to FILE")
    parser.add_argument("--jsonl-mode", choices=("full", "compact"), default="full",
                        help="JSONL line shape (default: full)")


def run_printer(args: argparse.Namespace) -> Any:
    """The ``on_event`` callback for ``asm run``: a ``LivePipeline`` printing to stdout (unless
    ``--json`` / ``--quiet``) and writing ``--log`` / ``--jsonl``. Close it after the run."""
    from .rendering.pipeline import live
    from .rendering.studio import is_tty

    printing = not (getattr(args, "json", False) or getattr(args, "quiet", False))
    return live(getattr(args, "renderer", None) or "studio", log=getattr(args, "log", None),
                jsonl=getattr(args, "jsonl", None), tty=printing, color=None if is_tty() else False,
                jsonl_mode=getattr(args, "jsonl_mode", None) or "full")


def cmd_providers(args: argparse.Namespace) -> int:
    from .providers import provider_registry

    reg = provider_registry()
    if args.capability:
        from .core.capabilities import CapabilityType

        manifests = reg.filter_by_capability(CapabilityType(args.capability)) \
            if args.capability in {t.value for t in CapabilityType} else \
            [m for m in reg.list() if any(c.name == args.capability for c in m.enabled_capabilities())]
    else:
        manifests = reg.list()
    if args.json:
        print(json.dumps([m.to_dict() for m in manifests], ensure_ascii=False, default=str))
        return 0
    from .rendering.tables import text_table as _table

    rows = [{"provider": m.name, "available": "yes" if m.metadata.get("available") else "no",
             "capabilities": ", ".join(c.name for c in m.enabled_capabilities()),
             "adapter": m.metadata.get("adapter") or "", "note": m.metadata.get("error") or m.description or ""}
            for m in manifests]
    print(_table(rows, ["provider", "available", "capabilities", "adapter", "note"]))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .cli import _store, _table
    from .analytics.frames import audit

    df = audit(_store(args), session_id=args.session, run_id=args.run, type=args.type, since=args.since,
               until=args.until, backend="polars")
    if args.limit:
        df = df.tail(args.limit)
    rows = df.to_dicts()
    for r in rows:
        ts = r.get("timestamp")
        r["timestamp"] = ts.strftime("%Y-%m-%d %H:%M:%S") if ts is not None else None
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, default=str))
        return 0
    for r in rows:
        r["detail"] = (f"[{r['error_code']}] {r['error_message']}" if r.get("error_code") else
                       f"tokens {r['input_tokens']}/{r['output_tokens']}" if r.get("input_tokens") is not None
                       else r.get("run_status") or "")
    print(_table(rows, ["timestamp", "type", "run_id", "session_id", "agent_id", "detail"]))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """``asm search TEXT``: ranked hits, the matches in bold on a terminal (``**`` otherwise)."""
    import sys

    from .analytics.search import search_rows
    from .cli import _store, _table

    if args.json:
        rows = search_rows(_store(args), args.text, kind=args.kind, session_id=args.session, limit=args.limit,
                           mark=("**", "**"))
        print(json.dumps(rows, ensure_ascii=False, default=str))
        return 0
    bold = sys.stdout.isatty()
    rows = search_rows(_store(args), args.text, kind=args.kind, session_id=args.session, limit=args.limit,
                       mark=("\x1b[1m", "\x1b[0m") if bold else ("**", "**"))
    if not rows:
        print("no matches", file=sys.stderr)
        return 0
    for r in rows:
        ts = r.get("timestamp")
        r["time"] = ts.strftime("%Y-%m-%d %H:%M:%S") if ts is not None else None
        r["snippet"] = " ".join(r["snippet"].split())
        r["score"] = f"{r['score']:.3g}"
    print(_table(rows, ["rank", "kind", "run_id", "time", "score", "snippet"]))
    return 0


def cmd_otel_export(args: argparse.Namespace) -> int:
    """``asm otel export``: stored runs as GenAI spans (``invoke_agent`` / ``chat`` /
    ``execute_tool``) sent to an OTLP/HTTP endpoint."""
    from .analytics.otel_export import export_runs
    from .cli import _store
    from .core.errors import AsmError

    headers = {}
    for h in args.header or []:
        k, sep, v = h.partition("=")
        if not sep or not k:
            raise AsmError("validation_error", f"--header must be KEY=VALUE, got {h!r}")
        headers[k.strip()] = v.strip()
    out = export_runs(_store(args), run_ids=args.run, session_id=args.session, since=args.since,
                      endpoint=args.endpoint, capture_content=args.capture_content, headers=headers or None,
                      timeout_s=args.timeout)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"exported {out['runs']} run(s) as {out['spans']} span(s) to {out['endpoint']}")
    return 0


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def add_subcommands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``asm providers``, ``asm audit`` and ``asm search`` on the ``asm`` parser."""
    pv = sub.add_parser("providers", parents=[common], help="registered providers: manifests and capabilities")
    pv.add_argument("--capability", help="only providers with this capability name or type (e.g. tool)")
    pv.set_defaults(fn=cmd_providers)

    au = sub.add_parser("audit", parents=[common], help="the audit log: runs started, completed, failed")
    au.add_argument("--session")
    au.add_argument("--run")
    au.add_argument("--type", action="append", help="run_started, run_completed, run_failed, ...")
    au.add_argument("--since", help="ISO date/time (inclusive)")
    au.add_argument("--until", help="ISO date/time (exclusive)")
    au.add_argument("--limit", type=int, help="only the last N records")
    au.set_defaults(fn=cmd_audit)

    se = sub.add_parser("search", parents=[common], help="full-text search: prompts, outputs, tool inputs and outputs")
    se.add_argument("text", help='words (all must match), or FTS5 syntax: "a phrase", a OR b, a NOT b, pre*')
    se.add_argument("--kind", action="append", choices=("prompt", "output", "tool_input", "tool_output"),
                    help="only this kind (repeatable)")
    se.add_argument("--session", help="only this session")
    se.add_argument("--limit", type=_positive_int, default=20, help="at most N hits (default 20)")
    se.set_defaults(fn=cmd_search)

    ot = sub.add_parser("otel", help="OpenTelemetry: export stored runs as GenAI spans")
    ots = ot.add_subparsers(dest="otel_cmd", metavar="export", required=True)
    ox = ots.add_parser("export", parents=[common],
                        help="send stored runs to an OTLP/HTTP endpoint as invoke_agent / chat / execute_tool spans")
    ox.add_argument("--endpoint", help="OTLP/HTTP traces URL (default $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "
                                       "$OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces or http://localhost:4318/v1/traces)")
    ox.add_argument("--run", action="append", help="only this run (repeatable)")
    ox.add_argument("--session", help="only the runs of this session")
    ox.add_argument("--since", help="only runs started at or after this ISO date/time")
    ox.add_argument("--capture-content", action="store_true",
                    help="add tool arguments and results (redacted) as gen_ai.tool.call.arguments/result")
    ox.add_argument("--header", action="append", metavar="KEY=VALUE", help="HTTP header for the endpoint (repeatable)")
    ox.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the endpoint (default 10)")
    ox.set_defaults(fn=cmd_otel_export)
