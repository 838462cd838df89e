"""Speed benchmark: linkflow beside the simplest link workflow a newcomer would write.

    .venv/bin/python bench/speed.py                         # the full run (a few minutes)
    .venv/bin/python bench/speed.py --sizes 1,10 --links 20  # smaller
    .venv/bin/python bench/speed.py --quick --json           # the size CI runs

Figures alone say little about a workflow's speed: this machine, this dev server and this
sandbox set the floor. So one run starts one dev stack (Temporal's dev server on SQLite on disk,
the sandbox with `--latency-seconds 0`) and drives, side by side on it, linkflow (its worker,
through `LinkClient`: `start_and_wait`, then `submit_mfa` per round) and the newcomer's workflow
(bench/newcomer.py: its own worker and task queue, the plain pydantic data converter), both linking
MX's test user `user_otp` (where to text a code, then the code). The two run alternately, in pairs,
so that the machine's noise hits both, and every figure is also given as a ratio:

- complete links per second at each number of links in flight (linkflow / newcomer);
- CPU per link of the dev server plus the side's worker (from /proc/<pid>/stat);
- at 1 in flight, answer -> next challenge and start -> first challenge (p50, p90), each also as
  a multiple of a bare update round trip (an update that returns at once) measured in the same
  pairs, beside the provider floor: an update that runs one local activity making two reads of
  the sandbox's MX, the least an answer that sends one call and reads its result once can cost,
  and a bare start (update-with-start of a workflow whose update answers at once);
- with a second sandbox whose provider jobs take 0.3 s: answer -> next challenge, and how far
  over the 0.3 s job it is;
- linkflow's links with a webhook URL (a local receiver) alternating with links without one, at 1
  in flight: answer -> next challenge and start -> first challenge of each, first back to back
  (each call the moment the last reply came, so a link's calls meet the follower still delivering
  the change before, and the next link's start meets it finishing), then at a user's pace (each
  call `PACED_SECONDS` after the last reply, both sides alike), where the follower is idle when
  the call is made: the answer's own path;
- the history events of one complete two-round link (linkflow without and with a webhook URL,
  and the newcomer's), in all and per event type.

Only linkflow's public entry points are used (`LinkClient`, `linkflow.models`, the dev stack), so
the benchmark measures whatever the workflow and activities are today.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle  # noqa: E402
from temporalio.common import WorkflowIDConflictPolicy  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402

from bench.newcomer import (  # noqa: E402
    BARE_WORKFLOW,
    LINK_WORKFLOW,
    READY_LINE,
    LinkStep,
)
from bench.stack import (  # noqa: E402
    PACED_SECONDS,
    BenchStack,
    CpuMeter,
    MachineMeter,
    WebhookReceiver,
    machine,
)
from linkflow.client import LinkClient  # noqa: E402
from linkflow.models import (  # noqa: E402
    Challenge,
    ChallengeAnswer,
    Credentials,
    LinkOptions,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    MfaSubmission,
    Provider,
)
from linkflow.process import exit_now  # noqa: E402
from linkflow.temporal import quiet_runtime  # noqa: E402
from providers.base import Outcome  # noqa: E402
from sandbox.users import CORRECT_ANSWER  # noqa: E402

USERNAME = "user_otp"
PASSWORD = "pass_good"
SLOW_LATENCY_SECONDS = 0.3
FLOOR_INSTITUTION = "mxbank"  # the sandbox's MX institution every test user logs in at
LINKFLOW = "linkflow"
NEWCOMER = "newcomer"
SIDES = (LINKFLOW, NEWCOMER)
# A link asks at most this many rounds before the benchmark calls it broken.
MAX_ROUNDS = 6
HISTORY_SETTLE_SECONDS = 1.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def answers_to(challenges: Sequence[Challenge]) -> MfaSubmission:
    """What a user who knows the sandbox submits: `correct`, or the first option offered."""
    return MfaSubmission(
        answers=[
            ChallengeAnswer(
                challenge_id=challenge.id,
                value=challenge.options[0].value if challenge.kind.has_options else CORRECT_ANSWER,
            )
            for challenge in challenges
            if challenge.kind.needs_answer
        ]
    )


def link_request(side: str, webhook_url: str | None = None) -> LinkRequest:
    options = LinkOptions(webhook_url=webhook_url) if webhook_url else LinkOptions()
    return LinkRequest(
        provider=Provider.MX,
        user_ref=f"speed-{side}-{uuid.uuid4().hex[:12]}",
        credentials=Credentials(username=USERNAME, password=PASSWORD),
        options=options,
    )


@dataclass
class Latencies:
    """Seconds per step of the links driven while they were recorded."""

    start_to_first_challenge: list[float] = field(default_factory=list)
    answer_to_next_challenge: list[float] = field(default_factory=list)
    answer_to_result: list[float] = field(default_factory=list)

    def extend(self, other: Latencies) -> None:
        self.start_to_first_challenge += other.start_to_first_challenge
        self.answer_to_next_challenge += other.answer_to_next_challenge
        self.answer_to_result += other.answer_to_result


# One link driven to its end: returns whether it connected, recording its steps' times.
Driver = Callable[[Latencies], Awaitable[bool]]


@dataclass
class LinkflowSide:
    links: LinkClient
    # When set: (link id, status, time.perf_counter()) as each start or answer is replied to.
    replies: list[tuple[str, LinkStatus, float]] | None = None
    # How long to wait before each call (a start, an answer): 0 sends it the moment it can.
    pause_seconds: float = 0.0

    async def drive(self, latencies: Latencies, webhook_url: str | None = None) -> bool:
        return (await self.drive_for_id(latencies, webhook_url))[1]

    async def drive_for_id(
        self, latencies: Latencies, webhook_url: str | None = None
    ) -> tuple[str, bool]:
        await asyncio.sleep(self.pause_seconds)
        began = time.perf_counter()
        link_id, snapshot = await self.links.start_and_wait(link_request(LINKFLOW, webhook_url))
        latencies.start_to_first_challenge.append(time.perf_counter() - began)
        self._replied(link_id, snapshot)
        for _round in range(MAX_ROUNDS):
            if snapshot.status is not LinkStatus.MFA_REQUIRED:
                break
            snapshot = await self._answer(link_id, snapshot, latencies)
        return link_id, snapshot.status is LinkStatus.CONNECTED

    async def _answer(
        self, link_id: str, snapshot: LinkSnapshot, latencies: Latencies
    ) -> LinkSnapshot:
        submission = answers_to(snapshot.pending_challenges)
        await asyncio.sleep(self.pause_seconds)
        began = time.perf_counter()
        snapshot = await self.links.submit_mfa(link_id, submission)
        took = time.perf_counter() - began
        self._replied(link_id, snapshot)
        asks_again = snapshot.status is LinkStatus.MFA_REQUIRED
        bucket = latencies.answer_to_next_challenge if asks_again else latencies.answer_to_result
        bucket.append(took)
        return snapshot

    def _replied(self, link_id: str, snapshot: LinkSnapshot) -> None:
        if self.replies is not None:
            self.replies.append((link_id, snapshot.status, time.perf_counter()))


@dataclass
class NewcomerSide:
    client: Client
    task_queue: str

    async def drive(self, latencies: Latencies) -> bool:
        return (await self.drive_for_id(latencies))[1]

    async def drive_for_id(self, latencies: Latencies) -> tuple[str, bool]:
        """As a newcomer would: start the workflow, then ask it (an update) what it asks."""
        workflow_id = f"newcomer-{uuid.uuid4()}"
        began = time.perf_counter()
        handle = await self.client.start_workflow(
            LINK_WORKFLOW,
            link_request(NEWCOMER),
            id=workflow_id,
            task_queue=self.task_queue,
            result_type=LinkStep,
        )
        step = await handle.execute_update("first_challenge", result_type=LinkStep)
        latencies.start_to_first_challenge.append(time.perf_counter() - began)
        for _round in range(MAX_ROUNDS):
            if not step.asks_user:
                break
            submission = answers_to(step.state.challenges)
            began = time.perf_counter()
            step = await handle.execute_update("submit_mfa", submission, result_type=LinkStep)
            took = time.perf_counter() - began
            bucket = (
                latencies.answer_to_next_challenge if step.asks_user else latencies.answer_to_result
            )
            bucket.append(took)
        return workflow_id, step.state.outcome is Outcome.LINKED and bool(step.accounts)


# The processes whose CPU a side's links cost: the dev server and the side's own worker.
SIDE_PROCESSES = {
    LINKFLOW: {"server": "temporal", "worker": "worker"},
    NEWCOMER: {"server": "temporal", "worker": "newcomer"},
}
CLIENT = "client"


@dataclass
class Batch:
    side: str
    in_flight: int
    links: int
    connected: int
    seconds: float
    cpu: dict[str, float]  # CPU seconds by process name (the stack's, and this one's as CLIENT)
    machine_busy: float  # share of the machine's CPU time that was busy, all programs
    ours: float  # share of the machine's CPU time the stack and this process used
    latencies: Latencies
    errors: list[str]

    @property
    def links_per_second(self) -> float:
        return self.connected / self.seconds if self.seconds > 0 else 0.0

    def cpu_ms_per_link(self, role: str) -> float:
        process = SIDE_PROCESSES[self.side].get(role, role)
        return 1000 * self.cpu.get(process, 0.0) / max(1, self.connected)

    def details(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "in_flight": self.in_flight,
            "links": self.links,
            "connected": self.connected,
            "seconds": round(self.seconds, 2),
            "links_per_second": round(self.links_per_second, 2),
            "cpu_ms_per_link": {
                role: round(self.cpu_ms_per_link(role), 1) for role in ("server", "worker", CLIENT)
            },
            "machine_busy_percent": round(100 * self.machine_busy, 1),
            "this_run_percent": round(100 * self.ours, 1),
        }

    @property
    def total_cpu_ms_per_link(self) -> float:
        return self.cpu_ms_per_link("server") + self.cpu_ms_per_link("worker")


async def run_batch(
    side: str, drive: Driver, pids: dict[str, int], *, links: int, in_flight: int
) -> Batch:
    """`links` links, `in_flight` at a time, timed, with the CPU each of `pids` used and how busy
    the whole machine was meanwhile (other programs on it slow both sides alike)."""
    latencies = Latencies()
    errors: list[str] = []
    queue = iter(range(links))
    connected = 0

    async def lane() -> None:
        nonlocal connected
        for _ in queue:
            try:
                linked = await drive(latencies)
            except Exception as error:  # counted and reported: a broken link is a finding
                errors.append(f"{type(error).__name__}: {error}"[:300])
            else:
                connected += linked

    meter = CpuMeter(pids).start()
    whole = MachineMeter().start()
    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(in_flight, links))))
    seconds = time.perf_counter() - began
    cpu = meter.stop()
    busy, elapsed = whole.stop()
    elapsed = max(elapsed, 1e-9)
    return Batch(
        side,
        in_flight,
        links,
        connected,
        seconds,
        cpu,
        machine_busy=busy / elapsed,
        ours=sum(cpu.values()) / elapsed,
        latencies=latencies,
        errors=errors,
    )


async def bare_round_trips(
    client: Client, task_queue: str, count: int, *, update: str = "ping", args: Sequence[Any] = ()
) -> list[float]:
    """`count` updates, one after another, on one `BareUpdateWorkflow`: `ping` answers at once,
    `provider_floor` (with an MX institution code) first reads the sandbox twice."""
    handle = await client.start_workflow(
        BARE_WORKFLOW, id=f"bare-{uuid.uuid4()}", task_queue=task_queue
    )
    await handle.execute_update(update, args=args, result_type=int)  # the first also starts it
    took: list[float] = []
    for _ in range(count):
        began = time.perf_counter()
        await handle.execute_update(update, args=args, result_type=int)
        took.append(time.perf_counter() - began)
    await handle.signal("finish")
    return took


async def bare_start_round_trips(client: Client, task_queue: str, count: int) -> list[float]:
    """`count` update-with-starts of a `BareUpdateWorkflow` whose `ping` answers at once: what
    starting a workflow and hearing back from it costs before any provider is called."""
    took: list[float] = []
    started: list[WorkflowHandle[Any, Any]] = []
    for _ in range(count):
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            BARE_WORKFLOW,
            id=f"bare-start-{uuid.uuid4()}",
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        began = time.perf_counter()
        await client.execute_update_with_start_workflow(
            "ping", start_workflow_operation=start, result_type=int
        )
        took.append(time.perf_counter() - began)
        started.append(await start.workflow_handle())
    # Ended only after the timing, so that no run's ending overlaps the next one's start.
    await asyncio.gather(*(handle.signal("finish") for handle in started))
    return took


async def provider_floor_round_trips(client: Client, task_queue: str, count: int) -> list[float]:
    return await bare_round_trips(
        client, task_queue, count, update="provider_floor", args=[FLOOR_INSTITUTION]
    )


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 2) if denominator > 0 else 0.0


def delivery_lags(
    replies: Sequence[tuple[str, LinkStatus, float]], receiver: WebhookReceiver
) -> list[float]:
    """Seconds from each reply a client got (a start's first challenge, an answer's outcome) to
    the arrival of the webhook event announcing the status it showed: the k-th reply showing a
    status is matched with the link's k-th event of that status."""
    arrived: dict[tuple[str, str], list[float]] = {}
    for event, at in zip(receiver.events, receiver.arrivals, strict=True):  # in arrival order
        arrived.setdefault((event["link_id"], event["status"]), []).append(at)
    lags: list[float] = []
    for link_id, status, replied_at in replies:
        times = arrived.get((link_id, status.value))
        if times:
            lags.append(times.pop(0) - replied_at)
    return lags


