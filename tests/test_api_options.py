"""The public run functions spell out their options; bad ones are caller mistakes with a name.

``timeout`` is seconds; adapter options go in ``options=``; a misspelt keyword or a bad value is
``AsmError("validation_error")`` naming the option (and the closest valid one)."""

from __future__ import annotations

import inspect
import math
import warnings

import pytest

import asm_nb


@pytest.mark.parametrize("fn", ["run_once", "arun_once", "stream", "batch"])
def test_signatures_have_no_catch_all(fn):
    params = inspect.signature(getattr(asm_nb, fn)).parameters.values()
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    assert "options" in inspect.signature(getattr(asm_nb, fn)).parameters
    assert not any(p.name.startswith("_") for p in params)


@pytest.mark.parametrize("kwargs, option", [
    ({"timeout": -1}, "timeout"), ({"timeout": "abc"}, "timeout"), ({"timeout": math.nan}, "timeout"),
    ({"timeout": True}, "timeout"), ({"max_turns": -3}, "max_turns"), ({"max_turns": 1.5}, "max_turns"),
    ({"permission_mode": "yolo"}, "permission_mode"), ({"metadata": 5}, "metadata"), ({"tags": 5}, "tags"),
    ({"tags": "a"}, "tags"), ({"options": {"max_output_bytes": -1}}, "max_output_bytes"), ({"options": 3}, "options"),
    ({"continuation": "nativ"}, "continuation"), ({"snapshot": "yes"}, "snapshot"),
])
def test_bad_values_name_the_option(kwargs, option):
    with pytest.raises(asm_nb.ValidationError) as exc:
        asm_nb.run_once("echo hi", provider="shell", store="memory://", **kwargs)
    assert exc.value.code == "validation_error" and exc.value.message.startswith(option)


def test_misspelt_option_suggests_the_closest():
    with pytest.raises(asm_nb.AsmError, match="unknown option 'modle'; did you mean 'model'"):
        asm_nb.run_once("echo hi", provider="shell", store="memory://", modle="x")
    with pytest.raises(asm_nb.AsmError, match="did you mean 'native'"):
        asm_nb.run_once("echo hi", provider="shell", store="memory://", continuation="nativ")
    with pytest.raises(asm_nb.AsmError, match="did you mean 'timeout'"):
        asm_nb.stream("echo hi", provider="shell", store="memory://", timeuot=3)


def test_timeout_is_seconds():
    # the execute timeout is timeout + the adapter grace (execute_grace_timeout_ms, 5 s)
    r = asm_nb.run_once("sleep 30", provider="shell", store="memory://", timeout=0.5)
    assert r.status != "completed" and r.duration_ms is not None and r.duration_ms < 20_000
    # 8 read as milliseconds would stop this 6 s command at ~5 s
    ok = asm_nb.run_once("sleep 6; echo hi", provider="shell", store="memory://", timeout=8)
    assert ok.ok and ok.output == "hi\n"


def test_adapter_options_go_in_options_and_the_old_keywords_warn():
    r = asm_nb.run_once("echo hi", provider="shell", store="memory://", options={"stream_output": False})
    assert r.ok
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = asm_nb.run_once("echo hi", provider="shell", store="memory://", stream_output=False)
    assert r.ok and any(issubclass(w.category, DeprecationWarning) and "options=" in str(w.message) for w in caught)
    with pytest.raises(asm_nb.ValidationError, match="run option"):
        asm_nb.run_once("echo hi", provider="shell", store="memory://", options={"model": "x"})
