"""WebhookDeliveryWorkflow: one webhook event, delivered with durable, bounded retries.

The link starts one of these as an abandoned child for every status change, so a slow or broken
receiver never holds the link up, and a delivery survives the link continuing as new or ending.
Its workflow id is the event's id, so a repeated start cannot deliver an event twice.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import (
        NON_RETRYABLE_WEBHOOK_ERRORS,
        WebhookActivities,
        WebhookDelivery,
        WebhookReceipt,
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