async def settled_history(client: Client, workflow_id: str) -> Counter[str]:
    """The workflow's history events by type, once no new event has come for a while."""
    handle = client.get_workflow_handle(workflow_id)
    previous = -1
    deadline = time.monotonic() + 20
    while True:
        history = await handle.fetch_history()
        counts = Counter(_event_name(event.event_type) for event in history.events)
        total = sum(counts.values())
        if total == previous or time.monotonic() > deadline:
            return counts
        previous = total
        await asyncio.sleep(HISTORY_SETTLE_SECONDS)


def _event_name(event_type: int) -> str:
    from temporalio.api.enums.v1 import EventType

    return EventType.Name(event_type).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ the run


@dataclass
class Settings:
    sizes: list[int]
    links: int | None
    pairs: int
    bare_updates: int
    slow_links: int
    warmup_links: int
    webhook_links: int

    def links_at(self, size: int) -> int:
        """Links per side per pair: enough for a few waves at every size."""
        return self.links if self.links is not None else max(20, 2 * size)


@dataclass
class Results:
    batches: list[tuple[int, Batch, Batch]] = field(default_factory=list)  # (pair, linkflow, new)
    bare: list[list[float]] = field(default_factory=list)  # per pair, at 1 in flight
    floor: list[list[float]] = field(default_factory=list)  # per pair: the provider floor
    bare_start: list[list[float]] = field(default_factory=list)  # per pair: a bare start
    slow: dict[str, Latencies] = field(default_factory=dict)
    # linkflow at 1 in flight: links with a webhook URL ("with") beside links without ("without")
    webhook: dict[str, Latencies] = field(default_factory=dict)
    # from each reply on a link with a webhook URL to its event's arrival at the receiver
    webhook_lags: list[float] = field(default_factory=list)
    # the same two sides, each call `PACED_SECONDS` after the last reply; and those lags
    webhook_paced: dict[str, Latencies] = field(default_factory=dict)
    webhook_paced_lags: list[float] = field(default_factory=list)
    history: dict[str, Counter[str]] = field(default_factory=dict)
    webhooks_received: int = 0
    history_connected: dict[str, bool] = field(default_factory=dict)


