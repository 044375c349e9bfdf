"""Parts of the reference system reached from the public surface, one test per path named in
docs/reference-map.md: the renderer x sink pipeline from ``asm run`` and ``%%asm``, provider
manifests (``asm providers``), the plugin contract (``asm_nb.providers``), PubSub
(``run_once(publish=True)``), ``RunResult.event_stream()``, ``asm_nb.telemetry.attach`` and the
OpenTelemetry exporter, the workflow bridge on a DAG engine and the session runtime registry."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

import asm_nb
from asm_nb.core.errors import AsmError

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def asm(*args, cwd, home):
    env = {**os.environ, "ASM_HOME": str(home), "NO_COLOR": ""}
    env.pop("NO_COLOR")
    return subprocess.run([sys.executable, "-m", "asm_nb.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=90)


# ------------------------------------------------------------------------------ rendering pipeline
@pytest.mark.parametrize("renderer,marker", [("compact", "r+"), ("verbose", "[run_started]"),
                                             ("studio", "session started"), ("passthrough", None)])
def test_asm_run_renderer_log_and_jsonl(tmp_path, renderer, marker):
    log, jsonl = tmp_path / "run.log", tmp_path / "run.jsonl"
    p = asm("run", "printf 'one\\ntwo\\n'", "--renderer", renderer, "--log", str(log), "--jsonl", str(jsonl),
            cwd=tmp_path, home=tmp_path / "h")
    assert p.returncode == 0, p.stderr
    text = log.read_text()
    assert not ANSI.search(text)  # the file sink strips colour
    if marker is None:
        assert p.stdout == "" and text == ""  # passthrough renders nothing; the JSONL sink still writes
    else:
        assert marker in p.stdout and marker in text and "two" in text
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    run_id = lines[0]["run_id"]
    stored = json.loads(asm("events", run_id, "--json", cwd=tmp_path, home=tmp_path / "h").stdout)
    assert [x["type"] for x in lines] == [e["type"] for e in stored]  # every event of the run, in order


def test_asm_run_rejects_an_unknown_renderer(tmp_path):
    p = asm("run", "echo hi", "--renderer", "fancy", cwd=tmp_path, home=tmp_path / "h")
    assert p.returncode == 2 and "invalid choice" in p.stderr


def test_cell_magic_log_and_jsonl(tmp_path):
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "asm_nb")
    log, jsonl = tmp_path / "cell.log", tmp_path / "cell.jsonl"
    ip.run_cell_magic("asm", f"-p shell --store {tmp_path / 's'} --renderer studio --out r --log {log} "
                             f"--jsonl {jsonl}", "echo from-a-cell")
    r = ip.user_ns["r"]
    assert r.ok and "from-a-cell" in log.read_text() and "Session complete" in log.read_text()
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert {x["run_id"] for x in lines} == {r.run_id}
    assert [x["type"] for x in lines] == [e.type.value for e in r.events]


# ------------------------------------------------------------------------ manifests and plugins
def test_asm_providers_lists_manifests_and_capabilities(tmp_path):
    p = asm("providers", cwd=tmp_path, home=tmp_path / "h")
    assert p.returncode == 0, p.stderr
    rows = {ln.split()[0]: ln for ln in p.stdout.splitlines()[2:]}
    assert {"shell", "claude", "claude_code", "codex", "amp", "replay"} <= set(rows)
    assert "command_execution" in rows["shell"] and "ShellAdapter" in rows["shell"]
    js = json.loads(asm("providers", "--capability", "tool", "--json", cwd=tmp_path, home=tmp_path / "h").stdout)
    names = {m["name"] for m in js}
    assert "claude" in names and "shell" not in names  # shell offers no tool-type capability
    claude = next(m for m in js if m["name"] == "claude")
    assert claude["metadata"]["adapter"] == "asm_nb.providers.claude:ClaudeAdapter"
    assert {"name": "resume", "type": "sampling"}.items() <= next(
        c for c in claude["capabilities"] if c["name"] == "resume").items()


def test_plugin_adapter_through_the_exported_contract():
    from asm_nb import providers

    class EchoAgent(providers.BaseAdapter):
        """Echoes the prompt, word by word (a plugin written against the public contract)."""

        name = "echo_agent"

        async def capabilities(self):
            from asm_nb.core.capabilities import Capability

            return [Capability("streaming", "sampling", True, "streams words")]

        async def _execute(self, active, **opts):
            # the plugin's native stream, already named with asm event types; the normalizer
            # validates it and lifts the known fields (delta, content, tool_name, ...) into data
            native = [{"type": "message_streamed", "delta": w + " ", "id": f"native-{i}"}
                      for i, w in enumerate(str(active.run.input).split())]
            ctx = {"session_id": active.session.id, "run_id": active.run.id, "provider": self.name}
            await active.emit("run_started", {"model": "echo-1"})
            for ev in providers.normalize_events(native, ctx):  # the event normalizer for plugins
                assert ev.provider == "echo_agent" and ev.provider_event_id.startswith("native-")
                await active.emit(ev.type.value, {"delta": ev.data["delta"]})
            text = " ".join(str(active.run.input).split())
            await active.emit("message_received", {"content": text, "role": "assistant"})
            await active.emit("run_completed", {"stop_reason": "end_turn"})
            return {"output": {"content": text}}

    providers.register_provider("echo_agent", EchoAgent)
    assert providers.ClaudeAdapter.__name__ == "ClaudeAdapter" and providers.ShellAdapter.name == "shell"
    r = asm_nb.run_once("hello plugin world", provider="echo_agent", store="memory://")
    assert r.ok and r.output == "hello plugin world"
    assert [e.data.get("delta") for e in r.events if e.type.value == "message_streamed"] == \
        ["hello ", "plugin ", "world "]
    manifest = providers.provider_registry().get("echo_agent")
    assert manifest.description.startswith("Echoes the prompt") and manifest.capabilities[0].name == "streaming"


# ------------------------------------------------------------------------- pubsub, event stream
def test_run_once_publish_reaches_pubsub_subscribers():
    from asm_nb.pubsub import default_pubsub

    got = []
    handle = default_pubsub().subscribe("asm:session:*", got.append)
    try:
        r = asm_nb.run_once("echo published", provider="shell", store="memory://", publish=True)
        quiet = asm_nb.run_once("echo quiet", provider="shell", store="memory://")
    finally:
        default_pubsub().unsubscribe(handle)
    ours = [m for m in got if m[1] == r.session_id]
    assert [m[2]["type"] for m in ours] == [e.type.value for e in r.events if e.type.value != "message_sent"] or \
        [m[2]["type"] for m in ours] == [e.type.value for e in r.events]
    assert all(m[0] == "asm_event" for m in ours)
    assert not [m for m in got if m[1] == quiet.session_id]  # publishing is opt-in
    with pytest.raises(AsmError):
        asm_nb.run_once("echo x", provider="shell", store="memory://", publish="yes")


def test_run_result_event_stream_cursor_and_long_poll():
    r = asm_nb.run_once("echo one; echo two", provider="shell", store="memory://")
    stream = r.event_stream()
    assert [e.id for e in stream] == [e.id for e in r.events]
    first, stream = stream.take(2)
    assert [e.type.value for e in first] == [e.type.value for e in r.events[:2]]
    assert stream.cursor == first[-1].sequence_number + 1 and stream.remaining() == len(r.events) - 2
    later = r.event_stream(after=first[-1].sequence_number)
    assert [e.id for e in later] == [e.id for e in r.events[2:]]
    t0 = time.monotonic()
    empty = r.event_stream(after=r.events[-1].sequence_number, wait_timeout_ms=300)
    assert empty.count() == 0 and time.monotonic() - t0 >= 0.25  # waited for more, none came


# -------------------------------------------------------------------------------------- telemetry
def test_telemetry_attach_sees_runs():
    seen = []
    asm_nb.telemetry.attach("surface-test", ("asm", "run", "stop"), lambda n, m, md, c: seen.append((m, md)))
    try:
        r = asm_nb.run_once("echo t", provider="shell", store="memory://")
    finally:
        asm_nb.telemetry.detach("surface-test")
    assert [md["run"].id for _, md in seen] == [r.run_id]
    assert "duration" in seen[0][0]


def test_telemetry_attach_otel_exports_a_span_per_run():
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    exporter = asm_nb.telemetry.attach_otel(tracer_provider=tp)
    try:
        r = asm_nb.run_once("echo otel", provider="shell", store="memory://")
    finally:
        exporter.uninstall()
    [span] = [s for s in spans.get_finished_spans() if s.name == "asm.run"]
    assert span.attributes["asm.run_id"] == r.run_id


# ----------------------------------------------------------------------- workflow bridge, registry
def test_workflow_bridge_steps_in_a_dask_graph():
    dask = pytest.importorskip("dask")
    from asm_nb.providers import create_adapter

    store = asm_nb.open_store("memory://")
    shell = create_adapter("shell")
    sid = asm_nb.workflow.setup_workflow_session(store, shell, {"agent_id": "etl"})

    def step(command, *upstream):
        res = asm_nb.workflow.step_execute(store, shell, {"input": command, "session_id": sid})
        return res.content.strip()

    a = dask.delayed(step)("echo extract")
    b = dask.delayed(step)("echo transform")
    c = dask.delayed(step)("echo load", a, b)  # runs after both
    assert dask.compute(a, b, c, scheduler="threads") == ("extract", "transform", "load")
    asm_nb.workflow.complete_workflow_session(store, sid)
    assert store.get_session(sid).status.value == "completed" and len(store.list_runs(sid)) == 3
    failed = asm_nb.workflow.classify_error(AsmError("provider_rate_limited", "slow down"))
    assert failed.recommended_action == "wait_and_retry" and failed.retryable


def test_session_runtime_registers_servers_by_session():
    from asm_nb.runtime import loop

    rt = asm_nb.SessionRuntime(store=asm_nb.open_store("memory://"), adapter="shell")
    srv = loop.run_sync(rt.start_session(session_opts={}))
    assert rt.whereis(srv.session_id) is srv and rt.registry.list() == [srv.session_id]
    with pytest.raises(AsmError) as e:
        loop.run_sync(rt.start_session(session_id=srv.session_id))
    assert e.value.code == "already_exists"
    res = srv.wait(srv.submit("echo served"), 20000)
    assert res.output["content"] == "served\n"
    loop.run_sync(rt.stop_session(srv.session_id))
    assert rt.whereis(srv.session_id) is None


def test_a_closed_adapter_is_provider_unavailable():
    """What the reference's ExitReasons detects (a dead adapter process) is a closed adapter here."""
    from asm_nb.providers import ShellAdapter
    from asm_nb.runtime import loop

    shell = ShellAdapter()
    loop.run_sync(shell.aclose())
    r = asm_nb.run_once("echo never", provider=shell, store="memory://")
    assert r.status == "failed" and r.error.code == "provider_unavailable"


def test_live_pipeline_with_callback_and_pubsub_sinks_as_on_event():
    from asm_nb.pubsub import PubSub
    from asm_nb.rendering import CallbackSink, PubSubSink, live

    ps, got, texts = PubSub(), [], []
    ps.subscribe("asm:session:*", got.append)
    pipe = live("compact", tty=False, color=False,
                extra_sinks=[CallbackSink(lambda ev, text: texts.append(text)),
                             PubSubSink(ps, include_iodata=True)])
    try:
        r = asm_nb.run_once("echo sinks", provider="shell", store="memory://", on_event=pipe)
    finally:
        pipe.close()
    assert pipe.closed and len(texts) == len([m for m in got if m[1] == r.session_id])
    assert "".join(texts).startswith("r+") and any("sinks" in t for t in texts)
    assert [m[3] for m in got] == texts[: len(got)]  # each message carries its rendered text
