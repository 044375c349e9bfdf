"""Third-party providers, stores and renderers register through entry points (docs/extending.md):
a real installed distribution (a ``.dist-info`` folder on ``sys.path``) is found by name."""

from __future__ import annotations

import sys
import textwrap

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.rendering import renderer_for

PLUGIN = '''
from asm_nb.stores.memory import InMemoryStore
from asm_nb.rendering.renderers import CompactRenderer
from asm_nb.providers.shell import ShellAdapter


def open_store(url, **opts):
    store = InMemoryStore()
    store.opened_with = (url, opts)
    return store


def not_a_store(url, **opts):
    return object()


class ShoutRenderer(CompactRenderer):
    def render_event(self, event):
        return super().render_event(event).upper()


class EchoProvider(ShellAdapter):
    name = "echo_plugin"
'''

ENTRY_POINTS = '''
[asm_nb.stores]
plugmem = asm_plugin_demo:open_store
badstore = asm_plugin_demo:not_a_store
missing = asm_plugin_demo_missing:open_store

[asm_nb.renderers]
shout = asm_plugin_demo:ShoutRenderer

[asm_nb.providers]
echo_plugin = asm_plugin_demo:EchoProvider
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "asm_plugin_demo.py").write_text(textwrap.dedent(PLUGIN))
    dist = tmp_path / "asm_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: asm-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    from asm_nb import providers

    monkeypatch.setattr(providers, "_entry_points_loaded", False)
    yield
    sys.modules.pop("asm_plugin_demo", None)
    providers._registry.pop("echo_plugin", None)


def test_a_store_plugin_opens_its_url_scheme(plugin):
    store = asm_nb.open_store("plugmem://team/runs", durability="x")
    assert store.opened_with == ("plugmem://team/runs", {"durability": "x"})
    r = asm_nb.run_once("echo plugged", provider="shell", store=store)
    assert r.status == "completed" and store.get_run(r.run_id).status.value == "completed"


def test_store_plugin_errors_are_one_clear_line(plugin):
    with pytest.raises(AsmError) as bad:
        asm_nb.open_store("badstore://x")
    assert bad.value.code == "validation_error" and "not a SessionStore" in bad.value.message
    with pytest.raises(AsmError) as missing:
        asm_nb.open_store("missing://x")
    assert missing.value.code == "dependency_not_available"
    with pytest.raises(AsmError) as unknown:
        asm_nb.open_store("nosuch://x")
    assert unknown.value.code == "validation_error" and "asm_nb.stores" in unknown.value.message


def test_a_renderer_plugin_is_found_by_name(plugin):
    r = renderer_for("shout", color=False)
    text = r.render_event({"type": "message_streamed", "data": {"delta": "hi there", "content": "hi there"}})
    assert "HI THERE" in text
    with pytest.raises(AsmError) as err:
        renderer_for("nosuch")
    assert "shout" in err.value.message  # the plugin is listed among the choices


def test_a_provider_plugin_is_found_by_name(plugin, tmp_path):
    assert "echo_plugin" in asm_nb.providers.available_providers()
    r = asm_nb.run_once("echo from a plugin", provider="echo_plugin", cwd=str(tmp_path))
    assert r.status == "completed" and r.output.strip() == "from a plugin"


def test_the_extending_guide_provider_example_runs(tmp_path):
    """The EchoAdapter of docs/extending.md, executed as written there."""
    import pathlib
    import re

    doc = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()
    code = re.search(r"```python\n(from asm_nb.providers._base import.*?)```", doc, re.S).group(1)
    ns: dict = {}
    exec(compile(code, "extending.md", "exec"), ns)
    store = asm_nb.open_store("memory://")
    with pytest.warns(Warning, match="no price"):  # an unknown model is never priced silently
        r = asm_nb.run_once("say it back", provider=ns["EchoAdapter"](), store=store)
    assert r.status == "completed" and r.output == "say it back"
    assert r.token_usage["input_tokens"] == 3
    types = [e.type.value if hasattr(e.type, "value") else e.type for e in r.events]
    assert types[0] == "run_started" and types[-1] == "run_completed"
