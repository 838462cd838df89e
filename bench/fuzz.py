"""Fuzz run: thousands of malformed messages at live links, through the real server.

    .venv/bin/python bench/fuzz.py                      # the full run the README shows
    .venv/bin/python bench/fuzz.py --count 600 --json   # the size CI runs

It starts its own dev stack on free ports (the dev server on SQLite on disk with the same limits as
`dev.py demo`, the sandbox, a worker process, all with the codec), starts live MX links that wait
for MFA, and sends them generated and mutated payloads (bench/fuzz_payloads.py): updates and
signals through the SDK, signals through the `temporal` CLI's own encodings, and link starts of
every shape. Then it answers every live link correctly and prints:

- sent, accepted and refused messages (refused by a validator, by the link as a recorded signal
  refusal, by the server's limits, or a start that ended FAILED with INVALID_REQUEST);
- workflow-task failures across every workflow the run touched;
- links stuck: live links that did not connect after the right answers;
- worker crashes, and secrets (values holding the fuzzer's marker) found in any process's log or,
  in plaintext or base64, in the dev server's database file.

Exit status 1 unless task failures, stuck links, crashes and secrets found are all zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError  # noqa: E402
from temporalio.service import RPCError  # noqa: E402

from bench.fuzz_payloads import SECRET_MARKER, FuzzMessage, PayloadFuzzer  # noqa: E402
from linkflow.client import LinkClient  # noqa: E402
from linkflow.devstack import DevStack, StackPorts, temporal_cli  # noqa: E402
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
from tests.fixtures.answers import right_answers  # noqa: E402
from tests.fixtures.leaks import occurrences  # noqa: E402
from workflows.account_link import WORKFLOW_TYPE  # noqa: E402

SEND_TIMEOUT_SECONDS = 20.0


@dataclass
class Figures:
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    refused_by: dict[str, int] = field(default_factory=dict)
    workflow_task_failures: int = 0
    links_stuck: int = 0
    worker_crashes: int = 0
    secrets_in_logs: int = 0
    secrets_in_database: int = 0
    live_links: int = 0
    starts: int = 0
    duration_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class Run:
    client: Client
    links: LinkClient
    stack: DevStack
    live: list[str]
    started: list[str] = field(default_factory=list)
    delivered_signals: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    errors: list[str] = field(default_factory=list)


async def send(run: Run, message: FuzzMessage, target: str, index: int) -> None:
    try:
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
            await _send(run, message, target, index)
    except RPCError as error:
        # The server's own limits (blob size, signals per run, ...) refused it before the link.
        run.refusals[f"server: {error.status.name}"] += 1
    except TimeoutError:
        run.errors.append(f"{message.channel} {message.name!r} timed out")


async def _send(run: Run, message: FuzzMessage, target: str, index: int) -> None:
    handle = run.client.get_workflow_handle(target)
    if message.channel == "update":
        try:
            await handle.execute_update(message.name, args=message.payloads)
        except WorkflowUpdateFailedError:
            run.refusals["update validator"] += 1
        else:
            run.accepted += 1
    elif message.channel == "signal":
        await handle.signal(message.name, args=message.payloads)
        run.delivered_signals += 1
    elif message.channel == "cli-signal":
        await cli_signal(run, target, message)
    else:
        link_id = f"fuzz-start-{index}"
        await run.client.start_workflow(
            WORKFLOW_TYPE, args=message.payloads, id=link_id, task_queue=run.stack.task_queue
        )
        run.started.append(link_id)


async def cli_signal(run: Run, target: str, message: FuzzMessage) -> None:
    command = [
        temporal_cli(),
        "workflow",
        "signal",
        "--address",
        run.stack.ports.temporal_address,
        "--workflow-id",
        target,
        "--name",
        message.name,
    ]
    # Inputs go in files, as an operator's large inputs would: argv has a length limit.
    with tempfile.TemporaryDirectory(prefix="linkflow-fuzz-cli-") as folder:
        for number, text in enumerate(message.cli_inputs):
            path = Path(folder) / f"input-{number}.json"
            await asyncio.to_thread(path.write_text, text)
            command += ["--input-file", str(path)]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        status = await process.wait()
    if status == 0:
        run.delivered_signals += 1
    else:
        # The CLI refused it itself (its input is not JSON) or the server did.
        run.refusals["temporal CLI or server"] += 1


async def start_live_links(links: LinkClient, count: int) -> list[str]:
    request = LinkRequest(
        provider=Provider.MX,
        user_ref="fuzz-live",
        credentials=Credentials(username="user_mfa", password="pass_good"),
        options=LinkOptions(mfa_timeout_seconds=3600),
    )
    ids = [f"fuzz-live-{n}" for n in range(count)]
    await asyncio.gather(*(links.start_link(request, link_id) for link_id in ids))
    for link_id in ids:
        snapshot = await links.wait_for(link_id, {LinkStatus.MFA_REQUIRED, LinkStatus.CONNECTED})
        if snapshot.status is not LinkStatus.MFA_REQUIRED:
            raise RuntimeError(f"{link_id} is {snapshot.status}, not waiting for MFA")
    return ids


async def answer_and_settle(links: LinkClient, link_id: str) -> LinkSnapshot:
    snapshot = await links.snapshot(link_id)
    while snapshot.status is LinkStatus.MFA_REQUIRED:
        snapshot = await links.submit_mfa(link_id, right_answers(snapshot))
    return await links.settled(link_id)


async def count_task_failures(client: Client, link_ids: list[str]) -> int:
    async def one(link_id: str) -> int:
        handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(link_id)
        return len(
            [
                event
                async for event in handle.fetch_history_events()
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            ]
        )

    counts: list[int] = []
    for start in range(0, len(link_ids), 50):
        counts += await asyncio.gather(*(one(link_id) for link_id in link_ids[start : start + 50]))
    return sum(counts)


def secrets_in(data: bytes) -> int:
    return occurrences(SECRET_MARKER, data.decode("latin-1"))


def files_with_secrets(folder: Path, pattern: str) -> int:
    return sum(secrets_in(path.read_bytes()) for path in folder.glob(pattern))


async def run_fuzz(args: argparse.Namespace) -> Figures:
    fuzzer = PayloadFuzzer(args.seed)
    figures = Figures(live_links=args.live_links)
    state_dir = Path(tempfile.mkdtemp(prefix="linkflow-fuzz-"))
    stack = DevStack(
        ports=StackPorts.free(),
        state_dir=state_dir,
        task_queue="linkflow-fuzz",
        sandbox_args=("--latency-seconds", "0"),
    )
    began = time.monotonic()
    try:
        await asyncio.to_thread(stack.start)
        os.environ.update(stack.client_env())
        # The CLI seals its payloads through the codec server, as an operator's would.
        os.environ.update(stack.codec_cli_env())
        client = await connect(runtime=quiet_runtime())
        links = LinkClient(client, stack.task_queue)
        live = await start_live_links(links, args.live_links)
        run = Run(client=client, links=links, stack=stack, live=live)
        messages = [fuzzer.message() for _ in range(args.count)]
        limit = asyncio.Semaphore(args.concurrency)

        async def one(index: int, message: FuzzMessage) -> None:
            async with limit:
                await send(run, message, live[index % len(live)], index)

        await asyncio.gather(*(one(index, message) for index, message in enumerate(messages)))
        figures.by_channel = dict(Counter(message.channel for message in messages))
        figures.sent = len(messages)

        # Starts: a readable one is a link (accepted); an unreadable one ends INVALID_REQUEST.
        for link_id in run.started:
            snapshot = await links.snapshot(link_id)
            if snapshot.reason is LinkReason.INVALID_REQUEST:
                run.refusals["start: INVALID_REQUEST"] += 1
            else:
                run.accepted += 1
        signal_refusals = 0
        for link_id in live:
            snapshot = await links.snapshot(link_id)
            signal_refusals += snapshot.attempts.answers_refused
        run.refusals["signal recorded as refused"] += signal_refusals
        run.accepted += max(0, run.delivered_signals - signal_refusals)

        ends = await asyncio.gather(
            *(answer_and_settle(links, link_id) for link_id in live), return_exceptions=True
        )
        figures.links_stuck = sum(
            1
            for end in ends
            if isinstance(end, BaseException) or end.status is not LinkStatus.CONNECTED
        )
        figures.workflow_task_failures = await count_task_failures(client, [*live, *run.started])
        figures.worker_crashes = int(stack.exited("worker"))
        figures.starts = len(run.started)
        figures.accepted = run.accepted
        figures.refused = sum(run.refusals.values())
        figures.refused_by = dict(run.refusals)
        figures.errors = run.errors[:20]
    finally:
        await asyncio.to_thread(stack.stop)
    figures.secrets_in_logs = await asyncio.to_thread(files_with_secrets, stack.log_dir, "*.log")
    figures.secrets_in_database = await asyncio.to_thread(
        files_with_secrets, state_dir, "temporal.db*"
    )
    figures.duration_seconds = time.monotonic() - began
    return figures


def report(figures: Figures) -> str:
    lines = [
        f"sent:                    {figures.sent} {figures.by_channel}",
        f"  accepted:              {figures.accepted}",
        f"  refused:               {figures.refused} {figures.refused_by}",
        f"workflow-task failures:  {figures.workflow_task_failures}",
        f"links stuck:             {figures.links_stuck} of {figures.live_links} live links",
        f"worker crashes:          {figures.worker_crashes}",
        f"secrets in logs:         {figures.secrets_in_logs}",
        f"secrets in the database: {figures.secrets_in_database}",
        f"run time:                {figures.duration_seconds:.0f} s",
    ]
    lines += [f"ERROR {error}" for error in figures.errors]
    return "\n".join(lines)


def healthy(figures: Figures) -> bool:
    return not (
        figures.workflow_task_failures
        or figures.links_stuck
        or figures.worker_crashes
        or figures.secrets_in_logs
        or figures.secrets_in_database
        or figures.errors
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="messages to send")
    parser.add_argument("--live-links", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = asyncio.run(run_fuzz(args))
    print(json.dumps(figures.__dict__, indent=2) if args.json else report(figures))
    sys.stdout.flush()
    # The Temporal client can abort the interpreter at exit (sdk-python issue 300): end here.
    exit_now(0 if healthy(figures) else 1)


if __name__ == "__main__":
    main()
