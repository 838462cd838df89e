"""A link's life after it connects, on the dev server with MX's sandbox over real HTTP.

Refreshes on a durable timer and continue-as-new, a refresh that needs MFA again, a changed
password, a hold, unlinking, the later-life updates' refusals, and signed webhooks. The bank's
side of each story (a password changed at the bank, an expired MFA token, a hold) is set through
the MX sandbox's test-only bank-events route, for a login name of the test's own (`user_good+...`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities import webhooks
from linkflow.client import LinkClient, LinkRefused
from linkflow.models import (
    ChallengeAnswer,
    ChallengeKind,
    Credentials,
    LinkOptions,
    LinkReason,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    MfaSubmission,
    Provider,
)
from linkflow.webhooks import SIGNATURE_HEADER, InvalidSignature, verify_signature
from tests.conftest import WEBHOOK_SECRET
from tests.fixtures.answers import right_answers
from tests.fixtures.history import provider_calls
from tests.fixtures.webhook_receiver import Receiver

WAIT = timedelta(seconds=60)


@pytest.fixture(params=[1000, 0], ids=["cached", "replaying"])
def max_cached_workflows(request: pytest.FixtureRequest) -> int:
    param: int = request.param
    return param


def unique_login(base: str = "user_good") -> str:
    return f"{base}+{uuid.uuid4().hex[:8]}"


def living_request(username: str, *, password: str = "pass_good", **options: Any) -> LinkRequest:
    return LinkRequest(
        provider=Provider.MX,
        user_ref=f"app-user-{uuid.uuid4().hex[:8]}",
        credentials=Credentials(username=username, password=password),
        options=LinkOptions(**options),
    )


async def bank_event(sandbox_url: str, username: str, event: str, **extra: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{sandbox_url}/mx/_sandbox/bank-events",
            json={"username": username, "event": event, **extra},
        )
        response.raise_for_status()


async def wait_until(
    links: LinkClient, link_id: str, *, status: LinkStatus, reason: LinkReason | None = None
) -> LinkSnapshot:
    async with asyncio.timeout(WAIT.total_seconds()):
        while True:
            snapshot = await links.snapshot(link_id)
            if snapshot.status is status and (reason is None or snapshot.reason is reason):
                return snapshot
            assert not snapshot.status.is_final, snapshot
            await asyncio.sleep(0.2)


async def decoded_summaries(links: LinkClient, handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The link's summaries in Temporal Web's words: payloads too, read through the codec."""
    converter = links.temporal.data_converter
    return [
        (await converter.decode([event.user_metadata.summary], [str]))[0]
        async for event in handle.fetch_history_events()
        if event.HasField("user_metadata") and event.user_metadata.HasField("summary")
    ]


async def test_refreshes_on_schedule_and_continues_as_new(
    dev_env: WorkflowEnvironment, run_worker, record_history
) -> None:
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(
            living_request(unique_login(), refresh_interval_seconds=1, refreshes_per_run=2)
        )
        connected = await links.settled(link_id, within=WAIT)
        assert connected.status is LinkStatus.CONNECTED
        assert connected.next_refresh_at is not None
        assert connected.last_refreshed_at is not None
        handle = links.temporal.get_workflow_handle(link_id)
        first_run = (await handle.describe()).run_id

        async with asyncio.timeout(WAIT.total_seconds()):
            while (snapshot := await links.snapshot(link_id)).attempts.runs < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.2)

        assert snapshot.status is LinkStatus.CONNECTED
        assert snapshot.attempts.refreshes >= 4
        assert snapshot.attempts.logins == 1
        assert snapshot.last_refreshed_at is not None
        assert snapshot.last_refreshed_at > connected.last_refreshed_at
        assert snapshot.started_at == connected.started_at
        assert len(snapshot.accounts) == 2
        runs = [
            execution
            async for execution in links.temporal.list_workflows(f"WorkflowId = '{link_id}'")
        ]
        assert len(runs) >= 3
        statuses = {execution.run_id: execution.status for execution in runs}
        assert statuses[first_run] is WorkflowExecutionStatus.CONTINUED_AS_NEW
        await record_history(
            links.temporal.get_workflow_handle(link_id, run_id=first_run),
            "mx_refresh_continued_as_new",
        )
        await links.unlink(link_id)


