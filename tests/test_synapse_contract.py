"""What only Synapse does, against the Synapse sandbox over real HTTP, and its parsing.

The shared test users' stories are asserted for every provider in
`tests/test_provider_contracts.py`; here are Synapse's own: one long bank-login call with no job
to poll, questions one at a time with round-numbered ids that never show the `access_token`,
replayed answers, its documented test logins, its gateway and user headers, and a link's later
life: the oauth key that expires and is renewed (months later too), the refresh that asks
Synapse to refresh each node, a re-login as the same Synapse user, the fingerprint hold. The
unit tests at the end read every status word, and Synapse's documented examples, without HTTP.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
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
from providers.status import Handling, StatusMeaning
from providers.synapse import (
    DEVICE_MESSAGE,
    DEVICE_NOT_REGISTERED,
    LOGIN_READ_TIMEOUT_SECONDS,
    LOGIN_TIMEOUT,
    REQUEST_ERROR_CODES,
    SynapseAdapter,
    account_from_node,
    state_from_response,
    state_from_session,
)
from sandbox.synapse import SANDBOX_VALIDATION_PIN, SynapseSandbox
from sandbox.users import OTP_PHONES
from tests.fixtures.documents import read_document
from tests.fixtures.links import link_request, new_key, send, start
from tests.fixtures.sandbox import SANDBOX_LATENCY_SECONDS, FakeClock, sandbox_process

STATUS_MEANINGS = SynapseAdapter.STATUSES.meanings
SESSION = {
    "user_id": "594e0fa2838454002ea317a0",
    "oauth_key": "oauth_auVIbQ8WXC0pnLU9ivEs4tcHDejqFJlwoNrZ3fO1",
    "fingerprint": "e83cf6ddcf778e37bfe3d48fc78a6502062fc",
}
GATEWAY = {"X-SP-GATEWAY": "sandbox-client-id|sandbox-client-secret", "X-SP-USER-IP": "127.0.0.1"}
# How long the expiry tests' sandbox keeps an oauth key, and how early their adapter renews one.
SHORT_OAUTH_LIFETIME_SECONDS = 1.5
SHORT_RENEW_MARGIN_SECONDS = 0.3
MONTH_SECONDS = 30 * 24 * 3600.0


def new_adapter(sandbox_url: str, **keys: Any) -> SynapseAdapter:
    return SynapseAdapter(
        f"{sandbox_url}/synapse",
        keys.pop("client_id", "sandbox-client-id"),
        keys.pop("client_secret", "sandbox-client-secret"),
        fingerprint=keys.pop("fingerprint", "test-fingerprint"),
        **keys,
    )


@pytest.fixture
async def adapter(sandbox_url: str) -> AsyncIterator[SynapseAdapter]:
    synapse = new_adapter(sandbox_url)
    yield synapse
    await synapse.aclose()


@pytest.fixture(scope="module")
def short_oauth_sandbox_url() -> Iterator[str]:
    """A sandbox whose Synapse oauth keys last a second and a half."""
    with sandbox_process(
        "--latency-seconds",
        str(SANDBOX_LATENCY_SECONDS),
        "--synapse-oauth-lifetime-seconds",
        str(SHORT_OAUTH_LIFETIME_SECONDS),
    ) as url:
        yield url


@pytest.fixture
async def short_lived(short_oauth_sandbox_url: str) -> AsyncIterator[SynapseAdapter]:
    synapse = new_adapter(short_oauth_sandbox_url, renew_margin_seconds=SHORT_RENEW_MARGIN_SECONDS)
    yield synapse
    await synapse.aclose()


async def login(
    adapter: SynapseAdapter, username: str, password: str = "pass_good"
) -> ProviderState:
    return await start(adapter, username, password)


async def answer(adapter: SynapseAdapter, state: ProviderState, value: str) -> ProviderState:
    return await send(adapter, state, value)


async def requests_seen(sandbox_url: str) -> list[str]:
    async with httpx.AsyncClient(base_url=sandbox_url) as control:
        log = (await control.get("/_sandbox/requests")).json()
    lines: list[str] = log["requests"] if isinstance(log, dict) else log
    return lines


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
    # Synapse: "Mostly always for bad user credentials" is HTTP 400, error_code 200.
    assert (failure.value.reason, failure.value.raw_status) == (
        LinkReason.INVALID_CREDENTIALS,
        "400:200",
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
    # "again (to get multiple MFAs) or else test_answer".
    again = await answer(adapter, asked, "again")
    assert again.outcome is Outcome.CHALLENGED
    assert again.challenges[0].id != asked.challenges[0].id
    assert (await answer(adapter, again, "test_answer")).outcome is Outcome.LINKED
    coded = await login(adapter, "synapse_code_mfa", "test1234")
    assert (await answer(adapter, coded, "123456")).outcome is Outcome.LINKED


@pytest.mark.parametrize(
    ("username", "handling", "word", "reason"),
    [
        ("synapse_no_accounts", Handling.TERMINAL, "402:460", LinkReason.INSTITUTION_UNAVAILABLE),
        ("synapse_bank_request", Handling.NEEDS_USER, "402:500", LinkReason.PROVIDER_HOLD),
        ("synapse_maintenance", Handling.TRANSIENT, None, None),
    ],
)
async def test_documented_failing_test_logins(
    adapter: SynapseAdapter,
    username: str,
    handling: Handling,
    word: str | None,
    reason: LinkReason | None,
) -> None:
    if handling is Handling.TRANSIENT:
        with pytest.raises(ProviderUnavailable):
            await login(adapter, username, "test1234")
    elif handling is Handling.TERMINAL:
        with pytest.raises(LinkFailure) as failure:
            await login(adapter, username, "test1234")
        assert (failure.value.reason, failure.value.raw_status) == (reason, word)
    else:
        held = await login(adapter, username, "test1234")
        assert (held.outcome, held.raw_status, held.reason) == (
            Outcome.ACTION_REQUIRED,
            word,
            reason,
        )


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


async def test_a_refused_oauth_key_is_renewed_not_reported(adapter: SynapseAdapter) -> None:
    linked = await login(adapter, "user_good")
    # SynapsePy and SynapseGo renew the key when Synapse answers error_code 110; so does linkflow.
    accounts = await adapter.fetch_accounts(linked.session | {"oauth_key": "oauth_nope"})
    assert len(accounts) == 2


async def test_a_stale_refresh_token_is_read_again_from_the_user(adapter: SynapseAdapter) -> None:
    linked = await login(adapter, "user_good")
    stale = linked.session | {"oauth_key": "oauth_nope", "refresh_token": "refresh_stale"}
    refreshed = await adapter.refresh(stale, idempotency_key=new_key())
    assert (refreshed.outcome, refreshed.raw_status) == (Outcome.LINKED, "200:0")
    assert refreshed.session["refresh_token"] not in ("refresh_stale", "")
    assert refreshed.session["oauth_key"] != "oauth_nope"


async def test_an_unknown_user_is_a_rejected_request(adapter: SynapseAdapter) -> None:
    with pytest.raises(ProviderRejectedRequest) as refused:
        await adapter.fetch_accounts(SESSION | {"user_id": "f" * 24})
    assert (refused.value.status_code, refused.value.error_code) == (404, "404")
    assert "not found" not in str(refused.value)


# ---------------------------------------------------------------- the oauth key's lifetime


async def test_the_key_expires_in_the_sandbox_and_a_refresh_still_works(
    short_lived: SynapseAdapter, short_oauth_sandbox_url: str
) -> None:
    linked = await login(short_lived, "user_good")
    expires_at = float(linked.session["oauth_expires_at"])
    assert 0 < expires_at - time.time() <= SHORT_OAUTH_LIFETIME_SECONDS + 1
    await asyncio.sleep(SHORT_OAUTH_LIFETIME_SECONDS + 0.3)

    # The sandbox refuses the lapsed key as Synapse does: HTTP 401, error_code 110.
    async with httpx.AsyncClient(base_url=f"{short_oauth_sandbox_url}/synapse") as raw:
        lapsed = await raw.get(
            f"/v3.1/users/{linked.session['user_id']}/nodes",
            headers=GATEWAY | {"X-SP-USER": f"{linked.session['oauth_key']}|test-fingerprint"},
        )
    assert (lapsed.status_code, lapsed.json()["error_code"]) == (401, "110")

    refreshed = await short_lived.refresh(linked.session, idempotency_key=new_key())
    assert (refreshed.outcome, refreshed.raw_status) == (Outcome.LINKED, "200:0")
    assert refreshed.session["oauth_key"] != linked.session["oauth_key"]
    assert float(refreshed.session["oauth_expires_at"]) > expires_at
    assert len(await short_lived.fetch_accounts(refreshed.session)) == 2


async def test_a_key_refused_before_its_stated_expiry_is_renewed_and_the_call_retried(
    short_lived: SynapseAdapter,
) -> None:
    linked = await login(short_lived, "user_good")
    await asyncio.sleep(SHORT_OAUTH_LIFETIME_SECONDS + 0.3)
    # The session believes its key lives for another hour: only Synapse's 110 says otherwise.
    believed = linked.session | {"oauth_expires_at": str(int(time.time()) + 3600)}
    refreshed = await short_lived.refresh(believed, idempotency_key=new_key())
    assert refreshed.outcome is Outcome.LINKED
    assert refreshed.session["oauth_key"] != linked.session["oauth_key"]


async def test_a_link_from_before_expiries_were_kept_refreshes_too(
    short_lived: SynapseAdapter,
) -> None:
    linked = await login(short_lived, "user_good")
    await asyncio.sleep(SHORT_OAUTH_LIFETIME_SECONDS + 0.3)
    # What a session held before: no refresh token, no expiry, the lone error_code word.
    old = {k: linked.session[k] for k in ("user_id", "oauth_key", "fingerprint")}
    refreshed = await short_lived.refresh(old | {"raw_status": "0"}, idempotency_key=new_key())
    assert (refreshed.outcome, refreshed.raw_status) == (Outcome.LINKED, "200:0")
    assert {"refresh_token", "oauth_expires_at"} <= set(refreshed.session)


async def test_refreshes_month_after_month_outlive_every_key_and_refresh_token() -> None:
    clock = FakeClock()
    sandbox = SynapseSandbox(latency_seconds=0, clock=clock, sleep=_no_wait)
    adapter = SynapseAdapter(
        "http://sandbox/synapse",
        "sandbox-client-id",
        "sandbox-client-secret",
        fingerprint="test-fingerprint",
        clock=clock,
        transport=httpx.ASGITransport(app=Starlette(routes=[sandbox.mount()])),
    )
    try:
        state = await login(adapter, "user_good")
        node_ids = [a.id for a in await adapter.fetch_accounts(state.session)]
        tokens = {state.session["refresh_token"]}
        # Past ten uses Synapse hands out a new refresh token, and in the thirteenth month the
        # session loses it: the user's current one is read again.
        for month in range(1, 15):
            clock.now += MONTH_SECONDS
            session = state.session
            if month == 13:
                session = session | {"refresh_token": "refresh_lost"}
            state = await adapter.refresh(session, idempotency_key=new_key())
            assert (state.outcome, state.raw_status) == (Outcome.LINKED, "200:0"), month
            tokens.add(state.session["refresh_token"])
        assert len(tokens) >= 2
        assert [a.id for a in await adapter.fetch_accounts(state.session)] == node_ids
    finally:
        await adapter.aclose()


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


# ---------------------------------------------------------------- refresh, re-login, devices


async def test_a_refresh_asks_synapse_to_refresh_every_node(
    adapter: SynapseAdapter, sandbox_url: str
) -> None:
    linked = await login(adapter, "user_good")
    user_id = linked.session["user_id"]
    nodes = [a.id for a in await adapter.fetch_accounts(linked.session)]
    refreshed = await adapter.refresh(linked.session, idempotency_key=new_key())
    assert refreshed.outcome is Outcome.LINKED
    asked = [
        line
        for line in await requests_seen(sandbox_url)
        if "force_refresh=yes" in line and user_id in line
    ]
    assert sorted(asked) == sorted(
        f"GET /synapse/v3.1/users/{user_id}/nodes/{node}?force_refresh=yes" for node in nodes
    )


async def test_a_refresh_brings_the_banks_new_balances(adapter: SynapseAdapter) -> None:
    linked = await login(adapter, "user_good", "pass_good_sync_balance_lower")
    refreshed = await adapter.refresh(linked.session, idempotency_key=new_key())
    balances = [Decimal(a.balance or "0") for a in await adapter.fetch_accounts(refreshed.session)]
    assert all(Decimal(10) <= balance <= Decimal(50) for balance in balances), balances


@pytest.mark.parametrize(
    ("ending", "word", "reason"),
    [
        ("_sync_not_allowed", "400:410", LinkReason.INSTITUTION_UNAVAILABLE),
        ("_needs_relink", "401:110", LinkReason.INVALID_CREDENTIALS),
    ],
)
async def test_a_refresh_synapse_refuses_for_good_says_why(
    adapter: SynapseAdapter, ending: str, word: str, reason: LinkReason
) -> None:
    linked = await login(adapter, "user_good", f"pass_good{ending}")
    with pytest.raises(LinkFailure) as failure:
        await adapter.refresh(linked.session, idempotency_key=new_key())
    assert (failure.value.reason, failure.value.raw_status) == (reason, word)


@pytest.mark.parametrize("ending", ["_sync_unknown_error", "_sync_unavailable"])
async def test_a_refresh_synapse_cannot_do_now_is_passing_trouble(
    adapter: SynapseAdapter, ending: str
) -> None:
    linked = await login(adapter, "user_good", f"pass_good{ending}")
    with pytest.raises(ProviderUnavailable):
        await adapter.refresh(linked.session, idempotency_key=new_key())


async def test_reauthentication_logs_in_again_as_the_same_synapse_user(
    adapter: SynapseAdapter, sandbox_url: str
) -> None:
    link_id = f"link-{uuid.uuid4()}"
    stale = link_request(Provider.SYNAPSE, "user_good", "pass_good_needs_relink")
    linked = await adapter.login(link_id, stale, idempotency_key=new_key())
    nodes = [a.id for a in await adapter.fetch_accounts(linked.session)]
    with pytest.raises(LinkFailure):
        await adapter.refresh(linked.session, idempotency_key=new_key())

    users_before = (await requests_seen(sandbox_url)).count("POST /synapse/v3.1/users")
    fresh = link_request(Provider.SYNAPSE, "user_good")
    again = await adapter.reauthenticate(link_id, fresh, linked.session, idempotency_key=new_key())
    assert (again.outcome, again.raw_status) == (Outcome.LINKED, "200:0")
    assert again.session["user_id"] == linked.session["user_id"]
    assert (await requests_seen(sandbox_url)).count("POST /synapse/v3.1/users") == users_before
    assert [a.id for a in await adapter.fetch_accounts(again.session)] == nodes
    refreshed = await adapter.refresh(again.session, idempotency_key=new_key())
    assert refreshed.outcome is Outcome.LINKED


async def test_an_unregistered_device_is_a_hold_with_its_reason_then_resolves(
    adapter: SynapseAdapter, sandbox_url: str
) -> None:
    linked = await login(adapter, "user_good")
    moved = linked.session | {"fingerprint": "another-device", "oauth_key": ""}
    held = await adapter.refresh(moved, idempotency_key=new_key())
    assert (held.outcome, held.reason, held.raw_status) == (
        Outcome.ACTION_REQUIRED,
        LinkReason.PROVIDER_HOLD,
        DEVICE_NOT_REGISTERED,
    )
    assert held.message == DEVICE_MESSAGE
    assert (await adapter.poll(held.session)).raw_status == DEVICE_NOT_REGISTERED

    # The operator walks Synapse's PIN flow for the device ("Register New Fingerprint").
    user_id, token = held.session["user_id"], held.session["refresh_token"]
    headers = GATEWAY | {"X-SP-USER": "|another-device"}
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/synapse", headers=headers) as raw:
        path = f"/v3.1/oauth/{user_id}"
        asked = (await raw.post(path, json={"refresh_token": token})).json()
        phone = asked["phone_numbers"][0]
        await raw.post(path, json={"refresh_token": token, "phone_number": phone})
        pin = {"refresh_token": token, "validation_pin": SANDBOX_VALIDATION_PIN}
        assert (await raw.post(path, json=pin)).status_code == 200

    resolved = await adapter.resolve_hold(held.session, idempotency_key=new_key())
    assert (resolved.outcome, resolved.raw_status) == (Outcome.LINKED, "200:0")


async def test_the_end_users_ip_goes_with_every_call_and_the_setting_is_a_fallback() -> None:
    sandbox = SynapseSandbox(latency_seconds=0, sleep=_no_wait)
    adapter = SynapseAdapter(
        "http://sandbox/synapse",
        "sandbox-client-id",
        "sandbox-client-secret",
        fingerprint="test-fingerprint",
        user_ip="192.0.2.1",
        transport=httpx.ASGITransport(app=Starlette(routes=[sandbox.mount()])),
    )
    request = LinkRequest(
        **dict(link_request(Provider.SYNAPSE, "user_mfa")) | {"end_user_ip": "2001:db8::7"}
    )
    anonymous = link_request(Provider.SYNAPSE, "user_good")
    try:
        state = await adapter.login("link-ip", request, idempotency_key=new_key())
        while state.outcome is Outcome.CHALLENGED:
            state = await answer(adapter, state, "correct")
        await adapter.refresh(state.session, idempotency_key=new_key())
        await adapter.fetch_accounts(state.session)
        other = await adapter.login("link-no-ip", anonymous, idempotency_key=new_key())
    finally:
        await adapter.aclose()
    assert state.session["user_ip"] == "2001:db8::7"
    assert "user_ip" not in other.session
    ips = {uid: set(user.ips) for uid, user in sandbox.users.items()}
    assert ips == {
        state.session["user_id"]: {"2001:db8::7"},
        other.session["user_id"]: {"192.0.2.1"},
    }
    assert len(sandbox.users[state.session["user_id"]].ips) >= 7


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
ERRORS_PAGE = read_document("synapse_errors.txt")
AGGREGATION_PAGE = read_document("synapse_account_aggregation_errors.txt")
FINGERPRINT_PAGE = read_document("synapse_register_new_fingerprint.txt")
SEED_PAGE = read_document("synapse_ach_us_mfa.txt")


def response(word: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    """A Synapse answer whose `http_code:error_code` is `word`."""
    http, code = word.split(":")[:2]
    success = code in ("0", "10")
    body: dict[str, Any] = {"error_code": code, "http_code": http}
    if not success:
        body["error"] = {"en": f"Synapse says {code}."}
    return int(http), body | {"success": success} | extra


def table_rows(section: str) -> list[list[str]]:
    """A document's `a | b | c` table rows, without the header."""
    return [[cell.strip() for cell in line.split("|")] for line in section.splitlines()[1:]]


