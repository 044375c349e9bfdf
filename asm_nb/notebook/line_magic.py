"""``%asm SUBCOMMAND ...``, the line magic: built-in subcommands as ``_cmd_<name>`` methods of
``LineCommands`` (mixed into ``AsmMagics``), others added by the modules that own them through
``register_line_command`` (``%asm cost``, ``diff``, ``eval``, ``budget``, ``pause`` ...).
"""

from __future__ import annotations

import shlex
from typing import Any

from IPython.core.magic import Magics

from ._magic_common import _KERNEL_DEFAULTS, RENDERERS, UsageError, _default

_LINE_COMMANDS: dict[str, Any] = {}


def register_line_command(name: str, fn: Any) -> None:
    """Let other modules add ``%asm NAME ...`` subcommands (``fn(magics, args)``)."""
    _LINE_COMMANDS[name] = fn


class LineCommands(Magics):
    """``%asm sessions | runs | events | show | cancel | config | store`` and the dispatch to the
    registered subcommands."""

    def _line(self, line: str) -> Any:
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot parse %asm arguments: {exc}") from None
        if not parts:
            raise UsageError("usage: %asm sessions | runs | events RUN | show RUN | cancel RUN | "
                             "config [key=value ...] | store PATH|URL")
        cmd, rest = parts[0], parts[1:]
        handler = getattr(self, f"_cmd_{cmd}", None)
        if handler is None:
            extra = _LINE_COMMANDS.get(cmd)
            if extra is None:
                raise UsageError(f"unknown %asm subcommand {cmd!r}; expected one of "
                                 f"{', '.join(sorted(['sessions', 'runs', 'events', 'show', 'cancel', 'config', 'store', *_LINE_COMMANDS]))}")
            return extra(self, rest)
        return handler(rest)

    def _store(self) -> Any:
        from ..stores import resolve_store

        return resolve_store(_default("store"))

    def _cmd_sessions(self, rest: list[str]) -> Any:
        from .tables import Table, show_table

        rows = [{"session_id": s.id, "name": s.metadata.get("name"), "status": s.status.value,
                 "provider": s.metadata.get("provider"), "created": s.created_at.strftime("%Y-%m-%d %H:%M:%S")}
                for s in self._store().list_sessions()]
        show_table(Table(rows, ["session_id", "name", "status", "provider", "created"]))

    def _cmd_runs(self, rest: list[str]) -> Any:
        if "--live" in rest:
            from .live import live_runs

            return live_runs(self, [a for a in rest if a != "--live"])
        from .tables import Table, show_table

        rows = []
        for r in self._store().list_runs(rest[0] if rest else None):
            u = r.token_usage or {}
            rows.append({"run_id": r.id, "status": r.status.value, "provider": r.provider,
                         "model": (r.provider_metadata or {}).get("model"), "in": u.get("input_tokens"),
                         "out": u.get("output_tokens"), "cost_usd": r.cost_usd})
        show_table(Table(rows, ["run_id", "status", "provider", "model", "in", "out", "cost_usd"]))

    def _cmd_events(self, rest: list[str]) -> Any:
        if len(rest) != 1:
            raise UsageError("usage: %asm events RUN_ID")
        store = self._store()
        run = store.get_run(rest[0])
        from ..core.events import without_audit
        from .tables import EventList

        # a list of the run's events, shown as a table (not raw Event(...) reprs)
        return EventList(without_audit(store.get_events(run.session_id, run_id=run.id)))

    def _cmd_show(self, rest: list[str]) -> Any:
        if len(rest) != 1:
            raise UsageError("usage: %asm show RUN_ID")
        from ..runtime.result import result_from_store as _result_from_store

        store = self._store()
        return _result_from_store(store, store.get_run(rest[0]))

    def _cmd_cancel(self, rest: list[str]) -> Any:
        if len(rest) != 1:
            raise UsageError("usage: %asm cancel RUN_ID")
        from .cell_magic import _BACKGROUND, _cancel_state

        for _fut, state in list(_BACKGROUND.values()):
            if state.get("run_id") == rest[0]:
                _cancel_state(state)
                print(f"cancelling {rest[0]}")
                return None
        raise UsageError(f"no run {rest[0]} is running in this kernel")

    def _cmd_config(self, rest: list[str]) -> Any:
        keys = ("provider", "model", "store", "renderer")
        if not rest:
            for k in keys:
                print(f"{k} = {_KERNEL_DEFAULTS.get(k, '(default)')}")
            return None
        for pair in rest:
            if "=" not in pair:
                raise UsageError(f"usage: %asm config key=value ...  (keys: {', '.join(keys)})")
            k, v = pair.split("=", 1)
            if k not in keys:
                raise UsageError(f"unknown config key {k!r}; expected one of {', '.join(keys)}")
            if k == "renderer" and v not in RENDERERS:
                raise UsageError(f"unknown renderer {v!r}; expected one of {', '.join(RENDERERS)}")
            _KERNEL_DEFAULTS[k] = v or None
        return None

    def _cmd_store(self, rest: list[str]) -> Any:
        if len(rest) != 1:
            raise UsageError("usage: %asm store PATH|URL")
        from ..stores import resolve_store

        store = resolve_store(rest[0])  # fail now on a bad target
        # memory:// opens a fresh store per call: keep this one for the kernel
        _KERNEL_DEFAULTS["store"] = store if rest[0] == "memory://" else rest[0]
        print(f"store: {rest[0]}")
        return None

