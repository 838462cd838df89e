"""What only Teal does, against the Teal sandbox over real HTTP, and its parsing.

The shared test users' stories are asserted for every provider in
`tests/test_provider_contracts.py`; here are Teal's own: the `user_id` Teal makes when linkflow
creates its user, the user's authorisation that every account call is made under (recorded,
named, and resolved again on a later login), an OAuth payroll provider's `authorization_url` as a
`redirect` challenge, its date-then-code one-time-code story, its answer that names no round and
its error code. The unit tests at the end read every status word, and Teal's documented example
account, through `state_from_account` without HTTP.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from linkflow.models import ChallengeAnswer, ChallengeKind, LinkReason, LinkRequest, Provider
from providers.base import (
    LinkFailure,
    Outcome,
    ProviderRejectedRequest,
    ProviderState,
    ProviderUnavailable,
)
from providers.status import StatusMeaning
from providers.teal import AUTHORIZATION_URL, TealAdapter, state_from_account
from sandbox.teal import TealSandbox
from tests.fixtures.links import link_request as any_link_request
from tests.fixtures.links import new_key, send, settle, start

STATUS_MEANINGS = TealAdapter.STATUSES.meanings
SESSION = {
    "user_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "authorisation_id": "7f3b8c2a-1d4e-5f6g-7h8i-9j0k1l2m3n4o",
    "account_id": "95a0e70b-fe02-4f47-aef9-2efff279df71",
}
# "Create an account" (docs.goteal.co/api-reference/accounts/create): its example answer for a
# payroll provider using OAuth2, as the fields and values the page shows.
DOCUMENTED_OAUTH_ACCOUNT: dict[str, Any] = {
    "account_id": "95a0e70b-fe02-4f47-aef9-2efff279df71",
    "payroll_provider": "quickbooks",
    "user_name": "john.smith@company.com",
    "status": "PENDING",
    "created_at": "2019-05-17T00:00:00.000Z",
    "mfa_enabled": True,
    "latest_pay_date": "2019-05-17T00:00:00.000Z",
    "authorization_url": "https://provider/authenticate?redirect_url=https://api.teal.com/auth"
    "&state=state&scope=read",
    "mfa_method": {"type": "Code", "source": "AUTHENTICATOR_APP"},
}


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


async def test_teals_user_id_is_teals_and_holds_nothing_of_the_app_user(
    adapter: TealAdapter, sandbox_url: str
) -> None:
    request = link_request("user_good")
    first = await adapter.login("link-42", request, idempotency_key=new_key())
    other = await adapter.login("link-43", request, idempotency_key=new_key())
    assert set(first.session) == {"user_id", "authorisation_id", "account_id"}
    user_id = first.session["user_id"]
    uuid.UUID(user_id)
    assert user_id != other.session["user_id"]
    async with httpx.AsyncClient(
        base_url=f"{sandbox_url}/teal", headers={"X-API-KEY": "sandbox-api-key"}
    ) as teal:
        user = (await teal.get(f"/users/{user_id}")).json()
        listed = await teal.get("/authorisations", params={"user_id": user_id})
    # Teal made the id; what linkflow told Teal about the user is opaque.
    assert user["user_id"] == user_id
    for told in (user["name"], user["email"]):
        assert request.user_ref not in told
        assert "user_good" not in told
    [authorisation] = listed.json()["authorisations"]
    assert authorisation["id"] == first.session["authorisation_id"]
    assert (authorisation["status"], authorisation["is_valid"]) == ("active", True)
    assert (await settle(adapter, first)).outcome is Outcome.LINKED


async def test_the_end_users_ip_goes_with_their_authorisation(
    adapter: TealAdapter, sandbox_url: str
) -> None:
    end_user_ip = ipaddress.ip_address("203.0.113.9")
    request = link_request("user_good").model_copy(update={"end_user_ip": end_user_ip})
    state = await adapter.login("link-ip", request, idempotency_key=new_key())
    async with httpx.AsyncClient(
        base_url=f"{sandbox_url}/teal", headers={"X-API-KEY": "sandbox-api-key"}
    ) as teal:
        listed = await teal.get("/authorisations", params={"user_id": state.session["user_id"]})
    assert listed.json()["authorisations"][0]["ip_address"] == "203.0.113.9"


async def test_an_oauth_payroll_provider_is_a_redirect_challenge(
    adapter: TealAdapter,
) -> None:
    state = await start(adapter, "user_redirect")
    assert (state.outcome, state.raw_status) == (Outcome.CHALLENGED, "PENDING")
    [redirect] = state.challenges
    assert redirect.kind is ChallengeKind.REDIRECT
    assert not redirect.kind.needs_answer
    assert redirect.url is not None
    assert "/teal/_sandbox/oauth/authorize?" in redirect.url
    assert redirect.options == []
    # Read again while the user has not logged in there: the same challenge.
    again = await adapter.poll(state.session)
    assert [c.id for c in again.challenges] == [redirect.id]
    assert again.challenges[0].url == redirect.url

    async with httpx.AsyncClient() as browser:
        assert (await browser.get(redirect.url)).status_code == 200
    linked = await settle(adapter, await adapter.poll(state.session))
    assert (linked.outcome, linked.raw_status) == (Outcome.LINKED, "ACTIVE")
    assert len(await adapter.fetch_accounts(linked.session)) == 2


@pytest.fixture
async def in_process() -> AsyncIterator[tuple[TealSandbox, TealAdapter]]:
    sandbox = TealSandbox(latency_seconds=0)
    adapter = TealAdapter(
        "http://sandbox/teal",
        "sandbox-api-key",
        authorisation_id=str(uuid.uuid4()),
        transport=httpx.ASGITransport(app=Starlette(routes=[sandbox.mount()])),
    )
    yield sandbox, adapter
    await adapter.aclose()


async def test_every_account_call_names_the_users_own_authorisation(
    in_process: tuple[TealSandbox, TealAdapter],
) -> None:
    """Not a configured one: an authorisation is one user's."""
    sandbox, adapter = in_process
    state = await adapter.login("link-1", link_request("user_mfa"), idempotency_key="login-1")
    challenged = await adapter.poll(state.session)
    await send(adapter, challenged, "correct")
    linked = await adapter.poll(challenged.session)
    assert linked.outcome is Outcome.LINKED
    account = sandbox.accounts[linked.session["account_id"]]
    # The account's creation and the MFA answer, each under the user's own authorisation.
    assert account.authorisation_ids == [linked.session["authorisation_id"]] * 2
    assert list(sandbox.users) == [linked.session["user_id"]]
    assert list(sandbox.authorisations) == [linked.session["authorisation_id"]]


