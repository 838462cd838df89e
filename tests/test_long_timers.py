"""Every long timer of a link, fast: a week, days of backoff, a push never approved, many runs.

The link's longest waits (a provider job it follows for a week, the backing-off retries of a
connected link whose provider is down, the window for a push approval, continue-as-new after so
many refreshes) run here on the time-skipping test server with the provider activities faked by
name, as tests/test_bad_days.py does; a story of days passes in a second or so. Assertions read
the link's snapshot and workflow time, never the wall clock.

The fakes fail for good at once (`non_retryable`): a step runs as a local activity, whose retries
back off in real time inside one workflow task, and the durable ladder under test comes after the
step's retries are spent, whichever way they were spent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.errors import PROVIDER_UNAVAILABLE
from activities.provider import LoginInput, SessionStep, StepState, WaitInput
from linkflow.models import (
    Account,
    Challenge,
    ChallengeKind,
    LinkOptions,
    LinkReason,
    LinkSnapshot,
    LinkStatus,
)
from providers.base import Outcome
from tests.conftest import local_dev_server
from tests.fixtures.faked_links import faked_link, snapshot
from workflows.later_life import PROVIDER_TROUBLE_RETRY_SECONDS
from workflows.waiting import MAX_PROVIDER_JOB_SECONDS

DAY = 24 * 3600
SESSION = {"member": "M-7", "job": "J-1"}
PUSH = Challenge(id="P-1", kind=ChallengeKind.PUSH_APPROVAL, prompt="Approve on your phone.")
ACCOUNTS = [Account(id="A-1", name="Checking", kind="CHECKING")]


@dataclass
class SlowProvider:
    """A provider whose job, approval or refresh never comes good unless a test says so."""

    login_outcome: Outcome = Outcome.LINKED
    refresh_fails: bool = False
    logins: int = 0
    waits: int = 0
    refreshes: int = 0
    sessions_refreshed: list[dict[str, str]] = field(default_factory=list)

    def state(self, outcome: Outcome, challenges: list[Challenge] | None = None) -> StepState:
        linked = outcome is Outcome.LINKED
        return StepState(
            outcome=outcome,
            raw_status=outcome.value,
            session=dict(SESSION),
            challenges=challenges or [],
            accounts=list(ACCOUNTS) if linked else None,
        )

    def asked(self) -> list[Challenge]:
        return [PUSH] if self.login_outcome is Outcome.CHALLENGED else []

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="provider_login")
        async def login(data: LoginInput) -> StepState:
            self.logins += 1
            return self.state(self.login_outcome, self.asked())

        @activity.defn(name="provider_wait")
        async def wait(data: WaitInput) -> StepState:
            # The real activity waits up to `max_wait_seconds` while the user has not approved,
            # in real time (the test server skips no time while an activity runs); a job still
            # pending is answered at once, as the workflow's durable timers come between checks.
            self.waits += 1
            if data.pending_challenge_ids:
                await asyncio.sleep(data.max_wait_seconds)
            return self.state(self.login_outcome, self.asked())

        @activity.defn(name="provider_refresh")
        async def refresh(data: SessionStep) -> StepState:
            self.refreshes += 1
            self.sessions_refreshed.append(dict(data.session))
            if self.refresh_fails:
                raise ApplicationError(
                    "The provider answered HTTP 503.", type=PROVIDER_UNAVAILABLE, non_retryable=True
                )
            return self.state(Outcome.LINKED)

        return [login, wait, refresh]


def story(
    env: WorkflowEnvironment,
    provider: SlowProvider,
    monkeypatch: pytest.MonkeyPatch,
    options: LinkOptions,
) -> AbstractAsyncContextManager[WorkflowHandle[Any, LinkSnapshot]]:
    return faked_link(env, provider.activities(), monkeypatch, options, name="long-timers")


# ---------------------------------------------------------------- (a) the provider job's week


async def test_a_first_login_whose_job_stays_pending_for_a_week_fails(
    time_skipping_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    provider = SlowProvider(login_outcome=Outcome.PENDING)
    async with story(time_skipping_env, provider, monkeypatch, LinkOptions()) as handle:
        # Awaiting the result lets the test server skip from one recheck timer to the next.
        ended = await handle.result()
        assert ended.status is LinkStatus.FAILED
        assert ended.reason is LinkReason.PROVIDER_ERROR
        assert ended.message == "The provider was still working after 7 days."
        assert ended.provider_status == Outcome.PENDING.value
        took = ended.updated_at - ended.started_at
        assert timedelta(seconds=MAX_PROVIDER_JOB_SECONDS) <= took < timedelta(days=7, hours=2)
        # Rechecks back off to one an hour: about 170 in a week, not one every few seconds.
        assert 160 <= provider.waits <= 200


# ---------------------------------------------------------------- (b) the backoff ladder


async def refreshes_fail_along_the_ladder(
    env: WorkflowEnvironment,
    handle: WorkflowHandle[Any, LinkSnapshot],
    provider: SlowProvider,
    first_due: int,
    expected_delays: list[int],
) -> LinkSnapshot:
    """Sleep to a minute past each retry; check each failure's retry time against the ladder."""
    await env.sleep(60)
    assert (await snapshot(handle)).status is LinkStatus.CONNECTED
    provider.refresh_fails = True
    await env.sleep(first_due)
    previous_retry = None
    troubled = await snapshot(handle)
    for failures, delay in enumerate(expected_delays, start=1):
        if failures > 1:
            await env.sleep(expected_delays[failures - 2])
            troubled = await snapshot(handle)
        trouble = troubled.provider_trouble
        assert trouble is not None
        assert trouble.failures == failures == provider.refreshes
        assert trouble.retry_at is not None
        assert trouble.retry_at == troubled.next_refresh_at
        assert trouble.retry_at - troubled.updated_at == timedelta(seconds=delay)
        if previous_retry is not None:
            # Each try happens at the retry time the last failure set (the timer fired then).
            since_last = trouble.retry_at - previous_retry
            assert timedelta(seconds=delay) <= since_last < timedelta(seconds=delay + 1)
        previous_retry = trouble.retry_at
    return troubled


