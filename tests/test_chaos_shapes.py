"""The chaos run tells a link stopped by sdk-python issue 1591 from a lost one by its history.

`bench/chaos.py` lists such links apart (they wait for an operator's reset; linkflow cannot prevent
them), so the test of its shape must hold exactly: the history of a link that CI's chaos run lost
this way matches; the same history without the killed worker's timed-out task, or with the update
accepted first, does not; and no history the replay tests keep matches.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType

from bench.chaos import has_sdk_1591_shape

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
