"""What only Teal does, against the Teal sandbox over real HTTP, and its parsing.

The shared test users' stories are asserted for every provider in
`tests/test_provider_contracts.py`; here are Teal's own: the opaque `user_id` linkflow chooses,
its date-then-code one-time-code story, its answer that names no round, its error code, and the
optional `x-teal-authorisation-id`. The unit tests at the end read every status word through
`state_from_account` without HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from linkflow.models import ChallengeAnswer, ChallengeKind, LinkReason, LinkRequest, Provider
from providers.base import (
    LinkFailure,
    Outcome,
    ProviderRejectedRequest,
    ProviderState,
    ProviderUnavailable,
)
from providers.status import StatusMeaning
from providers.teal import TealAdapter, state_from_account
from tests.fixtures.links import link_request as any_link_request
from tests.fixtures.links import new_key, send, settle, start

STATUS_MEANINGS = TealAdapter.STATUSES.meanings
SESSION = {"user_id": "app-user-1", "account_id": "95a0e70b-fe02-4f47-aef9-2efff279df71"}


@pytest.fixture
async def adapter(sandbox_url: str) -> AsyncIterator[TealAdapter]:
    teal = TealAdapter(f"{sandbox_url}/teal", "sandbox-api-key")
    yield teal
    await teal.aclose()


def link_request(username: str) -> LinkRequest:
    return any_link_request(Provider.TEAL, username)


async def login(adapter: TealAdapter, username: str) -> ProviderState:
    state = await start(adapter, username)
    assert (state.outcome, state.raw_status) == (Outcome.PENDING, "PENDING")
    return state


async def answer(adapter: TealAdapter, state: ProviderState, value: str) -> ProviderState:
    sent = await send(adapter, state, value)
    assert (sent.outcome, sent.raw_status) == (Outcome.PENDING, "PENDING")
    assert sent.session == state.session
    return await settle(adapter, sent)


async def test_teals_user_id_is_opaque_and_the_same_on_every_login_of_a_link(
    adapter: TealAdapter,
) -> None:
    request = link_request("user_good")
    first = await adapter.login("link-42", request, idempotency_key=new_key())
    again = await adapter.login("link-42", request, idempotency_key=new_key())
    other = await adapter.login("link-43", request, idempotency_key=new_key())
    user_id = first.session["user_id"]
    assert user_id == again.session["user_id"] != other.session["user_id"]
    assert request.user_ref not in user_id
    uuid.UUID(user_id)


async def test_user_otp_gives_a_date_then_a_code(adapter: TealAdapter) -> None:
    dating = await settle(adapter, await login(adapter, "user_otp"))
    assert dating.outcome is Outcome.CHALLENGED
    [date] = dating.challenges
    assert date.kind is ChallengeKind.TEXT
    assert "date of birth" in date.prompt

    coding = await answer(adapter, dating, "correct")
    assert coding.outcome is Outcome.CHALLENGED
    [code] = coding.challenges
    assert code.kind is ChallengeKind.CODE
    assert "4321" in code.prompt
    assert code.id != date.id

    linked = await answer(adapter, coding, "correct")
    assert linked.outcome is Outcome.LINKED


async def test_an_answer_to_an_earlier_round_is_not_sent(adapter: TealAdapter) -> None:
    first = await settle(adapter, await login(adapter, "user_mfa"))
    second = await answer(adapter, first, "wrong")
    # An answer to the old round is not sent to the new one: the current state comes back.
    stale = ChallengeAnswer(challenge_id=first.challenges[0].id, value="correct")
    current = await adapter.answer(
        second.session, first.challenges, [stale], idempotency_key=new_key()
    )
    assert current.outcome is Outcome.CHALLENGED
    assert current.challenges[0].id == second.challenges[0].id

    assert (await answer(adapter, second, "correct")).outcome is Outcome.LINKED


async def test_retried_answer_is_not_sent_twice(adapter: TealAdapter) -> None:
    challenged = await settle(adapter, await login(adapter, "user_mfa"))
    answers = [ChallengeAnswer(challenge_id=challenged.challenges[0].id, value="correct")]
    key = new_key()
    first = await adapter.answer(
        challenged.session, challenged.challenges, answers, idempotency_key=key
    )
    retried = await adapter.answer(
        challenged.session, challenged.challenges, answers, idempotency_key=key
    )
    assert first.outcome is retried.outcome is Outcome.PENDING
    assert (await settle(adapter, retried)).outcome is Outcome.LINKED


async def test_a_refusal_keeps_teals_code_and_never_its_sentence(sandbox_url: str) -> None:
    adapter = TealAdapter(f"{sandbox_url}/teal", "")
    try:
        with pytest.raises(ProviderRejectedRequest) as refused:
            await adapter.login("link-1", link_request("user_good"), idempotency_key=new_key())
    finally:
        await adapter.aclose()
    # Teal's code is kept; its sentence ("Send your API key ...") is not.
    assert refused.value.error_code == "UNAUTHORISED"
    assert "API key" not in str(refused.value)


async def test_authorisation_id_is_sent_when_configured(sandbox_url: str) -> None:
    good = TealAdapter(f"{sandbox_url}/teal", "sandbox-api-key", authorisation_id=str(uuid.uuid4()))
    bad = TealAdapter(f"{sandbox_url}/teal", "sandbox-api-key", authorisation_id="not-a-uuid")
    try:
        state = await login(good, "user_good")
        assert (await settle(good, state)).outcome is Outcome.LINKED
        # The sandbox validates the header, so a malformed one proves it is sent.
        with pytest.raises(ProviderRejectedRequest) as refused:
            await bad.login("link-1", link_request("user_good"), idempotency_key=new_key())
        assert refused.value.status_code == 400
    finally:
        await good.aclose()
        await bad.aclose()


# ---------------------------------------------------------------- parsing, no HTTP


def account(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": SESSION["account_id"],
        "payroll_provider": "quickbooks",
        "user_name": "john.smith@company.com",
        "created_at": "2019-05-17T00:00:00.000Z",
        "status": status,
        "mfa_enabled": True,
        "latest_pay_date": "2019-05-17T00:00:00.000Z",
    } | extra


MFA = {"id": "mfa-1", "type": "Code", "source": "AUTHENTICATOR_APP"}


def test_the_adapters_tables() -> None:
    assert TealAdapter.STATUSES.field == "status"
    assert all(isinstance(m, StatusMeaning) for m in STATUS_MEANINGS.values())
    assert TealAdapter.CHALLENGE_KINDS == {
        "Code": ChallengeKind.CODE,
        "Date": ChallengeKind.TEXT,
        "PasswordCharacters": ChallengeKind.SECRET,
    }


@pytest.mark.parametrize("word", sorted(STATUS_MEANINGS))
def test_every_status_word_through_the_parser(word: str) -> None:
    meaning = STATUS_MEANINGS[word]
    body = account(word, mfa_method=MFA)
    if meaning.failure is not None:
        with pytest.raises(LinkFailure) as failure:
            state_from_account(body, SESSION)
        assert failure.value.reason is meaning.failure
        assert failure.value.raw_status == word
        return
    if meaning.transient:
        with pytest.raises(ProviderUnavailable):
            state_from_account(body, SESSION)
        return
    state = state_from_account(body, SESSION)
    assert state.outcome is meaning.outcome
    assert state.raw_status == word
    assert state.reason is meaning.reason
    assert state.session == SESSION
    assert bool(state.challenges) is (meaning.outcome is Outcome.CHALLENGED)


@pytest.mark.parametrize(
    ("word", "outcome", "failure", "reason"),
    [
        ("PENDING", Outcome.PENDING, None, None),
        ("MFA_REQUIRED", Outcome.CHALLENGED, None, None),
        ("ACTIVE", Outcome.LINKED, None, None),
        ("ACTION_REQUIRED", Outcome.ACTION_REQUIRED, None, LinkReason.PROVIDER_HOLD),
        ("AUTHORISATION_REQUIRED", Outcome.ACTION_REQUIRED, None, LinkReason.REAUTH_REQUIRED),
        ("EXPIRED", Outcome.ACTION_REQUIRED, None, LinkReason.REAUTH_REQUIRED),
        ("INVALID", None, LinkReason.INVALID_CREDENTIALS, None),
        ("MFA_FAILED", None, LinkReason.MFA_FAILED, None),
        ("ERROR", None, None, None),
    ],
)
def test_status_meanings_table(
    word: str, outcome: Outcome | None, failure: LinkReason | None, reason: LinkReason | None
) -> None:
    assert STATUS_MEANINGS[word] == StatusMeaning(
        outcome, failure, reason, STATUS_MEANINGS[word].message
    )
    assert STATUS_MEANINGS[word].message


def test_unknown_status_is_transient() -> None:
    with pytest.raises(ProviderUnavailable):
        state_from_account(account("SOMETHING_NEW"), SESSION)
    with pytest.raises(ProviderUnavailable):
        state_from_account({"account_id": "x"}, SESSION)


@pytest.mark.parametrize(
    ("method", "kind", "prompt"),
    [
        (MFA, ChallengeKind.CODE, "Enter the code from your authenticator app."),
        ({"id": "m", "type": "Code", "source": "SMS"}, ChallengeKind.CODE, "texted"),
        ({"id": "m", "type": "Date", "prompt": "Your date of birth"}, ChallengeKind.TEXT, "birth"),
        ({"id": "m", "type": "PasswordCharacters"}, ChallengeKind.SECRET, "characters"),
    ],
)
def test_mfa_methods(method: dict[str, str], kind: ChallengeKind, prompt: str) -> None:
    state = state_from_account(account("MFA_REQUIRED", mfa_method=method), SESSION)
    [challenge] = state.challenges
    assert challenge.kind is kind
    assert prompt in challenge.prompt
    assert challenge.id == method["id"]


@pytest.mark.parametrize("mfa_type", ["Captcha", "AppApproval", None])
def test_unsupported_mfa_methods(mfa_type: str | None) -> None:
    with pytest.raises(LinkFailure) as failure:
        state_from_account(account("MFA_REQUIRED", mfa_method={"type": mfa_type}), SESSION)
    assert failure.value.reason is LinkReason.UNSUPPORTED_MFA


def test_mfa_required_without_a_method_is_still_pending() -> None:
    state = state_from_account(account("MFA_REQUIRED"), SESSION)
    assert state.outcome is Outcome.PENDING
    assert state.raw_status == "MFA_REQUIRED"


def test_hold_message_comes_from_teal() -> None:
    state = state_from_account(account("ACTION_REQUIRED", status_message="Accept terms."), SESSION)
    assert state.message == "Accept terms."
