"""Work of a one-shot shell run done while its child runs, not before it starts.

The runtime loop waits idle while ``sh -c true`` runs (most of a one-shot command's wall time).
The shell adapter starts the child first and then builds and stores its opening events
(``run_started``, ``message_sent``, ``tool_call_started``), so that work overlaps the child.
The events, their order and a failed start stay as they were.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import asm_nb
from asm_nb.process.groups import _LIVE
from asm_nb.stores.local import LocalStore


def _types(store: LocalStore, session_id: str) -> list[str]:
    return [e.type.value + ("*" if e.metadata.get("source") == "audit" else "") for e in store.get_events(session_id)]


def _live_at_opening_events(store: LocalStore, monkeypatch: Any) -> dict[str, list]:
    """``{event type: argv of the live processes}`` when each opening event of the adapter is stored."""
    seen: dict[str, list] = {}
    real = store._append_built

    def spy(event: Any) -> Any:
        if event.type.value in ("run_started", "message_sent", "tool_call_started") and event.metadata.get("source") is None:
            seen[event.type.value] = [mp.argv for mp in list(_LIVE)]
        return real(event)

    monkeypatch.setattr(store, "_append_built", spy)
    return seen


def test_the_opening_events_are_made_while_the_child_runs(tmp_path: Any, monkeypatch: Any) -> None:
    store = LocalStore(tmp_path)
    try:
        seen = _live_at_opening_events(store, monkeypatch)
        r = asm_nb.run_once("echo overlap", provider="shell", store=store)
        assert r.status == "completed" and r.output == "overlap\n"
        for etype in ("run_started", "message_sent", "tool_call_started"):
            assert any(argv[-1] == "echo overlap" for argv in seen[etype]), (etype, seen)  # child started
        assert _types(store, r.session_id) == [
            "session_created", "session_started", "run_started*", "run_started", "message_sent", "tool_call_started",
            "message_streamed", "tool_call_completed", "message_received", "run_completed", "run_completed*",
            "session_completed"]
    finally:
        store.close()


def test_with_a_user_callback_the_child_starts_after_the_opening_events(tmp_path: Any, monkeypatch: Any) -> None:
    """A user callback (or a policy) may stop the run on ``tool_call_started``: then the command
    must not have started yet, so the events come first, as before."""
    store = LocalStore(tmp_path)
    try:
        seen = _live_at_opening_events(store, monkeypatch)
        got: list = []
        r = asm_nb.run_once("echo overlap", provider="shell", store=store, on_event=got.append)
        assert r.status == "completed" and [e["type"] for e in got][:3] == ["run_started", "message_sent",
                                                                            "tool_call_started"]
        for etype in ("run_started", "message_sent", "tool_call_started"):
            assert not any(argv[-1] == "echo overlap" for argv in seen[etype]), (etype, seen)
    finally:
        store.close()


def test_a_failed_start_still_records_the_opening_events_first(tmp_path: Any) -> None:
    store = LocalStore(tmp_path)
    try:
        r = asm_nb.run_once("echo hi", provider="shell", store=store, options={"shell": str(tmp_path / "no-sh")})
        assert r.status == "failed" and r.error is not None and r.error.code == "command_not_found"
        assert _types(store, r.session_id) == [
            "session_created", "session_started", "run_started*", "run_started", "message_sent", "tool_call_started",
            "tool_call_failed", "error_occurred", "run_failed", "run_failed*", "session_failed"]
    finally:
        store.close()


# -- loop turns between the child's exit and the run's end -------------------------------------


def test_the_runtime_loop_tells_the_transport_of_an_exit_at_once() -> None:
    """The pidfd watcher's callback hands the exit status to the transport in the same loop
    turn (no ``call_soon`` hop)."""
    from asm_nb.runtime import loop

    lp = loop.get_loop()
    if not hasattr(lp, "_asm_child_exited"):
        pytest.skip("Python 3.12+: asyncio's own loop watches children")

    class Transport:
        returncode: int | None = None

        def _process_exited(self, rc: int) -> None:
            self.returncode = rc

    t = Transport()
    out: list = []
    done = threading.Event()

    def in_loop() -> None:
        lp._asm_child_exited(12345, 3, t)  # type: ignore[attr-defined]
        out.append(t.returncode)  # before the loop ran anything else
        done.set()

    lp.call_soon_threadsafe(in_loop)
    assert done.wait(5)
    assert out == [3]


def test_a_process_is_marked_exited_when_the_transport_says_so() -> None:
    """``ManagedProcess`` learns the exit in the transport's ``process_exited`` itself (so
    ``wait()`` wakes a loop turn earlier), not when its exit-watch task next runs."""
    from asm_nb.process.managed import ManagedProcess

    async def main() -> list:
        proc = await ManagedProcess.start(["sleep", "0.05"])
        await asyncio.sleep(0.01)  # the exit watch is in place (it wraps process_exited)
        proto: Any = proc._proc._protocol  # type: ignore[union-attr]
        inner = proto.process_exited
        seen: list = []

        def spy() -> None:
            inner()
            seen.append((proc.running, proc._t_end is not None, proc in _LIVE))

        proto.process_exited = spy
        res = await proc.wait()
        assert res.exit_code == 0
        await proc.aclose()
        return seen

    assert asyncio.run(main()) == [(False, True, False)]


def test_no_early_start_when_the_store_is_called_off_the_loop(tmp_path: Any, monkeypatch: Any) -> None:
    """A store whose appends are called off the loop makes each event an await: something could
    happen between them, so the events come first there."""
    import asm_nb.providers.shell as shell

    decided: list[bool] = []
    real = shell._may_start_early

    def spy(cb: Any) -> bool:
        decided.append(real(cb))
        return decided[-1]

    class OffLoop(LocalStore):
        inline_safe = False

    monkeypatch.setattr(shell, "_may_start_early", spy)
    for store in (OffLoop(tmp_path / "off"), LocalStore(tmp_path / "local")):
        try:
            assert asm_nb.run_once("true", provider="shell", store=store).status == "completed"
        finally:
            store.close()
    assert decided == [False, True]


def test_a_hard_cancel_in_the_early_turn_still_records_the_opening_events() -> None:
    from asm_nb.core.run import Run
    from asm_nb.core.session import Session
    from asm_nb.providers.shell import ShellAdapter

    seen: list[str] = []

    def callback(ev: dict) -> None:
        seen.append(ev["type"])

    callback.no_event_observers = True  # type: ignore[attr-defined]

    async def main() -> None:
        s = Session.new("t")
        run = Run.new(s.id, input="sleep 5")
        task = asyncio.ensure_future(ShellAdapter().execute(run, s, event_callback=callback))
        await asyncio.sleep(0)  # the adapter is in its early turn (the child being started)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not [mp for mp in list(_LIVE) if mp.argv[-1] == "sleep 5"]  # killed and reaped

    asyncio.run(main())
    assert seen[:3] == ["run_started", "message_sent", "tool_call_started"], seen
