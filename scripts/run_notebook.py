"""Execute a notebook headless (the quickstart's runner) and fail loudly.

    python scripts/run_notebook.py NOTEBOOK [OUT_DIR]

Runs every cell in a fresh kernel of this Python (cwd = the notebook's folder), prints each code
cell and its text output, and writes OUT_DIR/<name>.executed.ipynb and an HTML copy (OUT_DIR
defaults to build/). When a cell fails it prints that cell, its error and traceback to stderr,
still writes the partial notebook (the outputs up to the failure) and exits with status 1.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import sys
import tempfile

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _show(source: str) -> str:
    return ">>> " + source.replace("\n", "\n... ")


def _text(out: dict) -> str:
    if out.get("output_type") == "stream":
        return out.get("text", "")
    data = out.get("data") or {}
    if data.get("text/plain"):
        return data["text/plain"] + "\n"
    return ""


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    src = pathlib.Path(argv[0]).resolve()
    out_dir = pathlib.Path(argv[1] if len(argv) > 1 else "build").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(src.parent)}})
    failure: BaseException | None = None
    # temporary folders the notebook makes (its demo store) go to one scratch folder, removed after
    scratch = tempfile.mkdtemp(prefix="asm-notebook-")
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = scratch
    try:
        client.execute()
    except CellExecutionError as exc:
        failure = exc
    except Exception as exc:  # kernel died, timeout, no kernel: still one clear report
        failure = exc
    finally:
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved
        shutil.rmtree(scratch, ignore_errors=True)

    executed = out_dir / f"{src.stem}.executed.ipynb"
    nbformat.write(nb, executed)
    try:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nb)
        (out_dir / f"{src.stem}.executed.html").write_text(body, encoding="utf-8")
    except Exception as exc:  # the HTML copy is a convenience; the run's verdict does not depend on it
        print(f"run_notebook: no HTML copy ({type(exc).__name__}: {exc})", file=sys.stderr)

    failed_at = None
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            failed_at = (i + 1, cell, errors[0])
            break
        print("\n" + _show(cell.source))
        for out in cell.get("outputs", []):
            print(_text(out), end="")

    if failure is None and failed_at is None:
        print(f"\nrun_notebook: {src.name} ran: {executed}, {executed.with_suffix('.html')}")
        return 0
    print(f"\nrun_notebook: {src.name} FAILED", file=sys.stderr)
    if failed_at is not None:
        n, cell, err = failed_at
        print(f"code cell {n}:\n{_show(cell.source)}", file=sys.stderr)
        print(ANSI.sub("", "\n".join(err.get("traceback") or [])), file=sys.stderr)
        print(f"{err.get('ename')}: {err.get('evalue')}", file=sys.stderr)
    else:
        print(f"{type(failure).__name__}: {failure}", file=sys.stderr)
    print(f"(partial notebook: {executed})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
