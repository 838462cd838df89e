"""Replays committed histories against today's workflow code.

A change to AccountLinkWorkflow that would break a running link fails here. The histories are
recorded from the workflow tests with `pytest tests/test_workflow.py --record-histories`; record
new ones for new paths, and keep the old ones: running links were started by old code.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.account_link import AccountLinkWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
REQUIRED_PATHS = {
    "mx_no_mfa",
    "mx_one_round",
    "mx_two_rounds",
    "mx_wrong_answer",
    "mx_signal",
    "mx_invalid_credentials",
    "mx_mfa_timeout",
}


def test_every_required_path_has_a_history() -> None:
    assert {path.stem for path in HISTORIES} >= REQUIRED_PATHS


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
    replayer = Replayer(workflows=[AccountLinkWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
