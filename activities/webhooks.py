"""The activity that delivers one webhook event to the app, signed, over HTTP.

One attempt is one POST. A 2xx is delivered; 5xx, 408, 429 and network trouble are retried by
Temporal (honouring `Retry-After`); any other 4xx means the receiver refuses the event for good
(a bad URL, a failed signature check), so retrying cannot help.
"""

from __future__ import annotations

import httpx
from pydantic import AnyHttpUrl, BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import to_application_error
from linkflow.config import WebhookSettings
from linkflow.models import WebhookEvent
from linkflow.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header
from providers.base import ProviderRejectedRequest
from providers.http import make_client, raise_for_provider_status

WEBHOOK_TIMEOUT = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=5.0)
WEBHOOK_REFUSED = "WebhookRefused"


class WebhookDelivery(BaseModel):
    url: AnyHttpUrl
    event: WebhookEvent


class WebhookReceipt(BaseModel):
    status_code: int
    attempt: int


class WebhookActivities:
    def __init__(self, settings: WebhookSettings) -> None:
        self._secret = settings.secret
        self._client = make_client("", timeout=WEBHOOK_TIMEOUT)

    async def aclose(self) -> None:
        await self._client.aclose()

    @activity.defn
    async def deliver_webhook(self, delivery: WebhookDelivery) -> WebhookReceipt:
        body = delivery.event.model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self._secret, body),
            EVENT_ID_HEADER: delivery.event.id,
        }
        try:
            response = await self._client.post(str(delivery.url), content=body, headers=headers)
            raise_for_provider_status(response, "The webhook receiver")
        except ProviderRejectedRequest as refused:
            raise ApplicationError(str(refused), type=WEBHOOK_REFUSED, non_retryable=True) from None
        except Exception as error:
            typed = to_application_error(error)
            if typed is None:
                raise
            raise typed from error
        return WebhookReceipt(status_code=response.status_code, attempt=activity.info().attempt)
