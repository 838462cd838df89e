"""A link that has lived for months does not die of a bad day, on the time-skipping server.

The provider activities are faked by name, so days of durable timers and exhausted retry policies
pass in well under a second each: a provider that is down keeps a connected link CONNECTED with
its last data and a retry time, then ACTION_REQUIRED (INSTITUTION_UNAVAILABLE) after days of
trouble, and the next success brings it back; a provider job that takes hours no longer fails a
first login after half an hour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.provider import AccountsResult, LoginInput, SessionInput, WaitInput
from linkflow.models import (
    Account,
    LinkOptions,
    LinkReason,
    LinkStatus,
)
from providers.base import Outcome, ProviderState
from tests.fixtures.faked_links import faked_link, snapshot

DAY = 24 * 3600
STORY_OPTIONS = LinkOptions(refresh_interval_seconds=DAY)


@dataclass
class FakeProvider:
    """What the faked provider answers; a test flips these as its story goes on."""

    refresh_fails: bool = False
    waits_before_linked: int = 0
    waits: int = 0
    refreshes: int = 0

    def state(self, outcome: Outcome) -> ProviderState:
        return ProviderState(outcome=outcome, raw_status=outcome.value, session={"job": "J-1"})

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="provider_login")
        async def login(data: LoginInput) -> ProviderState:
            return self.state(Outcome.PENDING if self.waits_before_linked else Outcome.LINKED)

        @activity.defn(name="provider_wait")
        async def wait(data: WaitInput) -> ProviderState:
            self.waits += 1
            linked = self.waits > self.waits_before_linked
            return self.state(Outcome.LINKED if linked else Outcome.PENDING)

        @activity.defn(name="provider_refresh")
        async def refresh(data: SessionInput) -> ProviderState:
            self.refreshes += 1
            if self.refresh_fails:
                raise ApplicationError(
                    "The provider answered HTTP 503.", type="ProviderUnavailable"
                )
            return self.state(Outcome.LINKED)

        @activity.defn(name="provider_fetch_accounts")
        async def fetch_accounts(data: SessionInput) -> AccountsResult:
            return AccountsResult(accounts=[Account(id="A-1", name="Checking", kind="CHECKING")])

        return [login, wait, refresh, fetch_accounts]


async def test_an_outage_keeps_a_connected_link_connected_and_it_tries_again(
    time_skipping_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    provider = FakeProvider()
    async with faked_link(
        time_skipping_env, provider.activities(), monkeypatch, STORY_OPTIONS, name="bad-days"
    ) as handle:
        await time_skipping_env.sleep(60)
        assert (await snapshot(handle)).status is LinkStatus.CONNECTED

        provider.refresh_fails = True
        # The refresh is due after a day; its retries take about two minutes before it gives up.
        await time_skipping_env.sleep(DAY + 200)
        troubled = await snapshot(handle)
        assert troubled.status is LinkStatus.CONNECTED
        assert troubled.accounts, "the link keeps its last data"
        assert troubled.provider_trouble is not None
        assert troubled.provider_trouble.failures == 1
        assert "503" in troubled.provider_trouble.message
        assert troubled.provider_trouble.retry_at == troubled.next_refresh_at
        assert troubled.next_refresh_at is not None
        assert troubled.next_refresh_at - troubled.updated_at == timedelta(seconds=300)

        provider.refresh_fails = False
        await time_skipping_env.sleep(900)
        recovered = await snapshot(handle)
        assert recovered.status is LinkStatus.CONNECTED
        assert recovered.provider_trouble is None
        assert recovered.next_refresh_at is not None
        assert recovered.next_refresh_at - recovered.updated_at == timedelta(seconds=DAY)


async def test_days_of_trouble_say_institution_unavailable_and_a_success_mends_it(
    time_skipping_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    provider = FakeProvider()
    async with faked_link(
        time_skipping_env, provider.activities(), monkeypatch, STORY_OPTIONS, name="bad-days"
    ) as handle:
        await time_skipping_env.sleep(60)
        provider.refresh_fails = True
        await time_skipping_env.sleep(5 * DAY)
        unavailable = await snapshot(handle)
        assert unavailable.status is LinkStatus.ACTION_REQUIRED
        assert unavailable.reason is LinkReason.INSTITUTION_UNAVAILABLE
        assert unavailable.message is not None
        assert "keeps trying" in unavailable.message
        assert unavailable.accounts
        assert unavailable.provider_trouble is not None
        assert unavailable.provider_trouble.failures >= 5
        # Backing off: far fewer attempts than one every five minutes for five days.
        assert provider.refreshes < 8 * 20

        provider.refresh_fails = False
        await time_skipping_env.sleep(DAY)
        mended = await snapshot(handle)
        assert mended.status is LinkStatus.CONNECTED
        assert mended.reason is None
        assert mended.provider_trouble is None


async def test_a_provider_job_of_hours_no_longer_fails_a_first_login(
    time_skipping_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    # Twelve checks on the backing-off ladder take well over the old 30-minute cap.
    provider = FakeProvider(waits_before_linked=12)
    async with faked_link(
        time_skipping_env, provider.activities(), monkeypatch, STORY_OPTIONS, name="bad-days"
    ) as handle:
        await time_skipping_env.sleep(6 * 3600)
        linked = await snapshot(handle)
        assert linked.status is LinkStatus.CONNECTED
        assert (linked.updated_at - linked.started_at) > timedelta(minutes=30)
        assert provider.waits == 13
