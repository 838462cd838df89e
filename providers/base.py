"""The seam between linkflow and a provider's HTTP API.

Every provider adapter implements `ProviderAdapter`. An adapter knows one provider's contract
(paths, headers, field names, status words) and translates it into linkflow's vocabulary; it knows
nothing about Temporal. The activities in `activities/` turn what adapters raise into Temporal's
typed errors, and the workflow decides what happens next.

The shape fits all five seed providers: a login may come back linked, still in progress,
challenged, or needing the user's action; answering a challenge and polling both return the same
`ProviderState`; terminal business failures (bad credentials, unsupported MFA) are raised as
`LinkFailure`, and transient trouble as `ProviderUnavailable`.

A link lives on after it connects: `refresh`, `reauthenticate` and `resolve_hold` serve its later
life. Providers without a dedicated route for one of them inherit `LifecycleByLoggingInAgain`,
which reads the job's state or logs in afresh, as their APIs allow.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, Field

from linkflow.models import (
    Account,
    Challenge,
    ChallengeAnswer,
    LinkReason,
    LinkRequest,
    Provider,
)


class Outcome(StrEnum):
    LINKED = "LINKED"
    """Logged in; accounts can be fetched."""
    PENDING = "PENDING"
    """The provider is still working; poll again."""
    CHALLENGED = "CHALLENGED"
    """The provider asks the end user one or more questions."""
    ACTION_REQUIRED = "ACTION_REQUIRED"
    """The user must act outside linkflow (a hold, an enrollment) before the link can go on."""


class ProviderState(BaseModel):
    """Where a provider says a login stands, in linkflow's words and its own."""

    outcome: Outcome
    raw_status: str = Field(description="The provider's own status word, as it sent it.")
    session: dict[str, str] = Field(
        default_factory=dict,
        description="The provider's references for this login (user and member ids, job ids, ...),"
        " handed back to the adapter on every later call.",
    )
    challenges: list[Challenge] = Field(default_factory=list)
    reason: LinkReason | None = None
    message: str | None = Field(default=None, description="The provider's message for the user.")


class LinkFailure(Exception):
    """The provider gave a final answer: this login cannot succeed as it is. Never retried."""

    def __init__(self, reason: LinkReason, raw_status: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.raw_status = raw_status
        self.message = message


class ProviderUnavailable(Exception):
    """A transient provider failure (5xx, 408, 429, a timeout): worth retrying, maybe later."""

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ProviderRejectedRequest(Exception):
    """The provider refused our request itself (4xx): a bug or a configuration error.

    `error_code` is the provider's structured code for the refusal, when its body has one; the
    message never quotes the body (it travels into Temporal history).
    """

    def __init__(self, message: str, status_code: int, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code


class ProviderAdapter(Protocol):
    """One provider's API, spoken in linkflow's vocabulary."""

    provider: Provider

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        """Submit the user's credentials and start the provider's job."""
        ...

    async def poll(self, session: dict[str, str]) -> ProviderState:
        """Read where the provider's job stands now."""
        ...

    async def answer(
        self,
        session: dict[str, str],
        challenges: list[Challenge],
        answers: list[ChallengeAnswer],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        """Send the user's answers to the pending challenges, all of one round at once."""
        ...

    async def fetch_accounts(self, session: dict[str, str]) -> list[Account]:
        """List the accounts the link gives access to."""
        ...

    async def revoke(self, session: dict[str, str]) -> None:
        """Remove the link at the provider."""
        ...

    async def refresh(self, session: dict[str, str], *, idempotency_key: str) -> ProviderState:
        """Ask for fresh data on a connected login; the state says whether the user is needed."""
        ...

    async def reauthenticate(
        self,
        link_id: str,
        request: LinkRequest,
        session: dict[str, str],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        """Log in again on the same link, with the request's (maybe new) credentials."""
        ...

    async def resolve_hold(self, session: dict[str, str], *, idempotency_key: str) -> ProviderState:
        """The user says the hold is dealt with: tell the provider where it can, then read."""
        ...

    async def aclose(self) -> None:
        """Release the adapter's HTTP client."""
        ...


class LifecycleByLoggingInAgain:
    """The later-life calls for a provider whose API has no route of its own for them.

    A refresh reads the job's state (these providers refresh on their own schedule), a
    re-authentication is a fresh login, and a resolved hold is read back from the provider.
    """

    async def refresh(
        self: ProviderAdapter, session: dict[str, str], *, idempotency_key: str
    ) -> ProviderState:
        return await self.poll(session)

    async def reauthenticate(
        self: ProviderAdapter,
        link_id: str,
        request: LinkRequest,
        session: dict[str, str],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        return await self.login(link_id, request, idempotency_key=idempotency_key)

    async def resolve_hold(
        self: ProviderAdapter, session: dict[str, str], *, idempotency_key: str
    ) -> ProviderState:
        return await self.poll(session)
