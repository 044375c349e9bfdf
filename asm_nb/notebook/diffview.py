"""The workspace diff viewer and ``%asm diff RUN``.

``DiffView`` shows what a run changed in its workspace (recorded with ``snapshot=True``): a file
list with change kind and line stats, and per file a coloured inline diff (HTML-escaped); a file
whose diff is long (``collapse_lines``) or binary starts collapsed, and very long diffs are cut
at ``max_lines`` per file. Three renderings of the same data:

- ``text()`` — deterministic plain text (no ids, refs or times), the ``text/plain`` fallback;
- ``html()`` — static HTML with ``<details>`` per file;
- ``widget()`` — ipywidgets: a header, and one ``Accordion`` per file (imported on demand).

Importing this module registers ``%asm diff RUN [RUN_B] [--store PATH|URL] [--text]`` (two runs: the
side-by-side run diff of ``evalview``) with ``asm_nb.notebook.magics.register_line_command``.
"""

from __future__ import annotations

import argparse
import html
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..core.errors import AsmError

__all__ = ["DiffView", "diff_command", "split_patch"]

_KIND_LETTER = {"added": "A", "modified": "M", "deleted": "D", "renamed": "R"}
# Colours come from JupyterLab's theme variables (light and dark alike), with GitHub-like
# fallbacks where those variables do not exist (nbviewer, a plain HTML export).
_OK, _WARN, _ERR, _INFO = ("var(--jp-success-color1,#1a7f37)", "var(--jp-warn-color1,#9a6700)",
                           "var(--jp-error-color1,#cf222e)", "var(--jp-info-color1,#0969da)")
_MUTED = "var(--jp-ui-font-color2,#57606a)"
_KIND_COLOUR = {"added": _OK, "modified": _WARN, "deleted": _ERR, "renamed": _INFO}


def _tint(colour: str, pct: int) -> str:
    return f"color-mix(in srgb,{colour} {pct}%,transparent)"


_LINE_STYLE = {"+": f"background:{_tint(_OK, 16)}", "-": f"background:{_tint(_ERR, 16)}",
               "@": f"background:{_tint(_INFO, 12)};color:{_MUTED}", "h": f"color:{_MUTED};font-weight:600",
               " ": ""}


def split_patch(patch: str | None, files: Sequence[Mapping[str, Any]] = ()) -> dict[str, list[str]]:
    """Split a multi-file unified patch into ``{path: lines}`` (the new path for renames).

    Sections are matched to ``files`` by their exact ``diff --git a/<old> b/<new>`` header (so
    paths with spaces work); other sections fall back to the text after `` b/``."""
    if not patch:
        return {}
    headers = {}
    for f in files:
        new = str(f.get("path"))
        old = f.get("old_path") or new
        headers[f"diff --git a/{old} b/{new}"] = new
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            path = headers.get(line)
            if path is None:
                path = line.rsplit(" b/", 1)[-1] if " b/" in line else line[len("diff --git "):]
            current = out.setdefault(path, [])
        if current is not None:
            current.append(line)
    return out


