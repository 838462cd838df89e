"""The Synapse sandbox's raw HTTP answers, field by field against Synapse's pages.

The adapter's contract tests only prove that the adapter and the sandbox agree; these prove that
the sandbox says what Synapse's documentation says: the 200 node list and the 202 `mfa` body with
the seed's exact fields and types, the `{"access_token", "mfa_answer"}` request, Synapse's headers
(`X-SP-GATEWAY`, `X-SP-USER`, `X-SP-USER-IP`) with its error shape, the oauth key's expiry and
the refresh token's ten uses, the fingerprint PIN flow's documented 202, and the documented
sandbox logins, password endings and forced refreshes. The pages are read from
tests/fixtures/documents/synapse_*.txt.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.synapse import (
    OAUTH_EXPIRES_IN,
    REFRESH_TOKEN_USES,
    SANDBOX_VALIDATION_PIN,
    SynapseSandbox,
)
from tests.fixtures.documents import read_document
from tests.fixtures.sandbox import FakeClock, in_process_client

SYNAPSE_PAGE = read_document("synapse_ach_us_mfa.txt")
# The seed's 200 example elides further nodes as `{ ... }, ...`; without them it is JSON.
SEED_LINKED: dict[str, Any] = json.loads(
    re.sub(r",\s*\{\s*\.\.\.\s*\},\s*\.\.\.", "", SYNAPSE_PAGE["response 200"])
)
SEED_MFA: dict[str, Any] = SYNAPSE_PAGE.json("response 202")
SEED_REQUEST: str = SYNAPSE_PAGE["request example"]
SEED_ANSWER_BODY: dict[str, Any] = json.loads(SEED_REQUEST.split("\n\n", 1)[1])
SEED_NODE: dict[str, Any] = SEED_LINKED["nodes"][0]
FINGERPRINT_PAGE = read_document("synapse_register_new_fingerprint.txt")
AGGREGATION_PAGE = read_document("synapse_account_aggregation_errors.txt")

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
    # "Account Aggregation Errors": bad credentials 400/200; a locked account 402/500.
    [("user_bad", 400, "200"), ("user_hold", 402, "500")],
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
        (GATEWAY | {"X-SP-USER-IP": "not-an-ip"}, 400, "200"),
    ],
    ids=["no-gateway", "wrong-secret", "no-secret", "no-user-ip", "not-an-ip"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v3.1/users"),
        ("GET", "/v3.1/users/x"),
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
    # Synapse's clients read the user again on this refusal (error_code 400, "incorrect values").
    assert (bad_refresh.status_code, bad_refresh.json()["error_code"]) == (409, "400")
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


def test_the_sandboxs_key_lifetime_and_token_uses_are_synapses() -> None:
    page = read_document("synapse_oauth_resources.txt")["oauth key lifetime"]
    assert "expires in 2 hours" in page
    assert f"expire after {REFRESH_TOKEN_USES} uses" in page
    assert OAUTH_EXPIRES_IN == 2 * 3600


def table_rows(section: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")] for line in section.splitlines()[1:]]


async def oauth(
    synapse: httpx.AsyncClient, user_id: str, body: dict[str, Any], fingerprint: str = FINGERPRINT
) -> httpx.Response:
    return await synapse.post(
        f"/v3.1/oauth/{user_id}", json=body, headers={"X-SP-USER": f"|{fingerprint}"}
    )


async def test_an_oauth_key_says_when_it_expires_and_is_refused_after() -> None:
    clock = FakeClock()
    sandbox = SynapseSandbox(latency_seconds=0, clock=clock, oauth_lifetime_seconds=7200)
    async with in_process_client(sandbox, GATEWAY) as client:
        user_id, oauth_key = await new_user(client)
        user = (await client.get(f"/v3.1/users/{user_id}", headers=user_headers())).json()
        answer = (await oauth(client, user_id, {"refresh_token": user["refresh_token"]})).json()
        # "OAuth Key currently expires in 2 hours".
        assert (answer["expires_in"], answer["expires_at"]) == ("7200", str(int(clock.now) + 7200))
        path = f"/v3.1/users/{user_id}/nodes"
        assert (await client.get(path, headers=user_headers(oauth_key))).status_code == 200
        clock.now += 7200
        lapsed = await client.get(path, headers=user_headers(oauth_key))
        assert (lapsed.status_code, lapsed.json()["error_code"]) == (401, "110")
        fresh = answer["oauth_key"]
        assert (await client.get(path, headers=user_headers(fresh))).status_code == 401
        renewed = await oauth(client, user_id, {"refresh_token": answer["refresh_token"]})
        assert (
            await client.get(path, headers=user_headers(renewed.json()["oauth_key"]))
        ).is_success


async def test_a_refresh_token_lasts_ten_uses_then_the_user_shows_the_next() -> None:
    sandbox = SynapseSandbox(latency_seconds=0)
    async with in_process_client(sandbox, GATEWAY) as client:
        user_id, _ = await new_user(client)  # its first use
        first = (await client.get(f"/v3.1/users/{user_id}", headers=user_headers())).json()
        token = first["refresh_token"]
        answers = [
            (await oauth(client, user_id, {"refresh_token": token})).json()
            for _ in range(REFRESH_TOKEN_USES - 1)
        ]
        assert [a["refresh_expires_in"] for a in answers][-2:] == [1, REFRESH_TOKEN_USES]
        successor = answers[-1]["refresh_token"]
        assert successor != token
        stale = await oauth(client, user_id, {"refresh_token": token})
        assert (stale.status_code, stale.json()["error_code"]) == (409, "400")
        shown = (await client.get(f"/v3.1/users/{user_id}", headers=user_headers())).json()
        assert shown["refresh_token"] == successor
        assert (await oauth(client, user_id, {"refresh_token": successor})).is_success


async def test_a_new_device_walks_the_documented_fingerprint_flow(
    synapse: httpx.AsyncClient,
) -> None:
    user_id, _ = await new_user(synapse)
    user = (await synapse.get(f"/v3.1/users/{user_id}", headers=user_headers())).json()
    token = user["refresh_token"]
    asked = await oauth(synapse, user_id, {"refresh_token": token}, "new-device")
    assert asked.status_code == 202
    documented = FINGERPRINT_PAGE.json("response 202")
    same_shape(asked.json(), documented)
    assert asked.json() | {"phone_numbers": None} == documented | {"phone_numbers": None}
    assert asked.json()["phone_numbers"] == ["901.111.1111"]

    too_soon = {"refresh_token": token, "validation_pin": SANDBOX_VALIDATION_PIN}
    assert (await oauth(synapse, user_id, too_soon, "new-device")).status_code == 202
    sent = await oauth(
        synapse, user_id, {"refresh_token": token, "phone_number": "901.111.1111"}, "new-device"
    )
    assert sent.json()["success"] is True
    wrong = await oauth(
        synapse, user_id, {"refresh_token": token, "validation_pin": "000000"}, "new-device"
    )
    assert (wrong.status_code, wrong.json()["error_code"]) == (409, "400")
    registered = await oauth(synapse, user_id, too_soon, "new-device")
    assert registered.status_code == 200
    assert registered.json()["oauth_key"].startswith("oauth_")
    again = await oauth(synapse, user_id, {"refresh_token": token}, "new-device")
    assert again.status_code == 200


@pytest.mark.parametrize(
    "row",
    table_rows(AGGREGATION_PAGE["sandbox usernames"]),
    ids=lambda row: row[0],
)
async def test_the_documented_failing_usernames(synapse: httpx.AsyncClient, row: list[str]) -> None:
    username, _, http, code = row
    _, _, response = await bank_login(synapse, username, "test1234")
    assert (response.status_code, response.json()["error_code"]) == (int(http), code)
    assert response.json()["http_code"] == http


@pytest.mark.parametrize(
    "row",
    table_rows(AGGREGATION_PAGE["sandbox password endings"]),
    ids=lambda row: row[0],
)
async def test_the_documented_password_endings_set_how_a_refresh_fails(
    synapse: httpx.AsyncClient, row: list[str]
) -> None:
    ending, _, http, code = row
    user_id, oauth_key, linked = await bank_login(synapse, "synapse_nomfa", f"test1234{ending}")
    assert linked.status_code == 200
    node_id = linked.json()["nodes"][0]["_id"]
    path = f"/v3.1/users/{user_id}/nodes/{node_id}"
    plain = await synapse.get(path, headers=user_headers(oauth_key))
    assert plain.status_code == 200
    refreshed = await synapse.get(
        path, params={"force_refresh": "yes"}, headers=user_headers(oauth_key)
    )
    assert (refreshed.status_code, refreshed.json()["error_code"]) == (int(http), code)


async def test_a_forced_refresh_updates_the_balance_as_documented(
    synapse: httpx.AsyncClient,
) -> None:
    user_id, oauth_key, linked = await bank_login(
        synapse, "synapse_nomfa", "test1234_sync_balance_higher"
    )
    node = linked.json()["nodes"][0]
    refreshed = await synapse.get(
        f"/v3.1/users/{user_id}/nodes/{node['_id']}",
        params={"force_refresh": "yes"},
        headers=user_headers(oauth_key),
    )
    same_shape(refreshed.json(), SEED_NODE)
    assert 800 <= float(refreshed.json()["info"]["balance"]["amount"]) <= 1500


async def test_synapse_good_asks_again_on_again(synapse: httpx.AsyncClient) -> None:
    user_id, oauth_key, response = await bank_login(synapse, "synapse_good", "test1234")
    token = assert_like_the_seed_mfa(response)["mfa"]["access_token"]
    again = assert_like_the_seed_mfa(await send_answer(synapse, user_id, oauth_key, token, "again"))
    assert again["mfa"]["message"] == SEED_MFA["mfa"]["message"]
    done = await send_answer(synapse, user_id, oauth_key, token, "test_answer")
    assert done.status_code == 200


async def test_a_second_bank_login_updates_the_same_nodes(synapse: httpx.AsyncClient) -> None:
    user_id, oauth_key, first = await bank_login(synapse, "user_good", "pass_good_needs_relink")
    again = await synapse.post(
        f"/v3.1/users/{user_id}/nodes",
        json={
            "type": "ACH-US",
            "info": {"bank_id": "user_good", "bank_pw": "pass_good", "bank_name": "fake"},
        },
        headers=user_headers(oauth_key),
    )
    assert [n["_id"] for n in again.json()["nodes"]] == [n["_id"] for n in first.json()["nodes"]]
    node_id = again.json()["nodes"][0]["_id"]
    refreshed = await synapse.get(
        f"/v3.1/users/{user_id}/nodes/{node_id}",
        params={"force_refresh": "yes"},
        headers=user_headers(oauth_key),
    )
    assert refreshed.status_code == 200


async def test_the_sandbox_keeps_each_users_ip() -> None:
    sandbox = SynapseSandbox(latency_seconds=0)
    async with in_process_client(sandbox, GATEWAY | {"X-SP-USER-IP": "198.51.100.4"}) as client:
        user_id, oauth_key = await new_user(client)
        await client.get(f"/v3.1/users/{user_id}/nodes", headers=user_headers(oauth_key))
    assert set(sandbox.users[user_id].ips) == {"198.51.100.4"}
