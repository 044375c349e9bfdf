"""asm_nb.compare / %%asm --compare: one prompt on several providers at once, side by side."""

from __future__ import annotations

import threading
import time

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.notebook.compare import FRAME_COLUMNS, OUTPUT_CHARS, CompareResult, compare
from asm_nb.testing import MockAdapter, ScriptedAdapter, example_cassette

PROVIDERS = {"shell": "shell", "hello": "replay", "bad": "replay"}
CASSETTES = {"hello": {"cassette": str(example_cassette("hello"))},
             "bad": {"cassette": str(example_cassette("failure"))}}


def all_runs(store):
    from asm_nb.stores import resolve_store

    st = resolve_store(store)
    return [run for s in st.list_sessions() for run in st.list_runs(s.id)]


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "store")


@pytest.fixture
def result(store):
    return compare("echo hi", providers=PROVIDERS, provider_options=CASSETTES, store=store)


def test_public_name():
    assert asm_nb.compare is compare
    assert "compare" in asm_nb.__all__


def test_every_provider_gets_its_own_run(result, store):
    assert isinstance(result, CompareResult)
    assert result.providers == ["shell", "hello", "bad"]
    shell, hello, bad = (result[k] for k in result.providers)
    assert (shell.status, shell.output) == ("completed", "hi\n")
    assert hello.status == "completed" and "demo-project" in hello.output
    assert len({r.run_id for r in result}) == 3 and len({r.session_id for r in result}) == 3
    assert {r.id for r in all_runs(store)} == {r.run_id for r in result}
    assert not result.ok


def test_failure_stays_in_its_row(result):
    bad = result["bad"]
    assert bad.status == "failed" and bad.error.code == "provider_rate_limited"
    assert result["shell"].error is None and result["hello"].error is None


def test_frame_matches_each_run_result(result):
    df = result.frame
    assert list(df.columns) == FRAME_COLUMNS
    assert list(df["provider"]) == ["shell", "hello", "bad"]
    for row in df.to_dict("records"):
        r = result[row["provider"]]
        assert row["status"] == r.status
        assert row["output"] == r.output[:OUTPUT_CHARS]
        assert row["tool_calls"] == len(r.tool_calls)
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"):
            assert row[k] == r.token_usage.get(k, 0)
        assert row["cost_usd"] == pytest.approx(r.cost_usd)
        assert row["duration_ms"] == r.duration_ms
        assert row["run_id"] == r.run_id
    rows = {r["provider"]: r for r in df.to_dict("records")}
    assert rows["hello"]["cache_read_tokens"] == 14220 and rows["hello"]["tool_calls"] == 1
    assert rows["bad"]["error"].startswith("provider_rate_limited: ")
    import pandas as pd

    assert pd.isna(rows["shell"]["error"]) and pd.isna(rows["hello"]["error"])  # missing, as pandas says it


def test_long_output_is_truncated_in_the_frame(store):
    long = "x" * (OUTPUT_CHARS + 50)
    r = compare(f"printf {long}", providers=["shell"], store=store)
    assert r["shell"].output == long
    assert len(r.frame["output"][0]) == OUTPUT_CHARS and r.frame["output"][0].endswith("…")


def test_other_backends(store):
    r = compare("echo a", providers="shell,shell", store=store, backend="records")
    assert [row["provider"] for row in r.frame] == ["shell", "shell#2"]
    assert [row["output"] for row in r.frame] == ["a\n", "a\n"]
    pl = pytest.importorskip("polars")
    r = compare("echo b", providers=["shell"], store=store, backend="polars")
    assert isinstance(r.frame, pl.DataFrame) and r.frame.columns == FRAME_COLUMNS


