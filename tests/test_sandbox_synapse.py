"""The Synapse sandbox's raw HTTP answers, field by field against its ACH-US MFA page.

The adapter's contract tests only prove that the adapter and the sandbox agree; these prove that
the sandbox says what Synapse's documentation says: the 200 node list and the 202 `mfa` body with
the seed's exact fields and types, the `{"access_token", "mfa_answer"}` request, and Synapse's
headers (`X-SP-GATEWAY`, `X-SP-USER`, `X-SP-USER-IP`) with its error shape. The page's examples are
read from tests/fixtures/documents/synapse_ach_us_mfa.txt.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.synapse import SynapseSandbox
from tests.fixtures.documents import read_document
from tests.fixtures.sandbox import in_process_client

SYNAPSE_PAGE = read_document("synapse_ach_us_mfa.txt")
# The seed's 200 example elides further nodes as `{ ... }, ...`; without them it is JSON.
SEED_LINKED: dict[str, Any] = json.loads(
    re.sub(r",\s*\{\s*\.\.\.\s*\},\s*\.\.\.", "", SYNAPSE_PAGE["response 200"])
)
SEED_MFA: dict[str, Any] = SYNAPSE_PAGE.json("response 202")
SEED_REQUEST: str = SYNAPSE_PAGE["request example"]
SEED_ANSWER_BODY: dict[str, Any] = json.loads(SEED_REQUEST.split("\n\n", 1)[1])
SEED_NODE: dict[str, Any] = SEED_LINKED["nodes"][0]

GATEWAY = {"X-SP-GATEWAY": "sandbox-client-id|sandbox-client-secret", "X-SP-USER-IP": "127.0.0.1"}
FINGERPRINT = "e83cf6ddcf778e37bfe3d48fc78a6502062fc"
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


def user_headers(oauth_key: str = "") -> dict[str, str]:
    return {"X-SP-USER": f"{oauth_key}|{FINGERPRINT}"}


@pytest.fixture
async def synapse(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{sandbox_url}/synapse", headers=GATEWAY, timeout=10
    ) as client:
        yield client


async def new_user(synapse: httpx.AsyncClient) -> tuple[str, str]:
    """A user and its oauth key."""
    created = await synapse.post(
        "/v3.1/users",
        json={
            "logins": [{"email": "test@synapsefi.com"}],
            "phone_numbers": ["901.111.1111"],
            "legal_names": ["Test User"],
            "extra": {"supp_id": "122eddfgbeafrfvbbb", "cip_tag": 1, "is_business": False},
        },
        headers=user_headers(),
    )
    assert created.status_code == 200, created.text
    user = created.json()
    assert OBJECT_ID.match(user["_id"])
    assert user["refresh_token"]
    oauth = await synapse.post(
        f"/v3.1/oauth/{user['_id']}",
        json={"refresh_token": user["refresh_token"]},
        headers=user_headers(),
    )
    assert oauth.status_code == 200, oauth.text
    assert oauth.json()["user_id"] == user["_id"]
    return user["_id"], oauth.json()["oauth_key"]


async def bank_login(
    synapse: httpx.AsyncClient, username: str, password: str = "pass_good"
) -> tuple[str, str, httpx.Response]:
    user_id, oauth_key = await new_user(synapse)
    response = await synapse.post(
        f"/v3.1/users/{user_id}/nodes",
        json={
            "type": "ACH-US",
            "info": {"bank_id": username, "bank_pw": password, "bank_name": "fake"},
        },
        headers=user_headers(oauth_key),
    )
    return user_id, oauth_key, response


async def send_answer(
    synapse: httpx.AsyncClient, user_id: str, oauth_key: str, token: str, value: str
) -> httpx.Response:
    return await synapse.post(
        f"/v3.1/users/{user_id}/nodes",
        json={"access_token": token, "mfa_answer": value},
        headers=user_headers(oauth_key),
    )


def same_shape(body: Any, example: Any, where: str = "") -> None:
    """The same fields, recursively, each of the example's type."""
    assert type(body) is type(example), where
    if isinstance(example, dict):
        assert set(body) == set(example), where
        for name, value in example.items():
            same_shape(body[name], value, f"{where}.{name}")
    elif isinstance(example, list) and example:
        for item in body:
            same_shape(item, example[0], f"{where}[]")


