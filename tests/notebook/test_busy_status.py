"""The kernel status JupyterLab shows while an awaited ``%%asm`` cell runs (no real kernel: a
recording ``_publish_status`` stands in for ipykernel's; tests/notebook/test_kernel.py has the
real-kernel check)."""

from __future__ import annotations

import pytest

pytest.importorskip("IPython")

from asm_nb.notebook.cell_magic import _busy_while_awaiting  # noqa: E402


class _Kernel:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def _publish_status(self, status: str, channel: str, parent: object = None) -> None:
        self.sent.append((status, channel))


class _Shell:
    def __init__(self, kernel: _Kernel) -> None:
        self.kernel = kernel


@pytest.fixture
def kernel(monkeypatch):
    k = _Kernel()
    monkeypatch.setattr("IPython.core.getipython.get_ipython", lambda: _Shell(k))
    return k


def test_entering_supersedes_an_idle_already_sent_for_the_cell(kernel):
    # a control request answered while the cell was being prepared: its "idle" went out first
    kernel._publish_status("idle", "control")
    with _busy_while_awaiting():
        assert kernel.sent[-1] == ("busy", "shell"), kernel.sent  # shown state is busy again
        kernel._publish_status("idle", "control")  # answered during the run: published as busy
        assert kernel.sent[-1] == ("busy", "control")
    kernel._publish_status("idle", "shell")  # the cell's own end
    assert kernel.sent[-1] == ("idle", "shell")
    assert "_publish_status" not in vars(kernel)


def test_a_nested_run_leaves_the_outer_wrapper_in_place(kernel):
    with _busy_while_awaiting():
        with _busy_while_awaiting():
            pass
        kernel._publish_status("idle", "control")
        assert kernel.sent[-1] == ("busy", "control")
    kernel._publish_status("idle", "control")
    assert kernel.sent[-1] == ("idle", "control")
