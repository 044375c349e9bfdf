"""Build (and execute) the notebooks from their cell sources, so outputs in git are the
deterministic rich outputs that nbval checks: each ``%%asm`` run as its card (the static bundle
a live run ends as: ``--renderer card``, ids and timings left out by ``deterministic_display``),
charts with a static PNG (``chart_images``, kaleido) for nbconvert / nbviewer / GitHub, the
dashboard as its snapshot. scripts/test.sh runs nbval with the same settings (no PNGs: nbval
does not compare images).

    python notebooks/_build.py            # rebuild every notebook, executing it
    python notebooks/_build.py 01         # only notebooks whose name starts with 01
    ASM_BUILD_ALLOW_ERRORS=1 python notebooks/_build.py 04   # keep going past errors (debugging)
"""

from __future__ import annotations

import html
import os
import pathlib
import re
import shutil
import sys
import tempfile

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).parent
NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}


def md(text: str) -> tuple[str, str]:
    return ("markdown", text.strip())


def code(text: str) -> tuple[str, str]:
    return ("code", text.strip())


NOTEBOOKS["01_quickstart.ipynb"] = [
    md("""
# asm_nb quickstart

Run an agent from a cell, watch it stream, and get everything it did back as data.
This notebook runs **offline**: it uses the `shell` provider and a recorded run (a *cassette*)
replayed through the `replay` provider, so it needs no API key and no network. With a key set,
the same cells work with `-p claude`, `-p claude_code`, `-p codex` or `-p amp`.
"""),
    code("""
%load_ext asm_nb
import tempfile, asm_nb

# A fresh store for this walkthrough (by default runs land in ./.asm beside the notebook).
store_dir = tempfile.mkdtemp(prefix="asm-quickstart-")
%asm store {store_dir}
"""),
    md("""
## A first run

The cell body is the prompt; for the `shell` provider it is the command. In JupyterLab the run
shows as a live widget (text, tool calls with spinners, tokens, cost and a Cancel button) that
becomes the run's card when it ends: what this saved notebook shows below. In a terminal it
renders as plain text.
"""),
    code("""
%%asm -p shell --out first
echo "hello from a shell agent"
"""),
    code("""
first.status, first.output
"""),
    md("""
## Replaying a recorded agent session

A cassette is a JSON-lines recording of an agent's normalized events. Replaying it is how
notebooks, docs and CI stay reproducible. `asm_nb.testing.example_cassette` points at the
recordings shipped with the package.
"""),
    code("""
from asm_nb.testing import example_cassette
cassette = example_cassette("hello")
"""),
    code("""
%%asm --replay {cassette} --out answer
What does this repository do?
"""),
    code("""
print("status:", answer.status)
print("model: ", answer.model)
print("tokens:", answer.token_usage)
print("cost:   $%.5f" % answer.cost_usd)
[(c["name"], c["status"]) for c in answer.tool_calls]
"""),
    md("""
## Everything is data

Every event landed in the store. Sessions, runs, events and tool calls load back as DataFrames
(pandas by default, `backend="polars"` for polars).
"""),
    code("""
runs = asm_nb.frames.runs(store_dir)
runs[["provider", "status", "input_tokens", "output_tokens", "cost_usd"]]
"""),
    code("""
events = asm_nb.frames.events(store_dir, run_id=answer.run_id)
events["type"].value_counts().sort_index()
"""),
    md("""
## Variables in prompts

`{name}` in a cell interpolates a notebook variable (write `{{` for a literal brace); the
interpolated prompt is what gets stored.
"""),
    code("""
greeting = "bonjour"
"""),
    code("""
%%asm -p shell --out said
echo "{greeting} from {{braces}}"
"""),
    md("""
## From plain Python

`asm_nb.run_once` is the same thing without the magic. A failed run does not raise: it comes
back with `status == "failed"` and `error` set.
"""),
    code("""
r = asm_nb.run_once("exit 3", provider="shell", store=store_dir)
r.status, r.error.code, r.error.message
"""),
]



