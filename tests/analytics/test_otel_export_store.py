"""``export_runs`` takes a store the way the other analytics entry points do (``ports.StoreRef``)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from asm_nb.analytics.otel_export import export_runs  # noqa: E402


def test_export_runs_opens_a_pathlike_store(tmp_path: Path) -> None:
    """A ``Path`` is opened as a store (it used to be used as the store object itself and fail
    with ``AttributeError: 'PosixPath' object has no attribute 'list_sessions'``)."""
    out = export_runs(tmp_path / "store", tracer_provider=TracerProvider())
    assert out == {"runs": 0, "spans": None, "endpoint": None}