async def measure(settings: Settings) -> Results:
    stack = BenchStack.on_free_ports(
        sandbox_latency_seconds=0.0, task_queue="linkflow-speed", webhook_hosts=("127.0.0.1",)
    )
    receiver = WebhookReceiver()
    try:
        log(f"starting the dev stack in {stack.state_dir}")
        await asyncio.to_thread(start_processes, stack)
        await receiver.start()
        return await measure_on(stack, receiver, settings)
    finally:
        await receiver.stop()
        await asyncio.to_thread(stack.stop)
        shutil.rmtree(stack.state_dir, ignore_errors=True)


def start_processes(stack: BenchStack) -> None:
    """The stack and linkflow's worker, the newcomer's worker, and both again on a slow sandbox."""
    stack.start(worker=True)
    newcomer_worker(stack, "newcomer", "newcomer-speed", stack.ports.sandbox_url)
    slow_url = stack.spawn_sandbox("sandbox-slow", SLOW_LATENCY_SECONDS)
    stack.spawn_linkflow_worker("worker-slow", "linkflow-speed-slow", slow_url)
    newcomer_worker(stack, "newcomer-slow", "newcomer-speed-slow", slow_url)


def newcomer_worker(stack: BenchStack, name: str, task_queue: str, sandbox_url: str) -> None:
    command = [
        sys.executable,
        str(ROOT / "bench" / "newcomer.py"),
        "worker",
        "--address",
        stack.ports.temporal_address,
        "--task-queue",
        task_queue,
        "--sandbox-url",
        sandbox_url,
    ]
    stack.spawn(name, command, ready_line=READY_LINE)


