"""The MX adapter's translations, without a server: status words, challenges, request shapes.

The status expectations are written out here a second time on purpose: changing a word's meaning
in `providers/mx.py` must be a deliberate edit in two places, not a slip in one. The documented
examples (the seed's guide, the reference's schemas and word lists) are read from
tests/fixtures/documents/.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from linkflow.config import ProviderSettings
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
from providers.mx import (
    MX_ACCEPT,
    MxAdapter,
    normalize_challenge,
    picture_uri,
    state_from_member,
)
from providers.status import Handling
from sandbox.mx import solid_png
from tests.fixtures.documents import read_document

MX_GUIDE = read_document("mx_handling_mfa.txt")
MX_REFERENCE = read_document("mx_platform_api_reference.txt")
CONNECTION_STATUSES = MxAdapter.STATUSES.meanings
SESSION = {"user_guid": "USR-1", "member_guid": "MBR-1"}
TEXT_CHALLENGE = {"field_name": None, "guid": "CRD-1", "label": "Your pet's name?", "type": 0}

PENDING, CHALLENGED, LINKED = Outcome.PENDING, Outcome.CHALLENGED, Outcome.LINKED
TRANSIENT = "ProviderUnavailable"
NEW_LOGIN = (Outcome.ACTION_REQUIRED, LinkReason.REAUTH_REQUIRED)
EXPECTED: dict[str, object] = {
    "CREATED": PENDING,
    "RESUMED": PENDING,
    "UPDATED": PENDING,
    "RECONNECTED": PENDING,
    "PENDING": PENDING,
    "DELAYED": PENDING,
    "CHALLENGED": CHALLENGED,
    # A wrong answer, after which another challenge may follow.
    "REJECTED": CHALLENGED,
    "CONNECTED": LINKED,
    # Paused, still connected.
    "DISABLED": LINKED,
    "DENIED": LinkReason.INVALID_CREDENTIALS,
    "EXPIRED": LinkReason.MFA_TIMEOUT,
    "PREVENTED": NEW_LOGIN,
    "IMPAIRED": NEW_LOGIN,
    "IMPORTED": NEW_LOGIN,
    "null": NEW_LOGIN,
    "LOCKED": (Outcome.ACTION_REQUIRED, LinkReason.ACCOUNT_LOCKED),
    "IMPEDED": (Outcome.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD),
    "DISCONTINUED": LinkReason.INSTITUTION_UNAVAILABLE,
    "CLOSED": LinkReason.INSTITUTION_UNAVAILABLE,
    "DEGRADED": TRANSIENT,
    "FAILED": TRANSIENT,
    "DISCONNECTED": TRANSIENT,
}


def as_sent(word: str) -> str | None:
    """The word as MX sends it: MX's status of a member without credentials is JSON null."""
    return None if word == "null" else word


def test_the_table_covers_exactly_the_expected_words() -> None:
    assert set(CONNECTION_STATUSES) == set(EXPECTED)


def test_the_table_has_every_word_mx_documents_and_no_other() -> None:
    assert set(CONNECTION_STATUSES) == {*MX_REFERENCE.words("connection statuses"), "null"}


def test_every_status_mx_says_the_user_can_act_on_waits_for_the_user() -> None:
    for word in MX_REFERENCE.words("end-user-actionable connection statuses"):
        meaning = CONNECTION_STATUSES[word]
        assert meaning.handling in (Handling.CHALLENGED, Handling.NEEDS_USER, Handling.TERMINAL)
        assert meaning.who_acts.value == "user", word


