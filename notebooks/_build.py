"""Build (and execute) the notebooks from their cell sources, so outputs in git are the
deterministic text renderings that nbval checks.

    python notebooks/_build.py            # rebuild every notebook, executing it
    python notebooks/_build.py 01         # only notebooks whose name starts with 01
"""

from __future__ import annotations

import os
import pathlib
import sys

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
shows as a live widget (text, tool calls with spinners, tokens, cost and a Cancel button); in a
terminal, nbconvert or CI it renders as plain text, as below.
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


def build(name: str, cells: list[tuple[str, str]], execute: bool = True) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src))
    if execute:
        os.environ["ASM_DEFAULT_RENDERER"] = "studio"
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"c{i:02d}"
    nbformat.write(nb, HERE / name)
    print("wrote", HERE / name)


if __name__ == "__main__":
    prefix = sys.argv[1] if len(sys.argv) > 1 else ""
    for name, cells in NOTEBOOKS.items():
        if name.startswith(prefix):
            build(name, cells)
