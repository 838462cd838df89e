"""The speed benchmarks still run: tiny `bench/speed.py --quick` and `bench/events.py` runs in CI.

The benchmarks' figures depend on the machine, so nothing here judges them; it checks that the
scripts still drive their links through MFA to the end, and that every figure they print came out
as a number, positive where it is a duration (a zero would mean a step was not measured).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from linkflow.devstack import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def test_quick_speed_run_connects_every_link_and_measures_every_figure() -> None:
    run = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "speed.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert run.stdout, run.stderr[-3000:]
    document = json.loads(run.stdout)

    assert document["errors"] == []
    assert document["all_connected"] is True, document["links"]
    for side in ("linkflow", "newcomer"):
        links = document["links"][side]
        assert links["started"] > 0
        assert links["connected"] == links["started"], (side, links)
    assert all(document["history_connected"].values()), document["history_connected"]

    figures = document["figures"]
    for size in document["settings"]["sizes"]:
        for name in ("links_per_second", "cpu_ms_per_link"):
            assert f"{name}.{size}.ratio" in figures
    for name in (
        "bare_update_ms.p50",
        "provider_floor_ms.p50",
        "provider_floor.p50_over_bare_update",
        "bare_start_ms.p50",
        "answer_to_next_challenge_ms.linkflow.p50",
        "answer_to_next_challenge_ms.newcomer.p50",
        "start_to_first_challenge_ms.linkflow.p50",
        "slow_sandbox.answer_to_next_challenge_ms.linkflow.p50",
        "slow_sandbox.over_provider_job_ms.linkflow.p50",
        "webhook.answer_to_next_challenge_ms.with.p50",
        "webhook.answer_to_next_challenge.p50_ratio",
        "webhook.delivered_after_reply_ms.p50",
        "webhook_paced.answer_to_next_challenge.p50_ratio",
        "webhook_paced.start_to_first_challenge.p50_ratio",
        "webhook_paced.events_later_than_the_next_call",
        "history_events.linkflow",
        "history_events.linkflow_webhook",
        "history_events.newcomer",
        "webhooks_received",
    ):
        assert name in figures, name
    # A webhook event may arrive before the client has read the reply that shows the same status.
    may_lead = {name for name in figures if name.startswith("webhook.delivered_after_reply_ms")}
    assert all(math.isfinite(figures[name]) for name in may_lead)
    # A count of paced calls made before the last change's event arrived: none is the hope.
    late = figures["webhook_paced.events_later_than_the_next_call"]
    assert isinstance(late, int)
    assert late >= 0
    not_positive = {
        name: value
        for name, value in figures.items()
        if name not in may_lead | {"webhook_paced.events_later_than_the_next_call"}
        and not (isinstance(value, int | float) and math.isfinite(value) and value > 0)
    }
    assert not_positive == {}
    for name in ("linkflow", "linkflow_webhook", "newcomer"):
        assert document["history_by_type"][name]["WORKFLOW_EXECUTION_STARTED"] == 1
    assert document["machine"]["cpus"] > 0
    assert run.returncode == 0, run.stderr[-3000:]


def test_events_run_sees_every_answer_on_the_stream() -> None:
    run = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "events.py"), "--links", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert run.stdout, run.stderr[-3000:]
    figures = json.loads(run.stdout)["figures"]
    assert figures["links"] == 2
    assert figures["answers"] == 4, "MX user_otp asks twice"
    assert figures["answer_reply_ms.p50"] > 0
    assert figures["stream_event_ms.p50"] > 0
    # The stream may beat the reply (negative lag), but never by more than the reply took.
    assert -figures["answer_reply_ms.p50"] < figures["stream_lag_behind_reply_ms.p50"]
    assert run.returncode == 0, run.stderr[-3000:]
