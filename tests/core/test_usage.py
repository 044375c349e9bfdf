"""core/usage.py: TokenUsage is the one place token counts are cleaned, added and named."""

from __future__ import annotations

import ast
import math
import pathlib

import pytest

from asm_nb.core.usage import TOKEN_KEYS, TokenUsage, empty_usage, token_count


@pytest.mark.parametrize("raw, expected", [
    (5, 5), (-1, 0), (True, 0), (None, 0), (2.9, 2), (-0.5, 0), (math.nan, 0), (math.inf, 0), ("12", 0),
    ("x", 0), ([], 0),
])
def test_token_count_cleans(raw, expected):
    assert token_count(raw) == expected


def test_of_add_since_at_least():
    a = TokenUsage.of({"input_tokens": 10, "output_tokens": "junk", "cache_read_tokens": 3, "other": 9})
    assert a == TokenUsage(10, 0, 3, 0)
    b = a + {"output_tokens": 5, "reasoning_output_tokens": 2}
    assert b.to_dict() == {"input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 3,
                           "cache_creation_tokens": 0, "reasoning_output_tokens": 2}
    assert b.total_tokens == 15 and b.to_dict(total=True)["total_tokens"] == 15
    assert b.since(a) == TokenUsage(0, 5, 0, 0, 2) and a.since(b) == TokenUsage()
    assert not TokenUsage() and bool(TokenUsage(output_tokens=1))
    assert a.at_least(TokenUsage(input_tokens=4, output_tokens=7)) == TokenUsage(10, 7, 3, 0)
    assert sum([a, a], TokenUsage()).input_tokens == 20
    assert empty_usage() == dict.fromkeys(TOKEN_KEYS, 0)


def test_provider_shapes():
    assert TokenUsage.from_anthropic({"input_tokens": 100, "output_tokens": 7, "cache_read_input_tokens": 50,
                                      "cache_creation_input_tokens": 20}) == TokenUsage(100, 7, 50, 20)
    # Amp's input includes the cache; Codex's includes cached input and reports reasoning apart
    assert TokenUsage.from_inclusive_anthropic({"input_tokens": 100, "cache_read_input_tokens": 50,
                                                "cache_creation_input_tokens": 20}).input_tokens == 30
    codex = TokenUsage.from_openai({"input_tokens": 100, "cached_input_tokens": 40, "output_tokens": 9,
                                    "reasoning_output_tokens": 4})
    assert codex == TokenUsage(60, 9, 40, 0, 4)


def test_no_other_module_spells_the_cache_write_counter_to_build_usage():
    """The counter names live in core/usage.py; other modules use its constants (rendering keeps
    column titles, and a docstring or test cassette may mention the name)."""
    root = pathlib.Path(__file__).resolve().parents[2] / "asm_nb"
    allowed = {"core/usage.py", "rendering/tables.py", "rendering/mime.py", "notebook/compare.py",
               "testing/cassettes.py"}
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel in allowed:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value == "cache_creation_tokens"
                    and id(node) not in docstrings):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []
