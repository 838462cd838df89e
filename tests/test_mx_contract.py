"""What only MX does, against the MX sandbox over real HTTP.

The shared test users' stories are asserted for every provider in
`tests/test_provider_contracts.py`; here are MX's own: its guids, its phone choice, its picture
questions (`user_image`, `user_image_data`), its members' user kept across links, its refusal of
a replaced or stale challenge, the bank's MFA window closing (the sandbox's
`--mx-mfa-window-seconds`), and the status words MX documents beyond the shared stories:
REJECTED before the next question, PREVENTED, DISABLED, IMPAIRED, IMPORTED and null.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from linkflow.config import ProviderSettings
from linkflow.models import ChallengeAnswer, ChallengeKind, LinkReason, LinkRequest, Provider
from providers.base import LinkFailure, Outcome, ProviderRejectedRequest, ProviderState
from providers.mx import MxAdapter
from tests.fixtures.links import link_request as any_link_request
from tests.fixtures.links import new_key, send, settle, start
from tests.fixtures.sandbox import SHORT_MFA_WINDOW_SECONDS, sandbox_process

# Slow enough that a test polling every 50 ms sees each step of a job.
SLOW_LATENCY_SECONDS = 0.4
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

EXPIRED_MESSAGE = MxAdapter.STATUSES.meanings["EXPIRED"].message


@pytest.fixture
async def adapter(sandbox_url: str) -> AsyncIterator[MxAdapter]:
    mx = MxAdapter(f"{sandbox_url}/mx", "sandbox-client-id", "sandbox-api-key")
    yield mx
    await mx.aclose()


@pytest.fixture(scope="module")
def slow_sandbox_url() -> Iterator[str]:
    with sandbox_process("--latency-seconds", str(SLOW_LATENCY_SECONDS)) as url:
        yield url


@pytest.fixture
async def slow(slow_sandbox_url: str) -> AsyncIterator[MxAdapter]:
    """The adapter against a sandbox whose every job step takes 0.4 s."""
    mx = MxAdapter(f"{slow_sandbox_url}/mx", "sandbox-client-id", "sandbox-api-key")
    yield mx
    await mx.aclose()


@pytest.fixture
async def short_window(short_mfa_window_sandbox_url: str) -> AsyncIterator[MxAdapter]:
    """The adapter against a sandbox whose banks stop waiting for MFA answers after 1.5 s."""
    mx = MxAdapter(f"{short_mfa_window_sandbox_url}/mx", "sandbox-client-id", "sandbox-api-key")
    yield mx
    await mx.aclose()


def link_request(username: str, *, user_ref: str | None = None) -> LinkRequest:
    return any_link_request(Provider.MX, username, user_ref=user_ref)


async def login(adapter: MxAdapter, username: str) -> ProviderState:
    state = await start(adapter, username)
    assert (state.outcome, state.raw_status) == (Outcome.PENDING, "CREATED")
    return state


async def answer(adapter: MxAdapter, state: ProviderState, *values: str) -> ProviderState:
    resumed = await send(adapter, state, *values)
    assert (resumed.outcome, resumed.raw_status) == (Outcome.PENDING, "RESUMED")
    assert resumed.session == state.session
    return await settle(adapter, resumed)


def unique(username: str) -> str:
    return f"{username}+{uuid.uuid4().hex[:8]}"


async def bank_event(sandbox_url: str, username: str, event: str) -> None:
    """Tell the sandbox's bank what the user's next aggregation meets (its test-only route)."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{sandbox_url}/mx/_sandbox/bank-events", json={"username": username, "event": event}
        )
    response.raise_for_status()


async def linked(adapter: MxAdapter, username: str) -> ProviderState:
    state = await settle(adapter, await start(adapter, username))
    assert state.outcome is Outcome.LINKED
    return state


async def refreshed(adapter: MxAdapter, state: ProviderState) -> ProviderState:
    return await settle(adapter, await adapter.refresh(state.session, idempotency_key=new_key()))


async def reauthenticated(
    adapter: MxAdapter, state: ProviderState, username: str, password: str
) -> ProviderState:
    request = any_link_request(Provider.MX, username, password)
    updated = await adapter.reauthenticate(
        "link-1", request, state.session, idempotency_key=new_key()
    )
    assert (updated.outcome, updated.raw_status) == (Outcome.PENDING, "UPDATED")
    return await settle(adapter, updated)


def png_of(data_uri: str | None) -> bytes:
    assert data_uri is not None
    prefix, _, encoded = data_uri.partition(",")
    assert prefix == "data:image/png;base64"
    return base64.b64decode(encoded, validate=True)


async def test_a_login_and_its_challenges_are_named_by_mx_guids(adapter: MxAdapter) -> None:
    state = await login(adapter, "user_mfa")
    assert state.session["user_guid"].startswith("USR-")
    assert state.session["member_guid"].startswith("MBR-")
    [challenge] = (await settle(adapter, state)).challenges
    assert challenge.id.startswith("CRD-")