NOTEBOOKS["02_providers_and_sessions.ipynb"] = [
    md("""
# Providers and sessions

One notebook, several agents: the same `%%asm` cell runs a shell command, Claude through the
Anthropic API, a recorded session, or a CLI agent (`claude_code`, `codex`, `amp`), chosen with
`-p`. A **session** (`--session NAME`) carries a conversation across cells: each run in it sees
the turns before it.

This notebook runs **offline** by default: Claude answers from `FakeAnthropicServer`, a loopback
server that speaks the Anthropic Messages API, so the real `anthropic` client and asm_nb's Claude
adapter run end to end with no key and no network. With `ANTHROPIC_API_KEY` set (and
`ASM_NOTEBOOKS_OFFLINE` unset) the same cells call the real API.
"""),
    code("""
%load_ext asm_nb
import os, tempfile, asm_nb
from asm_nb.testing import FakeAnthropicServer, StreamBuilder

store_dir = tempfile.mkdtemp(prefix="asm-providers-")
%asm store {store_dir}

LIVE = bool(os.environ.get("ANTHROPIC_API_KEY")) and not os.environ.get("ASM_NOTEBOOKS_OFFLINE")
if LIVE:
    server = None
    print("live: Claude answers from the Anthropic API")
else:
    server = FakeAnthropicServer().start()
    os.environ["ANTHROPIC_BASE_URL"] = server.base_url   # read by the anthropic client
    os.environ["ANTHROPIC_API_KEY"] = "offline-demo-key"
    print("offline: Claude answers from a fake Anthropic API at", server.base_url)
"""),
    md("""
## What is installed

`available_providers()` lists the registered providers: `shell`, `replay` and `mock` need
nothing; `claude` needs an API key; `claude_code`, `codex` and `amp` drive the vendors' CLIs.
"""),
    code("""
from asm_nb.providers import available_providers
available_providers()
"""),
    md("""
## The shell provider

No model at all: the cell is a command, its output is the answer. Handy for wiring and for
driving the workspace features without an API key.
"""),
    code("""
%%asm -p shell --out listing
printf 'alpha\\nbeta\\n' | sort -r
"""),
    md("""
## Claude in a named session

`--session research` starts the session on first use and continues it afterwards. Offline, we
script the fake API's two answers first (live, Claude writes its own).
"""),
    code("""
if server:
    server.enqueue(
        StreamBuilder(input_tokens=42).text("Three colours of the French flag: blue, white and red.").end(output_tokens=18),
        StreamBuilder(input_tokens=75).text("The middle one is **white**.").end(output_tokens=9),
    )
"""),
    code("""
%%asm -p claude -m claude-haiku-4-5 --session research --out first
Name the three colours of the French flag, in one sentence.
"""),
    code("""
%%asm -p claude -m claude-haiku-4-5 --session research --out second
Which of them is in the middle?
"""),
    md("""
The second run had no context of its own: it knew about the flag because the session replayed
the first exchange. Offline we can look at what the client actually sent:
"""),
    code("""
if server:
    for m in server.requests[-1].messages:
        print(f"{m['role']:9}", m["content"] if isinstance(m["content"], str) else m["content"][0]["text"])
else:
    print(second.output)
"""),
    code("""
print(first.session_id == second.session_id, first.status, second.status)
print("tokens:", second.token_usage["input_tokens"], "in /", second.token_usage["output_tokens"], "out")
print("cost:   $%.6f" % (first.cost_usd + second.cost_usd))
"""),
    md("""
## Sessions in the store

`%asm sessions` lists them; `asm_nb.frames.transcript` gives one session's conversation as a
DataFrame, across all its runs.
"""),
    code("""
%asm sessions
"""),
    code("""
t = asm_nb.frames.transcript(store_dir, first.session_id)
t[["role", "content"]]
"""),
    md("""
## Record once, replay anywhere

`--record FILE` saves a run as a cassette; `--replay FILE` plays it back later with no provider
at all: the way to share an agent session or pin one down in a test.
"""),
    code("""
cassette_path = os.path.join(store_dir, "flag.jsonl")
if server:
    server.enqueue(StreamBuilder(input_tokens=30).text("Blue, white, red: *bleu, blanc, rouge*.").end(output_tokens=12))
"""),
    code("""
%%asm -p claude -m claude-haiku-4-5 --record {cassette_path} --out recorded
The French flag's colours in French?
"""),
    code("""
%%asm --replay {cassette_path} --out replayed
The French flag's colours in French?
"""),
    code("""
replayed.output == recorded.output, replayed.token_usage == recorded.token_usage
"""),
    code("""
if server:
    server.stop()
    for key in ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"):
        os.environ.pop(key, None)
"""),
]



def figure(text: str) -> tuple[str, str]:
    """A code cell that shows a plotly figure: its output (figure JSON, float sums) is not
    compared by nbval; the next cell prints what the figure shows, and that is compared."""
    return ("code-ignore-output", text.strip())


