"""Replay cost benchmark: a link that refreshed daily for three years replays as fast as a new one.

    .venv/bin/python bench/replay_cost.py                   # 10 days, 100 days, 1 and 3 years
    .venv/bin/python bench/replay_cost.py --days 5,40       # fewer days
    .venv/bin/python bench/replay_cost.py --quick --json    # the size CI runs

A worker that has not cached a link (a restart, an eviction, a link answered on another worker)
replays the link's current run from its first event before it can act. A link continues as new
every `LinkOptions.refreshes_per_run` refreshes, so the run it replays should stay the same size
however long the link has lived. This run shows it: on the time-skipping test server, one MX link
with faked provider activities connects, then refreshes daily for the given days; at each
checkpoint it fetches the current run's history and reports its events and bytes, and the median
time `temporalio.worker.Replayer` takes to replay it, sandboxed (as the worker runs) and not.

The test server has no operator service to register search attributes, so, as
tests/test_bad_days.py does, the link's search-attribute upserts are dropped while it runs and
while it replays (the histories hold no upsert events either way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio import activity, workflow  # noqa: E402
from temporalio.client import Client, WorkflowHistory  # noqa: E402
from temporalio.common import RawValue  # noqa: E402
from temporalio.exceptions import ApplicationError  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import (  # noqa: E402
    Replayer,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner  # noqa: E402

from linkflow.codec import KeyRing, data_converter  # noqa: E402
from linkflow.models import (  # noqa: E402
    Credentials,
    LinkOptions,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    Provider,
)
from linkflow.process import exit_now  # noqa: E402
from linkflow.temporal import quiet_runtime  # noqa: E402
from providers.base import Outcome, ProviderState  # noqa: E402
from worker import WORKFLOWS  # noqa: E402
from workflows.account_link import WORKFLOW_TYPE  # noqa: E402

DAY = 86_400


def three_accounts() -> dict[str, Any]:
    return {
        "accounts": [
            {"id": f"A-{n}", "name": name, "kind": kind, "mask": "1234", "balance": "100.00"}
            for n, (name, kind) in enumerate(
                [("Checking", "CHECKING"), ("Savings", "SAVINGS"), ("Card", "CREDIT_CARD")]
            )
        ]
    }


def linked() -> dict[str, Any]:
    """The provider's state after a step, as JSON: linked, with the accounts it read (a step
    result that has no `accounts` field ignores them)."""
    state = ProviderState(outcome=Outcome.LINKED, raw_status="CONNECTED", session={"job": "J-1"})
    return state.model_dump(mode="json") | three_accounts()


# THE FAKE PROVIDER: each activity the link may call, by name, and what it returns. The names are
# those of activities/provider.py (ProviderActivities.all()); when they change, change them here.
# One dynamic activity answers for all of them; a name missing here stops the run and is named.
FAKE_ACTIVITIES: dict[str, Callable[[], Any]] = {
    "provider_login": linked,
    "provider_wait": linked,
    "provider_answer": linked,
    "provider_fetch_accounts": three_accounts,
    "provider_revoke": lambda: None,
    "provider_refresh": linked,
    "provider_reauthenticate": linked,
    "provider_resolve_hold": linked,
}


@dataclass
class FakeProvider:
    calls: dict[str, int] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)

    def activity(self) -> Callable[..., Any]:
        @activity.defn(dynamic=True)
        async def fake_provider(args: Sequence[RawValue]) -> Any:
            name = activity.info().activity_type
            self.calls[name] = self.calls.get(name, 0) + 1
            answer = FAKE_ACTIVITIES.get(name)
            if answer is None:
                self.unknown.add(name)
                raise ApplicationError(
                    f"bench/replay_cost.py fakes no activity {name!r}: add it to FAKE_ACTIVITIES",
                    non_retryable=True,
                )
            return answer()

        return fake_provider


@dataclass
class Checkpoint:
    days: int
    runs: int
    refreshes: int
    status: str
    events: int
    history_bytes: int
    replay_ms_sandboxed: float
    replay_ms_unsandboxed: float
    # The run before the current one, which ran its full `refreshes_per_run` (0: none yet).
    full_run_events: int = 0
    full_run_bytes: int = 0
    full_run_replay_ms: float = 0.0


@dataclass
class Figures:
    refreshes_per_run: int
    checkpoints: list[Checkpoint] = field(default_factory=list)
    simulated_seconds: float = 0.0
    seconds: float = 0.0


def history_bytes(history: WorkflowHistory) -> int:
    return sum(event.ByteSize() for event in history.events)


def previous_run_id(history: WorkflowHistory) -> str:
    """The run this one continued from, as its first event says ('' for the link's first run)."""
    started = history.events[0].workflow_execution_started_event_attributes
    return str(started.continued_execution_run_id)


async def replay_ms(history: WorkflowHistory, runner: WorkflowRunner, repeats: int) -> float:
    """The median wall time of replaying `history` from its first event, in milliseconds."""
    replayer = Replayer(
        workflows=WORKFLOWS,
        workflow_runner=runner,
        data_converter=CONVERTER,
        runtime=RUNTIME,
    )
    await replayer.replay_workflow(history)  # untimed: the first replay imports the workflow
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        await replayer.replay_workflow(history)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


CONVERTER = data_converter(KeyRing.generate("bench"))
# The core's warnings (the test server is not a full server) would land on stdout, before --json.
RUNTIME = quiet_runtime()


def drop_search_attribute_upserts() -> None:
    """The test server cannot index the link's search attributes: skip the upserts."""

    def dropped(updates: Any) -> None:
        return None

    setattr(workflow, "upsert_search_attributes", dropped)  # noqa: B010


async def measure(args: argparse.Namespace) -> Figures:
    server = shutil.which("temporal-test-server", path=str(Path(sys.executable).parent))
    server = server or shutil.which("temporal-test-server")
    if not server:
        raise SystemExit("temporal-test-server is missing: install the project's test tools.")
    drop_search_attribute_upserts()
    options = LinkOptions(refresh_interval_seconds=DAY)
    if args.refreshes_per_run:
        options = options.model_copy(update={"refreshes_per_run": args.refreshes_per_run})
    figures = Figures(refreshes_per_run=options.refreshes_per_run)
    provider = FakeProvider()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=server, data_converter=CONVERTER, runtime=RUNTIME
    )
    began = time.monotonic()
    try:
        client: Client = env.client
        task_queue = f"replay-cost-{uuid.uuid4()}"
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=[provider.activity()],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            handle = await client.start_workflow(
                WORKFLOW_TYPE,
                LinkRequest(
                    provider=Provider.MX,
                    user_ref="replay-cost",
                    credentials=Credentials(username="user_good", password="pass_good"),
                    options=options,
                ),
                id=f"link-replay-cost-{uuid.uuid4()}",
                task_queue=task_queue,
                result_type=LinkSnapshot,
            )
            lived = 0
            # Connected a minute in; each checkpoint stands an hour after that day's refresh.
            await env.sleep(60)
            for days in sorted(args.days):
                await env.sleep(timedelta(days=days - lived))
                lived = days
                snapshot: LinkSnapshot = await handle.query("snapshot", result_type=LinkSnapshot)
                if provider.unknown:
                    raise SystemExit(
                        f"The link called unfaked activities: {sorted(provider.unknown)}"
                    )
                if snapshot.status is not LinkStatus.CONNECTED:
                    raise SystemExit(f"The link is {snapshot.status}: {snapshot.message}")
                current = client.get_workflow_handle(handle.id)
                history = await current.fetch_history()
                point = Checkpoint(
                    days=days,
                    runs=snapshot.attempts.runs,
                    refreshes=snapshot.attempts.refreshes,
                    status=snapshot.status.value,
                    events=len(history.events),
                    history_bytes=history_bytes(history),
                    replay_ms_sandboxed=round(
                        await replay_ms(history, SandboxedWorkflowRunner(), args.repeats), 1
                    ),
                    replay_ms_unsandboxed=round(
                        await replay_ms(history, UnsandboxedWorkflowRunner(), args.repeats), 1
                    ),
                )
                previous = previous_run_id(history)
                if previous:
                    full = await client.get_workflow_handle(
                        handle.id, run_id=previous
                    ).fetch_history()
                    point.full_run_events = len(full.events)
                    point.full_run_bytes = history_bytes(full)
                    point.full_run_replay_ms = round(
                        await replay_ms(full, SandboxedWorkflowRunner(), args.repeats), 1
                    )
                figures.checkpoints.append(point)
                print(f"  {point}", file=sys.stderr)
            await client.get_workflow_handle(handle.id).terminate("the benchmark is over")
    finally:
        await env.shutdown()
    figures.simulated_seconds = float(lived * DAY)
    figures.seconds = round(time.monotonic() - began, 1)
    return figures


