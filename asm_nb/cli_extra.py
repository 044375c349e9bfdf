"""More ``asm`` subcommands and the run printer, kept apart from ``cli.py`` to keep it short.

- ``asm run --renderer studio|compact|verbose|passthrough --log FILE --jsonl FILE``: the run's
  events go through the rendering pipeline (one renderer x TTY / file / JSONL sinks,
  ``asm_nb.rendering.live``).
- ``asm providers``: every registered provider's manifest (capabilities, adapter class).
- ``asm audit``: the audit log (run started / completed / failed records).
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


def add_subcommands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``asm providers`` and ``asm audit`` on the ``asm`` parser."""
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
