"""``%%asm``, the cell magic: options parsed and checked, the adapter and view built, then the
run in the foreground (awaited on the kernel's loop, ``_ForegroundPlan``, or waited for in a plain
shell, ``_run_foreground``) or in the background; the result bound to ``_`` / ``--out``. Also the
widget's Approve / Deny answers (``ApprovalBridge``) and the hooks that make a ``%%asm`` cell an
awaited cell (``arun_cell_magic``, ``_async_cell_transformer``).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from IPython.core.magic import Magics
from IPython.core.magic_arguments import parse_argstring

from .. import config
from ..core.errors import AsmError
from ._magic_common import RENDERERS, UsageError, _default, _guard, _one_line, _want_widget, interpolate
from .magic_views import _CardView, _make_view, _publish_ids, _TextView

_BACKGROUND: dict[int, Any] = {}


class CellCommands(Magics):
    """The ``%%asm`` cell: ``_cell`` prepares and runs it, ``_complete`` binds and shows the result."""

    asm: Any  # the magic itself (AsmMagics.asm): its argument parser

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

    @property
    def _user_ns(self) -> dict[str, Any]:
        """The kernel's namespace (a magic always runs inside a shell)."""
        if self.shell is None:
            raise UsageError("%%asm needs a running IPython shell")
        return self.shell.user_ns

    def _cell(self, line: str, cell: str, _async: bool = False) -> Any:
        args = self._parse(line)
        if args.rest:
            raise UsageError(f"unexpected arguments for %%asm: {' '.join(args.rest)}")
        prompt = interpolate(cell, self._user_ns).strip()
        if not prompt:
            raise UsageError("the cell is empty: write the prompt (or command) in the cell body")
        if args.compare:
            from .compare import compare_cell

            return compare_cell(self, args, prompt, _async=_async)
        provider, options = _provider_options(args, prompt)
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
        self._user_ns["_"] = result
        if out:
            if not out.isidentifier():
                raise UsageError(f"--out needs a variable name, got {out!r}")
            self._user_ns[out] = result

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



def _provider_options(args: Any, prompt: str) -> tuple[Any, dict[str, Any]]:
    """The cell's provider and its adapter options from ``--replay`` / ``--speed`` /
    ``--agent-command``, with the option combinations that make no sense refused."""
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
    return provider, options


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
        from IPython.core.getipython import get_ipython

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



class _ForegroundPlan:
    """A prepared foreground run, executed by ``arun_cell_magic`` on the kernel's event loop."""

    def __init__(self, magics: CellCommands, prompt: str, adapter: Any, run_kwargs: dict, view: Any,
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


class _BusyStatus:
    """The kernel's ``_publish_status``, wrapped once per kernel: while ``depth`` > 0 (an awaited
    ``%%asm`` cell runs) an "idle" goes out as "busy".

    The control channel has its own thread (ipykernel 7): its "idle" can be on its way while the
    cell starts or ends. Deciding and sending under one lock keeps the order on IOPub the order of
    the decisions, and the wrapper stays in place, so a control thread that looked the method up
    before a cell started, or before it ended, still goes through it: no "idle" lands after the
    cell's "busy", and no converted "busy" lands after the cell's own "idle".
    """

    def __init__(self, kernel: Any, publish: Callable[..., Any]) -> None:
        import threading

        self.publish = publish
        self.lock = threading.RLock()
        self.depth = 0
        kernel._publish_status = self._publish_status
        kernel._asm_busy_status = self

    def _publish_status(self, status: str, channel: str, parent: Any = None) -> Any:
        with self.lock:
            return self.publish("busy" if status == "idle" and self.depth else status, channel, parent)


def _busy_status(kernel: Any) -> "_BusyStatus | None":
    """The kernel's status wrapper, installed on first use (None: not an ipykernel)."""
    if kernel is None:
        return None
    state = getattr(kernel, "_asm_busy_status", None)
    if isinstance(state, _BusyStatus):
        return state
    publish = getattr(kernel, "_publish_status", None)
    if publish is None:
        return None
    return _BusyStatus(kernel, publish)


def _install_busy_status(ipython: Any) -> None:
    """At ``%load_ext``: wrap the kernel's status publishing before any cell runs (a control
    request answered meanwhile then already goes through the wrapper)."""
    _busy_status(getattr(ipython, "kernel", None))


class _busy_while_awaiting:
    """While an awaited ``%%asm`` cell runs, the kernel's status stays "busy" for the front end.

    The awaiting cell leaves the kernel free to answer other messages, and each control-channel
    request (``kernel_info_request``, the debugger's ``debug_request``...) ends with an "idle"
    status, which JupyterLab shows as the kernel's state although the cell still runs. Inside
    this context such an "idle" is published as "busy"; the cell's own "idle" comes after it.
    Entering publishes one "busy" for the cell: an "idle" sent before the context was entered
    (a control request answered while the cell was still being prepared) would otherwise stand
    until the cell ends.
    """

    def __enter__(self) -> "_busy_while_awaiting":
        self.state = None
        try:
            from IPython.core.getipython import get_ipython

            kernel = getattr(get_ipython(), "kernel", None)
        except Exception:  # pragma: no cover - no IPython
            kernel = None
        state = _busy_status(kernel)
        if state is None:
            return self  # not an ipykernel
        with state.lock:
            state.depth += 1
            if state.depth == 1:
                state.publish("busy", "shell")  # supersede an "idle" already sent for this cell
        self.state = state
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.state is not None:
            with self.state.lock:
                self.state.depth -= 1


async def arun_cell_magic(ip: Any, magic_name: str, line: str, cell: str) -> Any:
    """``%%asm`` as an awaited cell: the kernel's event loop stays free while the run streams,
    so widget messages (Cancel, Approve / Deny) are handled during a foreground run."""
    magics = ip.magics_manager.registry.get("AsmMagics")
    line = _expand_line(ip, line)
    try:
        with _busy_while_awaiting():  # the status bar says Busy until the cell ends
            plan = magics._cell(line, cell, _async=True)
            if isinstance(plan, _ForegroundPlan) or getattr(plan, "foreground_plan", False):
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