def test_the_adapters_tables() -> None:
    assert SynapseAdapter.STATUSES.field == "http_code:error_code"
    assert all(isinstance(m, StatusMeaning) for m in STATUS_MEANINGS.values())
    assert SynapseAdapter.CHALLENGE_KINDS == {"question": ChallengeKind.TEXT}


@pytest.mark.parametrize("word", sorted(set(STATUS_MEANINGS) - {DEVICE_NOT_REGISTERED}))
def test_every_status_word_through_the_parser(word: str) -> None:
    meaning = STATUS_MEANINGS[word]
    status, body = response(word, mfa=MFA) if word == "202:10" else response(word)
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


def test_every_documented_error_code_has_one_reading() -> None:
    """Each code of Synapse's table is a result in some pair of the status table, a refusal of
    our request, or passing trouble: none is left to chance."""
    codes = [line.split("|")[0].strip() for line in ERRORS_PAGE["error codes"].splitlines()]
    assert codes == [
        *("0", "10", "100", "110", "120", "200", "300", "400", "404", "410"),
        *("429", "450", "460", "500", "503"),
    ]
    in_pairs = {word.split(":")[1] for word in STATUS_MEANINGS}
    assert set(codes) <= in_pairs | REQUEST_ERROR_CODES
    transient = {word.split(":")[1] for word, m in STATUS_MEANINGS.items() if m.transient}
    assert {"429", "500", "503"} <= transient