@pytest.mark.parametrize("word", list(EXPECTED))
def test_each_status_word(word: str) -> None:
    expected = EXPECTED[word]
    member = {
        "connection_status": as_sent(word),
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


@pytest.mark.parametrize("word", [w for w, e in EXPECTED.items() if e is not CHALLENGED])
def test_any_word_but_a_challenge_while_mx_still_aggregates_is_pending(word: str) -> None:
    # As MX's Connect widget reads a status: wait for the aggregation to finish first.
    member = {"connection_status": as_sent(word), "is_being_aggregated": True}
    state = state_from_member(member, SESSION)
    assert (state.outcome, state.raw_status) == (Outcome.PENDING, word)
    assert state.message == "Connecting to your bank."


def test_challenged_without_challenges_is_pending() -> None:
    state = state_from_member({"connection_status": "CHALLENGED", "challenges": []}, {})
    assert state.outcome is Outcome.PENDING


def test_rejected_while_mx_goes_on_waits_for_the_next_challenge() -> None:
    state = state_from_member({"connection_status": "REJECTED", "is_being_aggregated": True}, {})
    assert (state.outcome, state.raw_status) == (Outcome.PENDING, "REJECTED")
    assert state.message == CONNECTION_STATUSES["REJECTED"].message


def test_rejected_once_mx_stopped_ends_the_login_mfa_failed() -> None:
    with pytest.raises(LinkFailure) as failure:
        state_from_member({"connection_status": "REJECTED", "is_being_aggregated": False}, {})
    assert (failure.value.reason, failure.value.raw_status) == (LinkReason.MFA_FAILED, "REJECTED")


def test_disabled_stays_linked_and_says_the_updates_are_paused() -> None:
    state = state_from_member({"connection_status": "DISABLED", "is_being_aggregated": False}, {})
    assert (state.outcome, state.raw_status, state.reason) == (LINKED, "DISABLED", None)
    assert state.message is not None
    assert "paused" in state.message


@pytest.mark.parametrize("member", [{"connection_status": s} for s in ("HALTED", "", 7)] + [{}])
def test_unknown_or_missing_status_is_transient_not_a_key_error(member: dict[str, Any]) -> None:
    with pytest.raises(ProviderUnavailable, match="connection_status"):
        state_from_member(member, SESSION)


def test_words_mx_does_not_document_are_not_read() -> None:
    # TRANSFERRED was once in the table; MX's reference has no such word.
    with pytest.raises(ProviderUnavailable, match="TRANSFERRED"):
        state_from_member({"connection_status": "TRANSFERRED"}, SESSION)


PNG = solid_png(10, 20, 30)
PNG_BASE64 = base64.b64encode(PNG).decode()
PNG_URI = f"data:image/png;base64,{PNG_BASE64}"
JPEG_BASE64 = base64.b64encode(b"\xff\xd8\xff\xe0 a JPEG's first bytes").decode()


def any_challenge(raw_type: object) -> dict[str, Any]:
    """A challenge of `raw_type` with every part a type may need."""
    return {
        "guid": "CRD-9",
        "label": "Pick one",
        "type": raw_type,
        "options": [{"guid": "CRD-o", "label": "A", "value": "a"}],
        "image_options": [{"guid": "CRD-i", "label": "B", "value": "b", "data_uri": PNG_URI}],
        "image_data": PNG_BASE64,
    }


@pytest.mark.parametrize(
    ("raw_type", "kind", "values"),
    [
        ("TEXT", ChallengeKind.TEXT, []),
        ("OPTIONS", ChallengeKind.OPTIONS, ["a"]),
        ("TOKEN", ChallengeKind.CODE, []),
        ("IMAGE_DATA", ChallengeKind.TEXT, []),
        ("IMAGE_OPTIONS", ChallengeKind.IMAGE_OPTIONS, ["b"]),
        (" image_options ", ChallengeKind.IMAGE_OPTIONS, ["b"]),
        # The seed's example numbers its text question 0; other numbers as MX's Connect widget
        # numbers its credential types (an assumption in providers/mx.py).
        (0, ChallengeKind.TEXT, []),
        ("0", ChallengeKind.TEXT, []),
        (2, ChallengeKind.OPTIONS, ["a"]),
        (12, ChallengeKind.CODE, []),
        (13, ChallengeKind.TEXT, []),
        (14, ChallengeKind.IMAGE_OPTIONS, ["b"]),
    ],
)
def test_challenge_types_by_name_and_by_the_seeds_number(
    raw_type: object, kind: ChallengeKind, values: list[str]
) -> None:
    challenge = normalize_challenge(any_challenge(raw_type))
    assert challenge.kind is kind
    assert challenge.id == "CRD-9"
    assert challenge.prompt == "Pick one"
    assert challenge.option_values() == values


def test_every_documented_challenge_type_has_a_kind() -> None:
    assert list(MxAdapter.CHALLENGE_KINDS) == MX_REFERENCE.words("challenge types")


@pytest.mark.parametrize("raw_type", [99, None, "CAPTCHA", 1, True, "PASSWORD"])
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


def test_image_data_is_bare_base64_shown_as_a_data_uri() -> None:
    picture = normalize_challenge(
        {
            "guid": "CRD-1",
            "label": "What is in the picture?",
            "type": "IMAGE_DATA",
            "image_data": PNG_BASE64,
        }
    )
    assert picture.kind is ChallengeKind.TEXT
    assert picture.image_data_uri == PNG_URI
    assert picture.options == []


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        (PNG_BASE64, PNG_URI),
        # Wrapped base64, as some encoders write it.
        (f"{PNG_BASE64[:20]}\n{PNG_BASE64[20:]}", PNG_URI),
        (JPEG_BASE64, f"data:image/jpeg;base64,{JPEG_BASE64}"),
        (PNG_URI, PNG_URI),
        ("data:text/html;base64,PHNjcmlwdD4=", None),
        ("Who is this guy?", None),
        ("", None),
        (None, None),
    ],
)
def test_a_picture_becomes_a_data_uri_or_nothing(sent: object, shown: str | None) -> None:
    assert picture_uri(sent) == shown


