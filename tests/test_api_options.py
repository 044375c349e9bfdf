"""The public run functions spell out their options; bad ones are caller mistakes with a name.

``timeout`` is seconds; adapter options go in ``options=``; an unknown keyword (misspelt or an adapter
option) or a bad value is ``AsmError("validation_error")`` naming the option and a suggestion."""

from __future__ import annotations

import asyncio
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


def test_adapter_options_go_in_options_and_unknown_keywords_are_refused():
    r = asm_nb.run_once("echo hi", provider="shell", store="memory://", options={"stream_output": False})
    assert r.ok
    # an adapter option passed as a keyword is an error naming it and saying where it goes
    for call in (lambda: asm_nb.run_once("echo hi", provider="shell", store="memory://", stream_output=False),
                 lambda: asm_nb.stream("echo hi", provider="shell", store="memory://", stream_output=False),
                 lambda: asm_nb.batch(["echo hi"], provider="shell", store="memory://", stream_output=False),
                 lambda: asm_nb.compare("echo hi", providers=["shell"], store="memory://", stream_output=False)):
        with pytest.raises(asm_nb.ValidationError) as exc:
            call()
        assert exc.value.code == "validation_error"
        assert "unknown option 'stream_output'" in exc.value.message
        assert "options={'stream_output': ...}" in exc.value.message
        assert exc.value.details["option"] == "stream_output"
    with pytest.raises(asm_nb.ValidationError, match="unknown option 'cassette'"):
        asyncio.run(asm_nb.arun_once("hi", provider="replay", store="memory://", cassette="x.jsonl"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused, not warned about and run
        with pytest.raises(asm_nb.ValidationError):
            asm_nb.run_once("echo hi", provider="shell", store="memory://", stream_output=False)
    with pytest.raises(asm_nb.ValidationError, match="run option"):
        asm_nb.run_once("echo hi", provider="shell", store="memory://", options={"model": "x"})