async def measure_on(stack: BenchStack, receiver: WebhookReceiver, settings: Settings) -> Results:
    links = await stack.link_client()
    newcomer_client = await Client.connect(
        stack.ports.temporal_address,
        data_converter=pydantic_data_converter,
        runtime=quiet_runtime(),
    )
    sides: dict[str, Driver] = {
        LINKFLOW: LinkflowSide(links).drive,
        NEWCOMER: NewcomerSide(newcomer_client, "newcomer-speed").drive,
    }
    pids = stack.pids() | {CLIENT: os.getpid()}
    results = Results()
    log("warming up")
    for side, drive in sides.items():
        await run_batch(side, drive, pids, links=settings.warmup_links, in_flight=1)
    await bare_round_trips(newcomer_client, "newcomer-speed", 5)
    await provider_floor_round_trips(newcomer_client, "newcomer-speed", 5)
    await bare_start_round_trips(newcomer_client, "newcomer-speed", 5)

    for size in settings.sizes:
        for pair in range(settings.pairs):
            order = SIDES if pair % 2 == 0 else SIDES[::-1]
            batches: dict[str, Batch] = {}
            for side in order:
                batches[side] = await run_batch(
                    side,
                    sides[side],
                    pids,
                    links=settings.links_at(size),
                    in_flight=size,
                )
            if size == 1:
                results.bare.append(
                    await bare_round_trips(newcomer_client, "newcomer-speed", settings.bare_updates)
                )
                results.floor.append(
                    await provider_floor_round_trips(
                        newcomer_client, "newcomer-speed", settings.bare_updates
                    )
                )
                results.bare_start.append(
                    await bare_start_round_trips(
                        newcomer_client, "newcomer-speed", settings.bare_updates
                    )
                )
            results.batches.append((pair, batches[LINKFLOW], batches[NEWCOMER]))
            log(pair_line(size, pair, batches[LINKFLOW], batches[NEWCOMER]))

    log(f"the slow sandbox ({SLOW_LATENCY_SECONDS} s provider jobs)")
    slow_links = await stack.link_client("linkflow-speed-slow")
    slow_sides: dict[str, Driver] = {
        LINKFLOW: LinkflowSide(slow_links).drive,
        NEWCOMER: NewcomerSide(newcomer_client, "newcomer-speed-slow").drive,
    }
    for side in SIDES:
        results.slow[side] = Latencies()
    for _ in range(settings.slow_links):
        for side in SIDES:
            batch = await run_batch(side, slow_sides[side], {}, links=1, in_flight=1)
            results.slow[side].extend(batch.latencies)

    log("linkflow with and without a webhook URL")
    results.webhook, results.webhook_lags = await compare_webhooks(
        links, receiver, settings.webhook_links, pause_seconds=0.0
    )
    log(f"the same, each call {PACED_SECONDS} s after the last reply")
    results.webhook_paced, results.webhook_paced_lags = await compare_webhooks(
        links, receiver, settings.webhook_links, pause_seconds=PACED_SECONDS
    )

    log("history of one complete link each")
    await record_histories(links, newcomer_client, receiver, results)
    return results


