"""``%asm pause RUN`` / ``%asm resume RUN`` / ``%asm audit`` / ``%asm providers`` and the
``%%asm --log FILE --jsonl FILE`` tee into the rendering pipeline.

Registered by ``%load_ext asm_nb`` through ``magics.register_line_command``.
"""

from __future__ import annotations

from typing import Any


def _one_run(name: str, rest: list[str]) -> str:
    from .magics import UsageError

    if len(rest) != 1:
        raise UsageError(f"usage: %asm {name} RUN_ID")
    return rest[0]


def pause_command(magics: Any, rest: list[str]) -> None:
    """``%asm pause RUN``: the run (in flight in this kernel) waits at its next turn boundary."""
    from ..runtime.control import pause_run

    run_id = pause_run(_one_run("pause", rest))
    print(f"pausing {run_id} (it waits at its next turn)")


def resume_command(magics: Any, rest: list[str]) -> None:
    """``%asm resume RUN``: a paused run continues."""
    from ..runtime.control import resume_run

    run_id = resume_run(_one_run("resume", rest))
    print(f"resumed {run_id}")


def audit_command(magics: Any, rest: list[str]) -> Any:
    """``%asm audit [RUN_ID]``: the audit log as a DataFrame."""
    from ..api import resolve_store
    from ..analytics.frames import audit
    from .magics import UsageError, _default

    if len(rest) > 1:
        raise UsageError("usage: %asm audit [RUN_ID]")
    return audit(resolve_store(_default("store")), run_id=rest[0] if rest else None)


def providers_command(magics: Any, rest: list[str]) -> Any:
    """``%asm providers``: every registered provider with its capabilities (a DataFrame)."""
    import pandas as pd

    from ..providers import provider_registry

    rows = [{"provider": m.name, "available": bool(m.metadata.get("available")),
             "capabilities": [c.name for c in m.enabled_capabilities()], "adapter": m.metadata.get("adapter"),
             "description": m.description} for m in provider_registry().list()]
    return pd.DataFrame(rows)


def tee_view(view: Any, renderer: str, log: str | None, jsonl: str | None) -> Any:
    """Make ``view`` also feed a rendering pipeline writing ``log`` (the rendered text, no colour)
    and ``jsonl`` (one JSON line per event); the pipeline closes when the view finishes or fails.
    Returns ``view`` (changed in place) or it unchanged when neither file is asked for."""
    if not log and not jsonl:
        return view
    from ..rendering.pipeline import live
    from ..rendering.renderers import StudioRenderer, renderer_for

    if renderer in ("compact", "verbose"):
        r = renderer_for(renderer, color=False)
    else:
        r = StudioRenderer(color=False, tty=False, skip_types=("message_sent", "turn_completed"))
    pipe = live(r, log=log, jsonl=jsonl, tty=False)
    on_event, finish, fail = view.on_event, view.finish, view.fail

    def tee(event: Any) -> Any:
        pipe(event)
        return on_event(event)

    def finished(*a: Any, **kw: Any) -> Any:
        pipe.close()
        return finish(*a, **kw)

    def failed(*a: Any, **kw: Any) -> Any:
        pipe.close()
        return fail(*a, **kw)

    view.on_event, view.finish, view.fail = tee, finished, failed
    view.pipeline = pipe
    return view


def _register() -> None:
    from .magics import register_line_command

    register_line_command("pause", pause_command)
    register_line_command("resume", resume_command)
    register_line_command("audit", audit_command)
    register_line_command("providers", providers_command)


_register()
