"""The frame the five provider sandboxes share: registry, ledger, refusals, body and auth readers.

Each provider's own sandbox tests prove its routes, checks and error shapes over HTTP; these pin
down the shared pieces they rest on.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from sandbox.app import MFA_WINDOW_PROVIDERS, SANDBOXES, provider_sandboxes
from sandbox.skeleton import (
    IdempotencyLedger,
    Refused,
    basic_credentials,
    bearer_token,
    json_object,
    object_id,
)


def request_with(headers: dict[str, str], body: bytes = b"") -> Request:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive)


def test_every_provider_is_served_under_its_own_name() -> None:
    sandboxes = provider_sandboxes(0.1)
    assert list(sandboxes) == list(SANDBOXES) == ["mx", "synapse", "arcadia", "teal", "unbill"]
    assert {name: s.mount().path for name, s in sandboxes.items()} == {
        name: f"/{name}" for name in SANDBOXES
    }
    assert set(SANDBOXES) >= MFA_WINDOW_PROVIDERS


def test_the_ledger_counts_a_key_seen_again_and_the_requests_per_object() -> None:
    ledger = IdempotencyLedger()
    ledger.record("login-1", "obj-1")
    ledger.record("", "obj-1")  # no key, nothing to record
    ledger.record("answer-1", "obj-1")
    ledger.record("answer-1", "obj-1")
    assert ledger.first_object == {"login-1": "obj-1", "answer-1": "obj-1"}
    assert ledger.keys_of("obj-1") == {"login-1": 1, "answer-1": 2}
    assert ledger.keys_of("obj-2") == {}
    assert ledger.duplicate_requests == 1


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b""])
async def test_a_body_that_is_not_a_json_object_is_refused_with_the_providers_code(
    body: bytes,
) -> None:
    with pytest.raises(Refused) as refused:
        await json_object(request_with({}, body), "INVALID_REQUEST")
    assert (refused.value.status, refused.value.code) == (400, "INVALID_REQUEST")


async def test_a_json_object_body_is_read() -> None:
    assert await json_object(request_with({}, b'{"a": 1}')) == {"a": 1}


def test_basic_and_bearer_credentials_are_read_only_when_well_formed() -> None:
    basic = base64.b64encode(b"id:key").decode()
    assert basic_credentials(request_with({"Authorization": f"Basic {basic}"})) == ("id", "key")
    assert basic_credentials(request_with({"Authorization": "Basic !!!"})) is None
    assert basic_credentials(request_with({"Authorization": "Bearer x"})) is None
    assert bearer_token(request_with({"Authorization": "Bearer tok"})) == "tok"
    assert bearer_token(request_with({"Authorization": "Bearer  "})) is None
    assert bearer_token(request_with({})) is None


def test_object_ids_look_like_mongo_ids() -> None:
    first, second = object_id(), object_id()
    assert len(first) == 24
    assert int(first, 16) >= 0
    assert first != second


async def test_a_refusal_reaches_the_client_in_the_providers_own_shape() -> None:
    sandboxes = provider_sandboxes(0.1)
    app = Starlette(routes=[s.mount() for s in sandboxes.values()])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as client:
        teal = await client.get("/teal/accounts/nope", headers={"X-API-KEY": "k"})
        unbill = await client.delete("/unbill/auth/nope", headers={"Authorization": "Bearer k"})
    assert (teal.status_code, teal.json()["error"]["code"]) == (404, "NOT_FOUND")
    assert (unbill.status_code, set(unbill.json())) == (404, {"message"})
