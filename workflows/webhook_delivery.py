"""Webhook events delivered beside a link, with durable, bounded retries, after the link moved on.

`WebhookHandoverWorkflow` takes the events a link run had not delivered when it ended or continued
as new (see `workflows/webhook_outbox.py`), so a slow or broken receiver never holds the link up.
`WebhookDeliveryWorkflow` is the one-event child that links recorded before batches started for
every status change. Both are named after their first event, so a repeated start cannot deliver
the same events twice.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import (
        FOLLOW_AT_MOST_SECONDS,
        NON_RETRYABLE_WEBHOOK_ERRORS,
        WebhookActivities,
        WebhookBatch,
        WebhookBatchReceipt,
        WebhookDelivery,
        WebhookReceipt,
        follower_task_queue,
    )

# About two hours of attempts, backing off to every ten minutes; then the event is given up.
# A refused URL or a receiver's refusal is never retried.
WEBHOOK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=20,
    non_retryable_error_types=list(NON_RETRYABLE_WEBHOOK_ERRORS),
)


@workflow.defn(name="WebhookDeliveryWorkflow")
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, delivery: WebhookDelivery) -> WebhookReceipt:
        return await workflow.execute_activity_method(
            WebhookActivities.deliver_webhook,
            delivery,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=WEBHOOK_RETRY,
            summary=f"deliver {delivery.event.status.value} to the app's webhook",
        )


async def deliver_batch(batch: WebhookBatch) -> WebhookBatchReceipt:
    """Deliver a link's events in order, with the durable retries above (from workflow code)."""
    return await workflow.execute_activity_method(
        WebhookActivities.deliver_webhooks,
        batch,
        start_to_close_timeout=timedelta(seconds=30 * len(batch.events) + 30),
        heartbeat_timeout=timedelta(seconds=45),
        retry_policy=WEBHOOK_RETRY,
        summary=f"deliver {len(batch.events)} event(s) to the app's webhook",
    )


async def follow_link(batch: WebhookBatch) -> WebhookBatchReceipt:
    """Deliver the link's events from `batch` on, following the link until it rests."""
    return await workflow.execute_activity_method(
        WebhookActivities.follow_webhooks,
        batch,
        task_queue=follower_task_queue(workflow.info().task_queue),
        start_to_close_timeout=timedelta(seconds=FOLLOW_AT_MOST_SECONDS + 30 * len(batch.events)),
        heartbeat_timeout=timedelta(seconds=45),
        retry_policy=WEBHOOK_RETRY,
        summary="deliver the link's events to the app's webhook as they happen",
    )


@workflow.defn(name="WebhookHandoverWorkflow")
class WebhookHandoverWorkflow:
    @workflow.run
    async def run(self, batch: WebhookBatch) -> WebhookBatchReceipt:
        return await deliver_batch(batch)
