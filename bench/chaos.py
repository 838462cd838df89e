"""Chaos run: many links through MFA while the worker, the server and the providers misbehave.

    .venv/bin/python bench/chaos.py                 # the full run whose figures the README shows
    .venv/bin/python bench/chaos.py --links 12 --duration 40 --json   # the size CI runs

It starts its own dev stack (the dev server on SQLite on disk, the sandbox with injected faults,
a worker) on free ports, then drives links the way users would, every provider and every MFA
shape, answering through the `submit_mfa` update, while a chaos task

- kills the worker with SIGKILL at random moments and starts a new one,
- stops the dev server and starts it again on the same database, mid-flight,
- and the sandbox answers a share of requests with 5xx, 429 + `Retry-After`, read timeouts
  (it hangs past the client's timeout) and connections dropped after the provider acted.

At the end it prints: links started, connected, failed by design, lost; answers submitted and
lost; duplicate provider submissions (repeats that reached a provider, and repeats its
Idempotency-Key absorbed); and the worst time a link waited to recover. Exit status 1 when any
link or answer was lost or any submission reached a provider twice.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from linkflow.client import LinkClient, LinkRefused  # noqa: E402
from linkflow.config import TemporalSettings  # noqa: E402
from linkflow.devstack import DevStack, StackPorts  # noqa: E402
from linkflow.models import (  # noqa: E402
    Credentials,
    LinkReason,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    Provider,
)
from linkflow.process import exit_now  # noqa: E402
from linkflow.temporal import connect, quiet_runtime  # noqa: E402
from tests.fixtures.answers import right_answers  # noqa: E402

# Which test users a run draws, with what each must end as.
CONNECTS = ("user_good", "user_mfa", "user_otp")
FAILS_BY_DESIGN = {"user_bad": LinkReason.INVALID_CREDENTIALS}
# How long one link may take, chaos included, before it counts as lost.
LINK_DEADLINE_SECONDS = 600.0
CALL_TIMEOUT_SECONDS = 45.0


@dataclass
class LinkRun:
    provider: Provider
    username: str
    link_id: str = ""
    end: LinkSnapshot | None = None
    error: str | None = None
    answered: set[str] = field(default_factory=set)
    waits: list[float] = field(default_factory=list)

    @property
    def should_connect(self) -> bool:
        return self.username in CONNECTS


@dataclass
class Figures:
    started: int = 0
    connected: int = 0
    failed_by_design: int = 0
    lost: int = 0
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


async def patiently(call: Any, what: str, run: LinkRun) -> Any:
    """Retry a client call through server restarts; the time spent is a recovery wait."""
    began = time.monotonic()
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
            if time.monotonic() - began > LINK_DEADLINE_SECONDS:
                raise RuntimeError(f"{what} kept failing: {error}") from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def drive(links: LinkClient, run: LinkRun) -> None:
    """One user's link: start it, answer every round, wait until it rests or ends."""
    request = LinkRequest(
        provider=run.provider,
        user_ref=f"chaos-{run.provider.value}-{run.username}",
        credentials=Credentials(username=run.username, password="pass_good"),
    )
    run.link_id = f"chaos-{run.provider.value}-{run.username}-{random.getrandbits(40):x}"
    await patiently(lambda: links.start_link(request, run.link_id), "start", run)
    deadline = time.monotonic() + LINK_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        snapshot: LinkSnapshot = await patiently(
            lambda: links.snapshot(run.link_id), "snapshot", run
        )
        if snapshot.status.is_final or snapshot.status in (
            LinkStatus.CONNECTED,
            LinkStatus.ACTION_REQUIRED,
        ):
            run.end = snapshot
            return
        submission = right_answers(snapshot)
        if snapshot.status is LinkStatus.MFA_REQUIRED and submission.answers:
            try:
                await patiently(
                    lambda s=submission: links.submit_mfa(run.link_id, s), "answer", run
                )
                run.answered |= {answer.challenge_id for answer in submission.answers}
            except LinkRefused:
                pass  # the round moved on (answered by a retry that landed): read again
            continue
        await asyncio.sleep(0.3)
    run.error = "did not settle before the deadline"


async def chaos(
    stack: DevStack, stop: asyncio.Event, figures: Figures, rng: random.Random, restarts: int
) -> None:
    """Kill the worker now and then; stop and restart the dev server `restarts` times."""
    started = time.monotonic()
    next_restart = started + rng.uniform(8, 15)
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(3, 8))
        if stop.is_set():
            return
        if restarts and time.monotonic() >= next_restart:
            restarts -= 1
            figures.server_restarts += 1
            await asyncio.to_thread(stack.stop_process, "temporal")
            await asyncio.sleep(rng.uniform(1, 3))
            await asyncio.to_thread(stack.start_temporal)
            next_restart = time.monotonic() + rng.uniform(15, 30)
            continue
        figures.worker_kills += 1
        await asyncio.to_thread(stack.stop_process, "worker", signal.SIGKILL)
        await asyncio.sleep(rng.uniform(0, 2))
        await asyncio.to_thread(stack.start_worker)


