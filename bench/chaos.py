"""Chaos run: many links through MFA while the worker, the server and the providers misbehave.

    .venv/bin/python bench/chaos.py                 # the full run whose figures the README shows
    .venv/bin/python bench/chaos.py --links 12 --duration 20 --json   # the size CI runs

It starts its own dev stack (the dev server on SQLite on disk, the sandbox with injected faults,
`--workers` workers on one task queue) on free ports, then drives links the way users would,
every provider and every MFA shape, answering through the `submit_mfa` update, at most
`--concurrency` links in flight at once, while chaos tasks

- kill each worker with SIGKILL at its own random moments and start a new one in its place,
- stop the dev server and start it again on the same database, mid-flight,
- and the sandbox answers a share of requests with 5xx, 429 + `Retry-After`, read timeouts
  (it hangs past the client's timeout) and connections dropped after the provider acted.

Every link has a webhook URL: a local receiver that answers 503 to a share of deliveries.

At the end it prints: links started, connected, failed by design, lost; answers submitted and
lost; duplicate provider submissions (repeats that reached a provider, and repeats its
Idempotency-Key absorbed); webhook events each settled link announced against those the receiver
got (missing, wrong, repeated); and the worst time a link waited to recover. Exit status 1 when
any link, answer or webhook event was lost, any submission reached a provider twice, or a worker
died of itself. A link stopped by the SDK's known update-ordering defect (sdk-python issue 1591;
its history's exact shape is checked) is listed on its own line, not as lost: it waits for an
operator's reset, and nothing linkflow does can prevent it. So is a link whose provider failed
every attempt its retry policy allows (its history shows the last provider call failing on its
last attempt) and which ended FAILED with PROVIDER_ERROR, as such a link should: the sandbox's
injected faults did that, at the rates the run asked for.
The stack's logs (`worker1.log`, `worker2.log`, `temporal.log`, ...) stay in the directory the
report names, for the evidence behind a lost link.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import BenchStack, WebhookReceiver  # noqa: E402
from linkflow.client import LinkClient, LinkRefused  # noqa: E402
from linkflow.config import TemporalSettings  # noqa: E402
from linkflow.devstack import DevStack, StackError, StackPorts  # noqa: E402
from linkflow.models import (  # noqa: E402
    Credentials,
    LinkOptions,
    LinkReason,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    Provider,
)
from linkflow.process import exit_now  # noqa: E402
from linkflow.temporal import connect, quiet_runtime  # noqa: E402
from linkflow.webhook_policy import WebhookPolicy  # noqa: E402
from tests.fixtures.answers import right_answers  # noqa: E402
from tests.fixtures.history import calls_in  # noqa: E402
from workflows.link_record import STATUS_HISTORY_LENGTH  # noqa: E402
from workflows.provider_calls import PROVIDER_CALL_RETRY  # noqa: E402

# Which test users a run draws, with what each must end as.
CONNECTS = ("user_good", "user_mfa", "user_otp")
FAILS_BY_DESIGN = {"user_bad": LinkReason.INVALID_CREDENTIALS}
# How long one link may take, chaos included, before it counts as lost.
LINK_DEADLINE_SECONDS = 600.0
CALL_TIMEOUT_SECONDS = 45.0
# How long the last read of a settled link may keep failing before the link counts as lost.
FINAL_READ_SECONDS = 120.0
# A link that is busy is read again after a short pause that grows while nothing changes, so
# that hundreds of links in flight do not flood the workers with queries.
FIRST_POLL_SECONDS = 0.3
LONGEST_POLL_SECONDS = 2.0
# How long the dev server stays down when it is restarted.
SERVER_DOWN_SECONDS = (1.0, 3.0)
# How long, after the last link settled, its webhook events may take to arrive: a follower on a
# killed worker is retried after its 45 s heartbeat timeout, then backs off like any delivery.
WEBHOOK_SETTLE_SECONDS = 240.0


@dataclass
class LinkRun:
    provider: Provider
    username: str
    link_id: str = ""
    end: LinkSnapshot | None = None
    error: str | None = None
    answered: set[str] = field(default_factory=set)
    waits: list[float] = field(default_factory=list)
    # When the link counts as lost if it has not settled (time.monotonic()); set as it starts.
    deadline: float = float("inf")
    # Stopped by sdk-python issue 1591 (see `stopped_by_sdk_1591`), told apart from a lost link.
    sdk_1591: bool = False
    # Ended FAILED/PROVIDER_ERROR after its provider failed every attempt (`spent_every_attempt`).
    provider_gave_out: bool = False

    @property
    def should_connect(self) -> bool:
        return self.username in CONNECTS


@dataclass
class Figures:
    started: int = 0
    connected: int = 0
    failed_by_design: int = 0
    lost: int = 0
    # Links stopped by the SDK's update-ordering defect (sdk-python issue 1591), listed apart.
    stopped_by_sdk_1591: int = 0
    sdk_1591_links: list[str] = field(default_factory=list)
    # Links whose provider failed every attempt allowed, ending FAILED/PROVIDER_ERROR, listed apart.
    provider_gave_out: int = 0
    provider_gave_out_links: list[str] = field(default_factory=list)
    answers_submitted: int = 0
    answers_lost: int = 0
    duplicate_submissions: int = 0
    repeats_absorbed: int = 0
    unkeyed_writes: int = 0
    worst_recovery_seconds: float = 0.0
    worker_kills: int = 0
    server_restarts: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    lost_links: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    workers: int = 0
    concurrency: int = 0
    kills_by_worker: dict[str, int] = field(default_factory=dict)
    # A restarted worker that could not start yet (the dev server was down) and was started again.
    worker_start_retries: int = 0
    # Workers found dead that nobody killed: a crash, and evidence in that worker's log.
    worker_deaths: list[str] = field(default_factory=list)
    log_dir: str = ""
    # Webhook events the settled links announced (their status changes), and what arrived.
    webhook_events_expected: int = 0
    webhook_events_missing: int = 0
    webhook_events_wrong: int = 0
    webhook_repeats: int = 0
    webhook_refusals: int = 0
    webhook_settle_seconds: float = 0.0
    webhook_missing_links: list[str] = field(default_factory=list)


async def patiently(call: Any, what: str, run: LinkRun, deadline: float | None = None) -> Any:
    """Retry a client call through server restarts, until the link's deadline (or `deadline`);
    the time spent is a recovery wait."""
    began = time.monotonic()
    give_up = run.deadline if deadline is None else deadline
    delay = 0.25
    while True:
        try:
            async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
                result = await call()
            run.waits.append(time.monotonic() - began)
            return result
        except LinkRefused:
            raise
        except Exception as error:  # the server is restarting, or the worker is gone
            if time.monotonic() > give_up:
                raise RuntimeError(f"{what} kept failing: {error}") from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def rests(snapshot: LinkSnapshot) -> bool:
    return snapshot.status.is_final or snapshot.status in (
        LinkStatus.CONNECTED,
        LinkStatus.ACTION_REQUIRED,
    )


async def drive(links: LinkClient, run: LinkRun, webhook_url: str) -> None:
    """One user's link: start it, answer every round, wait until it rests or ends."""
    request = LinkRequest(
        provider=run.provider,
        user_ref=f"chaos-{run.provider.value}-{run.username}",
        credentials=Credentials(username=run.username, password="pass_good"),
        options=LinkOptions(webhook_url=webhook_url),
    )
    run.link_id = f"chaos-{run.provider.value}-{run.username}-{random.getrandbits(40):x}"
    run.deadline = time.monotonic() + LINK_DEADLINE_SECONDS
    await patiently(lambda: links.start_link(request, run.link_id), "start", run)
    pause = FIRST_POLL_SECONDS
    snapshot: LinkSnapshot = await patiently(lambda: links.snapshot(run.link_id), "snapshot", run)
    while time.monotonic() < run.deadline:
        if rests(snapshot):
            run.end = snapshot
            return
        submission = right_answers(snapshot)
        if snapshot.status is LinkStatus.MFA_REQUIRED and submission.answers:
            try:
                snapshot = await patiently(
                    lambda s=submission: links.submit_mfa(run.link_id, s), "answer", run
                )
                run.answered |= {answer.challenge_id for answer in submission.answers}
                pause = FIRST_POLL_SECONDS
                continue  # the update returns the next challenge or the result
            except LinkRefused:
                pass  # the round moved on (answered by a retry that landed): read again
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, LONGEST_POLL_SECONDS)
        snapshot = await patiently(lambda: links.snapshot(run.link_id), "snapshot", run)
    run.error = "did not settle before the deadline"