def report(figures: Figures) -> str:
    header = (
        f"{'days':>5} {'runs':>5} {'refreshes':>9} | {'current run: events':>19} {'bytes':>8}"
        f" {'replay ms':>9} {'unsandboxed':>11} | {'last full run: events':>21} {'bytes':>8}"
        f" {'replay ms':>9}"
    )
    lines = [header, "-" * len(header)]
    for point in figures.checkpoints:
        full = (
            f"{point.full_run_events:>21,} {point.full_run_bytes:>8,}"
            f" {point.full_run_replay_ms:>9.1f}"
            if point.full_run_events
            else f"{'(none yet)':>21}"
        )
        lines.append(
            f"{point.days:>5,} {point.runs:>5} {point.refreshes:>9,} | {point.events:>19,}"
            f" {point.history_bytes:>8,} {point.replay_ms_sandboxed:>9.1f}"
            f" {point.replay_ms_unsandboxed:>11.1f} | {full}"
        )
    lines.append(
        f"replay ms: median of the timed replays, sandboxed (as the worker runs) unless marked;"
        f" the link continues as new every {figures.refreshes_per_run} refreshes;"
        f" run time {figures.seconds:.0f} s"
    )
    return "\n".join(lines)


def parse_days(text: str) -> list[int]:
    days = [int(part) for part in text.split(",") if part.strip()]
    if not days or min(days) < 1:
        raise argparse.ArgumentTypeError("give days like 10,100,365,1095")
    return days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=parse_days, help="checkpoints (default 10,100,365,1095)")
    parser.add_argument("--repeats", type=int, help="replays timed per checkpoint (default 5)")
    parser.add_argument("--refreshes-per-run", type=int, help="(default: LinkOptions' default)")
    parser.add_argument("--quick", action="store_true", help="days 3,40; 2 replays each")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    args.days = args.days or ([3, 40] if args.quick else [10, 100, 365, 1095])
    args.repeats = args.repeats or (2 if args.quick else 5)
    figures = asyncio.run(measure(args))
    print(json.dumps(asdict(figures), indent=2) if args.json else report(figures))
    sys.stdout.flush()
    # The Temporal client can abort the interpreter at exit (sdk-python issue 300): end here.
    exit_now(0)


if __name__ == "__main__":
    main()
