"""What only Unbill does, against the Unbill sandbox over real HTTP, and its parsing.

The shared test users' stories are asserted for every provider in
`tests/test_provider_contracts.py`; here are Unbill's own: auths read only the documented way
(the client's `GET /auth/list/{clientId}`), its seed's test hooks (by username or by the create
request's `status`, which makes a `verified` auth unless it names another valid status), a hold
lifted with `fix-hold`, a prompt approved on the user's device, its client kept across links, and
its refusal of a replaced round. The unit tests at the end read every status word through
`state_from_auth`, and the documented list reply through the adapter, without HTTP.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from linkflow.config import ProviderSettings
from linkflow.models import ChallengeAnswer, ChallengeKind, LinkReason, LinkRequest, Provider
from providers.base import (
    LinkFailure,
    Outcome,
    ProviderRejectedRequest,
    ProviderState,
    ProviderUnavailable,
)
from providers.status import StatusMeaning
from providers.unbill import (
    DEFAULT_COMPANY_ID,
    MFA_ANSWERED,
    UnbillAdapter,
    state_from_auth,
)
from sandbox.unbill import UnbillSandbox
from tests.fixtures.documents import read_document
from tests.fixtures.links import link_request as any_link_request
from tests.fixtures.links import new_key, settle

UNBILL_PAGE = read_document("unbill_auth_object.txt")
STATUS_MEANINGS = UnbillAdapter.STATUSES.meanings
SEED_QUESTIONS = ["What city did you grow up in?", "What is your favorite food?"]
SESSION = {"client_id": "c" * 24, "auth_id": "a" * 24, "company_id": DEFAULT_COMPANY_ID}


@pytest.fixture
async def adapter(sandbox_url: str) -> AsyncIterator[UnbillAdapter]:
    unbill = UnbillAdapter(f"{sandbox_url}/unbill", "sandbox-api-key")
    yield unbill
    await unbill.aclose()


def link_request(
    username: str,
    password: str = "pass_good",
    *,
    user_ref: str | None = None,
    company_id: str | None = None,
    test_status: str | None = None,
) -> LinkRequest:
    return any_link_request(
        Provider.UNBILL,
        username,
        password,
        user_ref=user_ref,
        institution_code=company_id,
        extra=None if test_status is None else {"status": test_status},
    )


async def login(
    adapter: UnbillAdapter, username: str, password: str = "pass_good", **kwargs: Any
) -> ProviderState:
    state = await adapter.login(
        f"link-{uuid.uuid4()}",
        link_request(username, password, **kwargs),
        idempotency_key=new_key(),
    )
    assert (state.outcome, state.raw_status) == (Outcome.PENDING, "pending")
    return state


async def answer(adapter: UnbillAdapter, state: ProviderState, *values: str) -> ProviderState:
    assert len(values) == len(state.challenges)
    answers = [
        ChallengeAnswer(challenge_id=challenge.id, value=SecretStr(value))
        for challenge, value in zip(state.challenges, values, strict=True)
    ]
    answered = await adapter.answer(
        state.session, state.challenges, answers, idempotency_key=new_key()
    )
    assert answered.outcome is Outcome.PENDING
    assert answered.raw_status == "pending"
    assert answered.session == state.session | {MFA_ANSWERED: "true"}
    return await settle(adapter, answered)


async def assert_linked_with_one_bill(adapter: UnbillAdapter, state: ProviderState) -> None:
    assert state.outcome is Outcome.LINKED
    assert state.raw_status == "verified"
    assert state.challenges == []
    [bill] = await adapter.fetch_accounts(state.session)
    assert (bill.name, bill.kind, bill.balance, bill.currency, bill.mask) == (
        "Netflix",
        "BILL",
        "15.49",
        "USD",
        None,
    )
    assert len(bill.id) == 24


async def test_the_adapter_from_settings_uses_the_sandbox_defaults() -> None:
    adapter = UnbillAdapter.from_settings(ProviderSettings(sandbox_url="http://sandbox.invalid"))
    try:
        assert str(adapter._client.base_url) == "http://sandbox.invalid/unbill/"
        assert adapter._client.headers["Authorization"] == "Bearer sandbox-api-key"
    finally:
        await adapter.aclose()


async def test_user_otp_enters_the_code(adapter: UnbillAdapter) -> None:
    challenged = await settle(adapter, await login(adapter, "user_otp"))
    assert challenged.outcome is Outcome.CHALLENGED
    [code] = challenged.challenges
    assert code.kind is ChallengeKind.CODE
    assert code.prompt == "Enter the code we texted to (***) ***-4321"
    assert code.options == []
    await assert_linked_with_one_bill(adapter, await answer(adapter, challenged, "correct"))


async def test_user_hold_needs_the_users_action_then_fix_hold_resumes(
    adapter: UnbillAdapter,
) -> None:
    held = await settle(adapter, await login(adapter, "user_hold"))
    assert held.outcome is Outcome.ACTION_REQUIRED
    assert held.reason is LinkReason.PROVIDER_HOLD
    assert held.raw_status == "hold"
    assert held.message == "Please log in to your account and accept the Terms and Conditions."
    assert held.session["hold_code"] == "account_issue_accept_toc"
    assert await adapter.fetch_accounts(held.session) == []

    resumed = await adapter.fix_hold(held.session)
    assert resumed.outcome is Outcome.PENDING
    assert "hold_code" not in resumed.session
    await assert_linked_with_one_bill(adapter, await settle(adapter, resumed))

    # Fixing an auth that is no longer on hold is refused.
    with pytest.raises(ProviderRejectedRequest) as refused:
        await adapter.fix_hold(resumed.session)
    assert refused.value.status_code == 409


async def test_an_answer_to_a_replaced_round_is_refused(adapter: UnbillAdapter) -> None:
    first = await settle(adapter, await login(adapter, "user_mfa"))
    # One wrong answer makes the whole round wrong.
    second = await answer(adapter, first, "correct", "Pizza")
    assert [c.prompt for c in second.challenges] == SEED_QUESTIONS

    # The old round is gone: answering it is a refused request, not a silent success.
    stale = [
        ChallengeAnswer(challenge_id=c.id, value=SecretStr("correct")) for c in first.challenges
    ]
    with pytest.raises(ProviderRejectedRequest) as refused:
        await adapter.answer(second.session, second.challenges, stale, idempotency_key=new_key())
    assert refused.value.status_code == 400

    await assert_linked_with_one_bill(adapter, await answer(adapter, second, "correct", "correct"))


@pytest.mark.parametrize("via", ["username", "status"])
async def test_hook_mfa_required_prompt_is_approved_on_the_device(
    adapter: UnbillAdapter, via: str
) -> None:
    if via == "username":
        state = await login(adapter, "mfa-required-prompt")
    else:
        state = await login(adapter, "anyone", "anything", test_status="mfa-required-prompt")
    waiting = await settle(adapter, state)
    assert waiting.outcome is Outcome.CHALLENGED
    [prompt] = waiting.challenges
    assert prompt.kind is ChallengeKind.PUSH_APPROVAL
    assert not prompt.kind.needs_answer
    # The workflow only polls; the sandbox approves by itself after a few latency periods.
    for _ in range(100):
        state = await adapter.poll(waiting.session)
        if state.outcome is not Outcome.CHALLENGED:
            break
        assert [c.id for c in state.challenges] == [prompt.id]
        await asyncio.sleep(0.02)
    await assert_linked_with_one_bill(adapter, state)


async def test_answering_a_prompt_only_polls(adapter: UnbillAdapter) -> None:
    waiting = await settle(adapter, await login(adapter, "mfa-required-prompt"))
    [prompt] = waiting.challenges
    state = await adapter.answer(
        waiting.session,
        waiting.challenges,
        [ChallengeAnswer(challenge_id=prompt.id, value=SecretStr("ok"))],
        idempotency_key=new_key(),
    )
    assert state.outcome in (Outcome.CHALLENGED, Outcome.LINKED)
    assert MFA_ANSWERED not in state.session


@pytest.mark.parametrize("via", ["username", "status"])
@pytest.mark.parametrize(
    ("hook", "kinds", "answers"),
    [
        ("mfa-required-questions", [ChallengeKind.TEXT, ChallengeKind.TEXT], 2),
        ("mfa-required-code", [ChallengeKind.CODE], 1),
    ],
)
async def test_hook_mfa_rounds(
    adapter: UnbillAdapter, via: str, hook: str, kinds: list[ChallengeKind], answers: int
) -> None:
    if via == "username":
        state = await login(adapter, hook)
    else:
        state = await login(adapter, "user_good", test_status=hook)
    challenged = await settle(adapter, state)
    assert challenged.raw_status == "mfa-required"
    assert [c.kind for c in challenged.challenges] == kinds
    linked = await answer(adapter, challenged, *["correct"] * answers)
    await assert_linked_with_one_bill(adapter, linked)


@pytest.mark.parametrize("via", ["username", "status"])
async def test_hook_verified(adapter: UnbillAdapter, via: str) -> None:
    if via == "username":
        state = await login(adapter, "verified")
    else:
        state = await login(adapter, "user_bad", test_status="verified")
    await assert_linked_with_one_bill(adapter, await settle(adapter, state))


@pytest.mark.parametrize("via", ["username", "status"])
async def test_hook_authenticate(adapter: UnbillAdapter, via: str) -> None:
    if via == "username":
        state = await login(adapter, "authenticate")
    else:
        state = await login(adapter, "user_good", test_status="authenticate")
    with pytest.raises(LinkFailure) as failure:
        await settle(adapter, state)
    assert failure.value.reason is LinkReason.INVALID_CREDENTIALS


@pytest.mark.parametrize("via", ["username", "status"])
async def test_hook_hold(adapter: UnbillAdapter, via: str) -> None:
    if via == "username":
        state = await login(adapter, "hold")
    else:
        state = await login(adapter, "user_good", test_status="hold")
    held = await settle(adapter, state)
    assert held.outcome is Outcome.ACTION_REQUIRED
    assert held.reason is LinkReason.PROVIDER_HOLD
    assert held.session["hold_code"] == "account_issue_accept_toc"


async def test_hook_username_needs_the_good_password(adapter: UnbillAdapter) -> None:
    with pytest.raises(LinkFailure) as failure:
        await settle(adapter, await login(adapter, "verified", "nope"))
    assert failure.value.reason is LinkReason.INVALID_CREDENTIALS


@pytest.mark.parametrize("username", ["user_good", "user_bad"])
async def test_a_test_status_that_is_no_valid_status_is_verified(
    adapter: UnbillAdapter, username: str
) -> None:
    """The seed: verified "as long as no other valid auth status is entered"."""
    state = await login(adapter, username, "any-password", test_status="on-fire")
    await assert_linked_with_one_bill(adapter, await settle(adapter, state))


class RecordingTransport(httpx.AsyncBaseTransport):
    """The in-process sandbox's transport, noting each request's method and path."""

    def __init__(self, app: Starlette) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.calls: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        return await self._inner.handle_async_request(request)


async def test_auths_are_created_and_read_only_by_unbills_routes() -> None:
    sandbox = UnbillSandbox(latency_seconds=0)
    transport = RecordingTransport(Starlette(routes=[sandbox.mount()]))
    adapter = UnbillAdapter("http://sandbox/unbill", "sandbox-api-key", transport=transport)
    try:
        state = await adapter.login("link-1", link_request("user_mfa"), idempotency_key="login-1")
        challenged = await adapter.poll(state.session)
        answers = [
            ChallengeAnswer(challenge_id=c.id, value=SecretStr("correct"))
            for c in challenged.challenges
        ]
        await adapter.answer(
            challenged.session, challenged.challenges, answers, idempotency_key="answer-1"
        )
        linked = await adapter.poll(challenged.session)
        assert linked.outcome is Outcome.LINKED
        await adapter.fetch_accounts(linked.session)
        await adapter.revoke(linked.session)
    finally:
        await adapter.aclose()
    client, auth = linked.session["client_id"], linked.session["auth_id"]
    documented = {
        ("POST", "/unbill/client"),
        ("GET", f"/unbill/auth/list/{client}"),
        ("POST", f"/unbill/auth/{auth}/answer-questions"),
        ("GET", f"/unbill/bill/list/{client}"),
        ("DELETE", f"/unbill/auth/{auth}"),
    }
    # Besides the documented routes, only the creation, which is a marked assumption.
    assert set(transport.calls) - documented == {("POST", "/unbill/auth")}
    assert ("GET", f"/unbill/auth/{auth}") not in transport.calls


async def test_a_gone_auth_reads_as_not_found(adapter: UnbillAdapter) -> None:
    linked = await settle(adapter, await login(adapter, "user_good"))
    await adapter.revoke(linked.session)
    with pytest.raises(ProviderRejectedRequest) as gone:
        await adapter.poll(linked.session)
    assert gone.value.status_code == 404


async def test_same_user_ref_twice_reuses_the_client(adapter: UnbillAdapter) -> None:
    user_ref = f"app-user-{uuid.uuid4()}"
    first = await settle(adapter, await login(adapter, "user_good", user_ref=user_ref))
    second = await settle(
        adapter,
        await login(adapter, "user_good", user_ref=user_ref, company_id="579b695decea110719b1874e"),
    )
    assert second.session["client_id"] == first.session["client_id"]
    assert second.session["auth_id"] != first.session["auth_id"]
    # Each link lists only its own company's bill.
    [first_bill] = await adapter.fetch_accounts(first.session)
    [second_bill] = await adapter.fetch_accounts(second.session)
    assert (first_bill.name, second_bill.name) == ("Netflix", "Time Warner Cable")


# ---------------------------------------------------------------------- parsing, no HTTP


def unbill_answering(
    created: dict[str, Any], listed: list[list[dict[str, Any]]]
) -> httpx.MockTransport:
    """An Unbill whose create answer is `created` and whose auth lists are `listed`, in turn."""
    lists = iter(listed)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/client":
            return httpx.Response(200, json={"clientId": SESSION["client_id"]})
        if request.url.path == "/auth":
            return httpx.Response(201, json=created)
        if request.url.path == f"/auth/list/{SESSION['client_id']}":
            return httpx.Response(200, json={"data": next(lists)})
        return httpx.Response(404, json={"message": "Not found."})

    return httpx.MockTransport(handler)


async def log_in_to(transport: httpx.MockTransport) -> ProviderState:
    adapter = UnbillAdapter("http://unbill.test", "key", transport=transport)
    try:
        return await adapter.login("link-1", link_request("user_good"), idempotency_key="k")
    finally:
        await adapter.aclose()


async def test_the_documented_list_reply_is_read_for_the_new_auth() -> None:
    """ "List all auths" answers `{"data": [auth objects]}`: here, the seed's auth object."""
    documented = UNBILL_PAGE.json("auth object")
    other = documented | {"_id": "b" * 24, "status": {"type": "authenticate"}}
    # The create answer says the auth's `_id` (an assumption): that auth is the one read.
    state = await log_in_to(
        unbill_answering({"_id": documented["_id"]}, [[other], [other, documented]])
    )
    assert (state.outcome, state.raw_status) == (Outcome.LINKED, "verified")
    assert state.session == {
        "client_id": SESSION["client_id"],
        "auth_id": documented["_id"],
        "company_id": documented["company"]["_id"],
    }


