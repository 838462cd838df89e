"""The metrics a link records from inside its workflow: status changes and answer latency.

Only the workflow sees each change of status and how long a user took to answer, so it records
them itself, through the worker's metric meter (`workflow.metric_meter()`, which the worker's
runtime serves for Prometheus, see `linkflow/telemetry.py`). Both functions do nothing while the
workflow replays, so a replayed history never counts twice, and they import nothing but
`temporalio.workflow`, so they are safe in the workflow sandbox.

- `linkflow_link_status_changes` (counter): `provider`, `status` (the status entered).
- `linkflow_answer_latency` (histogram, seconds): `provider`; from a challenge being asked to its
  answer being settled.

The SDK adds `namespace`, `task_queue` and `workflow_type` to both.
"""

from __future__ import annotations

from temporalio import workflow

LINK_STATUS_CHANGES_COUNTER = "linkflow_link_status_changes"
ANSWER_LATENCY_HISTOGRAM = "linkflow_answer_latency"


def status_changed(provider: str, status: str) -> None:
    """Count one link entering `status` (a LinkStatus value) at `provider`."""
    if workflow.unsafe.is_replaying():
        return
    workflow.metric_meter().create_counter(
        LINK_STATUS_CHANGES_COUNTER, "Account links entering a status", "changes"
    ).add(1, {"provider": str(provider), "status": str(status)})


def answer_settled(provider: str, seconds: float) -> None:
    """Record how long, in seconds, a user's answer took from the question to its settling."""
    if workflow.unsafe.is_replaying():
        return
    workflow.metric_meter().create_histogram_float(
        ANSWER_LATENCY_HISTOGRAM, "Seconds from an MFA challenge to its settled answer", "s"
    ).record(max(0.0, float(seconds)), {"provider": str(provider)})
