"""The Unbill sandbox's raw HTTP answers, field by field against Unbill's auth document.

The adapter's contract tests only prove that the adapter and the sandbox agree; these prove that
the sandbox says what Unbill's documentation says, so that agreement means something. The page's
JSON examples are read from tests/fixtures/documents/unbill_auth_object.txt. Auths are read as
Unbill documents it, from the client's list (`GET /auth/list/{clientId}`, "List all auths" in its
reference): the sandbox, like Unbill, has no route that reads one auth.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.unbill import PROMPT_APPROVAL_PERIODS, UnbillSandbox
from tests.fixtures.documents import read_document
from tests.fixtures.sandbox import FakeClock, in_process_client

UNBILL_PAGE = read_document("unbill_auth_object.txt")
HEADERS = {"Authorization": "Bearer sandbox-api-key"}
COMPANY_ID = "579b695decea110719b1874d"
# The client each auth made here belongs to: an auth is read from its client's list.
CLIENT_OF: dict[str, str] = {}


@pytest.fixture(scope="module")
def seed() -> dict[str, dict[str, Any]]:
    """The page's examples by what they show: the auth object and each status response."""
    return {
        "auth": UNBILL_PAGE.json("auth object"),
        "verified": UNBILL_PAGE.json("verified response"),
        "authenticate": UNBILL_PAGE.json("authenticate response"),
        "hold": UNBILL_PAGE.json("hold response"),
        "mfa-required": UNBILL_PAGE.json("mfa-required response"),
    }


@pytest.fixture
async def unbill(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{sandbox_url}/unbill", headers=HEADERS, timeout=10
    ) as client:
        yield client


async def new_client(unbill: httpx.AsyncClient) -> str:
    response = await unbill.post("/client", json={"identifier": f"app-{time.time_ns()}"})
    assert response.status_code == 200, response.text
    client_id: str = response.json()["clientId"]
    return client_id


async def new_auth(
    unbill: httpx.AsyncClient,
    username: str,
    password: str = "pass_good",
    *,
    status: str | None = None,
    client_id: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "userId": client_id or await new_client(unbill),
        "companyId": COMPANY_ID,
        "form": {"username": username, "password": password},
    }
    if status is not None:
        body["status"] = status
    response = await unbill.post("/auth", json=body)
    assert response.status_code == 200, response.text
    auth: dict[str, Any] = response.json()
    assert auth["status"] == {"type": "pending"}
    CLIENT_OF[auth["_id"]] = body["userId"]
    return auth


async def read_auth(unbill: httpx.AsyncClient, auth_id: str) -> dict[str, Any] | None:
    """The auth as its client's list shows it; None once it is gone from the list."""
    listed = await unbill.get(f"/auth/list/{CLIENT_OF[auth_id]}")
    assert listed.status_code == 200, listed.text
    assert set(listed.json()) == {"data"}
    found = [auth for auth in listed.json()["data"] if auth["_id"] == auth_id]
    return found[0] if found else None


async def read(unbill: httpx.AsyncClient, auth_id: str) -> dict[str, Any]:
    auth = await read_auth(unbill, auth_id)
    assert auth is not None, auth_id
    return auth


async def settled(unbill: httpx.AsyncClient, auth_id: str) -> dict[str, Any]:
    """The auth once its sign-in in progress has resolved."""
    for _ in range(200):
        auth = await read(unbill, auth_id)
        if auth["status"]["type"] != "pending":
            return auth
        await asyncio.sleep(0.02)
    pytest.fail(f"auth {auth_id} stayed pending")


async def answer(
    unbill: httpx.AsyncClient, auth_id: str, answers: list[dict[str, str]]
) -> httpx.Response:
    return await unbill.post(f"/auth/{auth_id}/answer-questions", json={"answers": answers})


