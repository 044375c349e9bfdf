"""Real-browser tests of the JupyterLab extension: start ``jupyter lab`` on 127.0.0.1 with a token
in a temporary root, drive Debian's headless Chromium through Playwright, run a notebook that
shows a stored run bundle (the MIME renderer) and a live ``%%asm`` widget (shell provider),
open the "Agent sessions" sidebar and a run from it, and open a saved notebook whose outputs
must render with no cell executed. Screenshots go to ``test-artifacts/browser/``.

Needs: ``scripts/build_extension.sh`` (the built ``asm_nb/labextension``),
``scripts/install_browser.sh`` (``/usr/bin/chromium`` + ``playwright``) and ``jupyterlab``;
skipped with the reason when one is missing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LABEXT = REPO / "asm_nb" / "labextension"
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("ASM_CHROMIUM", "/usr/bin/chromium")
START_TIMEOUT_S = 90
UI_TIMEOUT_MS = 90_000


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (scripts/install_browser.sh)"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (scripts/install_browser.sh)"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "jupyterlab is not installed"
    if not (LABEXT / "package.json").is_file():
        return "the lab extension is not built (scripts/build_extension.sh)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _code(source: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": source}


def _notebook(cells: list[dict]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def _write_notebooks(root: Path) -> None:
    """demo.ipynb (run by the test) and saved.ipynb (outputs saved in the file, never run)."""
    demo = _notebook([
        _code("%load_ext asm_nb\nfrom asm_nb.testing import example_cassette\ncassette = str(example_cassette('tools'))"),
        _code("%%asm --replay {cassette} --out replayed\nFix the failing test in tests/test_convert.py"),
        _code("replayed"),
        _code("%%asm -p shell\necho live-widget-run"),
    ])
    (root / "demo.ipynb").write_text(json.dumps(demo, indent=1))

    import asm_nb
    from asm_nb.rendering.mime import run_result_mimebundle

    result = asm_nb.run_once("Summarise the notes", provider="replay", store="memory://",
                             options={"cassette": asm_nb.testing.example_cassette("hello")})
    bundle = run_result_mimebundle(result, deterministic=True)
    cell = _code("answer  # saved output: rendered from the notebook file alone")
    cell["execution_count"] = 1
    cell["outputs"] = [{"output_type": "execute_result", "execution_count": 1, "metadata": {}, "data": bundle}]
    (root / "saved.ipynb").write_text(json.dumps(_notebook([cell]), indent=1))
    (root / "live.ipynb").write_text(json.dumps(_notebook([_code(c) for c in LIVE_CELLS]), indent=1))
    (root / "dash.ipynb").write_text(json.dumps(_notebook([_code(c) for c in DASH_CELLS]), indent=1))


# Agent text with HTML/JS payloads: the renderer must show them as text, never run them, even in
# a trusted notebook (a live output is trusted, and so is the notebook once this server saves it).
XSS_TEXT = ('Done. *Notes read*; see [the docs](https://example.com/docs).\n\n'
            '1. first\n2. second\n\n| file | lines |\n|---|---|\n| notes.txt | 2 |\n\n'
            '<img src="x" onerror="window.__asm_xss = (window.__asm_xss || 0) + 1">'
            '<script>window.__asm_xss = (window.__asm_xss || 0) + 10</script>\n\n'
            '`<b>inline</b>` and <iframe srcdoc="<script>parent.__asm_xss=100</script>"></iframe>')

LIVE_CELLS = [
    # a fake Anthropic API in the kernel: read a file (no approval), then bash (needs approval),
    # then a final answer with Markdown and hostile HTML
    "%load_ext asm_nb\n"
    "import os, pathlib, subprocess\n"
    "from asm_nb.testing.fake_anthropic import FakeAnthropicServer, text_stream, tool_use_stream\n"
    "pathlib.Path('notes.txt').write_text('buy milk\\nfix bug\\n')\n"
    "pathlib.Path('ws').mkdir(exist_ok=True)\n"
    "server = FakeAnthropicServer().start()\n"
    "server.enqueue(tool_use_stream('read_file', {'path': 'notes.txt'}, text='Let me read *the notes*.', id='toolu_r'),\n"
    "               tool_use_stream('bash', {'command': 'sleep 1'}, id='toolu_b'),\n"
    f"               text_stream({XSS_TEXT!r}))\n"
    "os.environ.update(ANTHROPIC_BASE_URL=server.base_url, ANTHROPIC_API_KEY='sk-ant-test-key')",
    "%%asm -p claude -m claude-haiku-4-5 --out approved\nRead notes.txt, then run sleep 1.",
    "%%asm -p shell --out stopped\nsleep 60",
    "%%asm -p shell --cwd ws --snapshot --out changed\nprintf 'hello\\n' > new.txt",
    "%asm diff {changed.run_id}",
    "%%asm -p shell,mock --compare --out compared\necho compared",
    "print(approved.status, stopped.status, changed.status, compared.providers)",
]


DASH_CELLS = [
    "import asm_nb\n"
    "from asm_nb.testing import example_cassette\n"
    "store = 'dash-store'\n"
    "for name in ('hello', 'tools', 'failure'):\n"
    "    asm_nb.run_once(f'replay {name}', provider='replay', store=store,\n"
    "                    options={'cassette': str(example_cassette(name))})\n"
    "asm_nb.run_once('echo dash', provider='shell', store=store)\n"
    "asm_nb.run_once('exit 3', provider='shell', store=store);",
    "dash = asm_nb.dashboard(store)\ndash",
    "asm_nb.plots.outcomes_by_provider(store)",
]


class LabServer:
    """A ``jupyter lab`` subprocess on 127.0.0.1 with its own config/data/runtime folders."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root, self.home = root, home
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "lab.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cfg = self.home / "config"
        (cfg / "labconfig").mkdir(parents=True)
        (cfg / "jupyter_server_config.d").mkdir(parents=True)
        # the server extension, enabled as the wheel's etc/jupyter file does
        shutil.copy(REPO / "jupyter-config" / "jupyter_server_config.d" / "asm_nb.json",
                    cfg / "jupyter_server_config.d" / "asm_nb.json")
        # no news/update pop-ups over the page
        # and no language-server pop-ups ("Message from basedpyright") over the page
        (cfg / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True,
                                    "@jupyterlab/lsp-extension": True}}))
        # the work tree's build as the user-level copy: the first in JupyterLab's search path, so
        # the page and the static file handler agree on it whatever copy the prefix holds
        # (``extra_labextensions_path`` alone can list one copy and serve the other's files)
        (self.home / "data" / "labextensions").mkdir(parents=True)
        (self.home / "data" / "labextensions" / "asm-nb-extension").symlink_to(LABEXT, target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ASM_", "JUPYTER", "IPYTHON"))}
        env.update(JUPYTER_CONFIG_DIR=str(cfg), JUPYTER_DATA_DIR=str(self.home / "data"),
                   JUPYTER_RUNTIME_DIR=str(self.home / "runtime"), IPYTHONDIR=str(self.home / "ipython"),
                   JUPYTERLAB_SETTINGS_DIR=str(self.home / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.home / "workspaces"), PYTHONUNBUFFERED="1")
        # the work tree's build, found first whatever copy is installed
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={self.port}", "--port-retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True",
               f"--LabServerApp.extra_labextensions_path={REPO / 'asm_nb'}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--ServerApp.terminals_enabled=False"]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)  # polling the port: the server gives no other readiness signal
        raise RuntimeError(f"jupyter lab did not answer within {START_TIMEOUT_S}s:\n{self.log()}")

    def get_json(self, path: str, token: bool = True) -> tuple[int, object]:
        sep = "&" if "?" in path else "?"
        url = f"{self.url}/{path}" + (f"{sep}token={self.token}" if token else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"null")
            except ValueError:
                return e.code, None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:  # a clean shutdown also stops the kernels it started
                req = urllib.request.Request(f"{self.url}/api/shutdown?token={self.token}", method="POST")
                urllib.request.urlopen(req, timeout=5).close()
                self.proc.wait(timeout=15)
            except Exception:
                pass
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("CI"):  # CI installs all of it (scripts/setup.sh): a gap there is a failure
            pytest.fail(f"browser test prerequisites missing in CI: {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("lab-root")
    home = tmp_path_factory.mktemp("lab-home")
    _write_notebooks(root)
    server = LabServer(root, home)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, lab, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(UI_TIMEOUT_MS)
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:  # the page as the test left it, pass or fail
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"))
    except Exception:
        pass
    context.close()


def _open_notebook(page, lab: LabServer, name: str, workspace: str | None = None) -> None:
    """Open ``name``; ``workspace``: a named (fresh) workspace, so no tab of another test comes back."""
    where = f"lab/workspaces/{workspace}/tree" if workspace else "lab/tree"
    page.goto(f"{lab.url}/{where}/{name}?token={lab.token}")
    page.wait_for_function(
        """(name) => {
             const app = window.jupyterapp;
             const w = app && app.shell.currentWidget;
             return !!(w && w.context && w.context.path === name && w.context.isReady &&
                       w.sessionContext && w.sessionContext.session &&
                       w.sessionContext.session.kernel &&
                       w.sessionContext.session.kernel.status === 'idle');
           }""", arg=name)


def test_extension_is_served_and_endpoints_need_auth(lab):
    status, exts = lab.get_json("lab/api/extensions")
    assert status == 200
    names = {e["name"]: e for e in exts}
    assert "asm-nb-extension" in names, sorted(names)
    assert names["asm-nb-extension"]["enabled"] is True
    assert lab.get_json("asm-nb/sessions", token=False)[0] == 403
    status, listing = lab.get_json("asm-nb/sessions")
    assert status == 200 and listing["store"] == str(lab.root / ".asm")
    assert lab.get_json("asm-nb/runs/run_" + "0" * 32)[0] == 404
    assert lab.get_json("asm-nb/search?q=echo", token=False)[0] == 403
    status, found = lab.get_json("asm-nb/search?q=echo")
    assert status == 200 and found["store"] == str(lab.root / ".asm") and isinstance(found["hits"], list)
    status, err = lab.get_json("asm-nb/search?q=%22echo")  # an unterminated phrase: one clear message
    assert status == 400 and err["code"] == "validation_error" and "full-text syntax" in err["message"]


def test_notebook_renders_run_bundle_widget_and_sidebar(lab, page):
    from playwright.sync_api import expect

    _open_notebook(page, lab, "demo.ipynb")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    # three cards: the replayed %%asm cell and the shell one (live views that ended as the
    # card), and the RunResult shown by the `replayed` cell, drawn by the MIME renderer (not
    # the text/html fallback)
    expect(page.locator(".jp-OutputArea .jp-asm-run")).to_have_count(3)
    rendered = page.locator(".jp-CodeCell").nth(2).locator(".jp-OutputArea .jp-asm-run")
    expect(rendered).to_have_count(1)
    expect(rendered.locator(".jp-asm-run-status")).to_have_text("completed")
    expect(rendered.locator(".jp-asm-run-provider")).to_have_text("replay")
    expect(rendered.locator(".jp-asm-run-model")).to_have_text("gpt-5-codex")
    expect(rendered.locator(".jp-asm-msg-user")).to_contain_text("Fix the failing test")
    tools = rendered.locator(".jp-asm-tool")
    assert tools.count() >= 2
    expect(tools.first.locator(".jp-asm-tool-name")).to_have_text("bash")
    expect(tools.first.locator(".jp-asm-tool-output")).to_be_hidden()  # collapsed
    tools.first.locator("summary").click()
    expect(tools.first.locator(".jp-asm-tool-output")).to_contain_text("1 failed, 1 passed")
    expect(rendered.locator(".jp-asm-usage-cost .jp-asm-usage-value")).to_have_text(re.compile(r"^\$\d"))

    # the live %%asm widget (shell provider) finished as the card with the command's output
    widget = page.locator(".jp-OutputArea .jp-asm-run", has_text="live-widget-run")
    expect(widget).to_have_count(1)
    expect(widget.locator(".jp-asm-run-provider")).to_have_text("shell")
    assert page.locator(".jp-OutputArea .widget-box").count() == 0

    # the sidebar lists both runs; a click opens the run in the main area
    page.locator('.lm-TabBar-tab[data-id="asm-nb-sessions"]').click()
    rows = page.locator("#asm-nb-sessions .jp-asm-run-row")
    expect(rows).to_have_count(2)
    shell_row = rows.filter(has_text="echo live-widget-run")
    expect(shell_row).to_have_count(1)
    # a row leads with the prompt, then a relative time; the store path reads left to right
    expect(shell_row.locator(".jp-asm-run-row-prompt")).to_have_text("echo live-widget-run")
    expect(shell_row.locator(".jp-asm-run-row-meta")).to_contain_text("just now")
    store_line = page.locator("#asm-nb-sessions .jp-asm-sessions-store")
    assert store_line.evaluate("e => getComputedStyle(e).direction") == "ltr"
    expect(store_line).to_have_text(re.compile(r"^(…/)?[^/].*\.asm$|^/.*\.asm$"))
    # the search box filters rows
    page.locator("#asm-nb-sessions .jp-asm-sessions-search").fill("live-widget")
    expect(rows.filter(visible=True)).to_have_count(1)
    page.locator("#asm-nb-sessions .jp-asm-sessions-search").fill("")
    expect(rows.filter(visible=True)).to_have_count(2)
    # Enter searches the full text (asm-nb/search): prompt, output and tool call of the shell run
    box = page.locator("#asm-nb-sessions .jp-asm-sessions-search")
    box.fill("live-widget-run")
    box.press("Enter")
    hits = page.locator("#asm-nb-sessions .jp-asm-search-hit")
    expect(hits.first).to_be_visible()
    assert hits.count() >= 3
    expect(hits.first.locator("mark").first).to_have_text(re.compile("live"))
    box.press("Escape")
    expect(hits).to_have_count(0)
    box.fill("")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    rendered.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "lab-notebook-and-sidebar.png"))

    shell_row.click()
    view = page.locator(".jp-asm-run-view .jp-asm-run")
    expect(view).to_have_count(1)
    expect(view.locator(".jp-asm-run-provider")).to_have_text("shell")
    expect(view.locator(".jp-asm-msg-user")).to_contain_text("echo live-widget-run")
    page.screenshot(path=str(ARTIFACTS / "lab-run-from-sidebar.png"))


