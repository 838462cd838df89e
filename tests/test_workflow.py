"""AccountLinkWorkflow on a real Temporal dev server, with the MX sandbox over real HTTP.

Each test drives one path a user can take: no MFA, one round, two rounds, a wrong answer, every
refusal of the update's validator, a duplicate answer, an answer by signal, bad credentials, and
starting the same link twice.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import SecretStr
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from linkflow.client import AnswerRefused, LinkClient
from linkflow.devstack import free_port
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
from linkflow.temporal import LINK_PROVIDER, LINK_STATUS
from tests.fixtures.history import provider_calls
from workflows.account_link import ANSWER_MFA_SIGNAL, WORKFLOW_TYPE, AccountLinkWorkflow

SETTLED = {LinkStatus.MFA_REQUIRED, LinkStatus.CONNECTED, LinkStatus.ACTION_REQUIRED}


@pytest.fixture(params=[1000, 0], ids=["cached", "replaying"])
def max_cached_workflows(request: pytest.FixtureRequest) -> int:
    """Every workflow test runs twice; with no cache, each step replays the whole history."""
    param: int = request.param
    return param


def mx_request(username: str, password: str = "pass_good", **options: int) -> LinkRequest:
    return LinkRequest(
        provider=Provider.MX,
        user_ref=f"app-user-{username}",
        credentials=Credentials(username=username, password=password),
        options=LinkOptions(**options),
    )


def answer(challenge_id: str, value: str) -> MfaSubmission:
    return MfaSubmission(answers=[ChallengeAnswer(challenge_id=challenge_id, value=value)])


async def start_and_settle(links: LinkClient, username: str) -> LinkSnapshot:
    link_id = await links.start_link(mx_request(username))
    return await links.wait_for(link_id, SETTLED, within=timedelta(seconds=30))


async def history_event_types(links: LinkClient, link_id: str) -> list[EventType.ValueType]:
    handle = links.temporal.get_workflow_handle(link_id)
    return [event.event_type async for event in handle.fetch_history_events()]


async def test_links_without_mfa(dev_env: WorkflowEnvironment, run_worker, record_history):
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(mx_request("user_good"))
        result = await links.settled(link_id)

        assert result.status is LinkStatus.CONNECTED
        assert result.reason is None
        assert result.provider_status == "CONNECTED"
        assert [a.kind for a in result.accounts] == ["CHECKING", "SAVINGS"]
        assert result.attempts.logins == 1
        assert result.attempts.mfa_rounds == 0
        assert [change.status for change in result.history] == [
            LinkStatus.CONNECTING,
            LinkStatus.CONNECTED,
        ]
        description = await links.temporal.get_workflow_handle(link_id).describe()
        assert description.typed_search_attributes.get(LINK_STATUS) == "CONNECTED"
        assert description.typed_search_attributes.get(LINK_PROVIDER) == "mx"
        await record_history(links.temporal.get_workflow_handle(link_id), "mx_no_mfa")


async def test_one_round_answers_in_the_same_round_trip(
    dev_env: WorkflowEnvironment, run_worker, record_history
):
    async with run_worker(dev_env.client) as links:
        waiting = await start_and_settle(links, "user_mfa")

        assert waiting.status is LinkStatus.MFA_REQUIRED
        assert waiting.provider_status == "CHALLENGED"
        [challenge] = waiting.pending_challenges
        assert challenge.kind is ChallengeKind.TEXT
        assert challenge.prompt == "What city were you born in?"
        assert challenge.deadline is not None
        window = (challenge.deadline - waiting.updated_at).total_seconds()
        assert 299 <= window <= 300

        description = await links.temporal.get_workflow_handle(waiting.link_id).describe()
        assert description.typed_search_attributes.get(LINK_STATUS) == "MFA_REQUIRED"

        result = await links.submit_mfa(waiting.link_id, answer(challenge.id, "correct"))

        assert result.status is LinkStatus.CONNECTED
        assert len(result.accounts) == 2
        assert result.pending_challenges == []
        assert result.attempts.mfa_rounds == 1
        assert result.attempts.answers_submitted == 1
        final = await links.snapshot(waiting.link_id)
        assert final.status is LinkStatus.CONNECTED
        await record_history(links.temporal.get_workflow_handle(waiting.link_id), "mx_one_round")


async def test_two_rounds_phone_then_code(dev_env: WorkflowEnvironment, run_worker, record_history):
    async with run_worker(dev_env.client) as links:
        waiting = await start_and_settle(links, "user_otp")
        [phone] = waiting.pending_challenges
        assert phone.kind is ChallengeKind.OPTIONS
        assert len(phone.options) == 2

        after_phone = await links.submit_mfa(
            waiting.link_id, answer(phone.id, phone.options[0].value)
        )

        assert after_phone.status is LinkStatus.MFA_REQUIRED
        [code] = after_phone.pending_challenges
        assert code.kind is ChallengeKind.CODE
        assert not after_phone.last_answer_rejected, "the next question is not a rejection"
        assert code.id != phone.id
        assert phone.options[0].label[-4:] in code.prompt

        result = await links.submit_mfa(waiting.link_id, answer(code.id, "correct"))

        assert result.status is LinkStatus.CONNECTED
        assert result.attempts.mfa_rounds == 2
        assert len(result.accounts) == 2
        statuses = [change.status for change in result.history]
        assert statuses == [
            LinkStatus.CONNECTING,
            LinkStatus.MFA_REQUIRED,
            LinkStatus.CONNECTING,
            LinkStatus.MFA_REQUIRED,
            LinkStatus.CONNECTING,
            LinkStatus.CONNECTED,
        ]
        await record_history(links.temporal.get_workflow_handle(waiting.link_id), "mx_two_rounds")


async def test_wrong_answer_then_the_right_one(
    dev_env: WorkflowEnvironment, run_worker, record_history
):
    async with run_worker(dev_env.client) as links:
        waiting = await start_and_settle(links, "user_mfa")
        [first] = waiting.pending_challenges

        retry = await links.submit_mfa(waiting.link_id, answer(first.id, "Springfield"))

        assert retry.status is LinkStatus.MFA_REQUIRED
        [second] = retry.pending_challenges
        assert second.id != first.id
        assert second.prompt == first.prompt
        # The snapshot says plainly that the provider rejected the answer, for every UI.
        assert not waiting.last_answer_rejected
        assert not first.after_rejected_answer
        assert retry.last_answer_rejected
        assert second.after_rejected_answer

        with pytest.raises(AnswerRefused, match="already answered"):
            await links.submit_mfa(waiting.link_id, answer(first.id, "correct"))

        result = await links.submit_mfa(waiting.link_id, answer(second.id, "correct"))
        assert result.status is LinkStatus.CONNECTED
        assert not result.last_answer_rejected
        assert result.attempts.mfa_rounds == 2
        await record_history(links.temporal.get_workflow_handle(waiting.link_id), "mx_wrong_answer")


async def test_three_wrong_answers_fail_the_link(dev_env: WorkflowEnvironment, run_worker):
    async with run_worker(dev_env.client) as links:
        snapshot = await start_and_settle(links, "user_mfa")
        for _ in range(3):
            [challenge] = snapshot.pending_challenges
            snapshot = await links.submit_mfa(snapshot.link_id, answer(challenge.id, "wrong"))

        assert snapshot.status is LinkStatus.FAILED
        assert snapshot.reason is LinkReason.MFA_FAILED
        assert snapshot.provider_status == "REJECTED"
        assert snapshot.pending_challenges == []


async def test_validator_refusals_change_nothing(dev_env: WorkflowEnvironment, run_worker):
    async with run_worker(dev_env.client) as links:
        waiting = await start_and_settle(links, "user_otp")
        [phone] = waiting.pending_challenges
        refusals = {
            "no answers": MfaSubmission(answers=[]),
            # An id the link never issued is not quoted back: it could be anything, a password too.
            "Unknown challenge \\(an id of 8 characters": answer("CRD-nope", "correct"),
            "is empty": answer(phone.id, "   "),
            "not one of its options": answer(phone.id, "phone-0000"),
            # Built unchecked, as a client without linkflow's models would send it.
            "at most 512": MfaSubmission.model_construct(
                answers=[
                    ChallengeAnswer.model_construct(
                        challenge_id=phone.id, value=SecretStr("x" * 513)
                    )
                ]
            ),
            "answered twice in one submission": MfaSubmission(
                answers=[
                    ChallengeAnswer(challenge_id=phone.id, value=phone.options[0].value),
                    ChallengeAnswer(challenge_id=phone.id, value=phone.options[1].value),
                ]
            ),
        }
        for expected, submission in refusals.items():
            with pytest.raises(AnswerRefused, match=expected) as refused:
                await links.submit_mfa(waiting.link_id, submission)
            assert "xxxx" not in str(refused.value)

        handle = links.temporal.get_workflow_handle(waiting.link_id)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("submit_mfa", {"answers": "not a list"})

        unchanged = await links.snapshot(waiting.link_id)
        assert unchanged.status is LinkStatus.MFA_REQUIRED
        assert unchanged.pending_challenges == waiting.pending_challenges
        assert unchanged.attempts.answers_submitted == 0
        events = await history_event_types(links, waiting.link_id)
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED not in events

        # The link still takes a good answer after all of that.
        after = await links.submit_mfa(waiting.link_id, answer(phone.id, phone.options[1].value))
        assert after.status is LinkStatus.MFA_REQUIRED
        assert after.pending_challenges[0].kind is ChallengeKind.CODE


async def test_nothing_pending_is_refused(dev_env: WorkflowEnvironment, run_worker):
    unreachable = f"http://127.0.0.1:{free_port()}"
    async with run_worker(dev_env.client, provider_url=unreachable) as links:
        link_id = await links.start_link(mx_request("user_mfa"))
        try:
            with pytest.raises(AnswerRefused, match=r"No MFA challenge is pending .*CONNECTING"):
                await links.submit_mfa(link_id, answer("CRD-anything", "correct"))
            assert (await links.snapshot(link_id)).status is LinkStatus.CONNECTING
        finally:
            await links.temporal.get_workflow_handle(link_id).terminate("test over")


async def test_duplicate_answer_is_harmless(dev_env: WorkflowEnvironment, run_worker):
    async with run_worker(dev_env.client) as links:
        waiting = await start_and_settle(links, "user_otp")
        [phone] = waiting.pending_challenges
        choice = answer(phone.id, phone.options[0].value)

        first = await links.submit_mfa(waiting.link_id, choice)
        again = await links.submit_mfa(waiting.link_id, choice)

        assert again.status is LinkStatus.MFA_REQUIRED
        assert again.pending_challenges == first.pending_challenges
        assert again.attempts.answers_submitted == 1
        assert again.attempts.mfa_rounds == 2

        result = await links.submit_mfa(
            waiting.link_id, answer(first.pending_challenges[0].id, "correct")
        )
        assert result.status is LinkStatus.CONNECTED


async def test_answer_by_signal(dev_env: WorkflowEnvironment, run_worker, record_history):
    async with run_worker(dev_env.client) as links:
        waiting = await start_and_settle(links, "user_mfa")
        [challenge] = waiting.pending_challenges

        await links.signal_mfa(waiting.link_id, answer("CRD-unknown", "correct"))
        refused = await links.snapshot(waiting.link_id)
        assert refused.status is LinkStatus.MFA_REQUIRED
        assert refused.last_refusal is not None
        assert "Unknown challenge" in refused.last_refusal
        assert refused.attempts.answers_refused == 1

        await links.signal_mfa(waiting.link_id, answer(challenge.id, "correct"))
        result = await links.settled(waiting.link_id)

        assert result.status is LinkStatus.CONNECTED
        assert result.last_refusal is None
        await record_history(links.temporal.get_workflow_handle(waiting.link_id), "mx_signal")


async def test_a_refused_signal_is_forgotten_when_its_round_ends(
    dev_env: WorkflowEnvironment, run_worker
):
    async with run_worker(dev_env.client) as links:
        waiting = await start_and_settle(links, "user_otp")
        [phone] = waiting.pending_challenges
        await links.signal_mfa(waiting.link_id, answer("CRD-unknown", "correct"))
        assert (await links.snapshot(waiting.link_id)).last_refusal is not None

        # Answered by update, not signal: the next round asks afresh, with no refusal of its own.
        code_round = await links.submit_mfa(
            waiting.link_id, answer(phone.id, phone.options[0].value)
        )
        assert code_round.status is LinkStatus.MFA_REQUIRED
        assert code_round.last_refusal is None
        await links.signal_mfa(waiting.link_id, answer("CRD-unknown-too", "correct"))
        assert (await links.snapshot(waiting.link_id)).last_refusal is not None
        [code] = code_round.pending_challenges
        connected = await links.submit_mfa(waiting.link_id, answer(code.id, "correct"))
        assert connected.status is LinkStatus.CONNECTED
        assert connected.last_refusal is None
        assert connected.attempts.answers_refused == 2


async def test_invalid_credentials_fail_without_retries(
    dev_env: WorkflowEnvironment, run_worker, record_history
):
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(mx_request("user_bad"))
        result = await links.result(link_id)

        assert result.status is LinkStatus.FAILED
        assert result.reason is LinkReason.INVALID_CREDENTIALS
        assert result.provider_status == "DENIED"
        handle = links.temporal.get_workflow_handle(link_id)
        calls = await provider_calls(handle)
        assert [call.activity_type for call in calls] == ["provider_login"]
        assert {call.attempt for call in calls} == {1}
        description = await handle.describe()
        assert description.typed_search_attributes.get(LINK_STATUS) == "FAILED"
        await record_history(handle, "mx_invalid_credentials")


async def test_wrong_password_is_invalid_credentials(dev_env: WorkflowEnvironment, run_worker):
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(mx_request("user_good", password="nope"))
        result = await links.result(link_id)
        assert result.reason is LinkReason.INVALID_CREDENTIALS


async def test_same_link_id_twice_is_one_link(dev_env: WorkflowEnvironment, run_worker):
    async with run_worker(dev_env.client) as links:
        link_id = f"link-double-click-{uuid.uuid4()}"
        await links.start_link(mx_request("user_mfa"), link_id)
        await links.start_link(mx_request("user_mfa"), link_id)
        handle = links.temporal.get_workflow_handle(link_id)
        first_run = (await handle.describe()).run_id

        waiting = await links.wait_for(link_id, SETTLED)
        await links.submit_mfa(link_id, answer(waiting.pending_challenges[0].id, "correct"))
        await links.unlink(link_id)
        # Once the link has ended, the same id still names that link, not a new one.
        assert await links.start_link(mx_request("user_mfa"), link_id) == link_id

        runs = [
            execution.run_id
            async for execution in links.temporal.list_workflows(f"WorkflowId = '{link_id}'")
        ]
        assert runs == [first_run]


async def test_answer_to_an_ended_link_is_refused(dev_env: WorkflowEnvironment, run_worker):
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(mx_request("user_good"))
        await links.settled(link_id)
        await links.unlink(link_id)
        with pytest.raises(AnswerRefused, match="has ended"):
            await links.submit_mfa(link_id, answer("CRD-x", "correct"))


async def test_snapshot_and_visibility_hold_no_secrets(dev_env: WorkflowEnvironment, run_worker):
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(mx_request("user_mfa", password="s3cret-pass"))
        result = await links.result(link_id)
        assert result.reason is LinkReason.INVALID_CREDENTIALS

        handle = links.temporal.get_workflow_handle(link_id)
        description = await handle.describe()
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        visible = [
            result.model_dump_json(),
            link_id,
            str(description.typed_search_attributes),
            metadata.current_details,
            await description.static_summary() or "",
        ]
        for text in visible:
            assert "s3cret-pass" not in text
            assert "user_mfa" not in text
        assert await description.static_summary() == "mx account link"


async def test_activity_summaries_and_details_read_well(dev_env: WorkflowEnvironment, run_worker):
    async with run_worker(dev_env.client) as links:
        waiting = await start_and_settle(links, "user_mfa")
        handle = links.temporal.get_workflow_handle(waiting.link_id)
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        details = metadata.current_details
        assert details.startswith("**MFA_REQUIRED**")
        assert "answer the pending challenges" in details
        assert "What city were you born in?" in details
        assert "pass_good" not in details

        await links.submit_mfa(waiting.link_id, answer(waiting.pending_challenges[0].id, "correct"))
        # Summaries are payloads too, encrypted like the rest: read them through the codec.
        converter = links.temporal.data_converter
        summaries = [
            (await converter.decode([call.summary], [str]))[0]
            for call in await provider_calls(handle)
            if call.summary is not None
        ]
        assert summaries
        assert all(summary.startswith("mx: ") for summary in summaries)
        assert any("log in" in summary for summary in summaries)
        assert any("send 1 MFA answer(s)" in summary for summary in summaries)


async def two_round_link(links: LinkClient, request: LinkRequest) -> str:
    """Link `user_otp` the way an app does: start and wait, then answer both rounds."""
    link_id, waiting = await links.start_and_wait(request)
    [phone] = waiting.pending_challenges
    after_phone = await links.submit_mfa(link_id, answer(phone.id, phone.options[0].value))
    [code] = after_phone.pending_challenges
    result = await links.submit_mfa(link_id, answer(code.id, "correct"))
    assert result.status is LinkStatus.CONNECTED
    return link_id


async def test_a_two_round_link_costs_at_most_thirty_history_events(
    dev_env: WorkflowEnvironment, run_worker
):
    async with run_worker(dev_env.client) as links:
        link_id = await two_round_link(links, mx_request("user_otp"))
        events = await history_event_types(links, link_id)
        calls = await provider_calls(links.temporal.get_workflow_handle(link_id))

    assert len(events) <= 30, f"{len(events)} events"
    # MFA_REQUIRED once (the second round asks in the same status), CONNECTED, and the SDK's own
    # TemporalChangeVersion with the run's one patch marker.
    assert events.count(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES) == 3
    assert events.count(EventType.EVENT_TYPE_MARKER_RECORDED) == 4  # the patch, 3 provider calls
    # One call per step: the login, then one per answer, each following the provider's job.
    assert [call.activity_type for call in calls] == [
        "provider_login",
        "provider_answer",
        "provider_answer",
    ]
    assert all(call.local for call in calls)


async def test_workflow_type_and_message_names_are_public(dev_env: WorkflowEnvironment):
    definition = AccountLinkWorkflow.__temporal_workflow_definition  # type: ignore[attr-defined]
    # Dynamic, so that its start is read by the link itself; clients start it by this name.
    assert definition.name is None
    assert WORKFLOW_TYPE == "AccountLinkWorkflow"
    assert ANSWER_MFA_SIGNAL == "answer_mfa"
    assert set(definition.queries) == {"snapshot", "webhook_backlog"}
    assert set(definition.updates) == {
        "settled",
        "submit_mfa",
        "reauthenticate",
        "update_credentials",
        "resolve_hold",
        "unlink",
    }
    # The one signal handler is dynamic: it reads `answer_mfa` and refuses every other name.
    assert set(definition.signals) == {None}


async def test_mfa_timeout_on_the_dev_server(
    dev_env: WorkflowEnvironment, run_worker, record_history
):
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(mx_request("user_mfa", mfa_timeout_seconds=5))
        result = await links.result(link_id)

        assert result.status is LinkStatus.FAILED
        assert result.reason is LinkReason.MFA_TIMEOUT
        assert result.message == "No answer arrived within 5 seconds."
        await record_history(links.temporal.get_workflow_handle(link_id), "mx_mfa_timeout")


async def test_default_300_second_timeout_on_time_skipping_server(
    time_skipping_env: WorkflowEnvironment, run_worker, monkeypatch: pytest.MonkeyPatch
):
    # The time-skipping server cannot register search attributes (its operator service is
    # unimplemented), so this one test runs the workflow unsandboxed with upserts dropped; the
    # dev-server tests above cover the search attributes.
    monkeypatch.setattr(workflow, "upsert_search_attributes", lambda updates: None)
    async with run_worker(time_skipping_env.client, sandboxed=False) as links:
        # The handle start_workflow returns is the one that lets the test server skip time.
        handle = await links.temporal.start_workflow(
            WORKFLOW_TYPE,
            mx_request("user_mfa"),
            id=f"link-time-skipping-{uuid.uuid4()}",
            task_queue=links.task_queue,
            result_type=LinkSnapshot,
        )
        result = await handle.result()

        assert result.status is LinkStatus.FAILED
        assert result.reason is LinkReason.MFA_TIMEOUT
        assert result.message == "No answer arrived within 300 seconds."
        assert result.attempts.mfa_rounds == 1
        assert result.pending_challenges == []
        assert (result.updated_at - result.started_at).total_seconds() >= 300


async def test_hold_ends_action_required_with_the_banks_message(
    dev_env: WorkflowEnvironment, run_worker, record_history
):
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(mx_request("user_hold"))
        result = await links.settled(link_id)

        assert result.status is LinkStatus.ACTION_REQUIRED
        assert result.reason is LinkReason.PROVIDER_HOLD
        assert result.provider_status == "IMPEDED"
        assert result.message
        assert "website" in result.message
        await record_history(links.temporal.get_workflow_handle(link_id), "mx_hold")


async def test_unsupported_mfa_fails_without_asking_the_user(
    dev_env: WorkflowEnvironment, run_worker, record_history
):
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(mx_request("user_unsupported"))
        result = await links.result(link_id)

        assert result.status is LinkStatus.FAILED
        assert result.reason is LinkReason.UNSUPPORTED_MFA
        assert result.attempts.mfa_rounds == 0
        await record_history(links.temporal.get_workflow_handle(link_id), "mx_unsupported_mfa")


async def test_start_and_wait_returns_the_first_challenge_in_one_round_trip(
    dev_env: WorkflowEnvironment, run_worker
):
    async with run_worker(dev_env.client) as links:
        link_id, first = await links.start_and_wait(mx_request("user_mfa"))

        assert first.status is LinkStatus.MFA_REQUIRED
        [challenge] = first.pending_challenges
        assert challenge.prompt == "What city were you born in?"
        # The same id again is the same link, where it stands now.
        same_id, again = await links.start_and_wait(mx_request("user_mfa"), link_id)
        assert same_id == link_id
        assert again.pending_challenges == first.pending_challenges

        result = await links.submit_mfa(link_id, answer(challenge.id, "correct"))
        assert result.status is LinkStatus.CONNECTED

        _, linked = await links.start_and_wait(mx_request("user_good"))
        assert linked.status is LinkStatus.CONNECTED
        _, failed = await links.start_and_wait(mx_request("user_bad"))
        assert failed.status is LinkStatus.FAILED
        assert failed.reason is LinkReason.INVALID_CREDENTIALS
        # An ended link is still that link: its id gives its final snapshot back.
        _, ended = await links.start_and_wait(mx_request("user_bad"), failed.link_id)
        assert ended.status is LinkStatus.FAILED
