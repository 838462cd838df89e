"""What only Arcadia does, against the Arcadia sandbox over real HTTP and in process.

The shared test users' stories are asserted for every provider in
`tests/test_provider_contracts.py`; here are Arcadia's own: its verification-method choice and
passcode on the documented `PUT` routes, its MFA window, the renewal of an expired stored MFA
token on the same credential, its `status:<WORD>` test hook, its OAuth2 token (fetched once,
renewed before it expires, renewed once when refused) and its `Arcadia-Version` header. The unit
tests at the end read every `statusDetail` word through `state_from_credential`, and hold the
adapter's table (who must act included) to the sandbox's copy of Arcadia's status table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from linkflow.models import ChallengeAnswer, ChallengeKind, LinkReason, LinkRequest, Provider
from providers.arcadia import (
    HIGH_LEVEL_STATUS,
    MFA_WINDOW_SECONDS,
    NEWER_STATUS_DETAILS,
    ArcadiaAdapter,
    state_from_credential,
)
from providers.base import (
    LinkFailure,
    Outcome,
    ProviderRejectedRequest,
    ProviderState,
    ProviderUnavailable,
)
from providers.status import Actor, Handling
from sandbox.arcadia import (
    CREDENTIAL_STATUSES,
    MFA_EXPIRY_SECONDS,
    STATUS_OF_DETAIL,
    TOKEN_TTL_SECONDS,
    ArcadiaSandbox,
)
from tests.fixtures.documents import read_document
from tests.fixtures.links import link_request as any_link_request
from tests.fixtures.links import new_key, send, settle, start
from tests.fixtures.sandbox import SHORT_MFA_WINDOW_SECONDS, FakeClock

ARCADIA_PAGE = read_document("arcadia_submit_mfa_method.txt")
CLIENT_ID, CLIENT_SECRET = "sandbox-client-id", "sandbox-client-secret"
PHONE_1, PHONE_2 = "(***) ***-4321", "(***) ***-8765"
EMAIL = "j***@example.com"
STATUS_MEANINGS = ArcadiaAdapter.STATUSES.meanings
TIMEOUT_MESSAGE = STATUS_MEANINGS["MULTI_FACTOR_AUTHENTICATION_TIMEOUT"].message


def seed_status_details() -> list[str]:
    """The detailed status words, as Arcadia's page lists them under `statusDetail`."""
    return ARCADIA_PAGE.words("statusDetail")


@pytest.fixture
async def adapter(sandbox_url: str) -> AsyncIterator[ArcadiaAdapter]:
    arcadia = ArcadiaAdapter(f"{sandbox_url}/arcadia", CLIENT_ID, CLIENT_SECRET)
    yield arcadia
    await arcadia.aclose()


@pytest.fixture
async def short_window(short_mfa_window_sandbox_url: str) -> AsyncIterator[ArcadiaAdapter]:
    """The adapter against a sandbox whose Arcadia stops waiting for MFA after 1.5 s."""
    arcadia = ArcadiaAdapter(f"{short_mfa_window_sandbox_url}/arcadia", CLIENT_ID, CLIENT_SECRET)
    yield arcadia
    await arcadia.aclose()


def link_request(username: str, *, provider_id: str | None = None) -> LinkRequest:
    return any_link_request(Provider.ARCADIA, username, institution_code=provider_id)


async def login(adapter: ArcadiaAdapter, username: str) -> ProviderState:
    state = await start(adapter, username)
    assert (state.outcome, state.raw_status) == (Outcome.PENDING, "DATA_EXTRACTION_IN_PROGRESS")
    assert state.session["credential_id"].startswith("cred_")
    assert state.session["job_id"].startswith("job_")
    return state


async def answer(adapter: ArcadiaAdapter, state: ProviderState, value: str) -> ProviderState:
    answered = await send(adapter, state, value)
    assert (answered.outcome, answered.raw_status) == (
        Outcome.PENDING,
        "DATA_EXTRACTION_IN_PROGRESS",
    )
    assert answered.session["credential_id"] == state.session["credential_id"]
    return await settle(adapter, answered)


