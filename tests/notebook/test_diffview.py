"""The workspace diff viewer: deterministic text, escaped coloured HTML, collapsed long/binary
diffs, the ipywidgets view, and ``%asm diff RUN`` through a real IPython shell."""

from __future__ import annotations

import subprocess

import pytest

import asm_nb
from asm_nb.core.errors import AsmError
from asm_nb.notebook.diffview import DiffView, split_patch
from asm_nb.stores.local import LocalStore


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@e", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(repo)})


@pytest.fixture
def changed_run(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "page.html").write_text("<b>old</b>\n")
    (repo / "gone.txt").write_text("bye\n")
    (repo / "long.txt").write_text("".join(f"{i}\n" for i in range(400)))
    (repo / "img.bin").write_bytes(b"\x00\x01")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "i")
    store = LocalStore(tmp_path / "store")
    cmd = ("printf '<script>alert(1)</script>\\n' > page.html && rm gone.txt && seq 1000 1399 > long.txt && "
           "printf '\\002\\000' > img.bin && mkdir -p sub && printf 'new file\\n' > 'sub/with space.txt'")
    r = asm_nb.run_once(cmd, provider="shell", cwd=str(repo), snapshot=True, store=store)
    assert r.ok, r.error
    yield store, r
    store.close()


def test_text_is_deterministic_and_lists_stats(changed_run):
    store, r = changed_run
    view = DiffView.from_run(r.run_id, store)
    text = view.text()
    assert text == DiffView.from_run(r.run_id, store).text()
    lines = text.splitlines()
    assert lines[0] == "5 files changed, +402 -402 (git)"
    assert "+<script>alert(1)</script>" in text
    assert r.run_id not in text  # no ids: stable under nbval
    assert "--- sub/with space.txt ---" in text


def test_file_table_rows(changed_run):
    store, r = changed_run
    rows = [ln.split() for ln in DiffView.from_run(r.run_id, store).text().splitlines()[1:6]]
    assert [(x[0], x[-1]) for x in rows] == [("D", "-1"), ("M", "binary"), ("M", "-400"), ("M", "-1"), ("A", "-0")]


def test_html_escapes_colours_and_collapses(changed_run):
    store, r = changed_run
    view = DiffView.from_run(r.run_id, store)
    page = view.html()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # added / deleted lines tinted from the theme's success / error colours (dark themes too)
    assert "background:color-mix(in srgb,var(--jp-success-color1,#1a7f37) 16%,transparent)" in page
    assert "background:color-mix(in srgb,var(--jp-error-color1,#cf222e) 16%,transparent)" in page
    assert "#e6ffec" not in page and "#ffebe9" not in page  # no hard-coded light backgrounds
    # small text diffs open, the 800-line one and the binary one closed
    assert '<details open><summary style="font-family:monospace">page.html' in page
    assert '<details><summary style="font-family:monospace">long.txt' in page
    assert '<details><summary style="font-family:monospace">img.bin' in page
    small = DiffView.from_run(r.run_id, store, max_lines=10).html()
    assert "more lines" in small


def test_widget_view(changed_run):
    pytest.importorskip("ipywidgets")
    store, r = changed_run
    w = DiffView.from_run(r.run_id, store).widget()
    accordions = [c for c in w.children if type(c).__name__ == "Accordion"]
    assert len(accordions) == 5
    titles = {a.get_title(0).split()[1]: a.selected_index for a in accordions}
    assert titles["page.html"] == 0 and titles["long.txt"] is None and titles["img.bin"] is None
    assert "&lt;script&gt;" in accordions[[a.get_title(0).split()[1] for a in accordions].index("page.html")].children[0].value


def test_split_patch_with_spaces_and_renames():
    patch = ("diff --git a/x y.txt b/x y.txt\n--- a/x y.txt\n+++ b/x y.txt\n@@ -1 +1 @@\n-a\n+b\n"
             "diff --git a/old b/new\nsimilarity index 100%\nrename from old\nrename to new\n")
    parts = split_patch(patch, [{"path": "x y.txt"}, {"path": "new", "old_path": "old"}])
    assert list(parts) == ["x y.txt", "new"] and parts["new"][-1] == "rename to new"
    assert split_patch(None) == {}


def test_view_without_changes_and_missing_record():
    from asm_nb.stores.memory import InMemoryStore

    store = InMemoryStore()
    r = asm_nb.run_once("echo hi", provider="shell", store=store)
    with pytest.raises(AsmError) as e:
        DiffView.from_run(r.run_id, store)
    assert "snapshot=True" in e.value.message
    assert DiffView().text() == "0 files changed, +0 -0\n  (no changes)\n"


def test_asm_diff_magic(changed_run, tmp_path, capsys):
    pytest.importorskip("IPython")
    from IPython.testing.globalipapp import start_ipython

    store, r = changed_run
    from IPython import get_ipython

    ip = start_ipython() or get_ipython()  # a process-wide singleton
    ip.run_line_magic("load_ext", "asm_nb")
    capsys.readouterr()
    ip.run_line_magic("asm", f"diff {r.run_id} --store {store.root} --text")
    out = capsys.readouterr().out
    assert out == DiffView.from_run(r.run_id, store).text()
    view = ip.run_line_magic("asm", f"diff {r.run_id} --store {store.root}")
    assert isinstance(view, DiffView)  # not a kernel: the rich/plain object
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"] == out and "text/html" in bundle
