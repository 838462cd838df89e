"""Webhook followers on a server that admits fewer history long-polls than there are followers.

A link with a webhook holds one long-poll of its history while it converses. On a dev server that
admits 12 long-polls of one method per namespace (`frontend.namespaceCount`; linkflow's own
servers admit 20,000), 16 links wait on MFA with their followers running: the followers the server
turns away read their links every few seconds instead, so every event still arrives, and no
follower fails an attempt.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from linkflow.models import LinkStatus
from linkflow.temporal import dev_server_limit_args
from tests.conftest import local_dev_server
from tests.fixtures.answers import right_answers
from tests.fixtures.webhook_receiver import Receiver
from tests.test_link_life import (
    WAIT,
    follower_running,
    living_request,
    unique_login,
)

LONG_POLLS_ADMITTED = 12
LINKS = 16


@pytest.fixture(scope="module")
async def crowded_env() -> AsyncIterator[WorkflowEnvironment]:
    admitted = f"frontend.namespaceCount={LONG_POLLS_ADMITTED}"
    async with local_dev_server(
        [*dev_server_limit_args(), "--dynamic-config-value", admitted]
    ) as env:
        yield env


async def test_followers_beyond_the_servers_long_polls_still_deliver_every_event(
    crowded_env: WorkflowEnvironment,
    run_worker,
    receiver: tuple[Receiver, str],
) -> None:
    app, url = receiver
    app.refused = 1  # this receiver accepts every delivery
    async with run_worker(crowded_env.client) as links:
        started = await asyncio.gather(
            *(
                links.start_and_wait(living_request(unique_login("user_otp"), webhook_url=url))
                for _ in range(LINKS)
            )
        )
        handles = [links.temporal.get_workflow_handle(link_id) for link_id, _ in started]
        async with asyncio.timeout(WAIT.total_seconds()):
            while not all([await follower_running(handle) for handle in handles]):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        announced: dict[str, list[str]] = {}
        for link_id, first in started:
            second = await links.submit_mfa(link_id, right_answers(first))
            assert second.status is LinkStatus.MFA_REQUIRED
            announced[link_id] = [change.status.value for change in second.history[1:]]

        # Every change of every link reached the receiver: both challenges, and what came between.
        async with asyncio.timeout(WAIT.total_seconds()):
            while len(app.deliveries) < sum(map(len, announced.values())):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        received: dict[str, list[str]] = {}
        for _headers, body in app.deliveries:
            event = json.loads(body)
            received.setdefault(event["link_id"], []).append(event["status"])
        assert received == announced
        assert all(statuses.count("MFA_REQUIRED") == 2 for statuses in received.values())
        assert [await follower_attempts(handle) for handle in handles] == [1] * LINKS


async def follower_attempts(handle: WorkflowHandle[Any, Any]) -> int:
    pending = (await handle.describe()).raw_description.pending_activities
    (follower,) = [a for a in pending if a.activity_type.name == "follow_webhooks"]
    return follower.attempt