async def test_a_connected_links_failing_refreshes_back_off_along_the_ladder(
    time_skipping_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    provider = SlowProvider()
    options = LinkOptions(refresh_interval_seconds=DAY)
    ladder = [*PROVIDER_TROUBLE_RETRY_SECONDS, 12 * 3600, 12 * 3600]
    assert ladder == [300, 900, 3600, 4 * 3600, 12 * 3600, 12 * 3600, 12 * 3600]
    async with story(time_skipping_env, provider, monkeypatch, options) as handle:
        troubled = await refreshes_fail_along_the_ladder(
            time_skipping_env, handle, provider, DAY, ladder
        )
        assert troubled.status is LinkStatus.CONNECTED
        assert troubled.accounts == ACCOUNTS
        assert troubled.provider_trouble is not None
        assert "503" in troubled.provider_trouble.message
        # Every try goes to the provider with the session of the login.
        assert all(session == SESSION for session in provider.sessions_refreshed)


async def test_the_ladder_is_capped_at_the_refresh_interval_and_days_of_it_are_said(
    time_skipping_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    provider = SlowProvider()
    hour = 3600
    options = LinkOptions(refresh_interval_seconds=hour)
    async with story(time_skipping_env, provider, monkeypatch, options) as handle:
        troubled = await refreshes_fail_along_the_ladder(
            time_skipping_env, handle, provider, hour, [300, 900, hour, hour, hour]
        )
        assert troubled.status is LinkStatus.CONNECTED
        trouble = troubled.provider_trouble
        assert trouble is not None
        # Three days after the first failure the link says so, and goes on trying hourly. The
        # last query was a minute past the last failure; sleep to an hour and a minute past the
        # third day, by which the first try past the third day has failed.
        failing_for = (troubled.updated_at - trouble.since).total_seconds()
        await time_skipping_env.sleep(3 * DAY + hour - failing_for)
        unavailable = await snapshot(handle)
        assert unavailable.status is LinkStatus.ACTION_REQUIRED
        assert unavailable.reason is LinkReason.INSTITUTION_UNAVAILABLE
        assert unavailable.accounts == ACCOUNTS
        assert unavailable.provider_trouble is not None
        assert unavailable.provider_trouble.since == trouble.since
        assert unavailable.provider_trouble.retry_at is not None
        assert unavailable.provider_trouble.retry_at - unavailable.updated_at == timedelta(
            seconds=hour
        )
        became_unavailable = [
            change.at
            for change in unavailable.history
            if change.reason is LinkReason.INSTITUTION_UNAVAILABLE
        ]
        assert len(became_unavailable) == 1
        waited = became_unavailable[0] - trouble.since
        assert timedelta(days=3) <= waited < timedelta(days=3, hours=1)


# ---------------------------------------------------------------- (c) a push never approved


async def test_a_push_approval_never_granted_fails_the_link_when_its_window_closes(
    time_skipping_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    provider = SlowProvider(login_outcome=Outcome.CHALLENGED)
    options = LinkOptions(mfa_timeout_seconds=5)
    async with story(time_skipping_env, provider, monkeypatch, options) as handle:
        ended = await handle.result()
        assert ended.status is LinkStatus.FAILED
        assert ended.reason is LinkReason.MFA_TIMEOUT
        assert ended.message == "The sign-in was not approved within 5 seconds."
        assert ended.pending_challenges == []
        assert ended.attempts.mfa_rounds == 1
        assert ended.attempts.answers_submitted == 0
        assert ended.updated_at - ended.started_at >= timedelta(seconds=5)
        assert [change.status for change in ended.history] == [
            LinkStatus.CONNECTING,
            LinkStatus.MFA_REQUIRED,
            LinkStatus.FAILED,
        ]
        # Each wait lasts as long as it was asked to: one or two, not one every few milliseconds.
        assert 1 <= provider.waits <= 3


# ---------------------------------------------------------------- (d) continue-as-new


async def test_a_link_continues_as_new_after_its_refreshes_per_run_carrying_its_state(
    time_skipping_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    provider = SlowProvider()
    options = LinkOptions(refresh_interval_seconds=DAY, refreshes_per_run=2)
    async with story(time_skipping_env, provider, monkeypatch, options) as latest:
        await time_skipping_env.sleep(60)
        connected = await snapshot(latest)
        assert connected.attempts.runs == 1
        first_run = (await latest.describe()).run_id

        await time_skipping_env.sleep(2 * DAY)
        second_run = (await latest.describe()).run_id
        assert second_run != first_run
        carried = await snapshot(latest)
        assert carried.attempts.runs == 2
        assert carried.attempts.refreshes == 2
        assert carried.attempts.logins == 1
        assert carried.status is LinkStatus.CONNECTED
        assert carried.accounts == ACCOUNTS
        assert carried.started_at == connected.started_at
        assert carried.history == connected.history
        assert carried.next_refresh_at is not None
        assert carried.next_refresh_at - carried.updated_at == timedelta(seconds=DAY)

        await time_skipping_env.sleep(2 * DAY)
        third_run = (await latest.describe()).run_id
        assert third_run not in (first_run, second_run)
        assert (await snapshot(latest)).attempts.runs == 3
        # The new runs refresh with the session the first run's login got: carried, not re-made.
        assert provider.logins == 1
        assert provider.sessions_refreshed == [SESSION] * 4


# A dev server that suggests continue-as-new early: the time-skipping test server has no dynamic
# config and never suggests it. Real seconds pass here (a refresh a second), so the test is slow.
SUGGEST_AFTER_EVENTS = 60


@pytest.fixture(scope="module")
async def suggesting_env() -> AsyncIterator[WorkflowEnvironment]:
    suggest = f"limit.historyCount.suggestContinueAsNew={SUGGEST_AFTER_EVENTS}"
    async with local_dev_server(["--dynamic-config-value", suggest]) as env:
        yield env


@pytest.mark.slow
async def test_a_link_continues_as_new_when_the_server_suggests_it(
    suggesting_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    provider = SlowProvider()
    options = LinkOptions(refresh_interval_seconds=1, refreshes_per_run=1_000)
    async with story(suggesting_env, provider, monkeypatch, options) as handle:
        first_run = (await handle.describe()).run_id
        # Wait (a bounded while, never a figure asserted) for the server's suggestion to be taken.
        for _ in range(240):
            if (await handle.describe()).run_id != first_run:
                break
            await asyncio.sleep(0.5)
        assert (await handle.describe()).run_id != first_run
        carried = await snapshot(handle)
        assert carried.attempts.runs >= 2
        # Far short of the refreshes per run: the server's suggestion ended the first run.
        assert carried.attempts.refreshes < 100
        assert carried.status is LinkStatus.CONNECTED
        assert carried.accounts == ACCOUNTS
        assert carried.attempts.logins == 1


# ---------------------------------------------------------------- a step's key across its retries


async def test_a_step_retried_after_a_durable_backoff_keeps_its_idempotency_key(
    time_skipping_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
):
    """A local activity whose backoff outgrows the worker's wait runs again under a new activity
    id (found by the chaos run: answers reached the provider twice under two keys); the key the
    workflow gives the step stays the same on every attempt."""
    seen: list[tuple[str, str, int]] = []
    failures_left = 4  # backoffs of 1, 2, 4 and 8 s: the last two are durable timers

    @activity.defn(name="provider_login")
    async def flaky_login(data: LoginInput) -> StepState:
        nonlocal failures_left
        info = activity.info()
        seen.append((data.idempotency_key(), info.activity_id, info.attempt))
        if failures_left:
            failures_left -= 1
            raise ApplicationError("The provider answered HTTP 503.", type=PROVIDER_UNAVAILABLE)
        return SlowProvider().state(Outcome.LINKED)

    async with faked_link(
        time_skipping_env, [flaky_login], monkeypatch, LinkOptions(), name="long-timers"
    ) as handle:
        await handle.execute_update("settled", result_type=LinkSnapshot)

    keys = {key for key, _, _ in seen}
    activity_ids = {activity_id for _, activity_id, _ in seen}
    assert len(seen) == 5
    assert len(keys) == 1, "every attempt of the step sent the same key"
    assert next(iter(keys)).endswith("-step-1")
    assert len(activity_ids) > 1, "the backoff did run the step under a new activity id"