def test_saved_notebook_renders_without_running(lab, page):
    from playwright.sync_api import expect

    page.goto(f"{lab.url}/lab/tree/saved.ipynb?token={lab.token}")
    rendered = page.locator(".jp-OutputArea .jp-asm-run")
    expect(rendered).to_have_count(1)
    expect(rendered.locator(".jp-asm-run-status")).to_have_text("completed")
    expect(rendered.locator(".jp-asm-msg-assistant").first).to_be_visible()
    # the text/html fallback of the bundle is not what is shown
    assert page.locator(".jp-OutputArea .jp-RenderedHTMLCommon .asm-run").count() == 0
    page.screenshot(path=str(ARTIFACTS / "lab-saved-notebook.png"))


def _saved_outputs(path: Path) -> list[list[dict]]:
    nb = json.loads(path.read_text())
    return [c.get("outputs", []) for c in nb["cells"] if c["cell_type"] == "code"]


def _kernel_idle_with_all_cells_run(page) -> None:
    page.wait_for_function(
        """() => {
             const w = window.jupyterapp.shell.currentWidget;
             const k = w.sessionContext.session && w.sessionContext.session.kernel;
             if (!k || k.status !== 'idle') return false;
             const cells = w.content.model.cells;
             for (let i = 0; i < cells.length; i++) {
               const c = cells.get(i);
               if (c.type === 'code' && !c.executionCount) return false;
             }
             return true;
           }""")