def test_410_is_action_not_allowed_not_a_hold() -> None:
    assert "410 | Action Not Allowed" in ERRORS_PAGE["error codes"]
    meaning = STATUS_MEANINGS["400:410"]
    assert meaning.handling is Handling.TERMINAL
    assert meaning.failure is LinkReason.INSTITUTION_UNAVAILABLE
    assert not any(word.endswith(":410") for word, m in STATUS_MEANINGS.items() if m.reason)


@pytest.mark.parametrize(
    ("section", "handlings"),
    [
        (
            "authentication errors",
            [Handling.TERMINAL, Handling.TERMINAL, Handling.NEEDS_USER, Handling.TRANSIENT],
        ),
        (
            "sync errors",
            [Handling.TERMINAL, Handling.TERMINAL, Handling.TRANSIENT, Handling.TRANSIENT],
        ),
    ],
)
def test_every_documented_bank_login_and_refresh_result_is_in_the_table(
    section: str, handlings: list[Handling]
) -> None:
    words = [f"{row[0]}:{row[1]}" for row in table_rows(AGGREGATION_PAGE[section])]
    assert [STATUS_MEANINGS[word].handling for word in words] == handlings


def test_the_documented_bad_credentials_are_invalid_credentials() -> None:
    rows = table_rows(AGGREGATION_PAGE["authentication errors"])
    [row] = [r for r in rows if r[1] == "200"]
    assert "bad user credentials" in row[2]
    status, body = response(f"{row[0]}:{row[1]}")
    with pytest.raises(LinkFailure) as failure:
        state_from_response(status, body, SESSION)
    assert failure.value.reason is LinkReason.INVALID_CREDENTIALS
    assert "username and password" in failure.value.message