def assert_like_the_seed_mfa(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    same_shape(body, SEED_MFA)
    assert {k: body[k] for k in ("error_code", "http_code", "success")} == {
        "error_code": "10",
        "http_code": "202",
        "success": True,
    }
    assert body["mfa"]["access_token"].startswith("fake_")
    return body


def test_the_seed_parses() -> None:
    assert SYNAPSE_PAGE["url"] == "/v3.1/users/:user_id/nodes"
    assert SYNAPSE_PAGE["method"] == "post"
    assert set(SEED_LINKED) == {
        "error_code",
        "http_code",
        "limit",
        "node_count",
        "nodes",
        "page_count",
        "success",
    }
    assert SEED_MFA["mfa"]["type"] == "question"
    assert set(SEED_ANSWER_BODY) == {"access_token", "mfa_answer"}
    assert "X-SP-USER: oauth_" in SEED_REQUEST
    assert "X-SP-USER-IP:" in SEED_REQUEST


async def test_user_good_answers_like_the_seeds_200(synapse: httpx.AsyncClient) -> None:
    user_id, oauth_key, response = await bank_login(synapse, "user_good")
    assert response.status_code == 200, response.text
    body = response.json()
    same_shape(body, SEED_LINKED)
    assert {k: body[k] for k in ("error_code", "http_code", "success", "page_count")} == {
        "error_code": "0",
        "http_code": "200",
        "success": True,
        "page_count": 1,
    }
    assert body["node_count"] == body["limit"] == len(body["nodes"]) == 2
    node = body["nodes"][0]
    # The seed's node, except its ids, links and time.
    for name in ("allowed", "type", "is_active", "extra"):
        assert node[name] == SEED_NODE[name]
    assert node["info"] == SEED_NODE["info"]
    assert node["user_id"] == user_id
    assert OBJECT_ID.match(node["_id"])
    assert node["_links"]["self"]["href"].endswith(f"/v3.1/users/{user_id}/nodes/{node['_id']}")
    assert node["timeline"][0]["note"] == "Node created."

    listed = await synapse.get(f"/v3.1/users/{user_id}/nodes", headers=user_headers(oauth_key))
    assert listed.json() == body
    one = await synapse.get(
        f"/v3.1/users/{user_id}/nodes/{node['_id']}", headers=user_headers(oauth_key)
    )
    assert one.json() == node


async def test_user_mfa_asks_three_questions_like_the_seeds_202(
    synapse: httpx.AsyncClient,
) -> None:
    user_id, oauth_key, response = await bank_login(synapse, "user_mfa")
    messages = []
    for _ in range(3):
        body = assert_like_the_seed_mfa(response)
        messages.append(body["mfa"]["message"])
        response = await send_answer(
            synapse, user_id, oauth_key, body["mfa"]["access_token"], "correct"
        )
    assert response.status_code == 200
    same_shape(response.json(), SEED_LINKED)
    assert len(set(messages)) == 3


async def test_the_seeds_own_test_login_and_answer(synapse: httpx.AsyncClient) -> None:
    user_id, oauth_key, response = await bank_login(synapse, "synapse_good", "test1234")
    body = assert_like_the_seed_mfa(response)
    assert body["mfa"]["message"] == SEED_MFA["mfa"]["message"]
    answered = await send_answer(
        synapse,
        user_id,
        oauth_key,
        body["mfa"]["access_token"],
        SEED_ANSWER_BODY["mfa_answer"],
    )
    assert answered.status_code == 200
    _, _, direct = await bank_login(synapse, "synapse_nomfa", "test1234")
    assert direct.status_code == 200


async def test_otp_phone_then_code(synapse: httpx.AsyncClient) -> None:
    user_id, oauth_key, response = await bank_login(synapse, "user_otp")
    body = assert_like_the_seed_mfa(response)
    assert "(***) ***-4321" in body["mfa"]["message"]
    token = body["mfa"]["access_token"]
    coded = assert_like_the_seed_mfa(await send_answer(synapse, user_id, oauth_key, token, "8765"))
    assert coded["mfa"]["message"] == "Enter the code we texted to (***) ***-8765"
    assert coded["mfa"]["access_token"] == token
    done = await send_answer(synapse, user_id, oauth_key, token, "correct")
    assert done.status_code == 200


async def test_wrong_answers_then_failure(synapse: httpx.AsyncClient) -> None:
    user_id, oauth_key, response = await bank_login(synapse, "user_mfa")
    body = assert_like_the_seed_mfa(response)
    token, message = body["mfa"]["access_token"], body["mfa"]["message"]
    for attempt in range(2):
        again = assert_like_the_seed_mfa(
            await send_answer(synapse, user_id, oauth_key, token, f"wrong-{attempt}")
        )
        assert again["mfa"]["message"] == message
    failed = await send_answer(synapse, user_id, oauth_key, token, "wrong-3")
    assert failed.status_code == 409
    assert failed.json() | {"error": None} == {
        "error": None,
        "error_code": "400",
        "http_code": "409",
        "success": False,
    }
    gone = await send_answer(synapse, user_id, oauth_key, token, "correct")
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("username", "status", "code"),
    [("user_bad", 400, "110"), ("user_hold", 400, "410")],
)
async def test_refused_logins_in_synapses_error_shape(
    synapse: httpx.AsyncClient, username: str, status: int, code: str
) -> None:
    _, _, response = await bank_login(synapse, username)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "error_code", "http_code", "success"}
    assert set(body["error"]) == {"en"}
    assert body["error"]["en"]
    assert (body["error_code"], body["http_code"], body["success"]) == (code, str(status), False)