def _set_theme(page, theme: str) -> None:
    page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", theme)
    page.wait_for_function("(t) => document.body.dataset.jpThemeName === t", arg=theme)
    page.wait_for_timeout(300)  # the theme's CSS is applied after the attribute flips


@pytest.mark.timeout(600)
def test_live_run_saves_as_static_card_and_reopens(lab, page, browser):
    """A live %%asm (tool calls, Approve, Cancel), a diff and a compare; save; the saved file has
    no widget outputs; a fresh page (new kernel, no widget models) shows the cards, the diff and
    the comparison, never "Error displaying widget", in the light and the dark theme; and none
    of the HTML/JS in the agent's text ran."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _open_notebook(page, lab, "live.ipynb", workspace="live-run")
    # not awaited: the promise settles only when every cell ran, and one waits for a click
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    # the claude run stops at the bash call until it is approved
    approve = page.locator(".jp-OutputArea .asm-run button", has_text="Approve")
    expect(approve).to_be_visible()
    waiting = page.locator(".jp-OutputArea .asm-run .asm-tool", has_text="Waiting for approval")
    expect(waiting).to_contain_text("bash sleep 1")
    # Approve / Deny sit on the waiting tool row itself, on its line
    row = page.locator(".jp-OutputArea .asm-run .asm-approval-row")
    expect(row).to_have_count(1)
    expect(row.locator(".asm-tool")).to_contain_text("Waiting for approval: bash sleep 1")
    expect(row.locator("button", has_text="Approve")).to_be_visible()
    expect(row.locator("button", has_text="Deny")).to_be_visible()
    # the kernel model says busy at once; the status bar is a React widget that re-renders on its
    # own schedule (under load it can still show the "Idle" between two run-all cells): wait for it
    assert page.evaluate("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status") == "busy"
    expect(page.locator(".jp-StatusBar-Widget", has_text="ipykernel").first).to_contain_text("Busy")
    row_box, btn_box = row.locator(".asm-tool").bounding_box(), approve.bounding_box()
    assert btn_box["y"] < row_box["y"] + row_box["height"] and btn_box["x"] > row_box["x"], (row_box, btn_box)
    # the pause icon is drawn (two CSS bars), not a missing glyph
    icon = row.locator(".asm-tool-icon.asm-pause")
    assert icon.evaluate("e => getComputedStyle(e, '::before').borderLeftWidth") != "0px"
    page.screenshot(path=str(ARTIFACTS / "live-approval-light.png"))
    _set_theme(page, "JupyterLab Dark")  # the live widget themed too (banners, rows, buttons)
    page.screenshot(path=str(ARTIFACTS / "live-approval-dark.png"))
    _set_theme(page, "JupyterLab Light")
    # a button click (a comm message) does not flip the kernel to Idle while the cell still runs:
    # every status the kernel model takes from the click on is recorded with whether the approved
    # cell's output is already the finished run's card (the kernel sends it before the cell's end,
    # and JupyterLab handles kernel messages in order): an "idle" before that is the bug
    page.evaluate("""() => {
        const nb = window.jupyterapp.shell.currentWidget;
        const outputs = nb.content.model.cells.get(1).outputs;
        window.__asmStatuses = [];
        nb.sessionContext.session.kernel.statusChanged.connect((_, s) => {
            let done = false;
            for (let i = 0; i < outputs.length; i++) {
                done = done || 'application/vnd.asm.run+json' in outputs.get(i).data;
            }
            window.__asmStatuses.push([s, done]);
        });
    }""")
    approve.click()

    # the next cell runs `sleep 60`: cancel it from its widget
    cancel = page.locator(".jp-OutputArea .asm-run", has_text="sleep 60").locator("button", has_text="Cancel")
    expect(cancel).to_be_visible()
    statuses = page.evaluate("() => window.__asmStatuses")
    assert ["idle", False] not in statuses and ["idle", True] in statuses, statuses
    cancel.click()
    _kernel_idle_with_all_cells_run(page)
    expect(page.locator(".jp-StatusBar-Widget", has_text="ipykernel").first).to_contain_text("Idle")
    last = page.locator(".jp-Cell").last.locator(".jp-OutputArea-output")
    expect(last).to_contain_text("completed cancelled completed ['shell', 'mock']")

    # finished live runs were replaced by the card (the MIME renderer), not left as widgets
    cards = page.locator(".jp-OutputArea .jp-asm-run")
    expect(cards).to_have_count(3)
    assert page.locator(".jp-OutputArea .widget-box").count() == 0
    page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")

    # the saved file: the static bundle for every run, no widget view anywhere
    outputs = _saved_outputs(lab.root / "live.ipynb")
    mimes = [set(o.get("data", {})) for cell in outputs for o in cell]
    assert not any("application/vnd.jupyter.widget-view+json" in m for m in mimes), mimes
    runs = [o for cell in outputs[1:4] for o in cell if "application/vnd.asm.run+json" in o.get("data", {})]
    assert len(runs) == 3, outputs[1:4]
    assert [r["data"]["application/vnd.asm.run+json"]["run"]["status"] for r in runs] == \
        ["completed", "cancelled", "completed"]
    assert all({"text/html", "text/plain"} <= set(r["data"]) for r in runs)
    assert any("asm-diffview" in "".join(o.get("data", {}).get("text/html", "")) for o in outputs[4])
    assert any("asm-compare" in "".join(o.get("data", {}).get("text/html", "")) for o in outputs[5])

    # no kernel from the first page: stop it, then reopen the notebook in a fresh page
    status, sessions = lab.get_json("api/sessions")
    for sess in sessions or []:
        req = urllib.request.Request(f"{lab.url}/api/sessions/{sess['id']}?token={lab.token}", method="DELETE")
        urllib.request.urlopen(req, timeout=10).close()
    ctx = browser.new_context(viewport={"width": 1400, "height": 1600})
    fresh = ctx.new_page()
    fresh.set_default_timeout(UI_TIMEOUT_MS)
    try:
        _open_notebook(fresh, lab, "live.ipynb", workspace="reopened")
        cards = fresh.locator(".jp-OutputArea .jp-asm-run")
        expect(cards).to_have_count(3)
        expect(cards.nth(0).locator(".jp-asm-run-status")).to_have_text("completed")
        expect(cards.nth(1).locator(".jp-asm-run-status")).to_have_text("cancelled")
        expect(cards.nth(0).locator(".jp-asm-msg-assistant").last).to_contain_text("notes.txt")
        expect(fresh.locator(".jp-OutputArea .asm-diffview")).to_have_count(1)
        expect(fresh.locator(".jp-OutputArea .asm-compare")).to_have_count(1)
        assert fresh.get_by_text("Error displaying widget").count() == 0
        assert "model not found" not in fresh.locator("body").inner_text()
        # the agent's HTML was shown as text or dropped; none of it ran
        assert fresh.evaluate("() => window.__asm_xss") is None
        assert fresh.locator(".jp-asm-run img[onerror], .jp-asm-run script, .jp-asm-run iframe").count() == 0
        fresh.screenshot(path=str(ARTIFACTS / "reopened-light.png"), full_page=True)
        cards.nth(0).screenshot(path=str(ARTIFACTS / "card-light.png"))
        _set_theme(fresh, "JupyterLab Dark")
        fresh.screenshot(path=str(ARTIFACTS / "reopened-dark.png"), full_page=True)
        cards.nth(0).screenshot(path=str(ARTIFACTS / "card-dark.png"))
        fresh.locator(".jp-OutputArea .asm-compare").screenshot(path=str(ARTIFACTS / "compare-dark.png"))
        fresh.locator(".jp-OutputArea .asm-diffview").screenshot(path=str(ARTIFACTS / "diff-dark.png"))
        _set_theme(fresh, "JupyterLab Light")
        fresh.locator(".jp-OutputArea .asm-compare").screenshot(path=str(ARTIFACTS / "compare-light.png"))
        fresh.locator(".jp-OutputArea .asm-diffview").screenshot(path=str(ARTIFACTS / "diff-light.png"))
    finally:
        ctx.close()
    assert page.evaluate("() => window.__asm_xss") is None  # the live page either


def _css_color(page, prop: str, value: str) -> str:
    """The computed colour of ``value`` (e.g. a theme variable) for a CSS property."""
    return page.evaluate("([p, v]) => { const d = document.createElement('div'); d.style[p] = v;"
                         " document.body.appendChild(d); const c = getComputedStyle(d)[p === 'background' ?"
                         " 'backgroundColor' : p]; d.remove(); return c; }", [prop, value])


def _clipped_headers(grid) -> list[str]:
    """The grid's visible header labels cut by their column (an ellipsis instead of the text)."""
    return grid.locator("th .asm-rungrid-label").evaluate_all(
        "ls => ls.filter(l => l.offsetParent && l.scrollWidth > l.clientWidth + 1).map(l => l.textContent)")


