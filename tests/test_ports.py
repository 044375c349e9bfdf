"""The built-in adapters, stores, renderers and sinks satisfy the Protocols in ports.py."""

from __future__ import annotations

import pytest

from asm_nb import ports
from asm_nb.rendering import renderers, sinks
from asm_nb.stores.memory import InMemoryStore


@pytest.mark.parametrize("name", ["shell", "replay", "codex", "amp", "claude_code", "mock"])
def test_adapters_implement_the_provider_port(name, tmp_path):
    from asm_nb.runtime.oneshot import resolve_adapter

    assert isinstance(resolve_adapter(name), ports.ProviderAdapter)  # cwd defaults where required


def test_stores_implement_the_store_port(tmp_path):
    from asm_nb.stores.local import LocalStore

    assert isinstance(InMemoryStore(), ports.SessionStore)
    store = LocalStore(tmp_path / "s")
    assert isinstance(store, ports.SessionStore)
    store.close()


@pytest.mark.parametrize("name", ["compact", "verbose", "studio", "passthrough"])
def test_renderers_implement_the_renderer_port(name):
    assert isinstance(renderers.renderer_for(name), ports.Renderer)


def test_sinks_implement_the_sink_port(tmp_path):
    assert isinstance(sinks.FileSink(tmp_path / "out.txt"), ports.Sink)
    assert isinstance(sinks.CallbackSink(lambda e, t: None), ports.Sink)


def test_execute_timeout_resolution():
    assert ports.resolve_execute_timeout(1_000) == 6_000
    assert ports.resolve_execute_timeout("unbounded") == 604_805_000
    assert ports.resolve_execute_timeout_base("604800999") == 604_800_000
    assert ports.resolve_execute_timeout_base(0) == 60_000 and ports.resolve_execute_timeout_base(-5) == 60_000


def test_one_result_type_per_layer_each_with_its_own_name():
    """An adapter returns ``ports.AdapterResult``, the manager an ``ExecutionResult``, users get the
    one public ``RunResult``: no two result classes share a name."""
    import asyncio

    import asm_nb
    from asm_nb.providers.shell import ShellAdapter
    from asm_nb.runtime import manager
    from asm_nb.runtime.result import RunResult

    assert not hasattr(ports, "RunResult")
    assert asm_nb.RunResult is RunResult
    names = {ports.AdapterResult.__name__, manager.ExecutionResult.__name__, RunResult.__name__}
    assert len(names) == 3
    store = InMemoryStore()
    adapter = ShellAdapter()
    session = asyncio.run(manager.astart_session(store, adapter, {}))
    session = asyncio.run(manager.aactivate_session(store, session.id))
    run = asyncio.run(manager.astart_run(store, adapter, session.id, "echo hi"))
    out = asyncio.run(adapter.execute(run, session))
    assert type(out) is ports.AdapterResult and out.output["content"] == "hi\n"
    assert isinstance(asm_nb.run_once("echo hi", provider="shell", store=store), RunResult)