async def test_a_passcode_challenge_is_arcadias_request_with_arcadias_deadline(
    adapter: ArcadiaAdapter,
) -> None:
    challenged = await settle(adapter, await login(adapter, "user_mfa"))
    assert challenged.raw_status == "ONE_TIME_PASSCODE"
    [code] = challenged.challenges
    assert code.id.startswith("mfa_")
    # Arcadia's own expiry: its window from when it asked.
    assert code.deadline is not None
    assert code.deadline.tzinfo is not None
    until_deadline = (code.deadline - datetime.now(UTC)).total_seconds()
    assert MFA_EXPIRY_SECONDS - 30 < until_deadline <= MFA_EXPIRY_SECONDS


async def test_user_otp_chooses_where_the_code_goes_then_enters_it(
    adapter: ArcadiaAdapter,
) -> None:
    choosing = await settle(adapter, await login(adapter, "user_otp"))
    assert choosing.outcome is Outcome.CHALLENGED
    assert choosing.raw_status == "VERIFICATION_METHOD"
    [choice] = choosing.challenges
    assert choice.kind is ChallengeKind.DEVICE_CHOICE
    assert choice.prompt == "Where should your utility send your one-time code?"
    assert choice.option_values() == [
        f"SMS:{PHONE_1}",
        f"SMS:{PHONE_2}",
        f"CALL:{PHONE_1}",
        "EMAIL:j***@example.com",
    ]
    assert [o.label for o in choice.options] == [
        f"Text message to {PHONE_1}",
        f"Text message to {PHONE_2}",
        f"Phone call to {PHONE_1}",
        "Email to j***@example.com",
    ]
    assert "verification_method" not in choosing.session

    coding = await answer(adapter, choosing, f"SMS:{PHONE_2}")
    assert coding.outcome is Outcome.CHALLENGED
    assert coding.raw_status == "ONE_TIME_PASSCODE"
    [code] = coding.challenges
    assert code.kind is ChallengeKind.CODE
    assert code.prompt.endswith(f"(text message to {PHONE_2})")
    assert code.id != choice.id
    assert coding.session["verification_method"] == f"SMS:{PHONE_2}"

    linked = await answer(adapter, coding, "correct")
    assert linked.outcome is Outcome.LINKED


@pytest.mark.parametrize(
    ("method", "said"),
    [("EMAIL:j***@example.com", "email to j***@example.com"), (f"CALL:{PHONE_1}", "phone call to")],
    ids=["email", "call"],
)
async def test_user_otp_may_choose_email_or_a_call(
    adapter: ArcadiaAdapter, method: str, said: str
) -> None:
    choosing = await settle(adapter, await login(adapter, "user_otp"))
    coding = await answer(adapter, choosing, method)
    assert said in coding.challenges[0].prompt
    assert (await answer(adapter, coding, "correct")).outcome is Outcome.LINKED


async def test_a_method_not_offered_gets_a_new_choice(adapter: ArcadiaAdapter) -> None:
    first = await settle(adapter, await login(adapter, "user_otp"))
    second = await answer(adapter, first, "SMS:(***) ***-0000")
    assert second.outcome is Outcome.CHALLENGED
    assert second.challenges[0].kind is ChallengeKind.DEVICE_CHOICE
    assert second.challenges[0].id != first.challenges[0].id
    assert second.challenges[0].options == first.challenges[0].options


async def sleep_past(deadline: datetime | None) -> None:
    assert deadline is not None
    await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.3)


async def test_each_challenge_ends_when_arcadias_window_does(short_window: ArcadiaAdapter) -> None:
    asked_after = datetime.now(UTC)
    choosing = await settle(short_window, await login(short_window, "user_otp"))
    [choice] = choosing.challenges
    assert choice.deadline is not None
    assert asked_after < choice.deadline
    assert choice.deadline <= datetime.now(UTC) + timedelta(seconds=SHORT_MFA_WINDOW_SECONDS)

    # Choosing a method asks anew: the code gets a window of its own.
    coding = await answer(short_window, choosing, f"SMS:{PHONE_1}")
    [code] = coding.challenges
    assert code.deadline is not None
    assert code.deadline > choice.deadline


