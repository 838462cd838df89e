"""The API's way to Temporal: one lazily connected `LinkClient`, bounded waits, and refusals.

The API process starts whether or not Temporal is up (the codec routes need no Temporal), and
connects on the first call that needs a link. Every failure to reach Temporal, or a worker, is a
503 in the API's error shape; a link that takes longer than `wait_seconds` to answer is a 504 that
says how to pick the result up later; and the link's own refusals (a stale answer, a busy link)
are 409s with the link's reason. No Temporal error text reaches a caller: it can carry ids and
internals, so callers get the status code's meaning and the API's log gets the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from linkflow.client import AnswerRefused, LinkClient, LinkNotFound, LinkRefused
from linkflow.config import ConfigurationError

T = TypeVar("T")
Connector = Callable[[], Awaitable[LinkClient]]

logger = logging.getLogger(__name__)


def temporal_unavailable() -> ApiError:
    return ApiError(
        503,
        "temporal_unavailable",
        "The service is temporarily unavailable. Please try again in a moment.",
        "The API cannot reach Temporal (or no worker answered); nothing was changed.",
        "retry the same call later (with the same Idempotency-Key)",
        {"Retry-After": "5"},
    )


def link_not_found() -> ApiError:
    return ApiError(
        404,
        "link_not_found",
        "This link does not exist.",
        "No link has this id.",
        "POST /v1/link-sessions or POST /v1/links to start a link",
    )


class LinkBackend:
    def __init__(self, connector: Connector, *, wait_seconds: float) -> None:
        self._connector = connector
        self._client: LinkClient | None = None
        self._lock = asyncio.Lock()
        self.wait_seconds = wait_seconds

    @classmethod
    def of(cls, client: LinkClient, *, wait_seconds: float) -> LinkBackend:
        async def connected() -> LinkClient:
            return client

        return cls(connected, wait_seconds=wait_seconds)

    async def client(self) -> LinkClient:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await self._connector()
                except ConfigurationError as error:
                    logger.error("Cannot connect to Temporal: %s", error)
                    raise temporal_unavailable() from None
                except (RuntimeError, OSError, RPCError) as error:
                    logger.warning("Cannot connect to Temporal (%s)", type(error).__name__)
                    raise temporal_unavailable() from None
            return self._client

    async def run(
        self,
        operation: Callable[[LinkClient], Awaitable[T]],
        *,
        link_id: str | None = None,
        wait_seconds: float | None = None,
    ) -> T:
        """Run `operation` within the wait, turning every failure into an `ApiError`."""
        client = await self.client()
        try:
            async with asyncio.timeout(wait_seconds or self.wait_seconds):
                return await operation(client)
        except LinkNotFound:
            raise link_not_found() from None
        except AnswerRefused as refusal:
            raise ApiError(
                409,
                "answer_refused",
                "That answer could not be taken. Check the question and try again.",
                str(refusal),
                f"GET {_link_path(link_id)} for the pending challenges, then POST"
                f" {_link_path(link_id)}/mfa",
            ) from None
        except LinkRefused as refusal:
            raise ApiError(
                409,
                "link_refused",
                "This link cannot do that right now.",
                str(refusal),
                f"GET {_link_path(link_id)} to see where the link stands",
            ) from None
        except (TimeoutError, RPCTimeoutOrCancelledError):
            raise link_timeout(link_id) from None
        except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
            logger.warning("A link's query failed (%s)", type(error).__name__)
            raise temporal_unavailable() from None
        except RPCError as error:
            raise _from_rpc_error(error, link_id) from None


def _link_path(link_id: str | None) -> str:
    return f"/v1/links/{link_id or '{link_id}'}"


def link_timeout(link_id: str | None) -> ApiError:
    where = f"GET {_link_path(link_id)}, or " if link_id else ""
    return ApiError(
        504,
        "link_timeout",
        "This is taking longer than usual. Please wait a moment.",
        "The link did not answer within the API's wait; it may still act on the request.",
        f"{where}retry the same call with the same Idempotency-Key to get its result",
    )


def _from_rpc_error(error: RPCError, link_id: str | None) -> ApiError:
    status = error.status
    if status == RPCStatusCode.NOT_FOUND:
        return link_not_found()
    if status == RPCStatusCode.RESOURCE_EXHAUSTED:
        return ApiError(
            429,
            "link_busy",
            "Too many requests at once. Please try again in a moment.",
            "Temporal refused the call for now (RESOURCE_EXHAUSTED): too many requests in flight"
            " for this link.",
            "retry after Retry-After seconds",
            {"Retry-After": "1"},
        )
    if status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION):
        return ApiError(
            409,
            "link_refused",
            "This link cannot do that right now.",
            f"Temporal refused the call ({status.name}).",
            f"GET {_link_path(link_id)} to see where the link stands",
        )
    if status == RPCStatusCode.DEADLINE_EXCEEDED:
        return link_timeout(link_id)
    logger.warning("Temporal call failed: %s", status.name)
    return temporal_unavailable()
