"""Checking the options of the public run functions (``run_once``, ``arun_once``, ``stream``).

Every bad value is a caller mistake: ``AsmError("validation_error")`` naming the option and, for
a misspelt name or an enum value, the closest valid one (``difflib``). ``timeout`` is in seconds in
the Python API (as in ``%%asm --timeout``); the manager below works in milliseconds.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any, Callable, TypeVar

from ..core.errors import AsmError
from ..core.permission import PermissionMode

__all__ = ["check_run_options", "timeout_ms", "public_options", "closest", "unknown_option"]

F = TypeVar("F", bound=Callable[..., Any])

_CONTINUATION = ("auto", "replay", "native")


def closest(name: str, valid: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``valid`` to ``name`` (or ``""``)."""
    match = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _bad(option: str, message: str) -> AsmError:
    return AsmError("validation_error", f"{option}: {message}", details={"option": option})


def timeout_ms(timeout: Any) -> int | str:
    """``timeout`` (seconds; None = unbounded) as the manager's milliseconds (or ``"unbounded"``)."""
    if timeout is None:
        return "unbounded"
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
            or timeout <= 0:
        raise _bad("timeout", f"must be a positive number of seconds, or None for no limit; got {timeout!r}")
    return max(int(round(timeout * 1000)), 1)


def check_run_options(*, timeout: Any = None, max_turns: Any = None, permission_mode: Any = None,
                      metadata: Any = None, tags: Any = None, snapshot: Any = False, continuation: Any = "auto",
                      options: Any = None) -> dict[str, Any]:
    """Validate the run options; return the adapter options as a plain dict."""
    timeout_ms(timeout)
    if max_turns is not None and (isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1):
        raise _bad("max_turns", f"must be a positive integer, got {max_turns!r}")
    if permission_mode is not None:
        valid = [m.value for m in PermissionMode]
        value = getattr(permission_mode, "value", permission_mode)
        if value not in valid:
            raise _bad("permission_mode", f"must be one of {', '.join(valid)}, got {permission_mode!r}"
                       + closest(str(value), valid))
    if metadata is not None and not isinstance(metadata, Mapping):
        raise _bad("metadata", f"must be a dict, got {metadata!r}")
    if tags is not None and (isinstance(tags, (str, bytes)) or not isinstance(tags, Sequence)
                             or not all(isinstance(t, str) for t in tags)):
        raise _bad("tags", f"must be a list of strings, got {tags!r}")
    if not isinstance(snapshot, (bool, Mapping)):
        raise _bad("snapshot", f"must be True, False or a dict of snapshot options, got {snapshot!r}")
    if continuation not in (None, False, *_CONTINUATION):
        raise _bad("continuation", f"must be one of {', '.join(_CONTINUATION)} or False, got {continuation!r}"
                   + closest(str(continuation), _CONTINUATION))
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise _bad("options", f"must be a dict of adapter options, got {options!r}")
    out = dict(options)
    mob = out.get("max_output_bytes")
    if mob is not None and (isinstance(mob, bool) or not isinstance(mob, int) or mob < 1):
        raise _bad("max_output_bytes", f"must be a positive integer, got {mob!r}")
    return out


def unknown_option(fn_name: str, unknown: Sequence[str], valid: Sequence[str]) -> AsmError:
    """The error for keywords ``fn_name`` does not take: the first one named, with a suggestion."""
    k = unknown[0]
    others = f" (and {', '.join(map(repr, unknown[1:]))})" if len(unknown) > 1 else ""
    match = difflib.get_close_matches(k, list(valid), n=1, cutoff=0.8)
    hint = (f"did you mean {match[0]!r}?" if match else
            f"an adapter option goes in options={{{k!r}: ...}}")
    return AsmError("validation_error", f"{fn_name}: unknown option {k!r}{others}; {hint}",
                    details={"option": k, "unknown": list(unknown),
                             "suggestion": match[0] if match else f"options={{{k!r}: ...}}"})


def public_options(fn: F) -> F:
    """Give ``fn`` (whose signature spells out every option) one clear error for unknown ones.

    A keyword ``fn`` does not take raises ``AsmError("validation_error")`` naming it, with the
    closest of ``fn``'s own options (``modle=`` -> did you mean 'model'?) or, when none is close,
    the way adapter options go in: ``options={...}``. Nothing is silently ignored or moved.
    Type checkers and ``inspect.signature`` see ``fn``'s own signature.
    """
    sig = inspect.signature(fn)
    names = [p.name for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]

    def split(kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = [k for k in kwargs if k not in names]
        if not unknown:
            return kwargs
        raise unknown_option(fn.__name__, unknown, names)

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            return await fn(*args, **split(kwargs))

        return awrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **split(kwargs))

    return wrapper  # type: ignore[return-value]
