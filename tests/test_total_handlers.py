"""Nothing a caller sends can fail a link's workflow task, on a real dev server.

A malformed start ends the link FAILED (`INVALID_REQUEST`) at once, a malformed update is refused by
its validator, a malformed signal is recorded as a refusal and ignored, and the link goes on to
connect with the right answer. Payloads are sent the ways callers really send them: through the
SDK, with raw payloads of any encoding, and through the `temporal` CLI.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import RawValue
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.webhooks import WEBHOOK_BACKLOG_QUERY, WebhookBacklog
from linkflow.client import LinkClient
from linkflow.devstack import temporal_cli
from linkflow.models import (
    CarriedLink,
    ChallengeAnswer,
    Credentials,
    LinkReason,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    MfaSubmission,
    Provider,
)
from linkflow.temporal import LINK_STATUS
from sandbox.users import CORRECT_ANSWER
from workflows.account_link import ANSWER_MFA_SIGNAL, WORKFLOW_TYPE

SETTLED = {LinkStatus.MFA_REQUIRED, LinkStatus.CONNECTED, LinkStatus.ACTION_REQUIRED}
DISTINCT_PASSWORD = "pw-Zebra-7731"


def raw(encoding: bytes, data: bytes) -> RawValue:
    return RawValue(Payload(metadata={"encoding": encoding}, data=data))


def good_request(username: str = "user_mfa") -> LinkRequest:
    return LinkRequest(
        provider=Provider.MX,
        user_ref=f"app-user-{username}",
        credentials=Credentials(username=username, password="pass_good"),
    )


async def task_failures(handle: WorkflowHandle[Any, Any]) -> int:
    return len(
        [
            event
            async for event in handle.fetch_history_events()
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
    )


async def waiting_link(links: LinkClient) -> LinkSnapshot:
    link_id = await links.start_link(good_request())
    snapshot = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=30))
    assert snapshot.status is LinkStatus.MFA_REQUIRED
    return snapshot


def right_answer(snapshot: LinkSnapshot) -> MfaSubmission:
    [challenge] = snapshot.pending_challenges
    return MfaSubmission(answers=[ChallengeAnswer(challenge_id=challenge.id, value=CORRECT_ANSWER)])


MALFORMED_SIGNALS: dict[str, Sequence[Any]] = {
    "no payload": [],
    "two payloads": [{"answers": []}, {"answers": []}],
    "binary/null": [None],
    "binary/plain bytes": [raw(b"binary/plain", b"\x00\x01\x02")],
    "an unknown encoding": [raw(b"text/x-nonsense", b"{}")],
    "encrypted garbage": [raw(b"binary/encrypted", b"\x00" * 40)],
    "json that is not json": [raw(b"json/plain", b"{not json")],
    "a string": ["correct"],
    "a list": [[1, 2, 3]],
    "answers not a list": [{"answers": "nope"}],
    "a number for the value": [{"answers": [{"challenge_id": "CRD-1", "value": 12345}]}],
    "a huge challenge id": [{"answers": [{"challenge_id": "C" * 100_000, "value": "x"}]}],
}


async def test_malformed_signals_are_refused_and_the_link_still_connects(
    dev_env: WorkflowEnvironment, run_worker
):
    async with run_worker(dev_env.client) as links:
        waiting = await waiting_link(links)
        handle = links.temporal.get_workflow_handle(waiting.link_id)

        for number, (what, args) in enumerate(MALFORMED_SIGNALS.items(), start=1):
            await handle.signal(ANSWER_MFA_SIGNAL, args=list(args))
            snapshot = await links.snapshot(waiting.link_id)
            assert snapshot.attempts.answers_refused == number, what
            assert snapshot.last_refusal, what
            assert len(snapshot.last_refusal) <= 500, what
            assert "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC" not in snapshot.last_refusal
            assert "12345" not in snapshot.last_refusal, what
            assert snapshot.status is LinkStatus.MFA_REQUIRED, what

        await handle.signal("answer", args=[right_answer(waiting)])
        unknown = await links.snapshot(waiting.link_id)
        assert unknown.last_refusal is not None
        assert "no signal by that name" in unknown.last_refusal
        assert unknown.status is LinkStatus.MFA_REQUIRED

        await links.signal_mfa(waiting.link_id, right_answer(waiting))
        connected = await links.settled(waiting.link_id, within=timedelta(seconds=30))
        assert connected.status is LinkStatus.CONNECTED
        assert connected.last_refusal is None
        assert await task_failures(handle) == 0


async def test_queries_with_any_arguments_fail_alone_and_the_link_still_connects(
    dev_env: WorkflowEnvironment, run_worker
):
    async with run_worker(dev_env.client) as links:
        waiting = await waiting_link(links)
        handle = links.temporal.get_workflow_handle(waiting.link_id)

        # A query that takes nothing may ignore what it was sent, or refuse it; either way only
        # the query is answered, and a query by another name is always refused.
        for query in ("snapshot", WEBHOOK_BACKLOG_QUERY, "no_such_query"):
            for what, args in MALFORMED_SIGNALS.items():
                try:
                    await asyncio.wait_for(handle.query(query, args=list(args)), timeout=10)
                    answered = True
                except WorkflowQueryFailedError:
                    answered = False
                assert not (answered and query == "no_such_query"), what
                still = await links.snapshot(waiting.link_id)
                assert still.status is LinkStatus.MFA_REQUIRED, (query, what)
        backlog = await handle.query(WEBHOOK_BACKLOG_QUERY, result_type=WebhookBacklog)
        assert backlog == WebhookBacklog(events=[], resting=False), "no webhook URL, still asking"

        connected = await links.submit_mfa(waiting.link_id, right_answer(waiting))
        assert connected.status is LinkStatus.CONNECTED
        assert (await handle.query(WEBHOOK_BACKLOG_QUERY, result_type=WebhookBacklog)).resting
        assert await task_failures(handle) == 0


async def cli_signal(client: Client, link_id: str, *inputs: str, extra: Sequence[str] = ()) -> None:
    command = [
        temporal_cli(),
        "workflow",
        "signal",
        "--address",
        client.service_client.config.target_host,
        "--workflow-id",
        link_id,
        "--name",
        ANSWER_MFA_SIGNAL,
    ]
    for value in inputs:
        command += ["--input", value]
    completed = await asyncio.to_thread(
        subprocess.run, [*command, *extra], capture_output=True, text=True, timeout=30, check=False
    )
    assert completed.returncode == 0, completed.stderr


async def test_malformed_signals_from_the_temporal_cli_are_refused(
    dev_env: WorkflowEnvironment, run_worker
):
    async with run_worker(dev_env.client) as links:
        waiting = await waiting_link(links)
        client = links.temporal
        await cli_signal(client, waiting.link_id)
        await cli_signal(client, waiting.link_id, "null")
        await cli_signal(client, waiting.link_id, "{}", "{}")
        await cli_signal(client, waiting.link_id, '"correct"')
        await cli_signal(
            client, waiting.link_id, "{}", extra=["--input-meta", "encoding=binary/null"]
        )

        snapshot = await links.snapshot(waiting.link_id)
        assert snapshot.attempts.answers_refused == 5
        assert snapshot.status is LinkStatus.MFA_REQUIRED

        [challenge] = waiting.pending_challenges
        await cli_signal(
            client,
            waiting.link_id,
            f'{{"answers": [{{"challenge_id": "{challenge.id}", "value": "{CORRECT_ANSWER}"}}]}}',
        )
        connected = await links.settled(waiting.link_id, within=timedelta(seconds=30))
        assert connected.status is LinkStatus.CONNECTED
        assert await task_failures(client.get_workflow_handle(waiting.link_id)) == 0


async def test_malformed_updates_are_refused_by_the_validator_without_echoing_values(
    dev_env: WorkflowEnvironment, run_worker
):
    async with run_worker(dev_env.client) as links:
        waiting = await waiting_link(links)
        handle = links.temporal.get_workflow_handle(waiting.link_id)
        updates: dict[str, tuple[str, list[Any]]] = {
            "carries no payload": ("submit_mfa", []),
            "is empty": ("submit_mfa", [None]),
            "could not be read": ("submit_mfa", [raw(b"text/x-nonsense", b"{}")]),
            "answers: Input should be a valid array": ("submit_mfa", [{"answers": "s3cr3t-xyz"}]),
            "value: Input should be a valid string": (
                "submit_mfa",
                [{"answers": [{"challenge_id": "CRD-1", "value": 987654321}]}],
            ),
            "credentials.password": (
                "update_credentials",
                [{"credentials": {"username": "u", "password": 987654321}}],
            ),
        }
        for expected, (name, args) in updates.items():
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(name, args=args)
            message = str(refused.value.cause)
            assert expected in message, message
            assert "987654321" not in message
            assert "s3cr3t-xyz" not in message

        # Two payloads: the SDK refuses the call before the validator; still only a refusal.
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("submit_mfa", args=[{"answers": []}, {"answers": []}])

        events = [event.event_type async for event in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED not in events
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events

        connected = await links.submit_mfa(waiting.link_id, right_answer(waiting))
        assert connected.status is LinkStatus.CONNECTED


def good_start_json() -> dict[str, Any]:
    return good_request().model_dump(mode="json")


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def with_credentials(**credentials: Any) -> dict[str, Any]:
    return good_start_json() | {"credentials": credentials}


MALFORMED_STARTS: dict[str, list[Any]] = {
    "no input": [],
    "null": [None],
    "two inputs": [good_start_json(), good_start_json()],
    "an unknown provider": [good_start_json() | {"provider": "acme-bank"}],
    "missing credentials": [without(good_start_json(), "credentials")],
    "a number for the password": [with_credentials(username="user_mfa", password=73310042)],
    "an empty password": [with_credentials(username="user_mfa", password="")],
    "an oversized username": [with_credentials(username="u" * 5000, password="pass_good")],
    "a string": ["user_mfa:pass_good"],
    "an empty object": [{}],
    "an unknown encoding": [raw(b"text/x-nonsense", b"{}")],
    "encrypted garbage": [raw(b"binary/encrypted", b"\x01" * 64)],
    "a webhook URL with credentials": [
        good_start_json() | {"options": {"webhook_url": "https://u:p@example.com/hook"}}
    ],
    "an MFA window of a year": [good_start_json() | {"options": {"mfa_timeout_seconds": 3e7}}],
    # It goes into the provider's URLs (found by the API's schemathesis run).
    "an institution code that is not an id": [
        good_start_json() | {"options": {"institution_code": "mx\nbank/../x"}}
    ],
}


@pytest.mark.parametrize("what", list(MALFORMED_STARTS))
async def test_a_malformed_start_fails_the_link_at_once_with_a_reason(
    dev_env: WorkflowEnvironment, run_worker, what: str
):
    async with run_worker(dev_env.client) as links:
        handle = await links.temporal.start_workflow(
            WORKFLOW_TYPE,
            args=MALFORMED_STARTS[what],
            id=f"link-malformed-{uuid.uuid4()}",
            task_queue=links.task_queue,
            result_type=LinkSnapshot,
        )
        result = await handle.result()

        assert result.status is LinkStatus.FAILED
        assert result.reason is LinkReason.INVALID_REQUEST
        assert result.message
        assert "73310042" not in result.message
        assert "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu" not in result.message
        assert ":p@" not in result.message
        assert await task_failures(handle) == 0
        description = await handle.describe()
        assert description.typed_search_attributes.get(LINK_STATUS) == "FAILED"
        events = [event.event_type async for event in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events


async def test_a_start_from_the_cli_with_no_input_fails_the_link_at_once(
    dev_env: WorkflowEnvironment, run_worker
):
    async with run_worker(dev_env.client) as links:
        link_id = f"link-cli-{uuid.uuid4()}"
        completed = await asyncio.to_thread(
            subprocess.run,
            [
                temporal_cli(),
                "workflow",
                "start",
                "--address",
                links.temporal.service_client.config.target_host,
                "--type",
                WORKFLOW_TYPE,
                "--task-queue",
                links.task_queue,
                "--workflow-id",
                link_id,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        result = await links.result(link_id)
        assert result.status is LinkStatus.FAILED
        assert result.reason is LinkReason.INVALID_REQUEST
        assert result.message == "The start request must carry exactly one payload; it carried 0."


async def test_a_forged_carried_session_is_refused_and_never_reaches_the_provider(
    dev_env: WorkflowEnvironment, run_worker
):
    async with run_worker(dev_env.client) as links:
        victim_id = await links.start_link(good_request("user_good"))
        victim = await links.settled(victim_id, within=timedelta(seconds=30))
        assert victim.status is LinkStatus.CONNECTED
        now = datetime.now(UTC)
        forged = good_request("attacker").model_copy(
            update={
                "credentials": Credentials(
                    username="attacker", password=SecretStr(DISTINCT_PASSWORD)
                ),
                "carried": CarriedLink(
                    snapshot=victim.model_copy(update={"started_at": now, "updated_at": now}),
                    provider_session={"user_guid": "USR-victim", "member_guid": "MBR-victim"},
                ),
            }
        )
        handle = await links.temporal.start_workflow(
            WORKFLOW_TYPE,
            forged,
            id=f"link-forged-{uuid.uuid4()}",
            task_queue=links.task_queue,
            result_type=LinkSnapshot,
        )
        result = await handle.result()

        assert result.status is LinkStatus.FAILED
        assert result.reason is LinkReason.INVALID_REQUEST
        assert result.message is not None
        assert "carried" in result.message
        assert result.accounts == []
        events = [event.event_type async for event in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events
        # The victim's link is untouched.
        assert (await links.snapshot(victim_id)).status is LinkStatus.CONNECTED


async def test_another_workflow_type_on_the_link_queue_fails_at_once(
    dev_env: WorkflowEnvironment, run_worker
):
    async with run_worker(dev_env.client) as links:
        handle = await links.temporal.start_workflow(
            "NoSuchWorkflow",
            args=[],
            id=f"unknown-type-{uuid.uuid4()}",
            task_queue=links.task_queue,
        )
        with pytest.raises(Exception, match="Workflow execution failed"):
            await handle.result()
        assert await task_failures(handle) == 0


async def test_an_oversized_update_is_refused_by_the_server_and_never_wedges_the_link(
    dev_env: WorkflowEnvironment, run_worker
):
    async with run_worker(dev_env.client) as links:
        waiting = await waiting_link(links)
        handle = links.temporal.get_workflow_handle(waiting.link_id)
        oversized = {"answers": [{"challenge_id": "CRD-1", "value": "y" * 300_000}]}
        # The server refuses it (RESOURCE_EXHAUSTED: the in-flight update payload limit); the
        # client retries that for a while, so the call may end in its own timeout instead. Either
        # way it never reaches the link, as the checks below the next one show.
        with pytest.raises((RPCError, WorkflowUpdateRPCTimeoutOrCancelledError)):
            await handle.execute_update(
                "submit_mfa", args=[oversized], rpc_timeout=timedelta(seconds=20)
            )

        # Just under the server's cap: it reaches the link, whose validator refuses it.
        large = {"answers": [{"challenge_id": "CRD-1", "value": "y" * 100_000}]}
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("submit_mfa", args=[large])
        assert "at most 512" in str(refused.value.cause)
        assert "yyyyyyyy" not in str(refused.value.cause)

        connected = await links.submit_mfa(waiting.link_id, right_answer(waiting))
        assert connected.status is LinkStatus.CONNECTED
        assert await task_failures(handle) == 0