async def test_a_create_answer_in_the_older_shape_still_finds_the_new_auth() -> None:
    """The older reference answered `POST /auth` with a bill, not the auth: the new auth is the
    one at the company the list did not hold before."""
    documented = UNBILL_PAGE.json("auth object")
    older = {"_id": "b" * 24, "status": {"type": "verified"}, "company": documented["company"]}
    state = await log_in_to(
        unbill_answering({"bill": {"balance": 100}}, [[older], [older, documented]])
    )
    assert state.session["auth_id"] == documented["_id"]


async def test_a_create_the_list_does_not_show_is_passing_trouble() -> None:
    with pytest.raises(ProviderUnavailable):
        await log_in_to(unbill_answering({"_id": "c" * 24}, [[], []]))


def auth_body(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "_id": SESSION["auth_id"],
        "status": {"type": status},
        "company": {"_id": DEFAULT_COMPANY_ID, "name": "Netflix"},
    } | extra


def test_the_adapters_tables() -> None:
    assert UnbillAdapter.STATUSES.field == "status.type"
    assert set(STATUS_MEANINGS) == {"pending", "verified", "mfa-required", "hold", "authenticate"}
    assert UnbillAdapter.CHALLENGE_KINDS == {
        "questions": ChallengeKind.TEXT,
        "code": ChallengeKind.CODE,
        "prompt": ChallengeKind.PUSH_APPROVAL,
    }
    assert all(isinstance(m, StatusMeaning) and m.message for m in STATUS_MEANINGS.values())


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("pending", Outcome.PENDING), ("verified", Outcome.LINKED)],
)
def test_plain_outcomes(status: str, outcome: Outcome) -> None:
    state = state_from_auth(auth_body(status), SESSION)
    assert state.outcome is outcome
    assert state.raw_status == status
    assert state.session == SESSION
    assert state.message == STATUS_MEANINGS[status].message


