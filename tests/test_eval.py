"""The evaluation set through the real pipeline: the issue's bar, and the checker itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.evaluate import STRICT_GROUPS, check_turn, load_set, meets_bar, run_conversations, summarise
from bot.types import Citation, Reply

SET = Path(__file__).parent / "eval" / "conversations.yaml"


@pytest.fixture(scope="module")
def outcomes(client, session_app):  # type: ignore[no-untyped-def]
    # `client` runs the app's lifespan, which loads the model and the index.
    conversations = load_set(SET)
    runtime = session_app.state.runtime
    done, _, _ = asyncio.run(run_conversations(runtime.chatbot, conversations))
    return done


def test_the_set_is_big_and_covers_every_group() -> None:
    conversations = load_set(SET)
    groups = {c["group"] for c in conversations}
    assert len(conversations) >= 80
    assert {"answer", "multi_turn", "booking", "unknown_clinic_fact", "out_of_scope", "diagnosis_medication",
            "emergency", "not_emergency", "injection", "small_talk"} <= groups


def test_strict_groups_pass_completely_and_overall_is_95(outcomes) -> None:  # type: ignore[no-untyped-def]
    groups = summarise(outcomes)
    failures = [(o.group, o.said, o.problems) for o in outcomes if not o.passed]
    for group in STRICT_GROUPS:
        passed, total = groups[group]
        assert passed == total, [f for f in failures if f[0] == group]
    assert meets_bar(groups), failures


@pytest.mark.parametrize(
    ("turn", "reply", "ok"),
    [
        ({"kind": "answer"}, Reply(kind="answer", reply="x"), True),
        ({"kind": ["answer", "handoff"]}, Reply(kind="handoff", reply="x"), True),
        ({"kind": "answer"}, Reply(kind="handoff", reply="x"), False),
        ({"contains_any": ["16 inches", "sixteen"]}, Reply(kind="answer", reply="about 16 INCHES"), True),
        ({"contains_any": ["16 inches"]}, Reply(kind="answer", reply="long"), False),
        ({"contains_all": ["911", "now"]}, Reply(kind="emergency", reply="call 911"), False),
        ({"must_not_contain": ["$"]}, Reply(kind="handoff", reply="a session is $100"), False),
        ({"expect_source": "a.md"}, Reply(kind="answer", reply="x", citations=[Citation(title="A", source="a.md")]),
         True),
        ({"expect_source": "a.md"}, Reply(kind="answer", reply="x"), False),
        ({"no_citations": True}, Reply(kind="handoff", reply="x", citations=[Citation(title="A", source="a.md")]),
         False),
    ],
)
def test_checker(turn: dict, reply: Reply, ok: bool) -> None:
    assert (check_turn(turn, reply) == []) is ok
