"""What only MX does, against the MX sandbox over real HTTP.

The shared test users' stories are asserted for every provider in
`tests/test_provider_contracts.py`; here are MX's own: its guids, its phone choice, its members'
user kept across links, its refusal of a replaced or stale challenge, and the bank's MFA window
closing (the sandbox's `--mx-mfa-window-seconds`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from linkflow.models import ChallengeAnswer, ChallengeKind, LinkReason, LinkRequest, Provider
from providers.base import LinkFailure, Outcome, ProviderRejectedRequest, ProviderState
from providers.mx import MxAdapter
from tests.fixtures.links import link_request as any_link_request
from tests.fixtures.links import new_key, send, settle, start
from tests.fixtures.sandbox import SHORT_MFA_WINDOW_SECONDS

EXPIRED_MESSAGE = MxAdapter.STATUSES.meanings["EXPIRED"].message


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
