"""The seam between linkflow and a provider's HTTP API.

Every provider adapter implements `ProviderAdapter`. An adapter knows one provider's contract
(paths, headers, field names, status words) and translates it into linkflow's vocabulary; it knows
nothing about Temporal. The activities in `activities/` turn what adapters raise into Temporal's
typed errors, and the workflow decides what happens next.

The shape fits all five seed providers: a login may come back linked, still in progress,
challenged, or needing the user's action; answering a challenge and polling both return the same
`ProviderState`; terminal business failures (bad credentials, unsupported MFA) are raised as
`LinkFailure`, and transient trouble as `ProviderUnavailable`.
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
    """The provider refused our request itself (4xx): a bug or a configuration error."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


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

    async def aclose(self) -> None:
        """Release the adapter's HTTP client."""
        ...
