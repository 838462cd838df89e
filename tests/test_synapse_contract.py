"""What only Synapse does, against the Synapse sandbox over real HTTP, and its parsing.

The shared test users' stories are asserted for every provider in
`tests/test_provider_contracts.py`; here are Synapse's own: one long bank-login call with no job
to poll, questions one at a time with round-numbered ids that never show the `access_token`,
replayed answers, its documented test logins, and its gateway and user headers. The unit tests at
the end read every status word through `state_from_response` without HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from linkflow.models import ChallengeAnswer, ChallengeKind, LinkReason
from providers.base import (
    LinkFailure,
    Outcome,
    ProviderRejectedRequest,
    ProviderState,
    ProviderUnavailable,
)
from providers.status import StatusMeaning
from providers.synapse import (
    LOGIN_READ_TIMEOUT_SECONDS,
    LOGIN_TIMEOUT,
    SynapseAdapter,
    account_from_node,
    state_from_response,
    state_from_session,
)
from sandbox.users import OTP_PHONES
from tests.fixtures.links import new_key, send, start

STATUS_MEANINGS = SynapseAdapter.STATUSES.meanings
SESSION = {
    "user_id": "594e0fa2838454002ea317a0",
    "oauth_key": "oauth_auVIbQ8WXC0pnLU9ivEs4tcHDejqFJlwoNrZ3fO1",
    "fingerprint": "e83cf6ddcf778e37bfe3d48fc78a6502062fc",
}


def new_adapter(sandbox_url: str, **keys: str) -> SynapseAdapter:
    return SynapseAdapter(
        f"{sandbox_url}/synapse",
        keys.get("client_id", "sandbox-client-id"),
        keys.get("client_secret", "sandbox-client-secret"),
        fingerprint=keys.get("fingerprint", "test-fingerprint"),
    )


@pytest.fixture
async def adapter(sandbox_url: str) -> AsyncIterator[SynapseAdapter]:
    synapse = new_adapter(sandbox_url)
    yield synapse
    await synapse.aclose()


async def login(
    adapter: SynapseAdapter, username: str, password: str = "pass_good"
) -> ProviderState:
    return await start(adapter, username, password)


async def answer(adapter: SynapseAdapter, state: ProviderState, value: str) -> ProviderState:
    return await send(adapter, state, value)


def test_login_calls_allow_a_little_over_300_seconds() -> None:
    assert LOGIN_READ_TIMEOUT_SECONDS == 330
    assert LOGIN_TIMEOUT.read == 330


async def test_user_otp_chooses_a_phone_then_enters_the_code(adapter: SynapseAdapter) -> None:
    phone = await login(adapter, "user_otp")
    assert phone.outcome is Outcome.CHALLENGED
    [which] = phone.challenges
    assert which.kind is ChallengeKind.TEXT
    assert all(p.label in which.prompt for p in OTP_PHONES)

    coding = await answer(adapter, phone, OTP_PHONES[1].label)
    assert coding.outcome is Outcome.CHALLENGED
    [code] = coding.challenges
    assert code.kind is ChallengeKind.TEXT
    assert OTP_PHONES[1].label in code.prompt
    assert code.id != which.id

    linked = await answer(adapter, coding, "correct")
    assert linked.outcome is Outcome.LINKED


async def test_a_documented_test_login_with_a_wrong_password_is_invalid_credentials(
    adapter: SynapseAdapter,
) -> None:
    with pytest.raises(LinkFailure) as failure:
        await login(adapter, "synapse_good", "wrong")
    assert (failure.value.reason, failure.value.raw_status) == (
        LinkReason.INVALID_CREDENTIALS,
        "110",
    )


async def test_a_challenge_id_never_shows_synapses_access_token(adapter: SynapseAdapter) -> None:
    state = await login(adapter, "user_mfa")
    while state.outcome is Outcome.CHALLENGED:
        [challenge] = state.challenges
        assert state.session["access_token"] not in challenge.id
        state = await answer(adapter, state, "correct")
    assert state.outcome is Outcome.LINKED
    assert "access_token" not in state.session


async def test_an_answer_to_an_earlier_round_is_not_sent(adapter: SynapseAdapter) -> None:
    first = await login(adapter, "user_mfa")
    second = await answer(adapter, first, "wrong")
    # An answer to the old round is not sent: the current state comes back unchanged.
    stale = ChallengeAnswer(challenge_id=first.challenges[0].id, value="correct")
    current = await adapter.answer(
        second.session, first.challenges, [stale], idempotency_key=new_key()
    )
    assert current.challenges[0].id == second.challenges[0].id
    assert current.session == second.session

    third = await answer(adapter, second, "correct")
    assert third.outcome is Outcome.CHALLENGED
    assert third.challenges[0].prompt != first.challenges[0].prompt


async def test_retried_answer_is_not_sent_twice(adapter: SynapseAdapter) -> None:
    challenged = await login(adapter, "user_mfa")
    answers = [ChallengeAnswer(challenge_id=challenged.challenges[0].id, value="correct")]
    key = new_key()
    first = await adapter.answer(
        challenged.session, challenged.challenges, answers, idempotency_key=key
    )
    retried = await adapter.answer(
        challenged.session, challenged.challenges, answers, idempotency_key=key
    )
    # Synapse replays its first answer: the retry does not answer the second question.
    assert first == retried
    assert first.challenges[0].prompt != challenged.challenges[0].prompt


async def test_documented_test_logins(adapter: SynapseAdapter) -> None:
    assert (await login(adapter, "synapse_nomfa", "test1234")).outcome is Outcome.LINKED
    asked = await login(adapter, "synapse_good", "test1234")
    assert asked.challenges[0].prompt == (
        "I heard you don't like questions so can I ask you a question anyway?"
    )
    assert (await answer(adapter, asked, "test_answer")).outcome is Outcome.LINKED


@pytest.mark.parametrize(
    "keys",
    [{"client_id": ""}, {"fingerprint": ""}],
    ids=["no-client-id", "no-fingerprint"],
)
async def test_wrong_keys_are_a_rejected_request(sandbox_url: str, keys: dict[str, str]) -> None:
    adapter = new_adapter(sandbox_url, **keys)
    try:
        with pytest.raises(ProviderRejectedRequest) as refused:
            await login(adapter, "user_good")
    finally:
        await adapter.aclose()
    assert refused.value.status_code in (400, 401)


async def test_an_unknown_oauth_key_is_a_rejected_request(adapter: SynapseAdapter) -> None:
    linked = await login(adapter, "user_good")
    with pytest.raises(ProviderRejectedRequest) as refused:
        await adapter.fetch_accounts(linked.session | {"oauth_key": "oauth_nope"})
    assert refused.value.status_code == 401
    # Synapse's code is kept; its sentence ("Error in oauth_key. ...") is not.
    assert refused.value.error_code == "110"
    assert "(error code 110)" in str(refused.value)
    assert "oauth_key" not in str(refused.value)


async def test_server_errors_are_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503,
            json={"error": {"en": "down"}, "error_code": "503", "http_code": "503"},
        )

    adapter = SynapseAdapter(
        "http://synapse.test",
        "id",
        "secret",
        fingerprint="fp",
        transport=httpx.MockTransport(handler),
    )
    try:
        with pytest.raises(ProviderUnavailable):
            await login(adapter, "user_good")
    finally:
        await adapter.aclose()


# ---------------------------------------------------------------- parsing, no HTTP

MFA = {"access_token": "fake_4d485d122c7b1ac5adcb661773599e", "message": "Q?", "type": "question"}
HTTP_FOR = {"0": 200, "10": 202, "110": 400, "400": 409, "410": 400}


def response(code: str, **extra: Any) -> dict[str, Any]:
    success = code in ("0", "10")
    body: dict[str, Any] = {"error_code": code, "http_code": str(HTTP_FOR.get(code, 500))}
    if not success:
        body["error"] = {"en": f"Synapse says {code}."}
    return body | {"success": success} | extra


def test_the_adapters_tables() -> None:
    assert SynapseAdapter.STATUSES.field == "error_code"
    assert all(isinstance(m, StatusMeaning) for m in STATUS_MEANINGS.values())
    assert SynapseAdapter.CHALLENGE_KINDS == {"question": ChallengeKind.TEXT}


@pytest.mark.parametrize("word", sorted(STATUS_MEANINGS))
def test_every_status_word_through_the_parser(word: str) -> None:
    meaning = STATUS_MEANINGS[word]
    body = response(word, mfa=MFA) if word == "10" else response(word)
    status = HTTP_FOR.get(word, int(word) if word.isdigit() and int(word) >= 400 else 200)
    if meaning.failure is not None:
        with pytest.raises(LinkFailure) as failure:
            state_from_response(status, body, SESSION)
        assert failure.value.reason is meaning.failure
        assert failure.value.raw_status == word
        return
    if meaning.transient:
        with pytest.raises(ProviderUnavailable):
            state_from_response(status, body, SESSION)
        return
    state = state_from_response(status, body, SESSION)
    assert state.outcome is meaning.outcome
    assert state.raw_status == word
    assert state.reason is meaning.reason
    assert {k: state.session[k] for k in SESSION} == SESSION
    assert bool(state.challenges) is (meaning.outcome is Outcome.CHALLENGED)
    # poll() reads the same state back from the session.
    assert state_from_session(state.session) == state


@pytest.mark.parametrize(
    ("word", "outcome", "failure", "reason"),
    [
        ("0", Outcome.LINKED, None, None),
        ("10", Outcome.CHALLENGED, None, None),
        ("110", None, LinkReason.INVALID_CREDENTIALS, None),
        ("400", None, LinkReason.MFA_FAILED, None),
        ("410", Outcome.ACTION_REQUIRED, None, LinkReason.PROVIDER_HOLD),
        ("429", None, None, None),
        ("500", None, None, None),
        ("503", None, None, None),
    ],
)
def test_status_meanings_table(
    word: str, outcome: Outcome | None, failure: LinkReason | None, reason: LinkReason | None
) -> None:
    assert STATUS_MEANINGS[word] == StatusMeaning(
        outcome, failure, reason, STATUS_MEANINGS[word].message
    )
    assert STATUS_MEANINGS[word].message


def test_the_seed_mfa_response() -> None:
    state = state_from_response(202, response("10", mfa=MFA), SESSION)
    [challenge] = state.challenges
    assert challenge.prompt == "Q?"
    assert state.session["access_token"] == MFA["access_token"]
    assert state.session["round"] == "1"
    # The next round's challenge has a new id even with the same access_token.
    again = state_from_response(202, response("10", mfa=MFA), state.session)
    assert again.session["round"] == "2"
    assert again.challenges[0].id != challenge.id


def test_hold_message_comes_from_synapse() -> None:
    state = state_from_response(400, response("410"), SESSION)
    assert state.message == "Synapse says 410."


@pytest.mark.parametrize("code", ["100", "120", "200", "300", "404", "450", "460", None])
def test_request_errors_are_rejected_requests(code: str | None) -> None:
    body = response(code) if code else {"error": {"en": "?"}}
    with pytest.raises(ProviderRejectedRequest):
        state_from_response(400, body, SESSION)


def test_a_refusal_names_synapses_code_and_never_its_text() -> None:
    body = {"error": {"en": "Bank login for jane.doe failed"}, "error_code": "200"}
    with pytest.raises(ProviderRejectedRequest) as refused:
        state_from_response(400, body, SESSION)
    assert str(refused.value) == "Synapse refused the request (HTTP 400, error_code 200)."
    assert refused.value.error_code == "200"


def test_unknown_code_is_transient() -> None:
    with pytest.raises(ProviderUnavailable):
        state_from_response(200, response("77"), SESSION)
    with pytest.raises(ProviderUnavailable):
        state_from_response(202, response("10"), SESSION)  # MFA without its object


@pytest.mark.parametrize("mfa_type", ["captcha", "device", None])
def test_unsupported_mfa_types(mfa_type: str | None) -> None:
    with pytest.raises(LinkFailure) as failure:
        state_from_response(202, response("10", mfa=MFA | {"type": mfa_type}), SESSION)
    assert failure.value.reason is LinkReason.UNSUPPORTED_MFA


def test_account_from_the_seed_node_keeps_four_digits() -> None:
    node = {
        "_id": "594e606112e17a002f2e324e",
        "type": "ACH-US",
        "info": {
            "account_num": "1234567890",
            "balance": {"amount": "800.00", "currency": "USD"},
            "class": "CHECKING",
            "nickname": "SynapsePay Test Checking Account - 8901",
        },
    }
    account = account_from_node(node)
    assert (account.id, account.mask, account.kind) == (node["_id"], "7890", "CHECKING")
    assert account_from_node({"_id": "x"}).name == "Bank account"