def test_the_seed_mfa_response() -> None:
    seed = SEED_PAGE.json("response 202")
    state = state_from_response(202, seed, SESSION)
    [challenge] = state.challenges
    assert challenge.prompt == seed["mfa"]["message"]
    assert state.raw_status == "202:10"
    assert state.session["access_token"] == seed["mfa"]["access_token"]
    assert state.session["round"] == "1"
    # The next round's challenge has a new id even with the same access_token.
    again = state_from_response(202, seed, state.session)
    assert again.session["round"] == "2"
    assert again.challenges[0].id != challenge.id


def test_the_seed_node_list_is_linked() -> None:
    # The seed's 200 example elides further nodes as `{ ... }, ...`; without them it is JSON.
    page = re.sub(r",\s*\{\s*\.\.\.\s*\},\s*\.\.\.", "", SEED_PAGE["response 200"])
    seed = json.loads(page)
    state = state_from_response(200, seed, SESSION)
    assert (state.outcome, state.raw_status) == (Outcome.LINKED, "200:0")
    [account] = [account_from_node(node) for node in seed["nodes"]]
    assert (account.mask, account.balance, account.currency) == ("8901", "800.00", "USD")


async def test_the_documented_fingerprint_answer_is_a_hold_with_a_reason() -> None:
    documented = FINGERPRINT_PAGE.json("response 202")

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path.startswith("/v3.1/oauth/")
        return httpx.Response(202, json=documented)

    adapter = SynapseAdapter(
        "http://synapse.test",
        "id",
        "secret",
        fingerprint="fp",
        transport=httpx.MockTransport(handler),
    )
    linked = SESSION | {"raw_status": "200:0", "oauth_key": "", "refresh_token": "refresh_x"}
    try:
        held = await adapter.refresh(linked, idempotency_key=new_key())
    finally:
        await adapter.aclose()
    assert (held.outcome, held.reason, held.raw_status, held.message) == (
        Outcome.ACTION_REQUIRED,
        LinkReason.PROVIDER_HOLD,
        DEVICE_NOT_REGISTERED,
        DEVICE_MESSAGE,
    )