def test_mfa_required_questions() -> None:
    mfa = {
        "method": "questions",
        "mfa": [
            {"question": SEED_QUESTIONS[0], "identifier": "1j5k2l1"},
            {"question": SEED_QUESTIONS[1], "identifier": "3buw78h3"},
        ],
    }
    state = state_from_auth(auth_body("mfa-required", mfa=mfa), SESSION)
    assert state.outcome is Outcome.CHALLENGED
    assert [(c.id, c.kind, c.prompt) for c in state.challenges] == [
        ("1j5k2l1", ChallengeKind.TEXT, SEED_QUESTIONS[0]),
        ("3buw78h3", ChallengeKind.TEXT, SEED_QUESTIONS[1]),
    ]


@pytest.mark.parametrize(
    ("method", "kind"), [("code", ChallengeKind.CODE), ("prompt", ChallengeKind.PUSH_APPROVAL)]
)
def test_mfa_required_code_and_prompt(method: str, kind: ChallengeKind) -> None:
    mfa = {"method": method, "mfa": [{"identifier": "x1"}]}
    [challenge] = state_from_auth(auth_body("mfa-required", mfa=mfa), SESSION).challenges
    assert (challenge.id, challenge.kind) == ("x1", kind)
    assert challenge.prompt  # a default sentence when Unbill sends no question


