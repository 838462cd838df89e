"""The seam between linkflow and a provider's HTTP API.

Every provider adapter implements `ProviderAdapter`. An adapter knows one provider's contract
(paths, headers, field names, status words) and translates it into linkflow's vocabulary; it knows
nothing about Temporal. The activities in `activities/` turn what adapters raise into Temporal's
typed errors, and the workflow decides what happens next.

The shape fits all five seed providers: a login may come back linked, still in progress,
challenged, or needing the user's action; answering a challenge and polling both return the same
`ProviderState`; terminal business failures (bad credentials, unsupported MFA) are raised as
`LinkFailure`, and transient trouble as `ProviderUnavailable` (both in `providers/errors.py`, and
named here too for the activities and the workflow).

An adapter also says what its provider's words mean (`ProviderTables`: its status table and its
kinds of challenge), readable from its class, so the registry, the README's tables and mypy can
check every provider the same way. A link lives on after it connects: `refresh`,
`reauthenticate` and `resolve_hold` serve its later life.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import BaseModel, Field

from linkflow.models import (
    Account,
    Challenge,
    ChallengeAnswer,
    ChallengeKind,
    LinkReason,
    LinkRequest,
    Provider,
)
from providers.errors import LinkFailure, ProviderRejectedRequest, ProviderUnavailable
from providers.status import Outcome, StatusTable

__all__ = [
    "LinkFailure",
    "Outcome",
    "ProviderAdapter",
    "ProviderRejectedRequest",
    "ProviderState",
    "ProviderTables",
    "ProviderUnavailable",
]


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


class ProviderTables(Protocol):
    """What an adapter says about its provider's words; its class attributes answer it."""

    @property
    def provider(self) -> Provider: ...

    @property
    def STATUSES(self) -> StatusTable:
        """Every status word the provider documents, with its meaning for a link."""
        ...

    @property
    def CHALLENGE_KINDS(self) -> Mapping[str, ChallengeKind]:
        """Each kind of MFA question the provider sends, as linkflow's `ChallengeKind`."""
        ...


class ProviderAdapter(ProviderTables, Protocol):
    """One provider's API, spoken in linkflow's vocabulary."""

    # The shortest pause between two reads of one job that the provider allows (MX asks for
    # three seconds); the sandbox allows any.
    min_poll_interval_seconds: float

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
