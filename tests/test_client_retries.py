"""LinkClient sends again an update the link refused because it met the link mid-step.

A unit test with a stand-in for Temporal's client: the link's side of it (the validator that
refuses with STILL_RECORDING) is exercised by the chaos run (tests/test_chaos.py), where workers
are killed mid-step; here the client's side is shown to retry that refusal and only that one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from linkflow import client as link_client
from linkflow.client import AnswerRefused, LinkClient
from linkflow.models import ChallengeAnswer, LinkSnapshot, LinkStatus, MfaSubmission
from linkflow.refusals import STILL_RECORDING

NOW = datetime(2026, 11, 23, tzinfo=UTC)
SNAPSHOT = LinkSnapshot(
    link_id="link-1", status=LinkStatus.CONNECTED, started_at=NOW, updated_at=NOW
)
ANSWER = MfaSubmission(answers=[ChallengeAnswer(challenge_id="C-1", value="correct")])


class Handle:
    def __init__(self, refusals: list[str]) -> None:
        self.refusals = refusals
        self.calls = 0

    async def execute_update(self, name: str, **_: Any) -> LinkSnapshot:
        self.calls += 1
        if self.refusals:
            raise WorkflowUpdateFailedError(ApplicationError(self.refusals.pop(0)))
        return SNAPSHOT


class Temporal:
    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    def get_workflow_handle(self, link_id: str, **_: Any) -> Handle:
        return self.handle


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(link_client, "RECORDING_RETRY_PAUSES", (0.0, 0.0, 0.0))


def links(handle: Handle) -> LinkClient:
    return LinkClient(cast(Client, Temporal(handle)), "linkflow")


async def test_an_update_that_met_the_link_mid_step_is_sent_again() -> None:
    handle = Handle([STILL_RECORDING, STILL_RECORDING])
    assert await links(handle).submit_mfa("link-1", ANSWER) == SNAPSHOT
    assert handle.calls == 3


async def test_it_gives_up_after_its_last_pause_and_says_why() -> None:
    handle = Handle([STILL_RECORDING] * 10)
    with pytest.raises(AnswerRefused, match="still recording"):
        await links(handle).submit_mfa("link-1", ANSWER)
    assert handle.calls == 4


async def test_any_other_refusal_is_not_sent_again() -> None:
    handle = Handle(["Unknown challenge (an id of 3 characters that is not pending)."])
    with pytest.raises(AnswerRefused, match="Unknown challenge"):
        await links(handle).submit_mfa("link-1", ANSWER)
    assert handle.calls == 1
