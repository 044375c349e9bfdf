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


def test_a_nested_run_leaves_the_outer_wrapper_in_place(kernel):
    with _busy_while_awaiting():
        with _busy_while_awaiting():
            pass
        kernel._publish_status("idle", "control")
        assert kernel.sent[-1] == ("busy", "control")
    kernel._publish_status("idle", "control")
    assert kernel.sent[-1] == ("idle", "control")


def test_a_control_idle_looked_up_before_the_cell_started_still_says_busy(kernel):
    # ipykernel 7 answers control requests on their own thread: one looked up the kernel's
    # _publish_status for its "idle" (after an earlier cell), then the next cell started before
    # it sent. Its "idle" must not land after the cell's "busy".
    with _busy_while_awaiting():
        pass
    control_publish = kernel._publish_status
    with _busy_while_awaiting():
        control_publish("idle", "control")
        assert kernel.sent[-1] == ("busy", "control"), kernel.sent


def test_a_control_status_sent_after_the_cell_ended_is_not_turned_into_busy(kernel):
    # the other end: looked up while the cell ran, sent after it ended. A "busy" there would
    # follow the cell's own "idle" and JupyterLab would show Busy with nothing running.
    with _busy_while_awaiting():
        control_publish = kernel._publish_status
    kernel._publish_status("idle", "shell")  # the cell's own end
    control_publish("idle", "control")
    assert kernel.sent[-2:] == [("idle", "shell"), ("idle", "control")], kernel.sent


def test_deciding_and_sending_are_one_step_across_threads(kernel):
    """A control thread's "idle" decided before a cell starts is sent before the cell's "busy";
    the cell cannot slip its "busy" in between the decision and the send."""
    import threading

    deciding, release = threading.Event(), threading.Event()
    original = kernel._publish_status

    def slow_send(status, channel, parent=None):  # the session's send, paused mid-way
        if channel == "control":
            deciding.set()
            release.wait(5)
        original(status, channel, parent)

    kernel._publish_status = slow_send
    with _busy_while_awaiting():  # installs the wrapper over the slow send
        pass
    wrapped = kernel._publish_status
    control = threading.Thread(target=wrapped, args=("idle", "control"))
    control.start()
    assert deciding.wait(5)
    entered = threading.Event()

    def run_cell():
        with _busy_while_awaiting():
            entered.set()
            release.wait(5)

    cell = threading.Thread(target=run_cell)
    cell.start()
    assert not entered.wait(0.2)  # the cell waits for the control send to finish
    release.set()
    control.join(5)
    cell.join(5)
    assert entered.is_set() and kernel.sent[-2:] == [("idle", "control"), ("busy", "shell")], kernel.sent


def test_load_ext_wraps_the_kernel_before_any_cell(kernel):
    from asm_nb.notebook.cell_magic import _install_busy_status

    shell = _Shell(kernel)
    _install_busy_status(shell)
    control_publish = kernel._publish_status  # a control request in flight when the first cell starts
    with _busy_while_awaiting():
        control_publish("idle", "control")
        assert kernel.sent[-1] == ("busy", "control"), kernel.sent