@pytest.mark.parametrize(
    ("username", "value"),
    [("user_mfa", "correct"), ("user_otp", f"SMS:{PHONE_1}")],
    ids=["passcode", "method-choice"],
)
async def test_an_answer_after_arcadias_window_ends_the_link_mfa_timeout(
    short_window: ArcadiaAdapter, username: str, value: str
) -> None:
    challenged = await settle(short_window, await login(short_window, username))
    [challenge] = challenged.challenges
    await sleep_past(challenge.deadline)
    with pytest.raises(LinkFailure) as failure:
        await short_window.answer(
            challenged.session,
            challenged.challenges,
            [ChallengeAnswer(challenge_id=challenge.id, value=value)],
            idempotency_key=new_key(),
        )
    assert failure.value.reason is LinkReason.MFA_TIMEOUT
    assert failure.value.raw_status == "MULTI_FACTOR_AUTHENTICATION_TIMEOUT"
    assert failure.value.message == TIMEOUT_MESSAGE
    # Arcadia refused the answer itself; the link learns why from the credential.
    assert isinstance(failure.value.__cause__, ProviderRejectedRequest)
    assert failure.value.__cause__.status_code == 409


async def test_answering_when_nothing_is_asked_is_refused(adapter: ArcadiaAdapter) -> None:
    challenged = await settle(adapter, await login(adapter, "user_mfa"))
    pending = await adapter.answer(
        challenged.session,
        challenged.challenges,
        [ChallengeAnswer(challenge_id=challenged.challenges[0].id, value="correct")],
        idempotency_key=new_key(),
    )
    # The job runs again; the same answer sent now finds nothing waiting for it.
    with pytest.raises(ProviderRejectedRequest) as refused:
        await adapter.answer(
            pending.session,
            challenged.challenges,
            [ChallengeAnswer(challenge_id=challenged.challenges[0].id, value="correct")],
            idempotency_key=new_key(),
        )
    assert refused.value.status_code == 409


@pytest.mark.parametrize("detail", sorted(STATUS_OF_DETAIL))
async def test_status_test_hook_reads_as_the_table_says(
    adapter: ArcadiaAdapter, detail: str
) -> None:
    """The sandbox's `status:<WORD>` hook ends a job in that word, for every word."""
    state = await login(adapter, f"status:{detail}")
    await asyncio.sleep(0.1)  # past the sandbox's latency: the next read resolves the job
    meaning = STATUS_MEANINGS[detail]
    if meaning.failure is not None:
        with pytest.raises(LinkFailure) as failure:
            await adapter.poll(state.session)
        assert (failure.value.reason, failure.value.raw_status) == (meaning.failure, detail)
    elif meaning.transient:
        with pytest.raises(ProviderUnavailable):
            await adapter.poll(state.session)
    else:
        polled = await adapter.poll(state.session)
        assert (polled.outcome, polled.reason, polled.raw_status) == (
            meaning.outcome,
            meaning.reason,
            detail,
        )


async def test_an_expired_mfa_token_is_renewed_on_the_same_credential(
    adapter: ArcadiaAdapter, sandbox_url: str
) -> None:
    request = link_request("user_mfa")
    state = await adapter.login("link-renew", request, idempotency_key=new_key())
    challenged = await settle(adapter, state)
    linked = await answer(adapter, challenged, "correct")
    assert linked.outcome is Outcome.LINKED
    credential_id, first_job = linked.session["credential_id"], linked.session["job_id"]

    # Months later the utility's session token Arcadia stored has expired.
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/arcadia") as hooks:
        expired = await hooks.post(f"/_sandbox/credentials/{credential_id}/mfa-token-expired")
    assert expired.status_code == 200
    refreshed = await adapter.refresh(linked.session, idempotency_key=new_key())
    assert (refreshed.outcome, refreshed.reason, refreshed.raw_status) == (
        Outcome.ACTION_REQUIRED,
        LinkReason.MFA_REFRESH_REQUIRED,
        "MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED",
    )

    again = await adapter.reauthenticate(
        "link-renew", request, refreshed.session, idempotency_key=new_key()
    )
    assert (again.outcome, again.raw_status) == (Outcome.PENDING, "DATA_EXTRACTION_IN_PROGRESS")
    assert again.session["credential_id"] == credential_id
    assert again.session["job_id"] != first_job
    handshake = await settle(adapter, again)
    [code] = handshake.challenges
    assert code.kind is ChallengeKind.CODE
    assert code.id not in {c.id for c in challenged.challenges}
    renewed = await answer(adapter, handshake, "correct")
    assert (renewed.outcome, renewed.session["credential_id"]) == (Outcome.LINKED, credential_id)
    assert len(await adapter.fetch_accounts(renewed.session)) == 2


