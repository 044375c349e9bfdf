"""Issue 18 item 14: property tests over ``asm``'s arguments and ``%%asm``'s option strings: no
input produces a traceback (the CLI returns an exit status and prints at most one error line; the
magic prints one line or raises IPython's one-line ``UsageError``).

Runs use the in-process ``mock`` provider (``shell`` is kept out of the vocabulary: random text
must never become a command), inside a temporary folder."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from asm_nb import config
from asm_nb.cli import main

COMMANDS = ["run", "sessions", "runs", "events", "replay", "cost", "export", "gc", "copy", "health", "rnu", ""]
FLAGS = ["-p", "--provider", "-m", "--model", "--session", "--cwd", "-o", "--option", "-q", "--quiet", "--json",
         "--limit", "--status", "--type", "--timeout", "--budget", "--max-tokens", "--max-tool-calls",
         "--deny-tools", "--allow-tools", "--on-violation", "--format", "--tables", "--overwrite", "--since",
         "--until", "--by", "--speed", "--prompt", "--max-age-days", "--dry-run", "--keep-failed", "--bogus", "-x",
         "--no-progress", "--"]
VALUES = ["mock", "replay", "nope", "mock,mock", "-1", "0", "1", "1e9", "nan", "inf", "-inf", "abc", "",
          "cwd=5", "nosuchopt=1", 'success_exit_codes="abc"', "timeout_ms=nan", "x=", "=1", "a b", "\x00",
          "é", "💥", "../..", "/proc/x", "cancel", "warn", "ask", "csv", "jsonl", "parquet", "runs,events",
          "2024-01-01", "provider,model", "bash", "bash,bash", "%s", "{}", "[1]", '{"a": 1}', "-", "--"]
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
TOKEN = st.one_of(st.sampled_from(FLAGS), st.sampled_from(VALUES), TEXT)


def _forbidden(argv: list[str]) -> bool:
    """Never let random input pick a provider that runs commands on this machine."""
    return any("shell" in a.lower() for a in argv)


@pytest.fixture
def sandbox_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    old = os.getcwd()
    os.chdir(d)
    try:
        yield d
    finally:
        os.chdir(old)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(cmd=st.sampled_from(COMMANDS), rest=st.lists(TOKEN, max_size=7))
@example(cmd="run", rest=["-o", "cwd=5", "hi"])
@example(cmd="run", rest=["--timeout", "nan", "hi"])
@example(cmd="runs", rest=["--limit", "-1"])
def test_cli_never_shows_a_traceback(sandbox_dir, cmd, rest):
    argv = ([cmd] if cmd else []) + rest
    if _forbidden(argv):
        return
    argv += ["--store", str(sandbox_dir / "store")] if cmd and cmd != "copy" else []
    out, err = io.StringIO(), io.StringIO()
    with config.override(default_provider="mock"), redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(argv)
        except BaseException as exc:  # noqa: BLE001 - that is the failure being looked for
            pytest.fail(f"asm {argv!r} raised {type(exc).__name__}: {exc}")
    assert isinstance(rc, int)
    assert "Traceback" not in err.getvalue()
    errors = [ln for ln in err.getvalue().splitlines() if ln.startswith("asm") and "error" in ln]
    assert len(errors) <= 1, err.getvalue()


MAGIC_FLAGS = ["-p", "--provider", "-m", "--model", "--session", "--system", "--max-turns", "--permission-mode",
               "--cwd", "--out", "--renderer", "--record", "--replay", "--quiet", "--snapshot",
               "--rollback-on-failure", "--timeout", "--budget", "--max-tokens", "--max-tool-calls", "--deny-tools",
               "--allow-tools", "--on-violation", "--bogus", "--timout", "-z"]
MAGIC_VALUES = VALUES + ["plan", "yolo", "full_auto", "studio", "compact", "none", "auto", "res", "1x", "out.jsonl"]
MAGIC_TOKEN = st.one_of(st.sampled_from(MAGIC_FLAGS), st.sampled_from(MAGIC_VALUES), TEXT)


@pytest.fixture(scope="module")
def ip():
    pytest.importorskip("IPython")
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or get_ipython()
    shell.run_line_magic("load_ext", "asm_nb")
    return shell


def _quote(tok: str) -> str:
    import shlex

    return shlex.quote(tok) if tok else "''"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(tokens=st.lists(MAGIC_TOKEN, max_size=6), body=st.one_of(st.just("hello"), TEXT))
@example(tokens=["--timeout", "nan"], body="hello")
@example(tokens=["--max-turns", "-3"], body="hello")
@example(tokens=[], body="a\x00b")
def test_magic_options_never_show_a_traceback(ip, sandbox_dir, tokens, body):
    from IPython.core.error import UsageError

    from asm_nb.notebook import magics

    if _forbidden(tokens) or "{" in body:
        return
    magics._KERNEL_DEFAULTS.clear()
    magics._KERNEL_DEFAULTS.update({"store": str(sandbox_dir / "mstore"), "provider": "mock", "renderer": "studio"})
    line = " ".join(_quote(t) for t in tokens)
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                ip.run_cell_magic("asm", line, body)
            except UsageError:
                pass  # IPython shows its UsageError as one line
            except BaseException as exc:  # noqa: BLE001 - that is the failure being looked for
                pytest.fail(f"%%asm {line!r} raised {type(exc).__name__}: {exc}")
    finally:
        magics._KERNEL_DEFAULTS.clear()
    assert "Traceback" not in err.getvalue() + out.getvalue()
