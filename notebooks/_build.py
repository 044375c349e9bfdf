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