def test_runs_are_concurrent(store):
    # each mock run takes 300 ms: three in sequence would take 900 ms
    adapters = [MockAdapter(mode="delayed", delay_ms=300, name=f"m{i}") for i in range(3)]
    started = []
    lock = threading.Lock()
    all_started = threading.Event()

    def on_event(label, ev):
        if ev["type"] == "run_started":
            with lock:
                started.append(label)
                if len(started) == 3:
                    all_started.set()

    r = compare("hi", providers=adapters, store=store, on_event=on_event)
    assert r.ok and sorted(started) == ["m0", "m1", "m2"]
    # every run had started before the first one ended
    ends = sorted(res.events[-1].timestamp for res in r)
    starts = sorted(res.events[0].timestamp for res in r)
    assert starts[-1] < ends[0]


def test_an_adapter_that_raises_is_isolated(store):
    class Broken(MockAdapter):
        async def execute(self, *a, **k):
            raise RuntimeError("boom")

    r = compare("echo ok", providers={"ok": "shell", "broken": Broken(name="broken")}, store=store)
    assert r["ok"].status == "completed"
    assert r["broken"].status == "failed" and "boom" in r["broken"].error.message


def test_caller_mistakes_raise_before_anything_runs(store):
    with pytest.raises(AsmError) as e:
        compare("echo hi", providers=["shell", "no-such-provider"], store=store)
    assert e.value.code in ("validation_error", "provider_not_found", "unknown_provider") or "no-such" in str(e.value)
    assert all_runs(store) == []
    with pytest.raises(AsmError):
        compare("echo hi", providers=[], store=store)
    with pytest.raises(AsmError):
        compare("   ", providers=["shell"], store=store)
    with pytest.raises(AsmError, match="unknown provider"):
        compare("echo hi", providers=["shell"], model={"claude": "x"}, store=store)


def test_model_per_provider(store):
    r = compare("hi", providers={"a": MockAdapter(name="a"), "b": "mock"}, model={"b": "mock-model-x"},
                store=store)
    assert r["b"].model == "mock-model-x"


def test_named_session_is_one_conversation_per_provider(store):
    a = compare("echo one", providers="shell,mock", session="s", store=store)
    b = compare("echo two", providers="shell,mock", session="s", store=store)
    for label in ("shell", "mock"):
        assert a[label].session_id == b[label].session_id
    assert a["shell"].session_id != a["mock"].session_id


def test_ctrl_c_cancels_every_run(store):
    started = threading.Event()
    seen: set = set()

    class InterruptingView:
        def on_event(self, label, ev):
            if ev["type"] == "run_started":
                seen.add(label)
                if len(seen) == 2:
                    started.set()

        def poll(self):
            if started.is_set():
                raise KeyboardInterrupt

        def finish(self, result):  # pragma: no cover - not reached
            raise AssertionError("finish after an interrupt")

    adapters = {"x": ScriptedAdapter([("sleep", 5000, {"content": "late"})], name="x"),
                "y": ScriptedAdapter([("sleep", 5000, {"content": "late"})], name="y")}
    with pytest.raises(KeyboardInterrupt):
        compare("hi", providers=adapters, store=store, view=InterruptingView())
    runs = all_runs(store)
    assert len(runs) == 2 and {r.status.value for r in runs} == {"cancelled"}
    assert all(a.cancelled for a in adapters.values())


def test_text_fallback_is_deterministic(store, tmp_path):
    a = compare("echo hi", providers=PROVIDERS, provider_options=CASSETTES, store=store)
    b = compare("echo hi", providers=PROVIDERS, provider_options=CASSETTES, store=str(tmp_path / "other"))
    text = a._repr_mimebundle_()["text/plain"]
    assert text == b._repr_mimebundle_()["text/plain"] == repr(a)
    assert "run_" not in text and "ses_" not in text
    # a header per column, in order, then the table
    heads = [text.index(h) for h in ("── shell · completed ──", "── hello · completed ──", "── bad · failed ──")]
    assert heads == sorted(heads)
    table = text[text.index("provider  status"):]
    assert table.splitlines()[2].split()[:2] == ["shell", "completed"]
    assert "provider_rate_limited" in table.splitlines()[4]
    assert "hi" in text[heads[0]:heads[1]] and "demo-project" in text[heads[1]:heads[2]]
    assert "Rate limit exceeded" in text[heads[2]:]


