"""Memory benchmark: what one worker process pays to hold thousands of links waiting on MFA.

    .venv/bin/python bench/memory.py                        # 1,000 and 10,000 links, every variant
    .venv/bin/python bench/memory.py --links 200,1000       # smaller checkpoints
    .venv/bin/python bench/memory.py --quick --json         # the size CI runs

A waiting link is a workflow parked on a durable timer and an update; the server keeps it, and a
worker only keeps what it caches. The issue's goal: one worker holds 10,000 links waiting on MFA in
under 1 GiB of RSS, and answering a challenge under that load takes at most twice as long (p50)
as under light load. This run measures both, for each worker variant:

- `default`: the shipped `python worker.py` (sandboxed runner, 1,000 cached workflows);
- `cache-all`: the same worker caching every waiting link (`max_cached_workflows` above the count);
- `unsandboxed-cache-all`: caching every link, with `UnsandboxedWorkflowRunner`;
- `cache-N`, `unsandboxed-cache-N`: a cache of N workflows (`cache-100` shows eviction at a small
  size: links beyond the cache cost the worker nothing until answered, and then a replay);
- `webhooks`: the shipped worker, every link with a webhook URL (a local receiver): while a link
  waits on MFA its webhook follower runs (one activity and one long-poll of the link's history,
  for up to ten minutes), on the followers' own task queue.

Each variant gets a fresh dev stack (dev server on SQLite on disk, sandbox with no latency) on
free ports in a temp dir. The worker's RSS (VmRSS in /proc/<pid>/status) is read when it has
started, after a light-load sample, and once every link of a checkpoint waits in MFA_REQUIRED
(and the start has settled: 2 s, or with webhooks a quiet minute, when its followers have left);
links start through `LinkClient.start_and_wait` with bounded concurrency (the start rate is
reported). Answer latency is the time of one `submit_mfa` of the first challenge (which phone)
until it returns the next challenge (the code), for links picked at random among those waiting,
one at a time: first back to back (each answer the moment the last was replied to, so it meets
whatever the last answer set going, such as a webhook follower delivering its change), then as
many again at a user's pace (each `PACED_SECONDS` after the last reply). Light load is sampled
the same two ways, and each way's ratio is to its own light load. The stack, and every link in
it, is stopped and deleted at the end.

The variants other than `default` run this file as the worker (`--serve-worker`), built by
`worker.build_worker` with the variant's cache size and runner.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.worker import UnsandboxedWorkflowRunner  # noqa: E402

from activities.webhooks import FOLLOW_IDLE_SECONDS  # noqa: E402
from bench.stack import PACED_SECONDS, BenchStack, WebhookReceiver  # noqa: E402
from linkflow.client import LinkClient  # noqa: E402
from linkflow.config import ProviderSettings, TemporalSettings  # noqa: E402
from linkflow.devstack import WORKER_READY_LINE  # noqa: E402
from linkflow.models import (  # noqa: E402
    Credentials,
    LinkOptions,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    Provider,
)
from linkflow.process import exit_now  # noqa: E402
from linkflow.temporal import connect, ensure_search_attributes  # noqa: E402
from linkflow.webhook_policy import WebhookPolicy  # noqa: E402
from linkflow.webhooks import WebhookSigning  # noqa: E402
from tests.fixtures.answers import right_answers  # noqa: E402

USERNAME = "user_otp"  # MX: which phone to text, then the code
# Long enough that no link times out while thousands of others start.
MFA_TIMEOUT_SECONDS = 86_400
GOAL_RSS_KIB = 1024 * 1024
GOAL_LATENCY_RATIO = 2.0
START_ATTEMPTS = 5
KIB = 1024


@dataclass(frozen=True)
class Variant:
    name: str
    # None: the shipped worker.py; otherwise this file serves the worker with these settings.
    max_cached_workflows: int | None
    sandboxed: bool = True
    webhooks: bool = False

    def worker_command(self) -> list[str] | None:
        if self.max_cached_workflows is None:
            return None
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve-worker",
            "--max-cached-workflows",
            str(self.max_cached_workflows),
        ]
        return command if self.sandboxed else [*command, "--unsandboxed"]


def variants_for(names: list[str], most_links: int, light_samples: int) -> list[Variant]:
    """`default`, `cache-all`, `unsandboxed-cache-all`, or a cache size: `cache-200`,
    `unsandboxed-cache-200` (`cache-all`: every link the run starts fits in the cache)."""
    every_link = most_links + 2 * light_samples + 100
    variants = []
    for name in names:
        if name in ("default", "webhooks"):
            variants.append(Variant(name, None, webhooks=name == "webhooks"))
            continue
        sandboxed = not name.startswith("unsandboxed-")
        size = name.removeprefix("unsandboxed-").removeprefix("cache-")
        if not name.removeprefix("unsandboxed-").startswith("cache-") or not (
            size == "all" or size.isdigit()
        ):
            raise SystemExit(
                f"Unknown variant {name!r}: default, webhooks, cache-all, cache-N,"
                " unsandboxed-cache-all or unsandboxed-cache-N."
            )
        cached = every_link if size == "all" else int(size)
        variants.append(Variant(name, cached, sandboxed=sandboxed))
    return variants


@dataclass(frozen=True)
class WaitingLink:
    link_id: str
    first: LinkSnapshot  # what start_and_wait returned: the first challenge


@dataclass
class Checkpoint:
    links: int
    start_seconds: float
    starts_per_second: float
    start_failures: int
    rss_kib: int
    kib_per_link: float
    marginal_kib_per_link: float
    answer_p50_ms: float
    answer_p95_ms: float
    latency_ratio: float
    # The same at a user's pace (`PACED_SECONDS` between a reply and the next answer).
    paced_p50_ms: float
    paced_ratio: float


@dataclass
class VariantFigures:
    variant: str
    max_cached_workflows: int
    sandboxed: bool
    idle_rss_kib: int = 0
    warm_rss_kib: int = 0
    light_p50_ms: float = 0.0
    light_p95_ms: float = 0.0
    light_paced_p50_ms: float = 0.0
    peak_rss_kib: int = 0
    checkpoints: list[Checkpoint] = field(default_factory=list)
    seconds: float = 0.0
    # From the last start of a checkpoint to its RSS reading and answers (`settle_seconds`).
    settle_seconds: float = 2.0
    webhooks_received: int | None = None  # the `webhooks` variant's events at the receiver


# ---------------------------------------------------------------- the worker variants


class VariantStack(BenchStack):
    """A bench stack whose worker is the given command (None: the shipped worker.py)."""

    worker_command: list[str] | None = None

    def start_worker(self, name: str = "worker") -> None:
        if self.worker_command is None:
            super().start_worker(name)
            return
        self.spawn(name, self.worker_command, ready_line=WORKER_READY_LINE)


async def serve_worker(max_cached_workflows: int, sandboxed: bool) -> None:
    """worker.py's run_worker, with the cache size and runner under test."""
    from worker import LinkActivities, build_worker

    temporal = TemporalSettings.from_env()
    activities = LinkActivities(
        ProviderSettings.from_env(), WebhookSigning.from_env(), WebhookPolicy.from_env()
    )
    client = await connect(temporal)
    await ensure_search_attributes(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    worker = build_worker(
        client,
        temporal.task_queue,
        activities,
        max_cached_workflows=max_cached_workflows,
        workflow_runner=None if sandboxed else UnsandboxedWorkflowRunner(),
    )
    try:
        async with worker:
            logging.getLogger("bench.memory").info(
                "%s %r (cache %d, sandboxed %s)",
                WORKER_READY_LINE,
                temporal.task_queue,
                max_cached_workflows,
                sandboxed,
            )
            await stop.wait()
    finally:
        await activities.aclose()


# ---------------------------------------------------------------- measuring


def shipped_cache_size() -> int:
    """The cache size worker.py runs with: build_worker's default."""
    from worker import build_worker

    default = inspect.signature(build_worker).parameters["max_cached_workflows"].default
    return int(default)


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    """The process's resident set (or VmHWM, its peak) in KiB, as /proc says."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field_name}")


def link_request(index: int, webhook_url: str | None) -> LinkRequest:
    return LinkRequest(
        provider=Provider.MX,
        user_ref=f"bench-memory-{index}",
        credentials=Credentials(username=USERNAME, password="pass_good"),
        options=LinkOptions(mfa_timeout_seconds=MFA_TIMEOUT_SECONDS, webhook_url=webhook_url),
    )


async def start_waiting_link(
    links: LinkClient, index: int, prefix: str, webhook_url: str | None
) -> WaitingLink:
    """Start one link and return it once it waits on MFA (retrying a busy server)."""
    link_id = f"{prefix}-{index}"
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            _, snapshot = await links.start_and_wait(link_request(index, webhook_url), link_id)
        except Exception:
            if attempt == START_ATTEMPTS:
                raise
            await asyncio.sleep(attempt)
            continue
        if snapshot.status is not LinkStatus.MFA_REQUIRED:
            raise RuntimeError(f"{link_id} is {snapshot.status}, not waiting on MFA")
        return WaitingLink(link_id, snapshot)
    raise AssertionError("unreachable")


async def start_many(
    links: LinkClient,
    indexes: range,
    prefix: str,
    concurrency: int,
    webhook_url: str | None = None,
) -> tuple[list[WaitingLink], int, float]:
    """Start the links with at most `concurrency` in flight: the links, failures and seconds."""
    gate = asyncio.Semaphore(concurrency)
    started: list[WaitingLink] = []
    failures = 0

    async def one(index: int) -> None:
        nonlocal failures
        async with gate:
            try:
                started.append(await start_waiting_link(links, index, prefix, webhook_url))
            except Exception as error:
                failures += 1
                if failures <= 3:
                    print(f"  start {index} failed: {error}", file=sys.stderr)

    began = time.monotonic()
    await asyncio.gather(*(one(index) for index in indexes))
    return started, failures, time.monotonic() - began


async def answer_latency_ms(links: LinkClient, link: WaitingLink) -> float:
    """Answer the challenge the link asked at its start; milliseconds until it names the next.

    Nothing reads the link first: a query would bring an evicted link back into the worker's
    cache, and the answer would not pay for the replay a real user's answer pays for.
    """
    began = time.monotonic()
    after: LinkSnapshot = await links.submit_mfa(link.link_id, right_answers(link.first))
    elapsed = (time.monotonic() - began) * 1000
    asked = {c.id for c in link.first.pending_challenges}
    if (
        after.status is not LinkStatus.MFA_REQUIRED
        or {c.id for c in after.pending_challenges} & asked
    ):
        raise RuntimeError(f"{link.link_id} did not move on to a new challenge: {after.status}")
    return elapsed


async def sample_answers(
    links: LinkClient, waiting: list[WaitingLink], pause_seconds: float = 0.0
) -> list[float]:
    """Answer each link in turn, each `pause_seconds` after the last reply."""
    latencies = []
    for link in waiting:
        await asyncio.sleep(pause_seconds)
        latencies.append(await answer_latency_ms(links, link))
    return latencies


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure_light_load(
    links: LinkClient, figures: VariantFigures, samples: int, pid: int, webhook_url: str | None
) -> None:
    """A few links, started and answered one at a time, then ended so the worker holds none."""
    light_links, _, _ = await start_many(links, range(2 * samples), "light", 1, webhook_url)
    light = await sample_answers(links, light_links[:samples])
    figures.light_p50_ms = statistics.median(light)
    figures.light_p95_ms = percentile(light, 0.95)
    paced = await sample_answers(links, light_links[samples:], PACED_SECONDS)
    figures.light_paced_p50_ms = statistics.median(paced)
    for link in light_links:
        await links.temporal.get_workflow_handle(link.link_id).terminate("light sample taken")
    await asyncio.sleep(1)
    figures.warm_rss_kib = rss_kib(pid)


@dataclass
class HeldLinks:
    """The links a variant's worker holds so far, and those whose first challenge is unanswered."""

    waiting: list[WaitingLink] = field(default_factory=list)
    unanswered: list[WaitingLink] = field(default_factory=list)
    failures: int = 0
    rss_kib: int = 0

    def pick_unanswered(self, rng: random.Random, count: int) -> list[WaitingLink]:
        picked = rng.sample(self.unanswered, min(count, len(self.unanswered)))
        chosen = {link.link_id for link in picked}
        self.unanswered = [link for link in self.unanswered if link.link_id not in chosen]
        return picked


async def hold_up_to(
    links: LinkClient,
    held: HeldLinks,
    count: int,
    figures: VariantFigures,
    args: argparse.Namespace,
    pid: int,
    rng: random.Random,
    webhook_url: str | None,
) -> Checkpoint:
    """Start links until `count` wait, read the worker's RSS, then time answers to some."""
    new_links, failed, seconds = await start_many(
        links,
        range(len(held.waiting) + held.failures, count),
        "held",
        args.concurrency,
        webhook_url,
    )
    held.failures += failed
    held.waiting += new_links
    held.unanswered += new_links
    await asyncio.sleep(figures.settle_seconds)
    rss, previous_rss = rss_kib(pid), held.rss_kib
    held.rss_kib = rss
    loaded = await sample_answers(links, held.pick_unanswered(rng, args.samples))
    p50 = statistics.median(loaded)
    paced = await sample_answers(links, held.pick_unanswered(rng, args.samples), PACED_SECONDS)
    paced_p50 = statistics.median(paced)
    return Checkpoint(
        links=len(held.waiting),
        start_seconds=round(seconds, 1),
        starts_per_second=round(len(new_links) / seconds, 1) if seconds else 0.0,
        start_failures=held.failures,
        rss_kib=rss,
        kib_per_link=round((rss - figures.idle_rss_kib) / max(1, len(held.waiting)), 1),
        marginal_kib_per_link=round((rss - previous_rss) / max(1, len(new_links)), 1),
        answer_p50_ms=round(p50, 1),
        answer_p95_ms=round(percentile(loaded, 0.95), 1),
        latency_ratio=round(p50 / figures.light_p50_ms, 2),
        paced_p50_ms=round(paced_p50, 1),
        paced_ratio=round(paced_p50 / figures.light_paced_p50_ms, 2),
    )


def settle_seconds(variant: Variant, asked: float | None) -> float:
    """How long a checkpoint waits after its last start: 2 s, or with webhooks until the start's
    followers have left (each stays a quiet minute), so that the answers meet links waiting on
    MFA and not the tail of their starts: thousands of followers ending, each waking its link."""
    if asked is not None:
        return asked
    return FOLLOW_IDLE_SECONDS + 5 if variant.webhooks else 2.0


async def measure_variant(variant: Variant, args: argparse.Namespace) -> VariantFigures:
    state_dir = Path(tempfile.mkdtemp(prefix=f"linkflow-memory-{variant.name}-"))
    receiver = WebhookReceiver() if variant.webhooks else None
    stack = VariantStack.on_free_ports(
        task_queue="linkflow-memory",
        state_dir=state_dir,
        webhook_hosts=("127.0.0.1",) if receiver else (),
    )
    stack.worker_command = variant.worker_command()
    figures = VariantFigures(
        variant=variant.name,
        max_cached_workflows=(
            shipped_cache_size()
            if variant.max_cached_workflows is None
            else variant.max_cached_workflows
        ),
        sandboxed=variant.sandboxed,
        settle_seconds=settle_seconds(variant, args.settle_seconds),
    )
    rng = random.Random(args.seed)
    began = time.monotonic()
    try:
        await asyncio.to_thread(stack.start)
        pid = stack.pid("worker")
        links = await stack.link_client()
        webhook_url = None
        if receiver is not None:
            await receiver.start()
            webhook_url = receiver.url
        await asyncio.sleep(2)
        figures.idle_rss_kib = rss_kib(pid)
        await measure_light_load(links, figures, args.samples, pid, webhook_url)
        held = HeldLinks(rss_kib=figures.warm_rss_kib)
        for count in sorted(args.links):
            point = await hold_up_to(links, held, count, figures, args, pid, rng, webhook_url)
            figures.checkpoints.append(point)
            print(f"  {variant.name}: {point}", file=sys.stderr)
        figures.peak_rss_kib = rss_kib(pid, "VmHWM")
        if receiver is not None:
            figures.webhooks_received = len(receiver.events)
    finally:
        if receiver is not None:
            await receiver.stop()
        # Stopping the dev server ends every link: its database is in the deleted temp dir.
        await asyncio.to_thread(stack.stop)
        shutil.rmtree(state_dir, ignore_errors=True)
    figures.light_p50_ms = round(figures.light_p50_ms, 1)
    figures.light_p95_ms = round(figures.light_p95_ms, 1)
    figures.light_paced_p50_ms = round(figures.light_paced_p50_ms, 1)
    figures.seconds = round(time.monotonic() - began, 1)
    return figures


# ---------------------------------------------------------------- reporting


def mib(kib: float) -> str:
    return f"{kib / KIB:,.0f} MiB"


def report(results: list[VariantFigures]) -> str:
    header = (
        f"{'variant':<22} {'cache':>6} {'links':>7} {'starts/s':>9} {'worker RSS':>11}"
        f" {'KiB/link':>9} {'marginal':>9} {'answer p50':>11} {'light p50':>10} {'ratio':>6}"
        f" {'paced p50':>10} {'light':>8} {'ratio':>6}  goal"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        lines.append(
            f"{result.variant:<22} {result.max_cached_workflows:>6} {0:>7} {'':>9}"
            f" {mib(result.idle_rss_kib):>11} {'':>9} {'':>9} {'':>11}"
            f" {result.light_p50_ms:>8.0f}ms {'':>6} {'':>10}"
            f" {result.light_paced_p50_ms:>6.0f}ms {'':>6}  (idle worker)"
        )
        for point in result.checkpoints:
            met = point.rss_kib < GOAL_RSS_KIB and point.latency_ratio <= GOAL_LATENCY_RATIO
            lines.append(
                f"{'':<22} {'':>6} {point.links:>7,} {point.starts_per_second:>9.1f}"
                f" {mib(point.rss_kib):>11} {point.kib_per_link:>9.1f}"
                f" {point.marginal_kib_per_link:>9.1f}"
                f" {point.answer_p50_ms:>9.0f}ms {result.light_p50_ms:>8.0f}ms"
                f" {point.latency_ratio:>6.2f} {point.paced_p50_ms:>8.0f}ms"
                f" {result.light_paced_p50_ms:>6.0f}ms {point.paced_ratio:>6.2f}"
                f"  {'met' if met else 'MISSED'}"
                + (f" ({point.start_failures} starts failed)" if point.start_failures else "")
            )
        received = result.webhooks_received
        lines.append(
            f"{'':<22} peak RSS {mib(result.peak_rss_kib)}, after the light sample"
            f" {mib(result.warm_rss_kib)}, sampled {result.settle_seconds:g} s after each"
            f" checkpoint's last start, run time {result.seconds:.0f} s"
            + ("" if received is None else f", webhook events received {received:,}")
        )
    lines.append(
        "KiB/link: (RSS - idle RSS) / links; marginal: RSS growth per link since the row above"
    )
    lines.append(
        f"paced: each answer {PACED_SECONDS} s after the last reply, light load sampled alike"
    )
    lines.append(
        f"goal: under {mib(GOAL_RSS_KIB)} RSS with the links waiting, answer p50 within"
        f" {GOAL_LATENCY_RATIO:g}x of light load (judged on the back-to-back answers)"
    )
    return "\n".join(lines)


def parse_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("give link counts like 1000,10000")
    return counts


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=parse_counts, help="checkpoints (default 1000,10000)")
    parser.add_argument(
        "--variants", help="comma-separated (default default,cache-all,unsandboxed-cache-all)"
    )
    parser.add_argument("--samples", type=int, help="answers timed per checkpoint (default 30)")
    parser.add_argument("--concurrency", type=int, default=64, help="link starts in flight")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--settle-seconds",
        type=float,
        help="from a checkpoint's last start to its sample (default 2; 65 with webhooks, when the"
        " starts' followers have left)",
    )
    parser.add_argument("--quick", action="store_true", help="100,400 links, 10 samples")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-cached-workflows", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--unsandboxed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.links = args.links or ([100, 400] if args.quick else [1000, 10_000])
    args.samples = args.samples or (10 if args.quick else 30)
    names = args.variants or "default,cache-all,unsandboxed-cache-all"
    args.variant_list = variants_for(
        [name.strip() for name in names.split(",")], max(args.links), args.samples
    )
    return args


async def run_all(args: argparse.Namespace) -> list[VariantFigures]:
    return [await measure_variant(variant, args) for variant in args.variant_list]


def main() -> None:
    args = parse_args()
    if args.serve_worker:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        status = 0
        try:
            asyncio.run(serve_worker(args.max_cached_workflows, not args.unsandboxed))
        except (ConnectionError, RuntimeError) as error:
            logging.getLogger("bench.memory").error("The worker could not run: %s", error)
            status = 1
        exit_now(status)
    results = asyncio.run(run_all(args))
    output: Any = [asdict(result) for result in results]
    print(json.dumps(output, indent=2) if args.json else report(results))
    sys.stdout.flush()
    # The Temporal client can abort the interpreter at exit (sdk-python issue 300): end here.
    exit_now(0)


if __name__ == "__main__":
    main()