async def test_a_later_login_reuses_the_user_and_resolves_a_valid_authorisation(
    in_process: tuple[TealSandbox, TealAdapter],
) -> None:
    sandbox, adapter = in_process
    request = link_request("user_good")
    first = await adapter.login("link-1", request, idempotency_key="login-1")
    again = await adapter.reauthenticate(
        "link-1", request, first.session, idempotency_key="login-2"
    )
    assert again.session["user_id"] == first.session["user_id"]
    assert again.session["authorisation_id"] == first.session["authorisation_id"]
    assert again.session["account_id"] != first.session["account_id"]
    # The old account is gone; one user, one authorisation.
    assert list(sandbox.accounts) == [again.session["account_id"]]
    assert len(sandbox.users) == len(sandbox.authorisations) == 1

    # The user withdrew that authorisation: the next login records their acceptance again.
    sandbox.authorisations[again.session["authorisation_id"]].status = "revoked"
    third = await adapter.reauthenticate(
        "link-1", request, again.session, idempotency_key="login-3"
    )
    assert third.session["user_id"] == first.session["user_id"]
    assert third.session["authorisation_id"] != again.session["authorisation_id"]
    assert len(sandbox.users) == 1
    assert (await adapter.poll(third.session)).outcome is Outcome.LINKED


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
        "authorization_url": ChallengeKind.REDIRECT,
    }


def test_teals_documented_oauth_account_is_a_redirect_to_its_url() -> None:
    state = state_from_account(DOCUMENTED_OAUTH_ACCOUNT, SESSION)
    assert (state.outcome, state.raw_status) == (Outcome.CHALLENGED, "PENDING")
    [redirect] = state.challenges
    assert redirect.kind is ChallengeKind.REDIRECT
    assert redirect.url == DOCUMENTED_OAUTH_ACCOUNT[AUTHORIZATION_URL]
    assert state.session == SESSION
    # The same URL is the same challenge; a new URL a new one.
    same = state_from_account(dict(DOCUMENTED_OAUTH_ACCOUNT), SESSION)
    assert same.challenges[0].id == redirect.id
    moved = DOCUMENTED_OAUTH_ACCOUNT | {AUTHORIZATION_URL: "https://provider/other"}
    assert state_from_account(moved, SESSION).challenges[0].id != redirect.id


def test_an_authorization_url_beside_a_final_or_linked_word_is_not_asked() -> None:
    url = {AUTHORIZATION_URL: DOCUMENTED_OAUTH_ACCOUNT[AUTHORIZATION_URL]}
    assert state_from_account(account("ACTIVE", **url), SESSION).challenges == []
    with pytest.raises(LinkFailure):
        state_from_account(account("INVALID", **url), SESSION)


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
