"""Fixtures for workspace tests: real temporary git repositories and plain folders."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

_GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1"}


def run_git(repo: Path, *args: str, input: bytes | None = None, check: bool = True) -> str:
    """Run git in ``repo`` with a fixed identity; stdout as text."""
    env = {**os.environ, **_GIT_ENV, "HOME": str(repo.parent)}
    env.pop("GIT_INDEX_FILE", None)
    proc = subprocess.run(["git", *args], cwd=repo, env=env, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def write(root: Path, rel: str, data: str | bytes) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def tree_bytes(root: Path, *, skip_git: bool = True) -> dict[str, bytes]:
    """Every file under ``root`` → its bytes (``.git`` left out)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if skip_git and (rel == ".git" or rel.startswith(".git/")):
            continue
        if p.is_file() and not p.is_symlink():
            out[rel] = p.read_bytes()
    return out


def file_sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A repo with one commit: file.txt ("base\\n"), src/app.py, docs/guide/intro.md, logo.bin
    (binary), old_name.txt, and a .gitignore ignoring *.log."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run_git(repo, "init", "-q", "-b", "main")
    write(repo, "file.txt", "base\n")
    write(repo, "src/app.py", "".join(f"line {i}\n" for i in range(1, 21)))
    write(repo, "docs/guide/intro.md", "# Intro\n\nhello\n")
    write(repo, "logo.bin", bytes(range(256)) * 4)
    write(repo, "old_name.txt", "".join(f"stable content line {i}\n" for i in range(30)))
    write(repo, ".gitignore", "*.log\n")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def plain_dir(tmp_path: Path) -> Path:
    """A folder that is not a git repository."""
    d = tmp_path / "plain"
    d.mkdir()
    write(d, "a.txt", "alpha\nbeta\n")
    write(d, "nested/deep/b.txt", "bee\n")
    write(d, ".hidden", "dot file\n")
    return d
