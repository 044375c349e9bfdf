"""The examples in the evaluation docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["asm_nb.evaluation.dataset", "asm_nb.evaluation.agents", "asm_nb.evaluation.scorers",
           "asm_nb.evaluation.trajectory", "asm_nb.evaluation.rundiff", "asm_nb.testing.expectations"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
