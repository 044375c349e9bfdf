"""Public test helpers: fakes that ship with the library, so users test their own code offline.

- ``MockAdapter`` (provider ``"mock"``): a fake provider with modes ``instant``, ``streaming``,
  ``delayed``, ``failing``, ``timeout``.
- ``ScriptedAdapter``: one scripted outcome per execute (success dict, ``AsmError``,
  ``("sleep", ms, outcome)``).
- Cassettes (``provider="replay"``): ``build_cassette``, ``write_cassette``, ``load_cassette``,
  ``example_cassette`` (packaged ``hello``, ``tools``, ``failure``), ``Recorder`` (record any
  adapter's runs), ``ReplayProvider``.
- ``FakeAnthropicServer`` and stream builders: a loopback Anthropic Messages API for the real
  ``anthropic`` client.
- ``install_fake_cli`` / ``fake_cli_calls``: fake ``claude`` / ``codex`` / ``amp`` executables
  replaying recorded streams, recording argv and stdin.
- ``expect(run)``: fluent pytest assertions on what a run did (``.called("read_file")
  .then("edit_file").never_called("bash").cost_below(0.10)``).

Names load lazily, so ``import asm_nb.testing`` imports nothing heavy.

>>> from asm_nb.testing import MockAdapter, example_cassette
>>> MockAdapter(mode="streaming").name
'mock'
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "MockAdapter": "asm_nb.testing.mock",
    "ScriptedAdapter": "asm_nb.testing.mock",
    "Cassette": "asm_nb.providers.replay",
    "CassetteEvent": "asm_nb.providers.replay",
    "ReplayProvider": "asm_nb.providers.replay",
    "Recorder": "asm_nb.providers.replay",
    "load_cassette": "asm_nb.providers.replay",
    "build_cassette": "asm_nb.testing.cassettes",
    "write_cassette": "asm_nb.testing.cassettes",
    "example_cassette": "asm_nb.testing.cassettes",
    "example_cassettes": "asm_nb.testing.cassettes",
    "FakeAnthropicServer": "asm_nb.testing.fake_anthropic",
    "SSEResponse": "asm_nb.testing.fake_anthropic",
    "JSONResponse": "asm_nb.testing.fake_anthropic",
    "RecordedRequest": "asm_nb.testing.fake_anthropic",
    "HTTP_ERRORS": "asm_nb.testing.fake_anthropic",
    "sse_event": "asm_nb.testing.fake_anthropic",
    "StreamBuilder": "asm_nb.testing.fake_anthropic",
    "text_stream": "asm_nb.testing.fake_anthropic",
    "tool_use_stream": "asm_nb.testing.fake_anthropic",
    "http_error": "asm_nb.testing.fake_anthropic",
    "install_fake_cli": "asm_nb.testing.fake_cli",
    "fake_cli_calls": "asm_nb.testing.fake_cli",
    "expect": "asm_nb.testing.expectations",
    "Expect": "asm_nb.testing.expectations",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'asm_nb.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