@dataclass
class DiffView:
    """What a run changed: ``files`` (dicts with path, change, old_path, insertions, deletions,
    binary), the ``patch`` text (or None), and summary fields."""

    files: list = field(default_factory=list)
    patch: str | None = None
    backend: str | None = None
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    run_id: str | None = None
    note: str | None = None
    collapse_lines: int = 200
    max_lines: int = 2000

    # ------------------------------------------------------------------------------ building
    @classmethod
    def from_run(cls, run_id: str, store: Any = None, **opts: Any) -> "DiffView":
        """Load the run's workspace record and its patch (from the artifact store when offloaded)."""
        from ..stores import resolve_store
        from ..workspace.frames import load_patch
        from ..workspace.rollback import workspace_record

        st = resolve_store(store)
        ws = workspace_record(st.get_run(run_id))
        if ws is None:
            raise AsmError("invalid_operation", f"Run {run_id} recorded no workspace diff; run it with "
                                                "snapshot=True (%%asm --snapshot)")
        note = None
        try:
            patch = load_patch(run_id, st)
        except AsmError as err:
            patch, note = None, f"patch unavailable: {err.message}"
        if patch is None and note is None:
            if ws.get("patch_truncated"):
                note = f"patch not kept: {ws.get('patch_bytes')} bytes is over max_patch_bytes"
            elif ws.get("backend") == "hash" and not ws.get("has_patch"):
                note = "no patch: the folder is not a git repository and contents were not kept"
        return cls(files=[dict(f) for f in ws.get("files") or []], patch=patch, backend=ws.get("backend"),
                   files_changed=int(ws.get("files_changed") or 0), insertions=int(ws.get("insertions") or 0),
                   deletions=int(ws.get("deletions") or 0), run_id=run_id, note=note, **opts)

    @classmethod
    def from_diff(cls, diff: Any, **opts: Any) -> "DiffView":
        """From a ``asm_nb.workspace.Diff``."""
        return cls(files=[f.to_dict() for f in diff.files], patch=diff.patch, backend=diff.backend,
                   files_changed=diff.files_changed, insertions=diff.insertions, deletions=diff.deletions, **opts)

    # ------------------------------------------------------------------------------ pieces
    def _sections(self) -> dict[str, list[str]]:
        return split_patch(self.patch, self.files)

    @staticmethod
    def _stats(f: Mapping[str, Any]) -> str:
        if f.get("binary"):
            return "binary"
        ins, dels = f.get("insertions"), f.get("deletions")
        if ins is None and dels is None:
            return "?"
        return f"+{ins or 0} -{dels or 0}"

    @staticmethod
    def _name(f: Mapping[str, Any]) -> str:
        if f.get("old_path"):
            return f"{f['old_path']} -> {f['path']}"
        return str(f.get("path"))

    def _summary(self) -> str:
        n = self.files_changed
        s = f"{n} file{'s' if n != 1 else ''} changed, +{self.insertions} -{self.deletions}"
        return s + (f" ({self.backend})" if self.backend else "")

    def _visible(self, lines: list[str]) -> tuple[list[str], int]:
        if len(lines) <= self.max_lines:
            return lines, 0
        return lines[:self.max_lines], len(lines) - self.max_lines

    # ------------------------------------------------------------------------------ renderings
    def text(self) -> str:
        """Deterministic plain text: summary, file list with stats, then each file's diff."""
        out = [self._summary()]
        if not self.files:
            out.append("  (no changes)")
        width = max((len(self._name(f)) for f in self.files), default=0)
        for f in self.files:
            out.append(f"  {_KIND_LETTER.get(f.get('change'), '?')}  {self._name(f).ljust(width)}  {self._stats(f)}")
        if self.note:
            out.append(f"  note: {self.note}")
        sections = self._sections()
        for f in self.files:
            lines = sections.get(str(f.get("path")))
            if not lines:
                continue
            shown, hidden = self._visible(lines)
            out.append("")
            out.append(f"--- {self._name(f)} ---")
            out.extend(shown)
            if hidden:
                out.append(f"... {hidden} more lines")
        return "\n".join(out) + "\n"

    def _file_rows_html(self) -> str:
        rows = []
        for f in self.files:
            kind = str(f.get("change"))
            colour = _KIND_COLOUR.get(kind, _MUTED)
            cell = "padding:1px 12px 1px 0;border:none;background:none;line-height:1.4"
            rows.append(f'<tr><td style="{cell};color:{colour};font-weight:600">{_KIND_LETTER.get(kind, "?")}</td>'
                        f'<td style="{cell};font-family:var(--jp-code-font-family,monospace);text-align:left">'
                        f'{html.escape(self._name(f))}</td>'
                        f'<td style="{cell};font-family:var(--jp-code-font-family,monospace);text-align:right;'
                        f'color:{_MUTED}">{html.escape(self._stats(f))}</td></tr>')
        return ('<table class="asm-diff-files" style="border-collapse:collapse;margin:4px 0">' + "".join(rows)
                + "</table>" if rows else "<div><i>no changes</i></div>")

    def file_html(self, lines: list[str]) -> str:
        """One file's diff as coloured, escaped HTML lines."""
        shown, hidden = self._visible(lines)
        parts = []
        for line in shown:
            key = line[:1]
            if line.startswith(("diff --git", "index ", "--- ", "+++ ", "new file", "deleted file", "rename ",
                                "similarity", "old mode", "new mode", "GIT binary", "Binary files")):
                key = "h"
            style = _LINE_STYLE.get(key, "")
            parts.append(f'<div style="{style};white-space:pre;padding:0 6px">{html.escape(line) or "&nbsp;"}</div>')
        if hidden:
            parts.append(f'<div style="color:{_MUTED}"><i>… {hidden} more lines</i></div>')
        return ('<div class="asm-diff" style="font-family:var(--jp-code-font-family,monospace);font-size:12px;'
                'line-height:1.4;overflow-x:auto;color:var(--jp-content-font-color1,inherit)">'
                + "".join(parts) + "</div>")

    def _collapsed(self, f: Mapping[str, Any], lines: list[str] | None) -> bool:
        return bool(f.get("binary")) or not lines or len(lines) > self.collapse_lines

    def html(self) -> str:
        """Static HTML: summary, file table, one ``<details>`` per file (long/binary ones closed)."""
        out = [f'<div class="asm-diffview" style="font-family:var(--jp-ui-font-family,system-ui,sans-serif);'
               f'font-size:13px;line-height:1.4"><div style="font-weight:600">{html.escape(self._summary())}</div>',
               self._file_rows_html()]
        if self.note:
            out.append(f'<div style="color:{_MUTED}"><i>{html.escape(self.note)}</i></div>')
        sections = self._sections()
        for f in self.files:
            lines = sections.get(str(f.get("path")))
            if not lines:
                continue
            opened = "" if self._collapsed(f, lines) else " open"
            out.append(f'<details{opened}><summary style="font-family:monospace">'
                       f'{html.escape(self._name(f))} <span style="color:{_MUTED}">{html.escape(self._stats(f))}'
                       f"</span></summary>{self.file_html(lines)}</details>")
        out.append("</div>")
        return "".join(out)

    def widget(self) -> Any:
        """An ipywidgets view: header + file table, then one Accordion per file (long or binary
        diffs start collapsed)."""
        import ipywidgets as W

        children: list[Any] = [W.HTML(f"<b>{html.escape(self._summary())}</b>"), W.HTML(self._file_rows_html())]
        if self.note:
            children.append(W.HTML(f"<i>{html.escape(self.note)}</i>"))
        sections = self._sections()
        for f in self.files:
            lines = sections.get(str(f.get("path")))
            if not lines:
                continue
            acc = W.Accordion(children=[W.HTML(self.file_html(lines))])
            acc.set_title(0, f"{_KIND_LETTER.get(f.get('change'), '?')}  {self._name(f)}   {self._stats(f)}")
            acc.selected_index = None if self._collapsed(f, lines) else 0
            children.append(acc)
        box = W.VBox(children)
        box.add_class("asm-diffview")
        return box

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict:
        return {"text/plain": self.text(), "text/html": self.html()}

    def __repr__(self) -> str:
        return f"<DiffView {self._summary()}>"