async def test_user_unsupported_gets_a_captcha(synapse: httpx.AsyncClient) -> None:
    _, _, response = await bank_login(synapse, "user_unsupported")
    assert response.status_code == 202
    body = response.json()
    same_shape(body, SEED_MFA)
    assert body["mfa"]["type"] == "captcha"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "100"),
        ({"X-SP-GATEWAY": "sandbox-client-id|wrong"}, 401, "100"),
        ({"X-SP-GATEWAY": "sandbox-client-id"}, 401, "100"),
        (GATEWAY | {"X-SP-USER-IP": ""}, 400, "200"),
    ],
    ids=["no-gateway", "wrong-secret", "no-secret", "no-user-ip"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v3.1/users"),
        ("POST", "/v3.1/oauth/x"),
        ("POST", "/v3.1/users/x/nodes"),
        ("GET", "/v3.1/users/x/nodes"),
        ("DELETE", "/v3.1/users/x/nodes/y"),
    ],
)
async def test_every_request_needs_the_gateway_and_ip(
    sandbox_url: str, headers: dict[str, str], status: int, code: str, method: str, path: str
) -> None:
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/synapse") as client:
        response = await client.request(
            method, path, headers=headers | user_headers(), json={"refresh_token": "x"}
        )
    assert response.status_code == status
    body = response.json()
    assert (body["error_code"], body["http_code"], body["success"]) == (code, str(status), False)
    assert body["error"]["en"]


