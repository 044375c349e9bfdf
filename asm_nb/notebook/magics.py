"""``%%asm`` and ``%asm``: run agents from cells and look at the store.

``%load_ext asm_nb`` registers them. The cell body of ``%%asm`` is the prompt (for the shell
provider: the command); ``{name}`` interpolates notebook variables (``{{`` escapes a brace) and
the interpolated prompt is what gets stored. ``%%asm?`` shows every option.

Display: ``--renderer widget`` (the live widget), ``studio`` / ``compact`` / ``verbose`` (plain
text, deterministic: no timestamps or ids, so nbval can check it), ``card`` (nothing while it
runs, then the finished run's card: the static bundle a live widget ends as; with the
``deterministic_display`` setting its ids and timings are left out, as in the committed
notebooks), or ``none``. The default
``auto`` picks the widget inside a Jupyter kernel with ipywidgets, plain text elsewhere; set
``%asm config renderer=studio`` (or ``ASM_DEFAULT_RENDERER=studio``) to force text.
"""

from __future__ import annotations

import os
import queue
import shlex
import string
import sys
from typing import Any

from IPython.core.error import UsageError as _IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .. import config
from ..core.errors import AsmError
from ..policy.options import non_negative_int as _non_negative_int
from ..policy.options import non_negative_number as _non_negative_number
from ..policy.options import positive_int as _positive_int
from ..policy.options import positive_seconds as _positive_seconds

_KERNEL_DEFAULTS: dict[str, Any] = {}
RENDERERS = ("auto", "widget", "card", "studio", "compact", "verbose", "none")


class UsageError(Exception):
    """A one-line usage error shown without a traceback."""


def interpolate(text: str, namespace: dict[str, Any]) -> str:
    """Replace ``{expr}`` with values from ``namespace``; ``{{``/``}}`` are literal braces."""
    class _NS(dict):
        def __missing__(self, key: str) -> Any:
            raise UsageError(f"{{{key}}} in the cell: name {key!r} is not defined in the notebook "
                             "(write {{ and }} for literal braces)")

    try:
        return string.Formatter().vformat(text, (), _NS(namespace))
    except UsageError:
        raise
    except (ValueError, IndexError, AttributeError, KeyError) as exc:
        raise UsageError(f"cannot interpolate the cell: {exc} (write {{{{ and }}}} for literal braces)") from None


def _default(key: str, fallback: Any = None) -> Any:
    if key in _KERNEL_DEFAULTS:
        return _KERNEL_DEFAULTS[key]
    return fallback


def _want_widget(renderer: str) -> bool:
    if renderer == "widget":
        return True
    if renderer != "auto":
        return False
    try:
        from IPython import get_ipython

        ip = get_ipython()
        if ip is None or type(ip).__name__ != "ZMQInteractiveShell":
            return False
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _one_line(text: str) -> str:
    """An error line as shown: redacted, newlines folded."""
    from ..persistence.redaction import scan_text

    return scan_text(text, None)[0].replace("\n", " ")


