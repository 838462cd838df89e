"""How soon a link's change reaches the page's event stream, measured through the real API.

    .venv/bin/python bench/events.py                 # 30 links, two answers each
    .venv/bin/python bench/events.py --links 5 --json

The connect page learns of changes it did not make itself (an answer from the backend, a push
approved on a phone, a refresh that needs MFA) only through `GET /v1/links/{id}/events`. The API
follows the link's history with Temporal's long-poll and reads the snapshot when it grows, instead
of reading it on a clock (it read every 0.5 s before). This run starts the dev stack (dev server on
SQLite on disk, sandbox with no latency, worker, API) on free ports, then for each link: starts it
with a link token (MX `user_otp`), opens its event stream, and answers each challenge from the
backend with the API key. For each answer it records when the answer's own reply arrived and when
the stream's `snapshot` event with the same outcome (the next challenge, or the result) arrived,
and prints the lag of the stream behind the reply (negative: the stream was first). The stack is
stopped and deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.stack import machine  # noqa: E402
from linkflow.devstack import DevStack, StackPorts  # noqa: E402
from linkflow.models import LinkSnapshot, LinkStatus, MfaSubmission  # noqa: E402
from tests.fixtures.answers import right_answers  # noqa: E402
from tests.fixtures.sse import server_sent_events  # noqa: E402

USERNAME = "user_otp"  # MX: which phone to text, then the code
PASSWORD = "pass_good"
STEP_SECONDS = 30.0


@dataclass
class Figures:
    links: int = 0
    answers: int = 0
    # Per answer: when its reply and the stream's event with its outcome arrived, after sending.
    reply_ms: list[float] = field(default_factory=list)
    stream_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lags = [stream - reply for stream, reply in zip(self.stream_ms, self.reply_ms, strict=True)]
        return {
            "links": self.links,
            "answers": self.answers,
            "answer_reply_ms.p50": round(statistics.median(self.reply_ms), 1),
            "stream_event_ms.p50": round(statistics.median(self.stream_ms), 1),
            "stream_lag_behind_reply_ms.p50": round(statistics.median(lags), 1),
            "stream_lag_behind_reply_ms.max": round(max(lags), 1),
        }


async def snapshots(stream: httpx.Response) -> AsyncIterator[LinkSnapshot]:
    """The `snapshot` events of the link's event stream, as they arrive."""
    async for name, data in server_sent_events(stream):
        if name == "snapshot":
            yield LinkSnapshot.model_validate_json(data)


def moved_on(before: LinkSnapshot, after: LinkSnapshot) -> bool:
    """The next challenge, or the result: what the answer's reply carries.

    The stream may show `CONNECTING` on the way (the answer taken, the provider still working),
    which the reply never does; the lag is measured to the state the reply carries.
    """
    if after.status is LinkStatus.CONNECTING:
        return False
    return after.status != before.status or after.pending_challenges != before.pending_challenges


async def reply_time(
    api: httpx.AsyncClient, path: str, answer: MfaSubmission, headers: dict[str, str]
) -> float:
    """When the answer's reply (the next challenge or the result) arrived."""
    response = await api.post(path, json=answer.model_dump(mode="json"), headers=headers)
    response.raise_for_status()
    return time.perf_counter()


async def one_link(api: httpx.AsyncClient, api_key: str, figures: Figures) -> None:
    backend = {"Authorization": f"Bearer {api_key}"}
    session = await api.post(
        "/v1/link-sessions",
        json={"provider": "mx", "user_ref": f"events-{uuid.uuid4().hex[:12]}"},
        headers=backend,
    )
    page = {"Authorization": f"Bearer {session.json()['link_token']}"}
    started = await api.post(
        "/v1/links",
        json={"credentials": {"username": USERNAME, "password": PASSWORD}},
        headers=page,
    )
    snapshot = LinkSnapshot.model_validate_json(started.content)
    async with api.stream("GET", f"/v1/links/{snapshot.link_id}/events", headers=page) as stream:
        events = snapshots(stream)
        async with asyncio.timeout(STEP_SECONDS):
            shown = await anext(events)
        while shown.status is LinkStatus.MFA_REQUIRED:
            sent = time.perf_counter()
            replied = asyncio.ensure_future(
                reply_time(api, f"/v1/links/{snapshot.link_id}/mfa", right_answers(shown), backend)
            )
            async with asyncio.timeout(STEP_SECONDS):
                previous = shown
                while not moved_on(previous, shown):
                    shown = await anext(events)
            seen = time.perf_counter()
            figures.reply_ms.append((await replied - sent) * 1000)
            figures.stream_ms.append((seen - sent) * 1000)
            figures.answers += 1
    figures.links += 1


async def measure(links: int) -> Figures:
    stack = DevStack(
        ports=StackPorts.free(),
        state_dir=Path(tempfile.mkdtemp(prefix="linkflow-events-")),
        sandbox_args=("--latency-seconds", "0"),
    )
    figures = Figures()
    try:
        await asyncio.to_thread(stack.start)
        async with httpx.AsyncClient(base_url=stack.ports.api_url, timeout=60) as api:
            await one_link(api, stack.api_key(), Figures())  # warm up
            for _ in range(links):
                await one_link(api, stack.api_key(), figures)
    finally:
        await asyncio.to_thread(stack.stop)
        shutil.rmtree(stack.state_dir, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.links))
    summary = figures.summary()
    if args.json:
        print(json.dumps({"machine": asdict(machine()), "figures": summary}, indent=2))
    else:
        print(machine().line())
        for name, value in summary.items():
            print(f"{name}: {value}")


if __name__ == "__main__":
    main()
