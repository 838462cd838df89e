"""A small fuzz run in CI: the same script as the full run in the README, fewer messages.

`bench/fuzz.py` starts its own dev stack and sends generated and mutated payloads to live links:
updates and signals through the SDK, signals through the `temporal` CLI, and starts. Whatever
arrives, no workflow task may fail, no link may be stuck, no worker may crash, and no secret may
reach a log or, unencrypted, the database.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from linkflow.devstack import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def test_small_fuzz_run_breaks_nothing_and_leaks_nothing() -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "bench" / "fuzz.py"),
            "--count",
            "600",
            "--live-links",
            "8",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=PROJECT_ROOT,
    )
    assert run.stdout, run.stderr[-3000:]
    figures = json.loads(run.stdout)
    assert figures["sent"] == 600
    assert figures["accepted"] + figures["refused"] >= 500, figures
    assert figures["refused"] > 300, figures
    assert figures["workflow_task_failures"] == 0, figures
    assert figures["links_stuck"] == 0, figures
    assert figures["worker_crashes"] == 0, figures
    assert figures["secrets_in_logs"] == 0, figures
    assert figures["secrets_in_database"] == 0, figures
    assert figures["errors"] == [], figures
    # Every channel was exercised.
    assert set(figures["by_channel"]) == {"update", "signal", "cli-signal", "start"}, figures
    assert run.returncode == 0, run.stderr[-3000:]