def test_an_image_data_challenge_without_a_picture_is_passing_trouble() -> None:
    with pytest.raises(ProviderUnavailable, match="IMAGE_DATA"):
        normalize_challenge({"guid": "CRD-1", "label": "?", "type": "IMAGE_DATA"})


def test_image_options_reach_the_user_as_choices_with_their_pictures() -> None:
    choice = normalize_challenge(
        {
            "guid": "CRD-2",
            "label": "Which is your picture?",
            "type": "IMAGE_OPTIONS",
            "image_options": [
                {"guid": "CRD-a", "label": "Cat", "value": "img-1", "data_uri": PNG_URI},
                {"guid": "CRD-b", "label": "Dog", "value": "img-2", "data_uri": PNG_BASE64},
                # No picture: nothing to choose by, so not offered.
                {"guid": "CRD-c", "label": "Fox", "value": "img-3"},
                # No value: answered by its guid.
                {"guid": "CRD-d", "label": "Owl", "data_uri": PNG_URI},
            ],
        }
    )
    assert choice.kind is ChallengeKind.IMAGE_OPTIONS
    assert [(o.value, o.label, o.image_data_uri) for o in choice.options] == [
        ("img-1", "Cat", PNG_URI),
        ("img-2", "Dog", PNG_URI),
        ("CRD-d", "Owl", PNG_URI),
    ]
    assert choice.image_data_uri is None


def test_image_options_sent_as_options_are_read_too() -> None:
    choice = normalize_challenge(
        {
            "guid": "CRD-2",
            "label": "Which?",
            "type": "IMAGE_OPTIONS",
            "options": [{"label": "Cat", "value": "img-1", "data_uri": PNG_URI}],
        }
    )
    assert [(o.value, o.image_data_uri) for o in choice.options] == [("img-1", PNG_URI)]