def test_the_seed_has_five_examples(seed: dict[str, dict[str, Any]]) -> None:
    assert seed["auth"]["status"] == {"type": "verified"}
    assert seed["mfa-required"]["mfa"]["method"] == "questions"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic c2FuZGJveDprZXk="}],
    ids=["no-header", "empty-token", "basic-auth"],
)
async def test_every_request_needs_a_bearer_token(
    sandbox_url: str, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/unbill", headers=headers) as client:
        for method, path in [
            ("POST", "/client"),
            ("POST", "/auth"),
            ("GET", "/auth/list/579b695decfa11012711875d"),
            ("GET", "/bill/list/579b695decfa11012711875d"),
        ]:
            response = await client.request(method, path, json={})
            assert response.status_code == 401, path
            assert isinstance(response.json()["message"], str)


async def test_create_client_returns_the_same_client_for_the_same_identifier(
    unbill: httpx.AsyncClient,
) -> None:
    identifier = f"app-user-{time.time_ns()}"
    first = await unbill.post("/client", json={"identifier": identifier, "meta": {"city": "X"}})
    assert first.status_code == 200
    assert set(first.json()) == {"clientId"}
    again = await unbill.post("/client", json={"identifier": identifier})
    assert again.json() == first.json()
    missing = await unbill.post("/client", json={})
    assert missing.status_code == 400
    assert isinstance(missing.json()["message"], str)


async def test_verified_auth_matches_the_seed_auth_object(
    unbill: httpx.AsyncClient, seed: dict[str, dict[str, Any]]
) -> None:
    created = await new_auth(unbill, "user_good")
    assert set(created) == set(seed["auth"])
    assert len(created["_id"]) == 24
    auth = await settled(unbill, created["_id"])
    assert set(auth) == set(seed["auth"])
    assert auth["_id"] == created["_id"]
    assert auth["status"] == seed["verified"]["status"] == {"type": "verified"}
    assert auth["company"] == seed["auth"]["company"]
    assert set(auth["company"]["logo"]) == {"url", "background"}


async def test_mfa_required_questions_match_the_seed(
    unbill: httpx.AsyncClient, seed: dict[str, dict[str, Any]]
) -> None:
    example = seed["mfa-required"]
    created = await new_auth(unbill, "user_mfa")
    auth = await settled(unbill, created["_id"])
    assert set(auth) == set(seed["auth"]) | set(example)
    assert auth["status"] == example["status"] == {"type": "mfa-required"}
    assert set(auth["mfa"]) == set(example["mfa"]) == {"method", "mfa"}
    assert auth["mfa"]["method"] == "questions"
    assert [set(item) for item in auth["mfa"]["mfa"]] == [set(i) for i in example["mfa"]["mfa"]]
    assert [item["question"] for item in auth["mfa"]["mfa"]] == [
        item["question"] for item in example["mfa"]["mfa"]
    ]
    # All questions of the round are answered in one call, as in Unbill's example request.
    answered = await answer(
        unbill,
        auth["_id"],
        [{"answer": "correct", "identifier": i["identifier"]} for i in auth["mfa"]["mfa"]],
    )
    assert answered.status_code == 200
    assert answered.json() == {"success": True}
    assert (await read(unbill, auth["_id"]))["status"] == {"type": "pending"}
    assert (await settled(unbill, auth["_id"]))["status"] == {"type": "verified"}


async def test_answers_must_cover_the_round_exactly(unbill: httpx.AsyncClient) -> None:
    auth = await settled(unbill, (await new_auth(unbill, "user_mfa"))["_id"])
    first, second = (item["identifier"] for item in auth["mfa"]["mfa"])
    partial = await answer(unbill, auth["_id"], [{"answer": "correct", "identifier": first}])
    assert partial.status_code == 400
    assert second in partial.json()["message"]
    unknown = await answer(
        unbill,
        auth["_id"],
        [
            {"answer": "correct", "identifier": first},
            {"answer": "correct", "identifier": second},
            {"answer": "correct", "identifier": "nope"},
        ],
    )
    assert unknown.status_code == 400
    malformed = await unbill.post(f"/auth/{auth['_id']}/answer-questions", json={"answers": "x"})
    assert malformed.status_code == 400
    # Still the same round.
    again = await read(unbill, auth["_id"])
    assert again["mfa"] == auth["mfa"]


async def test_wrong_answers_get_new_identifiers_then_authenticate(
    unbill: httpx.AsyncClient,
) -> None:
    auth = await settled(unbill, (await new_auth(unbill, "user_mfa"))["_id"])
    seen: set[str] = set()
    for attempt in range(3):
        identifiers = {item["identifier"] for item in auth["mfa"]["mfa"]}
        assert not identifiers & seen, attempt
        seen |= identifiers
        wrong = [{"answer": "Seattle", "identifier": i} for i in identifiers]
        assert (await answer(unbill, auth["_id"], wrong)).status_code == 200
        auth = await settled(unbill, auth["_id"])
    assert auth["status"] == {"type": "authenticate"}
    assert set(auth) == {"_id", "status", "company"}
    late = await answer(unbill, auth["_id"], [{"answer": "correct", "identifier": "x"}])
    assert late.status_code == 409


async def test_code_round(unbill: httpx.AsyncClient) -> None:
    auth = await settled(unbill, (await new_auth(unbill, "user_otp"))["_id"])
    assert auth["mfa"]["method"] == "code"
    [item] = auth["mfa"]["mfa"]
    assert set(item) == {"question", "identifier"}
    ok = await answer(
        unbill, auth["_id"], [{"answer": "correct", "identifier": item["identifier"]}]
    )
    assert ok.json() == {"success": True}
    assert (await settled(unbill, auth["_id"]))["status"] == {"type": "verified"}


async def test_prompt_round_is_approved_by_the_sandbox(unbill: httpx.AsyncClient) -> None:
    auth = await settled(unbill, (await new_auth(unbill, "mfa-required-prompt"))["_id"])
    assert auth["status"] == {"type": "mfa-required"}
    assert auth["mfa"]["method"] == "prompt"
    [item] = auth["mfa"]["mfa"]
    refused = await answer(unbill, auth["_id"], [{"answer": "", "identifier": item["identifier"]}])
    assert refused.status_code == 409
    for _ in range(200):
        auth = await read(unbill, auth["_id"])
        if auth["status"]["type"] != "mfa-required":
            break
        assert auth["mfa"]["mfa"] == [item]
        await asyncio.sleep(0.02)
    assert auth["status"] == {"type": "verified"}


async def test_hold_matches_the_seed_and_fix_hold_resumes(
    unbill: httpx.AsyncClient, seed: dict[str, dict[str, Any]]
) -> None:
    example = seed["hold"]
    auth = await settled(unbill, (await new_auth(unbill, "user_hold"))["_id"])
    assert set(auth) == set(seed["auth"]) | set(example)
    assert auth["status"] == example["status"] == {"type": "hold"}
    assert set(auth["reason"]) == set(example["reason"]) == {"userMessage", "code"}
    assert auth["reason"] == {
        "userMessage": "Please log in to your account and accept the Terms and Conditions.",
        "code": "account_issue_accept_toc",
    }
    fixed = await unbill.post(f"/auth/{auth['_id']}/fix-hold")
    assert fixed.status_code == 200
    assert fixed.json() == {"success": True}
    resumed = await settled(unbill, auth["_id"])
    assert resumed["status"] == {"type": "verified"}
    assert "reason" not in resumed
    assert (await unbill.post(f"/auth/{auth['_id']}/fix-hold")).status_code == 409
    assert (await unbill.post("/auth/000000000000000000000000/fix-hold")).status_code == 404


async def test_bad_credentials_authenticate(
    unbill: httpx.AsyncClient, seed: dict[str, dict[str, Any]]
) -> None:
    for username, password in [("user_bad", "pass_good"), ("user_good", "nope"), ("who", "x")]:
        auth = await settled(unbill, (await new_auth(unbill, username, password))["_id"])
        assert auth["status"] == seed["authenticate"]["status"] == {"type": "authenticate"}


@pytest.mark.parametrize(
    ("hook", "status", "method"),
    [
        ("verified", "verified", None),
        ("authenticate", "authenticate", None),
        ("hold", "hold", None),
        ("mfa-required-questions", "mfa-required", "questions"),
        ("mfa-required-code", "mfa-required", "code"),
        ("mfa-required-prompt", "mfa-required", "prompt"),
    ],
)
async def test_seed_test_hooks(
    unbill: httpx.AsyncClient, hook: str, status: str, method: str | None
) -> None:
    by_status = await settled(unbill, (await new_auth(unbill, "x", "y", status=hook))["_id"])
    by_username = await settled(unbill, (await new_auth(unbill, hook))["_id"])
    for auth in (by_status, by_username):
        assert auth["status"] == {"type": status}, hook
        assert auth.get("mfa", {}).get("method") == method
        if status == "hold":
            assert auth["reason"]["code"] == "account_issue_accept_toc"


@pytest.mark.parametrize("status", ["on-fire", "", "mfa-required-email", 7, None], ids=repr)
async def test_a_test_auth_is_verified_unless_another_valid_status_is_entered(
    unbill: httpx.AsyncClient, status: object
) -> None:
    """The seed: verified "as long as no other valid auth status is entered"."""
    client_id = await new_client(unbill)
    body = {
        "userId": client_id,
        "companyId": COMPANY_ID,
        # Credentials that would fail, and the test status decides anyway.
        "form": {"username": "user_bad", "password": "not-the-password"},
        "status": status,
    }
    created = await unbill.post("/auth", json=body)
    assert created.status_code == 200, created.text
    CLIENT_OF[created.json()["_id"]] = client_id
    assert (await settled(unbill, created.json()["_id"]))["status"] == {"type": "verified"}


async def test_there_is_no_route_that_reads_one_auth(unbill: httpx.AsyncClient) -> None:
    auth = await new_auth(unbill, "user_good")
    assert (await unbill.get(f"/auth/{auth['_id']}")).status_code == 405
    assert (await read(unbill, auth["_id"]))["_id"] == auth["_id"]


async def test_unsupported_method(unbill: httpx.AsyncClient) -> None:
    auth = await settled(unbill, (await new_auth(unbill, "user_unsupported"))["_id"])
    assert auth["status"] == {"type": "mfa-required"}
    assert auth["mfa"]["method"] == "captcha"


async def test_create_auth_refusals(unbill: httpx.AsyncClient) -> None:
    client_id = await new_client(unbill)
    form = {"username": "user_good", "password": "pass_good"}
    cases = [
        ({"userId": "nobody", "companyId": COMPANY_ID, "form": form}, 404),
        # The older reference names the client `userId`; `clientId` is no field of its.
        ({"clientId": client_id, "companyId": COMPANY_ID, "form": form}, 404),
        ({"userId": client_id, "companyId": "nocompany", "form": form}, 404),
        ({"userId": client_id, "companyId": COMPANY_ID, "form": {"username": "a"}}, 400),
        ({"userId": client_id, "companyId": COMPANY_ID}, 400),
    ]
    for body, status in cases:
        response = await unbill.post("/auth", json=body)
        assert response.status_code == status, body
        assert isinstance(response.json()["message"], str)
    not_json = await unbill.post("/auth", content=b"nope")
    assert not_json.status_code == 400


async def test_bills_and_auth_list(unbill: httpx.AsyncClient) -> None:
    client_id = await new_client(unbill)
    pending = await new_auth(unbill, "user_mfa", client_id=client_id)
    good = await new_auth(unbill, "user_good", client_id=client_id)
    await settled(unbill, good["_id"])
    await settled(unbill, pending["_id"])

    listed = (await unbill.get(f"/auth/list/{client_id}")).json()
    assert [a["_id"] for a in listed["data"]] == [pending["_id"], good["_id"]]
    assert [a["status"]["type"] for a in listed["data"]] == ["mfa-required", "verified"]

    bills = (await unbill.get(f"/bill/list/{client_id}")).json()
    [entry] = bills["data"]
    assert set(entry) == {"bill", "payments"}
    assert entry["payments"] == []
    bill = entry["bill"]
    assert set(bill) == {
        "_id",
        "balance",
        "dueDate",
        "payDate",
        "status",
        "settings",
        "company",
    }
    assert bill["balance"] == "15.49"
    assert bill["status"] == {"type": "upcoming"}
    assert bill["company"]["_id"] == COMPANY_ID
    assert bill["company"]["name"] == "Netflix"
    # The same bill keeps its id from one read to the next.
    assert (await unbill.get(f"/bill/list/{client_id}")).json() == bills
    assert (await unbill.get("/bill/list/nobody")).status_code == 404
    assert (await unbill.get("/auth/list/nobody")).status_code == 404

    # Logging in to the same company again finds the same bill: one per company, not per auth.
    again = await new_auth(unbill, "user_good", client_id=client_id)
    await settled(unbill, again["_id"])
    assert (await unbill.get(f"/bill/list/{client_id}")).json() == bills


async def test_delete_auth(unbill: httpx.AsyncClient) -> None:
    client_id = await new_client(unbill)
    auth = await settled(unbill, (await new_auth(unbill, "user_good", client_id=client_id))["_id"])
    deleted = await unbill.delete(f"/auth/{auth['_id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"success": True}
    assert (await unbill.delete(f"/auth/{auth['_id']}")).status_code == 404
    assert await read_auth(unbill, auth["_id"]) is None
    # Deleting an auth deletes its items.
    assert (await unbill.get(f"/bill/list/{client_id}")).json() == {"data": []}


async def test_latency_prompt_approval_and_idempotency_keys_in_process() -> None:
    clock = FakeClock()
    sandbox = UnbillSandbox(latency_seconds=5, clock=clock)
    async with in_process_client(sandbox, HEADERS) as unbill:
        client_id = await new_client(unbill)
        body = {
            "userId": client_id,
            "companyId": COMPANY_ID,
            "form": {"username": "user_mfa", "password": "pass_good"},
        }
        created = await unbill.post("/auth", json=body, headers={"Idempotency-Key": "login-1"})
        auth_id = created.json()["_id"]
        CLIENT_OF[auth_id] = client_id
        path = f"/auth/{auth_id}"

        clock.now += 4.9
        assert (await read(unbill, auth_id))["status"] == {"type": "pending"}
        clock.now += 0.2
        challenged = await read(unbill, auth_id)
        assert challenged["status"] == {"type": "mfa-required"}

        answers = [
            {"answer": "correct", "identifier": item["identifier"]}
            for item in challenged["mfa"]["mfa"]
        ]
        answered = await unbill.post(
            f"{path}/answer-questions",
            json={"answers": answers},
            headers={"Idempotency-Key": "answer-1"},
        )
        assert answered.status_code == 200
        assert sandbox.duplicate_requests == 0

        # A retried answer (say, after a lost response) is refused, and counted as a duplicate.
        retried = await unbill.post(
            f"{path}/answer-questions",
            json={"answers": answers},
            headers={"Idempotency-Key": "answer-1"},
        )
        assert retried.status_code == 409

        # A prompt is shown on the first read after the sign-in, then approved after
        # PROMPT_APPROVAL_PERIODS latency periods, however late the next read comes.
        body["form"] = {"username": "mfa-required-prompt", "password": "pass_good"}
        prompt_id = (await unbill.post("/auth", json=body)).json()["_id"]
        CLIENT_OF[prompt_id] = client_id
        clock.now += 60
        assert (await read(unbill, prompt_id))["mfa"]["method"] == "prompt"
        clock.now += PROMPT_APPROVAL_PERIODS * 5 - 0.1
        assert (await read(unbill, prompt_id))["status"]["type"] == "mfa-required"
        clock.now += 0.2
        assert (await read(unbill, prompt_id))["status"] == {"type": "verified"}

    assert sandbox.ledger.keys_of(auth_id) == {"login-1": 1, "answer-1": 2}
    assert sandbox.ledger.first_object == {"login-1": auth_id, "answer-1": auth_id}
    assert sandbox.duplicate_requests == 1