def test_html_is_side_by_side(result):
    page = result._repr_mimebundle_()["text/html"]
    assert page.count('class="asm-compare-col"') == 3 and "display:flex" in page
    assert page.index("demo-project") < page.index("Rate limit exceeded") < page.index("asm-compare-summary")
    assert page.count("<tr>") == 4  # header + one row per provider


# ---------------------------------------------------------------------------------- widget


def test_compare_view_builds_one_column_per_provider(store):
    pytest.importorskip("ipywidgets")
    import ipywidgets as W

    from asm_nb.notebook.compare import CompareView
    from asm_nb.rendering.mime import run_result_mimebundle

    view = CompareView(list(PROVIDERS))
    r = compare("echo hi", providers=PROVIDERS, provider_options=CASSETTES, store=store, view=view)
    assert isinstance(view.row, W.HBox) and len(view.row.children) == 3
    assert view.root.children == (view.row, view.summary)
    for label, w in view.widgets.items():
        assert w.finished and w.state.status == r[label].status
        assert w.root in view.row.children
        # the column fed live shows exactly what the stored run renders to
        assert w.plain_text() == run_result_mimebundle(r[label])["text/plain"]
    assert view.widgets["shell"].text == "hi\n"
    assert "asm-compare-summary" in view.summary.value and "provider_rate_limited" in view.summary.value
    plain = view._repr_mimebundle_()["text/plain"]
    assert plain == r.plain_text()
    # the cancel button of one column cancels only that run (already finished here: no-op)
    view.widgets["shell"].cancel()


def test_a_column_cancel_button_cancels_only_its_run(store):
    pytest.importorskip("ipywidgets")
    from asm_nb.notebook.compare import CompareView

    both = threading.Event()
    seen: set = set()

    def on_event(label, ev):
        if ev["type"] == "run_started":
            seen.add(label)
            if len(seen) == 2:
                both.set()

    view = CompareView(["slow", "quick"])
    clicker = threading.Thread(target=lambda: both.wait(10) and view.widgets["slow"].cancel())
    clicker.start()
    r = compare("hi", store=store, view=view, on_event=on_event,
                providers={"slow": ScriptedAdapter([("sleep", 5000, {"content": "late"})], name="slow"),
                           "quick": ScriptedAdapter([("sleep", 300, {"content": "done"})], name="quick")})
    clicker.join(5)
    assert r["slow"].status == "cancelled" and r["quick"].status == "completed"
    assert r["quick"].output == "done"
    assert view.widgets["slow"].state.status == "cancelled"


# ---------------------------------------------------------------------------------- magic


@pytest.fixture(scope="module")
def ip():
    pytest.importorskip("IPython")
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or get_ipython()
    shell.run_line_magic("load_ext", "asm_nb")
    return shell


@pytest.fixture
def cell(ip, tmp_path, capsys):
    ip.run_line_magic("asm", "config renderer=studio")
    ip.run_line_magic("asm", f"store {tmp_path / 'magic-store'}")
    capsys.readouterr()

    def run(line, body):
        ip.run_cell_magic("asm", line, body)
        return capsys.readouterr()

    yield run
    from asm_nb.notebook import magics

    magics._KERNEL_DEFAULTS.clear()


def test_magic_compare_binds_result_and_prints_columns(ip, cell):
    out = cell("-p shell,mock --compare --out cmp", "echo hi")
    res = ip.user_ns["cmp"]
    assert isinstance(res, CompareResult) and ip.user_ns["_"] is res
    assert res.providers == ["shell", "mock"] and res.ok
    assert res["shell"].output == "hi\n" and res["mock"].output == "Mock response: echo hi"
    assert list(res.frame["provider"]) == ["shell", "mock"]
    text = out.out
    assert text.index("── shell · completed ──") < text.index("── mock · completed ──") < text.index("provider")
    assert "hi" in text and "Mock response" in text and "run_" not in text
    again = cell("-p shell,mock --compare", "echo hi")
    assert again.out == text  # deterministic


