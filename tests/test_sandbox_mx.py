"""The MX sandbox's raw HTTP answers, field by field against MX's MFA guide and API reference.

The adapter's contract tests only prove that the adapter and the sandbox agree; these prove that
the sandbox says what MX's documentation says, so that agreement means something. The guide's
examples are read from tests/fixtures/documents/mx_handling_mfa.txt, and the reference's field
names and words from tests/fixtures/documents/mx_platform_api_reference.txt.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.mx import (
    CREDENTIAL_FIELDS,
    IMAGE_DATA,
    IMAGE_OPTIONS,
    MX_ACCEPT,
    OPTIONS,
    TEXT,
    TOKEN,
    MxSandbox,
    create_sandbox,
)
from tests.fixtures.documents import read_document
from tests.fixtures.sandbox import FakeClock, in_process_client, read_until

MX_GUIDE = read_document("mx_handling_mfa.txt")
MX_REFERENCE = read_document("mx_platform_api_reference.txt")
SEED_MEMBER: dict[str, Any] = MX_GUIDE.json("challenged status example")["member"]
# The member fields of the guide's CHALLENGED status example, exactly.
SEED_STATUS_FIELDS = set(SEED_MEMBER)
SEED_CHALLENGE_FIELDS = set(SEED_MEMBER["challenges"][0])
# The fields of the reference's challenge, option and picture option.
CHALLENGE_FIELDS = set(MX_REFERENCE.json("ChallengeResponse example"))
OPTION_FIELDS = set(MX_REFERENCE.json("OptionResponse example"))
IMAGE_OPTION_FIELDS = set(MX_REFERENCE.json("ImageOptionResponse example"))
CHALLENGE_TYPES = MX_REFERENCE.words("challenge types")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
AUTH = ("sandbox-client-id", "sandbox-api-key")
USERNAME_GUID, PASSWORD_GUID = (str(field["guid"]) for field in CREDENTIAL_FIELDS)


@pytest.fixture
async def mx(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{sandbox_url}/mx", auth=AUTH, headers={"Accept": MX_ACCEPT}, timeout=10
    ) as client:
        yield client


async def new_user(mx: httpx.AsyncClient) -> str:
    response = await mx.post("/users", json={"user": {"id": f"app-{time.time_ns()}"}})
    assert response.status_code == 200, response.text
    guid: str = response.json()["user"]["guid"]
    return guid


async def new_member(
    mx: httpx.AsyncClient, username: str, password: str = "pass_good"
) -> tuple[str, str]:
    user = await new_user(mx)
    response = await mx.post(
        f"/users/{user}/members",
        json={
            "member": {
                "institution_code": "mxbank",
                "credentials": [
                    {"guid": USERNAME_GUID, "value": username},
                    {"guid": PASSWORD_GUID, "value": password},
                ],
            }
        },
    )
    assert response.status_code == 202, response.text
    return user, response.json()["member"]["guid"]


def settled(member: dict[str, Any]) -> bool:
    """Whether MX has stopped working on the member, or asks the user: as MX's widget reads it."""
    return member["connection_status"] == "CHALLENGED" or member["is_being_aggregated"] is False


async def settled_status(mx: httpx.AsyncClient, user: str, member: str) -> dict[str, Any]:
    """The member's status once its job in progress has resolved."""
    body = await read_until(
        mx, f"/users/{user}/members/{member}/status", lambda body: settled(body["member"])
    )
    status: dict[str, Any] = body["member"]
    return status


async def resume(
    mx: httpx.AsyncClient, user: str, member: str, answers: list[dict[str, str]]
) -> httpx.Response:
    return await mx.put(
        f"/users/{user}/members/{member}/resume", json={"member": {"challenges": answers}}
    )


