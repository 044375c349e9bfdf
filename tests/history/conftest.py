"""Fixtures shared by the history import tests."""

from __future__ import annotations

import pytest

from asm_nb.history import _workers


@pytest.fixture
def pools(monkeypatch):
    """Every pool an import starts (their ``stats``: which files workers read)."""
    started: list = []
    real = _workers.start_pool

    def spy(*a, **kw):
        pool = real(*a, **kw)
        if pool is not None:
            started.append(pool)
        return pool

    monkeypatch.setattr(_workers, "start_pool", spy)
    return started
