"""The Arcadia sandbox's raw HTTP answers, field by field against Arcadia's Plug API page.

The seed (its passages kept in tests/fixtures/documents/arcadia_submit_mfa_method.txt) is Arcadia's
"Submit Multi-factor Authentication Method" reference page as text: it names the credential's
statuses and documents each field by its description, not by a JSON example. These tests read the
status words from that document and check the sandbox's field names, types and refusals against
it, its MFA routes against the methods and paths Arcadia's reference gives them ("Submit
Multi-factor Authentication Method", "Submit One Time Passcode", "Update Credential"), and its
`isCustomerActionRequired` and `isAccessible` against Arcadia's "Status and Status Detail
Descriptions" table; the adapter's contract tests only prove that the adapter and the sandbox
agree.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from providers.arcadia import NEWER_STATUS_DETAILS
from sandbox.arcadia import (
    CREDENTIAL_STATUSES,
    MFA_EXPIRY_SECONDS,
    STATUS_OF_DETAIL,
    TOKEN_TTL_SECONDS,
    ArcadiaSandbox,
    create_sandbox,
)
from tests.fixtures.documents import read_document
from tests.fixtures.sandbox import FakeClock, in_process_client, read_until

ARCADIA_PAGE = read_document("arcadia_submit_mfa_method.txt")
CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}
VERSION = {"Arcadia-Version": "2024-02-21"}
PHONE_1, PHONE_2 = "(***) ***-4321", "(***) ***-8765"

# The credential fields of the seed's response body, in its order: each named for its
# description there (Assumption where the page gives no name; see sandbox/arcadia.py).
SEED_CREDENTIAL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "correlationId": (str, type(None)),  # "A string value you can set to help you reconcile"
    "createdAt": str,  # "A timestamp indicating when the entity was created."
    "createdBy": str,  # "User or system responsible for creating the entity."
    "id": str,  # "A unique identifier for the entity."
    "isAccessible": bool,  # "potentially able to successfully log into the Credential"
    "isActive": bool,  # "active for applicable products"
    "isCustomerActionRequired": bool,  # "any action is required from you"
    "isThirdPartyPortal": bool,  # "accessed through a third-party portal or platform"
    "lastModifiedAt": str,
    "lastModifiedBy": str,
    "nextScheduledJobAt": str,  # "The scheduled time for the next automated credential job."
    "provider": dict,  # "The entity providing service and issuing bills"
    "status": str,
    "statusDetail": str,
    "totalAccounts": int,
    "username": str,  # "A login input required to access the customer's utility data"
    "accountNumber": (str, type(None)),  # the three optional provider-specific inputs
    "additionalField1": (str, type(None)),
    "additionalField2": (str, type(None)),
    "website": (str, type(None)),  # "The provider's website that this credential logs into."
}
SEED_PROVIDER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "billingAddressCountry": (str, type(None)),
    "id": str,
    "isIntervalDataSupported": (bool, type(None)),
    "isRealTimeCredentialValidationSupported": bool,
    "name": (str, type(None)),
}


SEED_STATUSES = ARCADIA_PAGE.words("status")
SEED_DETAILS = ARCADIA_PAGE.words("statusDetail")

# The rows of Arcadia's "Status and Status Detail Descriptions" table
# (docs.arcadia.com/docs/status-and-status-detail-definitions) that were captured:
# statusDetail -> (status, isCustomerActionRequired, isAccessible).
DOCUMENTED_ROWS: dict[str, tuple[str, bool, bool]] = {
    "LOGIN_AND_DATA_DISCOVERY_SUCCESS": ("CONNECTION_SUCCESS", False, True),
    "PROVIDER_WEBSITE_INACCESSIBLE": ("CONNECTION_IN_PROGRESS", False, False),
    "ISSUE_UNDER_REVIEW": ("CONNECTION_IN_PROGRESS", False, True),
    "PROVIDER_WEBSITE_NAVIGATION_FAILURE": ("CONNECTION_IN_PROGRESS", False, True),
    "UNSUPPORTED_CAPTCHA": ("CONNECTION_IN_PROGRESS", False, True),
    "EMAIL_APPROVAL": ("CONNECTION_IN_PROGRESS", True, False),
    "REQUIRES_ENROLLMENT": ("CONNECTION_IN_PROGRESS", False, False),
    "DATA_EXTRACTION_IN_PROGRESS": ("CONNECTION_IN_PROGRESS", False, True),
    "INVALID_CREDENTIALS": ("CONNECTION_FAILURE", True, False),
    "UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION": ("CONNECTION_FAILURE", True, False),
}
# The MFA routes as Arcadia's reference gives them: (method, path under the credential).
VERIFICATION_METHOD_ROUTE = ("PUT", "verificationMethod")
ONE_TIME_PASSCODE_ROUTE = ("PUT", "oneTimePasscode")


async def token(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", **CLIENT}
    )
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


@pytest.fixture
async def arcadia(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/arcadia", timeout=10) as client:
        client.headers.update(VERSION | {"Authorization": f"Bearer {await token(client)}"})
        yield client


async def new_credential(arcadia: httpx.AsyncClient, username: str, **extra: Any) -> dict[str, Any]:
    response = await arcadia.post(
        "/plug/credentials", json={"username": username, "password": "pass_good", **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def settled(arcadia: httpx.AsyncClient, credential_id: str) -> dict[str, Any]:
    """The credential once its job in progress has resolved (or waits for the user)."""
    return await read_until(
        arcadia,
        f"/plug/credentials/{credential_id}",
        lambda body: body["currentJob"]["status"] != "RUNNING",
    )


def assert_seed_shape(credential: dict[str, Any]) -> None:
    assert set(credential) == set(SEED_CREDENTIAL_FIELDS) | {"currentJob"}
    for name, kind in SEED_CREDENTIAL_FIELDS.items():
        assert isinstance(credential[name], kind), name
    assert set(credential["provider"]) == set(SEED_PROVIDER_FIELDS)
    for name, kind in SEED_PROVIDER_FIELDS.items():
        assert isinstance(credential["provider"][name], kind), name
    assert credential["status"] in SEED_STATUSES
    assert credential["statusDetail"] in {*SEED_DETAILS, *NEWER_STATUS_DETAILS}
    for stamp in ("createdAt", "lastModifiedAt", "nextScheduledJobAt"):
        assert datetime.fromisoformat(credential[stamp].replace("Z", "+00:00")).tzinfo


def test_the_seed_lists_what_the_sandbox_speaks() -> None:
    assert SEED_STATUSES == ["CONNECTION_SUCCESS", "CONNECTION_IN_PROGRESS", "CONNECTION_FAILURE"]
    # The seed's words, and the three Arcadia added after it was captured.
    assert set(STATUS_OF_DETAIL) == set(SEED_DETAILS) | NEWER_STATUS_DETAILS
    assert not NEWER_STATUS_DETAILS & set(SEED_DETAILS)
    assert set(STATUS_OF_DETAIL.values()) == set(SEED_STATUSES)
    assert "The Arcadia-Version for the request" in ARCADIA_PAGE["headers"]
    assert "Defaults to 2024-02-21" in ARCADIA_PAGE["headers"]
    assert (
        "Indicates whether the verification method is used for resubmission."
        in ARCADIA_PAGE["body params"]
    )


# ---------------------------------------------------------------------- OAuth2 and headers


async def test_token_endpoint_issues_a_bearer_token(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/arcadia") as client:
        response = await client.post(
            "/oauth2/token", data={"grant_type": "client_credentials", **CLIENT}
        )
        basic = base64.b64encode(b"sandbox-client-id:sandbox-client-secret").decode()
        with_basic = await client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == TOKEN_TTL_SECONDS
    assert response.headers["cache-control"] == "no-store"
    assert with_basic.status_code == 200
    assert with_basic.json()["access_token"] != body["access_token"]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (
            {"grant_type": "client_credentials", "client_id": "sandbox-client-id"},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "client_credentials", **CLIENT, "client_secret": "nope"},
            401,
            "invalid_client",
        ),
        ({"grant_type": "password", **CLIENT}, 400, "unsupported_grant_type"),
    ],
    ids=["no-secret", "wrong-secret", "wrong-grant"],
)
async def test_token_endpoint_refusals(
    sandbox_url: str, data: dict[str, str], status: int, code: str
) -> None:
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/arcadia") as client:
        response = await client.post("/oauth2/token", data=data)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert isinstance(response.json()["error_description"], str)


async def test_token_endpoint_wants_a_form(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/arcadia") as client:
        response = await client.post("/oauth2/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", "Basic c2FuZGJveC1jbGllbnQtaWQ6c2FuZGJveC1jbGllbnQtc2VjcmV0"],
    ids=["no-token", "unknown-token", "basic-instead-of-bearer"],
)
async def test_plug_calls_need_a_bearer_token(sandbox_url: str, authorization: str | None) -> None:
    headers = VERSION | ({"Authorization": authorization} if authorization else {})
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/arcadia", headers=headers) as client:
        response = await client.post(
            "/plug/credentials", json={"username": "user_good", "password": "pass_good"}
        )
    assert response.status_code == 401
    assert set(response.json()) == {"error", "message"}


async def test_a_call_without_arcadia_version_is_served_as_the_default(sandbox_url: str) -> None:
    """The header "Defaults to 2024-02-21": leaving it out is not an error."""
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/arcadia") as client:
        headers = {"Authorization": f"Bearer {await token(client)}"}
        created = await client.post(
            "/plug/credentials",
            json={"username": "user_good", "password": "pass_good"},
            headers=headers,
        )
        listed = await client.get("/plug/accounts", headers=headers)
    assert created.status_code == 200, created.text
    assert_seed_shape(created.json())
    assert listed.status_code == 200


@pytest.mark.parametrize("version", ["2022-10-13", "latest"])
async def test_a_version_the_sandbox_does_not_serve_is_refused(
    sandbox_url: str, version: str
) -> None:
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/arcadia") as client:
        headers = {"Authorization": f"Bearer {await token(client)}", "Arcadia-Version": version}
        response = await client.get("/plug/accounts", headers=headers)
    assert response.status_code == 400
    assert "2024-02-21" in response.json()["message"]


# ---------------------------------------------------------------------- credentials


async def test_create_credential_starts_a_job(arcadia: httpx.AsyncClient) -> None:
    created = await new_credential(arcadia, "user_good", correlationId="link-42")
    assert_seed_shape(created)
    assert created["id"].startswith("cred_")
    assert created["correlationId"] == "link-42"
    assert created["username"] == "user_good"
    assert "password" not in created
    assert (created["status"], created["statusDetail"]) == (
        "CONNECTION_IN_PROGRESS",
        "DATA_EXTRACTION_IN_PROGRESS",
    )
    assert created["isActive"] is True
    assert created["totalAccounts"] == 0
    assert created["currentJob"] == {
        "id": created["currentJob"]["id"],
        "status": "RUNNING",
        "mfa": None,
    }

    linked = await settled(arcadia, created["id"])
    assert_seed_shape(linked)
    assert (linked["status"], linked["statusDetail"]) == (
        "CONNECTION_SUCCESS",
        "LOGIN_AND_DATA_DISCOVERY_SUCCESS",
    )
    assert linked["currentJob"]["status"] == "SUCCEEDED"
    assert linked["totalAccounts"] == 2
    assert linked["isCustomerActionRequired"] is False


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"password": "pass_good"}, 400),
        ({"username": "user_good"}, 400),
        ({"username": "user_good", "password": "pass_good", "providerId": "nope"}, 404),
        ({"username": "status:NOT_A_WORD", "password": "pass_good"}, 400),
    ],
    ids=["no-username", "no-password", "unknown-provider", "unknown-test-hook"],
)
async def test_create_credential_refusals(
    arcadia: httpx.AsyncClient, body: dict[str, str], status: int
) -> None:
    response = await arcadia.post("/plug/credentials", json=body)
    assert response.status_code == status
    assert isinstance(response.json()["message"], str)


async def test_unknown_credential_is_not_found(arcadia: httpx.AsyncClient) -> None:
    assert (await arcadia.get("/plug/credentials/cred_nope")).status_code == 404
    assert (await arcadia.post("/plug/credentials/cred_nope/disable")).status_code == 404


@pytest.mark.parametrize(
    ("username", "status", "detail"),
    [
        ("user_bad", "CONNECTION_FAILURE", "INVALID_CREDENTIALS"),
        ("user_hold", "CONNECTION_IN_PROGRESS", "EMAIL_APPROVAL"),
        ("user_unsupported", "CONNECTION_FAILURE", "UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION"),
    ],
)
async def test_users_that_end_without_mfa(
    arcadia: httpx.AsyncClient, username: str, status: str, detail: str
) -> None:
    created = await new_credential(arcadia, username)
    ended = await settled(arcadia, created["id"])
    assert_seed_shape(ended)
    assert (ended["status"], ended["statusDetail"]) == (status, detail)
    assert ended["currentJob"]["status"] == "FAILED"
    assert ended["totalAccounts"] == 0


@pytest.mark.parametrize("detail", sorted(STATUS_OF_DETAIL))
async def test_status_test_hook_for_every_word_with_its_tables_flags(
    arcadia: httpx.AsyncClient, detail: str
) -> None:
    created = await new_credential(arcadia, f"status:{detail}")
    ended = await settled(arcadia, created["id"])
    assert_seed_shape(ended)
    row = CREDENTIAL_STATUSES[detail]
    assert (ended["status"], ended["statusDetail"]) == (row.status, detail)
    assert (ended["isCustomerActionRequired"], ended["isAccessible"]) == (
        row.is_customer_action_required,
        row.is_accessible,
    )


def test_the_sandbox_keeps_every_row_of_arcadias_status_table_that_was_captured() -> None:
    for detail, documented in DOCUMENTED_ROWS.items():
        assert tuple(CREDENTIAL_STATUSES[detail]) == documented, detail
    # Under CONNECTION_IN_PROGRESS only the emailed approval waits for the customer.
    waiting_for_customer = {
        detail
        for detail, row in CREDENTIAL_STATUSES.items()
        if row.status == "CONNECTION_IN_PROGRESS" and row.is_customer_action_required
    }
    assert waiting_for_customer == {"EMAIL_APPROVAL"}


# ---------------------------------------------------------------------- MFA


async def submit_mfa(
    arcadia: httpx.AsyncClient, credential: dict[str, Any], kind: str, value: str, *, again: bool
) -> httpx.Response:
    method, route = VERIFICATION_METHOD_ROUTE
    return await arcadia.request(
        method,
        f"/plug/credentials/{credential['id']}/{route}",
        json={
            "jobId": credential["currentJob"]["id"],
            "resubmission": again,
            "type": kind,
            "value": value,
        },
    )


async def submit_otp(
    arcadia: httpx.AsyncClient, credential: dict[str, Any], code: str
) -> httpx.Response:
    method, route = ONE_TIME_PASSCODE_ROUTE
    return await arcadia.request(
        method,
        f"/plug/credentials/{credential['id']}/{route}",
        json={"jobId": credential["currentJob"]["id"], "oneTimePasscode": code},
    )


async def test_the_mfa_routes_are_arcadias_and_the_old_guesses_are_gone(
    arcadia: httpx.AsyncClient,
) -> None:
    created = await new_credential(arcadia, "user_otp")
    choosing = await settled(arcadia, created["id"])
    path = f"/plug/credentials/{created['id']}"
    method = {
        "jobId": choosing["currentJob"]["id"],
        "resubmission": False,
        "type": "SMS",
        "value": PHONE_1,
    }
    passcode = {"jobId": choosing["currentJob"]["id"], "oneTimePasscode": "correct"}
    # An earlier issue of ours named POST .../mfa and .../otp: Arcadia has no such routes.
    assert (await arcadia.post(f"{path}/mfa", json=method)).status_code == 404
    assert (await arcadia.post(f"{path}/otp", json=passcode)).status_code == 404
    # The documented routes take PUT, and only PUT.
    assert (await arcadia.post(f"{path}/verificationMethod", json=method)).status_code == 405
    assert (await arcadia.post(f"{path}/oneTimePasscode", json=passcode)).status_code == 405
    # Nothing above reached the job: it still waits for the method.
    still = (await arcadia.get(path)).json()
    assert still["currentJob"]["mfa"]["id"] == choosing["currentJob"]["mfa"]["id"]
    assert (await submit_mfa(arcadia, still, "SMS", PHONE_1, again=False)).status_code == 200


async def test_user_otp_chooses_a_method_then_submits_the_passcode(
    arcadia: httpx.AsyncClient,
) -> None:
    created = await new_credential(arcadia, "user_otp")
    choosing = await settled(arcadia, created["id"])
    assert_seed_shape(choosing)
    assert choosing["statusDetail"] == "DATA_EXTRACTION_IN_PROGRESS"
    assert choosing["isCustomerActionRequired"] is True
    job = choosing["currentJob"]
    assert job["id"] == created["currentJob"]["id"]
    assert job["status"] == "WAITING_FOR_INPUT"
    mfa = job["mfa"]
    assert set(mfa) == {
        "id",
        "type",
        "verificationMethods",
        "selectedVerificationMethod",
        "expiresAt",
    }
    assert mfa["type"] == "VERIFICATION_METHOD"
    # Arcadia's guides name SMS, Call and Email.
    assert mfa["verificationMethods"] == [
        {"type": "SMS", "value": PHONE_1},
        {"type": "SMS", "value": PHONE_2},
        {"type": "CALL", "value": PHONE_1},
        {"type": "EMAIL", "value": "j***@example.com"},
    ]
    assert mfa["selectedVerificationMethod"] is None

    # `resubmission` must say whether a method was chosen before; none was.
    assert (await submit_mfa(arcadia, choosing, "SMS", PHONE_1, again=True)).status_code == 400
    chosen = await submit_mfa(arcadia, choosing, "SMS", PHONE_1, again=False)
    assert chosen.status_code == 200
    assert_seed_shape(chosen.json())
    assert chosen.json()["currentJob"]["status"] == "RUNNING"
    assert chosen.json()["currentJob"]["mfa"] is None

    coding = await settled(arcadia, created["id"])
    code_request = coding["currentJob"]["mfa"]
    assert code_request["type"] == "ONE_TIME_PASSCODE"
    assert code_request["verificationMethods"] == []
    assert code_request["selectedVerificationMethod"] == {"type": "SMS", "value": PHONE_1}
    assert code_request["id"] != mfa["id"]

    # A resubmission of the chosen method sends the code again: a new request for it.
    assert (await submit_mfa(arcadia, coding, "SMS", PHONE_1, again=False)).status_code == 409
    assert (await submit_mfa(arcadia, coding, "SMS", PHONE_2, again=True)).status_code == 409
    assert (await submit_mfa(arcadia, coding, "SMS", PHONE_1, again=True)).status_code == 200
    resent = await settled(arcadia, created["id"])
    assert resent["currentJob"]["mfa"]["type"] == "ONE_TIME_PASSCODE"
    assert resent["currentJob"]["mfa"]["id"] != code_request["id"]

    wrong = await submit_otp(arcadia, resent, "123456")
    assert wrong.status_code == 200
    retry = await settled(arcadia, created["id"])
    assert retry["currentJob"]["mfa"]["type"] == "ONE_TIME_PASSCODE"
    assert retry["currentJob"]["mfa"]["id"] != resent["currentJob"]["mfa"]["id"]

    assert (await submit_otp(arcadia, retry, "correct")).status_code == 200
    linked = await settled(arcadia, created["id"])
    assert (linked["status"], linked["statusDetail"]) == (
        "CONNECTION_SUCCESS",
        "LOGIN_AND_DATA_DISCOVERY_SUCCESS",
    )


async def test_user_mfa_is_asked_only_the_passcode(arcadia: httpx.AsyncClient) -> None:
    created = await new_credential(arcadia, "user_mfa")
    waiting = await settled(arcadia, created["id"])
    mfa = waiting["currentJob"]["mfa"]
    assert mfa["type"] == "ONE_TIME_PASSCODE"
    assert mfa["selectedVerificationMethod"] == {"type": "SMS", "value": PHONE_1}
    # A passcode is awaited: the method step is over.
    assert (await submit_otp(arcadia, waiting, "correct")).status_code == 200


async def test_mfa_refusals(arcadia: httpx.AsyncClient) -> None:
    created = await new_credential(arcadia, "user_otp")
    # While the job runs nothing is awaited.
    assert (await submit_mfa(arcadia, created, "SMS", PHONE_1, again=False)).status_code == 409
    choosing = await settled(arcadia, created["id"])
    path = f"/plug/credentials/{created['id']}"
    job_id = choosing["currentJob"]["id"]
    stale_job = await arcadia.put(
        f"{path}/verificationMethod",
        json={"jobId": "job_old", "resubmission": False, "type": "SMS", "value": PHONE_1},
    )
    assert stale_job.status_code == 409
    no_flag = await arcadia.put(
        f"{path}/verificationMethod", json={"jobId": job_id, "type": "SMS", "value": "x"}
    )
    assert no_flag.status_code == 400
    assert (await arcadia.put(f"{path}/verificationMethod", content=b"not json")).status_code == 400
    # The passcode comes after the method.
    assert (await submit_otp(arcadia, choosing, "correct")).status_code == 409


async def test_a_wrong_passcode_is_asked_again_never_an_mfa_failure(
    arcadia: httpx.AsyncClient,
) -> None:
    """MULTI_FACTOR_AUTHENTICATION_FAILURE is MFA Arcadia could not pass, not a refused code."""
    created = await new_credential(arcadia, "user_mfa")
    asked: set[str] = set()
    for attempt in range(4):
        waiting = await settled(arcadia, created["id"])
        assert waiting["currentJob"]["status"] == "WAITING_FOR_INPUT", attempt
        assert waiting["statusDetail"] == "DATA_EXTRACTION_IN_PROGRESS"
        asked.add(waiting["currentJob"]["mfa"]["id"])
        assert (await submit_otp(arcadia, waiting, f"wrong-{attempt}")).status_code == 200
    assert len(asked) == 4
    again = await settled(arcadia, created["id"])
    assert (await submit_otp(arcadia, again, "correct")).status_code == 200
    linked = await settled(arcadia, created["id"])
    assert linked["statusDetail"] == "LOGIN_AND_DATA_DISCOVERY_SUCCESS"
    assert linked["currentJob"]["id"] == created["currentJob"]["id"]


# ---------------------------------------------------------------------- a new job, same credential


async def test_updating_the_login_starts_a_new_job_on_the_same_credential(
    arcadia: httpx.AsyncClient,
) -> None:
    created = await new_credential(arcadia, "user_mfa")
    waiting = await settled(arcadia, created["id"])
    assert (await submit_otp(arcadia, waiting, "correct")).status_code == 200
    linked = await settled(arcadia, created["id"])
    assert linked["statusDetail"] == "LOGIN_AND_DATA_DISCOVERY_SUCCESS"

    expired = await arcadia.post(f"/_sandbox/credentials/{created['id']}/mfa-token-expired")
    assert expired.status_code == 200
    needs_mfa = (await arcadia.get(f"/plug/credentials/{created['id']}")).json()
    assert_seed_shape(needs_mfa)
    assert (needs_mfa["status"], needs_mfa["statusDetail"]) == (
        "CONNECTION_FAILURE",
        "MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED",
    )
    assert needs_mfa["isCustomerActionRequired"] is True

    updated = await arcadia.patch(
        f"/plug/credentials/{created['id']}",
        json={"username": "user_mfa", "password": "pass_good"},
    )
    assert updated.status_code == 200, updated.text
    assert_seed_shape(updated.json())
    assert updated.json()["id"] == created["id"]
    assert updated.json()["statusDetail"] == "DATA_EXTRACTION_IN_PROGRESS"
    new_job = updated.json()["currentJob"]
    assert new_job["status"] == "RUNNING"
    assert new_job["id"] != created["currentJob"]["id"]

    handshake = await settled(arcadia, created["id"])
    assert handshake["currentJob"]["id"] == new_job["id"]
    assert handshake["currentJob"]["mfa"]["type"] == "ONE_TIME_PASSCODE"
    assert (await submit_otp(arcadia, handshake, "correct")).status_code == 200
    relinked = await settled(arcadia, created["id"])
    assert relinked["statusDetail"] == "LOGIN_AND_DATA_DISCOVERY_SUCCESS"


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 400), ({"password": ""}, 400), ({"username": 7}, 400)],
    ids=["nothing", "empty-password", "username-not-a-string"],
)
async def test_update_credential_refusals(
    arcadia: httpx.AsyncClient, body: dict[str, Any], status: int
) -> None:
    created = await new_credential(arcadia, "user_good")
    response = await arcadia.patch(f"/plug/credentials/{created['id']}", json=body)
    assert response.status_code == status
    assert (await arcadia.patch("/plug/credentials/cred_nope", json={"a": 1})).status_code == 404


async def test_only_a_connected_credential_has_an_mfa_token_to_expire(
    arcadia: httpx.AsyncClient,
) -> None:
    created = await new_credential(arcadia, "user_bad")
    await settled(arcadia, created["id"])
    hook = f"/_sandbox/credentials/{created['id']}/mfa-token-expired"
    assert (await arcadia.post(hook)).status_code == 409
    assert (
        await arcadia.post("/_sandbox/credentials/cred_nope/mfa-token-expired")
    ).status_code == (404)


# ---------------------------------------------------------------------- accounts and disabling


async def test_accounts_only_once_connected_then_disabled(arcadia: httpx.AsyncClient) -> None:
    waiting = await new_credential(arcadia, "user_mfa")
    await settled(arcadia, waiting["id"])
    before = (
        await arcadia.get("/plug/accounts", params={"search": f"credentialId=={waiting['id']}"})
    ).json()
    assert before["content"] == []
    assert before["totalElements"] == 0

    created = await new_credential(arcadia, "user_good", correlationId="link-7")
    await settled(arcadia, created["id"])
    search: dict[str, str | int] = {
        "search": f"credentialId=={created['id']}",
        "page": 0,
        "size": 1,
    }
    page = (await arcadia.get("/plug/accounts", params=search)).json()
    assert set(page) == {
        "content",
        "number",
        "size",
        "totalElements",
        "totalPages",
        "first",
        "last",
    }
    assert (page["number"], page["size"], page["totalElements"], page["totalPages"]) == (0, 1, 2, 2)
    assert (page["first"], page["last"]) == (True, False)
    [electric] = page["content"]
    assert electric == {
        "id": electric["id"],
        "accountNumber": "4000123401234",
        "correlationId": "link-7",
        "createdAt": electric["createdAt"],
        "credentialId": created["id"],
        "isActive": True,
        "provider": {"id": "sandbox-power-and-light", "name": "Sandbox Power & Light"},
        "serviceType": "ELECTRIC",
        "status": "CONNECTION_SUCCESS",
        "statusDetail": "LOGIN_AND_DATA_DISCOVERY_SUCCESS",
    }
    second = (await arcadia.get("/plug/accounts", params=search | {"page": 1})).json()
    assert second["content"][0]["serviceType"] == "GAS"
    assert second["last"] is True

    disabled = await arcadia.post(f"/plug/credentials/{created['id']}/disable")
    assert disabled.status_code == 200
    assert disabled.json()["isActive"] is False
    assert (disabled.json()["status"], disabled.json()["statusDetail"]) == (
        "CONNECTION_FAILURE",
        "CONNECTION_DEACTIVATED",
    )
    after = (await arcadia.get("/plug/accounts", params=search | {"size": 10})).json()
    assert [a["isActive"] for a in after["content"]] == [False, False]
    assert (await arcadia.post(f"/plug/credentials/{created['id']}/disable")).status_code == 200


@pytest.mark.parametrize(
    "params",
    [{"page": "-1"}, {"size": "0"}, {"size": "1000"}, {"page": "x"}, {"search": "username==a"}],
)
async def test_accounts_paging_refusals(arcadia: httpx.AsyncClient, params: dict[str, str]) -> None:
    assert (await arcadia.get("/plug/accounts", params=params)).status_code == 400


# ---------------------------------------------------------------------- in process


async def test_latency_expiry_and_idempotency_keys_in_process() -> None:
    clock = FakeClock()
    sandbox = ArcadiaSandbox(latency_seconds=5, clock=clock)
    async with in_process_client(sandbox, VERSION) as arcadia:
        arcadia.headers["Authorization"] = f"Bearer {await token(arcadia)}"
        created = (
            await arcadia.post(
                "/plug/credentials",
                json={"username": "user_mfa", "password": "pass_good"},
                headers={"Idempotency-Key": "login-1"},
            )
        ).json()
        path = f"/plug/credentials/{created['id']}"

        clock.now += 4.9
        assert (await arcadia.get(path)).json()["currentJob"]["status"] == "RUNNING"
        clock.now += 0.2
        waiting = (await arcadia.get(path)).json()
        assert waiting["currentJob"]["mfa"]["type"] == "ONE_TIME_PASSCODE"

        body = {"jobId": waiting["currentJob"]["id"], "oneTimePasscode": "nope"}
        otp, key = f"{path}/oneTimePasscode", {"Idempotency-Key": "a-1"}
        answered = await arcadia.put(otp, json=body, headers=key)
        assert answered.status_code == 200
        retried = await arcadia.put(otp, json=body, headers=key)
        assert retried.status_code == 409
        assert sandbox.duplicate_requests == 1
        assert sandbox.ledger.keys_of(created["id"]) == {"login-1": 1, "a-1": 2}

        # The new request for the code expires unanswered.
        clock.now += 5
        assert (await arcadia.get(path)).json()["currentJob"]["status"] == "WAITING_FOR_INPUT"
        clock.now += MFA_EXPIRY_SECONDS
        expired = (await arcadia.get(path)).json()
        assert (expired["status"], expired["statusDetail"]) == (
            "CONNECTION_FAILURE",
            "MULTI_FACTOR_AUTHENTICATION_TIMEOUT",
        )

        # Tokens expire after `expires_in`.
        clock.now += TOKEN_TTL_SECONDS
        assert (await arcadia.get(path)).status_code == 401


async def test_the_mfa_window_can_be_shortened_and_a_late_answer_is_refused() -> None:
    clock = FakeClock()
    sandbox = create_sandbox(latency_seconds=1, mfa_window_seconds=5)
    sandbox.clock = clock
    async with in_process_client(sandbox, VERSION) as arcadia:
        arcadia.headers["Authorization"] = f"Bearer {await token(arcadia)}"
        created = (await new_credential(arcadia, "user_mfa"))["id"]
        path = f"/plug/credentials/{created}"
        clock.now += 1
        waiting = (await arcadia.get(path)).json()
        asked_at = datetime.fromisoformat(waiting["lastModifiedAt"].replace("Z", "+00:00"))
        expires_at = datetime.fromisoformat(
            waiting["currentJob"]["mfa"]["expiresAt"].replace("Z", "+00:00")
        )
        assert (expires_at - asked_at).total_seconds() == 5

        clock.now += 5
        body = {"jobId": waiting["currentJob"]["id"], "oneTimePasscode": "correct"}
        late = await arcadia.put(f"{path}/oneTimePasscode", json=body)
        assert late.status_code == 409
        assert late.json()["error"] == "conflict"
        ended = (await arcadia.get(path)).json()
        assert ended["statusDetail"] == "MULTI_FACTOR_AUTHENTICATION_TIMEOUT"
        assert ended["currentJob"] == {
            "id": waiting["currentJob"]["id"],
            "status": "FAILED",
            "mfa": None,
        }


async def test_a_window_of_none_never_expires() -> None:
    clock = FakeClock()
    sandbox = create_sandbox(latency_seconds=1, mfa_window_seconds=None)
    sandbox.clock = clock
    async with in_process_client(sandbox, VERSION) as arcadia:
        arcadia.headers["Authorization"] = f"Bearer {await token(arcadia)}"
        path = f"/plug/credentials/{(await new_credential(arcadia, 'user_mfa'))['id']}"
        clock.now += 1
        assert (await arcadia.get(path)).json()["currentJob"]["mfa"]["expiresAt"] is None
        clock.now += 10 * MFA_EXPIRY_SECONDS
        # The token has long expired by now; a fresh one reads a job still waiting.
        arcadia.headers["Authorization"] = f"Bearer {await token(arcadia)}"
        assert (await arcadia.get(path)).json()["currentJob"]["status"] == "WAITING_FOR_INPUT"