async def compare_webhooks(
    links: LinkClient, receiver: WebhookReceiver, count: int, *, pause_seconds: float
) -> tuple[dict[str, Latencies], list[float]]:
    """`count` links without a webhook URL alternating with as many with one, each call
    `pause_seconds` after the last reply: their latencies ("with", "without") and how long after
    each reply on a link with one its event reached the receiver."""
    compared = {"with": Latencies(), "without": Latencies()}
    plain = LinkflowSide(links, pause_seconds=pause_seconds)
    hooked = LinkflowSide(links, replies=[], pause_seconds=pause_seconds)
    for _ in range(count):
        await plain.drive(compared["without"])
        await hooked.drive(compared["with"], receiver.url)
    await asyncio.sleep(1.0)  # the last link's events
    return compared, delivery_lags(hooked.replies or [], receiver)


async def record_histories(
    links: LinkClient, newcomer_client: Client, receiver: WebhookReceiver, results: Results
) -> None:
    plain_id, plain_ok = await LinkflowSide(links).drive_for_id(Latencies())
    hooked_id, hooked_ok = await LinkflowSide(links).drive_for_id(Latencies(), receiver.url)
    newcomer_id, newcomer_ok = await NewcomerSide(newcomer_client, "newcomer-speed").drive_for_id(
        Latencies()
    )
    await newcomer_client.get_workflow_handle(newcomer_id).result()
    results.history["linkflow"] = await settled_history(links.temporal, plain_id)
    results.history["linkflow_webhook"] = await settled_history(links.temporal, hooked_id)
    results.history["newcomer"] = await settled_history(newcomer_client, newcomer_id)
    results.webhooks_received = len(receiver.events)
    results.history_connected = {
        "linkflow": plain_ok,
        "linkflow_webhook": hooked_ok,
        "newcomer": newcomer_ok,
    }


# ------------------------------------------------------------------------------------ figures