@magics_class
class AsmMagics(Magics):
    """The ``%%asm`` cell magic and ``%asm`` line magic."""

    @magic_arguments()
    @argument("-p", "--provider", help="provider name (shell, replay, claude, claude_code, codex, amp, acp), "
                                       "or several separated by commas (routed in order)")
    @argument("-m", "--model", help="model id or alias")
    @argument("--session", help="continue (or start) the named session")
    @argument("--system", help="system prompt")
    @argument("--max-turns", type=_positive_int, help="maximum agent turns")
    @argument("--permission-mode", choices=["default", "accept_edits", "plan", "full_auto",
                                            "dangerously_skip_permissions"])
    @argument("--cwd", help="working directory of the run")
    @argument("--agent-command", metavar="CMD", help="-p acp: the ACP agent to start (default $ASM_ACP_COMMAND)")
    @argument("--out", help="also bind the RunResult to this variable (_ always holds it)")
    @argument("--renderer", choices=RENDERERS, help="how to show the run (default: auto)")
    @argument("--background", action="store_true", help="return at once; the result is bound when done")
    @argument("--record", metavar="FILE", help="record the run as a replay cassette")
    @argument("--replay", metavar="FILE", help="replay a cassette instead of calling a provider")
    @argument("--speed", type=float, metavar="X",
              help="with --replay: playback speed (1 = as recorded, 2 = twice as fast; default: instant)")
    @argument("--store", help="store path or URL (default: ./.asm or $ASM_HOME)")
    @argument("--quiet", action="store_true", help="show nothing while it runs; only bind the result")
    @argument("--log", metavar="FILE", help="also write the rendered run (plain text) to FILE")
    @argument("--jsonl", metavar="FILE", help="write every event of the run as one JSON line to FILE")
    @argument("--publish", action="store_true",
              help="broadcast the run's events on asm_nb.pubsub.default_pubsub() (topic asm:session:<id>)")
    @argument("--snapshot", action="store_true", help="snapshot the working directory and diff it")
    @argument("--rollback-on-failure", action="store_true",
              help="with --snapshot (git repos): restore the pre-run files if the run fails")
    @argument("--timeout", type=_positive_seconds, help="stop the run after this many seconds")
    @argument("--budget", type=_non_negative_number, metavar="USD",
              help="policy: stop the run once it has cost more than USD")
    @argument("--max-tokens", type=_positive_int, metavar="N", help="policy: stop the run above N tokens")
    @argument("--max-tool-calls", type=_non_negative_int, metavar="N", help="policy: stop the run at tool call N+1")
    @argument("--deny-tools", metavar="A,B", help="policy: tools the run may not use")
    @argument("--allow-tools", metavar="A,B", help="policy: the only tools the run may use")
    @argument("--on-violation", choices=["cancel", "warn", "ask"], help="policy: what a violation does")
    @argument("--compare", action="store_true",
              help="run the prompt on every -p provider (comma-separated) at once, side by side; "
                   "_ / --out get a CompareResult (its .frame is a DataFrame)")
    @argument("rest", nargs="*", help="(line magic) subcommand and its arguments")
    @line_cell_magic
    def asm(self, line: str = "", cell: str | None = None) -> Any:
        """Run an agent: ``%%asm -p shell`` then the prompt as the cell body.

        Line magic: ``%asm sessions | runs [--live] | events RUN | show RUN | cancel RUN |
        pause RUN | resume RUN | audit [RUN] | providers |
        diff RUN [RUN_B] | eval SPEC | cost | dashboard | budget [USD|off] | policy | health |
        config [key=value ...] | store PATH|URL``.
        """
        try:
            if "\x00" in line or (cell is not None and "\x00" in cell):
                raise UsageError("the options or the cell contain a NUL byte (\\x00)")
            if cell is None:
                return self._line(line)
            return self._cell(line, cell)
        except UsageError as exc:
            print(f"UsageError: {exc}", file=sys.stderr)
        except AsmError as exc:
            print(_one_line(f"asm: [{exc.code}] {exc.message}"), file=sys.stderr)
        except KeyboardInterrupt:
            print("asm: interrupted", file=sys.stderr)
        except _IPythonUsageError:
            raise  # IPython shows its own UsageError as one line
        except OSError as exc:  # a path that cannot be read or written
            where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
            print(f"asm: [storage_error] {exc.strerror or exc}{where}", file=sys.stderr)
        except Exception as exc:  # a bug: still one line (ASM_DEBUG=1 shows the traceback)
            if os.environ.get("ASM_DEBUG"):
                raise
            print(_one_line(f"asm: [internal_error] {type(exc).__name__}: {exc} (set ASM_DEBUG=1 for the "
                            "traceback)"), file=sys.stderr)
        return None

    # ---------------------------------------------------------------------------------- cell
    def _parse(self, line: str) -> Any:
        try:
            return parse_argstring(self.asm, line)
        except SystemExit:
            raise UsageError(f"bad %%asm options: {line!r} (see %%asm?)") from None
        except Exception as exc:  # UsageError from IPython's parser
            msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else "bad options"
            if msg.startswith("unrecognized arguments:") and msg.split(":", 1)[1].split():
                from ..core.suggest import did_you_mean

                parser = getattr(self.asm, "parser", None)
                flags = [o for a in getattr(parser, "_actions", []) for o in a.option_strings]
                msg += did_you_mean(msg.split(":", 1)[1].split()[0].split("=")[0], flags)
            raise UsageError(msg) from None

    def _cell(self, line: str, cell: str, _async: bool = False) -> Any:
        args = self._parse(line)
        if args.rest:
            raise UsageError(f"unexpected arguments for %%asm: {' '.join(args.rest)}")
        prompt = interpolate(cell, self.shell.user_ns).strip()
        if not prompt:
            raise UsageError("the cell is empty: write the prompt (or command) in the cell body")
        if args.compare:
            from .compare import compare_cell

            return compare_cell(self, args, prompt, _async=_async)
        provider = args.provider or _default("provider") or config.get("default_provider")
        options: dict[str, Any] = {}
        if args.speed is not None and not args.replay:
            raise UsageError("--speed goes with --replay FILE")
        if args.replay:
            provider = "replay"
            options["cassette"] = args.replay
            if args.speed is not None:
                if not args.speed >= 0:  # also rejects nan
                    raise UsageError(f"--speed must be a number >= 0, got {args.speed}")
                options["speed"] = args.speed or None
            _note_replay_prompt(args.replay, prompt)
        elif provider == "replay":
            raise UsageError("-p replay needs a cassette: %%asm --replay FILE (record one with --record FILE)")
        if args.agent_command:
            if provider != "acp":
                raise UsageError("--agent-command goes with -p acp")
            cmd = args.agent_command.strip()
            if len(cmd) > 1 and cmd[0] == cmd[-1] and cmd[0] in "'\"":  # IPython keeps the quotes
                cmd = cmd[1:-1]
            options["command"] = cmd
        if args.rollback_on_failure and not args.snapshot:
            raise UsageError("--rollback-on-failure needs --snapshot")
        if args.allow_tools and args.deny_tools:
            from ..policy.options import from_options

            from_options(allow_tools=args.allow_tools, deny_tools=args.deny_tools)  # contradictions: one line
        renderer = args.renderer or _default("renderer") or config.get("default_renderer") or "auto"
        if renderer not in RENDERERS:
            raise UsageError(f"unknown renderer {renderer!r}; expected one of {', '.join(RENDERERS)}")
        if args.quiet:
            renderer = "none"
        from ..runtime.oneshot import resolve_adapter
        from ..stores import resolve_store

        store = resolve_store(args.store or _default("store"))
        bridge = None
        if _want_widget(renderer) and provider in APPROVAL_PROVIDERS:
            bridge = ApprovalBridge()
            options["approval_callback"] = bridge
        adapter = resolve_adapter(provider, model=args.model or _default("model"), system=args.system,
                                  max_turns=args.max_turns, permission_mode=args.permission_mode,
                                  cwd=args.cwd, **options)
        if args.record:
            from ..providers.replay import Recorder

            adapter = Recorder(adapter, args.record)
        view = _make_view(renderer, provider=getattr(adapter, "name", str(provider)), model=args.model)
        if args.log or args.jsonl:
            from .control_magics import tee_view  # renderer x file / JSONL sinks

            view = tee_view(view, renderer, args.log, args.jsonl)
        if bridge is not None and hasattr(view, "widget"):
            view.widget.on_approval(bridge.decide)
        snapshot: Any = args.snapshot
        if args.rollback_on_failure:
            snapshot = {"rollback_on_failure": True}
        run_kwargs = dict(store=store, session=args.session, snapshot=snapshot,
                          timeout=args.timeout * 1000 if args.timeout else "unbounded",
                          cwd=args.cwd, on_event=view.on_event)
        run_kwargs["policy"] = _guard().cell_policy(args, view)  # kernel budget + policy options
        if args.publish:
            run_kwargs["publish"] = True
        if args.background:
            return self._background(prompt, adapter, run_kwargs, view, args.out)
        if _async:
            return _ForegroundPlan(self, prompt, adapter, run_kwargs, view, args.out)
        result = _run_foreground(prompt, adapter, run_kwargs, view)
        return self._complete(result, view, args.out)

    def _complete(self, result: Any, view: Any, out: str | None) -> None:
        self._bind(result, out)
        view.finish(result)
        err = getattr(result, "error", None)
        if err is not None and getattr(result, "status", None) != "completed":
            # every failed cell shows its error, whatever the renderer shows
            print(_one_line(f"asm: [{err.code}] {err.message}"), file=sys.stderr)
        if isinstance(view, _TextView) and not isinstance(view, _CardView):
            _publish_ids(result)
        shown = view.result_display(result)
        if shown is not None:
            from IPython.display import display

            display(shown)
        return None

    def _bind(self, result: Any, out: str | None) -> None:
        self.shell.user_ns["_"] = result
        if out:
            if not out.isidentifier():
                raise UsageError(f"--out needs a variable name, got {out!r}")
            self.shell.user_ns[out] = result

    def _background(self, prompt: str, adapter: Any, run_kwargs: dict, view: Any, out: str | None) -> Any:
        from ..runtime.oneshot import arun_tracked
        from ..runtime import loop

        state: dict[str, Any] = {}
        fut = loop.submit(arun_tracked(prompt, adapter, state, **run_kwargs))
        view.attach_cancel(lambda: _cancel_state(state))

        def _done(f: Any) -> None:
            try:
                result = f.result()
            except BaseException as exc:  # shown in the view; nothing to bind
                view.fail(exc)
                return
            self._bind(result, out)
            view.finish(result)

        fut.add_done_callback(_done)
        _BACKGROUND[id(fut)] = (fut, state)
        return view.live_display()

    # ---------------------------------------------------------------------------------- line
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