async def test_reauthenticating_with_a_new_password_keeps_the_credential(
    adapter: ArcadiaAdapter,
) -> None:
    """A password changed at the utility is mended on the same credential too."""
    wrong = await adapter.login(
        "link-new-password",
        any_link_request(Provider.ARCADIA, "user_good", "an-old-password"),
        idempotency_key=new_key(),
    )
    with pytest.raises(LinkFailure):
        await settle(adapter, wrong)
    again = await adapter.reauthenticate(
        "link-new-password", link_request("user_good"), wrong.session, idempotency_key=new_key()
    )
    assert again.session["credential_id"] == wrong.session["credential_id"]
    assert (await settle(adapter, again)).outcome is Outcome.LINKED


async def test_revoking_a_credential_arcadia_does_not_know_is_not_an_error(
    adapter: ArcadiaAdapter,
) -> None:
    await adapter.revoke({"credential_id": "cred_gone"})


async def test_known_utility_is_sent_as_provider_id(adapter: ArcadiaAdapter) -> None:
    state = await adapter.login(
        "link-1",
        link_request("user_good", provider_id="sandbox-power-and-light"),
        idempotency_key=new_key(),
    )
    assert (await settle(adapter, state)).outcome is Outcome.LINKED


async def test_an_answer_missing_is_refused_before_any_call(adapter: ArcadiaAdapter) -> None:
    challenged = await settle(adapter, await login(adapter, "user_mfa"))
    with pytest.raises(ProviderRejectedRequest) as refused:
        await adapter.answer(
            challenged.session, challenged.challenges, [], idempotency_key=new_key()
        )
    assert refused.value.status_code == 400
    assert (await adapter.poll(challenged.session)).outcome is Outcome.CHALLENGED


# ---------------------------------------------------------------------- in process


@pytest.fixture
async def in_process() -> AsyncIterator[tuple[ArcadiaSandbox, ArcadiaAdapter, FakeClock]]:
    clock = FakeClock()
    sandbox = ArcadiaSandbox(latency_seconds=1, clock=clock)
    adapter = ArcadiaAdapter(
        "http://sandbox/arcadia",
        CLIENT_ID,
        CLIENT_SECRET,
        transport=httpx.ASGITransport(app=Starlette(routes=[sandbox.mount()])),
        clock=clock,
    )
    yield sandbox, adapter, clock
    await adapter.aclose()


class RecordingTransport(httpx.AsyncBaseTransport):
    """The in-process sandbox's transport, noting each request's method and path."""

    def __init__(self, app: Starlette) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.calls: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        return await self._inner.handle_async_request(request)


async def test_answers_go_to_arcadias_documented_routes_and_a_renewal_makes_no_credential() -> None:
    clock = FakeClock()
    sandbox = ArcadiaSandbox(latency_seconds=1, clock=clock)
    transport = RecordingTransport(Starlette(routes=[sandbox.mount()]))
    adapter = ArcadiaAdapter(
        "http://sandbox/arcadia", CLIENT_ID, CLIENT_SECRET, transport=transport, clock=clock
    )
    try:
        request = link_request("user_otp")
        state = await adapter.login("link-1", request, idempotency_key="login-1")
        clock.now += 1
        choosing = await adapter.poll(state.session)
        [choice] = choosing.challenges
        answers = [ChallengeAnswer(challenge_id=choice.id, value=f"SMS:{PHONE_1}")]
        await adapter.answer(choosing.session, choosing.challenges, answers, idempotency_key="a-1")
        clock.now += 1
        coding = await adapter.poll(choosing.session)
        [code] = coding.challenges
        answers = [ChallengeAnswer(challenge_id=code.id, value="correct")]
        await adapter.answer(coding.session, coding.challenges, answers, idempotency_key="a-2")
        clock.now += 1
        linked = await adapter.poll(coding.session)
        assert linked.outcome is Outcome.LINKED

        credential = f"/arcadia/plug/credentials/{linked.session['credential_id']}"
        writes = [call for call in transport.calls if call[0] != "GET"]
        assert writes[1:] == [
            ("POST", "/arcadia/plug/credentials"),
            ("PUT", f"{credential}/verificationMethod"),
            ("PUT", f"{credential}/oneTimePasscode"),
        ]

        # The stored MFA token expires; the renewal updates the credential it has.
        sandbox.credentials[linked.session["credential_id"]].expire_mfa_token()
        renewing = await adapter.reauthenticate(
            "link-1", request, linked.session, idempotency_key="renew-1"
        )
        assert transport.calls[-1] == ("PATCH", credential)
        assert list(sandbox.credentials) == [linked.session["credential_id"]]
        assert renewing.session == {
            "credential_id": linked.session["credential_id"],
            "job_id": renewing.session["job_id"],
        }
        clock.now += 1
        # A new job's first choice of method is no resubmission.
        choosing_again = await adapter.poll(renewing.session)
        [choice] = choosing_again.challenges
        answers = [ChallengeAnswer(challenge_id=choice.id, value=f"EMAIL:{EMAIL}")]
        await adapter.answer(
            choosing_again.session, choosing_again.challenges, answers, idempotency_key="a-3"
        )
        assert transport.calls[-1] == ("PUT", f"{credential}/verificationMethod")
    finally:
        await adapter.aclose()