NOTEBOOKS["03_cost_analysis.ipynb"] = [
    md("""
# Cost analysis with DataFrames and plotly

Every run in a store carries its tokens and its cost; every tool call is an event. `asm_nb.frames`
loads them as typed DataFrames (pandas by default, polars with `backend="polars"`) and
`asm_nb.plots` draws the usual questions: where does the money go, which runs are big, which
tools are slow, which providers fail.

To run offline, this notebook first fills a fresh store with a month of simulated agent work:
60 recorded runs over three models, built as cassettes and replayed (`impersonate=True` stores
each under the provider that recorded it). To analyse your own runs instead, set `store_dir` to
your store (by default `.asm` beside your notebooks, or `$ASM_HOME`) and skip the next cell.
"""),
    code("""
import random, tempfile
from collections import Counter
import pandas as pd
import plotly.io as pio
import asm_nb
from asm_nb.testing import build_cassette
from asm_nb.testing.cassettes import assistant_text, completed, failed, start, tool_call, usage

pio.renderers.default = "plotly_mimetype"   # figures as JSON: JupyterLab draws them, the notebook stays small
store_dir = tempfile.mkdtemp(prefix="asm-costs-")
"""),
    code("""
MODELS = [("claude", "claude-sonnet-4-5"), ("claude", "claude-haiku-4-5"), ("codex", "gpt-5-codex")]
TASKS = ["Fix the failing test", "Add type hints to utils.py", "Write the README install section",
         "Refactor the CSV reader", "Explain the retry logic", "Bump the pinned dependencies"]
TOOLS = ["bash", "read_file", "edit_file", "grep"]
rng = random.Random(2025)

def simulated_run(i):
    provider, model = MODELS[rng.choice([0, 0, 1, 1, 1, 2])]
    task = rng.choice(TASKS)
    events, t = list(start(model=model, prompt=task, t_ms=0)), 0
    for k in range(rng.randint(0, 5)):
        name, took = rng.choice(TOOLS), rng.randint(50, 4000)
        events += tool_call(name, {"step": k}, {"output": "ok", "exit_code": 0}, id=f"call_{i}_{k}",
                            t_ms=t, duration_ms=took, is_error=rng.random() < 0.1)
        t += took + rng.randint(100, 1500)
    scale = 4 if model == "claude-haiku-4-5" else 1
    events.append(usage(input_tokens=rng.randint(800, 9000) * scale, output_tokens=rng.randint(150, 2500),
                        cache_read_tokens=rng.choice([0, 0, 12000, 30000]), t_ms=t))
    if rng.random() < 0.12:
        events += failed("provider_error", "overloaded: try again later", t_ms=t + 10)
    else:
        events += assistant_text(f"Done: {task.lower()}.", t_ms=t + 10)
        events.append(completed(t_ms=t + 20))
    return build_cassette(events, provider=provider, model=model, input=task), task

project_of = {}
for i in range(60):
    cassette, task = simulated_run(i)
    project = rng.choice(["api-service", "web-app", "data-pipeline"])
    r = asm_nb.run_once(task, provider="replay", store=store_dir, session=project, continuation=False,
                        options={"cassette": cassette, "impersonate": True, "deterministic": True})
    project_of[r.run_id] = project
dict(sorted(Counter(project_of.values()).items()))   # runs per project
"""),
    md("""
## The runs

`frames.runs` has one row per run: provider, model, status, timing, tokens, cost and how the cost
was obtained (`cost_source`: reported by the provider, computed from the price table, …).
"""),
    code("""
runs = asm_nb.frames.runs(store_dir)
runs.dtypes[["provider", "status", "started_at", "input_tokens", "cost_usd"]]
"""),
    code("""
runs.astype({"provider": str, "status": str}).groupby(["provider", "status"]).size().unstack(fill_value=0)
"""),
    md("""
## Where the money goes

`frames.costs(by=...)` aggregates tokens and USD by `model`, `provider`, `session` or `day`.
"""),
    code("""
by_model = asm_nb.frames.costs(store_dir, by="model")
cols = ["model", "run_count", "input_tokens", "output_tokens", "cache_read_tokens", "cost_usd"]
by_model[cols].astype({"model": str}).sort_values("model").round(4).reset_index(drop=True)
"""),
    code("""
by_session = asm_nb.frames.costs(store_dir, by="session")
by_session["project"] = by_session["session_id"].map(
    {s.id: s.metadata.get("name") for s in asm_nb.open_store(store_dir).list_sessions()})
by_session[["project", "run_count", "total_tokens", "cost_usd"]].sort_values("project").round(4).reset_index(drop=True)
"""),
    md("""
The five most expensive runs, and what share of the total they are:
"""),
    code("""
costs = asm_nb.frames.costs(store_dir)
top = costs.nlargest(5, "cost_usd")[["model", "input_tokens", "output_tokens", "cache_read_tokens", "cost_usd"]]
print(f"top 5 runs: ${top.cost_usd.sum():.4f} of ${costs.cost_usd.sum():.4f} "
      f"({top.cost_usd.sum() / costs.cost_usd.sum():.0%})")
top.round(4).reset_index(drop=True)
"""),
    md("""
The same with polars, for larger stores:
"""),
    code("""
import polars as pl
(asm_nb.frames.costs(store_dir, backend="polars")
   .with_columns(pl.col("provider").cast(pl.String))
   .group_by("provider").agg(pl.len().alias("runs"), pl.col("cost_usd").sum().round(4))
   .sort("provider"))
"""),
    md("""
## Cost over time

The simulated runs all happened seconds ago; to see the chart a real month gives, spread them
over October 2025 (one run every twelve hours, in order). With your own store, skip the
reassignment.
"""),
    code("""
when = {run_id: pd.Timestamp("2025-10-01", tz="UTC") + pd.Timedelta(hours=12 * k)
        for k, run_id in enumerate(costs.sort_values("started_at")["run_id"])}
costs["started_at"] = costs["run_id"].map(when)
costs["day"] = costs["started_at"].dt.floor("D")
"""),
    figure("""
fig = asm_nb.plots.cost_over_time(costs, by="model", freq="week")
fig
"""),
    code("""
# what the chart shows: USD per week and model
week = costs["started_at"].dt.tz_convert(None).dt.to_period("W").dt.start_time.dt.date.rename("week")
costs.astype({"model": str}).groupby([week, "model"])["cost_usd"].sum().unstack(fill_value=0).round(4)
"""),
    md("""
## Tokens per run
"""),
    figure("""
fig = asm_nb.plots.tokens_per_run(store_dir, limit=30)
fig
"""),
    code("""
[(trace.name, int(sum(trace.y))) for trace in fig.data]
"""),
    md("""
## Tool calls

`frames.tool_calls` has one row per call: name, status, start, end and duration.
"""),
    code("""
calls = asm_nb.frames.tool_calls(store_dir).astype({"tool_name": str, "status": str})
summary = calls.groupby("tool_name").agg(
    calls=("tool_call_id", "count"),
    failed=("status", lambda s: int((s == "failed").sum())),
    mean_ms=("duration_ms", "mean"),
    max_ms=("duration_ms", "max"))
summary.round(0)
"""),
    md("""
The busiest run's tool calls as a timeline:
"""),
    figure("""
per_run = calls.groupby("run_id").size().rename("n").to_frame().join(runs.set_index("run_id")["started_at"])
busiest = per_run.sort_values(["n", "started_at"], ascending=[False, True]).index[0]   # most calls, earliest first
fig = asm_nb.plots.tool_timeline(store_dir, run_id=busiest)
fig
"""),
    code("""
[(trace.name, len(trace.x)) for trace in fig.data]
"""),
    md("""
## Failures

Failed runs keep their error code and message; `outcomes_by_provider` compares providers.
"""),
    code("""
failed_runs = runs[runs.status == "failed"]
failed_runs.astype({"provider": str}).groupby(["provider", "error_code"]).size()
"""),
    figure("""
fig = asm_nb.plots.outcomes_by_provider(store_dir, normalize=True)
fig
"""),
    code("""
[(trace.name, [round(v, 3) for v in trace.y]) for trace in fig.data]
"""),
]



