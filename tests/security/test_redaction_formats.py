"""Issue 18 item 5: redaction covers the secret formats people leak (the formats of the gitleaks,
trufflehog and detect-secrets rule sets, see ``secret_formats``), in every channel that reaches
disk: a command's stdout and stderr, the prompt, tool input and output, the run record, plus
session name, metadata and tags (item 6); and ordinary text is left alone (items 5 and 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from asm_nb import run_once
from asm_nb.persistence.redaction import default_patterns, scan_text
from asm_nb.testing.mock import MockAdapter

from .secret_formats import BENIGN, FORMATS

ON = {"enabled": True}
NAMES = [f[0] for f in FORMATS]


def test_at_least_40_distinct_formats():
    assert len(set(NAMES)) == len(NAMES) >= 40
    assert len({f[2] for f in FORMATS}) == len(FORMATS)


@pytest.mark.parametrize("name,text,secret", FORMATS, ids=NAMES)
def test_each_format_is_redacted_in_text(name, text, secret):
    out, n = scan_text(text, ON)
    assert n >= 1 and secret not in out, out
    for line in secret.splitlines():
        assert line not in out
        # all of it: no 12-character piece survives (a pattern cut short by a character it does
        # not know, with a generic pattern catching the rest, leaves pieces)
        pieces = [line[i:i + 12] for i in range(0, max(len(line) - 11, 1))]
        assert not [p for p in pieces if p in out], out


@pytest.mark.parametrize("text", BENIGN)
def test_ordinary_text_and_hints_are_not_secrets(text):
    assert scan_text(text, ON) == (text, 0)


def test_every_default_pattern_has_a_real_format():
    hit = set()
    for _, text, _ in FORMATS:
        out, _ = scan_text(text, {"enabled": True, "replacement": "categorized"})
        hit.update(part.split("]")[0] for part in out.split("[REDACTED:")[1:])
    missing = {c for c, _ in default_patterns()} - hit
    assert not missing, missing


def test_docs_name_the_source_of_every_default_pattern():
    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "event-model.md").read_text()
    section = doc.split("#### Where the default patterns come from", 1)[1].split("\n### ", 1)[0]
    cats = [c for c, _ in default_patterns()]
    listed = {c for c in cats if f"`{c}`" in section or (c.startswith("github_") and "`github_*`" in section)}
    assert set(cats) - listed == set()
    count = f"{len(cats)} patterns"
    assert count in doc and count in (root / "README.md").read_text()


# -- channels --------------------------------------------------------------------------------------

def _disk(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


def _leaks(text: str) -> list[str]:
    return [name for name, _, secret in FORMATS if any(line in text for line in secret.splitlines() if line)]


def _nest(depth: int, leaf):
    for i in range(depth):
        leaf = {f"k{i}": [leaf]} if i % 3 == 0 else {f"k{i}": leaf}
    return leaf


ALL = "\n".join(t for _, t, _ in FORMATS)


def test_stdout_and_stderr_of_a_command_are_redacted_on_disk(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "leak.txt").write_text(ALL + "\n")
    store = tmp_path / "store"
    r = run_once("cat leak.txt; cat leak.txt >&2", provider="shell", store=str(store), cwd=str(ws))
    assert r.status == "completed"
    assert _leaks(_disk(store)) == []


def test_prompt_tool_input_output_session_metadata_tags_are_redacted_on_disk(tmp_path):
    store = tmp_path / "store"
    adapter = MockAdapter(tool_calls=[{"name": "bash", "input": {"command": ALL, "nested": {"env": ALL}},
                                       "output": ALL}])
    secret_name = FORMATS[0][1]
    r = run_once(ALL, provider=adapter, store=str(store), session=secret_name,
                 metadata={"note": ALL, "deep": _nest(12, ALL)},
                 tags=[t for _, t, _ in FORMATS[:5]])
    assert r.status == "completed"
    assert _leaks(_disk(store)) == []
