"""Benchmark: workspace snapshot + diff on a 20,000-file git work tree with 50 changed files,
against ``git status --porcelain`` + ``git diff`` on the same tree in the same run.

Run:  python tests/bench/workspace_diff.py [--files 20000] [--changed 50] [--repeat 5]

Target (workspace issue, docs/workspace.md): the ``after`` snapshot + diff (what a run adds once
it ends; the ``before`` snapshot was taken when it started) <= 2x the git baseline. Also shown:
one snapshot alone, the whole cycle (before + after + diff with patch), and the hash backend on
the same tree. Prints a table, then (last line) one JSON object with the figures.

Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from asm_nb.workspace import GitBackend, HashBackend  # noqa: E402

TARGET_RATIO = 2.0
_ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.com",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.com"}


def git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=repo, env=_ENV, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE).stdout


def make_tree(repo: Path, n_files: int, seed: int = 11) -> list[str]:
    """``n_files`` small source-like files in a two-level folder tree, committed."""
    rng = random.Random(seed)
    repo.mkdir()
    git(repo, "init", "-q")
    paths = []
    per_dir = 100
    old = time.time() - 3600  # old mtimes: no "racily clean" entries for either side
    for i in range(n_files):
        d = repo / f"pkg{i // (per_dir * 20):02d}" / f"mod{(i // per_dir) % 20:02d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        p = d / f"file{i:05d}.py"
        lines = [f"def f{i}_{k}(x):\n    return x * {rng.randint(1, 999)}\n" for k in range(rng.randint(3, 12))]
        p.write_text("".join(lines))
        os.utime(p, (old, old))
        paths.append(p.relative_to(repo).as_posix())
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tree")
    git(repo, "status", "--porcelain")  # settle the index's stat data once
    return paths


def change_files(repo: Path, paths: list[str], n: int, seed: int = 5) -> None:
    """``n`` changes: 70% modified, 15% new files, 15% deleted."""
    rng = random.Random(seed)
    picked = rng.sample(paths, n)
    for k, rel in enumerate(picked):
        p = repo / rel
        r = k % 20
        if r < 14:
            p.write_text(p.read_text() + f"# edit {k}\nVALUE_{k} = {k}\n")
        elif r < 17:
            (p.parent / f"new_{k}.py").write_text(f"NEW = {k}\n")
        else:
            p.unlink()


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--changed", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="asm-bench-ws-") as tmp:
        repo = Path(tmp) / "repo"
        t0 = time.perf_counter()
        paths = make_tree(repo, args.files)
        build_s = time.perf_counter() - t0
        be = GitBackend()
        before = be.take_snapshot(repo, label="before")
        change_files(repo, paths, args.changed)

        def baseline() -> None:
            git(repo, "status", "--porcelain")
            git(repo, "diff")

        def after_and_diff() -> None:
            after = be.take_snapshot(repo, label="after")
            d = be.diff(before, after, capture_patch=True)
            assert d.files_changed == args.changed, d.files_changed

        def one_snapshot() -> None:
            be.take_snapshot(repo)

        def full_cycle() -> None:
            a = be.take_snapshot(repo, label="before")
            b = be.take_snapshot(repo, label="after")
            be.diff(a, b, capture_patch=True)

        hb = HashBackend()
        h_before = hb.take_snapshot(repo)  # warms the in-process stat cache

        def hash_after_and_diff() -> None:
            hb.diff(h_before, hb.take_snapshot(repo))

        baseline()  # warm the OS cache for both sides
        after_and_diff()
        t_base = best(baseline, args.repeat)
        t_after = best(after_and_diff, args.repeat)
        t_snap = best(one_snapshot, args.repeat)
        t_cycle = best(full_cycle, args.repeat)
        t_hash = best(hash_after_and_diff, max(1, args.repeat // 2))
        status = git(repo, "status", "--porcelain").decode().splitlines()

    ratio = t_after / t_base
    figures = {
        "benchmark": "workspace_diff", "files": args.files, "changed": args.changed, "repeat": args.repeat,
        "git_status_porcelain_plus_diff_ms": round(t_base * 1000, 1),
        "snapshot_plus_diff_ms": round(t_after * 1000, 1),
        "ratio_vs_git": round(ratio, 2),
        "one_snapshot_ms": round(t_snap * 1000, 1),
        "full_cycle_ms": round(t_cycle * 1000, 1),
        "full_cycle_ratio_vs_git": round(t_cycle / t_base, 2),
        "hash_backend_snapshot_plus_diff_ms": round(t_hash * 1000, 1),
        "git_status_lines": len(status),
        "target_ratio": TARGET_RATIO, "target_met": ratio <= TARGET_RATIO,
        "tree_build_s": round(build_s, 1), "cpus": os.cpu_count(),
    }
    rows = [
        ("git status --porcelain + git diff", t_base, "baseline"),
        ("after snapshot + diff (with patch)", t_after, f"ratio {ratio:.2f}x (target <= {TARGET_RATIO}x)"),
        ("one git snapshot", t_snap, ""),
        ("before + after + diff (with patch)", t_cycle, f"ratio {t_cycle / t_base:.2f}x"),
        ("hash backend: snapshot + diff", t_hash, "stat cache warm, no git"),
    ]
    print(f"workspace_diff: {args.files:,} files, {args.changed} changed, best of {args.repeat}, "
          f"cpus={os.cpu_count()}")
    print(f"{'operation':<40} {'ms':>10}  note")
    print("-" * 80)
    for name, t, note in rows:
        print(f"{name:<40} {t * 1000:>10.1f}  {note}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
