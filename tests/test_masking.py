"""What the codec server shows people: every payload linkflow writes, with every secret masked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.provider import (
    AnswerInput,
    LoginInput,
    ReauthenticateInput,
    SessionInput,
    WaitInput,
)
from linkflow.masking import MASK, is_secret_name, mask_payload, mask_secrets
from linkflow.models import (
    CarriedLink,
    Challenge,
    ChallengeAnswer,
    ChallengeKind,
    Credentials,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    MfaSubmission,
    Provider,
    RelinkRequest,
)
from providers.base import Outcome, ProviderState

PASSWORD = "Mask-pa55-q81"
ACCOUNT_NUMBER = "acct-55501234"
ANSWER = "answer-Boston-7731"
OAUTH_KEY = "oauth_7Hk2-synapse"
MFA_TOKEN = "mfa-access-token-0bd1"
REFRESH_TOKEN = "refresh-8812-token"
FINGERPRINT = "fp-3e4d5c6b"
SECRETS = (PASSWORD, ACCOUNT_NUMBER, ANSWER, OAUTH_KEY, MFA_TOKEN, REFRESH_TOKEN, FINGERPRINT)

SYNAPSE_SESSION = {
    "user_id": "syn-user-61",
    "oauth_key": OAUTH_KEY,
    "fingerprint": FINGERPRINT,
    "access_token": MFA_TOKEN,
    "refresh_token": REFRESH_TOKEN,
    "round": "1",
    "mfa_type": "question",
    "mfa_message": "What city were you born in?",
    "raw_status": "10",
}
READABLE_SESSIONS = {
    Provider.MX: {"user_guid": "USR-1", "member_guid": "MBR-2"},
    Provider.ARCADIA: {"credential_id": "cred-3", "job_id": "job-4", "verification_method": "SMS"},
    Provider.TEAL: {"user_id": "app-user", "account_id": "teal-acct-5"},
    Provider.UNBILL: {"client_id": "cl-6", "auth_id": "auth-7", "company_id": "co-8"},
}
NOW = datetime(2026, 5, 1, tzinfo=UTC)


def credentials() -> Credentials:
    return Credentials(
        username="user_mfa", password=PASSWORD, extra={"account_number": ACCOUNT_NUMBER}
    )


def request() -> LinkRequest:
    return LinkRequest(provider=Provider.SYNAPSE, user_ref="app-user-9", credentials=credentials())


def challenge() -> Challenge:
    return Challenge(id="synapse-mfa-1", kind=ChallengeKind.TEXT, prompt="Where were you born?")


def answer() -> ChallengeAnswer:
    return ChallengeAnswer(challenge_id="synapse-mfa-1", value=ANSWER)


def carried() -> CarriedLink:
    snapshot = LinkSnapshot(
        link_id="link-1",
        provider=Provider.SYNAPSE,
        status=LinkStatus.MFA_REQUIRED,
        pending_challenges=[challenge()],
        started_at=NOW,
        updated_at=NOW,
    )
    return CarriedLink(snapshot=snapshot, provider_session=SYNAPSE_SESSION, events_sent=3)


PAYLOADS: dict[str, BaseModel] = {
    "LinkRequest": request(),
    "MfaSubmission": MfaSubmission(answers=[answer()]),
    "RelinkRequest": RelinkRequest(credentials=credentials()),
    "CarriedLink": carried(),
    "LoginInput": LoginInput(link_id="link-1", request=request()),
    "WaitInput": WaitInput(provider=Provider.SYNAPSE, session=SYNAPSE_SESSION),
    "AnswerInput": AnswerInput(
        provider=Provider.SYNAPSE,
        session=SYNAPSE_SESSION,
        challenges=[challenge()],
        answers=[answer()],
    ),
    "SessionInput": SessionInput(provider=Provider.SYNAPSE, session=SYNAPSE_SESSION),
    "ReauthenticateInput": ReauthenticateInput(
        link_id="link-1", request=request(), session=SYNAPSE_SESSION
    ),
    "ProviderState": ProviderState(
        outcome=Outcome.CHALLENGED,
        raw_status="10",
        session=SYNAPSE_SESSION,
        challenges=[challenge()],
    ),
}


def as_people_see_it(model: BaseModel) -> str:
    [payload] = pydantic_data_converter.payload_converter.to_payloads([model])
    assert any(secret in payload.data.decode() for secret in SECRETS), "nothing to mask"
    return mask_payload(payload).data.decode()


@pytest.mark.parametrize("name", PAYLOADS)
def test_no_secret_of_any_payload_reaches_a_person(name: str) -> None:
    shown = as_people_see_it(PAYLOADS[name])
    for secret in SECRETS:
        assert secret not in shown
    assert MASK in shown


def test_the_story_stays_readable() -> None:
    shown = json.loads(as_people_see_it(PAYLOADS["AnswerInput"]))
    assert shown["provider"] == "synapse"
    assert shown["answers"] == [{"challenge_id": "synapse-mfa-1", "value": MASK}]
    assert shown["challenges"][0]["prompt"] == "Where were you born?"
    session = shown["session"]
    assert session["user_id"] == "syn-user-61"
    assert session["mfa_message"] == "What city were you born in?"
    assert session["round"] == "1"
    for secret_field in ("oauth_key", "fingerprint", "access_token", "refresh_token"):
        assert session[secret_field] == MASK

    login = json.loads(as_people_see_it(PAYLOADS["LoginInput"]))
    assert login["request"]["user_ref"] == "app-user-9"
    assert login["request"]["credentials"] == {
        "username": "user_mfa",
        "password": MASK,
        "extra": {"account_number": MASK},
    }


@pytest.mark.parametrize("provider", list(READABLE_SESSIONS))
def test_provider_ids_in_sessions_stay_readable(provider: Provider) -> None:
    session = READABLE_SESSIONS[provider]
    assert mask_secrets({"session": session}) == {"session": session}


def test_an_answer_is_masked_in_every_shape_a_caller_may_send() -> None:
    shapes: list[Any] = [
        {"answers": [{"challenge_id": "c1", "value": ANSWER}]},
        {"answers": [{"value": ANSWER}]},  # no id: still inside `answers`
        {"answers": [{"challenge_id": "c1", "value": {"nested": ANSWER}}]},
        {"member": {"challenges": [{"guid": "CRD-1", "value": ANSWER}]}},
        {"mfa_answer": ANSWER},
        [[{"challenge_id": "c1", "value": ANSWER}]],
    ]
    for shape in shapes:
        assert ANSWER not in json.dumps(mask_secrets(shape)), shape


def test_options_of_a_challenge_are_not_answers() -> None:
    option = {"value": "phone-1", "label": "Text ***-1234"}
    assert mask_secrets({"options": [option]}) == {"options": [option]}


SECRET_NAMES = [
    "password",
    "bank_pw",
    "oauthKey",
    "api-key",
    "APIKey",
    "client_secret",
    "webhook_secrets",
    "sessionId",
    "pin",
    "otp",
    "Authorization",
]
READABLE_NAMES = [
    "member_guid",
    "credential_id",
    "key_id",
    "auth_id",
    "hold_code",
    "username",
    "answers_submitted",
    "spinner",
    "shipping",
    "session",
    "mfa_answered",
]


def test_secret_names_are_recognised_in_any_case_style() -> None:
    assert [name for name in SECRET_NAMES if not is_secret_name(name)] == []
    assert [name for name in READABLE_NAMES if is_secret_name(name)] == []


def test_null_secrets_stay_null_and_payloads_that_are_not_json_pass_through() -> None:
    assert mask_secrets({"password": None}) == {"password": None}
    binary = Payload(metadata={"encoding": b"binary/plain"}, data=b"raw bytes")
    assert mask_payload(binary) == binary


@pytest.mark.parametrize(
    "data",
    [
        b'{"password": "x", ',  # cut short
        b'{"a":' * 5000 + b'{"password":"x"}' + b"}" * 5000,  # deeper than Python recurses
    ],
    ids=["malformed", "too-deep"],
)
def test_json_that_cannot_be_read_is_hidden_whole(data: bytes) -> None:
    masked = mask_payload(Payload(metadata={"encoding": b"json/plain"}, data=data))
    assert json.loads(masked.data) == MASK
    assert masked.metadata["encoding"] == b"json/plain"