@pytest.mark.parametrize("raw_type", ["OPTIONS", "IMAGE_OPTIONS"])
def test_a_choice_with_nothing_to_choose_is_passing_trouble(raw_type: str) -> None:
    with pytest.raises(ProviderUnavailable, match=raw_type):
        normalize_challenge({"guid": "CRD-2", "label": "Which?", "type": raw_type})


# ---------------------------------------------------------------------- the documented examples


def test_the_guides_challenged_example_asks_its_text_question() -> None:
    member = MX_GUIDE.json("challenged status example")["member"]
    state = state_from_member(member, SESSION)
    assert (state.outcome, state.raw_status) == (Outcome.CHALLENGED, "CHALLENGED")
    [challenge] = state.challenges
    assert (challenge.id, challenge.kind, challenge.prompt) == (
        "CRD-8f841084-66cb-4e3d-9253-96f97093100a",
        ChallengeKind.TEXT,
        "What city were you born in?",
    )


def test_the_references_picture_option_is_offered_with_its_picture() -> None:
    example = MX_REFERENCE.json("ImageOptionResponse example")
    challenge = normalize_challenge(
        {"guid": "CRD-1", "label": "Which?", "type": "IMAGE_OPTIONS", "image_options": [example]}
    )
    [option] = challenge.options
    assert (option.value, option.label, option.image_data_uri) == (
        example["value"],
        example["label"],
        example["data_uri"],
    )


def test_the_references_option_is_offered_by_its_value() -> None:
    example = MX_REFERENCE.json("OptionResponse example")
    challenge = normalize_challenge(
        {"guid": "CRD-1", "label": "Which?", "type": "OPTIONS", "options": [example]}
    )
    assert [(o.value, o.label) for o in challenge.options] == [(example["value"], example["label"])]


def test_the_references_challenge_example_has_no_real_picture_so_it_is_not_shown() -> None:
    # Its `image_data` is a placeholder sentence, not base64: no broken picture reaches the user.
    with pytest.raises(ProviderUnavailable, match="IMAGE_DATA"):
        normalize_challenge(MX_REFERENCE.json("ChallengeResponse example"))
    example = MX_REFERENCE.json("ChallengeResponse example") | {"image_data": PNG_BASE64}
    assert normalize_challenge(example).image_data_uri == PNG_URI


# ---------------------------------------------------------------------- MX's polling guidance


def test_mx_asks_for_three_seconds_between_status_reads() -> None:
    [seconds] = MX_REFERENCE.words("minimum polling interval")
    assert MxAdapter.MIN_POLL_INTERVAL_SECONDS == float(seconds) == 3.0
    real = MxAdapter("https://int-api.mx.com", "id", "key")
    assert real.min_poll_interval_seconds == 3.0


async def test_against_the_sandbox_the_adapter_may_poll_faster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = ProviderSettings(sandbox_url="http://127.0.0.1:8099")
    sandboxed = MxAdapter.from_settings(settings)
    monkeypatch.setenv("LINKFLOW_MX_BASE_URL", "https://int-api.mx.com")
    real = MxAdapter.from_settings(settings)
    try:
        assert sandboxed.min_poll_interval_seconds == 0.0
        assert real.min_poll_interval_seconds == MxAdapter.MIN_POLL_INTERVAL_SECONDS
    finally:
        await sandboxed.aclose()
        await real.aclose()


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
    # The reference's resume body has the same shape.
    documented = MX_REFERENCE.json("MemberResumeRequestBody example")
    assert set(documented["member"]["challenges"][0]) == {"guid", "value"}


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


async def test_challenges_answered_no_content_are_none_yet() -> None:
    # MX's "List member challenges" answers 204 once the member is no longer CHALLENGED.
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/status"):
            return reply(200, {"member": {"guid": "MBR-1", "connection_status": "CHALLENGED"}})
        return reply(204)

    adapter = mock_adapter(handler)
    state = await adapter.poll(SESSION)
    await adapter.aclose()
    assert (state.outcome, state.challenges) == (Outcome.PENDING, [])


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