_BACKGROUND: dict[int, Any] = {}
_LINE_COMMANDS: dict[str, Any] = {}


def register_line_command(name: str, fn: Any) -> None:
    """Let other modules add ``%asm NAME ...`` subcommands (``fn(magics, args)``)."""
    _LINE_COMMANDS[name] = fn


def _cancel_state(state: dict[str, Any]) -> None:
    from ..runtime import loop, manager

    if state.get("run_id"):
        loop.submit(manager.acancel_run(state["store"], state["adapter"], state["run_id"]))


APPROVAL_PROVIDERS = ("claude", "acp")


class ApprovalBridge:
    """The Claude and ACP adapters' ``approval_callback`` answered by the widget's Approve / Deny buttons
    (a click that arrives before the adapter asks is kept for the next question)."""

    def __init__(self) -> None:
        from ._approval import ButtonAnswers

        self._answers = ButtonAnswers()

    async def __call__(self, tool_name: str, tool_input: Any) -> bool:
        return (await self._answers.ask()) == "approve"

    def decide(self, decision: str, request: Any = None) -> None:
        self._answers.decide(decision, request)


def _ui_events() -> Any:
    """A context giving ``poll(n)`` that processes pending widget messages (button clicks) while
    the cell is busy; a no-op outside a kernel or without ``jupyter_ui_poll``."""
    import contextlib

    try:
        from IPython import get_ipython

        if get_ipython() is None or type(get_ipython()).__name__ != "ZMQInteractiveShell":
            raise ImportError
        from jupyter_ui_poll import ui_events
    except ImportError:
        return contextlib.nullcontext(lambda n=1: None)
    return ui_events()


