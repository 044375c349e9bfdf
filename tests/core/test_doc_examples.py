"""The examples in core docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import asm_nb.core

MODULES = ["asm_nb.config"] + [f"asm_nb.core.{m.name}" for m in pkgutil.iter_modules(asm_nb.core.__path__)]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