async def test_a_refresh_the_bank_answers_with_mfa_asks_the_user_again() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("force_refresh") == "yes":
            return httpx.Response(202, json=response("202:10", mfa=MFA)[1])
        return httpx.Response(200, json={"nodes": [{"_id": "n1", "type": "ACH-US"}]})

    adapter = SynapseAdapter(
        "http://synapse.test",
        "id",
        "secret",
        fingerprint="fp",
        transport=httpx.MockTransport(handler),
    )
    linked = SESSION | {"raw_status": "200:0", "oauth_expires_at": str(int(time.time()) + 3600)}
    try:
        asked = await adapter.refresh(linked, idempotency_key=new_key())
    finally:
        await adapter.aclose()
    assert (asked.outcome, asked.raw_status) == (Outcome.CHALLENGED, "202:10")
    assert asked.session["access_token"] == MFA["access_token"]


def test_hold_message_comes_from_synapse() -> None:
    state = state_from_response(*response("402:500"), SESSION)
    assert state.message == "Synapse says 500."


@pytest.mark.parametrize(
    ("http", "code"),
    [
        *((401, "100"), (400, "110"), (400, "120"), (403, "200"), (400, "300")),
        *((404, "404"), (400, "450"), (400, "460"), (400, None)),
    ],
)
def test_request_errors_are_rejected_requests(http: int, code: str | None) -> None:
    body = {"error": {"en": "?"}, "error_code": code} if code else {"error": {"en": "?"}}
    with pytest.raises(ProviderRejectedRequest):
        state_from_response(http, body, SESSION)