def _live_grid_sort_pick_and_detail(page, live) -> None:
    """The live dashboard's run grid: a header click sorts (arrow, aria-sort, order), a second
    click flips it; a row click picks the run (highlighted, aria-selected) and its detail shows
    beside the grid, then below it in a narrow window; the keyboard picks too."""
    from playwright.sync_api import expect

    grid = live.locator(".asm-rungrid")
    rows = grid.locator("tbody tr")
    expect(rows).to_have_count(5)
    ids = lambda: rows.evaluate_all("rs => rs.map(r => r.dataset.runId)")  # noqa: E731
    newest_first = ids()
    assert grid.locator("th[data-key=started_at]").get_attribute("aria-sort") == "descending"
    expect(grid.locator("th[data-key=started_at] .asm-rungrid-arrow")).to_have_text("▼")

    tokens_th = grid.locator("th[data-key=total_tokens]")
    tokens_th.locator("button").click()  # ascending tokens
    expect(tokens_th).to_have_attribute("aria-sort", "ascending")
    expect(tokens_th.locator(".asm-rungrid-arrow")).to_have_text("▲")
    expect(grid.locator("th[data-key=started_at]")).to_have_attribute("aria-sort", "none")
    values = [int(t.replace(",", "")) for t in grid.locator("tbody td.asm-rungrid-int").all_inner_texts()]
    assert values == sorted(values) and ids() != newest_first, values
    tokens_th.locator("button").click()  # descending
    expect(tokens_th).to_have_attribute("aria-sort", "descending")
    expect(tokens_th.locator(".asm-rungrid-arrow")).to_have_text("▼")
    values = [int(t.replace(",", "")) for t in grid.locator("tbody td.asm-rungrid-int").all_inner_texts()]
    assert values == sorted(values, reverse=True), values

    # a click on the row with the most tokens (the replayed 'tools' run) picks it
    top = rows.first
    run_id = top.get_attribute("data-run-id")
    assert top.locator("td.asm-rungrid-text").first.inner_text() == "replay tools"
    top.click()
    expect(top).to_have_class(re.compile(r"\basm-picked\b"))
    expect(top).to_have_attribute("aria-selected", "true")
    detail = live.locator(".asm-dash-detail")
    expect(detail.locator(".asm-dash-ids")).to_contain_text(run_id)
    expect(detail.locator(".asm-dash-prompt")).to_have_text("replay tools")
    expect(detail.locator(".asm-run details.asm-tool")).to_have_count(5)  # the run card, its tool rows
    expect(detail.locator(".asm-run")).to_contain_text("now returns an empty list")
    g, d = grid.bounding_box(), detail.bounding_box()
    assert g and d and d["x"] >= g["x"] + g["width"] and abs(d["y"] - g["y"]) < 60, (g, d)  # beside
    assert _clipped_headers(grid) == []  # every header label fits its column

    # keyboard: the picked row holds the focus stop; ArrowDown then Enter picks the next row
    top.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    second = rows.nth(1)
    expect(second).to_have_class(re.compile(r"\basm-picked\b"))
    expect(detail.locator(".asm-dash-ids")).to_contain_text(second.get_attribute("data-run-id") or "?")
    assert rows.evaluate_all("rs => rs.filter(r => r.classList.contains('asm-picked')).length") == 1
    second.click()  # (the same run again)
    top.click()
    expect(detail.locator(".asm-dash-ids")).to_contain_text(run_id)
    # a header from the keyboard: Enter sorts, the redrawn header keeps the focus
    cost_btn = grid.locator("th[data-key=cost_usd] button")
    cost_btn.focus()
    page.keyboard.press("Enter")
    expect(grid.locator("th[data-key=cost_usd]")).to_have_attribute("aria-sort", "ascending")
    assert page.evaluate("() => document.activeElement.closest('th') && "
                         "document.activeElement.closest('th').dataset.key") == "cost_usd"
    page.keyboard.press("Enter")
    expect(grid.locator("th[data-key=cost_usd]")).to_have_attribute("aria-sort", "descending")
    tokens_th.locator("button").click()
    tokens_th.locator("button").click()
    expect(tokens_th).to_have_attribute("aria-sort", "descending")
    expect(rows.first).to_have_class(re.compile(r"\basm-picked\b"))  # still picked after re-sorting

    # the relative start times age while the page stays open (re-worded every 30 s or on hover).
    # The page's clock is set from the runs' own start times: the rows were worded by the kernel
    # when drawn, and on a loaded machine the runs can be older than "just now" (45 s) by the time
    # the test gets here, so the real clock would make the first check a race with the load.
    cells = grid.locator('tbody td[data-key="started_at"]')
    newest = max(rows.evaluate_all("rs => rs.map(r => Date.parse(r.dataset.started))"))
    page.evaluate("(t) => { window.__asmRealNow = Date.now; window.__asmNow = t; Date.now = () => window.__asmNow; }",
                  newest + 1000)
    try:
        page.mouse.move(0, 0)
        grid.hover()
        expect(cells).to_have_text(["just now"] * 5)
        page.evaluate("() => { window.__asmNow += 3 * 3600e3; }")
        page.mouse.move(0, 0)
        grid.hover()
        expect(cells).to_have_text(["3 h ago"] * 5)
    finally:
        page.evaluate("() => { Date.now = window.__asmRealNow; }")

    # a narrow notebook: the detail moves below the grid
    page.set_viewport_size({"width": 900, "height": 1000})
    page.wait_for_timeout(300)
    g, d = grid.bounding_box(), detail.bounding_box()
    assert g and d and d["y"] >= g["y"] + g["height"] - 1, (g, d)  # stacked
    live.locator(".asm-dash-split").screenshot(path=str(ARTIFACTS / "dashboard-grid-narrow-light.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.wait_for_timeout(300)
    live.locator(".asm-dash-split").scroll_into_view_if_needed()
    live.locator(".asm-dash-split").screenshot(path=str(ARTIFACTS / "dashboard-grid-light.png"))
    # the notebook at full width (file browser closed): every column, the duration too
    page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
    page.wait_for_timeout(400)
    expect(grid.locator("th[data-key=duration_s]")).to_be_visible()
    assert _clipped_headers(grid) == []
    g, d = grid.bounding_box(), detail.bounding_box()
    assert g and d and d["x"] >= g["x"] + g["width"], (g, d)
    live.locator(".asm-dash-split").screenshot(path=str(ARTIFACTS / "dashboard-grid-wide-light.png"))
    page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
    page.wait_for_timeout(400)


def _grid_ids(page) -> list[str]:
    return page.locator(".jp-asm-dashboard-grid tbody tr").evaluate_all("rows => rows.map(r => r.dataset.runId)")


@pytest.mark.timeout(600)
def test_dashboard_live_then_static_sortable_grid_after_reopen(lab, page, browser):
    """The dashboard is the live widget while its kernel runs; saved and reopened with a new
    kernel it is the snapshot: KPI tiles and a grid sortable by any column, never "Error
    displaying widget"; the plotly chart is redrawn from the saved JSON, its text themed."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _open_notebook(page, lab, "dash.ipynb", workspace="dash-live")
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    _kernel_idle_with_all_cells_run(page)
    live = page.locator(".jp-OutputArea .jp-asm-dashboard.jp-asm-dashboard-live")
    expect(live).to_have_count(1)
    expect(live.locator(".asm-dash .asm-kpi").first).to_be_visible()  # the ipywidgets app
    assert page.get_by_text("Error displaying widget").count() == 0
    charts = live.locator(".asm-dash .widget-gridbox").first
    charts.scroll_into_view_if_needed()
    charts.screenshot(path=str(ARTIFACTS / "dashboard-charts-light.png"))
    _live_grid_sort_pick_and_detail(page, live)
    page.screenshot(path=str(ARTIFACTS / "dashboard-live-light.png"), full_page=True)
    # asm_nb's figures: transparent background; the extension paints their text with the theme
    chart = page.locator(".jp-CodeCell").nth(2).locator(".jp-OutputArea .js-plotly-plot")
    expect(chart).to_have_count(1)
    chart.scroll_into_view_if_needed()
    bg = chart.locator("svg.main-svg").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert bg in ("rgba(0, 0, 0, 0)", "transparent"), bg
    font_color = ("() => { const d = document.createElement('div'); d.style.color = 'var(--jp-ui-font-color1)';"
                  " document.body.appendChild(d); const c = getComputedStyle(d).color; d.remove(); return c; }")
    tick = chart.locator(".xtick text").first
    assert tick.evaluate("e => getComputedStyle(e).fill") == page.evaluate(font_color)
    chart.screenshot(path=str(ARTIFACTS / "chart-light.png"))
    light_fill = tick.evaluate("e => getComputedStyle(e).fill")
    _set_theme(page, "JupyterLab Dark")
    chart.screenshot(path=str(ARTIFACTS / "chart-dark.png"))
    dark_fill = tick.evaluate("e => getComputedStyle(e).fill")
    assert dark_fill == page.evaluate(font_color) and dark_fill != light_fill, (light_fill, dark_fill)
    page.screenshot(path=str(ARTIFACTS / "dashboard-live-dark.png"), full_page=True)
    split = live.locator(".asm-dash-split")
    split.scroll_into_view_if_needed()
    split.screenshot(path=str(ARTIFACTS / "dashboard-grid-dark.png"))
    # themed: the picked row and the detail follow the dark theme's variables
    picked = live.locator(".asm-rungrid tbody tr.asm-picked")
    other = live.locator(".asm-rungrid tbody tr:not(.asm-picked)").first
    picked_bg = picked.evaluate("e => getComputedStyle(e).backgroundColor")
    assert picked_bg not in ("rgba(0, 0, 0, 0)", other.evaluate("e => getComputedStyle(e).backgroundColor"))
    cell_color = picked.locator("td.asm-rungrid-text").first.evaluate("e => getComputedStyle(e).color")
    assert cell_color == _css_color(page, "color", "var(--jp-ui-font-color1)"), cell_color
    detail_color = live.locator(".asm-dash-detail .asm-dash-prompt").evaluate("e => getComputedStyle(e).color")
    assert detail_color == _css_color(page, "color", "var(--jp-content-font-color1)"), detail_color
    _set_theme(page, "JupyterLab Light")
    page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")

    saved = _saved_outputs(lab.root / "dash.ipynb")[1]
    assert "application/vnd.asm.dashboard+json" in saved[0]["data"]
    assert "text/html" in saved[0]["data"]

    status, sessions = lab.get_json("api/sessions")
    for sess in sessions or []:
        req = urllib.request.Request(f"{lab.url}/api/sessions/{sess['id']}?token={lab.token}", method="DELETE")
        urllib.request.urlopen(req, timeout=10).close()
    ctx = browser.new_context(viewport={"width": 1400, "height": 1400})
    fresh = ctx.new_page()
    fresh.set_default_timeout(UI_TIMEOUT_MS)
    try:
        _open_notebook(fresh, lab, "dash.ipynb", workspace="dash-reopened")
        static = fresh.locator(".jp-OutputArea .jp-asm-dashboard:not(.jp-asm-dashboard-live)")
        expect(static).to_have_count(1)
        expect(static.locator(".jp-asm-dashboard-kpi")).to_have_count(4)
        expect(static.locator(".jp-asm-dashboard-kpi[data-kpi=runs] .jp-asm-dashboard-kpi-value")).to_have_text("5")
        rows = static.locator(".jp-asm-dashboard-grid tbody tr")
        expect(rows).to_have_count(5)
        assert fresh.get_by_text("Error displaying widget").count() == 0
        assert "model not found" not in fresh.locator("body").inner_text()
        newest_first = _grid_ids(fresh)
        static.locator("th[data-key=total_tokens]").click()  # ascending tokens
        expect(static.locator("th[data-key=total_tokens]")).to_have_attribute("aria-sort", "ascending")
        tokens = static.locator("tbody td.jp-asm-dashboard-int").all_inner_texts()
        values = [int(t.replace(",", "")) for t in tokens]
        assert values == sorted(values) and _grid_ids(fresh) != newest_first
        static.locator("th[data-key=started_at]").click()  # back to newest first
        expect(static.locator("th[data-key=started_at]")).to_have_attribute("aria-sort", "descending")
        assert _grid_ids(fresh) == newest_first
        # the chart: jupyterlab-plotly shows the PNG it saved with the notebook (no kernel needed)
        expect(fresh.locator(".jp-OutputArea .jp-RenderedPlotly img.plot-img")).to_be_visible()
        static.screenshot(path=str(ARTIFACTS / "dashboard-static-light.png"))
        _set_theme(fresh, "JupyterLab Dark")
        static.screenshot(path=str(ARTIFACTS / "dashboard-static-dark.png"))
        fresh.screenshot(path=str(ARTIFACTS / "dashboard-reopened-dark.png"), full_page=True)
        _set_theme(fresh, "JupyterLab Light")
    finally:
        try:
            fresh.screenshot(path=str(ARTIFACTS / "dashboard-reopened-last.png"), full_page=True)
        finally:
            ctx.close()