def test_magic_compare_failure_and_usage_errors(ip, cell):
    out = cell("-p shell,shell --compare --out c2", "exit 3")
    res = ip.user_ns["c2"]
    assert [r.status for r in res] == ["failed", "failed"]
    assert "── shell#2 · failed ──" in out.out
    out = cell("-p shell,nope --compare", "echo x")
    assert "asm: [" in out.err and "Traceback" not in out.err
    out = cell("-p shell --compare --background", "echo x")
    assert "UsageError" in out.err and "--background" in out.err


def test_magic_compare_quiet_prints_nothing(ip, cell):
    out = cell("-p shell,mock --compare --quiet --out q", "echo q")
    assert out.out == "" and ip.user_ns["q"].ok


def test_magic_without_compare_still_routes(ip, cell):
    cell("-p shell --out single", "echo single")
    assert ip.user_ns["single"].output == "single\n"


KERNEL_CELL = "%%asm -p shell,mock --compare --out c\necho hi"


@pytest.mark.kernel
def test_magic_compare_widget_in_a_kernel(tmp_path):
    """In a real kernel the cell is awaited: one CompareView is displayed, then replaced by its
    final state (columns + summary table), and the CompareResult is bound."""
    pytest.importorskip("jupyter_client")
    pytest.importorskip("ipywidgets")
    import queue
    import time

    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))

    def run(code):
        msg_id = kc.execute(code)
        msgs = []
        deadline = time.monotonic() + 60
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("cell never finished")
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            assert msg["msg_type"] != "error", msg["content"].get("traceback")
            msgs.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return msgs

    try:
        run(f"%load_ext asm_nb\n%asm store {tmp_path / 'store'}\n"
            "from asm_nb.notebook import magics\n"
            "assert magics._async_cell_transformer in get_ipython().input_transformers_post")
        msgs = run(KERNEL_CELL)
        shown = [m for m in msgs if m["msg_type"] == "display_data"]
        final = [m for m in msgs if m["msg_type"] == "update_display_data"]
        assert len(shown) == 1 and len(final) == 1
        assert "application/vnd.jupyter.widget-view+json" in shown[0]["content"]["data"]
        data = final[0]["content"]["data"]
        assert "asm-compare-summary" in data["text/html"] and data["text/html"].count("asm-compare-col") == 2
        assert data["text/plain"].index("── shell · completed ──") < data["text/plain"].index("provider  status")
        out = run("print(type(c).__name__, _ is c, list(c.frame['status']), c['shell'].output.strip())")
        text = "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")
        assert text.strip() == "CompareResult True ['completed', 'completed'] hi"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_a_finished_pane_drops_its_cancel_button_while_the_other_runs(store):
    """Panes finish independently: the quick run's pane loses Cancel (and shows no "$—") as soon
    as its run ends, while the slow pane still offers Cancel; at the end the view closes every
    widget model and its rich display is the static comparison."""
    pytest.importorskip("ipywidgets")
    from asm_nb.notebook.compare import CompareView

    view = CompareView(["slow", "quick"])
    quick_done = threading.Event()
    seen: dict = {}

    def on_event(label, ev):
        if label == "quick" and ev["type"] == "run_completed":
            quick_done.set()

    def watch():
        if quick_done.wait(10):
            time.sleep(0.2)  # the pane handles the event right after this callback
            seen["quick"] = view.widgets["quick"]._cancel_btn.layout.display
            seen["slow"] = view.widgets["slow"]._cancel_btn.layout.display
            seen["counters"] = view.widgets["quick"].state.counters_html()

    watcher = threading.Thread(target=watch)
    watcher.start()
    r = compare("hi", store=store, view=view, on_event=on_event,
                providers={"slow": ScriptedAdapter([("sleep", 1500, {"content": "late"})], name="slow"),
                           "quick": ScriptedAdapter([("sleep", 50, {"content": "done"})], name="quick")})
    watcher.join(10)
    assert r["quick"].status == "completed" and r["slow"].status == "completed"
    assert seen["quick"] == "none" and seen["slow"] != "none", seen
    assert "$—" not in seen["counters"]
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle and "asm-compare" in bundle["text/html"]
