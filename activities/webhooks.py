"""The activities that deliver webhook events to the app, signed, over HTTP, to a checked address.

`follow_webhooks` delivers a link's events and then follows the link: each time the link's
history grows it reads the events still waiting (the `webhook_backlog` query) and delivers them,
until the link rests (nothing for its user or the provider to do) with every event delivered, or
a minute passes with nothing to deliver (a user taking their time: the link starts another
follower with its next event, so thousands of links waiting cost the server nothing). One
activity so carries an MFA conversation's events, at a few history events in all, and an
answer's reply never waits for it. When the server refuses or drops its long-poll (more are open
than it admits, or it is busy), the follower reads the link every few seconds until it can follow
again, rather than failing. `deliver_webhooks` is the batch form, one batch per activity,
that links recorded before followers still run; `deliver_webhook` is the one-event form of links
older still. Each remembers (in its heartbeat) how far it got, so a retry starts at the first event
not yet delivered. One POST is one attempt. Before it,
the URL is checked again (`linkflow.webhook_policy`), its host is resolved, every address is
checked, and the request is sent to a checked address with the URL's host in `Host` and, for
https, in SNI, so TLS still verifies the receiver's real name.

A 2xx is delivered; 5xx, 408, 429 and network trouble are retried by Temporal (honouring
`Retry-After`); a redirect or any other 4xx means the receiver refuses the event for good, so
retrying cannot help. The receiver's reply body is never read: errors say only the HTTP status, so
an internal service's answer can never reach history or logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import httpx
from pydantic import AnyHttpUrl, BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from linkflow.history_growth import run_growth
from linkflow.models import WebhookEvent
from linkflow.webhook_policy import (
    IPAddress,
    WebhookPolicy,
    WebhookUrlRefused,
    check_webhook_url,
    literal_address,
    resolve_checked_addresses,
)
from linkflow.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, WebhookSigning, signature_header
from providers.http import retry_after_seconds

WEBHOOK_TIMEOUT = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=5.0)
# A receiver's Retry-After is honoured up to the retry policy's own longest wait.
LONGEST_RETRY_DELAY = timedelta(minutes=10)
RETRYABLE_STATUS_CODES = frozenset({408, 429})

WEBHOOK_REFUSED = "WebhookRefused"
WEBHOOK_URL_REFUSED = "WebhookUrlRefused"
WEBHOOK_RECEIVER_UNAVAILABLE = "WebhookReceiverUnavailable"
WEBHOOK_RECEIVER_TIMEOUT = "WebhookReceiverTimeout"
WEBHOOK_RECEIVER_UNREACHABLE = "WebhookReceiverUnreachable"
NON_RETRYABLE_WEBHOOK_ERRORS = (WEBHOOK_REFUSED, WEBHOOK_URL_REFUSED)

WEBHOOK_BACKLOG_QUERY = "webhook_backlog"
# Followers poll a task queue of their own beside the link's (`follower_task_queue`): a link mid-MFA
# holds its follower for the whole conversation, and on the link's queue thousands of such
# conversations would take every slot the provider calls of other links need.
FOLLOWER_TASK_QUEUE_SUFFIX = "-webhook-followers"
# A follower heartbeats this often while the link is quiet, and hands back after following this
# long (the link starts another for what comes later): an MFA challenge waits 300 s by default.
FOLLOWER_HEARTBEAT_SECONDS = 10.0
FOLLOW_AT_MOST_SECONDS = 600.0
# A follower stays this long with nothing to deliver: while it stays it costs the server a
# heartbeat and a renewed long-poll every few tens of seconds; after, the next event costs one more
# activity (a few history events) and an event's delivery waits for that activity to start.
FOLLOW_IDLE_SECONDS = 60.0
# What a busy or full server answers; the follower pauses (doubling up to the heartbeat's period)
# and reads the link meanwhile. Any other error fails the attempt, and Temporal retries it.
PASSING_RPC_STATUSES = frozenset(
    {RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE}
)
FIRST_PAUSE_SECONDS = 1.0


def follower_task_queue(link_task_queue: str) -> str:
    """The task queue on which the followers of a link on `link_task_queue` run."""
    return link_task_queue + FOLLOWER_TASK_QUEUE_SUFFIX


class WebhookDelivery(BaseModel):
    url: AnyHttpUrl
    event: WebhookEvent


class WebhookReceipt(BaseModel):
    status_code: int
    attempt: int


class WebhookBatch(BaseModel):
    url: AnyHttpUrl
    events: list[WebhookEvent]


class WebhookBatchReceipt(BaseModel):
    delivered: int
    refused: int = 0
    attempt: int
    # A follower's: the sequence of the last event it delivered or saw refused.
    handled_through: int = 0


class WebhookBacklog(BaseModel):
    """A link run's events not yet confirmed delivered, and whether the link is at rest."""

    events: list[WebhookEvent]
    resting: bool


