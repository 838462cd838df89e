"""The Teal sandbox's raw HTTP answers, field by field against Teal's MFA page.

The adapter's contract tests only prove that the adapter and the sandbox agree; these prove that
the sandbox says what Teal's documentation says: the account object's exact fields and types, the
`{"mfa": ...}` body, `X-API-KEY` on every request and `x-teal-authorisation-id` as a uuid. The
page's examples are read from tests/fixtures/documents/teal_submit_mfa_response.txt.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from sandbox.teal import TealSandbox
from tests.fixtures.documents import read_document
from tests.fixtures.sandbox import FakeClock, in_process_client, read_until

TEAL_PAGE = read_document("teal_submit_mfa_response.txt")
# The seed's example response: the account object after an MFA answer.
SEED_ACCOUNT: dict[str, Any] = TEAL_PAGE.json("response")
# The seed's example request body, from the curl command's --data.
SEED_MFA_BODY: dict[str, Any] = json.loads(
    re.search(r"--data '\s*(\{.*?\})\s*'", TEAL_PAGE["request"], re.DOTALL)[1]  # type: ignore[index]
)
HEADERS = {"X-API-KEY": "sandbox-api-key"}
TEAL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
async def teal(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{sandbox_url}/teal", headers=HEADERS, timeout=10
    ) as client:
        yield client


def create_body(username: str, password: str = "pass_good") -> dict[str, str]:
    return {
        "user_id": f"user-{uuid.uuid4()}",
        "payroll_provider": "quickbooks",
        "user_name": username,
        "password": password,
    }


async def new_account(teal: httpx.AsyncClient, username: str) -> dict[str, Any]:
    response = await teal.post("/accounts", json=create_body(username))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def settled(teal: httpx.AsyncClient, account_id: str) -> dict[str, Any]:
    """The account once its job in progress has resolved."""
    return await read_until(
        teal, f"/accounts/{account_id}", lambda account: account["status"] != "PENDING"
    )


def assert_like_the_seed(body: dict[str, Any], *extra: str) -> None:
    """Exactly the seed's fields (plus `extra`), each of the seed's type."""
    assert set(body) == set(SEED_ACCOUNT) | set(extra)
    for name, example in SEED_ACCOUNT.items():
        if name == "latest_pay_date" and body[name] is None:
            continue
        assert type(body[name]) is type(example), name
    assert TEAL_TIME.match(body["created_at"])
    uuid.UUID(body["account_id"])


def test_the_seed_parses() -> None:
    assert set(SEED_ACCOUNT) == {
        "account_id",
        "payroll_provider",
        "user_name",
        "created_at",
        "status",
        "mfa_enabled",
        "latest_pay_date",
    }
    assert SEED_ACCOUNT["status"] == "PENDING"
    assert set(SEED_MFA_BODY) == {"mfa"}


@pytest.mark.parametrize(
    "headers", [{}, {"X-API-KEY": ""}, {"x-teal-authorisation-id": str(uuid.uuid4())}]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/accounts"),
        ("GET", "/accounts"),
        ("GET", "/accounts/x"),
        ("PUT", "/accounts/x/mfa"),
        ("DELETE", "/accounts/x"),
        ("GET", "/payroll/u"),
    ],
)
async def test_every_request_needs_an_api_key(
    sandbox_url: str, headers: dict[str, str], method: str, path: str
) -> None:
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/teal") as client:
        response = await client.request(method, path, headers=headers, json={})
    assert response.status_code == 401
    assert "X-API-KEY" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "value",
    ["not-a-uuid", "7f3b8c2a-1d4e-5f6g-7h8i-9j0k1l2m3n4o", ""],
    ids=["word", "seed", "empty"],
)
async def test_authorisation_id_must_be_a_uuid(teal: httpx.AsyncClient, value: str) -> None:
    # The reference's own example id (with g..o in it) is not a uuid, so it is refused too.
    response = await teal.post(
        "/accounts", json=create_body("user_good"), headers={"x-teal-authorisation-id": value}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_AUTHORISATION_ID"


async def test_authorisation_id_is_accepted(teal: httpx.AsyncClient) -> None:
    header = {"x-teal-authorisation-id": str(uuid.uuid4())}
    created = await teal.post("/accounts", json=create_body("user_good"), headers=header)
    assert created.status_code == 201
    got = await teal.get(f"/accounts/{created.json()['account_id']}", headers=header)
    assert got.status_code == 200


async def test_create_account_body(teal: httpx.AsyncClient) -> None:
    body = create_body("user_good")
    response = await teal.post("/accounts", json=body)
    assert response.status_code == 201
    account = response.json()
    assert_like_the_seed(account)
    assert account["status"] == "PENDING"
    assert account["payroll_provider"] == "quickbooks"
    assert account["user_name"] == "user_good"
    assert account["mfa_enabled"] is False
    assert account["latest_pay_date"] is None
    assert "password" not in response.text


@pytest.mark.parametrize(
    "drop", ["user_id", "payroll_provider", "user_name", "password"], ids=lambda d: f"no-{d}"
)
async def test_create_account_refusals(teal: httpx.AsyncClient, drop: str) -> None:
    body = create_body("user_good")
    del body[drop]
    response = await teal.post("/accounts", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"]
    assert (await teal.post("/accounts", content=b"[1]")).status_code == 400


async def test_active_account(teal: httpx.AsyncClient) -> None:
    account = await settled(teal, (await new_account(teal, "user_good"))["account_id"])
    assert_like_the_seed(account)
    assert account["status"] == "ACTIVE"
    assert TEAL_TIME.match(account["latest_pay_date"])


async def test_mfa_required_then_answer_matches_the_seed(teal: httpx.AsyncClient) -> None:
    account_id = (await new_account(teal, "user_mfa"))["account_id"]
    account = await settled(teal, account_id)
    assert_like_the_seed(account, "mfa_method")
    assert account["status"] == "MFA_REQUIRED"
    assert account["mfa_enabled"] is True
    method = account["mfa_method"]
    assert set(method) == {"id", "type", "source", "prompt"}
    assert method["type"] == "PasswordCharacters"
    assert method["prompt"] == "Enter characters 2, 4 and 7 of your password"

    # The seed's own request body is a wrong answer ("123456"), which is still accepted.
    answered = await teal.put(f"/accounts/{account_id}/mfa", json=SEED_MFA_BODY)
    assert answered.status_code == 200
    body = answered.json()
    assert_like_the_seed(body)
    assert {k: body[k] for k in ("status", "mfa_enabled")} == {
        "status": SEED_ACCOUNT["status"],
        "mfa_enabled": SEED_ACCOUNT["mfa_enabled"],
    }

    again = await settled(teal, account_id)
    assert again["status"] == "MFA_REQUIRED"
    assert again["mfa_method"]["id"] != method["id"]

    answered = await teal.put(f"/accounts/{account_id}/mfa", json={"mfa": "correct"})
    assert answered.json()["status"] == "PENDING"
    assert (await settled(teal, account_id))["status"] == "ACTIVE"


async def test_mfa_refusals(teal: httpx.AsyncClient) -> None:
    account_id = (await new_account(teal, "user_mfa"))["account_id"]
    # Still PENDING: there is nothing to answer.
    early = await teal.put(f"/accounts/{account_id}/mfa", json={"mfa": "correct"})
    assert early.status_code == 409
    await settled(teal, account_id)
    for bad in ({}, {"mfa": ""}, {"mfa": 123456}):
        response = await teal.put(f"/accounts/{account_id}/mfa", json=bad)
        assert response.status_code == 400
    missing = await teal.put(f"/accounts/{uuid.uuid4()}/mfa", json={"mfa": "correct"})
    assert missing.status_code == 404


async def test_three_wrong_answers_fail_mfa(teal: httpx.AsyncClient) -> None:
    account_id = (await new_account(teal, "user_mfa"))["account_id"]
    for attempt in range(3):
        assert (await settled(teal, account_id))["status"] == "MFA_REQUIRED"
        await teal.put(f"/accounts/{account_id}/mfa", json={"mfa": f"wrong-{attempt}"})
    assert (await settled(teal, account_id))["status"] == "MFA_FAILED"


async def test_otp_date_then_code(teal: httpx.AsyncClient) -> None:
    account_id = (await new_account(teal, "user_otp"))["account_id"]
    first = (await settled(teal, account_id))["mfa_method"]
    assert (first["type"], first["source"]) == ("Date", "USER")
    await teal.put(f"/accounts/{account_id}/mfa", json={"mfa": "correct"})
    second = (await settled(teal, account_id))["mfa_method"]
    assert (second["type"], second["source"]) == ("Code", "SMS")
    await teal.put(f"/accounts/{account_id}/mfa", json={"mfa": "correct"})
    assert (await settled(teal, account_id))["status"] == "ACTIVE"


@pytest.mark.parametrize(
    ("username", "status", "extra"),
    [
        ("user_bad", "INVALID", ()),
        ("user_hold", "ACTION_REQUIRED", ("status_message",)),
        ("user_unsupported", "MFA_REQUIRED", ("mfa_method",)),
    ],
)
async def test_other_users(
    teal: httpx.AsyncClient, username: str, status: str, extra: tuple[str, ...]
) -> None:
    account = await settled(teal, (await new_account(teal, username))["account_id"])
    assert_like_the_seed(account, *extra)
    assert account["status"] == status
    if username == "user_unsupported":
        assert account["mfa_method"]["type"] == "Captcha"


async def test_list_accounts_and_payroll(teal: httpx.AsyncClient) -> None:
    body = create_body("user_good")
    account_id = (await teal.post("/accounts", json=body)).json()["account_id"]
    listed = await teal.get("/accounts", params={"user_id": body["user_id"]})
    assert listed.status_code == 200
    assert listed.json()["pagination"] == {"offset": 0, "limit": 25, "count": 1, "total_count": 1}
    assert [a["account_id"] for a in listed.json()["accounts"]] == [account_id]

    # No payroll until the account is ACTIVE.
    early = (await teal.get(f"/payroll/{body['user_id']}")).json()
    assert early["payroll_submissions"] == []
    await settled(teal, account_id)

    page = await teal.get(f"/payroll/{body['user_id']}", params={"limit": 2})
    assert page.status_code == 200
    assert page.json()["pagination"] == {"offset": 0, "limit": 2, "count": 2, "total_count": 3}
    rest = await teal.get(
        f"/payroll/{body['user_id']}", params={"offset": 2, "account_id": account_id}
    )
    [submission] = rest.json()["payroll_submissions"]
    assert submission["account_id"] == account_id
    assert set(submission["employment_information"]) >= {"employer_name", "role", "status"}
    assert set(submission["income_information"]) >= {"pay_date", "pay_frequency", "earnings"}
    assert (await teal.get("/accounts", params={"limit": 0})).status_code == 400


async def test_delete_account(teal: httpx.AsyncClient) -> None:
    account_id = (await new_account(teal, "user_good"))["account_id"]
    deleted = await teal.delete(f"/accounts/{account_id}")
    assert deleted.status_code == 204
    assert (await teal.get(f"/accounts/{account_id}")).status_code == 404
    assert (await teal.delete(f"/accounts/{account_id}")).status_code == 404


async def test_latency_idempotency_keys_and_authorisation_ids_in_process() -> None:
    clock = FakeClock()
    sandbox = TealSandbox(latency_seconds=5, clock=clock)
    authorisation = str(uuid.uuid4())
    async with in_process_client(sandbox, HEADERS) as teal:
        created = await teal.post(
            "/accounts",
            json=create_body("user_mfa"),
            headers={"Idempotency-Key": "login-1", "x-teal-authorisation-id": authorisation},
        )
        account_id = created.json()["account_id"]
        datetime.strptime(created.json()["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ")

        clock.now += 4.9
        assert (await teal.get(f"/accounts/{account_id}")).json()["status"] == "PENDING"
        clock.now += 0.2
        assert (await teal.get(f"/accounts/{account_id}")).json()["status"] == "MFA_REQUIRED"

        path = f"/accounts/{account_id}/mfa"
        headers = {"Idempotency-Key": "answer-1"}
        answered = await teal.put(path, json={"mfa": "correct"}, headers=headers)
        assert answered.status_code == 200
        assert sandbox.duplicate_requests == 0

        # A retried answer (say, after a lost response) is refused, and counted as a duplicate.
        retried = await teal.put(path, json={"mfa": "correct"}, headers=headers)
        assert retried.status_code == 409

    assert sandbox.ledger.first_object == {"login-1": account_id, "answer-1": account_id}
    assert sandbox.duplicate_requests == 1
    assert sandbox.accounts[account_id].authorisation_ids == [authorisation]