NOTEBOOKS["04_workspace_diffs.ipynb"] = [
    md("""
# What did the agent change? Workspace diffs

An agent that edits files should leave a record of what it touched. With `--snapshot`, asm_nb
snapshots the run's working directory before and after the run (for a git repository: git
objects under a private ref, never touching your branch, index or stash; for any other folder:
content hashes) and stores the diff with the run. `%asm diff` shows it; `asm_nb.frames.diffs`
gives every run's changes as a DataFrame.

Offline, the "agent" here is the `shell` provider running a small script that edits files in a
throwaway git repository; with a coding agent (`-p claude_code`, `-p codex`) the cells are the
same, with a prompt in place of the script.
"""),
    code("""
%load_ext asm_nb
import os, subprocess, tempfile, asm_nb

store_dir = tempfile.mkdtemp(prefix="asm-diffs-")
%asm store {store_dir}

repo = tempfile.mkdtemp(prefix="asm-repo-")
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
           "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.com",
           "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z"}

def git(*args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True, env=GIT_ENV).stdout

files = {
    "convert.py": "def convert(rows):\\n    header = rows[0]\\n    return [dict(zip(header, row)) for row in rows[1:]]\\n",
    "README.md": "# demo\\n\\nConverts CSV rows to dicts.\\n",
    "notes.txt": "scratch notes\\n",
}
for name, text in files.items():
    with open(os.path.join(repo, name), "w") as f:
        f.write(text)
git("init", "-q", "-b", "main"); git("add", "."); git("commit", "-q", "-m", "initial")
sorted(os.listdir(repo))
"""),
    md("""
## A run that edits files

`--snapshot` records the change of the run's working directory: here the repository, where we
move the kernel first (`--cwd DIR` is the per-cell alternative).
"""),
    code("""
%cd -q {repo}
"""),
    code("""
%%asm -p shell --snapshot --out edit
python3 - <<'PY'
import pathlib
src = pathlib.Path("convert.py")
src.write_text(src.read_text().replace("    header = rows[0]\\n", "    if not rows:\\n        return []\\n    header = rows[0]\\n"))
pathlib.Path("test_convert.py").write_text("from convert import convert\\n\\n\\ndef test_empty():\\n    assert convert([]) == []\\n")
pathlib.Path("notes.txt").unlink()
print("fixed convert(), added a test, removed the notes")
PY
"""),
    md("""
## The diff

`%asm diff RUN` shows what the run changed. In JupyterLab it is an interactive viewer (file list
with line counts, one collapsible coloured diff per file); `--text` prints a summary followed by
each file's patch:
"""),
    code("""
%asm diff {edit.run_id} --text
"""),
    md("""
`DiffView` is the object behind it: displayed as the last value of a cell it is a static HTML
view that stays readable in a saved notebook, with no kernel.
"""),
    code("""
from asm_nb.notebook.diffview import DiffView
DiffView.from_run(edit.run_id, store_dir)
"""),
    md("""
The same data as a DataFrame: one row per changed file and run.
"""),
    code("""
d = asm_nb.frames.diffs(store_dir, run_id=edit.run_id)
d[["path", "change", "lines_added", "lines_removed"]].astype({"change": str}).sort_values("path").reset_index(drop=True)
"""),
    md("""
`frames.diff_summaries` has one row per run: files changed and line totals.
"""),
    code("""
asm_nb.frames.diff_summaries(store_dir)[["files_changed", "insertions", "deletions", "changed_paths"]]
"""),
    md("""
The snapshots leave your branch, index and history alone: only the agent's edits are in the
working tree, for you to review and commit.
"""),
    code("""
print(git("status", "--short"))
print(git("log", "--format=%s"))
"""),
    md("""
## A failed run

A run that fails still records what it changed before failing (its `after_failure` snapshot).
"""),
    code("""
%%asm -p shell --snapshot --out broken
echo "half-written line" >> README.md
exit 2
"""),
    code("""
print(broken.status, broken.error.code if broken.error else None)
%asm diff {broken.run_id} --text
"""),
    code("""
%cd -q -
"""),
]


