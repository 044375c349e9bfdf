"""Fixtures shared by the history import tests."""

from __future__ import annotations

import pytest

from asm_nb.history import _workers


@pytest.fixture(autouse=True)
def no_kept_workers():
    """Every test starts and ends without workers kept from another test's import."""
    _workers.close_spares()
    yield
    _workers.close_spares()


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


@pytest.fixture
def interrupt_at(monkeypatch):
    """``interrupt_at(n)``: the import's n-th taken result raises ``KeyboardInterrupt`` (Ctrl-C
    in the middle of an import with workers); ``monkeypatch.undo()`` lifts it."""
    real_add = _workers.EncodedBatch.add_encoded

    def arm(n: int) -> None:
        calls: list[int] = []

        def interrupt(self, r):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            real_add(self, r)

        monkeypatch.setattr(_workers.EncodedBatch, "add_encoded", interrupt)

    return arm
