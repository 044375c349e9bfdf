"""The committed notebooks read well without Jupyter: each exports with nbconvert to HTML that
shows the rich outputs saved in it (the run cards of %%asm cells, the diff viewer, the dashboard
snapshot, chart images), and none shows a widget repr, a widget model reference or a widget
error (what a saved live widget used to leave)."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

nbconvert = pytest.importorskip("nbconvert")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("[0-9]*.ipynb"))
WIDGET_REPRS = re.compile(r"\b(VBox|HBox|GridBox|HTML|Output|Button|Select|SelectMultiple)\(\s*(children|value|layout|"
                          r"outputs|options|description)=")

# what each notebook must show once exported (a class of its saved rich outputs, and how many)
EXPECTED = {
    "01_quickstart.ipynb": {"cards": 3},
    "02_providers_and_sessions.ipynb": {"cards": 5},
    "03_cost_analysis.ipynb": {"images": 4},
    "04_workspace_diffs.ipynb": {"cards": 2, "diffs": 1},
    "05_dashboard.ipynb": {"dashboards": 1},
}


def _export(name: str) -> tuple[dict, str]:
    from nbconvert import HTMLExporter

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    return nb, body


def test_every_committed_notebook_is_listed():
    assert set(EXPECTED) <= set(ALL), sorted(set(EXPECTED) - set(ALL))


@pytest.mark.parametrize("name", ALL)
def test_notebook_exports_without_widget_leftovers(name):
    nb, body = _export(name)
    saved = json.dumps(nb)
    assert "application/vnd.jupyter.widget-view+json" not in saved, "a widget view was saved"
    assert "Error displaying widget" not in body and "model not found" not in body
    m = WIDGET_REPRS.search(body)
    assert m is None, body[max(0, m.start() - 200):m.end() + 200]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_exports_its_rich_outputs(name):
    nb, body = _export(name)
    want = EXPECTED[name]
    if "cards" in want:  # each %%asm cell saved as its card: the run bundle, drawn as HTML
        asm_cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%asm")]
        assert len(asm_cells) == want["cards"]
        for cell in asm_cells:
            kinds = {k for o in cell.outputs for k in o.get("data", {})}
            assert {"application/vnd.asm.run+json", "text/html", "text/plain"} <= kinds, (cell.source, kinds)
        assert body.count('<div class="asm-run">') >= want["cards"]
        assert "asm-tool" in body  # tool rows in plain language
    if "images" in want:  # the charts: a static image next to the plotly JSON
        imgs = re.findall(r'<img[^>]+src="data:image/png;base64,[A-Za-z0-9+/=]{500,}', body)
        assert len(imgs) >= want["images"], len(imgs)
    if "diffs" in want:
        assert body.count('class="asm-diffview') >= want["diffs"]
    if "dashboards" in want:
        assert body.count("asm-dash-static") >= want["dashboards"]
        assert re.search(r'<table class="asm-grid">.*?<tbody><tr>', body, re.S)
