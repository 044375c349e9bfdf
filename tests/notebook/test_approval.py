"""Widget answers to approval questions: early clicks are kept, late ones resolve the waiter."""

from __future__ import annotations

import asyncio
import threading

from asm_nb.notebook._approval import ButtonAnswers
from asm_nb.notebook.magics import ApprovalBridge


def test_click_before_the_question_is_kept():
    answers = ButtonAnswers()
    answers.decide("deny")
    assert asyncio.run(answers.ask()) == "deny"


def test_click_from_another_thread_resolves_the_waiter():
    answers = ButtonAnswers()

    async def main():
        task = asyncio.ensure_future(answers.ask())
        await asyncio.sleep(0.01)
        t = threading.Thread(target=answers.decide, args=("approve",))
        t.start()
        result = await asyncio.wait_for(task, 5)
        t.join()
        return result

    assert asyncio.run(main()) == "approve"


def test_answers_go_to_questions_in_order():
    answers = ButtonAnswers()

    async def main():
        first = asyncio.ensure_future(answers.ask())
        second = asyncio.ensure_future(answers.ask())
        await asyncio.sleep(0.01)
        answers.decide("approve")
        answers.decide("deny")
        return await asyncio.wait_for(asyncio.gather(first, second), 5)

    assert asyncio.run(main()) == ["approve", "deny"]


def test_claude_bridge_maps_to_bool():
    bridge = ApprovalBridge()
    bridge.decide("approve")
    assert asyncio.run(bridge("bash", {"command": "ls"})) is True
    bridge.decide("deny")
    assert asyncio.run(bridge("bash", {})) is False