def pair_line(size: int, pair: int, mine: Batch, theirs: Batch) -> str:
    return (
        f"{size:>6} {pair + 1:>4}"
        f" {mine.links_per_second:>9.2f} {theirs.links_per_second:>9.2f}"
        f" {ratio(mine.links_per_second, theirs.links_per_second):>6.2f}"
        f" {mine.total_cpu_ms_per_link:>9.1f} {theirs.total_cpu_ms_per_link:>9.1f}"
        f" {ratio(mine.total_cpu_ms_per_link, theirs.total_cpu_ms_per_link):>6.2f}"
        f"   {100 * mine.machine_busy:>3.0f}/{100 * mine.ours:<3.0f}"
        f"  {100 * theirs.machine_busy:>3.0f}/{100 * theirs.ours:<3.0f}"
        f"{'  ERRORS' if mine.errors or theirs.errors else ''}"
    )


PAIR_HEADER = (
    "    in        complete links/s         CPU ms/link, server+worker   machine busy %/ours %\n"
    "flight pair  linkflow  newcomer  ratio  linkflow  newcomer  ratio   linkflow  newcomer"
)


def figures(results: Results) -> dict[str, float]:
    """Every figure, by name: medians over pairs for rates and CPU, percentiles for times."""
    out: dict[str, float] = {}
    sizes = sorted({batch.in_flight for _, batch, _ in results.batches})
    for size in sizes:
        pairs = [(mine, theirs) for _, mine, theirs in results.batches if mine.in_flight == size]
        for side, index in ((LINKFLOW, 0), (NEWCOMER, 1)):
            side_batches = [pair[index] for pair in pairs]
            out[f"links_per_second.{size}.{side}"] = round(
                statistics.median(b.links_per_second for b in side_batches), 2
            )
            for process in ("server", "worker"):
                out[f"cpu_ms_per_link.{size}.{side}.{process}"] = round(
                    statistics.median(b.cpu_ms_per_link(process) for b in side_batches), 2
                )
            out[f"cpu_ms_per_link.{size}.{side}.total"] = round(
                statistics.median(b.total_cpu_ms_per_link for b in side_batches), 2
            )
        out[f"links_per_second.{size}.ratio"] = round(
            statistics.median(ratio(m.links_per_second, t.links_per_second) for m, t in pairs), 2
        )
        out[f"cpu_ms_per_link.{size}.ratio"] = round(
            statistics.median(
                ratio(m.total_cpu_ms_per_link, t.total_cpu_ms_per_link) for m, t in pairs
            ),
            2,
        )
    bare = [took for pair in results.bare for took in pair]
    bare_p50 = percentile(bare, 0.5)
    out["bare_update_ms.p50"] = ms(bare_p50)
    out["bare_update_ms.p90"] = ms(percentile(bare, 0.9))
    floor = [took for pair in results.floor for took in pair]
    out["provider_floor_ms.p50"] = ms(percentile(floor, 0.5))
    out["provider_floor_ms.p90"] = ms(percentile(floor, 0.9))
    out["provider_floor.p50_over_bare_update"] = ratio(percentile(floor, 0.5), bare_p50)
    bare_start = [took for pair in results.bare_start for took in pair]
    out["bare_start_ms.p50"] = ms(percentile(bare_start, 0.5))
    out["bare_start_ms.p90"] = ms(percentile(bare_start, 0.9))
    out["bare_start.p50_over_bare_update"] = ratio(percentile(bare_start, 0.5), bare_p50)
    single = {LINKFLOW: Latencies(), NEWCOMER: Latencies()}
    for _, mine, theirs in results.batches:
        if mine.in_flight == 1:
            single[LINKFLOW].extend(mine.latencies)
            single[NEWCOMER].extend(theirs.latencies)
    for side, latencies in single.items():
        for step in ("answer_to_next_challenge", "start_to_first_challenge", "answer_to_result"):
            values = getattr(latencies, step)
            out[f"{step}_ms.{side}.p50"] = ms(percentile(values, 0.5))
            out[f"{step}_ms.{side}.p90"] = ms(percentile(values, 0.9))
            out[f"{step}.{side}.p50_over_bare_update"] = ratio(percentile(values, 0.5), bare_p50)
    for step in ("answer_to_next_challenge", "start_to_first_challenge", "answer_to_result"):
        out[f"{step}.p50_ratio"] = ratio(
            out[f"{step}_ms.{LINKFLOW}.p50"], out[f"{step}_ms.{NEWCOMER}.p50"]
        )
    for side, latencies in results.slow.items():
        p50 = percentile(latencies.answer_to_next_challenge, 0.5)
        out[f"slow_sandbox.answer_to_next_challenge_ms.{side}.p50"] = ms(p50)
        out[f"slow_sandbox.over_provider_job_ms.{side}.p50"] = ms(p50 - SLOW_LATENCY_SECONDS)
    for name, compared in (("webhook", results.webhook), ("webhook_paced", results.webhook_paced)):
        if not compared:
            continue
        for step in ("answer_to_next_challenge", "start_to_first_challenge"):
            for hooked, latencies in compared.items():
                values = getattr(latencies, step)
                out[f"{name}.{step}_ms.{hooked}.p50"] = ms(percentile(values, 0.5))
            out[f"{name}.{step}.p50_ratio"] = ratio(
                out[f"{name}.{step}_ms.with.p50"], out[f"{name}.{step}_ms.without.p50"]
            )
    if results.webhook_paced_lags:
        # Calls made while the follower may still have been delivering: none, when paced enough.
        late = sum(lag > PACED_SECONDS for lag in results.webhook_paced_lags)
        out["webhook_paced.events_later_than_the_next_call"] = late
    if results.webhook_lags:
        lags = results.webhook_lags
        out["webhook.delivered_after_reply_ms.p50"] = ms(percentile(lags, 0.5))
        out["webhook.delivered_after_reply_ms.p90"] = ms(percentile(lags, 0.9))
        out["webhook.delivered_after_reply_ms.max"] = ms(max(lags))
    for name, counts in results.history.items():
        out[f"history_events.{name}"] = sum(counts.values())
    if "newcomer" in results.history:
        for name in ("linkflow", "linkflow_webhook"):
            out[f"history_events.{name}.ratio"] = ratio(
                sum(results.history[name].values()), sum(results.history["newcomer"].values())
            )
    out["webhooks_received"] = results.webhooks_received
    return out