NOTEBOOKS["05_dashboard.ipynb"] = [
    md("""
# The dashboard

`asm_nb.dashboard(store)` is a small app over a store (ipywidgets, and anywidget for the run
grid; both come with `asm_nb[notebook]`, no front-end build): filters (provider, model, status,
dates), KPI tiles (runs, success rate, tokens, cost), the `asm_nb.plots` charts, and a grid of
runs (status, prompt, provider / model, when it started, duration, tokens, cost). Click a header
to sort by it (again for the other direction), click a row (or use the arrow keys and Enter) to
see that run **beside the grid**: its prompt, the run card (transcript and tool calls in plain
words, as a finished `%%asm` cell shows it) and a tool timeline. The grid shows 25 runs a page.
`%asm dashboard` opens it on the notebook's store.

In JupyterLab the cell below shows the live app. Saved, it keeps a snapshot: KPI tiles and the
run table, which JupyterLab draws as a grid sortable by any column when the kernel that made the
widget is gone (as in this saved notebook), and nbconvert / GitHub show as an HTML table. In a
terminal it prints as text.
"""),
    code("""
import tempfile, asm_nb
from asm_nb.testing import example_cassette

# Offline sample data: the packaged recordings replayed under the providers that recorded them,
# plus a few shell runs. Point store_dir at your own store (default ./.asm) to see yours.
store_dir = tempfile.mkdtemp(prefix="asm-dashboard-")
for name in ["hello", "tools", "failure", "tools", "hello"]:
    asm_nb.run_once("(replayed)", provider="replay", store=store_dir,
                    options={"cassette": example_cassette(name), "impersonate": True, "deterministic": True})
for command in ["echo build ok", "ls /nonexistent-dir", "echo deploy ok"]:
    asm_nb.run_once(command, provider="shell", store=store_dir)
len(asm_nb.frames.runs(store_dir))
"""),
    code("""
dash = asm_nb.dashboard(store_dir)
dash
"""),
    md("""
## Filtering from code

Everything the filter widgets do is also a method, so a notebook can open the dashboard on a
view: here, only the failed runs.
"""),
    code("""
dash.set_filters(status=["failed"])
print(dash.text())
"""),
    code("""
dash.filters()
"""),
    code("""
dash.clear_filters()
print(dash.text())
"""),
    md("""
## Sorting and picking from code

What a header click and a row click do are methods too: `dash.grid.click_header(column)`,
`dash.select_run(run_id)` (or `dash.sort_by.value = "cost"` for a named order). The grid's page
holds the rows as they are drawn.
"""),
    code("""
dash.grid.click_header("total_tokens")   # ascending; click again for descending
dash.grid.click_header("total_tokens")
dash.select_run(dash.run_ids[0])          # the run with the most tokens, shown beside the grid
[(row["cells"]["prompt"], row["cells"]["provider_model"], row["cells"]["total_tokens"]) for row in dash.grid.rows]
"""),
]

