"""A small chaos run in CI: the same script as the full run in the README, fewer links.

`bench/chaos.py` starts its own dev stack on free ports with two workers on one task queue, kills
each worker with SIGKILL on its own random clock, restarts the dev server and has the sandbox
inject 5xx, 429, hangs and dropped connections while links go through MFA. Whatever the chaos
did, no link, no answer and no provider submission may be lost or doubled, and no worker may die
unless it was killed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from linkflow.devstack import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def test_small_chaos_run_loses_nothing() -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "bench" / "chaos.py"),
            "--links",
            "12",
            "--duration",
            "20",
            "--server-restarts",
            "1",
            "--workers",
            "2",
            # Each worker is killed within the first 8 seconds, while links are still starting.
            "--kill-every",
            "3",
            "8",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
    assert run.stdout, run.stderr[-3000:]
    figures = json.loads(run.stdout)
    assert figures["lost"] == 0, figures["lost_links"]
    assert figures["answers_lost"] == 0
    assert figures["duplicate_submissions"] == 0
    # A link the SDK's update-ordering defect stops (sdk-python issue 1591), or whose first login
    # met the sandbox's injected faults on every attempt and so failed as it should
    # (PROVIDER_ERROR), is not lost by linkflow: the script checks each history and lists it apart.
    apart = figures["sdk_1591_links"] + figures["provider_gave_out_links"]
    settled = figures["connected"] + figures["failed_by_design"] + len(apart)
    assert settled == figures["started"] == 12
    # The three `user_bad` links fail by design, unless listed apart.
    assert figures["failed_by_design"] == 3 - sum("-user_bad-" in entry for entry in apart)
    assert figures["answers_submitted"] > 0
    # Every status change of every settled link reached its webhook, as it was.
    assert figures["webhook_events_expected"] > 12
    assert figures["webhook_events_missing"] == 0, figures["webhook_missing_links"]
    assert figures["webhook_events_wrong"] == 0
    # The chaos really happened.
    assert figures["workers"] == 2
    assert set(figures["kills_by_worker"]) == {"worker1", "worker2"}
    assert figures["worker_deaths"] == []
    assert figures["server_restarts"] == 1
    assert sum(figures["faults"].values()) > 0
    assert run.returncode == 0, run.stderr[-3000:]