def latency_lines(results: Results) -> list[str]:
    """Per pair at 1 in flight: each side's p50 and its multiple of that pair's bare update."""
    lines = [
        "at 1 in flight, per pair (ms p50; x = multiple of the bare update's p50)",
        "pair  bare   answer->next challenge          start->first challenge",
        "             linkflow        newcomer        linkflow        newcomer",
    ]
    singles = [(mine, theirs) for _, mine, theirs in results.batches if mine.in_flight == 1]
    for index, ((mine, theirs), bare) in enumerate(zip(singles, results.bare, strict=False)):
        bare_p50 = percentile(bare, 0.5)
        cells = []
        for step in ("answer_to_next_challenge", "start_to_first_challenge"):
            for batch in (mine, theirs):
                p50 = percentile(getattr(batch.latencies, step), 0.5)
                cells.append(f"{ms(p50):>6.1f} x{ratio(p50, bare_p50):<6.2f}")
        lines.append(f"{index + 1:>4} {ms(bare_p50):>5.1f}   " + "  ".join(cells))
    return lines


def report(settings: Settings, results: Results, out: dict[str, float]) -> str:
    lines = [PAIR_HEADER]
    lines += [pair_line(m.in_flight, p, m, t) for p, m, t in results.batches]
    lines += ["", *latency_lines(results), ""]
    lines.append(
        f"bare update round trip: p50 {out['bare_update_ms.p50']} ms,"
        f" p90 {out['bare_update_ms.p90']} ms"
    )
    lines.append(
        f"provider floor (an update running one local activity that reads the sandbox's MX twice):"
        f" p50 {out['provider_floor_ms.p50']} ms, p90 {out['provider_floor_ms.p90']} ms,"
        f" x{out['provider_floor.p50_over_bare_update']} bare"
    )
    lines.append(
        f"bare start (update-with-start of a workflow whose update answers at once):"
        f" p50 {out['bare_start_ms.p50']} ms, p90 {out['bare_start_ms.p90']} ms,"
        f" x{out['bare_start.p50_over_bare_update']} bare"
    )
    for step, label in (
        ("answer_to_next_challenge", "answer -> next challenge"),
        ("start_to_first_challenge", "start -> first challenge"),
        ("answer_to_result", "last answer -> connected"),
    ):
        cells = [
            f"{side} p50 {out[f'{step}_ms.{side}.p50']:>6} ms (p90 {out[f'{step}_ms.{side}.p90']},"
            f" x{out[f'{step}.{side}.p50_over_bare_update']} bare)"
            for side in SIDES
        ]
        lines.append(f"{label:<26} " + "   ".join(cells) + f"   ratio {out[f'{step}.p50_ratio']}")
    lines.append("")
    for side in SIDES:
        key = f"slow_sandbox.answer_to_next_challenge_ms.{side}.p50"
        if key in out:
            lines.append(
                f"{SLOW_LATENCY_SECONDS} s provider jobs, {side}: answer -> next challenge p50"
                f" {out[key]} ms, {out[f'slow_sandbox.over_provider_job_ms.{side}.p50']} ms over"
                " the job"
            )
    for name, title in (
        ("webhook", "linkflow with a webhook URL / without, alternating, back to back:"),
        ("webhook_paced", f"the same, each call {PACED_SECONDS} s after the last reply:"),
    ):
        if f"{name}.answer_to_next_challenge.p50_ratio" not in out:
            continue
        lines.append(
            title
            + "".join(
                f" {label} p50 {out[f'{name}.{step}_ms.with.p50']} /"
                f" {out[f'{name}.{step}_ms.without.p50']} ms"
                f" (x{out[f'{name}.{step}.p50_ratio']});"
                for step, label in (
                    ("answer_to_next_challenge", "answer -> next challenge"),
                    ("start_to_first_challenge", "start -> first challenge"),
                )
            ).rstrip(";")
        )
    if "webhook_paced.events_later_than_the_next_call" in out:
        lines.append(
            "paced: webhook events that arrived after the next call was made:"
            f" {out['webhook_paced.events_later_than_the_next_call']}"
            f" of {len(results.webhook_paced_lags)}"
        )
    if "webhook.delivered_after_reply_ms.p50" in out:
        lines.append(
            "webhook event arrived after the client's reply showing that status:"
            f" p50 {out['webhook.delivered_after_reply_ms.p50']} ms,"
            f" p90 {out['webhook.delivered_after_reply_ms.p90']} ms,"
            f" max {out['webhook.delivered_after_reply_ms.max']} ms"
            f" ({len(results.webhook_lags)} replies)"
        )
    lines.append("")
    for name, counts in results.history.items():
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))
        lines.append(f"history events, {name}: {sum(counts.values())} ({kinds})")
    lines.append(f"webhook deliveries received: {results.webhooks_received}")
    return "\n".join(lines)