def test_prompt_without_items_still_waits() -> None:
    state = state_from_auth(auth_body("mfa-required", mfa={"method": "prompt"}), SESSION)
    [challenge] = state.challenges
    assert challenge.kind is ChallengeKind.PUSH_APPROVAL
    assert challenge.id == f"{SESSION['auth_id']}-prompt"


def test_mfa_required_without_questions_is_still_pending() -> None:
    mfa = {"method": "questions", "mfa": []}
    state = state_from_auth(auth_body("mfa-required", mfa=mfa), SESSION)
    assert state.outcome is Outcome.PENDING
    assert state.raw_status == "mfa-required"


def test_unknown_mfa_method_is_unsupported() -> None:
    mfa = {"method": "captcha", "mfa": [{"question": "?", "identifier": "c1"}]}
    with pytest.raises(LinkFailure) as failure:
        state_from_auth(auth_body("mfa-required", mfa=mfa), SESSION)
    assert failure.value.reason is LinkReason.UNSUPPORTED_MFA


def test_hold_reads_the_reason() -> None:
    reason = {
        "userMessage": "You need to login and verify your account information.",
        "code": "account_issue_verify_identity",
    }
    state = state_from_auth(auth_body("hold", reason=reason), SESSION)
    assert state.outcome is Outcome.ACTION_REQUIRED
    assert state.reason is LinkReason.PROVIDER_HOLD
    assert state.message == reason["userMessage"]
    assert state.session == SESSION | {"hold_code": "account_issue_verify_identity"}


def test_hold_without_reason_has_the_default_message() -> None:
    state = state_from_auth(auth_body("hold"), SESSION)
    assert state.message == STATUS_MEANINGS["hold"].message
    assert "hold_code" not in state.session


def test_authenticate_is_invalid_credentials_then_mfa_failed_after_answers() -> None:
    with pytest.raises(LinkFailure) as failure:
        state_from_auth(auth_body("authenticate"), SESSION)
    assert failure.value.reason is LinkReason.INVALID_CREDENTIALS
    with pytest.raises(LinkFailure) as after_mfa:
        state_from_auth(auth_body("authenticate"), SESSION | {MFA_ANSWERED: "true"})
    assert after_mfa.value.reason is LinkReason.MFA_FAILED
    assert after_mfa.value.raw_status == "authenticate"


@pytest.mark.parametrize("body", [{"status": {"type": "exploded"}}, {"status": "verified"}, {}])
def test_unknown_or_missing_status_is_transient(body: dict[str, Any]) -> None:
    with pytest.raises(ProviderUnavailable):
        state_from_auth(body, SESSION)
