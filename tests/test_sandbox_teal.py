"""The Teal sandbox's raw HTTP answers, field by field against Teal's pages.

The adapter's contract tests only prove that the adapter and the sandbox agree; these prove that
the sandbox says what Teal's documentation says: the account object's exact fields and types, the
`{"mfa": ...}` body, `X-API-KEY` on every request, Teal's own `user_id` from `POST /users`, the
valid authorisation that creating an account and answering its MFA require (named by
`x-teal-authorisation-id` in any form Teal's documents show, or resolved), and an OAuth payroll
provider's `authorization_url`. The MFA page's examples are read from
tests/fixtures/documents/teal_submit_mfa_response.txt; the other pages' documented fields are
noted below with the page they come from.
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

from sandbox.teal import OAUTH_SECONDS, SYSTEM_TERM_ID, TealAuthorisation, TealSandbox
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
AUTHORISATION = "x-teal-authorisation-id"

# What Teal's pages document, noted from docs.goteal.co (the fields, not the pages' text):
# "Create a User" (POST /users): the body's required fields and the response's fields.
USER_BODY_REQUIRED = {"name", "email"}
USER_FIELDS = {"user_id", "created_at", "name", "email"}
# "Record an authorisation" (POST /authorisations): required fields and the record's fields.
AUTHORISATION_BODY_REQUIRED = {"user_id", "user_agent"}
AUTHORISATION_FIELDS = {
    "id",
    "status",
    "ip_address",
    "is_valid",
    "accepted_at",
    "created_at",
    "user_id",
    "user_agent",
    "revoked_at",
    "term_id",
    "fingerprint",
}
# The example ids of Teal's pages: a user's and a term's (uuids), and an authorisation's, which
# is uuid-shaped but not hexadecimal.
DOCUMENTED_USER_ID = "95a0e70b-fe02-4f47-aef9-2efff279df71"
DOCUMENTED_TERM_ID = "550e8400-e29b-41d4-a716-446655440000"
DOCUMENTED_AUTHORISATION_ID = "7f3b8c2a-1d4e-5f6g-7h8i-9j0k1l2m3n4o"


@pytest.fixture
async def teal(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{sandbox_url}/teal", headers=HEADERS, timeout=10
    ) as client:
        yield client


async def new_user(teal: httpx.AsyncClient, *, authorised: bool = True) -> str:
    """A Teal user (Teal says its id), with a valid authorisation unless told otherwise."""
    created = await teal.post("/users", json={"name": "App user", "email": f"{uuid.uuid4()}"})
    assert created.status_code == 201, created.text
    user_id: str = created.json()["user_id"]
    if authorised:
        await authorise(teal, user_id)
    return user_id


async def authorise(teal: httpx.AsyncClient, user_id: str) -> str:
    recorded = await teal.post(
        "/authorisations", json={"user_id": user_id, "user_agent": "linkflow-tests"}
    )
    assert recorded.status_code == 201, recorded.text
    authorisation_id: str = recorded.json()["id"]
    return authorisation_id


def create_body(user_id: str, username: str, password: str = "pass_good") -> dict[str, str]:
    return {
        "user_id": user_id,
        "payroll_provider": "quickbooks",
        "user_name": username,
        "password": password,
    }


async def new_account(teal: httpx.AsyncClient, username: str) -> dict[str, Any]:
    response = await teal.post("/accounts", json=create_body(await new_user(teal), username))
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
        ("POST", "/users"),
        ("GET", "/users/u"),
        ("POST", "/authorisations"),
        ("GET", "/authorisations"),
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


# ---------------------------------------------------------------------- users and authorisations


async def test_teal_makes_the_user_id(teal: httpx.AsyncClient) -> None:
    created = await teal.post("/users", json={"name": "App user", "email": "app-user-42"})
    assert created.status_code == 201
    user = created.json()
    assert set(user) == USER_FIELDS
    uuid.UUID(user["user_id"])
    assert TEAL_TIME.match(user["created_at"])
    assert (user["name"], user["email"]) == ("App user", "app-user-42")
    got = await teal.get(f"/users/{user['user_id']}")
    assert got.json() == user
    assert (await teal.get(f"/users/{DOCUMENTED_USER_ID}")).status_code == 404


@pytest.mark.parametrize("drop", sorted(USER_BODY_REQUIRED))
async def test_a_user_needs_its_documented_fields(teal: httpx.AsyncClient, drop: str) -> None:
    body = {"name": "App user", "email": "app-user-42"}
    del body[drop]
    response = await teal.post("/users", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


async def test_an_authorisation_is_recorded_and_listed(teal: httpx.AsyncClient) -> None:
    user_id = await new_user(teal, authorised=False)
    recorded = await teal.post(
        "/authorisations",
        json={
            "user_id": user_id,
            "user_agent": "linkflow-tests",
            "term_id": DOCUMENTED_TERM_ID,
            "ip_address": "203.0.113.7",
        },
    )
    assert recorded.status_code == 201
    authorisation = recorded.json()
    assert set(authorisation) == AUTHORISATION_FIELDS
    assert (authorisation["status"], authorisation["is_valid"]) == ("active", True)
    assert (authorisation["term_id"], authorisation["ip_address"]) == (
        SYSTEM_TERM_ID,
        "203.0.113.7",
    )
    assert authorisation["revoked_at"] is None

    listed = await teal.get("/authorisations", params={"user_id": user_id, "status": "active"})
    assert listed.status_code == 200
    assert set(listed.json()) == {"pagination", "authorisations"}
    assert [a["id"] for a in listed.json()["authorisations"]] == [authorisation["id"]]
    revoked = await teal.post(f"/_sandbox/authorisations/{authorisation['id']}/revoke")
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["is_valid"] is False
    active = await teal.get("/authorisations", params={"user_id": user_id, "status": "active"})
    assert active.json()["authorisations"] == []


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"user_agent": None}, 400),
        ({"user_id": None}, 400),
        ({"user_id": DOCUMENTED_USER_ID}, 404),
        ({"term_id": str(uuid.uuid4())}, 404),
    ],
    ids=["no-user-agent", "no-user", "unknown-user", "unknown-term"],
)
async def test_authorisation_refusals(
    teal: httpx.AsyncClient, change: dict[str, Any], status: int
) -> None:
    body = {"user_id": await new_user(teal, authorised=False), "user_agent": "tests"}
    body = {k: v for k, v in (body | change).items() if v is not None}
    assert set(AUTHORISATION_BODY_REQUIRED) - set(body) or status == 404
    response = await teal.post("/authorisations", json=body)
    assert response.status_code == status


@pytest.mark.parametrize("value", ["not-a-uuid", ""], ids=["word", "empty"])
async def test_a_malformed_authorisation_id_is_refused(teal: httpx.AsyncClient, value: str) -> None:
    user_id = await new_user(teal)
    response = await teal.post(
        "/accounts", json=create_body(user_id, "user_good"), headers={AUTHORISATION: value}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_AUTHORISATION_ID"


async def test_the_named_authorisation_is_the_one_used(teal: httpx.AsyncClient) -> None:
    user_id = await new_user(teal, authorised=False)
    authorisation_id = await authorise(teal, user_id)
    header = {AUTHORISATION: authorisation_id}
    created = await teal.post("/accounts", json=create_body(user_id, "user_good"), headers=header)
    assert created.status_code == 201
    got = await teal.get(f"/accounts/{created.json()['account_id']}", headers=header)
    assert got.status_code == 200


async def test_an_account_needs_a_user_teal_knows_and_a_valid_authorisation(
    teal: httpx.AsyncClient,
) -> None:
    unknown = await teal.post("/accounts", json=create_body(DOCUMENTED_USER_ID, "user_good"))
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "USER_NOT_FOUND")

    unauthorised = await new_user(teal, authorised=False)
    refused = await teal.post("/accounts", json=create_body(unauthorised, "user_good"))
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        403,
        "AUTHORISATION_REQUIRED",
    )
    # Another user's authorisation is no authorisation for this one.
    someone_else = await authorise(teal, await new_user(teal, authorised=False))
    borrowed = await teal.post(
        "/accounts",
        json=create_body(unauthorised, "user_good"),
        headers={AUTHORISATION: someone_else},
    )
    assert borrowed.status_code == 403
    # The documents' own authorisation id is well formed: refused as unknown, not as malformed.
    documented = await teal.post(
        "/accounts",
        json=create_body(unauthorised, "user_good"),
        headers={AUTHORISATION: DOCUMENTED_AUTHORISATION_ID},
    )
    assert (documented.status_code, documented.json()["error"]["code"]) == (
        403,
        "AUTHORISATION_REQUIRED",
    )
    # With a valid authorisation Teal resolves it when none is named.
    await authorise(teal, unauthorised)
    assert (
        await teal.post("/accounts", json=create_body(unauthorised, "user_good"))
    ).status_code == 201


async def test_an_mfa_answer_needs_a_valid_authorisation(teal: httpx.AsyncClient) -> None:
    user_id = await new_user(teal, authorised=False)
    authorisation_id = await authorise(teal, user_id)
    created = await teal.post("/accounts", json=create_body(user_id, "user_mfa"))
    account_id = created.json()["account_id"]
    await settled(teal, account_id)
    await teal.post(f"/_sandbox/authorisations/{authorisation_id}/revoke")
    refused = await teal.put(f"/accounts/{account_id}/mfa", json={"mfa": "correct"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        403,
        "AUTHORISATION_REQUIRED",
    )
    named = await teal.put(
        f"/accounts/{account_id}/mfa",
        json={"mfa": "correct"},
        headers={AUTHORISATION: authorisation_id},
    )
    assert named.status_code == 403
    await authorise(teal, user_id)
    answered = await teal.put(f"/accounts/{account_id}/mfa", json={"mfa": "correct"})
    assert answered.status_code == 200


async def test_every_id_form_the_documents_show_is_accepted() -> None:
    """Teal's example ids, the authorisation's non-hexadecimal one included, work as ids."""
    sandbox = TealSandbox(latency_seconds=0)
    async with in_process_client(sandbox, HEADERS) as teal:
        user_id = await new_user(teal, authorised=False)
        sandbox.authorisations[DOCUMENTED_AUTHORISATION_ID] = TealAuthorisation(
            id=DOCUMENTED_AUTHORISATION_ID,
            user_id=user_id,
            term_id=DOCUMENTED_TERM_ID,
            user_agent="tests",
            ip_address=None,
            fingerprint=None,
        )
        created = await teal.post(
            "/accounts",
            json=create_body(user_id, "user_good"),
            headers={AUTHORISATION: DOCUMENTED_AUTHORISATION_ID},
        )
        assert created.status_code == 201, created.text
        account_id = created.json()["account_id"]
    assert sandbox.accounts[account_id].authorisation_ids == [DOCUMENTED_AUTHORISATION_ID]


# ---------------------------------------------------------------------- accounts


async def test_create_account_body(teal: httpx.AsyncClient) -> None:
    body = create_body(await new_user(teal), "user_good")
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
    body = create_body(await new_user(teal), "user_good")
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
    body = create_body(await new_user(teal), "user_good")
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
    assert (await teal.get(f"/payroll/{DOCUMENTED_USER_ID}")).status_code == 404


# ---------------------------------------------------------------------- an OAuth payroll provider


async def test_user_redirect_is_sent_to_its_payroll_providers_page(
    teal: httpx.AsyncClient,
) -> None:
    created = await new_account(teal, "user_redirect")
    assert_like_the_seed(created, "authorization_url")
    assert created["status"] == "PENDING"
    url = created["authorization_url"]
    assert url.startswith(str(teal.base_url).rstrip("/") + "/_sandbox/oauth/authorize?")
    # While the user has not logged in there, every read says where to go.
    again = (await teal.get(f"/accounts/{created['account_id']}")).json()
    assert (again["status"], again["authorization_url"]) == ("PENDING", url)

    async with httpx.AsyncClient() as browser:
        visited = await browser.get(url)
        assert visited.status_code == 200
        assert (await browser.get(url)).status_code == 404
    active = await settled(teal, created["account_id"])
    assert_like_the_seed(active)
    assert active["status"] == "ACTIVE"


async def test_an_oauth_login_completes_by_itself_after_a_while() -> None:
    clock = FakeClock()
    sandbox = TealSandbox(latency_seconds=1, clock=clock)
    async with in_process_client(sandbox, HEADERS) as teal:
        created = await new_account(teal, "user_redirect")
        path = f"/accounts/{created['account_id']}"
        clock.now += OAUTH_SECONDS - 0.1
        assert "authorization_url" in (await teal.get(path)).json()
        clock.now += 0.2
        done = (await teal.get(path)).json()
    assert done["status"] == "ACTIVE"
    assert "authorization_url" not in done


async def test_delete_account(teal: httpx.AsyncClient) -> None:
    account_id = (await new_account(teal, "user_good"))["account_id"]
    deleted = await teal.delete(f"/accounts/{account_id}")
    assert deleted.status_code == 204
    assert (await teal.get(f"/accounts/{account_id}")).status_code == 404
    assert (await teal.delete(f"/accounts/{account_id}")).status_code == 404


async def test_latency_idempotency_keys_and_authorisation_ids_in_process() -> None:
    clock = FakeClock()
    sandbox = TealSandbox(latency_seconds=5, clock=clock)
    async with in_process_client(sandbox, HEADERS) as teal:
        user_id = await new_user(teal, authorised=False)
        authorisation = await authorise(teal, user_id)
        created = await teal.post(
            "/accounts",
            json=create_body(user_id, "user_mfa"),
            headers={"Idempotency-Key": "login-1", AUTHORISATION: authorisation},
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
    # Each authorised request noted the authorisation it used: the named one, then the resolved.
    assert sandbox.accounts[account_id].authorisation_ids == [authorisation] * 3