class WebhookActivities:
    """Delivers webhook events signed with every active secret, to receivers the policy allows.

    `tls_context` replaces the system's trusted certificates (tests use a local authority).
    """

    def __init__(
        self,
        signing: WebhookSigning,
        policy: WebhookPolicy | None = None,
        *,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._secrets = signing.secrets
        self._policy = WebhookPolicy.from_env() if policy is None else policy
        # No keep-alive: a pooled connection verified for one name must not carry another's
        # event to the same address. No proxies from the environment: they would bypass pinning.
        self._client = httpx.AsyncClient(
            timeout=WEBHOOK_TIMEOUT,
            follow_redirects=False,
            trust_env=False,
            transport=httpx.AsyncHTTPTransport(
                verify=tls_context if tls_context is not None else True,
                retries=0,
                limits=httpx.Limits(max_keepalive_connections=0),
            ),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    @activity.defn
    async def deliver_webhook(self, delivery: WebhookDelivery) -> WebhookReceipt:
        status = await self._deliver(httpx.URL(str(delivery.url)), delivery.event)
        return WebhookReceipt(status_code=status, attempt=activity.info().attempt)

    @activity.defn
    async def deliver_webhooks(self, batch: WebhookBatch) -> WebhookBatchReceipt:
        """Deliver a link's events in order; an event its receiver refuses is skipped."""
        url = httpx.URL(str(batch.url))
        details = activity.info().heartbeat_details
        handled = details[0] if details and isinstance(details[0], int) else 0
        accepted = Counter[bool]()
        for event in batch.events[handled:]:
            accepted[await self._offer(url, event)] += 1
            handled += 1
            activity.heartbeat(handled)
        return WebhookBatchReceipt(
            delivered=accepted[True], refused=accepted[False], attempt=activity.info().attempt
        )

    @activity.defn
    async def follow_webhooks(self, batch: WebhookBatch) -> WebhookBatchReceipt:
        """Deliver the batch, then each event the link records after it, until the link rests
        with nothing left to deliver, or nothing has come to deliver for a while (or the
        follower has followed for long enough)."""
        info = activity.info()
        url = httpx.URL(str(batch.url))
        details = info.heartbeat_details
        handled = details[0] if details and isinstance(details[0], int) else 0
        accepted = Counter[bool]()
        last_news = time.monotonic()

        async def deliver(events: Sequence[WebhookEvent]) -> None:
            nonlocal handled, last_news
            for event in sorted(events, key=lambda event: event.sequence):
                if event.sequence <= handled:
                    continue
                accepted[await self._offer(url, event)] += 1
                handled = event.sequence
                last_news = time.monotonic()
                activity.heartbeat(handled)

        await deliver(batch.events)
        link = activity.client().get_workflow_handle(
            info.workflow_id or "", run_id=info.workflow_run_id
        )
        grew = asyncio.Event()
        watch = asyncio.create_task(_set_on_growth(link.id, link.run_id, grew))
        try:
            give_back_at = time.monotonic() + FOLLOW_AT_MOST_SECONDS
            read_pause = FIRST_PAUSE_SECONDS
            while (now := time.monotonic()) < min(give_back_at, last_news + FOLLOW_IDLE_SECONDS):
                idle_left = last_news + FOLLOW_IDLE_SECONDS - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(grew.wait(), min(FOLLOWER_HEARTBEAT_SECONDS, idle_left))
                activity.heartbeat(handled)
                if not grew.is_set():
                    continue
                grew.clear()
                closed = watch.done()
                if closed:
                    watch.result()  # raises what following the run raised (Temporal unreachable)
                try:
                    backlog = await link.query(WEBHOOK_BACKLOG_QUERY, result_type=WebhookBacklog)
                except RPCError as error:
                    if error.status not in PASSING_RPC_STATUSES:
                        raise
                    await asyncio.sleep(read_pause)
                    read_pause = min(2 * read_pause, FOLLOWER_HEARTBEAT_SECONDS)
                    grew.set()  # read again
                    continue
                read_pause = FIRST_PAUSE_SECONDS
                await deliver(backlog.events)
                if backlog.resting or closed:
                    break
        finally:
            watch.cancel()
        return WebhookBatchReceipt(
            delivered=accepted[True],
            refused=accepted[False],
            attempt=info.attempt,
            handled_through=handled,
        )

    async def _offer(self, url: httpx.URL, event: WebhookEvent) -> bool:
        """Deliver the event: True once delivered, False when the receiver refuses it for good
        (skipped); anything worth retrying is raised."""
        try:
            await self._deliver(url, event)
        except ApplicationError as error:
            if error.type != WEBHOOK_REFUSED:
                raise
            return False
        return True

    async def _deliver(self, url: httpx.URL, event: WebhookEvent) -> int:
        addresses = await self._checked_addresses(url)
        body = event.model_dump_json().encode()
        headers = {
            "Host": url.netloc.decode("ascii"),
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self._secrets, body),
            EVENT_ID_HEADER: event.id,
        }
        try:
            status = await self._post_to_first_answering(url, addresses, body, headers)
        except httpx.TimeoutException as error:
            raise ApplicationError(
                f"The webhook receiver did not answer in time ({type(error).__name__}).",
                type=WEBHOOK_RECEIVER_TIMEOUT,
            ) from None
        except httpx.TransportError as error:
            # The error's own text is left out: a protocol error can quote the reply's bytes.
            raise ApplicationError(
                f"The webhook receiver could not be reached ({type(error).__name__}).",
                type=WEBHOOK_RECEIVER_UNREACHABLE,
            ) from None
        return status

    async def _checked_addresses(self, url: httpx.URL) -> list[IPAddress]:
        try:
            check_webhook_url(str(url), self._policy)
            port = url.port or (443 if url.scheme == "https" else 80)
            return await resolve_checked_addresses(url.raw_host.decode("ascii"), port, self._policy)
        except WebhookUrlRefused as refused:
            raise ApplicationError(
                str(refused), type=WEBHOOK_URL_REFUSED, non_retryable=True
            ) from None
        except OSError as error:
            raise ApplicationError(
                f"The webhook receiver's host name could not be resolved ({type(error).__name__}).",
                type=WEBHOOK_RECEIVER_UNREACHABLE,
            ) from None

    async def _post_to_first_answering(
        self,
        url: httpx.URL,
        addresses: list[IPAddress],
        body: bytes,
        headers: dict[str, str],
    ) -> int:
        """POST to each checked address in turn until one accepts the connection; its status."""
        host = url.raw_host.decode("ascii")
        literal = literal_address(host)
        # TLS verifies the name in the URL (or the address it spells), never the pinned address.
        server_name = host if literal is None else str(literal)
        extensions = {"sni_hostname": server_name} if url.scheme == "https" else {}
        for position, address in enumerate(addresses, start=1):
            request = self._client.build_request(
                "POST",
                url.copy_with(host=str(address)),
                content=body,
                headers=headers,
                extensions=extensions,
            )
            try:
                response = await self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if position == len(addresses):
                    raise
                continue
            await response.aclose()
            raise_for_receiver_status(response)
            return response.status_code
        raise httpx.ConnectError("No address to connect to.")


async def _set_on_growth(workflow_id: str, run_id: str | None, grew: asyncio.Event) -> None:
    """Set `grew` each time the run's history grows, and once more when the run has closed.

    While the server refuses or drops the long-poll, `grew` is set after each pause instead (the
    follower reads the link then), and the run is followed again.
    """
    pause = FIRST_PAUSE_SECONDS
    try:
        while True:
            try:
                async for _ in run_growth(activity.client(), workflow_id, run_id):
                    grew.set()
                    pause = FIRST_PAUSE_SECONDS
                return
            except RPCError as error:
                if error.status not in PASSING_RPC_STATUSES:
                    raise
            await asyncio.sleep(pause)
            pause = min(2 * pause, FOLLOWER_HEARTBEAT_SECONDS)
            grew.set()
    finally:
        grew.set()


def raise_for_receiver_status(response: httpx.Response) -> None:
    """Raise the typed error a receiver's status means; return on a 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return
    answered = f"The webhook receiver answered HTTP {status}"
    if 300 <= status < 400:
        raise ApplicationError(
            f"{answered}; redirects are not followed.", type=WEBHOOK_REFUSED, non_retryable=True
        )
    if status in RETRYABLE_STATUS_CODES or status >= 500:
        raise ApplicationError(
            f"{answered}; the delivery will be retried.",
            type=WEBHOOK_RECEIVER_UNAVAILABLE,
            next_retry_delay=_retry_delay(response),
        )
    raise ApplicationError(
        f"{answered}; it refuses the event.", type=WEBHOOK_REFUSED, non_retryable=True
    )


def _retry_delay(response: httpx.Response) -> timedelta | None:
    wait = retry_after_seconds(response)
    if wait is None or math.isnan(wait):
        return None
    return timedelta(seconds=min(max(wait, 0.0), LONGEST_RETRY_DELAY.total_seconds()))