async def test_one_token_serves_many_calls_until_it_expires(
    in_process: tuple[ArcadiaSandbox, ArcadiaAdapter, FakeClock],
) -> None:
    sandbox, adapter, clock = in_process
    state = await adapter.login("link-1", link_request("user_good"), idempotency_key="login-1")
    await adapter.poll(state.session)
    await adapter.login("link-2", link_request("user_mfa"), idempotency_key="login-2")
    assert sandbox.tokens_issued == 1

    # Renewed shortly before Arcadia's `expires_in` runs out, without a refused call first.
    clock.now += TOKEN_TTL_SECONDS - 30
    await adapter.poll(state.session)
    assert sandbox.tokens_issued == 2
    assert len(sandbox.tokens) == 2


async def test_a_token_arcadia_no_longer_accepts_is_renewed_once(
    in_process: tuple[ArcadiaSandbox, ArcadiaAdapter, FakeClock],
) -> None:
    sandbox, adapter, clock = in_process
    state = await adapter.login("link-1", link_request("user_good"), idempotency_key="login-1")
    sandbox.expire_tokens()
    clock.now += 2
    polled = await adapter.poll(state.session)
    assert polled.outcome is Outcome.LINKED
    assert sandbox.tokens_issued == 2


async def test_a_refused_fresh_token_is_not_retried_in_a_loop() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("/oauth2/token"):
            return httpx.Response(200, json={"access_token": f"t{len(calls)}", "expires_in": 60})
        return httpx.Response(401, json={"error": "unauthorized", "message": "no"})

    adapter = ArcadiaAdapter(
        "http://a", CLIENT_ID, CLIENT_SECRET, transport=httpx.MockTransport(handler)
    )
    try:
        with pytest.raises(ProviderRejectedRequest) as refused:
            await adapter.poll({"credential_id": "cred_1"})
        assert refused.value.status_code == 401
        assert calls == ["/oauth2/token", "/plug/credentials/cred_1"]
        # A cached token that is refused is renewed once, then the refusal stands.
        with pytest.raises(ProviderRejectedRequest):
            await adapter.poll({"credential_id": "cred_1"})
        assert calls[2:] == [
            "/plug/credentials/cred_1",
            "/oauth2/token",
            "/plug/credentials/cred_1",
        ]
    finally:
        await adapter.aclose()


async def test_idempotency_keys_reach_arcadia(
    in_process: tuple[ArcadiaSandbox, ArcadiaAdapter, FakeClock],
) -> None:
    sandbox, adapter, clock = in_process
    state = await adapter.login("link-1", link_request("user_otp"), idempotency_key="login-1")
    clock.now += 1
    choosing = await adapter.poll(state.session)
    [choice] = choosing.challenges
    answers = [ChallengeAnswer(challenge_id=choice.id, value=choice.options[0].value)]
    await adapter.answer(choosing.session, choosing.challenges, answers, idempotency_key="answer-1")
    assert sandbox.duplicate_requests == 0
    # A retried answer (say, after a lost response) is refused, and counted as a duplicate.
    with pytest.raises(ProviderRejectedRequest) as refused:
        await adapter.answer(
            choosing.session, choosing.challenges, answers, idempotency_key="answer-1"
        )
    assert refused.value.status_code == 409
    credential_id = state.session["credential_id"]
    assert sandbox.ledger.keys_of(credential_id) == {"login-1": 1, "answer-1": 2}
    assert sandbox.duplicate_requests == 1


