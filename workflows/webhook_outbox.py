"""The link's webhook events on their way to the app, off the path of the user's answers.

Events leave in order, through one `follow_webhooks` activity at a time: it takes every event
waiting, then follows the link, reading the events recorded after it started (`backlog`, served
by the link's `webhook_backlog` query) and delivering each as soon as the workflow task that made
it completes, until the link rests. A whole MFA conversation so costs one activity (a few history
events), and the activity is started and never awaited by the link's story, so an answer's reply
never waits for a webhook. When the run ends or continues as new, events not yet confirmed are
handed to one abandoned `WebhookHandoverWorkflow`, which delivers them as durably, so a broken
receiver never keeps a link open. Receivers dedupe on the event id: an event may arrive twice,
never out of sequence order.

Links recorded before followers deliver in batches, one `deliver_webhooks` activity per batch
(events made while one runs wait for the next); links older still start a `WebhookDeliveryWorkflow`
child per event. Both keep doing so.
"""

from __future__ import annotations

import asyncio
import contextlib
from enum import Enum

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import AnyHttpUrl

    from activities.webhooks import WebhookBacklog, WebhookBatch, WebhookDelivery
    from linkflow.models import WebhookEvent
    from workflows.webhook_delivery import (
        WebhookDeliveryWorkflow,
        WebhookHandoverWorkflow,
        deliver_batch,
        follow_link,
    )

# How long the end of a run waits for the batch in flight before handing the rest over.
DRAIN_SECONDS = 10.0


class DeliveryPath(Enum):
    """How a run's events leave: the path the run was recorded on."""

    FOLLOWER = "one follow_webhooks activity follows the link"
    BATCHES = "one deliver_webhooks activity per batch"
    CHILD_PER_EVENT = "one WebhookDeliveryWorkflow child per event"


class WebhookOutbox:
    """A link run's undelivered events and the one delivery in flight."""

    def __init__(self, url: AnyHttpUrl | None, path: DeliveryPath) -> None:
        self._url = url
        self._path = path
        self._waiting: list[WebhookEvent] = []
        self._in_flight: list[WebhookEvent] = []
        self._delivery: asyncio.Task[None] | None = None
        self._children: list[asyncio.Task[None]] = []

    def post(self, event: WebhookEvent) -> None:
        if self._url is None:
            return
        if self._path is DeliveryPath.CHILD_PER_EVENT:
            delivery = WebhookDelivery(url=self._url, event=event)
            self._children.append(asyncio.create_task(_start_child(delivery)))
            return
        self._waiting.append(event)
        if self._delivery is None:
            followed = self._path is DeliveryPath.FOLLOWER
            deliver = self._follow if followed else self._deliver_in_order
            self._delivery = asyncio.create_task(deliver())

    def backlog(self, *, resting: bool) -> WebhookBacklog:
        """What a follower has yet to deliver; `resting`: the link waits for no one."""
        return WebhookBacklog(events=self._waiting, resting=resting)

    async def _follow(self) -> None:
        assert self._url is not None
        while self._waiting:
            handled = self._waiting[-1].sequence
            with contextlib.suppress(Exception):
                # Given up on (a receiver down for hours): the next events get a new follower.
                receipt = await follow_link(WebhookBatch(url=self._url, events=self._waiting))
                handled = max(handled, receipt.handled_through)
            self._waiting = [event for event in self._waiting if event.sequence > handled]
        self._delivery = None

    async def _deliver_in_order(self) -> None:
        assert self._url is not None
        while self._waiting:
            self._in_flight, self._waiting = self._waiting, []
            with contextlib.suppress(Exception):
                # A batch given up on (a receiver down for hours) does not stop the next one.
                await deliver_batch(WebhookBatch(url=self._url, events=self._in_flight))
            self._in_flight = []
        self._delivery = None

    async def close(self) -> None:
        """Before the run ends: let the batch in flight finish, or hand what is left over."""
        await asyncio.gather(*self._children)
        if self._delivery is None:
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._delivery is None,
                timeout=DRAIN_SECONDS,
                timeout_summary="webhook events still on their way",
            )
        if self._delivery is None or self._url is None:
            return
        left = [*self._in_flight, *self._waiting]
        self._delivery.cancel()
        self._in_flight, self._waiting, self._delivery = [], [], None
        await _start_handover(WebhookBatch(url=self._url, events=left))


async def _start_child(delivery: WebhookDelivery) -> None:
    # An event whose delivery is already under way (the same id) is not delivered twice.
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await workflow.start_child_workflow(
            WebhookDeliveryWorkflow.run,
            delivery,
            id=f"{delivery.event.id}:webhook",
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"webhook: {delivery.event.status.value}",
        )


async def _start_handover(batch: WebhookBatch) -> None:
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await workflow.start_child_workflow(
            WebhookHandoverWorkflow.run,
            batch,
            id=f"{batch.events[0].id}:webhooks",
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=f"webhooks: {len(batch.events)} event(s) handed over",
        )