def connected_counts(results: Results) -> dict[str, dict[str, int]]:
    counts = {side: {"started": 0, "connected": 0} for side in SIDES}
    for _, mine, theirs in results.batches:
        for batch in (mine, theirs):
            counts[batch.side]["started"] += batch.links
            counts[batch.side]["connected"] += batch.connected
    return counts


def errors_of(results: Results) -> list[str]:
    found = [e for _, m, t in results.batches for e in (*m.errors, *t.errors)]
    return sorted(set(found))[:20]


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,50", help="links in flight, comma-separated")
    parser.add_argument(
        "--links", type=int, default=None, help="links per side per pair at each size"
    )
    parser.add_argument("--pairs", type=int, default=3, help="alternating runs of the two sides")
    parser.add_argument("--bare-updates", type=int, default=30, help="bare updates per pair")
    parser.add_argument("--slow-links", type=int, default=10, help="links on the slow sandbox")
    parser.add_argument(
        "--webhook-links", type=int, default=30, help="linkflow links with (and without) a webhook"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="the tiny run CI does")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    if args.quick:
        settings = Settings(
            sizes=[1, 3],
            links=4,
            pairs=1,
            bare_updates=5,
            slow_links=1,
            warmup_links=1,
            webhook_links=1,
        )
    else:
        settings = Settings(
            sizes=sizes,
            links=args.links,
            pairs=args.pairs,
            bare_updates=args.bare_updates,
            slow_links=args.slow_links,
            warmup_links=3,
            webhook_links=args.webhook_links,
        )
    if 1 not in settings.sizes:
        settings.sizes.insert(0, 1)  # the latencies are read at 1 in flight
    return settings, args.json


def main() -> None:
    settings, as_json = parse_args()
    this_machine = machine()
    log(this_machine.line())
    began = time.monotonic()
    results = asyncio.run(measure(settings))
    out = figures(results)
    counts = connected_counts(results)
    all_connected = all(c["connected"] == c["started"] for c in counts.values()) and all(
        results.history_connected.values()
    )
    if as_json:
        document: dict[str, Any] = {
            "machine": this_machine.__dict__,
            "settings": settings.__dict__,
            "figures": out,
            "batches": [
                {"pair": pair + 1, **batch.details()}
                for pair, mine, theirs in results.batches
                for batch in (mine, theirs)
            ],
            "links": counts,
            "history_by_type": {name: dict(c) for name, c in results.history.items()},
            "history_connected": results.history_connected,
            "all_connected": all_connected,
            "errors": errors_of(results),
            "seconds": round(time.monotonic() - began, 1),
        }
        print(json.dumps(document, indent=2))
    else:
        print(this_machine.line())
        print(report(settings, results, out))
        print(f"links: {counts}; run time {time.monotonic() - began:.0f} s")
        for error in errors_of(results):
            print(f"ERROR {error}")
    exit_now(0 if all_connected else 1)


if __name__ == "__main__":
    main()