NOTEBOOKS["06_evaluate.ipynb"] = [
    md("""
# Evaluate agents side by side

Which agent, model, prompt or policy does the job best, and for what cost? `asm_nb.evaluate` runs
every item of a dataset on every agent, gives each run a **fresh copy of the item's workspace**,
scores it (text, your own functions, a model-graded rubric, the tool-call trajectory, the
workspace diff, a command that must pass), and keeps the scores on the runs in the store, so an
interrupted eval resumes where it stopped.

This notebook runs **offline**: the two agents are `shell` agents (one small script with two
strategies) that really edit the files of a tiny Python project. With API keys, the same code
takes `provider="claude"`, `"claude_code"`, `"codex"` or `"amp"` agents.
"""),
    code("""
import pathlib, sys, tempfile, textwrap
import asm_nb
from asm_nb.evaluation import scorers as sc

base = pathlib.Path(tempfile.mkdtemp(prefix="asm-eval-nb-"))
store = str(base / "store")

# the workspace fixture: a tiny project with a bug and its tests
project = base / "fixture"
project.mkdir()
(project / "convert.py").write_text(textwrap.dedent('''
    def convert(rows):
        header = rows[0]
        return [dict(zip(header, row)) for row in rows[1:]]
'''))
(project / "test_convert.py").write_text(textwrap.dedent('''
    from convert import convert

    def test_empty():
        assert convert([]) == []

    def test_strip():
        assert convert([["a"], [" x "]]) == [{"a": "x"}]
'''))

# the "agent": one script in the project, two strategies (the careful one fixes the code, the hasty
# one the test)
agent = project / "agent.py"
agent.write_text(textwrap.dedent('''
    import os, pathlib, sys
    task, strategy = sys.argv[1], os.environ["STRATEGY"]
    src = pathlib.Path("convert.py")
    if task == "empty-input":
        if strategy == "careful":
            fixed = "    if not rows:\\\\n        return []\\\\n    header = rows[0]"
            src.write_text(src.read_text().replace("    header = rows[0]", fixed))
        else:
            test = pathlib.Path("test_convert.py")
            test.write_text(test.read_text().replace("assert convert([]) == []", "pass"))
    elif task == "strip-cells":
        src.write_text(src.read_text().replace("zip(header, row)", "zip(header, [c.strip() for c in row])"))
    print(f"{strategy}: {task} done")
'''))
sorted(p.name for p in project.iterdir())
"""),
    md("""
## Dataset, agents, scorers

A dataset is a list of dicts (or a DataFrame, a JSONL or CSV file). `input` is the prompt (for a
shell agent, the command), `workspace` a fixture folder copied fresh for every item x agent, and
any other field is a variable scorers can use.
"""),
    code("""
dataset = asm_nb.Dataset.from_records([
    {"id": "empty-input", "input": "python3 agent.py empty-input", "test": "empty",
     "workspace": str(project)},
    {"id": "strip-cells", "input": "python3 agent.py strip-cells", "test": "strip",
     "workspace": str(project)},
])
agents = {
    "careful": {"provider": "shell", "env": {"STRATEGY": "careful"}},
    "hasty": {"provider": "shell", "env": {"STRATEGY": "hasty"}},
}

@asm_nb.scorer
def item_test(item, workspace):
    import subprocess
    p = subprocess.run([sys.executable, "-c", f"import test_convert as t; t.test_{item.vars['test']}()"],
                       cwd=workspace, capture_output=True, text=True)
    return p.returncode == 0, "passes" if p.returncode == 0 else p.stderr.strip().splitlines()[-1]

scorers = [
    item_test,                                                 # your own function
    sc.files_changed("convert.py"),                            # workspace: the fix is in the code...
    sc.files_unchanged("test_*.py"),                           # ...and the tests were left alone
    sc.command("python3 -m py_compile convert.py", name="compiles"),  # a command that must pass
    sc.trajectory().called("bash").max_tool_calls(3),          # the tool calls
    sc.contains("done"),                                       # the output text
]
dataset
"""),
    code("""
result = asm_nb.evaluate(dataset, agents=agents, scorers=scorers, name="coding", store=store,
                         concurrency=4, progress=False)
result
"""),
    md("""
`.frame` has one row per item x agent x repeat (output, every score with its pass/fail and
explanation, tokens, cost, duration, run id, diff stats); `.summary` one row per agent (mean
score with a 95% confidence interval, pass rate, cost in total and per item, p50/p95 duration).
"""),
    code("""
result.frame[["item_id", "agent", "status", "passed", "score", "files_changed", "why_item_test",
              "why_files_unchanged"]]
"""),
    code("""
result.summary[["agent", "runs", "mean_score", "pass_rate", "errors", "cost_usd"]]
"""),
    code("""
result.compare(baseline="careful").frame[["item_id", "agent", "baseline_score", "score", "delta", "outcome"]]
"""),
    md("""
## The matrix

Rows are items, columns agents; each cell has the output, one badge per scorer (hover for the
explanation) and the cost. Click a cell to open its run card; tick *only disagreements* to hide
the items where the agents agree. It is plain HTML, so it stays readable in the saved notebook.
"""),
    code("""
result.matrix(deterministic=True)
"""),
    md("""
## Why did they differ? Run diff

`asm_nb.diff_runs(a, b)` (or `%asm diff RUN_A RUN_B`) aligns the two tool-call sequences, marks
the first divergence and shows output, token, cost, duration and workspace deltas.
"""),
    code("""
ids = result.frame.set_index(["item_id", "agent"])["run_id"]
diff = asm_nb.diff_runs(ids["empty-input", "careful"], ids["empty-input", "hasty"], store=store)
diff.first_divergence, diff.deltas["workspace"]["only_a"], diff.deltas["workspace"]["only_b"]
"""),
    md("""
## Resume, record, replay

Scores live on the runs in the store under the eval's name. Running the same eval again skips
every item x agent x repeat already scored (after a kernel restart too) and runs only the rest.
"""),
    code("""
again = asm_nb.evaluate(dataset, agents=agents, scorers=scorers, name="coding", store=store, progress=False)
bool(again.frame["resumed"].all()), list(again.frame["run_id"]) == list(result.frame["run_id"])
"""),
    md("""
`cassettes=DIR` records every run as a cassette (with the files it changed); with
`record="none"` the eval replays them without calling any provider: the way to check an eval
offline in CI.
"""),
    code("""
cassettes = base / "cassettes"
asm_nb.evaluate(dataset, agents=agents, scorers=scorers, name="coding-rec", store=store,
                cassettes=cassettes, progress=False)
replayed = asm_nb.evaluate(dataset, agents=agents, scorers=scorers, name="coding-replay", store=store,
                           cassettes=cassettes, record="none", progress=False)
replayed.summary[["agent", "mean_score", "pass_rate"]]
"""),
    md("""
## Evals as data, and in tests

`asm_nb.frames.evals(store)` and `asm_nb.frames.scores(store)` read the stored results like any
other frame; `asm_nb.testing.expect(run)` asserts on one run in pytest; `asm eval spec.toml`
runs an eval from a spec file and exits non-zero when a threshold fails.
"""),
    code("""
asm_nb.frames.evals(store)[["eval", "agent", "runs", "pass_rate", "mean_score"]]
"""),
    code("""
from asm_nb.testing import expect

import shutil
scratch = shutil.copytree(project, base / "scratch")
run = asm_nb.run_once("python3 agent.py strip-cells", provider="shell", store=store,
                      cwd=str(scratch), options={"env": {"STRATEGY": "careful"}})
expect(run).succeeded().called("bash").never_called("edit_file").max_tool_calls(1).output_contains("done")
"ok"
"""),
]


