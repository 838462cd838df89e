"""The memory and replay-cost benchmarks still run, at the size CI affords.

`bench/memory.py` starts its own dev stack and holds links waiting on MFA in one worker;
`bench/replay_cost.py` lives one link through weeks of daily refreshes on the time-skipping server.
Here each runs tiny, with `--json`, and every figure it reports must be there and positive. The
figures themselves are for people to read: no timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from linkflow.devstack import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def run_bench(script: str, *args: str) -> Any:
    run = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / script), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def test_memory_benchmark_reports_rss_and_answer_latency_per_variant() -> None:
    results = run_bench(
        "memory.py",
        *("--links", "4,8", "--samples", "2", "--concurrency", "4", "--settle-seconds", "2"),
        *("--variants", "default,webhooks,unsandboxed-cache-all"),
    )
    variants = [result["variant"] for result in results]
    assert variants == ["default", "webhooks", "unsandboxed-cache-all"]
    assert [result["sandboxed"] for result in results] == [True, True, False]
    # Each of the 8 waiting links announced its first challenge, through its follower.
    assert [result["webhooks_received"] for result in results][::2] == [None, None]
    assert results[1]["webhooks_received"] >= 8
    for result in results:
        for name in (
            "idle_rss_kib",
            "warm_rss_kib",
            "peak_rss_kib",
            "light_p50_ms",
            "light_paced_p50_ms",
        ):
            assert result[name] > 0, (name, result)
        assert [point["links"] for point in result["checkpoints"]] == [4, 8]
        for point in result["checkpoints"]:
            assert point["start_failures"] == 0
            for name in (
                "rss_kib",
                "starts_per_second",
                "answer_p50_ms",
                "latency_ratio",
                "paced_p50_ms",
                "paced_ratio",
            ):
                assert point[name] > 0, (name, point)


def test_replay_cost_benchmark_reports_each_checkpoint_and_a_full_run() -> None:
    figures = run_bench(
        "replay_cost.py", "--days", "2,5", "--refreshes-per-run", "3", "--repeats", "1"
    )
    assert figures["refreshes_per_run"] == 3
    points = figures["checkpoints"]
    assert [point["days"] for point in points] == [2, 5]
    for point in points:
        assert point["status"] == "CONNECTED"
        for name in ("runs", "events", "history_bytes", "replay_ms_sandboxed"):
            assert point[name] > 0, (name, point)
        assert point["replay_ms_unsandboxed"] > 0
    # By day five the link has continued as new, and its last full run replays too.
    assert points[-1]["runs"] > 1
    assert points[-1]["full_run_events"] > 0
    assert points[-1]["full_run_replay_ms"] > 0
