"""Work of a one-shot shell run done while its child runs, not before it starts.

The runtime loop waits idle while ``sh -c true`` runs (most of a one-shot command's wall time).
The shell adapter starts the child first and then builds and stores its opening events
(``run_started``, ``message_sent``, ``tool_call_started``), so that work overlaps the child.
The events, their order and a failed start stay as they were.
"""

from __future__ import annotations

from typing import Any

import asm_nb
from asm_nb.process.groups import _LIVE
from asm_nb.stores.local import LocalStore


def _types(store: LocalStore, session_id: str) -> list[str]:
    return [e.type.value + ("*" if e.metadata.get("source") == "audit" else "") for e in store.get_events(session_id)]


def test_the_opening_events_are_made_while_the_child_runs(tmp_path: Any) -> None:
    store = LocalStore(tmp_path)
    seen: dict[str, list] = {}

    def on_event(ev: dict) -> None:
        if ev["type"] in ("run_started", "message_sent", "tool_call_started"):
            seen[ev["type"]] = [mp.argv for mp in list(_LIVE)]

    try:
        r = asm_nb.run_once("echo overlap", provider="shell", store=store, on_event=on_event)
        assert r.status == "completed" and r.output == "overlap\n"
        for etype in ("run_started", "message_sent", "tool_call_started"):
            assert any(argv[-1] == "echo overlap" for argv in seen[etype]), (etype, seen)  # child started
        assert _types(store, r.session_id) == [
            "session_created", "session_started", "run_started*", "run_started", "message_sent", "tool_call_started",
            "message_streamed", "tool_call_completed", "message_received", "run_completed", "run_completed*",
            "session_completed"]
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