def _run_foreground(prompt: str, adapter: Any, run_kwargs: dict, view: Any) -> Any:
    """Run and wait; the stop button (KeyboardInterrupt) cancels the run and shows it cancelled.
    With the widget, button clicks are processed while waiting (Cancel, Approve / Deny)."""
    from ..runtime.oneshot import arun_tracked
    from ..runtime import loop

    state: dict[str, Any] = {}
    fut = loop.submit(arun_tracked(prompt, adapter, state, **run_kwargs))
    view.attach_cancel(lambda: _cancel_state(state))
    widget_view = hasattr(view, "widget")
    try:
        if widget_view:
            with _ui_events() as ui_poll:
                def poll() -> None:
                    view.poll()
                    ui_poll(20)

                return loop.wait(fut, poll=poll, on_interrupt=lambda: _cancel_state(state), interrupt_grace_s=15)
        return loop.wait(fut, poll=view.poll, on_interrupt=lambda: _cancel_state(state), interrupt_grace_s=15)
    except KeyboardInterrupt:
        view.poll()
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            return fut.result()
        raise


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


def _note_replay_prompt(path: str, prompt: str) -> None:
    """Say so when the cell's prompt is not the one the cassette recorded (the replay shows the
    recording whatever the cell says)."""
    from ..providers.replay import load_cassette

    try:
        recorded = load_cassette(path).header.get("input")
    except Exception:  # a bad cassette fails the run with its own clear error
        return
    if isinstance(recorded, str) and recorded.strip() and recorded.strip() != prompt.strip():
        shown = recorded.strip().replace("\n", " ")
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        print(f"note: this cell's prompt differs from the recording's ({shown!r}); "
              "the replay shows what was recorded", file=sys.stderr)


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


class _ForegroundPlan:
    """A prepared foreground run, executed by ``arun_cell_magic`` on the kernel's event loop."""

    def __init__(self, magics: AsmMagics, prompt: str, adapter: Any, run_kwargs: dict, view: Any,
                 out: str | None) -> None:
        self.magics, self.prompt, self.adapter = magics, prompt, adapter
        self.run_kwargs, self.view, self.out = run_kwargs, view, out

    async def run(self) -> None:
        import asyncio

        from ..runtime.oneshot import arun_tracked
        from ..runtime import loop

        state: dict[str, Any] = {}
        fut = loop.submit(arun_tracked(self.prompt, self.adapter, state, **self.run_kwargs))
        self.view.attach_cancel(lambda: _cancel_state(state))
        afut = asyncio.wrap_future(fut)
        await self._wait(afut, state)
        result = afut.result()
        self.magics._complete(result, self.view, self.out)
        return None

    async def _wait(self, afut: Any, state: dict[str, Any]) -> None:
        import asyncio

        interrupted = False
        while True:
            try:
                await asyncio.wait({afut}, timeout=0.05)
                self.view.poll()
            except (asyncio.CancelledError, KeyboardInterrupt):
                # The stop button: ipykernel cancels an awaiting cell instead of raising
                # KeyboardInterrupt. Cancel the run and wait for it to be recorded.
                if not interrupted:
                    interrupted = True
                    _cancel_state(state)
                continue
            if afut.done():
                break