async def pause_unless_stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds`; False as soon as the run is over."""
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
        return False
    except TimeoutError:
        return True


async def start_worker_patiently(stack: DevStack, name: str, figures: Figures) -> None:
    """Start the worker `name`; while the dev server is down it cannot, so try again."""
    while True:
        try:
            await asyncio.to_thread(stack.start_worker, name)
            return
        except StackError:
            figures.worker_start_retries += 1
            await asyncio.to_thread(stack.stop_process, name, signal.SIGKILL)
            await asyncio.sleep(1.0)


async def note_if_died(stack: DevStack, name: str, figures: Figures) -> None:
    """A worker that ended though nobody killed it is a finding: record it, start another."""
    if stack.exited(name):
        figures.worker_deaths.append(f"{name} exited by itself; see {stack.log_path(name)}")
        await asyncio.to_thread(stack.stop_process, name, signal.SIGKILL)
        await start_worker_patiently(stack, name, figures)


async def kill_worker_now_and_then(
    stack: DevStack,
    name: str,
    stop: asyncio.Event,
    figures: Figures,
    rng: random.Random,
    every: tuple[float, float],
) -> None:
    """SIGKILL the worker `name` at random moments, each worker on its own clock."""
    while await pause_unless_stopped(stop, rng.uniform(*every)):
        await note_if_died(stack, name, figures)
        figures.worker_kills += 1
        figures.kills_by_worker[name] = figures.kills_by_worker.get(name, 0) + 1
        await asyncio.to_thread(stack.stop_process, name, signal.SIGKILL)
        await asyncio.sleep(rng.uniform(0, 2))
        await start_worker_patiently(stack, name, figures)
    await note_if_died(stack, name, figures)


async def restart_server_at(
    stack: DevStack, moments: list[float], figures: Figures, rng: random.Random
) -> None:
    """Stop the dev server and start it again on its database, at each of `moments` (seconds
    after the links begin to start; every moment falls before the last link starts)."""
    began = time.monotonic()
    for moment in sorted(moments):
        await asyncio.sleep(max(0.0, began + moment - time.monotonic()))
        figures.server_restarts += 1
        await asyncio.to_thread(stack.stop_process, "temporal")
        await asyncio.sleep(rng.uniform(*SERVER_DOWN_SECONDS))
        await asyncio.to_thread(stack.start_temporal)


def worker_names(count: int) -> list[str]:
    return [f"worker{number}" for number in range(1, count + 1)]


async def sandbox_stats(stack: DevStack) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{stack.ports.sandbox_url}/_sandbox/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


def plan_runs(args: argparse.Namespace) -> list[LinkRun]:
    """Every provider with every test user, in turn, `args.links` links in all."""
    providers = [Provider(name) for name in args.providers]
    users = [*CONNECTS, *FAILS_BY_DESIGN]
    return [
        LinkRun(
            provider=providers[(i // len(users)) % len(providers)],
            username=users[i % len(users)],
        )
        for i in range(args.links)
    ]


def faulty_stack(args: argparse.Namespace) -> BenchStack:
    """A stack on free ports whose sandbox injects the faults `args` asks for, and whose workers
    may deliver to a local webhook receiver; no worker yet."""
    return BenchStack(
        ports=StackPorts.free(),
        webhook_hosts=("127.0.0.1",),
        state_dir=Path(tempfile.mkdtemp(prefix="linkflow-chaos-")),
        task_queue="linkflow-chaos",
        sandbox_args=(
            "--latency-seconds",
            "0.2",
            "--error-rate",
            str(args.error_rate),
            "--throttle-rate",
            str(args.throttle_rate),
            "--timeout-rate",
            str(args.timeout_rate),
            "--drop-rate",
            str(args.drop_rate),
            "--retry-after-seconds",
            "1",
            "--fault-seed",
            str(args.seed),
        ),
    )


async def drive_all(
    links: LinkClient,
    runs: list[LinkRun],
    args: argparse.Namespace,
    rng: random.Random,
    webhook_url: str,
) -> None:
    """Each link starts at a random moment within `args.duration`, when a slot is free."""
    slots = asyncio.Semaphore(args.concurrency)

    async def one(run: LinkRun, delay: float) -> None:
        await asyncio.sleep(delay)
        async with slots:
            try:
                await drive(links, run, webhook_url)
            except Exception as error:
                run.error = f"{type(error).__name__}: {error}"

    await asyncio.gather(*(one(run, rng.uniform(0, args.duration)) for run in runs))


async def read_final_snapshots(links: LinkClient, runs: list[LinkRun], concurrency: int) -> None:
    """Every answer the client saw accepted must be counted by its link: read each link again."""
    slots = asyncio.Semaphore(concurrency)

    async def final(run: LinkRun) -> None:
        async with slots:
            give_up = time.monotonic() + FINAL_READ_SECONDS
            try:
                run.end = await patiently(
                    lambda: links.snapshot(run.link_id), "final read", run, give_up
                )
            except RuntimeError as error:
                run.end, run.error = None, str(error)

    await asyncio.gather(*(final(run) for run in runs if run.end is not None))


async def run_with_chaos(
    stack: DevStack,
    runs: list[LinkRun],
    args: argparse.Namespace,
    figures: Figures,
    receiver: WebhookReceiver,
) -> dict[str, Any]:
    """Start the stack and its workers, drive every link through the chaos, return the
    sandbox's counts."""
    rng = random.Random(args.seed)
    names = worker_names(args.workers)
    await asyncio.to_thread(stack.start, worker=False)
    for name in names:
        await asyncio.to_thread(stack.start_worker, name)
    settings = TemporalSettings(address=stack.ports.temporal_address, task_queue=stack.task_queue)
    client = await connect(settings, runtime=quiet_runtime(), key_ring=stack.key_ring())
    links = LinkClient(client, stack.task_queue, webhook_policy=WebhookPolicy.allowing("127.0.0.1"))
    stop = asyncio.Event()
    # Restarts fall within the first 90% of the start window, while links are still starting.
    moments = [rng.uniform(0.1, 0.9) * args.duration for _ in range(args.server_restarts)]
    chaos = [
        asyncio.create_task(
            kill_worker_now_and_then(
                stack, name, stop, figures, random.Random(f"{args.seed}:{name}"), args.kill_every
            )
        )
        for name in names
    ]
    chaos.append(asyncio.create_task(restart_server_at(stack, moments, figures, rng)))
    await drive_all(links, runs, args, rng, receiver.url)
    stop.set()
    await asyncio.gather(*chaos)
    await read_final_snapshots(links, runs, args.concurrency)
    for run in runs:
        if run.end is None and run.link_id:  # never settled, or its last read kept failing
            run.sdk_1591 = await stopped_by_sdk_1591(client, run.link_id)
        elif run.end is not None and (run.end.status, run.end.reason) == PROVIDER_GAVE_OUT:
            history = client.get_workflow_handle(run.link_id).fetch_history_events()
            run.provider_gave_out = spent_every_attempt([event async for event in history])
    figures.webhook_settle_seconds = await webhooks_settled(runs, receiver)
    return await sandbox_stats(stack)


async def stopped_by_sdk_1591(client: Client, link_id: str) -> bool:
    """Whether the link's history has the shape of sdk-python issue 1591 (`has_sdk_1591_shape`)."""
    history = client.get_workflow_handle(link_id).fetch_history_events()
    return has_sdk_1591_shape([event.event_type async for event in history])


PROVIDER_GAVE_OUT = (LinkStatus.FAILED, LinkReason.PROVIDER_ERROR)


def spent_every_attempt(events: Sequence[HistoryEvent]) -> bool:
    """Whether the run's last provider call, local or not, failed on the last attempt its retry
    policy allows: the provider failed every attempt, and the link gave up as it should."""
    provider = [call for call in calls_in(events) if call.activity_type.startswith("provider_")]
    if not provider:
        return False
    last = provider[-1]
    return last.failed and last.attempt >= PROVIDER_CALL_RETRY.maximum_attempts


def has_sdk_1591_shape(event_types: Sequence[int]) -> bool:
    """sdk-python issue 1591 (open): after a step's result, a workflow task timed out or failed (a
    worker was killed); the next completed task reacted to the result and accepted an update that
    had arrived meanwhile, in that order; replaying that task, the SDK hands the update over
    first, so every later task fails with a nondeterminism error. Any other nondeterminism error
    is a lost link like any other."""
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    interruptions = {
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    }
    since_completed: set[int] = set()
    for index, event_type in enumerate(event_types):
        if event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            since_completed.add(event_type)
            continue
        commands: list[int] = []
        for later in event_types[index + 1 :]:
            if later == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                break
            commands.append(later)
        if (
            accepted in commands[1:]
            and commands[0] != accepted
            and EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED in since_completed
            and since_completed & interruptions
        ):
            return True
        since_completed = set()
    return False


def announced(run: LinkRun) -> dict[int, LinkStatus] | None:
    """The webhook events a settled link sent, by sequence: every status change after its start
    (None when its history was cut short and the count cannot be read from it)."""
    if run.end is None or len(run.end.history) >= STATUS_HISTORY_LENGTH:
        return None
    return {number: change.status for number, change in enumerate(run.end.history[1:], start=1)}


def received_by_link(receiver: WebhookReceiver) -> dict[str, dict[int, list[str]]]:
    """The statuses the receiver got, by link and sequence (a repeat appears twice)."""
    got: dict[str, dict[int, list[str]]] = {}
    for event in receiver.events:
        got.setdefault(event["link_id"], {}).setdefault(event["sequence"], []).append(
            event["status"]
        )
    return got


async def webhooks_settled(runs: list[LinkRun], receiver: WebhookReceiver) -> float:
    """Seconds until every settled link's events arrived (or WEBHOOK_SETTLE_SECONDS passed)."""
    began = time.monotonic()
    while time.monotonic() - began < WEBHOOK_SETTLE_SECONDS:
        got = received_by_link(receiver)
        if all(
            set(expected) <= set(got.get(run.link_id, {}))
            for run in runs
            if (expected := announced(run)) is not None
        ):
            break
        await asyncio.sleep(1.0)
    return time.monotonic() - began


def tally_webhooks(figures: Figures, runs: list[LinkRun], receiver: WebhookReceiver) -> None:
    got = received_by_link(receiver)
    figures.webhook_refusals = receiver.refused
    for run in runs:
        expected = announced(run)
        if expected is None:
            continue
        delivered = got.get(run.link_id, {})
        figures.webhook_events_expected += len(expected)
        missing = [number for number in expected if number not in delivered]
        figures.webhook_events_missing += len(missing)
        figures.webhook_events_wrong += sum(
            1
            for number, statuses in delivered.items()
            if any(status != expected.get(number) for status in statuses)
        )
        figures.webhook_repeats += sum(len(statuses) - 1 for statuses in delivered.values())
        if missing:
            figures.webhook_missing_links.append(f"{run.link_id}: sequences {missing}")


def tally(figures: Figures, runs: list[LinkRun], stats: dict[str, Any]) -> None:
    for run in runs:
        figures.answers_submitted += len(run.answered)
        end = run.end
        if end is not None:
            figures.answers_lost += max(0, len(run.answered) - end.attempts.answers_submitted)
        figures.worst_recovery_seconds = max([figures.worst_recovery_seconds, *run.waits])
        expected_reason = FAILS_BY_DESIGN.get(run.username)
        if end is not None and run.should_connect and end.status is LinkStatus.CONNECTED:
            figures.connected += 1
        elif (
            end is not None
            and expected_reason is not None
            and (end.status is LinkStatus.FAILED and end.reason is expected_reason)
        ):
            figures.failed_by_design += 1
        elif run.sdk_1591:
            figures.stopped_by_sdk_1591 += 1
            figures.sdk_1591_links.append(run.link_id)
        elif run.provider_gave_out and end is not None:
            figures.provider_gave_out += 1
            figures.provider_gave_out_links.append(f"{run.link_id}: {end.message}")
        else:
            figures.lost += 1
            state = f"{end.status} {end.reason} {end.message}" if end is not None else run.error
            figures.lost_links.append(f"{run.link_id}: {state}")
    for provider in stats.get("providers", {}).values():
        figures.duplicate_submissions += int(provider.get("duplicate_requests", 0))
        figures.repeats_absorbed += int(provider.get("replayed", 0))
        figures.unkeyed_writes += int(provider.get("unkeyed_writes", 0))
    figures.faults = dict(Counter(stats.get("faults", {})))


async def run_chaos(args: argparse.Namespace) -> Figures:
    random.seed(args.seed)
    runs = plan_runs(args)
    stack = faulty_stack(args)
    figures = Figures(
        started=len(runs),
        workers=args.workers,
        concurrency=args.concurrency,
        log_dir=str(stack.log_dir),
    )
    receiver = WebhookReceiver(refuse_share=args.webhook_refuse_share, seed=args.seed)
    await receiver.start()
    began = time.monotonic()
    try:
        stats = await run_with_chaos(stack, runs, args, figures, receiver)
    finally:
        await asyncio.to_thread(stack.stop)
        await receiver.stop()
    figures.duration_seconds = time.monotonic() - began
    tally(figures, runs, stats)
    tally_webhooks(figures, runs, receiver)
    return figures


def report(figures: Figures) -> str:
    lines = [
        f"links started:                {figures.started}",
        f"  connected:                  {figures.connected}",
        f"  failed by design:           {figures.failed_by_design}",
        f"  lost:                       {figures.lost}",
        f"  stopped by sdk-python 1591: {figures.stopped_by_sdk_1591}",
        f"  provider failed every attempt: {figures.provider_gave_out}",
        f"answers submitted:            {figures.answers_submitted}",
        f"  lost:                       {figures.answers_lost}",
        f"duplicate provider submissions: {figures.duplicate_submissions}"
        f" (repeats absorbed by Idempotency-Key: {figures.repeats_absorbed})",
        f"webhook events announced:     {figures.webhook_events_expected}"
        f" (missing {figures.webhook_events_missing}, wrong {figures.webhook_events_wrong},"
        f" repeated {figures.webhook_repeats}; the receiver refused {figures.webhook_refusals}"
        f" deliveries; all arrived {figures.webhook_settle_seconds:.0f} s after the last link"
        " settled)",
        f"worst wait to recover:        {figures.worst_recovery_seconds:.1f} s",
        f"chaos: {figures.worker_kills} worker SIGKILLs {figures.kills_by_worker},"
        f" {figures.server_restarts} dev-server restarts, sandbox faults {figures.faults}",
        f"workers:                      {figures.workers} on one task queue,"
        f" {figures.worker_start_retries} restarts retried while the server was down,"
        f" {len(figures.worker_deaths)} died unkilled",
        f"run time:                     {figures.duration_seconds:.0f} s"
        f" (at most {figures.concurrency} links in flight)",
    ]
    lines += [f"LOST {entry}" for entry in figures.lost_links]
    lines += [f"WORKER DIED {entry}" for entry in figures.worker_deaths]
    lines += [f"SDK 1591 {entry}" for entry in figures.sdk_1591_links]
    lines += [f"PROVIDER GAVE OUT {entry}" for entry in figures.provider_gave_out_links]
    lines += [f"WEBHOOK MISSING {entry}" for entry in figures.webhook_missing_links]
    if (
        figures.lost_links
        or figures.worker_deaths
        or figures.sdk_1591_links
        or figures.provider_gave_out_links
    ):
        lines.append(f"logs: {figures.log_dir}")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--links", type=int, default=500)
    parser.add_argument(
        "--duration", type=float, default=300.0, help="seconds over which the links start"
    )
    parser.add_argument(
        "--concurrency", type=int, default=40, help="links in flight at once, at most"
    )
    parser.add_argument("--workers", type=int, default=2, help="workers on the task queue")
    parser.add_argument(
        "--kill-every",
        type=float,
        nargs=2,
        default=(6.0, 20.0),
        metavar=("MIN", "MAX"),
        help="seconds between SIGKILLs of one worker, drawn uniformly, per worker",
    )
    parser.add_argument("--providers", nargs="+", default=[p.value for p in Provider])
    parser.add_argument("--server-restarts", type=int, default=3)
    parser.add_argument("--error-rate", type=float, default=0.08)
    parser.add_argument("--throttle-rate", type=float, default=0.04)
    parser.add_argument("--timeout-rate", type=float, default=0.01)
    parser.add_argument("--drop-rate", type=float, default=0.04)
    parser.add_argument(
        "--webhook-refuse-share",
        type=float,
        default=0.05,
        help="share of webhook deliveries the receiver answers with 503",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.workers < 1 or args.concurrency < 1:
        parser.error("--workers and --concurrency must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    figures = asyncio.run(run_chaos(args))
    print(json.dumps(figures.__dict__, indent=2) if args.json else report(figures))
    sys.stdout.flush()
    healthy = (
        figures.lost == 0
        and figures.answers_lost == 0
        and figures.duplicate_submissions == 0
        and figures.webhook_events_missing == 0
        and figures.webhook_events_wrong == 0
        and not figures.worker_deaths
    )
    # The Temporal client can abort the interpreter at exit (sdk-python issue 300): end here.
    exit_now(0 if healthy else 1)


if __name__ == "__main__":
    main()
