"""What a living link does when a step of its later life fails.

A link that has lived for months does not die of a bad day. A provider that fails or keeps working
(an outage, a slow day) leaves the link resting as it was, with its last data, trying again on a
backing-off schedule, and after days of trouble it says so (ACTION_REQUIRED,
INSTITUTION_UNAVAILABLE), still trying. A failure the user can mend (a changed password, a fresh
MFA) asks the user; anything else ends the link. The rules are plain functions (unit-tested
directly); the last two functions write their outcome into the link's record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from linkflow.models import LinkReason, LinkSnapshot, LinkStatus, ProviderTrouble
    from workflows.link_record import LinkRecord
    from workflows.provider_calls import ProviderCallFailed, ProviderCalls


class Command(StrEnum):
    """What the living link does next, asked by a timer or by one of its updates."""

    REFRESH = "refresh"
    REAUTHENTICATE = "reauthenticate"
    UPDATE_CREDENTIALS = "update_credentials"
    RESOLVE_HOLD = "resolve_hold"


# A living link whose provider fails tries again after these delays (capped at its refresh
# interval), keeping its last data; after PROVIDER_TROUBLE_ESCALATES_AFTER of failures it says so.
PROVIDER_TROUBLE_RETRY_SECONDS = (300, 900, 3600, 4 * 3600, 12 * 3600)
PROVIDER_TROUBLE_ESCALATES_AFTER = timedelta(days=3)

# Holds can clear by themselves (an emailed approval, an enrollment), so a held link keeps
# checking on its refresh schedule; a link waiting for new credentials or a fresh MFA does not,
# as logging in again with what failed could lock the user's account.
RECHECKED_REASONS = frozenset(
    {LinkReason.PROVIDER_HOLD, LinkReason.ACCOUNT_LOCKED, LinkReason.INSTITUTION_UNAVAILABLE}
)
# What a failed step of a connected link's later life means: the user can mend it.
RECOVERABLE_LATER = {
    LinkReason.INVALID_CREDENTIALS: LinkReason.REAUTH_REQUIRED,
    LinkReason.MFA_TIMEOUT: LinkReason.MFA_REFRESH_REQUIRED,
    LinkReason.MFA_FAILED: LinkReason.MFA_REFRESH_REQUIRED,
}


@dataclass(frozen=True)
class Resting:
    """Where a living link rested before a step of its later life."""

    status: LinkStatus
    reason: LinkReason | None
    message: str | None

    @classmethod
    def of(cls, link: LinkSnapshot) -> Resting:
        return cls(link.status, link.reason, link.message)


def ride_out(
    link: LinkSnapshot, resting: Resting, why: str, now: datetime, refresh_interval_seconds: int
) -> Resting:
    """Note the provider's trouble and when to try again; returns where the link rests now.

    A link the schedule checks (connected, or held) retries by itself; one waiting for its user
    (new credentials, a fresh MFA) stays waiting, and the user's next try goes through.
    """
    trouble = link.provider_trouble
    failures = (trouble.failures if trouble else 0) + 1
    since = trouble.since if trouble else now
    rests = resting
    retry_at: datetime | None = None
    if resting.status is LinkStatus.CONNECTED or resting.reason in RECHECKED_REASONS:
        ladder = PROVIDER_TROUBLE_RETRY_SECONDS
        delay = min(ladder[min(failures, len(ladder)) - 1], refresh_interval_seconds)
        retry_at = now + timedelta(seconds=delay)
        if (
            resting.status is LinkStatus.CONNECTED
            and now - since >= PROVIDER_TROUBLE_ESCALATES_AFTER
        ):
            rests = Resting(
                LinkStatus.ACTION_REQUIRED,
                LinkReason.INSTITUTION_UNAVAILABLE,
                f"The provider has not answered since {since:%Y-%m-%d %H:%M} UTC; the link"
                " keeps its last data and keeps trying.",
            )
    link.provider_trouble = ProviderTrouble(
        since=since, failures=failures, message=why, retry_at=retry_at
    )
    link.next_refresh_at = retry_at
    return rests


def rest_through_trouble(record: LinkRecord, resting: Resting, why: str) -> None:
    """After a bad day at the provider: rest as before, and try again later."""
    record.round.close()
    interval = record.valid_request.options.refresh_interval_seconds
    rests = ride_out(record.link, resting, why, workflow.now(), interval)
    record.set_status(rests.status, rests.reason, rests.message)


def ask_user_to_mend(record: LinkRecord, reason: LinkReason | None, message: str) -> bool:
    """After a failed step the user can mend (a changed password, a fresh MFA): wait for them
    in ACTION_REQUIRED. Returns False, changing nothing, for a failure that ends the link."""
    later = mendable_later(reason)
    if later is None:
        return False
    record.round.close()
    record.link.next_refresh_at = None
    record.set_status(LinkStatus.ACTION_REQUIRED, reason=later, message=message)
    return True


async def unlink(record: LinkRecord, calls: ProviderCalls) -> None:
    """Revoke the link at the provider and end it UNLINKED, even if the provider is down."""
    record.round.close()
    message = "The link was removed at the provider."
    if record.session:
        try:
            await calls.revoke(record.session)
        except ProviderCallFailed as failed:
            _, detail, _ = failed.explained()
            message = f"The link was removed here; the provider did not confirm: {detail}"
    record.link.next_refresh_at = None
    record.end(LinkStatus.UNLINKED, None, message)


def mendable_later(reason: LinkReason | None) -> LinkReason | None:
    """The reason a living link waits for its user after a failed step, or None: it ends."""
    return RECOVERABLE_LATER.get(reason) if reason is not None else None


def refused_command(
    link: LinkSnapshot,
    command: Command,
    busy: bool,
    ended: bool = False,
    unlinking: bool = False,
) -> str | None:
    """Why the link cannot take a later-life update now, or None when it can."""
    status, reason = link.status, link.reason
    if ended or status.is_final:
        return f"The link has ended ({status}); start a new link instead."
    if unlinking:
        return "The link is being unlinked."
    if busy or status not in (LinkStatus.CONNECTED, LinkStatus.ACTION_REQUIRED):
        return f"The link is busy ({status}); try again once it is CONNECTED or ACTION_REQUIRED."
    if command is Command.RESOLVE_HOLD and (
        status is not LinkStatus.ACTION_REQUIRED or reason not in RECHECKED_REASONS
    ):
        return (
            f"The link is not held by the provider ({status}"
            + (f", {reason}" if reason else "")
            + "); there is no hold to resolve."
        )
    return None
