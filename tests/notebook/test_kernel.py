"""%%asm in a real Jupyter kernel: the stop button (interrupt) cancels the run and the kernel
stays usable."""

from __future__ import annotations

import os
import queue
import time

import pytest

jupyter_client = pytest.importorskip("jupyter_client")
pytestmark = pytest.mark.kernel


@pytest.fixture
def kernel(tmp_path):
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "ASM_HOME": str(tmp_path / "home"), "ASM_DEFAULT_RENDERER": "studio"}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def execute(kc, code, timeout=60):
    """Run code, return (reply content, stdout text, stderr text)."""
    msg_id = kc.execute(code)
    out, err = [], []
    deadline = time.monotonic() + timeout
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no idle status for {code!r}")
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            (out if msg["content"]["name"] == "stdout" else err).append(msg["content"]["text"])
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    return shell_reply(kc, msg_id, timeout)["content"], "".join(out), "".join(err)


def shell_reply(kc, msg_id, timeout=30):
    """The shell reply to ``msg_id`` (skipping replies to earlier requests still queued)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def test_interrupt_cancels_the_run_and_kernel_stays_usable(kernel):
    km, kc = kernel
    content, _, err = execute(kc, "%load_ext asm_nb")
    assert content["status"] == "ok", err
    msg_id = kc.execute("%%asm -p shell --out r\necho started; sleep 30")
    # wait for the command's first output to stream into the cell
    deadline = time.monotonic() + 30
    seen = ""
    while "started" not in seen:
        if time.monotonic() > deadline:
            pytest.fail("run never streamed output")
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            seen += msg["content"]["text"]
    t0 = time.monotonic()
    km.interrupt_kernel()
    reply = shell_reply(kc, msg_id)
    assert time.monotonic() - t0 < 10
    assert reply["content"]["status"] == "ok", reply["content"]
    content, out, err = execute(kc, "print(r.status, [e.type.value for e in r.events][-1])")
    assert content["status"] == "ok", (content, err)
    _, detail, _ = execute(kc, "print([(e.type.value, e.data.get('error_message')) for e in r.events], r.error)")
    assert out.strip() == "cancelled run_cancelled", detail
    # the kernel still runs agents
    content, out, err = execute(kc, "%%asm -p shell --out again\necho still-alive")
    assert "still-alive" in out
    content, out, _ = execute(kc, "print(again.status)")
    assert out.strip() == "completed"


def test_widget_cancel_button_stops_a_foreground_run(kernel):
    """A comm message for the Cancel button reaches the busy kernel (the waiting cell processes
    UI events) and cancels the run."""
    km, kc = kernel
    content, _, err = execute(kc, "%load_ext asm_nb")
    assert content["status"] == "ok", err
    msg_id = kc.execute("%%asm -p shell --renderer widget --out r\necho started; sleep 30")
    cancel_comm = None
    models: dict[str, dict] = {}
    deadline = time.monotonic() + 30
    while cancel_comm is None:
        if time.monotonic() > deadline:
            pytest.fail("no Cancel button model was opened")
        msg = kc.get_iopub_msg(timeout=30)
        if msg["msg_type"] == "comm_open":
            state = msg["content"]["data"].get("state", {})
            models[msg["content"]["comm_id"]] = state
            if state.get("_model_name") == "ButtonModel" and state.get("description") == "Cancel":
                cancel_comm = msg["content"]["comm_id"]
    # let the command start, then click Cancel
    time.sleep(0.5)
    click = kc.session.msg("comm_msg", {"comm_id": cancel_comm,
                                        "data": {"method": "custom", "content": {"event": "click"}}})
    kc.shell_channel.send(click)
    t0 = time.monotonic()
    shell_reply(kc, msg_id)
    assert time.monotonic() - t0 < 10
    content, out, err = execute(kc, "print(r.status)")
    assert out.strip() == "cancelled", (content, err)


def test_cell_output_metadata_names_the_run(kernel):
    """Each %%asm output carries run and session ids in its metadata (the text stays id-free)."""
    km, kc = kernel
    execute(kc, "%load_ext asm_nb")
    msg_id = kc.execute("%%asm -p shell --out r\necho linked")
    metas = []
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "display_data":
            metas.append(msg["content"]["metadata"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    shell_reply(kc, msg_id)
    _, out, _ = execute(kc, "print(r.run_id, r.session_id)")
    run_id, session_id = out.split()
    assert {"asm": {"run_id": run_id, "session_id": session_id}} in metas


def test_kernel_status_stays_busy_while_an_awaited_run_waits(kernel):
    """JupyterLab shows the last status message as the kernel's state. A control request during
    an awaited %%asm (JupyterLab's kernel_info / debugger requests) used to end with "idle"
    while the cell still ran; now every status until the cell's own end says "busy", and the
    kernel is "idle" after the run."""
    km, kc = kernel
    content, _, err = execute(kc, "%load_ext asm_nb")
    assert content["status"] == "ok", err
    msg_id = kc.execute("%%asm -p shell --renderer widget\nsleep 2")
    statuses, sent = [], False
    deadline = time.monotonic() + 60
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["msg_type"] == "display_data" and not sent:  # the run is streaming: ask on control
            sent = True
            kc.control_channel.send(kc.session.msg("kernel_info_request", {}))
        if msg["msg_type"] == "status":
            statuses.append((msg["content"]["execution_state"], msg["parent_header"].get("msg_type")))
            if msg["content"]["execution_state"] == "idle" and msg["parent_header"].get("msg_id") == msg_id:
                break
    assert sent and ("busy", "kernel_info_request") in statuses, statuses
    assert statuses.count(("idle", "execute_request")) == 1 and statuses[-1] == ("idle", "execute_request")
    assert all(state == "busy" for state, _ in statuses[:-1]), statuses
    # after the run, control requests are idle again
    kc.control_channel.send(kc.session.msg("kernel_info_request", {}))
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["msg_type"] == "status" and msg["parent_header"].get("msg_type") == "kernel_info_request" \
                and msg["content"]["execution_state"] == "idle":
            break