async def test_user_otp_chooses_a_phone_then_enters_the_code(adapter: MxAdapter) -> None:
    choosing = await settle(adapter, await login(adapter, "user_otp"))
    assert choosing.outcome is Outcome.CHALLENGED
    [choice] = choosing.challenges
    assert choice.kind is ChallengeKind.OPTIONS
    assert choice.prompt == "Where should we text your one-time code?"
    assert choice.option_values() == ["phone-4321", "phone-8765"]
    assert [o.label for o in choice.options] == ["(***) ***-4321", "(***) ***-8765"]

    coding = await answer(adapter, choosing, "phone-4321")
    assert coding.outcome is Outcome.CHALLENGED
    [code] = coding.challenges
    assert code.kind is ChallengeKind.CODE
    assert code.prompt == "Enter the code we texted to (***) ***-4321"
    assert code.id != choice.id

    linked = await answer(adapter, coding, "correct")
    assert linked.outcome is Outcome.LINKED


async def test_an_answer_after_the_bank_stopped_waiting_ends_the_link_mfa_timeout(
    short_window: MxAdapter,
) -> None:
    challenged = await settle(short_window, await login(short_window, "user_mfa"))
    await asyncio.sleep(SHORT_MFA_WINDOW_SECONDS + 0.3)
    answers = [ChallengeAnswer(challenge_id=challenged.challenges[0].id, value="correct")]
    with pytest.raises(LinkFailure) as failure:
        await short_window.answer(
            challenged.session, challenged.challenges, answers, idempotency_key=new_key()
        )
    assert failure.value.reason is LinkReason.MFA_TIMEOUT
    assert failure.value.raw_status == "EXPIRED"
    assert failure.value.message == EXPIRED_MESSAGE
    # MX refused the resume itself; the link learns why from the member's status.
    assert isinstance(failure.value.__cause__, ProviderRejectedRequest)
    assert failure.value.__cause__.status_code == 409


async def test_an_expired_challenge_ends_the_link_on_the_next_read(short_window: MxAdapter) -> None:
    challenged = await settle(short_window, await login(short_window, "user_otp"))
    await asyncio.sleep(SHORT_MFA_WINDOW_SECONDS + 0.3)
    with pytest.raises(LinkFailure) as failure:
        await short_window.poll(challenged.session)
    assert (failure.value.reason, failure.value.raw_status) == (LinkReason.MFA_TIMEOUT, "EXPIRED")


async def test_a_stale_answer_while_the_member_lives_stays_a_refusal(adapter: MxAdapter) -> None:
    challenged = await settle(adapter, await login(adapter, "user_mfa"))
    answers = [ChallengeAnswer(challenge_id=challenged.challenges[0].id, value="correct")]
    await adapter.answer(
        challenged.session, challenged.challenges, answers, idempotency_key=new_key()
    )
    with pytest.raises(ProviderRejectedRequest) as refused:
        await adapter.answer(
            challenged.session, challenged.challenges, answers, idempotency_key=new_key()
        )
    assert refused.value.status_code == 409


async def test_an_answer_to_a_replaced_challenge_is_refused(adapter: MxAdapter) -> None:
    first = await settle(adapter, await login(adapter, "user_mfa"))
    second = await answer(adapter, first, "Chicago")
    # The old challenge is gone: answering it is a refused request, not a silent success.
    stale = ChallengeAnswer(challenge_id=first.challenges[0].id, value="correct")
    with pytest.raises(ProviderRejectedRequest) as refused:
        await adapter.answer(second.session, second.challenges, [stale], idempotency_key=new_key())
    assert refused.value.status_code == 400

    assert (await answer(adapter, second, "correct")).outcome is Outcome.LINKED


async def test_same_user_ref_twice_reuses_the_mx_user(adapter: MxAdapter) -> None:
    user_ref = f"app-user-{uuid.uuid4()}"
    first = await adapter.login(
        "link-1", link_request("user_good", user_ref=user_ref), idempotency_key=new_key()
    )
    second = await adapter.login(
        "link-2", link_request("user_mfa", user_ref=user_ref), idempotency_key=new_key()
    )
    assert second.session["user_guid"] == first.session["user_guid"]
    assert second.session["member_guid"] != first.session["member_guid"]
    assert (await settle(adapter, first)).outcome is Outcome.LINKED
    assert (await settle(adapter, second)).outcome is Outcome.CHALLENGED


async def test_user_image_sees_the_pictures_and_any_one_links(adapter: MxAdapter) -> None:
    choosing = await settle(adapter, await login(adapter, "user_image"))
    assert choosing.outcome is Outcome.CHALLENGED
    [choice] = choosing.challenges
    assert choice.kind is ChallengeKind.IMAGE_OPTIONS
    assert choice.prompt == "Which picture did you choose when you enrolled?"
    assert [o.label for o in choice.options] == ["Red square", "Green square", "Blue square"]
    assert all(png_of(o.image_data_uri).startswith(PNG_SIGNATURE) for o in choice.options)
    assert choice.image_data_uri is None

    assert (await answer(adapter, choosing, choice.options[1].value)).outcome is Outcome.LINKED