async def sandbox_stats(stack: DevStack) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{stack.ports.sandbox_url}/_sandbox/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


async def run_chaos(args: argparse.Namespace) -> Figures:
    rng = random.Random(args.seed)
    random.seed(args.seed)
    providers = [Provider(name) for name in args.providers]
    users = [*CONNECTS, *FAILS_BY_DESIGN]
    runs = [
        LinkRun(
            provider=providers[(i // len(users)) % len(providers)],
            username=users[i % len(users)],
        )
        for i in range(args.links)
    ]
    figures = Figures(started=len(runs))
    state_dir = Path(tempfile.mkdtemp(prefix="linkflow-chaos-"))
    stack = DevStack(
        ports=StackPorts.free(),
        state_dir=state_dir,
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
    began = time.monotonic()
    try:
        await asyncio.to_thread(stack.start)
        settings = TemporalSettings(
            address=stack.ports.temporal_address, task_queue=stack.task_queue
        )
        client = await connect(settings, runtime=quiet_runtime(), key_ring=stack.key_ring())
        links = LinkClient(client, stack.task_queue)
        stop = asyncio.Event()
        chaos_task = asyncio.create_task(chaos(stack, stop, figures, rng, args.server_restarts))

        async def one(run: LinkRun, delay: float) -> None:
            await asyncio.sleep(delay)
            try:
                await drive(links, run)
            except Exception as error:
                run.error = f"{type(error).__name__}: {error}"

        await asyncio.gather(*(one(run, rng.uniform(0, args.duration)) for run in runs))
        stop.set()
        await chaos_task
        # Every answer the client saw accepted must be counted by its link.
        for run in runs:
            if run.end is None:
                continue
            final = await patiently(lambda r=run: links.snapshot(r.link_id), "final", run)
            run.end = final
        stats = await sandbox_stats(stack)
    finally:
        await asyncio.to_thread(stack.stop)
    figures.duration_seconds = time.monotonic() - began

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
        else:
            figures.lost += 1
            state = f"{end.status} {end.reason} {end.message}" if end is not None else run.error
            figures.lost_links.append(f"{run.link_id}: {state}")
    for provider in stats.get("providers", {}).values():
        figures.duplicate_submissions += int(provider.get("duplicate_requests", 0))
        figures.repeats_absorbed += int(provider.get("replayed", 0))
        figures.unkeyed_writes += int(provider.get("unkeyed_writes", 0))
    figures.faults = dict(Counter(stats.get("faults", {})))
    return figures


def report(figures: Figures) -> str:
    lines = [
        f"links started:                {figures.started}",
        f"  connected:                  {figures.connected}",
        f"  failed by design:           {figures.failed_by_design}",
        f"  lost:                       {figures.lost}",
        f"answers submitted:            {figures.answers_submitted}",
        f"  lost:                       {figures.answers_lost}",
        f"duplicate provider submissions: {figures.duplicate_submissions}"
        f" (repeats absorbed by Idempotency-Key: {figures.repeats_absorbed})",
        f"worst wait to recover:        {figures.worst_recovery_seconds:.1f} s",
        f"chaos: {figures.worker_kills} worker SIGKILLs, {figures.server_restarts} dev-server"
        f" restarts, sandbox faults {figures.faults}",
        f"run time:                     {figures.duration_seconds:.0f} s",
    ]
    lines += [f"LOST {entry}" for entry in figures.lost_links]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=60)
    parser.add_argument(
        "--duration", type=float, default=90.0, help="seconds over which the links start"
    )
    parser.add_argument("--providers", nargs="+", default=[p.value for p in Provider])
    parser.add_argument("--server-restarts", type=int, default=2)
    parser.add_argument("--error-rate", type=float, default=0.08)
    parser.add_argument("--throttle-rate", type=float, default=0.04)
    parser.add_argument("--timeout-rate", type=float, default=0.01)
    parser.add_argument("--drop-rate", type=float, default=0.04)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = asyncio.run(run_chaos(args))
    print(json.dumps(figures.__dict__, indent=2) if args.json else report(figures))
    sys.stdout.flush()
    healthy = figures.lost == 0 and figures.answers_lost == 0 and figures.duplicate_submissions == 0
    # The Temporal client can abort the interpreter at exit (sdk-python issue 300): end here.
    exit_now(0 if healthy else 1)


if __name__ == "__main__":
    main()