NOTEBOOKS["07_history.ipynb"] = [
    md("""
# Your agent history as data

Claude Code and Codex keep every session on disk as JSON lines (`~/.claude/projects/…` and
`~/.codex/sessions/…`). `asm_nb.import_history` (or `asm import claude-code|codex` in a terminal)
loads them into a store: one session per log file, one run per prompt, normalized events
(messages, tool calls, one `token_usage_updated` per billed model call) and the cost of each run,
priced with the pricing table whose version is recorded on the run. Importing again reads only
what the CLIs appended since.

This notebook runs **offline** on sample logs written in the real formats by
`asm_nb.testing.history_logs`. On your machine, leave out `path=` to read your own history.
"""),
    code("""
import pathlib, tempfile
import asm_nb
from asm_nb.testing.history_logs import write_claude_code_logs, write_codex_logs

work = pathlib.Path(tempfile.mkdtemp(prefix="asm-history-"))
claude_logs = write_claude_code_logs(work / "claude", lines=2000, sessions=12, projects=3, seed=7)
codex_logs = write_codex_logs(work / "codex", lines=800, sessions=4, seed=7)
claude_logs["lines"], codex_logs["lines"]
"""),
    md("""
## Import

`import_history(source, store, since=..., project=..., path=...)` returns a report; lines it
cannot read (a torn last line, a record type it does not know) are skipped with a warning and
listed in `report.warnings`, never fatal.
"""),
    code("""
store = asm_nb.open_store(str(work / "store"))
claude = asm_nb.import_history("claude-code", store, path=work / "claude")
codex = asm_nb.import_history("codex", store, path=work / "codex")
{k: (claude.to_dict()[k], codex.to_dict()[k]) for k in ("files_read", "lines_read", "sessions_new", "runs",
                                                         "events", "usage_records", "warning_count")}
"""),
    md("""
Importing again adds nothing: each file's position is kept with its session in the store, and
an unchanged file is not even opened.
"""),
    code("""
again = asm_nb.import_history("claude-code", store, path=work / "claude")
again.files_unchanged, again.events
"""),
    md("""
## Usage by day and by model

`asm_nb.frames.usage(store, by=...)` sums the per-call records by `day`, `week`, `month`,
`session`, `project`, `model` or `block`. Its totals are the sums of the imported per-message
usage.
"""),
    code("""
by_day = asm_nb.frames.usage(store, by="day")
by_day.assign(day=by_day["day"].dt.date, cost_usd=by_day["cost_usd"].round(4))[
    ["day", "records", "models", "input_tokens", "output_tokens", "cache_read_tokens", "cost_usd"]]
"""),
    code("""
by_model = asm_nb.frames.usage(store, by="model")
by_model.assign(cost_usd=by_model["cost_usd"].round(4))[
    ["model", "records", "sessions", "input_tokens", "output_tokens", "cache_read_tokens",
     "cache_creation_tokens", "cost_usd"]]
"""),
    code("""
# the same totals as the runs the import made (and as the logs themselves)
runs = asm_nb.frames.runs(store)
int(by_model["output_tokens"].sum()), int(runs["output_tokens"].sum()), \\
    claude_logs["usage"]["output_tokens"] + codex_logs["usage"]["output_tokens"]
"""),
    md("""
## Five-hour windows

Claude plans meter usage in rolling 5-hour windows. `by="block"` cuts the records the same way
(as ccusage's `blocks`): a window starts at the hour of its first message and lasts five hours.
"""),
    code("""
blocks = asm_nb.frames.usage(store, by="block", source="claude-code")
len(blocks), int(blocks["records"].sum()), round(float(blocks["cost_usd"].max()), 4)
"""),
    md("""
## Everything else works on it too

The imported sessions are ordinary sessions: `frames.runs`, `frames.tool_calls`,
`frames.transcript`, the dashboard (`asm_nb.dashboard(store)`) and `asm usage` in a terminal
read them like the runs made here.
"""),
    code("""
tools = asm_nb.frames.tool_calls(store)
tools.groupby("tool_name", observed=True).size().sort_values(ascending=False)
"""),
]