async def test_a_picture_that_was_not_offered_is_asked_again(adapter: MxAdapter) -> None:
    choosing = await settle(adapter, await login(adapter, "user_image"))
    again = await answer(adapter, choosing, "image-purple")
    assert again.outcome is Outcome.CHALLENGED
    [first], [second] = choosing.challenges, again.challenges
    assert (second.kind, second.prompt) == (first.kind, first.prompt)
    assert second.id != first.id
    assert second.option_values() == first.option_values()
    assert (await answer(adapter, again, second.options[0].value)).outcome is Outcome.LINKED


async def test_user_image_data_sees_its_picture_and_names_it(adapter: MxAdapter) -> None:
    asked = await settle(adapter, await login(adapter, "user_image_data"))
    [question] = asked.challenges
    assert question.kind is ChallengeKind.TEXT
    assert question.prompt == "Type the word the picture shows."
    assert png_of(question.image_data_uri).startswith(PNG_SIGNATURE)
    assert question.options == []

    assert (await answer(adapter, asked, "correct")).outcome is Outcome.LINKED


async def test_a_wrong_answer_is_rejected_then_asked_again_not_a_failure(slow: MxAdapter) -> None:
    first = await settle(slow, await login(slow, "user_mfa"))
    state = await send(slow, first, "Chicago")
    seen: list[tuple[Outcome, str]] = []
    while state.outcome is Outcome.PENDING:
        seen.append((state.outcome, state.raw_status))
        await asyncio.sleep(0.05)
        state = await slow.poll(state.session)
    assert (Outcome.PENDING, "REJECTED") in seen
    assert seen.index((Outcome.PENDING, "RESUMED")) < seen.index((Outcome.PENDING, "REJECTED"))
    assert state.outcome is Outcome.CHALLENGED
    assert [c.prompt for c in state.challenges] == [c.prompt for c in first.challenges]
    assert (await answer(slow, state, "correct")).outcome is Outcome.LINKED


async def test_three_failed_logins_in_a_row_ask_for_the_credentials_again(
    adapter: MxAdapter,
) -> None:
    username = unique("user_good")
    started = await start(adapter, username, "nope")
    with pytest.raises(LinkFailure) as first:
        await settle(adapter, started)
    with pytest.raises(LinkFailure) as second:
        await reauthenticated(adapter, started, username, "still-nope")
    for denied in (first, second):
        assert (denied.value.reason, denied.value.raw_status) == (
            LinkReason.INVALID_CREDENTIALS,
            "DENIED",
        )

    prevented = await reauthenticated(adapter, started, username, "nope-again")
    assert (prevented.outcome, prevented.reason, prevented.raw_status) == (
        Outcome.ACTION_REQUIRED,
        LinkReason.REAUTH_REQUIRED,
        "PREVENTED",
    )
    assert prevented.message is not None
    assert "username and password" in prevented.message
    # MX tries no more until the user enters the credentials again; then the member connects.
    assert (await refreshed(adapter, prevented)).raw_status == "PREVENTED"
    final = await reauthenticated(adapter, prevented, username, "pass_good")
    assert (final.outcome, final.raw_status) == (Outcome.LINKED, "CONNECTED")


async def test_a_paused_member_stays_linked_with_its_accounts(
    adapter: MxAdapter, sandbox_url: str
) -> None:
    username = unique("user_good")
    connected = await linked(adapter, username)
    await bank_event(sandbox_url, username, "paused")

    paused = await refreshed(adapter, connected)
    assert (paused.outcome, paused.reason, paused.raw_status) == (
        Outcome.LINKED,
        None,
        "DISABLED",
    )
    assert paused.message is not None
    assert "paused" in paused.message
    assert len(await adapter.fetch_accounts(paused.session)) == 2
    assert (await refreshed(adapter, paused)).raw_status == "CONNECTED"


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("credentials_incomplete", "IMPAIRED"),
        ("imported", "IMPORTED"),
        ("credentials_removed", "null"),
    ],
)
async def test_a_member_without_its_credentials_asks_for_them_again(
    adapter: MxAdapter, sandbox_url: str, event: str, status: str
) -> None:
    username = unique("user_good")
    connected = await linked(adapter, username)
    await bank_event(sandbox_url, username, event)

    waiting = await refreshed(adapter, connected)
    assert (waiting.outcome, waiting.reason, waiting.raw_status) == (
        Outcome.ACTION_REQUIRED,
        LinkReason.REAUTH_REQUIRED,
        status,
    )
    assert (await refreshed(adapter, waiting)).raw_status == status
    again = await reauthenticated(adapter, waiting, username, "pass_good")
    assert (again.outcome, again.raw_status) == (Outcome.LINKED, "CONNECTED")


async def test_the_adapter_the_worker_builds_for_the_sandbox_may_poll_it_fast(
    sandbox_url: str,
) -> None:
    built = MxAdapter.from_settings(ProviderSettings(sandbox_url=sandbox_url))
    try:
        assert built.min_poll_interval_seconds == 0.0
        assert built.MIN_POLL_INTERVAL_SECONDS == 3.0
        assert (await settle(built, await login(built, "user_good"))).outcome is Outcome.LINKED
    finally:
        await built.aclose()
