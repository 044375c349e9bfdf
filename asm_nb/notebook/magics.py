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

Split by domain: ``cell_magic.CellCommands`` (the ``%%asm`` cell and how its run is waited for),
``line_magic.LineCommands`` (``%asm`` subcommands), ``magic_views`` (the text and card views) and
``_magic_common`` (``UsageError``, kernel defaults, interpolation); ``AsmMagics`` mixes the two
command classes and owns the options and the one-line error handling. Every name the other modules
and the tests use is re-exported here.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from IPython.core.error import UsageError as _IPythonUsageError
from IPython.core.magic import line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .. import config as config
from ..core.errors import AsmError
from ..policy.options import non_negative_int as _non_negative_int
from ..policy.options import non_negative_number as _non_negative_number
from ..policy.options import positive_int as _positive_int
from ..policy.options import positive_seconds as _positive_seconds
from ._magic_common import _KERNEL_DEFAULTS as _KERNEL_DEFAULTS
from ._magic_common import RENDERERS as RENDERERS
from ._magic_common import UsageError as UsageError
from ._magic_common import _default as _default
from ._magic_common import _guard as _guard
from ._magic_common import _one_line as _one_line
from ._magic_common import _want_widget as _want_widget
from ._magic_common import interpolate as interpolate
from .cell_magic import _BACKGROUND as _BACKGROUND
from .cell_magic import _CELL_CALL_PREFIX as _CELL_CALL_PREFIX
from .cell_magic import APPROVAL_PROVIDERS as APPROVAL_PROVIDERS
from .cell_magic import ApprovalBridge as ApprovalBridge
from .cell_magic import CellCommands
from .cell_magic import _async_cell_transformer as _async_cell_transformer
from .cell_magic import _busy_while_awaiting as _busy_while_awaiting
from .cell_magic import _install_busy_status as _install_busy_status
from .cell_magic import _cancel_state as _cancel_state
from .cell_magic import _expand_line as _expand_line
from .cell_magic import _ForegroundPlan as _ForegroundPlan
from .cell_magic import _kernel_can_await as _kernel_can_await
from .cell_magic import _note_replay_prompt as _note_replay_prompt
from .cell_magic import _run_foreground as _run_foreground
from .cell_magic import _ui_events as _ui_events
from .cell_magic import arun_cell_magic as arun_cell_magic
from .line_magic import _LINE_COMMANDS as _LINE_COMMANDS
from .line_magic import LineCommands
from .line_magic import register_line_command as register_line_command
from .magic_views import _Card as _Card
from .magic_views import _CardView as _CardView
from .magic_views import _make_view as _make_view
from .magic_views import _publish_ids as _publish_ids
from .magic_views import _redacted as _redacted
from .magic_views import _TextView as _TextView


@magics_class
class AsmMagics(CellCommands, LineCommands):
    """The ``%%asm`` cell magic and ``%asm`` line magic (the cell in ``CellCommands``, the line
    subcommands in ``LineCommands``)."""

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


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext asm_nb``: register ``%%asm`` / ``%asm``."""
    from . import costview  # noqa: F401 - registers %asm cost and %asm dashboard
    ipython.register_magics(AsmMagics)
    _guard()
    from . import diffview  # noqa: F401  (registers %asm diff)
    from . import control_magics  # noqa: F401  (registers %asm pause / resume / audit / providers)
    from . import evalview  # noqa: F401  (registers %asm eval)
    if _kernel_can_await(ipython):
        _install_busy_status(ipython)
        if _async_cell_transformer not in ipython.input_transformers_post:
            ipython.input_transformers_post.append(_async_cell_transformer)


def unload_ipython_extension(ipython: Any) -> None:  # pragma: no cover - IPython API
    pass