async def test_health(sandbox_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{sandbox_url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "auth",
    [None, ("client", ""), ("", "key")],
    ids=["no-auth", "no-api-key", "no-client-id"],
)
async def test_every_request_needs_basic_auth(
    sandbox_url: str, auth: tuple[str, str] | None
) -> None:
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/mx", auth=auth) as client:
        response = await client.get("/users", headers={"Accept": MX_ACCEPT})
    assert response.status_code == 401
    assert isinstance(response.json()["error"]["message"], str)


@pytest.mark.parametrize("accept", [None, "application/json"])
async def test_every_request_needs_mx_accept_header(sandbox_url: str, accept: str | None) -> None:
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/mx", auth=AUTH) as client:
        request = client.build_request("GET", "/institutions/mxbank/credentials")
        if accept is None:
            del request.headers["Accept"]
        else:
            request.headers["Accept"] = accept
        response = await client.send(request)
    assert response.status_code == 406
    assert MX_ACCEPT in response.json()["error"]["message"]


async def test_create_user_and_duplicate_id(mx: httpx.AsyncClient) -> None:
    partner_id = f"app-user-{time.time_ns()}"
    created = await mx.post("/users", json={"user": {"id": partner_id, "metadata": None}})
    assert created.status_code == 200
    user = created.json()["user"]
    assert set(user) == {"guid", "id", "is_disabled", "metadata"}
    assert user["guid"].startswith("USR-")
    assert user["id"] == partner_id
    assert user["is_disabled"] is False
    assert user["metadata"] is None

    again = await mx.post("/users", json={"user": {"id": partner_id, "metadata": None}})
    assert again.status_code == 409
    assert again.json()["error"]["message"]


async def test_list_users_pages(mx: httpx.AsyncClient) -> None:
    await new_user(mx)
    await new_user(mx)
    everyone = (await mx.get("/users", params={"page": 1, "records_per_page": 100})).json()
    total = everyone["pagination"]["total_entries"]
    assert total >= 2
    assert len(everyone["users"]) == min(total, 100)

    second = await mx.get("/users", params={"page": 2, "records_per_page": 1})
    assert second.status_code == 200
    body = second.json()
    assert body["pagination"] == {
        "current_page": 2,
        "per_page": 1,
        "total_entries": total,
        "total_pages": total,
    }
    assert body["users"] == [everyone["users"][1]]

    bad = await mx.get("/users", params={"page": "x"})
    assert bad.status_code == 400


async def test_institution_credentials(mx: httpx.AsyncClient) -> None:
    response = await mx.get("/institutions/mxbank/credentials")
    assert response.status_code == 200
    fields = response.json()["credentials"]
    assert [(f["field_name"], f["label"], f["type"], f["display_order"]) for f in fields] == [
        ("username", "Username", "TEXT", 1),
        ("password", "Password", "PASSWORD", 2),
    ]
    assert all(f["guid"].startswith("CRD-") for f in fields)

    unknown = await mx.get("/institutions/nobank/credentials")
    assert unknown.status_code == 404


async def test_create_member_body(mx: httpx.AsyncClient) -> None:
    user = await new_user(mx)
    response = await mx.post(
        f"/users/{user}/members",
        json={
            "member": {
                "institution_code": "mxbank",
                "credentials": [
                    {"guid": USERNAME_GUID, "value": "user_good"},
                    {"guid": PASSWORD_GUID, "value": "pass_good"},
                ],
            }
        },
    )
    assert response.status_code == 202
    member = response.json()["member"]
    assert member["guid"].startswith("MBR-")
    assert {k: v for k, v in member.items() if k != "guid"} == {
        "aggregated_at": None,
        "connection_status": "CREATED",
        "institution_code": "mxbank",
        "is_authenticated": False,
        "is_being_aggregated": True,
        "successfully_aggregated_at": None,
        "user_guid": user,
    }


async def test_create_member_refusals(mx: httpx.AsyncClient) -> None:
    user = await new_user(mx)
    only_username = {
        "member": {
            "institution_code": "mxbank",
            "credentials": [{"guid": USERNAME_GUID, "value": "user_good"}],
        }
    }
    missing = await mx.post(f"/users/{user}/members", json=only_username)
    assert missing.status_code == 400
    assert "password" in missing.json()["error"]["message"]

    unknown_user = await mx.post("/users/USR-nobody/members", json=only_username)
    assert unknown_user.status_code == 404


async def test_challenged_status_matches_the_seed(mx: httpx.AsyncClient) -> None:
    user, member = await new_member(mx, "user_mfa")
    status = await settled_status(mx, user, member)

    assert set(status) == SEED_STATUS_FIELDS
    assert status["connection_status"] == "CHALLENGED"
    assert status["guid"] == member
    assert status["is_authenticated"] is False
    assert status["is_being_aggregated"] is True
    assert status["aggregated_at"] is None
    assert status["successfully_aggregated_at"] is None
    [challenge] = status["challenges"]
    assert set(challenge) == SEED_CHALLENGE_FIELDS
    assert challenge["field_name"] is None
    assert challenge["guid"].startswith("CRD-")
    assert challenge["label"] == "What city were you born in?"
    # The guide's example numbers the type (0); MX's reference names it, and the sandbox does too.
    assert SEED_MEMBER["challenges"][0]["type"] == 0
    assert challenge["type"] == "TEXT"

    listed = (await mx.get(f"/users/{user}/members/{member}/challenges")).json()
    assert listed["challenges"] == [challenge]
    assert listed["pagination"]["total_entries"] == 1


async def test_resume_then_connected(mx: httpx.AsyncClient) -> None:
    user, member = await new_member(mx, "user_mfa")
    [challenge] = (await settled_status(mx, user, member))["challenges"]

    resumed = await resume(mx, user, member, [{"guid": challenge["guid"], "value": "correct"}])
    assert resumed.status_code == 202
    body = resumed.json()["member"]
    assert body["connection_status"] == "RESUMED"
    assert body["is_being_aggregated"] is True
    assert body["is_authenticated"] is False
    assert "challenges" not in body

    connected = await settled_status(mx, user, member)
    assert set(connected) == SEED_STATUS_FIELDS - {"challenges"}
    assert connected["connection_status"] == "CONNECTED"
    assert connected["is_authenticated"] is True
    assert connected["is_being_aggregated"] is False
    assert connected["aggregated_at"].endswith("Z")
    assert connected["successfully_aggregated_at"] == connected["aggregated_at"]


async def test_resume_refusals(mx: httpx.AsyncClient) -> None:
    user, member = await new_member(mx, "user_good")
    assert (await settled_status(mx, user, member))["connection_status"] == "CONNECTED"
    not_challenged = await resume(mx, user, member, [{"guid": "CRD-x", "value": "correct"}])
    assert not_challenged.status_code == 409

    user, member = await new_member(mx, "user_mfa")
    [challenge] = (await settled_status(mx, user, member))["challenges"]
    unknown = await resume(mx, user, member, [{"guid": "CRD-not-asked", "value": "correct"}])
    assert unknown.status_code == 400
    assert "CRD-not-asked" in unknown.json()["error"]["message"]
    nothing = await resume(mx, user, member, [])
    assert nothing.status_code == 400
    # The refusals changed nothing: the same question is still waiting.
    still = await settled_status(mx, user, member)
    assert still["connection_status"] == "CHALLENGED"
    assert still["challenges"] == [challenge]


async def test_wrong_answers_get_new_challenges_then_rejected(mx: httpx.AsyncClient) -> None:
    user, member = await new_member(mx, "user_mfa")
    seen: list[str] = []
    status = await settled_status(mx, user, member)
    for _ in range(2):
        [challenge] = status["challenges"]
        seen.append(challenge["guid"])
        wrong = await resume(mx, user, member, [{"guid": challenge["guid"], "value": "Chicago"}])
        assert wrong.status_code == 202
        status = await settled_status(mx, user, member)
        assert status["connection_status"] == "CHALLENGED"
        assert status["challenges"][0]["label"] == challenge["label"]
        assert status["challenges"][0]["guid"] not in seen

    [challenge] = status["challenges"]
    await resume(mx, user, member, [{"guid": challenge["guid"], "value": "Tallahassee"}])
    # The third wrong answer in a row: REJECTED, and MX stops aggregating.
    rejected = await settled_status(mx, user, member)
    assert rejected["connection_status"] == "REJECTED"
    assert rejected["is_being_aggregated"] is False
    assert rejected["is_authenticated"] is False
    assert "challenges" not in rejected


async def test_otp_choose_phone_then_code(mx: httpx.AsyncClient) -> None:
    user, member = await new_member(mx, "user_otp")
    [choice] = (await settled_status(mx, user, member))["challenges"]
    assert choice["type"] == "OPTIONS"
    assert set(choice) == SEED_CHALLENGE_FIELDS | {"options"}
    assert choice["label"] == "Where should we text your one-time code?"
    assert all(set(option) == OPTION_FIELDS for option in choice["options"])
    assert all(option["guid"].startswith("CRD-") for option in choice["options"])
    assert [(o["label"], o["value"]) for o in choice["options"]] == [
        ("(***) ***-4321", "phone-4321"),
        ("(***) ***-8765", "phone-8765"),
    ]

    # A value that was not offered is a wrong answer: the same question comes back.
    await resume(mx, user, member, [{"guid": choice["guid"], "value": "phone-0000"}])
    [again] = (await settled_status(mx, user, member))["challenges"]
    assert again["type"] == "OPTIONS"
    assert again["guid"] != choice["guid"]

    await resume(mx, user, member, [{"guid": again["guid"], "value": "phone-8765"}])
    [code] = (await settled_status(mx, user, member))["challenges"]
    assert code["type"] == "TOKEN"
    assert code["label"] == "Enter the code we texted to (***) ***-8765"
    assert set(code) == SEED_CHALLENGE_FIELDS

    await resume(mx, user, member, [{"guid": code["guid"], "value": "correct"}])
    assert (await settled_status(mx, user, member))["connection_status"] == "CONNECTED"


async def test_bad_credentials_are_denied(mx: httpx.AsyncClient) -> None:
    for username, password in [("user_bad", "pass_good"), ("user_good", "nope"), ("who", "x")]:
        user, member = await new_member(mx, username, password)
        denied = await settled_status(mx, user, member)
        assert denied["connection_status"] == "DENIED", username
        assert denied["is_being_aggregated"] is False
        assert denied["is_authenticated"] is False


async def test_accounts_only_once_connected(mx: httpx.AsyncClient) -> None:
    user, member = await new_member(mx, "user_mfa")
    await settled_status(mx, user, member)
    before = (await mx.get(f"/users/{user}/members/{member}/accounts")).json()
    assert before["accounts"] == []
    assert before["pagination"]["total_entries"] == 0

    user, member = await new_member(mx, "user_good")
    await settled_status(mx, user, member)
    body = (await mx.get(f"/users/{user}/members/{member}/accounts")).json()
    assert body["pagination"]["total_entries"] == 2
    checking, savings = body["accounts"]
    assert checking == {
        "guid": checking["guid"],
        "name": "MX Bank Checking",
        "type": "CHECKING",
        "account_number": "100200301234",
        "balance": 1250.75,
        "currency_code": "USD",
        "member_guid": member,
        "user_guid": user,
    }
    assert checking["guid"].startswith("ACT-")
    assert savings["type"] == "SAVINGS"
    # The same account keeps its guid from one read to the next.
    again = (await mx.get(f"/users/{user}/members/{member}/accounts")).json()
    assert again["accounts"] == body["accounts"]


async def test_delete_member(mx: httpx.AsyncClient) -> None:
    user, member = await new_member(mx, "user_good")
    deleted = await mx.delete(f"/users/{user}/members/{member}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await mx.delete(f"/users/{user}/members/{member}")).status_code == 404
    assert (await mx.get(f"/users/{user}/members/{member}/status")).status_code == 404


async def test_latency_and_idempotency_keys_in_process() -> None:
    clock = FakeClock()
    sandbox = MxSandbox(latency_seconds=5, clock=clock)
    async with in_process_client(sandbox, {"Accept": MX_ACCEPT}, AUTH) as mx:
        user = await new_user(mx)
        body = {
            "member": {
                "institution_code": "mxbank",
                "credentials": [
                    {"guid": USERNAME_GUID, "value": "user_mfa"},
                    {"guid": PASSWORD_GUID, "value": "pass_good"},
                ],
            }
        }
        created = await mx.post(
            f"/users/{user}/members", json=body, headers={"Idempotency-Key": "login-1"}
        )
        member = created.json()["member"]["guid"]
        status_path = f"/users/{user}/members/{member}/status"

        clock.now += 4.9
        assert (await mx.get(status_path)).json()["member"]["connection_status"] == "CREATED"
        clock.now += 0.2
        challenged = (await mx.get(status_path)).json()["member"]
        assert challenged["connection_status"] == "CHALLENGED"

        guid = challenged["challenges"][0]["guid"]
        resumed = await mx.put(
            f"/users/{user}/members/{member}/resume",
            json={"member": {"challenges": [{"guid": guid, "value": "correct"}]}},
            headers={"Idempotency-Key": "answer-1"},
        )
        assert resumed.status_code == 202
        assert sandbox.duplicate_requests == 0

        # A retried resume (say, after a lost response) is refused, and counted as a duplicate.
        retried = await mx.put(
            f"/users/{user}/members/{member}/resume",
            json={"member": {"challenges": [{"guid": guid, "value": "correct"}]}},
            headers={"Idempotency-Key": "answer-1"},
        )
        assert retried.status_code == 409

    assert sandbox.ledger.keys_of(member) == {"login-1": 1, "answer-1": 2}
    assert sandbox.ledger.first_object == {"login-1": member, "answer-1": member}
    assert sandbox.duplicate_requests == 1


@pytest.mark.parametrize("window", [None, 30.0], ids=["default", "30s"])
async def test_an_unanswered_challenge_expires_only_when_a_window_is_set(
    window: float | None,
) -> None:
    clock = FakeClock()
    sandbox = create_sandbox(latency_seconds=1, mfa_window_seconds=window)
    sandbox.clock = clock
    async with in_process_client(sandbox, {"Accept": MX_ACCEPT}, AUTH) as mx:
        user, member = await new_member(mx, "user_mfa")
        status_path = f"/users/{user}/members/{member}/status"
        clock.now += 1
        guid = (await mx.get(status_path)).json()["member"]["challenges"][0]["guid"]
        clock.now += 29.9
        assert (await mx.get(status_path)).json()["member"]["connection_status"] == "CHALLENGED"
        clock.now += 0.2
        status = (await mx.get(status_path)).json()["member"]
        late = await resume(mx, user, member, [{"guid": guid, "value": "correct"}])

    if window is None:
        assert status["connection_status"] == "CHALLENGED"
        assert late.status_code == 202
        return
    assert status == {
        "aggregated_at": None,
        "connection_status": "EXPIRED",
        "guid": member,
        "is_authenticated": False,
        "is_being_aggregated": False,
        "successfully_aggregated_at": None,
    }
    assert late.status_code == 409
    assert "EXPIRED" in late.json()["error"]["message"]


def test_the_guide_is_what_the_sandbox_follows() -> None:
    assert SEED_MEMBER["connection_status"] == "CHALLENGED"
    assert {
        "aggregated_at",
        "challenges",
        "connection_status",
        "guid",
        "is_authenticated",
        "is_being_aggregated",
        "successfully_aggregated_at",
    } == SEED_STATUS_FIELDS
    assert {"field_name", "guid", "label", "type"} == SEED_CHALLENGE_FIELDS
    assert "/resume" in MX_GUIDE["resume request"]
    assert "use correct as the value" in MX_GUIDE["test answer"]


def test_the_sandbox_names_every_challenge_type_the_reference_names() -> None:
    assert [TEXT, OPTIONS, TOKEN, IMAGE_DATA, IMAGE_OPTIONS] == CHALLENGE_TYPES
    assert {"field_name", "guid", "label", "type"} <= CHALLENGE_FIELDS
    assert {"image_data", "image_options", "options"} <= CHALLENGE_FIELDS


async def test_user_image_chooses_among_pictures_in_image_options(mx: httpx.AsyncClient) -> None:
    user, member = await new_member(mx, "user_image")
    [choice] = (await settled_status(mx, user, member))["challenges"]
    assert choice["type"] == "IMAGE_OPTIONS"
    assert set(choice) == SEED_CHALLENGE_FIELDS | {"image_options"}
    pictures = choice["image_options"]
    assert len(pictures) == 3
    for picture in pictures:
        assert set(picture) == IMAGE_OPTION_FIELDS
        assert picture["guid"].startswith("CRD-")
        prefix, _, encoded = picture["data_uri"].partition(",")
        assert prefix == "data:image/png;base64"
        assert base64.b64decode(encoded, validate=True).startswith(PNG_SIGNATURE)
    assert len({picture["value"] for picture in pictures}) == 3

    # A value no picture has is a wrong answer: the same question, new guids.
    await resume(mx, user, member, [{"guid": choice["guid"], "value": "image-purple"}])
    [again] = (await settled_status(mx, user, member))["challenges"]
    assert (again["type"], again["label"]) == ("IMAGE_OPTIONS", choice["label"])
    assert again["guid"] != choice["guid"]
    # Any offered picture is right, answered by its value.
    chosen = again["image_options"][2]["value"]
    await resume(mx, user, member, [{"guid": again["guid"], "value": chosen}])
    assert (await settled_status(mx, user, member))["connection_status"] == "CONNECTED"


async def test_user_image_data_names_what_a_bare_base64_picture_shows(
    mx: httpx.AsyncClient,
) -> None:
    user, member = await new_member(mx, "user_image_data")
    [question] = (await settled_status(mx, user, member))["challenges"]
    assert question["type"] == "IMAGE_DATA"
    assert set(question) == SEED_CHALLENGE_FIELDS | {"image_data"}
    assert not question["image_data"].startswith("data:")
    assert base64.b64decode(question["image_data"], validate=True).startswith(PNG_SIGNATURE)

    await resume(mx, user, member, [{"guid": question["guid"], "value": "correct"}])
    assert (await settled_status(mx, user, member))["connection_status"] == "CONNECTED"


async def test_challenges_are_no_content_unless_the_member_is_challenged(
    mx: httpx.AsyncClient,
) -> None:
    user, member = await new_member(mx, "user_good")
    await settled_status(mx, user, member)
    listed = await mx.get(f"/users/{user}/members/{member}/challenges")
    assert listed.status_code == 204
    assert listed.content == b""


async def test_a_wrong_answer_is_rejected_while_mx_goes_on_then_asked_again() -> None:
    clock = FakeClock()
    sandbox = MxSandbox(latency_seconds=1, clock=clock)
    async with in_process_client(sandbox, {"Accept": MX_ACCEPT}, AUTH) as mx:
        user, member = await new_member(mx, "user_mfa")
        status_path = f"/users/{user}/members/{member}/status"
        clock.now += 1
        [first] = (await mx.get(status_path)).json()["member"]["challenges"]
        await resume(mx, user, member, [{"guid": first["guid"], "value": "Chicago"}])
        clock.now += 1
        rejected = (await mx.get(status_path)).json()["member"]
        assert rejected["connection_status"] == "REJECTED"
        assert rejected["is_being_aggregated"] is True
        assert "challenges" not in rejected
        clock.now += 1
        asked = (await mx.get(status_path)).json()["member"]
    assert asked["connection_status"] == "CHALLENGED"
    [again] = asked["challenges"]
    assert (again["label"], again["type"]) == (first["label"], first["type"])
    assert again["guid"] != first["guid"]


async def test_three_credential_failures_in_a_row_prevent_the_member(
    mx: httpx.AsyncClient,
) -> None:
    user, member = await new_member(mx, "user_good", "nope")
    assert (await settled_status(mx, user, member))["connection_status"] == "DENIED"
    path = f"/users/{user}/members/{member}"
    wrong = {"member": {"credentials": [{"guid": PASSWORD_GUID, "value": "still-wrong"}]}}
    updated = await mx.put(path, json=wrong)
    # MX's "Update member" answers 200 OK.
    assert updated.status_code == 200
    assert updated.json()["member"]["connection_status"] == "UPDATED"
    assert (await settled_status(mx, user, member))["connection_status"] == "DENIED"
    await mx.put(path, json=wrong)
    prevented = await settled_status(mx, user, member)
    assert prevented["connection_status"] == "PREVENTED"
    assert prevented["is_being_aggregated"] is False

    # MX aggregates it no more until its credentials are entered again.
    refreshed = await mx.post(f"{path}/aggregate")
    assert refreshed.status_code == 202
    assert refreshed.json()["member"]["connection_status"] == "PREVENTED"
    assert refreshed.json()["member"]["is_being_aggregated"] is False
    right = {"member": {"credentials": [{"guid": PASSWORD_GUID, "value": "pass_good"}]}}
    await mx.put(path, json=right)
    assert (await settled_status(mx, user, member))["connection_status"] == "CONNECTED"


async def bank_event(mx: httpx.AsyncClient, username: str, event: str) -> None:
    response = await mx.post("/_sandbox/bank-events", json={"username": username, "event": event})
    assert response.status_code == 200, response.text


async def test_a_paused_member_is_disabled_still_connected_with_its_accounts(
    mx: httpx.AsyncClient,
) -> None:
    username = f"user_good+{time.time_ns()}"
    user, member = await new_member(mx, username)
    path = f"/users/{user}/members/{member}"
    connected = await settled_status(mx, user, member)
    await bank_event(mx, username, "paused")
    assert (await mx.post(f"{path}/aggregate")).status_code == 202
    disabled = await settled_status(mx, user, member)
    assert disabled["connection_status"] == "DISABLED"
    assert disabled["successfully_aggregated_at"] == connected["successfully_aggregated_at"]
    assert len((await mx.get(f"{path}/accounts")).json()["accounts"]) == 2

    await mx.post(f"{path}/aggregate")
    assert (await settled_status(mx, user, member))["connection_status"] == "CONNECTED"


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("credentials_incomplete", "IMPAIRED"),
        ("imported", "IMPORTED"),
        ("credentials_removed", None),
    ],
)
async def test_a_member_without_its_credentials_waits_for_them(
    mx: httpx.AsyncClient, event: str, status: str | None
) -> None:
    username = f"user_good+{time.time_ns()}"
    user, member = await new_member(mx, username)
    path = f"/users/{user}/members/{member}"
    await settled_status(mx, user, member)
    await bank_event(mx, username, event)
    await mx.post(f"{path}/aggregate")
    waiting = await settled_status(mx, user, member)
    # A member without credentials says null, as MX's table has it, not nothing.
    assert "connection_status" in waiting
    assert waiting["connection_status"] == status
    await mx.post(f"{path}/aggregate")
    assert (await settled_status(mx, user, member))["connection_status"] == status

    credentials = [
        {"guid": USERNAME_GUID, "value": username},
        {"guid": PASSWORD_GUID, "value": "pass_good"},
    ]
    await mx.put(path, json={"member": {"credentials": credentials}})
    assert (await settled_status(mx, user, member))["connection_status"] == "CONNECTED"


async def test_an_unknown_bank_event_is_refused(mx: httpx.AsyncClient) -> None:
    refused = await mx.post(
        "/_sandbox/bank-events", json={"username": "user_good", "event": "meteor"}
    )
    assert refused.status_code == 400
    assert "paused" in refused.json()["error"]["message"]