async def test_user_header_and_oauth_key(synapse: httpx.AsyncClient) -> None:
    user_id, oauth_key = await new_user(synapse)
    no_fingerprint = await synapse.get(
        f"/v3.1/users/{user_id}/nodes", headers={"X-SP-USER": oauth_key}
    )
    assert (no_fingerprint.status_code, no_fingerprint.json()["error_code"]) == (400, "120")
    wrong_key = await synapse.get(f"/v3.1/users/{user_id}/nodes", headers=user_headers("oauth_x"))
    assert (wrong_key.status_code, wrong_key.json()["error_code"]) == (401, "110")
    bad_refresh = await synapse.post(
        f"/v3.1/oauth/{user_id}", json={"refresh_token": "nope"}, headers=user_headers()
    )
    assert bad_refresh.status_code == 401
    unknown = await synapse.get(
        "/v3.1/users/ffffffffffffffffffffffff/nodes", headers=user_headers()
    )
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"type": "CARD-US", "info": {"bank_id": "user_good", "bank_pw": "p", "bank_name": "f"}},
        {"type": "ACH-US", "info": {"bank_id": "user_good", "bank_pw": "pass_good"}},
        {"access_token": "fake_x"},
        [1],
    ],
    ids=["not-ach", "no-bank-name", "no-answer", "not-an-object"],
)
async def test_payload_errors(synapse: httpx.AsyncClient, body: Any) -> None:
    user_id, oauth_key = await new_user(synapse)
    response = await synapse.post(
        f"/v3.1/users/{user_id}/nodes", json=body, headers=user_headers(oauth_key)
    )
    assert (response.status_code, response.json()["error_code"]) == (400, "200")


async def test_delete_node(synapse: httpx.AsyncClient) -> None:
    user_id, oauth_key, response = await bank_login(synapse, "user_good")
    node_id = response.json()["nodes"][0]["_id"]
    path = f"/v3.1/users/{user_id}/nodes/{node_id}"
    deleted = await synapse.delete(path, headers=user_headers(oauth_key))
    assert deleted.status_code == 200
    assert deleted.json()["is_active"] is False
    assert (await synapse.get(path, headers=user_headers(oauth_key))).status_code == 404
    assert (await synapse.delete(path, headers=user_headers(oauth_key))).status_code == 404
    listed = await synapse.get(f"/v3.1/users/{user_id}/nodes", headers=user_headers(oauth_key))
    assert listed.json()["node_count"] == 1


class Sleeps:
    """Records the sandbox's waits instead of sleeping them."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        await asyncio.sleep(0)


async def test_latency_slow_user_and_idempotency_keys_in_process() -> None:
    sleeps = Sleeps()
    sandbox = SynapseSandbox(latency_seconds=5, sleep=sleeps)
    async with in_process_client(sandbox, GATEWAY) as synapse:
        _, _, slow = await bank_login(synapse, "user_slow")
        assert slow.status_code == 200
        assert sleeps.seconds == [5 + 3.0]

        user_id, oauth_key = await new_user(synapse)
        path = f"/v3.1/users/{user_id}/nodes"
        login_body = {
            "type": "ACH-US",
            "info": {"bank_id": "user_mfa", "bank_pw": "pass_good", "bank_name": "fake"},
        }
        headers = user_headers(oauth_key) | {"Idempotency-Key": "login-1"}
        first = await synapse.post(path, json=login_body, headers=headers)
        retried = await synapse.post(path, json=login_body, headers=headers)
        assert first.json() == retried.json()
        token = first.json()["mfa"]["access_token"]

        answer = {"access_token": token, "mfa_answer": "correct"}
        headers = user_headers(oauth_key) | {"X-SP-IDEMPOTENCY-KEY": "answer-1"}
        answered = await synapse.post(path, json=answer, headers=headers)
        replayed = await synapse.post(path, json=answer, headers=headers)
        # The retry gets the first reply (the second question), not an answer to it.
        assert answered.json() == replayed.json()
        assert answered.json()["mfa"]["message"] != first.json()["mfa"]["message"]

    assert sandbox.ledger.first_object == {"login-1": user_id, "answer-1": user_id}
    assert sandbox.duplicate_requests == 2
    assert sleeps.seconds[1:] == [5, 5]
