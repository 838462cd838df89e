"""The MX adapter's translations, without a server: status words, challenges, request shapes.

The status expectations are written out here a second time on purpose: changing a word's meaning
in `providers/mx.py` must be a deliberate edit in two places, not a slip in one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from linkflow.models import (
    ChallengeAnswer,
    ChallengeKind,
    Credentials,
    LinkReason,
    LinkRequest,
    Provider,
)
from providers.base import (
    LinkFailure,
    Outcome,
    ProviderRejectedRequest,
    ProviderUnavailable,
)
from providers.mx import MX_ACCEPT, MxAdapter, normalize_challenge, state_from_member

CONNECTION_STATUSES = MxAdapter.STATUSES.meanings
SESSION = {"user_guid": "USR-1", "member_guid": "MBR-1"}
TEXT_CHALLENGE = {"field_name": None, "guid": "CRD-1", "label": "Your pet's name?", "type": 0}

PENDING, CHALLENGED, LINKED = Outcome.PENDING, Outcome.CHALLENGED, Outcome.LINKED
TRANSIENT = "ProviderUnavailable"
EXPECTED: dict[str, object] = {
    "CREATED": PENDING,
    "PENDING": PENDING,
    "RESUMED": PENDING,
    "RECONNECTED": PENDING,
    "UPDATED": PENDING,
    "DELAYED": PENDING,
    "TRANSFERRED": PENDING,
    "CHALLENGED": CHALLENGED,
    "CONNECTED": LINKED,
    "DENIED": LinkReason.INVALID_CREDENTIALS,
    "REJECTED": LinkReason.MFA_FAILED,
    "EXPIRED": LinkReason.MFA_TIMEOUT,
    "LOCKED": (Outcome.ACTION_REQUIRED, LinkReason.ACCOUNT_LOCKED),
    "IMPEDED": (Outcome.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD),
    "PREVENTED": LinkReason.INSTITUTION_UNAVAILABLE,
    "DISABLED": LinkReason.INSTITUTION_UNAVAILABLE,
    "DISCONTINUED": LinkReason.INSTITUTION_UNAVAILABLE,
    "CLOSED": LinkReason.INSTITUTION_UNAVAILABLE,
    "DEGRADED": TRANSIENT,
    "FAILED": TRANSIENT,
    "DISCONNECTED": TRANSIENT,
}


def test_the_table_covers_exactly_the_expected_words() -> None:
    assert set(CONNECTION_STATUSES) == set(EXPECTED)


@pytest.mark.parametrize("word", list(EXPECTED))
def test_each_status_word(word: str) -> None:
    expected = EXPECTED[word]
    member = {
        "connection_status": word,
        "is_being_aggregated": False,
        "challenges": [TEXT_CHALLENGE],
    }
    if expected == TRANSIENT:
        with pytest.raises(ProviderUnavailable, match=word):
            state_from_member(member, SESSION)
        assert CONNECTION_STATUSES[word].transient
    elif isinstance(expected, LinkReason):
        with pytest.raises(LinkFailure) as failure:
            state_from_member(member, SESSION)
        assert failure.value.reason is expected
        assert failure.value.raw_status == word
        assert failure.value.message.endswith(".")
    else:
        outcome, reason = expected if isinstance(expected, tuple) else (expected, None)
        state = state_from_member(member, SESSION)
        assert state.outcome is outcome
        assert state.reason is reason
        assert state.raw_status == word
        assert state.session == SESSION
        assert state.message
        assert bool(state.challenges) is (outcome is CHALLENGED)


def test_every_meaning_is_exactly_one_kind() -> None:
    for word, meaning in CONNECTION_STATUSES.items():
        kinds = [meaning.outcome is not None, meaning.failure is not None, meaning.transient]
        assert kinds.count(True) == 1, word
        assert (meaning.reason is not None) == (meaning.outcome is Outcome.ACTION_REQUIRED), word
        assert meaning.message, word


def test_connected_while_still_aggregating_is_pending() -> None:
    state = state_from_member({"connection_status": "CONNECTED", "is_being_aggregated": True}, {})
    assert state.outcome is Outcome.PENDING
    assert state.raw_status == "CONNECTED"


def test_challenged_without_challenges_is_pending() -> None:
    state = state_from_member({"connection_status": "CHALLENGED", "challenges": []}, {})
    assert state.outcome is Outcome.PENDING


@pytest.mark.parametrize("status", ["HALTED", "", None, 7])
def test_unknown_status_is_transient_not_a_key_error(status: object) -> None:
    with pytest.raises(ProviderUnavailable, match="connection_status"):
        state_from_member({"connection_status": status}, SESSION)


@pytest.mark.parametrize(
    ("raw_type", "kind"),
    [
        (0, ChallengeKind.TEXT),
        ("TEXT", ChallengeKind.TEXT),
        (1, ChallengeKind.OPTIONS),
        ("OPTIONS", ChallengeKind.OPTIONS),
        (2, ChallengeKind.CODE),
        ("TOKEN", ChallengeKind.CODE),
        ("2", ChallengeKind.CODE),
        (3, ChallengeKind.TEXT),
        ("IMAGE_DATA", ChallengeKind.TEXT),
        (4, ChallengeKind.IMAGE_OPTIONS),
        ("image_options", ChallengeKind.IMAGE_OPTIONS),
    ],
)
def test_challenge_types_in_both_forms(raw_type: object, kind: ChallengeKind) -> None:
    raw = {
        "guid": "CRD-9",
        "label": "Pick one",
        "type": raw_type,
        "options": [{"label": "A", "value": "a"}],
    }
    challenge = normalize_challenge(raw)
    assert challenge.kind is kind
    assert challenge.id == "CRD-9"
    assert challenge.prompt == "Pick one"
    assert challenge.option_values() == (["a"] if kind.has_options else [])


@pytest.mark.parametrize("raw_type", [99, None, "CAPTCHA"])
def test_undocumented_challenge_types_are_unsupported_mfa(raw_type: object) -> None:
    with pytest.raises(LinkFailure) as failure:
        normalize_challenge({"guid": "CRD-9", "label": "Type the letters", "type": raw_type})
    assert failure.value.reason is LinkReason.UNSUPPORTED_MFA


@pytest.mark.parametrize(
    ("label", "kind"),
    [
        ("Enter your PIN", ChallengeKind.SECRET),
        ("Re-enter your password", ChallengeKind.SECRET),
        ("What is your favourite shopping mall?", ChallengeKind.TEXT),
        ("What city were you born in?", ChallengeKind.TEXT),
    ],
)
def test_text_questions_asking_for_secrets(label: str, kind: ChallengeKind) -> None:
    assert normalize_challenge({"guid": "CRD-1", "label": label, "type": 0}).kind is kind


def test_image_challenges_carry_their_pictures() -> None:
    picture = normalize_challenge(
        {"guid": "CRD-1", "label": "What is in the picture?", "type": 3, "image_data": "data:x"}
    )
    assert picture.kind is ChallengeKind.TEXT
    assert picture.image_data_uri == "data:x"

    choice = normalize_challenge(
        {
            "guid": "CRD-2",
            "label": "Which is your picture?",
            "type": "IMAGE_OPTIONS",
            "options": [
                {"label": "Cat", "value": "img-1", "data_uri": "data:cat"},
                {"label": "Dog", "value": "img-2", "data_uri": "data:dog"},
            ],
        }
    )
    assert choice.kind is ChallengeKind.IMAGE_OPTIONS
    assert [(o.value, o.label, o.image_data_uri) for o in choice.options] == [
        ("img-1", "Cat", "data:cat"),
        ("img-2", "Dog", "data:dog"),
    ]
    assert choice.image_data_uri is None


def test_challenge_without_guid_is_transient() -> None:
    with pytest.raises(ProviderUnavailable):
        normalize_challenge({"label": "?", "type": 0})


# ---------------------------------------------------------------------- requests, over a mock


Handler = Callable[[httpx.Request], httpx.Response]


def mock_adapter(handler: Handler) -> MxAdapter:
    """An MxAdapter whose own client, headers and auth as it builds them, talks to `handler`."""
    return MxAdapter(
        "https://mx.test", "client-id", "api-key", transport=httpx.MockTransport(handler)
    )


def reply(status: int, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body) if body is not None else httpx.Response(status)


CREDENTIALS = {
    "credentials": [
        {"guid": "CRD-u", "field_name": "username"},
        {"guid": "CRD-p", "field_name": "password"},
    ]
}
CREATED_MEMBER = {"member": {"guid": "MBR-1", "connection_status": "CREATED"}}


async def test_login_sends_mx_headers_and_maps_credentials() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/users":
            return reply(200, {"user": {"guid": "USR-1", "id": "app-7"}})
        if request.url.path == "/institutions/mxbank/credentials":
            return reply(200, CREDENTIALS)
        return reply(202, CREATED_MEMBER)

    adapter = mock_adapter(handler)
    request = LinkRequest(
        provider=Provider.MX,
        user_ref="app-7",
        credentials=Credentials(username="user_good", password="pass_good"),
    )
    state = await adapter.login("link-1", request, idempotency_key="key-1")
    await adapter.aclose()

    assert state.session == SESSION
    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/users"),
        ("GET", "/institutions/mxbank/credentials"),
        ("POST", "/users/USR-1/members"),
    ]
    for sent in seen:
        assert sent.headers["Accept"] == MX_ACCEPT
        assert (
            sent.headers["Authorization"]
            == f"Basic {base64.b64encode(b'client-id:api-key').decode()}"
        )
    assert json.loads(seen[0].content) == {"user": {"id": "app-7", "metadata": None}}
    assert json.loads(seen[2].content) == {
        "member": {
            "institution_code": "mxbank",
            "credentials": [
                {"guid": "CRD-u", "value": "user_good"},
                {"guid": "CRD-p", "value": "pass_good"},
            ],
        }
    }
    assert seen[2].headers["Idempotency-Key"] == "key-1"
    assert "Idempotency-Key" not in seen[0].headers


async def test_existing_user_is_found_across_pages() -> None:
    pages: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/users":
            return reply(409, {"error": {"message": "exists"}})
        if request.url.path == "/users":
            page = request.url.params["page"]
            pages.append(page)
            users = (
                [{"guid": "USR-other", "id": "x"}]
                if page == "1"
                else [{"guid": "USR-1", "id": "app-7"}]
            )
            pagination = {"current_page": int(page), "total_pages": 2}
            return reply(200, {"users": users, "pagination": pagination})
        if request.url.path.endswith("/credentials"):
            return reply(200, CREDENTIALS)
        return reply(202, CREATED_MEMBER)

    adapter = mock_adapter(handler)
    request = LinkRequest(
        provider=Provider.MX,
        user_ref="app-7",
        credentials=Credentials(username="user_good", password="pass_good"),
    )
    state = await adapter.login("link-1", request, idempotency_key="key-1")
    await adapter.aclose()
    assert state.session["user_guid"] == "USR-1"
    assert pages == ["1", "2"]


async def test_answer_sends_every_answer_revealed() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply(202, {"member": {"guid": "MBR-1", "connection_status": "RESUMED"}})

    adapter = mock_adapter(handler)
    challenge = normalize_challenge(TEXT_CHALLENGE)
    state = await adapter.answer(
        SESSION,
        [challenge],
        [ChallengeAnswer(challenge_id="CRD-1", value="Rex")],
        idempotency_key="key-2",
    )
    await adapter.aclose()
    assert state.outcome is Outcome.PENDING
    [sent] = seen
    assert (sent.method, sent.url.path) == ("PUT", "/users/USR-1/members/MBR-1/resume")
    assert sent.headers["Idempotency-Key"] == "key-2"
    assert json.loads(sent.content) == {
        "member": {"challenges": [{"guid": "CRD-1", "value": "Rex"}]}
    }


async def test_poll_lists_challenges_when_status_omits_them() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/status"):
            return reply(200, {"member": {"guid": "MBR-1", "connection_status": "CHALLENGED"}})
        return reply(200, {"challenges": [TEXT_CHALLENGE], "pagination": {"total_pages": 1}})

    adapter = mock_adapter(handler)
    state = await adapter.poll(SESSION)
    await adapter.aclose()
    assert state.outcome is Outcome.CHALLENGED
    assert [c.id for c in state.challenges] == ["CRD-1"]


async def test_accounts_follow_pages_and_keep_exact_amounts() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        account = (
            f'{{"guid": "ACT-{page}", "name": "A{page}", "type": "CHECKING",'
            f' "account_number": "00012345{page}", "balance": 10.10, "currency_code": "USD"}}'
        )
        pagination = f'{{"current_page": {page}, "total_pages": 3}}'
        # Raw text, so that the amount reaches the adapter exactly as written here.
        raw = f'{{"accounts": [{account}], "pagination": {pagination}}}'
        return httpx.Response(200, text=raw)

    adapter = mock_adapter(handler)
    accounts = await adapter.fetch_accounts(SESSION)
    await adapter.aclose()
    assert [a.id for a in accounts] == ["ACT-1", "ACT-2", "ACT-3"]
    assert [a.mask for a in accounts] == ["3451", "3452", "3453"]
    assert {a.balance for a in accounts} == {"10.10"}


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, None), (503, ProviderUnavailable), (403, ProviderRejectedRequest)],
)
async def test_revoke(status: int, error: type[Exception] | None) -> None:
    adapter = mock_adapter(lambda request: reply(status, {"error": {}}))
    if error is None:
        await adapter.revoke(SESSION)
    else:
        with pytest.raises(error):
            await adapter.revoke(SESSION)
    await adapter.aclose()


async def test_malformed_success_body_is_transient() -> None:
    adapter = mock_adapter(lambda request: httpx.Response(200, text="<html>"))
    with pytest.raises(ProviderUnavailable, match="invalid JSON"):
        await adapter.poll(SESSION)
    await adapter.aclose()


async def test_rate_limit_is_transient_with_retry_after() -> None:
    adapter = mock_adapter(lambda request: httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(ProviderUnavailable) as unavailable:
        await adapter.poll(SESSION)
    await adapter.aclose()
    assert unavailable.value.retry_after_seconds == 7
