"""MxAdapter against the MX sandbox over real HTTP, for every test user.

The sandbox runs as its own process (`tests/fixtures/sandbox.py`); these tests go through the
adapter's own HTTP client, so they also prove it sends MX's Basic auth and `Accept` header.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from linkflow.models import (
    ChallengeAnswer,
    ChallengeKind,
    Credentials,
    LinkOptions,
    LinkReason,
    LinkRequest,
    Provider,
)
from providers.base import (
    LinkFailure,
    Outcome,
    ProviderAdapter,
    ProviderRejectedRequest,
    ProviderState,
)
from providers.mx import CONNECTION_STATUSES, MxAdapter
from tests.fixtures.sandbox import SHORT_MFA_WINDOW_SECONDS


@pytest.fixture
async def adapter(sandbox_url: str) -> AsyncIterator[MxAdapter]:
    mx = MxAdapter(f"{sandbox_url}/mx", "sandbox-client-id", "sandbox-api-key")
    yield mx
    await mx.aclose()


@pytest.fixture
async def short_window(short_mfa_window_sandbox_url: str) -> AsyncIterator[MxAdapter]:
    """The adapter against a sandbox whose banks stop waiting for MFA answers after 1.5 s."""
    mx = MxAdapter(f"{short_mfa_window_sandbox_url}/mx", "sandbox-client-id", "sandbox-api-key")
    yield mx
    await mx.aclose()


def link_request(
    username: str,
    password: str = "pass_good",
    *,
    user_ref: str | None = None,
    institution_code: str | None = None,
) -> LinkRequest:
    return LinkRequest(
        provider=Provider.MX,
        user_ref=user_ref or f"app-user-{uuid.uuid4()}",
        credentials=Credentials(username=username, password=password),
        options=LinkOptions(institution_code=institution_code),
    )


async def login(adapter: MxAdapter, username: str, password: str = "pass_good") -> ProviderState:
    state = await adapter.login(
        f"link-{uuid.uuid4()}", link_request(username, password), idempotency_key=new_key()
    )
    assert state.outcome is Outcome.PENDING
    assert state.raw_status == "CREATED"
    return state


def new_key() -> str:
    return str(uuid.uuid4())


async def settle(adapter: MxAdapter, state: ProviderState) -> ProviderState:
    """Poll while MX is working, for at most about five seconds."""
    for _ in range(250):
        if state.outcome is not Outcome.PENDING:
            return state
        await asyncio.sleep(0.02)
        state = await adapter.poll(state.session)
    pytest.fail(f"MX stayed in {state.raw_status}")


async def answer(adapter: MxAdapter, state: ProviderState, *values: str) -> ProviderState:
    assert len(values) == len(state.challenges)
    answers = [
        ChallengeAnswer(challenge_id=challenge.id, value=value)
        for challenge, value in zip(state.challenges, values, strict=True)
    ]
    resumed = await adapter.answer(
        state.session, state.challenges, answers, idempotency_key=new_key()
    )
    assert resumed.outcome is Outcome.PENDING
    assert resumed.raw_status == "RESUMED"
    assert resumed.session == state.session
    return await settle(adapter, resumed)


def test_mx_adapter_is_a_provider_adapter() -> None:
    adapter: ProviderAdapter = MxAdapter("http://mx.invalid", "id", "key")
    assert adapter.provider is Provider.MX


async def test_user_good_links_with_two_accounts(adapter: MxAdapter) -> None:
    state = await login(adapter, "user_good")
    assert set(state.session) == {"user_guid", "member_guid"}
    assert state.session["user_guid"].startswith("USR-")
    assert state.session["member_guid"].startswith("MBR-")

    linked = await settle(adapter, state)
    assert linked.outcome is Outcome.LINKED
    assert linked.raw_status == "CONNECTED"
    assert linked.challenges == []

    accounts = await adapter.fetch_accounts(linked.session)
    assert [(a.name, a.kind, a.mask, a.balance, a.currency) for a in accounts] == [
        ("MX Bank Checking", "CHECKING", "1234", "1250.75", "USD"),
        ("MX Bank Savings", "SAVINGS", "5678", "9800.05", "USD"),
    ]
    assert all(a.id.startswith("ACT-") for a in accounts)


async def test_user_mfa_answers_one_text_question(adapter: MxAdapter) -> None:
    challenged = await settle(adapter, await login(adapter, "user_mfa"))
    assert challenged.outcome is Outcome.CHALLENGED
    assert challenged.raw_status == "CHALLENGED"
    [challenge] = challenged.challenges
    assert challenge.kind is ChallengeKind.TEXT
    assert challenge.prompt == "What city were you born in?"
    assert challenge.id.startswith("CRD-")
    assert challenge.options == []
    # MX states no expiry for a challenge: only the link's own window applies.
    assert challenge.deadline is None

    linked = await answer(adapter, challenged, "correct")
    assert linked.outcome is Outcome.LINKED
    assert len(await adapter.fetch_accounts(linked.session)) == 2


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
    assert failure.value.message == CONNECTION_STATUSES["EXPIRED"].message
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


@pytest.mark.parametrize(
    ("username", "password"),
    [("user_bad", "pass_good"), ("user_good", "not-the-password"), ("nobody", "pass_good")],
    ids=["user_bad", "wrong-password", "unknown-user"],
)
async def test_bad_credentials_fail_the_link(
    adapter: MxAdapter, username: str, password: str
) -> None:
    state = await login(adapter, username, password)
    with pytest.raises(LinkFailure) as failure:
        await settle(adapter, state)
    assert failure.value.reason is LinkReason.INVALID_CREDENTIALS
    assert failure.value.raw_status == "DENIED"
    assert "username and password" in failure.value.message
    assert password not in failure.value.message


async def test_wrong_answer_gets_a_new_challenge(adapter: MxAdapter) -> None:
    first = await settle(adapter, await login(adapter, "user_mfa"))
    second = await answer(adapter, first, "Chicago")
    assert second.outcome is Outcome.CHALLENGED
    assert second.challenges[0].prompt == first.challenges[0].prompt
    assert second.challenges[0].id != first.challenges[0].id

    # The old challenge is gone: answering it is a refused request, not a silent success.
    stale = ChallengeAnswer(challenge_id=first.challenges[0].id, value="correct")
    with pytest.raises(ProviderRejectedRequest) as refused:
        await adapter.answer(second.session, second.challenges, [stale], idempotency_key=new_key())
    assert refused.value.status_code == 400

    assert (await answer(adapter, second, "correct")).outcome is Outcome.LINKED


async def test_three_wrong_answers_fail_mfa(adapter: MxAdapter) -> None:
    state = await settle(adapter, await login(adapter, "user_mfa"))
    state = await answer(adapter, state, "Chicago")
    state = await answer(adapter, state, "Tallahassee")
    with pytest.raises(LinkFailure) as failure:
        await answer(adapter, state, "Springfield")
    assert failure.value.reason is LinkReason.MFA_FAILED
    assert failure.value.raw_status == "REJECTED"


async def test_revoke_removes_the_member_and_is_repeatable(adapter: MxAdapter) -> None:
    linked = await settle(adapter, await login(adapter, "user_good"))
    await adapter.revoke(linked.session)
    with pytest.raises(ProviderRejectedRequest) as gone:
        await adapter.poll(linked.session)
    assert gone.value.status_code == 404
    await adapter.revoke(linked.session)  # Already gone is not an error.


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


async def test_unknown_institution_is_unavailable(adapter: MxAdapter) -> None:
    with pytest.raises(LinkFailure) as failure:
        await adapter.login(
            "link-1",
            link_request("user_good", institution_code="nobank"),
            idempotency_key=new_key(),
        )
    assert failure.value.reason is LinkReason.INSTITUTION_UNAVAILABLE


async def test_missing_api_key_is_a_rejected_request(sandbox_url: str) -> None:
    adapter = MxAdapter(f"{sandbox_url}/mx", "sandbox-client-id", "")
    try:
        with pytest.raises(ProviderRejectedRequest) as refused:
            await adapter.login("link-1", link_request("user_good"), idempotency_key=new_key())
    finally:
        await adapter.aclose()
    assert refused.value.status_code == 401


async def test_user_hold_needs_the_users_action(adapter: MxAdapter) -> None:
    state = await settle(adapter, await login(adapter, "user_hold"))
    assert state.outcome is Outcome.ACTION_REQUIRED
    assert state.reason is LinkReason.PROVIDER_HOLD
    assert state.raw_status == "IMPEDED"
    assert state.message


async def test_user_slow_stays_in_progress_then_links(adapter: MxAdapter) -> None:
    state = await login(adapter, "user_slow")
    polls = 0
    while state.outcome is Outcome.PENDING and polls < 100:
        polls += 1
        await asyncio.sleep(0.1)
        state = await adapter.poll(state.session)
    assert state.outcome is Outcome.LINKED
    assert polls >= 10  # SLOW_JOB_SECONDS is 3 s, seen at 0.1 s intervals


async def test_user_unsupported_is_unsupported_mfa(adapter: MxAdapter) -> None:
    with pytest.raises(LinkFailure) as failure:
        await settle(adapter, await login(adapter, "user_unsupported"))
    assert failure.value.reason is LinkReason.UNSUPPORTED_MFA
