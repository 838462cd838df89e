"""The rules of a living link's bad days, unit-tested without a server.

`workflows/later_life.py` decides, with no Temporal calls, when a link whose provider fails tries
again (a ladder of delays capped at its refresh interval), when days of trouble are said out loud
(ACTION_REQUIRED, INSTITUTION_UNAVAILABLE), which failures its user can mend, and why an update is
refused. Here each rule is checked on plain snapshots; tests/test_long_timers.py and
tests/test_bad_days.py check that the workflow follows them over days of durable timers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from linkflow.models import LinkReason, LinkSnapshot, LinkStatus, ProviderTrouble
from workflows.later_life import (
    PROVIDER_TROUBLE_ESCALATES_AFTER,
    Command,
    Resting,
    mendable_later,
    refused_command,
    ride_out,
)

DAY = 24 * 3600
START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def link(
    status: LinkStatus = LinkStatus.CONNECTED,
    reason: LinkReason | None = None,
    message: str | None = "2 account(s) linked.",
) -> LinkSnapshot:
    return LinkSnapshot(
        link_id="link-1",
        status=status,
        reason=reason,
        message=message,
        started_at=START,
        updated_at=START,
        next_refresh_at=START + timedelta(days=1),
    )


def fail_again(
    snapshot: LinkSnapshot, now: datetime, interval: int = DAY, why: str = "HTTP 503"
) -> Resting:
    """One failed step, as the workflow does it: note where it rested, ride out, rest there."""
    rests = ride_out(snapshot, Resting.of(snapshot), why, now, interval)
    snapshot.status, snapshot.reason, snapshot.message = rests.status, rests.reason, rests.message
    return rests


def retry_delays(snapshot: LinkSnapshot, failures: int, interval: int = DAY) -> list[int]:
    """The delays a link waits after each of `failures` failures, each at its retry time."""
    now, delays = START, []
    for _ in range(failures):
        fail_again(snapshot, now, interval)
        trouble = snapshot.provider_trouble
        assert trouble is not None
        assert trouble.retry_at is not None
        assert snapshot.next_refresh_at == trouble.retry_at
        delays.append(int((trouble.retry_at - now).total_seconds()))
        now = trouble.retry_at
    return delays


# ---------------------------------------------------------------- ride_out: the ladder


def test_a_connected_link_backs_off_along_the_ladder_up_to_twelve_hours():
    assert retry_delays(link(), 7) == [300, 900, 3600, 4 * 3600, 12 * 3600, 12 * 3600, 12 * 3600]


def test_the_ladder_is_capped_at_the_refresh_interval():
    assert retry_delays(link(), 5, interval=3600) == [300, 900, 3600, 3600, 3600]
    assert retry_delays(link(), 3, interval=600) == [300, 600, 600]
    assert retry_delays(link(), 2, interval=60) == [60, 60]


def test_trouble_counts_failures_since_the_first_and_keeps_the_last_message():
    snapshot = link()
    fail_again(snapshot, START, why="HTTP 503")
    fail_again(snapshot, START + timedelta(minutes=5), why="HTTP 502")
    assert snapshot.provider_trouble == ProviderTrouble(
        since=START,
        failures=2,
        message="HTTP 502",
        retry_at=START + timedelta(minutes=5, seconds=900),
    )


def test_a_connected_link_keeps_its_status_and_data_while_the_trouble_is_young():
    snapshot = link()
    snapshot.accounts = []
    rests = fail_again(snapshot, START)
    assert rests == Resting(LinkStatus.CONNECTED, None, "2 account(s) linked.")


def test_a_held_link_retries_on_the_ladder_but_stays_held():
    held = link(LinkStatus.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD, "Approve the email.")
    assert retry_delays(held, 3) == [300, 900, 3600]
    rests = fail_again(held, START + timedelta(days=10))
    assert rests == Resting(
        LinkStatus.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD, "Approve the email."
    )


# ---------------------------------------------------------------- ride_out: days of trouble


def test_three_days_of_trouble_make_a_connected_link_say_institution_unavailable():
    snapshot = link()
    fail_again(snapshot, START)
    just_before = fail_again(
        snapshot, START + PROVIDER_TROUBLE_ESCALATES_AFTER - timedelta(seconds=1)
    )
    assert just_before.status is LinkStatus.CONNECTED

    said = fail_again(snapshot, START + PROVIDER_TROUBLE_ESCALATES_AFTER)
    assert said.status is LinkStatus.ACTION_REQUIRED
    assert said.reason is LinkReason.INSTITUTION_UNAVAILABLE
    assert said.message == (
        "The provider has not answered since 2026-03-01 08:00 UTC; the link keeps its last data"
        " and keeps trying."
    )
    trouble = snapshot.provider_trouble
    assert trouble is not None
    assert trouble.failures == 3
    assert trouble.retry_at == START + PROVIDER_TROUBLE_ESCALATES_AFTER + timedelta(seconds=3600)


def test_an_unavailable_link_keeps_trying_on_the_ladder_and_says_so_once():
    snapshot = link()
    fail_again(snapshot, START)
    fail_again(snapshot, START + timedelta(days=3))
    later = fail_again(snapshot, START + timedelta(days=4))
    assert later.reason is LinkReason.INSTITUTION_UNAVAILABLE
    assert later.message is not None
    assert "since 2026-03-01 08:00 UTC" in later.message
    trouble = snapshot.provider_trouble
    assert trouble is not None
    assert trouble.retry_at == START + timedelta(days=4, seconds=3600)


def test_a_held_link_never_says_institution_unavailable():
    held = link(LinkStatus.ACTION_REQUIRED, LinkReason.ACCOUNT_LOCKED, "Unlock it.")
    fail_again(held, START)
    rests = fail_again(held, START + timedelta(days=30))
    assert rests.reason is LinkReason.ACCOUNT_LOCKED


# ---------------------------------------------------------------- ride_out: waiting for the user


@pytest.mark.parametrize("reason", [LinkReason.REAUTH_REQUIRED, LinkReason.MFA_REFRESH_REQUIRED])
def test_a_link_waiting_for_its_user_gets_no_retry_time(reason: LinkReason):
    waiting = link(LinkStatus.ACTION_REQUIRED, reason, "Sign in again.")
    for day in range(5):
        rests = fail_again(waiting, START + timedelta(days=day))
        assert rests == Resting(LinkStatus.ACTION_REQUIRED, reason, "Sign in again.")
    assert waiting.next_refresh_at is None
    trouble = waiting.provider_trouble
    assert trouble is not None
    assert trouble.retry_at is None
    assert trouble.failures == 5
    assert trouble.since == START


# ---------------------------------------------------------------- mendable_later


@pytest.mark.parametrize(
    ("failed", "waits_for"),
    [
        (LinkReason.INVALID_CREDENTIALS, LinkReason.REAUTH_REQUIRED),
        (LinkReason.MFA_TIMEOUT, LinkReason.MFA_REFRESH_REQUIRED),
        (LinkReason.MFA_FAILED, LinkReason.MFA_REFRESH_REQUIRED),
    ],
)
def test_failures_the_user_can_mend_wait_for_the_user(failed: LinkReason, waits_for: LinkReason):
    assert mendable_later(failed) is waits_for


@pytest.mark.parametrize(
    "failed",
    [
        None,
        *(
            reason
            for reason in LinkReason
            if reason
            not in (LinkReason.INVALID_CREDENTIALS, LinkReason.MFA_TIMEOUT, LinkReason.MFA_FAILED)
        ),
    ],
)
def test_other_failures_end_the_link(failed: LinkReason | None):
    assert mendable_later(failed) is None


# ---------------------------------------------------------------- refused_command


@pytest.mark.parametrize("status", [LinkStatus.FAILED, LinkStatus.UNLINKED])
@pytest.mark.parametrize("command", list(Command))
def test_an_ended_link_takes_no_command(status: LinkStatus, command: Command):
    assert refused_command(link(status), command, busy=False) == (
        f"The link has ended ({status.value}); start a new link instead."
    )


@pytest.mark.parametrize("status", [LinkStatus.CONNECTING, LinkStatus.MFA_REQUIRED])
@pytest.mark.parametrize("command", list(Command))
def test_a_link_on_its_way_is_busy(status: LinkStatus, command: Command):
    assert refused_command(link(status), command, busy=False) == (
        f"The link is busy ({status.value}); try again once it is CONNECTED or ACTION_REQUIRED."
    )


@pytest.mark.parametrize("command", list(Command))
def test_a_link_carrying_out_a_command_is_busy(command: Command):
    assert refused_command(link(), command, busy=True) == (
        "The link is busy (CONNECTED); try again once it is CONNECTED or ACTION_REQUIRED."
    )


def test_a_link_that_is_not_held_has_no_hold_to_resolve():
    assert refused_command(link(), Command.RESOLVE_HOLD, busy=False) == (
        "The link is not held by the provider (CONNECTED); there is no hold to resolve."
    )
    waiting = link(LinkStatus.ACTION_REQUIRED, LinkReason.REAUTH_REQUIRED)
    assert refused_command(waiting, Command.RESOLVE_HOLD, busy=False) == (
        "The link is not held by the provider (ACTION_REQUIRED, REAUTH_REQUIRED); there is no"
        " hold to resolve."
    )


@pytest.mark.parametrize(
    "reason",
    [LinkReason.PROVIDER_HOLD, LinkReason.ACCOUNT_LOCKED, LinkReason.INSTITUTION_UNAVAILABLE],
)
def test_a_held_link_can_resolve_its_hold(reason: LinkReason):
    held = link(LinkStatus.ACTION_REQUIRED, reason)
    assert refused_command(held, Command.RESOLVE_HOLD, busy=False) is None


@pytest.mark.parametrize(
    "command", [Command.REFRESH, Command.REAUTHENTICATE, Command.UPDATE_CREDENTIALS]
)
@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (LinkStatus.CONNECTED, None),
        (LinkStatus.ACTION_REQUIRED, LinkReason.REAUTH_REQUIRED),
        (LinkStatus.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD),
    ],
)
def test_a_resting_link_takes_its_users_commands(
    command: Command, status: LinkStatus, reason: LinkReason | None
):
    assert refused_command(link(status, reason), command, busy=False) is None


def test_an_ended_or_unlinking_link_refuses_every_later_life_update() -> None:
    for command in Command:
        assert refused_command(link(), command, busy=False, ended=True) == (
            "The link has ended (CONNECTED); start a new link instead."
        )
        assert refused_command(link(), command, busy=False, unlinking=True) == (
            "The link is being unlinked."
        )