async def test_an_unanswered_request_times_out(
    in_process: tuple[ArcadiaSandbox, ArcadiaAdapter, FakeClock],
) -> None:
    _, adapter, clock = in_process
    state = await adapter.login("link-1", link_request("user_mfa"), idempotency_key="login-1")
    clock.now += 1
    assert (await adapter.poll(state.session)).outcome is Outcome.CHALLENGED
    clock.now += 600
    with pytest.raises(LinkFailure) as failure:
        await adapter.poll(state.session)
    assert failure.value.reason is LinkReason.MFA_TIMEOUT
    assert failure.value.raw_status == "MULTI_FACTOR_AUTHENTICATION_TIMEOUT"


async def test_an_answer_a_moment_too_late_is_mfa_timeout_not_a_refusal(
    in_process: tuple[ArcadiaSandbox, ArcadiaAdapter, FakeClock],
) -> None:
    _, adapter, clock = in_process
    state = await adapter.login("link-1", link_request("user_mfa"), idempotency_key="login-1")
    clock.now += 1
    challenged = await adapter.poll(state.session)
    [code] = challenged.challenges
    clock.now += MFA_EXPIRY_SECONDS
    with pytest.raises(LinkFailure) as failure:
        await adapter.answer(
            challenged.session,
            challenged.challenges,
            [ChallengeAnswer(challenge_id=code.id, value="correct")],
            idempotency_key="answer-1",
        )
    assert (failure.value.reason, failure.value.message) == (
        LinkReason.MFA_TIMEOUT,
        TIMEOUT_MESSAGE,
    )


# ---------------------------------------------------------------------- unit: the status table


def credential(
    status: str, detail: str | None, job: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": "cred_1",
        "status": status,
        "statusDetail": detail,
        "currentJob": job or {"id": "job_1", "status": "SUCCEEDED", "mfa": None},
    }


def test_every_seed_status_detail_and_every_newer_one_has_a_meaning() -> None:
    words = seed_status_details()
    assert len(words) == 18
    assert {
        "CONNECTION_DEACTIVATED",
        "DATA_EXTRACTION_NOT_REQUESTED",
        "PROVIDER_REGISTRATION_INCOMPLETE",
    } == NEWER_STATUS_DETAILS
    everything = set(words) | NEWER_STATUS_DETAILS
    assert set(STATUS_MEANINGS) == everything == set(STATUS_OF_DETAIL) == set(HIGH_LEVEL_STATUS)
    assert ArcadiaAdapter.STATUSES.field == "statusDetail"
    assert ArcadiaAdapter.CHALLENGE_KINDS == {
        "VERIFICATION_METHOD": ChallengeKind.DEVICE_CHOICE,
        "ONE_TIME_PASSCODE": ChallengeKind.CODE,
    }
    assert all(meaning.message for meaning in STATUS_MEANINGS.values())


EXPECTED: dict[str, tuple[Outcome | None, LinkReason | None]] = {
    # (outcome, reason) for links that go on; (None, failure) for final failures;
    # (None, None) for transient trouble.
    "LOGIN_AND_DATA_DISCOVERY_SUCCESS": (Outcome.LINKED, None),
    "LOGIN_AND_INTERVALS_DISCOVERY_SUCCESS": (Outcome.LINKED, None),
    "LOGIN_SUCCESS_INTERVALS_DISCOVERY_FAILURE": (Outcome.LINKED, None),
    "DATA_EXTRACTION_NOT_REQUESTED": (Outcome.LINKED, None),
    # Arcadia at work, however long it takes: in progress, neither a failure nor a hold.
    "DATA_EXTRACTION_IN_PROGRESS": (Outcome.PENDING, None),
    "ISSUE_UNDER_REVIEW": (Outcome.PENDING, None),
    "PROVIDER_WEBSITE_INACCESSIBLE": (Outcome.PENDING, None),
    "PROVIDER_WEBSITE_NAVIGATION_FAILURE": (Outcome.PENDING, None),
    "UNSUPPORTED_CAPTCHA": (Outcome.PENDING, None),
    "REQUIRES_ENROLLMENT": (Outcome.PENDING, None),
    "EMAIL_APPROVAL": (Outcome.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD),
    "INVALID_CREDENTIALS": (None, LinkReason.INVALID_CREDENTIALS),
    # MFA Arcadia could not pass, not a code the user got wrong.
    "MULTI_FACTOR_AUTHENTICATION_FAILURE": (Outcome.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD),
    "MULTI_FACTOR_AUTHENTICATION_TIMEOUT": (None, LinkReason.MFA_TIMEOUT),
    "UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION": (None, LinkReason.UNSUPPORTED_MFA),
    "MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED": (
        Outcome.ACTION_REQUIRED,
        LinkReason.MFA_REFRESH_REQUIRED,
    ),
    "OTHER_ACCESS_LIMITATION": (Outcome.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD),
    "PROVIDER_REGISTRATION_INCOMPLETE": (Outcome.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD),
    "UNSUCCESSFUL_EMAIL_APPROVAL": (None, LinkReason.MFA_FAILED),
    "USER_REVOKED_ACCESS": (None, LinkReason.USER_REVOKED_ACCESS),
    "CONNECTION_DEACTIVATED": (None, LinkReason.USER_REVOKED_ACCESS),
}