# ---------------------------------------------------------------------------------------------- magic
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # a one-line usage error instead of SystemExit
        from .magics import UsageError

        raise UsageError(f"{self.format_usage().strip()}\n{self.prog}: {message}")


def diff_command(magics: Any, args: list[str]) -> Any:
    """``%asm diff RUN [RUN_B] [--store PATH|URL] [--text]``: the workspace diff of a run (with
    ``RUN_B``: the two runs compared side by side, ``asm_nb.diff_runs``). Shows the widget
    in a Jupyter kernel with ipywidgets (``--text``: plain text), else the rich/plain view."""
    from .magics import UsageError

    p = _Parser(prog="%asm diff", add_help=False, description="Show what a run changed in its workspace.")
    p.add_argument("run_id")
    p.add_argument("run_b", nargs="?", help="a second run: compare the two runs (tool calls, output, deltas)")
    p.add_argument("--store", default=None)
    p.add_argument("--text", action="store_true")
    ns = p.parse_args(args)
    store = ns.store if ns.store is not None else _kernel_store(magics)
    if ns.run_b is not None:
        from .evalview import run_diff_command

        try:
            return run_diff_command(ns.run_id, ns.run_b, store, text=ns.text)
        except AsmError as err:
            raise UsageError(f"%asm diff: {err.message}") from None
    try:
        view = DiffView.from_run(ns.run_id, store)
    except AsmError as err:
        raise UsageError(f"%asm diff: {err.message}") from None
    if ns.text:
        print(view.text(), end="")
        return None
    # the static view in every front end: ``<details>`` per file is interactive enough, and a
    # saved notebook keeps it (a widget would reopen as "model not found")
    return view


def _kernel_store(magics: Any) -> Any:
    getter = getattr(magics, "_store", None)
    return getter() if callable(getter) else None


def _register() -> None:
    from .magics import register_line_command

    register_line_command("diff", diff_command)


_register()
