"""Watching a link without a poll loop: `history_growth`, `LinkClient.watch`, and the API's stream.

On the CLI's dev server: the follower wakes for each new event of a run (a signal, a
continue-as-new) and follows the next run, ends when the last run closes, and the API's event
stream reads a waiting link's snapshot only when it changes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from api.codec_server import CodecAccess
from linkflow.client import LinkClient
from linkflow.history_growth import history_growth
from linkflow.models import LinkSnapshot
from tests.conftest import TEST_KEY_RING
from tests.test_api import BACKEND, CODEC_TOKEN, PASSWORD, api_settings, page, serve, unique

WAKE_WITHIN = 10.0


@workflow.defn(sandboxed=False)
class RunsOnSignals:
    """Waits; `again` continues it as new, `stop` ends it."""

    def __init__(self) -> None:
        self.next: str | None = None

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.next is not None)
        if self.next == "again":
            workflow.continue_as_new()

    @workflow.signal
    def again(self) -> None:
        self.next = "again"

    @workflow.signal
    def stop(self) -> None:
        self.next = "stop"


async def next_wake(growth: AsyncIterator[None]) -> None:
    async with asyncio.timeout(WAKE_WITHIN):
        await anext(growth)


async def test_the_follower_wakes_for_new_events_follows_the_next_run_and_ends_with_the_last(
    dev_env: WorkflowEnvironment,
) -> None:
    client: Client = dev_env.client
    task_queue = f"growth-{uuid.uuid4()}"
    # No worker yet, so the run's history stands still until the test moves it.
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        RunsOnSignals.run, id=f"growth-{uuid.uuid4()}", task_queue=task_queue
    )
    growth = history_growth(client, handle.id)
    await next_wake(growth)  # the events the run already has
    quiet = asyncio.ensure_future(anext(growth))
    await asyncio.sleep(0.5)
    assert not quiet.done(), "nothing happened, so the follower must not wake"
    await handle.signal(RunsOnSignals.again)
    async with asyncio.timeout(WAKE_WITHIN):
        await quiet

    async with Worker(client, task_queue=task_queue, workflows=[RunsOnSignals]):
        # The worker continues the run as new: wakes come from the first run until it has
        # closed, then from the run that follows it.
        first_run = handle.result_run_id
        while (await client.get_workflow_handle(handle.id).describe()).run_id == first_run:
            await next_wake(growth)
        await next_wake(growth)

        await client.get_workflow_handle(handle.id).signal(RunsOnSignals.stop)
        wakes = 0
        async with asyncio.timeout(WAKE_WITHIN):
            async for _ in growth:
                wakes += 1
    assert wakes >= 1, "the stop is news; then the follower ends with the last run"


async def test_a_watch_of_a_link_that_does_not_exist_ends_and_says_so(
    dev_env: WorkflowEnvironment,
) -> None:
    links = LinkClient(dev_env.client, "no-such-queue")
    changed = asyncio.Event()
    async with asyncio.timeout(WAKE_WITHIN):
        await links.watch(f"missing-{uuid.uuid4()}", changed)
    assert changed.is_set(), "the watcher is woken to read, and find, the missing link"


class CountingLinkClient(LinkClient):
    """Counts the snapshot reads the API makes."""

    reads = 0

    async def snapshot(self, link_id: str) -> LinkSnapshot:
        self.reads += 1
        return await super().snapshot(link_id)


async def test_the_event_stream_reads_a_waiting_link_only_when_it_changes(
    dev_env: WorkflowEnvironment, run_worker: Any
) -> None:
    async with run_worker(dev_env.client) as links:
        counting = CountingLinkClient(links.temporal, links.task_queue)
        app = create_app(
            TEST_KEY_RING,
            CodecAccess(tokens=(CODEC_TOKEN,)),
            api_settings=api_settings("http://link.example.test"),
            links=counting,
        )
        async for url in serve(app):
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                await stream_a_waiting_link(http, counting)


async def stream_a_waiting_link(http: httpx.AsyncClient, counting: CountingLinkClient) -> None:
    body = {"provider": "mx", "user_ref": "watched"}
    session = (await http.post("/v1/link-sessions", json=body, headers=BACKEND)).json()
    started = await http.post(
        "/v1/links",
        json={"credentials": {"username": unique("user_mfa"), "password": PASSWORD}},
        headers=page(session["link_token"]),
    )
    assert started.json()["status"] == "MFA_REQUIRED"
    link_id = started.json()["link_id"]
    async with http.stream(
        "GET", f"/v1/links/{link_id}/events", headers=page(session["link_token"])
    ) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        async with asyncio.timeout(WAKE_WITHIN):
            while not (await anext(lines)).startswith("event: snapshot"):
                pass
        reads_at_open = counting.reads
        # The link waits for its answer: three seconds in which a poll loop would read it often.
        await asyncio.sleep(3)
        assert counting.reads - reads_at_open <= 1, "one read for the history's first page at most"
