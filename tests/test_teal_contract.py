"""TealAdapter against the Teal sandbox over real HTTP, for every test user.

The sandbox runs as its own process (`tests/fixtures/sandbox.py`); these tests go through the
adapter's own HTTP client, so they also prove it sends `X-API-KEY` (and the optional
`x-teal-authorisation-id`). The unit tests at the end read every status word through
`state_from_account` without HTTP.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from linkflow.config import ProviderSettings
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
    ProviderUnavailable,
)
from providers.mapping import StatusMeaning
from providers.teal import (
    CHALLENGE_KINDS,
    STATUS_FIELD,
    STATUS_MEANINGS,
    TealAdapter,
    create_adapter,
    state_from_account,
)

SESSION = {"user_id": "app-user-1", "account_id": "95a0e70b-fe02-4f47-aef9-2efff279df71"}


@pytest.fixture
async def adapter(sandbox_url: str) -> AsyncIterator[TealAdapter]:
    teal = TealAdapter(f"{sandbox_url}/teal", "sandbox-api-key")
    yield teal
    await teal.aclose()


def link_request(
    username: str, password: str = "pass_good", *, payroll_provider: str | None = None
) -> LinkRequest:
    return LinkRequest(
        provider=Provider.TEAL,
        user_ref=f"app-user-{uuid.uuid4()}",
        credentials=Credentials(username=username, password=password),
        options=LinkOptions(institution_code=payroll_provider),
    )


def new_key() -> str:
    return str(uuid.uuid4())


async def login(adapter: TealAdapter, username: str, password: str = "pass_good") -> ProviderState:
    state = await adapter.login(
        f"link-{uuid.uuid4()}", link_request(username, password), idempotency_key=new_key()
    )
    assert state.outcome is Outcome.PENDING
    assert state.raw_status == "PENDING"
    return state


async def settle(adapter: TealAdapter, state: ProviderState) -> ProviderState:
    """Poll while Teal is working, for at most about five seconds."""
    for _ in range(250):
        if state.outcome is not Outcome.PENDING:
            return state
        await asyncio.sleep(0.02)
        state = await adapter.poll(state.session)
    pytest.fail(f"Teal stayed in {state.raw_status}")


async def answer(adapter: TealAdapter, state: ProviderState, value: str) -> ProviderState:
    [challenge] = state.challenges
    sent = await adapter.answer(
        state.session,
        state.challenges,
        [ChallengeAnswer(challenge_id=challenge.id, value=value)],
        idempotency_key=new_key(),
    )
    assert sent.outcome is Outcome.PENDING
    assert sent.raw_status == "PENDING"
    assert sent.session == state.session
    return await settle(adapter, sent)


def test_teal_adapter_is_a_provider_adapter() -> None:
    adapter: ProviderAdapter = TealAdapter("http://teal.invalid", "key")
    assert adapter.provider is Provider.TEAL


async def test_user_good_links_with_its_employments(adapter: TealAdapter) -> None:
    state = await login(adapter, "user_good")
    assert set(state.session) == {"user_id", "account_id"}
    uuid.UUID(state.session["account_id"])

    linked = await settle(adapter, state)
    assert linked.outcome is Outcome.LINKED
    assert linked.raw_status == "ACTIVE"
    assert linked.challenges == []

    accounts = await adapter.fetch_accounts(linked.session)
    assert [(a.name, a.kind, a.mask, a.balance) for a in accounts] == [
        ("Acme Ltd payroll (latest pay date 2023-05-27)", "PAYROLL", None, None),
        ("Globex Ltd payroll (latest pay date 2023-05-15)", "PAYROLL", None, None),
    ]
    assert len({a.id for a in accounts}) == 2
    assert [a.id for a in await adapter.fetch_accounts(linked.session)] == [a.id for a in accounts]


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


async def test_user_mfa_answers_password_characters(adapter: TealAdapter) -> None:
    challenged = await settle(adapter, await login(adapter, "user_mfa"))
    assert challenged.outcome is Outcome.CHALLENGED
    assert challenged.raw_status == "MFA_REQUIRED"
    [challenge] = challenged.challenges
    assert challenge.kind is ChallengeKind.SECRET
    assert challenge.prompt == "Enter characters 2, 4 and 7 of your password"
    assert challenge.options == []

    # Read again within the round: the same challenge id.
    again = await adapter.poll(challenged.session)
    assert again.challenges[0].id == challenge.id

    linked = await answer(adapter, challenged, "correct")
    assert linked.outcome is Outcome.LINKED
    assert len(await adapter.fetch_accounts(linked.session)) == 2


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


@pytest.mark.parametrize(
    ("username", "password"),
    [("user_bad", "pass_good"), ("user_good", "not-the-password"), ("nobody", "pass_good")],
    ids=["user_bad", "wrong-password", "unknown-user"],
)
async def test_bad_credentials_fail_the_link(
    adapter: TealAdapter, username: str, password: str
) -> None:
    state = await login(adapter, username, password)
    with pytest.raises(LinkFailure) as failure:
        await settle(adapter, state)
    assert failure.value.reason is LinkReason.INVALID_CREDENTIALS
    assert failure.value.raw_status == "INVALID"
    assert "username and password" in failure.value.message
    assert password not in failure.value.message


async def test_wrong_answer_gets_a_new_challenge(adapter: TealAdapter) -> None:
    first = await settle(adapter, await login(adapter, "user_mfa"))
    second = await answer(adapter, first, "wrong")
    assert second.outcome is Outcome.CHALLENGED
    assert second.challenges[0].prompt == first.challenges[0].prompt
    assert second.challenges[0].id != first.challenges[0].id

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


async def test_three_wrong_answers_fail_mfa(adapter: TealAdapter) -> None:
    state = await settle(adapter, await login(adapter, "user_mfa"))
    state = await answer(adapter, state, "wrong-1")
    state = await answer(adapter, state, "wrong-2")
    with pytest.raises(LinkFailure) as failure:
        await answer(adapter, state, "wrong-3")
    assert failure.value.reason is LinkReason.MFA_FAILED
    assert failure.value.raw_status == "MFA_FAILED"


async def test_user_hold_needs_the_users_action(adapter: TealAdapter) -> None:
    state = await settle(adapter, await login(adapter, "user_hold"))
    assert state.outcome is Outcome.ACTION_REQUIRED
    assert state.reason is LinkReason.PROVIDER_HOLD
    assert state.raw_status == "ACTION_REQUIRED"
    assert state.message
    assert "terms" in state.message


async def test_user_slow_stays_in_progress_then_links(adapter: TealAdapter) -> None:
    state = await login(adapter, "user_slow")
    polls = 0
    while state.outcome is Outcome.PENDING and polls < 100:
        polls += 1
        await asyncio.sleep(0.1)
        state = await adapter.poll(state.session)
    assert state.outcome is Outcome.LINKED
    assert polls >= 10  # SLOW_JOB_SECONDS is 3 s, seen at 0.1 s intervals


async def test_user_unsupported_is_unsupported_mfa(adapter: TealAdapter) -> None:
    with pytest.raises(LinkFailure) as failure:
        await settle(adapter, await login(adapter, "user_unsupported"))
    assert failure.value.reason is LinkReason.UNSUPPORTED_MFA
    assert failure.value.raw_status == "MFA_REQUIRED"


async def test_revoke_deletes_the_account_and_is_repeatable(adapter: TealAdapter) -> None:
    linked = await settle(adapter, await login(adapter, "user_good"))
    await adapter.revoke(linked.session)
    with pytest.raises(ProviderRejectedRequest) as gone:
        await adapter.poll(linked.session)
    assert gone.value.status_code == 404
    await adapter.revoke(linked.session)  # Already gone is not an error.


async def test_missing_api_key_is_a_rejected_request(sandbox_url: str) -> None:
    adapter = TealAdapter(f"{sandbox_url}/teal", "")
    try:
        with pytest.raises(ProviderRejectedRequest) as refused:
            await adapter.login("link-1", link_request("user_good"), idempotency_key=new_key())
    finally:
        await adapter.aclose()
    assert refused.value.status_code == 401
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


async def test_create_adapter_defaults_to_the_sandbox(sandbox_url: str) -> None:
    adapter = create_adapter(ProviderSettings(sandbox_url=sandbox_url))
    try:
        state = await login(adapter, "user_good")
        assert (await settle(adapter, state)).outcome is Outcome.LINKED
    finally:
        await adapter.aclose()


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


def test_mapping_module_shape() -> None:
    assert STATUS_FIELD == "status"
    assert all(isinstance(m, StatusMeaning) for m in STATUS_MEANINGS.values())
    assert CHALLENGE_KINDS == {
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
