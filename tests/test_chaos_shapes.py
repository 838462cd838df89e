"""The chaos run tells a link stopped by sdk-python issue 1591, or one whose provider failed every
attempt, from a lost one by its history.

`bench/chaos.py` lists such links apart (they wait for an operator's reset; linkflow cannot prevent
them), so the test of its shape must hold exactly: the history of a link that CI's chaos run lost
this way matches; the same history without the killed worker's timed-out task, or with the update
accepted first, does not; and no history the replay tests keep matches.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.errors import PROVIDER_REJECTED_REQUEST as REJECTED
from activities.provider import LoginInput
from bench.chaos import PROVIDER_GAVE_OUT, has_sdk_1591_shape, spent_every_attempt
from linkflow.models import LinkOptions
from providers.base import ProviderState
from tests.fixtures.faked_links import faked_link
from workflows.provider_calls import PROVIDER_CALL_RETRY

HISTORIES = sorted((Path(__file__).parent / "histories").rglob("*.json"))

# The first 28 events of chaos-synapse-user_otp-6b6f03675a, which a CI-sized chaos run of 7e120f4
# stopped: the login's result (event 12), a task that timed out on the killed worker's sticky
# queue (14), then a task that wrote the search attributes and scheduled the webhook follower
# before it accepted the answer that had arrived meanwhile (17-20).
STOPPED = [
    "WORKFLOW_EXECUTION_STARTED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_TIMED_OUT",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
    "MARKER_RECORDED",
    "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
    "ACTIVITY_TASK_SCHEDULED",
    "ACTIVITY_TASK_STARTED",
    "ACTIVITY_TASK_COMPLETED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_TIMED_OUT",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
    "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
    "ACTIVITY_TASK_SCHEDULED",
    "WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
    "ACTIVITY_TASK_SCHEDULED",
    "ACTIVITY_TASK_STARTED",
    "ACTIVITY_TASK_COMPLETED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
    "TIMER_STARTED",
    "WORKFLOW_EXECUTION_UPDATE_COMPLETED",
]


def types(names: list[str]) -> list[int]:
    return [EventType.Value(f"EVENT_TYPE_{name}") for name in names]


def test_the_stopped_links_history_has_the_shape() -> None:
    assert has_sdk_1591_shape(types(STOPPED))


def test_without_the_interrupted_task_it_does_not() -> None:
    uninterrupted = STOPPED[:13] + STOPPED[15:]  # the task after the result simply ran
    assert not has_sdk_1591_shape(types(uninterrupted))


def test_with_the_update_accepted_first_it_does_not() -> None:
    reordered = list(STOPPED)
    reordered[17], reordered[19] = reordered[19], reordered[17]
    assert not has_sdk_1591_shape(types(reordered))


@pytest.mark.parametrize("path", HISTORIES, ids=[path.name for path in HISTORIES])
def test_no_kept_history_has_it(path: Path) -> None:
    events = json.loads(path.read_text())["events"]
    assert not has_sdk_1591_shape(types([event["eventType"][11:] for event in events]))


@pytest.mark.parametrize(
    ("error_type", "attempts", "told_apart"),
    [("ProviderUnavailable", PROVIDER_CALL_RETRY.maximum_attempts, True), (REJECTED, 1, False)],
)
async def test_a_login_the_provider_failed_every_attempt_of_is_told_apart(
    time_skipping_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
    error_type: str,
    attempts: int,
    told_apart: bool,
) -> None:
    """A first login whose every attempt meets a provider's 5xx ends FAILED/PROVIDER_ERROR, and
    its history shows the last provider call failing on its last allowed attempt: the chaos run
    lists it apart. A login the provider refuses once for good ends the same way, and does not."""
    tried = 0

    @activity.defn(name="provider_login")
    async def failing_login(data: LoginInput) -> ProviderState:
        nonlocal tried
        tried += 1
        raise ApplicationError("The provider answered HTTP 503.", type=error_type)

    async with faked_link(
        time_skipping_env, [failing_login], monkeypatch, LinkOptions(), name="gave-out"
    ) as handle:
        ended = await handle.result()
        history = [event async for event in handle.fetch_history_events()]

    assert (ended.status, ended.reason) == PROVIDER_GAVE_OUT
    assert tried == attempts
    assert spent_every_attempt(history) is told_apart
