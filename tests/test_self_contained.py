"""The repository stands alone: tests read only files inside it (the conftest guard refuses a
sibling folder such as ``../team-material``), and the provider fixtures are the repository's own."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_the_guard_refuses_a_sibling_folder_and_fails_the_test(tmp_path, read_guard):
    guard_cls, slot = read_guard
    repo = tmp_path / "checkout"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "inside.txt").write_text("ok")
    (tmp_path / "sibling").mkdir()
    (tmp_path / "sibling" / "fixture.json").write_text("{}")
    guard = guard_cls(repo, allowed=())
    slot[0] = guard
    assert (repo / "tests" / "inside.txt").read_text() == "ok"  # inside: allowed
    with pytest.raises(PermissionError, match="outside the repository"):
        (tmp_path / "sibling" / "fixture.json").read_text()
    with pytest.raises(PermissionError):
        os.listdir(tmp_path / "sibling")
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        with pytest.raises(PermissionError):
            open("../sibling/fixture.json").close()  # a relative path is resolved first
    finally:
        os.chdir(cwd)
    assert len(guard.violations) == 3 and "sibling/fixture.json" in guard.violations[0]
    guard.violations.clear()  # this test provoked them on purpose


def test_the_guard_allows_system_temp_and_prefix_roots(tmp_path, read_guard):
    guard_cls, _ = read_guard
    guard = guard_cls(tmp_path / "checkout", allowed=(str(tmp_path / "venv"),))
    assert guard.outside(str(tmp_path / "sibling" / "x"))
    assert guard.outside(os.fsencode(tmp_path / "other-checkout"))
    assert not guard.outside(str(tmp_path / "venv" / "lib" / "x.py"))
    assert not guard.outside(str(tmp_path / "checkout" / "a"))
    assert not guard.outside(str(tmp_path / "checkout"))
    assert not guard.outside("/etc/hosts") and not guard.outside("/usr/lib/python3/x.py")
    assert not guard.outside(3)  # a file descriptor
    assert not guard_cls(pathlib.Path("/checkout"), allowed=()).outside("/etc/hosts")  # repo at /: off
    nested = guard_cls(pathlib.Path("/work/wt/clone"), allowed=())
    assert nested.outside("/work/sibling/fixtures/providers/codex/manifest.json")  # beyond the parent
    assert nested.outside("/work/main/tests/fixtures") and not nested.outside("/work/wt/clone/tests")
    in_home = guard_cls(pathlib.Path("/home/me/src/asm_nb"), allowed=(), home="/home/me")
    assert in_home.outside("/home/me/src/sibling/x") and in_home.outside("/home/me/notes.txt")
    assert not in_home.outside("/home/me/.jupyter/runtime/kernel-1.json")
    elsewhere = guard_cls(pathlib.Path("/work/asm_nb"), allowed=(), home="/root")
    assert not elsewhere.outside("/root/notes.txt") and elsewhere.outside("/work/sibling/x")


def test_the_live_guard_watches_this_repository(read_guard):
    _, slot = read_guard
    assert slot[0].repo == str(REPO) + "/"


def test_provider_fixtures_are_in_the_repository(fixtures_dir):
    assert fixtures_dir.resolve().is_relative_to(REPO)
    for provider in ("anthropic", "claude_code", "codex", "amp"):
        manifest = json.loads((fixtures_dir / provider / "manifest.json").read_text())
        for entry in manifest["fixtures"]:
            names = entry["file"] if isinstance(entry["file"], list) else [entry["file"]]
            for name in names:
                assert (fixtures_dir / provider / name).is_file(), (provider, name)


def test_code_and_docs_point_to_docs_not_to_an_outside_spec():
    """Comments cite docs/ pages in plain words; nothing names section numbers of an outside
    document or a folder beside the checkout (the patterns are built so this file passes)."""
    import re

    bad = re.compile("|".join([r"spec\s+part\s+\d", "\u00a7", r"(?<![\w.-])\.\./" + "shared", "shared" + "/fixtures",
                               r"\bspec\s+0\d\b"]), re.I)
    hits = []
    for top in ("asm_nb", "tests", "docs", "scripts", "README.md"):
        root = REPO / top
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            if path.suffix in {".pyc", ".png", ".whl"} or {"node_modules", "labextension"} & set(path.parts):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if bad.search(line):
                    hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits[:20])