def test_a_refusal_names_synapses_code_and_never_its_text() -> None:
    body = {"error": {"en": "Bank login for jane.doe failed"}, "error_code": "300"}
    with pytest.raises(ProviderRejectedRequest) as refused:
        state_from_response(400, body, SESSION)
    assert str(refused.value) == "Synapse refused the request (HTTP 400, error_code 300)."
    assert refused.value.error_code == "300"


def test_unknown_code_is_transient() -> None:
    with pytest.raises(ProviderUnavailable):
        state_from_response(200, {"error_code": "77"}, SESSION)
    with pytest.raises(ProviderUnavailable):
        state_from_response(*response("202:10"), SESSION)  # MFA without its object


def test_a_session_from_before_the_pair_words_reads_as_the_pair() -> None:
    assert state_from_session(SESSION | {"raw_status": "0"}).raw_status == "200:0"
    held = state_from_session(SESSION | {"raw_status": "410"})
    assert (held.raw_status, held.reason) == ("402:500", LinkReason.PROVIDER_HOLD)


@pytest.mark.parametrize("mfa_type", ["captcha", "device", None])
def test_unsupported_mfa_types(mfa_type: str | None) -> None:
    with pytest.raises(LinkFailure) as failure:
        state_from_response(*response("202:10", mfa=MFA | {"type": mfa_type}), SESSION)
    assert failure.value.reason is LinkReason.UNSUPPORTED_MFA


def test_account_from_a_node_keeps_four_digits_and_any_amount() -> None:
    node: dict[str, Any] = {
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
    numeric = node | {"info": node["info"] | {"balance": {"amount": Decimal("0.0")}}}
    assert account_from_node(numeric).balance == "0.0"