def test_no_word_is_transient_trouble_nor_an_mfa_failure_of_the_users_code() -> None:
    assert not [word for word, meaning in STATUS_MEANINGS.items() if meaning.transient]
    mfa_failure = STATUS_MEANINGS["MULTI_FACTOR_AUTHENTICATION_FAILURE"]
    assert mfa_failure.failure is None
    assert "Arcadia could not get past" in mfa_failure.message


@pytest.mark.parametrize("detail", sorted(STATUS_OF_DETAIL))
def test_who_must_act_is_what_arcadias_status_table_says(detail: str) -> None:
    """The adapter's meaning and the sandbox's copy of Arcadia's table name the same actor."""
    meaning, row = STATUS_MEANINGS[detail], CREDENTIAL_STATUSES[detail]
    assert (meaning.who_acts is Actor.USER) is row.is_customer_action_required
    assert HIGH_LEVEL_STATUS[detail] == row.status
    if row.status == "CONNECTION_IN_PROGRESS" and not row.is_customer_action_required:
        assert meaning.handling is Handling.IN_PROGRESS
        assert meaning.who_acts is Actor.PROVIDER


@pytest.mark.parametrize("detail", list(EXPECTED))
def test_each_status_detail_through_the_parser(detail: str) -> None:
    outcome, reason = EXPECTED[detail]
    raw = credential(STATUS_OF_DETAIL[detail], detail)
    if outcome is None and reason is not None:
        with pytest.raises(LinkFailure) as failure:
            state_from_credential(raw, {})
        assert (failure.value.reason, failure.value.raw_status) == (reason, detail)
        assert failure.value.message == STATUS_MEANINGS[detail].message
    elif outcome is None:
        with pytest.raises(ProviderUnavailable, match=detail):
            state_from_credential(raw, {})
    else:
        state = state_from_credential(raw, {})
        assert (state.outcome, state.reason, state.raw_status) == (outcome, reason, detail)
        assert state.message == STATUS_MEANINGS[detail].message
        assert state.session == {"credential_id": "cred_1", "job_id": "job_1"}


def test_partial_data_says_so() -> None:
    state = state_from_credential(
        credential("CONNECTION_SUCCESS", "LOGIN_SUCCESS_INTERVALS_DISCOVERY_FAILURE"), {}
    )
    assert state.outcome is Outcome.LINKED
    assert state.message
    assert "no smart-meter (interval) data" in state.message


def test_a_success_detail_while_the_status_is_in_progress_is_pending() -> None:
    state = state_from_credential(
        credential("CONNECTION_IN_PROGRESS", "LOGIN_AND_DATA_DISCOVERY_SUCCESS"), {}
    )
    assert state.outcome is Outcome.PENDING
    assert state.raw_status == "LOGIN_AND_DATA_DISCOVERY_SUCCESS"


@pytest.mark.parametrize(
    ("status", "expected"),
    [("CONNECTION_SUCCESS", Outcome.LINKED), ("CONNECTION_IN_PROGRESS", Outcome.PENDING)],
)
def test_an_unknown_detail_falls_back_on_the_status(status: str, expected: Outcome) -> None:
    assert state_from_credential(credential(status, "SOMETHING_NEW"), {}).outcome is expected


def test_an_unknown_detail_under_failure_is_a_hold_not_the_end() -> None:
    state = state_from_credential(credential("CONNECTION_FAILURE", "SOMETHING_NEW"), {})
    assert (state.outcome, state.reason, state.raw_status) == (
        Outcome.ACTION_REQUIRED,
        LinkReason.PROVIDER_HOLD,
        "SOMETHING_NEW",
    )
    assert state.message
    assert "SOMETHING_NEW" in state.message