class _busy_while_awaiting:
    """While an awaited ``%%asm`` cell runs, the kernel's status stays "busy" for the front end.

    The awaiting cell leaves the kernel free to answer other messages, and each control-channel
    request (``kernel_info_request``, the debugger's ``debug_request``...) ends with an "idle"
    status, which JupyterLab shows as the kernel's state although the cell still runs. Inside
    this context such an "idle" is published as "busy"; the cell's own "idle" comes after it.
    """

    def __enter__(self) -> "_busy_while_awaiting":
        self.kernel = None
        try:
            from IPython import get_ipython

            kernel = getattr(get_ipython(), "kernel", None)
        except Exception:  # pragma: no cover - no IPython
            kernel = None
        publish = getattr(kernel, "_publish_status", None)
        if kernel is None or publish is None or "_publish_status" in vars(kernel):
            return self  # not an ipykernel, or already wrapped (a nested run)

        def _publish_status(status: str, channel: str, parent: Any = None) -> Any:
            return publish("busy" if status == "idle" else status, channel, parent)

        kernel._publish_status = _publish_status
        self.kernel = kernel
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.kernel is not None:
            del self.kernel._publish_status


async def arun_cell_magic(ip: Any, magic_name: str, line: str, cell: str) -> Any:
    """``%%asm`` as an awaited cell: the kernel's event loop stays free while the run streams,
    so widget messages (Cancel, Approve / Deny) are handled during a foreground run."""
    magics = ip.magics_manager.registry.get("AsmMagics")
    line = _expand_line(ip, line)
    try:
        plan = magics._cell(line, cell, _async=True)
        if isinstance(plan, _ForegroundPlan) or getattr(plan, "foreground_plan", False):
            with _busy_while_awaiting():  # the status bar says Busy until the cell ends
                return await plan.run()
        return plan
    except UsageError as exc:
        print(f"UsageError: {exc}", file=sys.stderr)
    except AsmError as exc:
        print(f"asm: [{exc.code}] {exc.message}", file=sys.stderr)
    return None


def _expand_line(__ip: Any, __line: str) -> str:
    # var_expand merges the caller frame's locals into the namespace: keep them unlikely names
    return __ip.var_expand(__line, depth=0)


_CELL_CALL_PREFIX = "get_ipython().run_cell_magic('asm', "


def _async_cell_transformer(lines: list[str]) -> list[str]:
    """Rewrite ``%%asm`` cells into an awaited call (IPython then runs them asynchronously)."""
    if len(lines) == 1 and lines[0].startswith(_CELL_CALL_PREFIX):
        rest = lines[0][len(_CELL_CALL_PREFIX):]
        return ["await __import__('asm_nb.notebook.magics', fromlist=['arun_cell_magic'])"
                ".arun_cell_magic(get_ipython(), 'asm', " + rest]
    return lines


def _kernel_can_await(ipython: Any) -> bool:
    if type(ipython).__name__ != "ZMQInteractiveShell" or not getattr(ipython, "autoawait", False):
        return False
    try:
        from IPython.core.async_helpers import _asyncio_runner

        return ipython.loop_runner is _asyncio_runner
    except ImportError:
        return False


def _guard() -> Any:
    from . import guard  # policy stack, kernel budget; registers %asm budget / policy / health

    return guard


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext asm_nb``: register ``%%asm`` / ``%asm``."""
    from . import costview  # noqa: F401 - registers %asm cost and %asm dashboard
    ipython.register_magics(AsmMagics)
    _guard()
    from . import diffview  # noqa: F401  (registers %asm diff)
    from . import control_magics  # noqa: F401  (registers %asm pause / resume / audit / providers)
    from . import evalview  # noqa: F401  (registers %asm eval)
    if _kernel_can_await(ipython) and _async_cell_transformer not in ipython.input_transformers_post:
        ipython.input_transformers_post.append(_async_cell_transformer)


def unload_ipython_extension(ipython: Any) -> None:  # pragma: no cover - IPython API
    pass