async def test_refresh_that_needs_mfa_waits_for_the_user_then_reauthenticates(
    dev_env: WorkflowEnvironment, run_worker, sandbox_url: str, record_history
) -> None:
    username = unique_login()
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(living_request(username, refresh_interval_seconds=1))
        await links.settled(link_id, within=WAIT)
        await bank_event(sandbox_url, username, "mfa_expired")

        waiting = await wait_until(
            links,
            link_id,
            status=LinkStatus.ACTION_REQUIRED,
            reason=LinkReason.MFA_REFRESH_REQUIRED,
        )
        assert waiting.pending_challenges == []
        assert waiting.next_refresh_at is None, "no short deadline while the user is away"
        assert waiting.message
        handle = links.temporal.get_workflow_handle(link_id)
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert "send `reauthenticate`" in metadata.current_details
        assert "Next refresh" not in metadata.current_details, "no refresh is scheduled"
        await asyncio.sleep(2)  # past the refresh interval: still waiting, nothing refreshed
        assert (await links.snapshot(link_id)).attempts.refreshes == waiting.attempts.refreshes

        asked = await links.reauthenticate(link_id)
        assert asked.status is LinkStatus.MFA_REQUIRED
        [challenge] = asked.pending_challenges
        assert challenge.kind is ChallengeKind.TEXT
        assert challenge.deadline is not None
        window = (challenge.deadline - asked.updated_at).total_seconds()
        assert 299 <= window <= 300

        reconnected = await links.submit_mfa(link_id, right_answers(asked))
        assert reconnected.status is LinkStatus.CONNECTED
        assert reconnected.next_refresh_at is not None
        assert [change.reason for change in reconnected.history].count(
            LinkReason.MFA_REFRESH_REQUIRED
        ) == 1
        await record_history(links.temporal.get_workflow_handle(link_id), "mx_reauthenticate")
        await links.unlink(link_id)


async def test_changed_password_waits_for_new_credentials_on_the_same_link(
    dev_env: WorkflowEnvironment, run_worker, sandbox_url: str, record_history
) -> None:
    username = unique_login()
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(living_request(username, refresh_interval_seconds=1))
        connected = await links.settled(link_id, within=WAIT)
        await bank_event(sandbox_url, username, "password_changed", new_password="pass_new")

        waiting = await wait_until(
            links, link_id, status=LinkStatus.ACTION_REQUIRED, reason=LinkReason.REAUTH_REQUIRED
        )
        assert waiting.provider_status == "DENIED"
        assert waiting.next_refresh_at is None

        still = await links.update_credentials(
            link_id, Credentials(username=username, password="still-wrong")
        )
        assert (still.status, still.reason) == (
            LinkStatus.ACTION_REQUIRED,
            LinkReason.REAUTH_REQUIRED,
        )

        resumed = await links.update_credentials(
            link_id, Credentials(username=username, password="pass_new")
        )
        assert resumed.status is LinkStatus.CONNECTED
        assert resumed.link_id == link_id
        assert resumed.started_at == connected.started_at
        assert [a.id for a in resumed.accounts] == [a.id for a in connected.accounts]
        assert resumed.attempts.logins == 3
        assert "pass_new" not in resumed.model_dump_json()
        await record_history(links.temporal.get_workflow_handle(link_id), "mx_update_credentials")
        await links.unlink(link_id)


async def test_hold_shows_the_message_and_resumes_on_resolve_hold(
    dev_env: WorkflowEnvironment, run_worker, sandbox_url: str, record_history
) -> None:
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(living_request(unique_login("user_hold")))
        held = await links.settled(link_id, within=WAIT)
        assert (held.status, held.reason) == (LinkStatus.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD)
        assert held.message
        assert held.next_refresh_at is not None, "a hold is checked again on the schedule"

        with pytest.raises(LinkRefused, match="No MFA challenge is pending"):
            await links.submit_mfa(
                link_id, MfaSubmission(answers=[ChallengeAnswer(challenge_id="x", value="y")])
            )

        resumed = await links.resolve_hold(link_id)
        assert resumed.status is LinkStatus.CONNECTED
        assert len(resumed.accounts) == 2
        await record_history(links.temporal.get_workflow_handle(link_id), "mx_resolve_hold")

        username = unique_login()
        later = await links.start_link(living_request(username, refresh_interval_seconds=1))
        await links.settled(later, within=WAIT)
        await bank_event(sandbox_url, username, "hold")
        on_refresh = await wait_until(
            links, later, status=LinkStatus.ACTION_REQUIRED, reason=LinkReason.PROVIDER_HOLD
        )
        assert on_refresh.provider_status == "IMPEDED"
        assert (await links.resolve_hold(later)).status is LinkStatus.CONNECTED
        for linked in (link_id, later):
            await links.unlink(linked)


async def test_unlink_revokes_at_the_provider_and_ends_the_link(
    dev_env: WorkflowEnvironment, run_worker, sandbox_url: str, record_history
) -> None:
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(living_request(unique_login()))
        await links.settled(link_id, within=WAIT)

        unlinked = await links.unlink(link_id)

        assert unlinked.status is LinkStatus.UNLINKED
        assert unlinked.reason is None
        assert unlinked.next_refresh_at is None
        assert (await links.result(link_id)).status is LinkStatus.UNLINKED
        handle = links.temporal.get_workflow_handle(link_id)
        summaries = await decoded_summaries(links, handle)
        assert any("revoke" in summary for summary in summaries)
        with pytest.raises(LinkRefused, match="has ended"):
            await links.unlink(link_id)
        await record_history(handle, "mx_unlink")


