"""The one place where a provider's failure becomes a Temporal error.

Adapters raise plain exceptions (`LinkFailure`, `ProviderUnavailable`, `ProviderRejectedRequest`)
and httpx raises its own; activities raise only the typed `ApplicationError`s made here, so the
retry policy and the workflow see one vocabulary:

| error type | retried | raised for |
|---|---|---|
| `LinkFailure` | no | the provider's final business answer (bad credentials, failed MFA, ...) |
| `ProviderRejectedRequest` | no | the provider refused our request (4xx): a bug, a bad API key |
| `ProviderUnavailable` | yes, after `Retry-After` when given | 5xx, 408, 429 |
| `ProviderTimeout` | yes | the provider did not answer in time |
| `ProviderUnreachable` | yes | connection refused, reset or dropped |
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from linkflow.models import LinkReason
from providers.base import LinkFailure, ProviderRejectedRequest, ProviderUnavailable

LINK_FAILURE = "LinkFailure"
PROVIDER_REJECTED_REQUEST = "ProviderRejectedRequest"
PROVIDER_UNAVAILABLE = "ProviderUnavailable"
PROVIDER_TIMEOUT = "ProviderTimeout"
PROVIDER_UNREACHABLE = "ProviderUnreachable"

NON_RETRYABLE_ERROR_TYPES = (LINK_FAILURE, PROVIDER_REJECTED_REQUEST)


class LinkFailureDetails(BaseModel):
    """Carried as the `LinkFailure` error's details so the workflow can report the reason."""

    reason: LinkReason
    raw_status: str


def to_application_error(error: Exception) -> ApplicationError | None:
    """The typed error for a provider failure, or None when the error is not a provider's."""
    if isinstance(error, LinkFailure):
        return ApplicationError(
            error.message,
            LinkFailureDetails(reason=error.reason, raw_status=error.raw_status),
            type=LINK_FAILURE,
            non_retryable=True,
            # A user's wrong password is the link's business, not an operational error to log.
            category=ApplicationErrorCategory.BENIGN,
        )
    if isinstance(error, ProviderRejectedRequest):
        return ApplicationError(str(error), type=PROVIDER_REJECTED_REQUEST, non_retryable=True)
    if isinstance(error, ProviderUnavailable):
        delay = (
            timedelta(seconds=error.retry_after_seconds)
            if error.retry_after_seconds is not None
            else None
        )
        return ApplicationError(str(error), type=PROVIDER_UNAVAILABLE, next_retry_delay=delay)
    if isinstance(error, httpx.TimeoutException):
        return ApplicationError(
            f"The provider did not answer in time ({type(error).__name__}).", type=PROVIDER_TIMEOUT
        )
    if isinstance(error, httpx.TransportError):
        return ApplicationError(
            f"The provider could not be reached ({type(error).__name__}: {error}).",
            type=PROVIDER_UNREACHABLE,
        )
    return None