def _sanitize_rules() -> list[tuple[re.Pattern, str]]:
    """The regex replacements of sanitize.cfg, in order, read as nbval reads them (the text after
    ``replace: `` verbatim: configparser would strip a leading space nbval keeps)."""
    text = (HERE / "sanitize.cfg").read_text()
    return [(re.compile(rx), rep) for rx, rep in re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, re.MULTILINE)]


def _sanitize(value, rules):
    """``value`` with every string (recursively) passed through ``rules``: the written notebook is
    the same on every rebuild, so a rebuild only changes what really changed. In a ``text/html``
    output the placeholders are written escaped (``&lt;RUN_ID&gt;``): raw, a reader's browser
    would parse ``<RUN_ID>`` as an unknown tag and show nothing (sanitize.cfg's last rule maps them
    back for nbval's comparison)."""
    if isinstance(value, str):
        for rx, rep in rules:
            value = rx.sub(rep, value)
        return value
    if isinstance(value, list):
        return [_sanitize(v, rules) for v in value]
    if isinstance(value, dict):
        return type(value)((k, _sanitize(v, _html_rules(rules) if k == "text/html" else rules))
                           for k, v in value.items())
    return value


def _html_rules(rules):
    """``rules`` with HTML-escaped replacements (the mapping-back rule becomes the identity)."""
    return [(rx, html.escape(rep, quote=False)) for rx, rep in rules]


def build(name: str, cells: list[tuple[str, str]], execute: bool = True) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        if kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(src))
        else:
            cell = nbformat.v4.new_code_cell(src)
            if kind == "code-ignore-output":
                cell.metadata["tags"] = ["nbval-ignore-output"]
            nb.cells.append(cell)
    if execute:
        os.environ.update(ASM_DEFAULT_RENDERER="card", ASM_DETERMINISTIC_DISPLAY="1", ASM_CHART_IMAGES="1")
        # the temporary stores and repositories the notebook makes go to one scratch folder,
        # removed afterwards (sanitize.cfg maps its paths to <STORE>)
        scratch = tempfile.mkdtemp(prefix="asm-build-")
        saved = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = scratch
        try:
            NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}},
                           allow_errors=os.environ.get("ASM_BUILD_ALLOW_ERRORS") == "1",
                           store_widget_state=False).execute()  # no widget state (and no inlined plotly.js) in git
        finally:
            if saved is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = saved
            shutil.rmtree(scratch, ignore_errors=True)
    rules = _sanitize_rules()
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"c{i:02d}"
        cell.metadata.pop("execution", None)  # run timestamps: churn in git, nothing to check
        for out in cell.get("outputs", []):  # run ids, times, temp paths: what nbval sanitizes anyway
            for key in ("text", "data", "metadata"):
                if key in out:
                    out[key] = _sanitize(out[key], rules)
    nbformat.write(nb, HERE / name)
    print("wrote", HERE / name)


if __name__ == "__main__":
    prefix = sys.argv[1] if len(sys.argv) > 1 else ""
    for name, cells in NOTEBOOKS.items():
        if name.startswith(prefix):
            build(name, cells)