async def test_unlink_while_mfa_is_pending_stops_at_once(
    dev_env: WorkflowEnvironment, run_worker
) -> None:
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(living_request(unique_login("user_mfa")))
        asked = await links.wait_for(link_id, {LinkStatus.MFA_REQUIRED}, within=WAIT)
        assert asked.pending_challenges

        unlinked = await links.unlink(link_id)

        assert unlinked.status is LinkStatus.UNLINKED
        assert unlinked.pending_challenges == []


async def test_later_life_updates_are_refused_when_they_do_not_apply(
    dev_env: WorkflowEnvironment, run_worker
) -> None:
    async with run_worker(dev_env.client) as links:
        connected = await links.start_link(living_request(unique_login()))
        await links.settled(connected, within=WAIT)
        with pytest.raises(LinkRefused, match="not held"):
            await links.resolve_hold(connected)

        asking = await links.start_link(living_request(unique_login("user_mfa")))
        await links.wait_for(asking, {LinkStatus.MFA_REQUIRED}, within=WAIT)
        with pytest.raises(LinkRefused, match="busy"):
            await links.reauthenticate(asking)
        with pytest.raises(LinkRefused, match="busy"):
            await links.update_credentials(
                asking, Credentials(username="user_mfa", password="pass_good")
            )
        still = await links.snapshot(asking)
        assert still.status is LinkStatus.MFA_REQUIRED
        assert still.pending_challenges

        failed = await links.start_link(living_request("user_bad"))
        assert (await links.result(failed)).status is LinkStatus.FAILED
        with pytest.raises(LinkRefused, match="has ended"):
            await links.reauthenticate(failed)
        for linked in (connected, asking):
            await links.unlink(linked)


# ---------------------------------------------------------------------------- webhooks