def test_an_unknown_status_and_detail_is_transient() -> None:
    with pytest.raises(ProviderUnavailable):
        state_from_credential(credential("WHATEVER", None), {})


def waiting(mfa: dict[str, Any]) -> dict[str, Any]:
    return credential(
        "CONNECTION_IN_PROGRESS",
        "DATA_EXTRACTION_IN_PROGRESS",
        {"id": "job_2", "status": "WAITING_FOR_INPUT", "mfa": mfa},
    )


def test_a_job_waiting_for_input_is_challenged_whatever_the_statuses() -> None:
    mfa = {
        "id": "mfa_1",
        "type": "VERIFICATION_METHOD",
        "verificationMethods": [{"type": "CALL", "value": "(***) ***-1111"}],
        "selectedVerificationMethod": None,
        "expiresAt": "2030-01-01T00:00:00.000Z",
    }
    state = state_from_credential(waiting(mfa), {"credential_id": "cred_1"})
    assert state.outcome is Outcome.CHALLENGED
    assert state.raw_status == "VERIFICATION_METHOD"
    assert state.session == {"credential_id": "cred_1", "job_id": "job_2"}
    [choice] = state.challenges
    assert (choice.id, choice.kind) == ("mfa_1", ChallengeKind.DEVICE_CHOICE)
    assert [(o.value, o.label) for o in choice.options] == [
        ("CALL:(***) ***-1111", "Phone call to (***) ***-1111")
    ]
    assert choice.deadline == datetime(2030, 1, 1, tzinfo=UTC)


def test_without_an_expiry_the_deadline_is_the_assumed_window_from_the_request() -> None:
    mfa = {"id": "mfa_1", "type": "ONE_TIME_PASSCODE", "verificationMethods": []}
    asked = waiting(mfa) | {"lastModifiedAt": "2030-01-01T00:00:00.000Z"}
    [code] = state_from_credential(asked, {}).challenges
    assert code.deadline == datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=MFA_WINDOW_SECONDS)
    # A timestamp without a zone is Arcadia's UTC; the deadline is always zone-aware.
    naive = waiting(mfa | {"expiresAt": "2030-01-01T00:10:00"})
    [code] = state_from_credential(naive, {}).challenges
    assert code.deadline == datetime(2030, 1, 1, 0, 10, tzinfo=UTC)


def test_without_any_time_the_window_runs_from_now() -> None:
    before = datetime.now(UTC)
    mfa = {"id": "mfa_1", "type": "ONE_TIME_PASSCODE", "verificationMethods": []}
    [code] = state_from_credential(waiting(mfa), {}).challenges
    assert code.deadline is not None
    assert before + timedelta(seconds=MFA_WINDOW_SECONDS) <= code.deadline
    assert code.deadline <= datetime.now(UTC) + timedelta(seconds=MFA_WINDOW_SECONDS)


def test_an_mfa_kind_linkflow_cannot_show_is_unsupported() -> None:
    with pytest.raises(LinkFailure) as failure:
        state_from_credential(waiting({"id": "mfa_1", "type": "SECURITY_KEY"}), {})
    assert failure.value.reason is LinkReason.UNSUPPORTED_MFA
    assert failure.value.raw_status == "SECURITY_KEY"


def test_free_text_where_a_word_belongs_never_reaches_a_message() -> None:
    with pytest.raises(LinkFailure) as failure:
        state_from_credential(waiting({"id": "mfa_1", "type": "Dear Jane, call us"}), {})
    assert "Jane" not in failure.value.message
    assert failure.value.raw_status == "?"
    held = state_from_credential(
        credential("CONNECTION_FAILURE", "jane.doe@example.com locked"), {}
    )
    assert held.message
    assert "jane" not in held.message
    with pytest.raises(ProviderUnavailable) as unknown:
        state_from_credential(credential("Hello jane.doe", None), {})
    assert "jane" not in str(unknown.value)


def test_a_method_choice_without_methods_is_transient() -> None:
    with pytest.raises(ProviderUnavailable):
        state_from_credential(
            waiting({"id": "mfa_1", "type": "VERIFICATION_METHOD", "verificationMethods": []}), {}
        )
