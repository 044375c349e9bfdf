"""The ``asm`` command: run agents and read the store from a terminal.

    asm run -p shell "echo hi"      asm sessions      asm runs      asm events RUN_ID
    asm replay CASSETTE             asm cost        asm export --format parquet|csv|jsonl OUT
    asm export --format sqlite OUT.db  (tables + views for Datasette / any SQL tool)
    asm gc [--max-age-days N] [--keep-failed] [--dry-run]
    asm providers [--capability NAME]      asm audit [--run RUN_ID] [--session ID]
    asm run --renderer studio|compact|verbose|passthrough --log FILE --jsonl FILE ...
    asm eval SPEC.toml|yaml         (exit 1 when a threshold fails)
    asm import claude-code|codex [--since D] [--project P]     asm usage [--by day|model|block|...]
                                    (every command takes --store PATH|URL and --json)

Bad input prints one line ``asm: error: …`` and exits with status 2; a failed run exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from .core.errors import AsmError
from .rendering.tables import text_table as _table


def _emit(args: argparse.Namespace, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, default=str, indent=None))
    else:
        print(_table(rows, columns))


def _store(args: argparse.Namespace, *, create: bool = False) -> Any:
    """The ``--store`` store. Read-only commands (``create=False``) never create one: a path
    that is not a store is an error naming it."""
    from .stores import resolve_store

    if not create:
        from .stores.existing import require_existing_store

        require_existing_store(args.store)
    return resolve_store(args.store)


def _redact(value: Any) -> Any:
    """Terminal output goes through the redactor like the store (the ``redaction_*`` config)."""
    from .persistence.redaction import redact_map, scan_text

    if isinstance(value, str):
        return scan_text(value, None)[0]
    return redact_map(value, None)


def _redacting(callback: Any) -> Any:
    """``callback`` fed redacted event dicts: what reaches the terminal or a ``--log`` /
    ``--jsonl`` file is what the store keeps."""
    def on_event(ev: dict) -> Any:
        return callback(_redact(ev))

    return on_event


def _fmt_time(dt: Any) -> str | None:
    return dt.strftime("%Y-%m-%d %H:%M:%S") if dt is not None else None


def cmd_run(args: argparse.Namespace) -> int:
    from .api import run_once

    opts = parse_options(args.option or [])
    _check_text(args.prompt, "the prompt")
    from .policy.options import policy_from_args, terminal_approval

    policy = policy_from_args(args)
    if policy is not None and policy.on_violation == "request_approval":
        policy = _with_approval(policy, terminal_approval)
    if policy is not None:
        opts["policy"] = policy
    from .cli_extra import run_printer

    printer = run_printer(args)  # renderer x sinks (--renderer, --log, --jsonl)
    try:
        import inspect

        run_params = set(inspect.signature(run_once).parameters)  # -o names run_once takes itself
        run_kw = {k: v for k, v in opts.items() if k in run_params}
        adapter_opts = {k: v for k, v in opts.items() if k not in run_params}
        result = run_once(args.prompt, args.provider, store=_store(args, create=True), model=args.model,
                          session=args.session, cwd=args.cwd, on_event=_redacting(printer), **run_kw,
                          options=adapter_opts or None)
    finally:
        printer.close()
    if args.json:
        d = result.to_dict()
        d.pop("events", None)
        print(json.dumps(_redact(d), ensure_ascii=False, default=str))
    else:
        usage = result.token_usage
        cost = "n/a" if result.cost_usd is None else f"${result.cost_usd:.4f}"
        status = f"{result.status} (refused)" if result.refused else result.status
        if result.partial:
            status += " (partial output kept)"
        print(f"\n--\nrun {result.run_id}  session {result.session_id}  status {status}  "
              f"tokens {usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)}  cost {cost}",
              file=sys.stderr)
        if result.error is not None:
            print(_redact(f"error: [{result.error.code}] {result.error.message}"), file=sys.stderr)
            d = result.error.details or {}
            if result.error.code == "policy_violation" and d.get("limit"):
                seen = f", observed {d['observed']}" if "observed" in d else ""
                print(f"policy {d.get('policy')}: {d['limit']} {d.get('limit_value', d.get('tool_name', ''))}"
                      f"{seen}", file=sys.stderr)
    return 0 if result.ok else 1


#: ``run_once`` arguments that ``asm run`` sets from its own flags (``-o`` may not repeat them)
_FLAG_OPTIONS = {"cwd": "--cwd", "model": "--model", "session": "--session", "store": "--store",
                 "provider": "--provider", "on_event": None, "policy": "--budget/--timeout/--deny-tools ...",
                 "prompt": None}


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``-o KEY=VALUE`` pairs as a dict (VALUE parsed as JSON when it is JSON, else a string).

    Raises ``AsmError("validation_error")`` for a pair without ``=``, a key that is not a name, a
    key ``asm run`` sets from a flag (``cwd`` → use ``--cwd``), a repeated key or a NUL byte."""
    opts: dict[str, Any] = {}
    for pair in pairs:
        _check_text(pair, "an option")
        if "=" not in pair:
            raise AsmError("validation_error", f"-o expects KEY=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        k = k.strip()
        if not k.isidentifier():
            raise AsmError("validation_error", f"-o option name must be a name like timeout_ms, got {k!r}")
        if k in _FLAG_OPTIONS:
            flag = _FLAG_OPTIONS[k]
            raise AsmError("validation_error", f"-o {k}=... is not an adapter option"
                           + (f"; use {flag}" if flag else ""))
        if k in opts:
            raise AsmError("validation_error", f"-o {k} is given twice")
        try:
            value = json.loads(v)
        except ValueError:
            value = v
        if isinstance(value, float) and value != value:  # NaN
            raise AsmError("validation_error", f"-o {k}: NaN is not a valid value")
        opts[k] = value
    return opts


def _check_text(text: Any, what: str) -> None:
    if isinstance(text, str) and "\x00" in text:
        raise AsmError("validation_error", f"{what} contains a NUL byte (\\x00)")


def _with_approval(policy: Any, callback: Any) -> Any:
    from .policy import merge

    return merge(policy, metadata={**policy.metadata, "approval_callback": callback})


def cmd_health(args: argparse.Namespace) -> int:
    from .routing.health import COLUMNS, health_rows

    _emit(args, health_rows(), COLUMNS)
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = []
    for s in store.list_sessions(status=args.status, limit=args.limit):
        rows.append({"session_id": s.id, "name": s.metadata.get("name"), "agent": s.agent_id,
                     "status": s.status.value, "provider": s.metadata.get("provider"),
                     "created": _fmt_time(s.created_at)})
    _emit(args, rows, ["session_id", "name", "agent", "status", "provider", "created"])
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = []
    for r in store.list_runs(args.session, status=args.status):
        u = r.token_usage or {}
        rows.append({"run_id": r.id, "session_id": r.session_id, "status": r.status.value, "provider": r.provider,
                     "model": (r.provider_metadata or {}).get("model"), "input_tokens": u.get("input_tokens"),
                     "output_tokens": u.get("output_tokens"), "cost_usd": r.cost_usd,
                     "started": _fmt_time(r.started_at), "duration_ms": r.duration_ms})
    if args.limit is not None:
        rows = rows[-args.limit:] if args.limit else []
    _emit(args, rows, ["run_id", "session_id", "status", "provider", "model", "input_tokens", "output_tokens",
                       "cost_usd", "started", "duration_ms"])
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    store = _store(args)
    run = store.get_run(args.run_id)
    from .core.events import without_audit

    events = without_audit(store.get_events(run.session_id, run_id=run.id, type=args.type or None))
    if args.json:
        print(json.dumps([e.to_dict() for e in events], ensure_ascii=False))
        return 0
    rows = []
    for e in events:
        d = e.data
        summary = d.get("content") or d.get("delta") or d.get("tool_name") or d.get("error_message") or \
            d.get("stop_reason") or ""
        if e.type.value == "token_usage_updated":
            summary = f"in {d.get('input_tokens')} out {d.get('output_tokens')}"
        rows.append({"seq": e.sequence_number, "time": e.timestamp.strftime("%H:%M:%S.%f")[:-3],
                     "type": e.type.value, "summary": summary})
    print(_table(rows, ["seq", "time", "type", "summary"]))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    args.prompt = args.prompt or f"replay {args.cassette}"
    args.provider = "replay"
    args.option = [f"cassette={json.dumps(args.cassette)}"] + ([f"speed={args.speed}"] if args.speed else [])
    args.model = None
    args.session = None
    args.cwd = None
    return cmd_run(args)


def cmd_cost(args: argparse.Namespace) -> int:
    from .analytics.cost import cost_rows
    from .rendering.tables import format_cost_table

    rows, total = cost_rows(_store(args), by=args.by, provider=args.provider, model=args.model,
                            session_id=args.session, status=args.status, since=args.since, until=args.until)
    if args.json:
        print(json.dumps({"rows": rows, "total": total}, ensure_ascii=False, default=str))
    else:
        print(format_cost_table(rows, total))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .analytics.export import export

    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    written = export(_store(args), args.out, format=args.format, tables=tables, overwrite=args.overwrite,
                     session_id=args.session, provider=args.provider, since=args.since, until=args.until)
    if args.json:
        print(json.dumps(written, ensure_ascii=False))
    else:
        print(_table([{"table": t, "rows": w["rows"], "path": w["path"]} for t, w in written.items()],
                     ["table", "rows", "path"]))
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from .stores.copy import copy_store

    from .stores.existing import require_existing_store

    require_existing_store(args.src, what="source store")
    counts = copy_store(args.src, args.dst, progress=not args.no_progress)
    print(_table([{"what": k, "count": v} for k, v in counts.items()], ["what", "count"]))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from .analytics.gc import gc

    report = gc(_store(args), max_age_days=args.max_age_days, hard_delete_after_days=args.hard_delete_after_days,
                max_events_per_session=args.max_events_per_session, keep_failed=args.keep_failed,
                dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, default=str))
    else:
        print("dry run: nothing was changed" if report["dry_run"] else "maintenance report")
        for key in ("sessions_soft_deleted", "sessions_hard_deleted", "events_pruned", "artifacts_cleaned",
                    "artifact_blobs_vacuumed", "orphaned_sequences_cleaned", "duration_ms"):
            v = report.get(key)
            print(f"  {key:<28} {'n/a' if v is None else v}")
        for key in ("soft_delete_session_ids", "hard_delete_session_ids"):
            for sid in report.get(key) or []:
                print(f"  would {key.split('_delete')[0]} delete {sid}")
        pol = report["policy"]
        print(f"  policy: max_age_days={pol['max_age_days']} hard_delete_after_days={pol['hard_delete_after_days']} "
              f"max_events_per_session={pol['max_events_per_session']} exempt={','.join(pol['exempt_statuses'])}")
        for err in report.get("errors") or []:
            print(f"  error: {err}", file=sys.stderr)
    return 1 if report.get("errors") else 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``asm eval FILE``: run an eval spec (TOML/YAML); exit 1 when a threshold fails."""
    from .evaluation.spec import run_spec

    result, failures = run_spec(args.file, store=args.store, name=args.name, progress=not args.json,
                                concurrency=args.concurrency)
    rows = result.summary.to_dict("records")
    if args.json:
        print(json.dumps({"eval": result.name, "summary": rows, "failures": failures, "stopped": result.stopped},
                         default=str))
    else:
        print(f"eval {result.name}")
        print(_table(rows, ["agent", "runs", "mean_score", "ci_low", "ci_high", "pass_rate", "errors", "cost_usd",
                            "p50_duration_ms"]))
        for f in failures:
            print(f"FAIL {f}")
        print("thresholds: " + ("failed" if failures else "met"))
    return 1 if failures else 0


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``asm: error: …``, exit 2), with the
    closest valid choice or option suggested."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        from .core.suggest import did_you_mean

        hint = ""
        if message.startswith("unrecognized arguments:"):
            first = message.split(":", 1)[1].split()[0] if message.split(":", 1)[1].split() else ""
            if first.startswith("-"):
                flags = [o for a in self._actions for o in a.option_strings]
                for a in self._actions:  # the chosen subcommand's flags too
                    if isinstance(a, argparse._SubParsersAction):
                        for sp in a.choices.values():
                            flags += [o for sa in sp._actions for o in sa.option_strings]
                hint = did_you_mean(first.split("=")[0], flags)
        elif "invalid choice:" in message:
            import re as _re

            m = _re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
            if m:
                choices = [c.strip(" '") for c in m.group(2).split(",")]
                hint = did_you_mean(m.group(1), choices)
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")


def _non_negative_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--store", help="store path or URL (default: $ASM_HOME or ./.asm)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = _Parser(prog="asm", description="Run and inspect AI agent sessions.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", parents=[common], help="run a prompt (for shell: a command)")
    r.add_argument("prompt")
    r.add_argument("-p", "--provider", default="shell")
    r.add_argument("-m", "--model")
    r.add_argument("--session", help="continue (or start) a named session")
    r.add_argument("--cwd")
    r.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="adapter option (JSON value)")
    r.add_argument("-q", "--quiet", action="store_true", help="do not stream output")
    from .policy.options import add_policy_arguments

    add_policy_arguments(r)  # --budget --max-tokens --max-tool-calls --timeout --deny-tools ...
    from .cli_extra import add_run_output_arguments, add_subcommands

    add_run_output_arguments(r)  # --renderer --log --jsonl
    r.set_defaults(fn=cmd_run)

    h = sub.add_parser("health", parents=[common], help="providers: available, circuit state, recent failures")
    h.set_defaults(fn=cmd_health)

    s = sub.add_parser("sessions", parents=[common], help="list sessions")
    s.add_argument("--status")
    s.add_argument("--limit", type=_non_negative_int)
    s.set_defaults(fn=cmd_sessions)

    rr = sub.add_parser("runs", parents=[common], help="list runs")
    rr.add_argument("--session")
    rr.add_argument("--status")
    rr.add_argument("--limit", type=_non_negative_int, help="only the last N runs")
    rr.set_defaults(fn=cmd_runs)

    e = sub.add_parser("events", parents=[common], help="list the events of a run")
    e.add_argument("run_id")
    e.add_argument("--type", action="append")
    e.set_defaults(fn=cmd_events)

    rp = sub.add_parser("replay", parents=[common], help="replay a cassette into the store")
    rp.add_argument("cassette")
    rp.add_argument("--prompt")
    rp.add_argument("--speed", type=float)
    rp.add_argument("-q", "--quiet", action="store_true")
    add_run_output_arguments(rp)
    rp.set_defaults(fn=cmd_replay)

    c = sub.add_parser("cost", parents=[common], help="USD and tokens by provider and model")
    c.add_argument("--by", default="provider,model", help="comma-separated groups: provider, model, day, session")
    c.add_argument("--provider", action="append")
    c.add_argument("--model", action="append")
    c.add_argument("--session")
    c.add_argument("--status", action="append")
    c.add_argument("--since", help="ISO date/time (inclusive)")
    c.add_argument("--until", help="ISO date/time (exclusive)")
    c.set_defaults(fn=cmd_cost)

    x = sub.add_parser("export", parents=[common], help="write sessions/runs/events/tool_calls to files, or one "
                                                         "SQLite file with views (--format sqlite)")
    x.add_argument("out", help="output directory (one file per table); for --format sqlite the .db file")
    x.add_argument("--format", choices=["parquet", "csv", "jsonl", "sqlite"], default="parquet")
    x.add_argument("--tables", help="comma-separated subset of sessions,runs,events,tool_calls")
    x.add_argument("--overwrite", action="store_true", help="replace existing files")
    x.add_argument("--session")
    x.add_argument("--provider", action="append")
    x.add_argument("--since", help="ISO date/time (inclusive)")
    x.add_argument("--until", help="ISO date/time (exclusive)")
    x.set_defaults(fn=cmd_export)

    g = sub.add_parser("gc", parents=[common], help="apply retention: delete old sessions, prune events")
    g.add_argument("--max-age-days", type=_non_negative_int, help="soft delete sessions not updated for N days")
    g.add_argument("--hard-delete-after-days", type=_non_negative_int, help="hard delete sessions soft deleted N days ago")
    g.add_argument("--max-events-per-session", type=_non_negative_int, help="prune the oldest streaming events beyond N")
    g.add_argument("--keep-failed", action="store_true", help="never delete failed sessions")
    g.add_argument("--dry-run", action="store_true", help="report what would be deleted; change nothing")
    g.set_defaults(fn=cmd_gc)

    ev = sub.add_parser("eval", parents=[common], help="run an eval spec (TOML/YAML); exit 1 if a threshold fails")
    ev.add_argument("file", help="the spec: .toml, .yaml or .yml")
    ev.add_argument("--name", help="store results under this eval name (default: the spec's name)")
    ev.add_argument("--concurrency", type=int, help="runs at a time (default: the spec's, else 4)")
    ev.set_defaults(fn=cmd_eval)

    cp = sub.add_parser("copy", help="copy sessions, runs, events and artifact records between two stores")
    cp.add_argument("src", help="source store: path or URL (sqlite:///..., postgresql://...)")
    cp.add_argument("dst", help="destination store: path or URL")
    cp.add_argument("--no-progress", action="store_true", help="no progress bar")
    cp.set_defaults(fn=cmd_copy)

    add_subcommands(sub, common)  # providers, audit
    from .cli_history import add_history_subcommands

    add_history_subcommands(sub, common)  # import, usage
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    # warnings (a skipped bad record, an escaped process) as one line each, like errors
    previous = warnings.formatwarning
    warnings.formatwarning = lambda msg, category, *a, **k: f"asm: warning: {msg}\n"  # type: ignore[assignment]
    try:
        return _main(argv)
    finally:
        warnings.formatwarning = previous


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (one line already printed) or --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.fn(args)
    except AsmError as err:
        print(_redact(f"asm: error: [{err.code}] {err.message}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("asm: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path that cannot be read or written: one line naming it
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        print(f"asm: error: [storage_error] {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line (ASM_DEBUG=1 shows the traceback)
        import os

        if os.environ.get("ASM_DEBUG"):
            raise
        print(_redact(f"asm: error: [internal_error] {type(exc).__name__}: {exc} (set ASM_DEBUG=1 for the "
                      "traceback)").replace("\n", " "), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