async def test_status_changes_reach_the_webhook_signed_and_retried(
    dev_env: WorkflowEnvironment, run_worker, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(living_request(unique_login(), webhook_url=url))
        await links.settled(link_id, within=WAIT)
        await links.unlink(link_id)

        async with asyncio.timeout(WAIT.total_seconds()):
            while len(app.deliveries) < 2:  # noqa: ASYNC110 (a thread fills it)
                await asyncio.sleep(0.2)

    assert app.refused == 1, "the first delivery was refused, then retried"
    events = []
    for headers, body in app.deliveries:
        verify_signature(WEBHOOK_SECRET, headers.get(SIGNATURE_HEADER), body)
        with pytest.raises(InvalidSignature):
            verify_signature("another-secret", headers.get(SIGNATURE_HEADER), body)
        with pytest.raises(InvalidSignature):
            verify_signature(WEBHOOK_SECRET, headers.get(SIGNATURE_HEADER), body + b" ")
        events.append(json.loads(body))
    events.sort(key=lambda event: event["sequence"])
    assert [event["status"] for event in events] == ["CONNECTED", "UNLINKED"]
    assert [event["sequence"] for event in events] == [1, 2]
    assert all(event["link_id"] == link_id for event in events)
    assert len({event["id"] for event in events}) == 2
    for event in events:
        assert "pass_good" not in json.dumps(event)
        assert "user_good" not in json.dumps(event)


async def test_a_two_round_link_reaches_the_webhook_in_order(
    dev_env: WorkflowEnvironment, run_worker, receiver: tuple[Receiver, str], record_history
) -> None:
    app, url = receiver
    async with run_worker(dev_env.client) as links:
        link_id, snapshot = await links.start_and_wait(
            living_request(unique_login("user_otp"), webhook_url=url)
        )
        while snapshot.status is LinkStatus.MFA_REQUIRED:
            snapshot = await links.submit_mfa(link_id, right_answers(snapshot))
        assert snapshot.status is LinkStatus.CONNECTED

        async with asyncio.timeout(WAIT.total_seconds()):
            while LinkStatus.CONNECTED not in app.statuses():  # noqa: ASYNC110 (a thread fills it)
                await asyncio.sleep(0.05)
        handle = links.temporal.get_workflow_handle(link_id)
        await links.unlink(link_id)
        await handle.result()
        await record_history(handle, "mx_two_rounds_webhook")
        calls = await provider_calls(handle)

    # Every change after the start's CONNECTING is announced, in order, each once.
    announced = [change.status for change in snapshot.history[1:]] + [LinkStatus.UNLINKED]
    assert app.statuses() == announced
    assert announced.count(LinkStatus.MFA_REQUIRED) == 2
    assert app.refused == 1, "the first delivery was refused, then retried"
    # One activity followed the whole MFA conversation, one more took the unlink's event.
    deliveries = [call.activity_type for call in calls if "webhook" in call.activity_type]
    assert deliveries == ["follow_webhooks", "follow_webhooks"]


async def test_a_follower_leaves_a_quiet_link_and_its_next_change_brings_another(
    dev_env: WorkflowEnvironment,
    run_worker,
    receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A user who takes their time: the follower leaves once nothing has come to deliver for a
    while (a second here, a minute as shipped), and the link's next change starts another. Every
    change still arrives, in order, once."""
    monkeypatch.setattr(webhooks, "FOLLOW_IDLE_SECONDS", 1.0)
    app, url = receiver
    async with run_worker(dev_env.client) as links:
        link_id, snapshot = await links.start_and_wait(
            living_request(unique_login("user_otp"), webhook_url=url)
        )
        handle = links.temporal.get_workflow_handle(link_id)
        while snapshot.status is LinkStatus.MFA_REQUIRED:
            so_far = [change.status for change in snapshot.history[1:]]
            async with asyncio.timeout(WAIT.total_seconds()):
                while app.statuses() != so_far or await follower_running(handle):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            snapshot = await links.submit_mfa(link_id, right_answers(snapshot))
        assert snapshot.status is LinkStatus.CONNECTED

        async with asyncio.timeout(WAIT.total_seconds()):
            while LinkStatus.CONNECTED not in app.statuses():  # noqa: ASYNC110 (a thread fills it)
                await asyncio.sleep(0.05)
        await links.unlink(link_id)
        await handle.result()
        calls = await provider_calls(handle)

    announced = [change.status for change in snapshot.history[1:]] + [LinkStatus.UNLINKED]
    assert app.statuses() == announced
    # One follower for each quiet wait (two challenges), one for the connection, one for the unlink.
    deliveries = [call.activity_type for call in calls if "webhook" in call.activity_type]
    assert deliveries == ["follow_webhooks"] * 4


async def test_links_mid_mfa_with_webhooks_leave_other_links_their_activity_slots(
    dev_env: WorkflowEnvironment, run_worker, receiver: tuple[Receiver, str]
) -> None:
    """A link with a webhook holds a follower for its whole MFA conversation. Followers have a
    task queue of their own, so links waiting on MFA, as many as the link queue has activity
    slots, each with its follower running, leave another link's login (Synapse's, an ordinary
    activity) a slot."""
    _app, url = receiver
    async with run_worker(dev_env.client, max_concurrent_activities=2) as links:
        waiting = []
        for _ in range(2):
            link_id, snapshot = await links.start_and_wait(
                living_request(unique_login("user_otp"), webhook_url=url)
            )
            assert snapshot.status is LinkStatus.MFA_REQUIRED
            waiting.append(links.temporal.get_workflow_handle(link_id))
        async with asyncio.timeout(WAIT.total_seconds()):
            while not all([await follower_running(handle) for handle in waiting]):  # noqa: ASYNC110
                await asyncio.sleep(0.1)

        synapse = living_request(unique_login(), webhook_url=url)
        synapse.provider = Provider.SYNAPSE
        async with asyncio.timeout(WAIT.total_seconds()):
            _link_id, snapshot = await links.start_and_wait(synapse)
        assert snapshot.status is LinkStatus.CONNECTED
        assert all([await follower_running(handle) for handle in waiting])


async def follower_running(handle: WorkflowHandle[Any, Any]) -> bool:
    pending = (await handle.describe()).raw_description.pending_activities
    return any(
        activity.activity_type.name == "follow_webhooks"
        and activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for activity in pending
    )


async def test_unbill_hold_is_lifted_through_its_fix_hold(
    dev_env: WorkflowEnvironment, run_worker
) -> None:
    async with run_worker(dev_env.client) as links:
        request = living_request("user_hold").model_copy(update={"provider": Provider.UNBILL})
        link_id = await links.start_link(request)
        held = await links.settled(link_id, within=WAIT)
        assert (held.status, held.reason) == (LinkStatus.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD)
        assert held.provider_status == "hold"
        assert held.message
        assert "Terms and Conditions" in held.message

        resumed = await links.resolve_hold(link_id)
        if resumed.status is LinkStatus.CONNECTING:
            resumed = await links.settled(link_id, within=WAIT)
        assert resumed.status is LinkStatus.CONNECTED
        assert resumed.accounts
        handle = links.temporal.get_workflow_handle(link_id)
        summaries = await decoded_summaries(links, handle)
        assert any("hold is resolved" in summary for summary in summaries)
        await links.unlink(link_id)
