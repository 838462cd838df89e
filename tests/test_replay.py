"""Replays committed histories against today's workflow code.

A change to AccountLinkWorkflow that would break a running link fails here. The histories are
recorded from the workflow tests with `pytest tests/test_workflow.py tests/test_link_life.py
--record-histories`; record new ones for new paths, and keep the old ones: running links were
started by old code. `before-living-link/` holds links recorded when a link still ended at its
first connection; they must replay to that same end. `before-one-call-per-step/` holds links
recorded when every provider call was an activity of its own, the job was followed by separate
wait activities, and every status change wrote the search attributes and started a webhook child.
`before-following-webhooks/` holds links recorded when webhook events went out in batches, one
activity per batch, before one activity followed the link's whole conversation.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.conftest import TEST_DATA_CONVERTER
from workflows.account_link import AccountLinkWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow, WebhookHandoverWorkflow

HISTORIES_DIR = Path(__file__).parent / "histories"
HISTORIES = sorted(HISTORIES_DIR.rglob("*.json"))
REQUIRED_PATHS = {
    "mx_no_mfa",
    "mx_one_round",
    "mx_two_rounds",
    "mx_wrong_answer",
    "mx_signal",
    "mx_invalid_credentials",
    "mx_mfa_timeout",
    "mx_hold",
    "mx_refresh_continued_as_new",
    "mx_reauthenticate",
    "mx_update_credentials",
    "mx_resolve_hold",
    "mx_unlink",
    "mx_two_rounds_webhook",
}


def test_every_required_path_has_a_history_recorded_by_todays_code() -> None:
    assert {path.stem for path in HISTORIES_DIR.glob("*.json")} >= REQUIRED_PATHS


def test_old_histories_are_kept() -> None:
    old = {path.stem for path in (HISTORIES_DIR / "before-living-link").glob("*.json")}
    assert old >= {"mx_no_mfa", "mx_one_round", "mx_two_rounds", "mx_mfa_timeout", "mx_hold"}
    before = {path.stem for path in (HISTORIES_DIR / "before-one-call-per-step").glob("*.json")}
    assert before >= REQUIRED_PATHS - {"mx_two_rounds_webhook"}  # none was recorded then
    batched = {path.stem for path in (HISTORIES_DIR / "before-following-webhooks").glob("*.json")}
    assert batched >= REQUIRED_PATHS


@pytest.mark.parametrize(
    "path", HISTORIES, ids=[str(path.relative_to(HISTORIES_DIR)) for path in HISTORIES]
)
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
    replayer = Replayer(
        workflows=[AccountLinkWorkflow, WebhookDeliveryWorkflow, WebhookHandoverWorkflow],
        data_converter=TEST_DATA_CONVERTER,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
