"""The HTTP API over real HTTP: a uvicorn server on a socket, the real dev server, a real worker and
the sandbox, driven the way an app's backend and an end user's page would drive them.

The app runs in this test's event loop (so it can share the `run_worker` fixture's task queue),
but every request goes through a TCP socket, uvicorn and the whole middleware stack.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.attempts import AttemptLimits
from api.codec_server import CodecAccess
from api.link_tokens import LinkTokens, SessionMode
from api.server import server_config
from api.settings import ApiSettings
from linkflow.client import LinkClient
from linkflow.codec import EncryptionCodec
from linkflow.devstack import free_port
from linkflow.lookup import UserRefLookup
from linkflow.models import LinkOptions, Provider
from linkflow.temporal import LINK_USER_REF
from tests.conftest import TEST_KEY_RING
from tests.fixtures.sse import server_sent_events

API_KEY = "api-test-key-0123456789abcdef"
TOKEN_SECRET = "link-token-test-secret-0123456789abcdef"
LOOKUP_KEY = "lookup-test-key-0123456789abcdefghij"
CODEC_TOKEN = "codec-test-token-0123456789abcdef"
MAX_ATTEMPTS = 6
PASSWORD = "pass_good"
BACKEND = {"Authorization": f"Bearer {API_KEY}"}


def api_settings(public_url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "api_keys": (API_KEY,),
        "link_tokens": LinkTokens((TOKEN_SECRET,)),
        "lookup": UserRefLookup((LOOKUP_KEY,)),
        "public_url": public_url,
        "attempt_limits": AttemptLimits(max_attempts=MAX_ATTEMPTS, window_seconds=60),
    }
    return ApiSettings(**(values | overrides))


@dataclass
class Api:
    http: httpx.AsyncClient
    links: LinkClient
    settings: ApiSettings
    url: str

    async def session(self, **body: Any) -> dict[str, Any]:
        response = await self.http.post("/v1/link-sessions", json=body, headers=BACKEND)
        assert response.status_code == 201, response.text
        session: dict[str, Any] = response.json()
        return session

    async def start(self, username: str, **body: Any) -> dict[str, Any]:
        body = {
            "provider": "mx",
            "user_ref": f"user-{uuid.uuid4()}",
            "credentials": {"username": username, "password": PASSWORD},
        } | body
        response = await self.http.post("/v1/links", json=body, headers=BACKEND)
        assert response.status_code == 201, response.text
        snapshot: dict[str, Any] = response.json()
        return snapshot


def page(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} | headers


def unique(username: str) -> str:
    """A login of its own for each link (the sandbox ignores a +tag)."""
    return f"{username}+{uuid.uuid4().hex[:8]}"


def answer(challenge_id: str, value: str) -> dict[str, Any]:
    return {"answers": [{"challenge_id": challenge_id, "value": value}]}


async def serve(app: Any) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "uvicorn stopped while starting"
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, run_worker) -> AsyncIterator[Api]:
    async with run_worker(dev_env.client) as links:
        port_placeholder = "http://link.example.test"
        settings = api_settings(port_placeholder)
        app = create_app(
            TEST_KEY_RING, CodecAccess(tokens=(CODEC_TOKEN,)), api_settings=settings, links=links
        )
        async for url in serve(app):
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                yield Api(http=http, links=links, settings=settings, url=url)


def error_of(response: httpx.Response) -> dict[str, str]:
    """The error in the one shape, checked: every refusal carries all four fields."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, str] = body["error"]
    assert set(error) == {"code", "message", "detail", "action"}, error
    assert all(isinstance(value, str) and value for value in error.values()), error
    return error


async def plaintext_history(links: LinkClient, link_id: str) -> str:
    """Every payload of the link's history, decrypted, with the rest of each event."""
    codec = EncryptionCodec(TEST_KEY_RING)
    texts: list[str] = []
    async for event in links.temporal.get_workflow_handle(link_id).fetch_history_events():
        as_dict = MessageToDict(event)
        texts.append(json.dumps(as_dict))
        for payload in _payloads(as_dict):
            opened = codec.decrypt(
                Payload(
                    data=base64.b64decode(payload["data"]),
                    metadata={
                        key: base64.b64decode(value) for key, value in payload["metadata"].items()
                    },
                )
            )
            texts.append(opened.data.decode(errors="replace"))
    return "\n".join(texts)


def _payloads(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "metadata" in node and "data" in node:
            yield node
        for value in node.values():
            yield from _payloads(value)
    elif isinstance(node, list):
        for item in node:
            yield from _payloads(item)


# ------------------------------------------------------------------ the flows


async def test_a_page_starts_its_session_with_the_token_and_connects_through_mfa(api: Api) -> None:
    user_ref = f"person-{uuid.uuid4()}@example.com"
    session = await api.session(provider="mx", user_ref=user_ref)
    token = session["link_token"]
    assert session["mode"] == "create"
    assert session["connect_url"] == f"http://link.example.test/connect#token={token}"
    assert token not in session["link_id"]
    assert sorted(session["actions"]) == ["mfa", "read", "start"]

    started = await api.http.post(
        "/v1/links",
        json={"credentials": {"username": unique("user_mfa"), "password": PASSWORD}},
        headers=page(token),
    )
    assert started.status_code == 201, started.text
    assert started.headers["location"] == f"/v1/links/{session['link_id']}"
    first = started.json()
    assert first["link_id"] == session["link_id"]
    assert first["status"] == "MFA_REQUIRED"
    [challenge] = first["pending_challenges"]
    assert challenge["prompt"] == "What city were you born in?"

    answered = await api.http.post(
        f"/v1/links/{first['link_id']}/mfa",
        json=answer(challenge["id"], "correct"),
        headers=page(token),
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "CONNECTED"
    read = await api.http.get(f"/v1/links/{first['link_id']}", headers=page(token))
    assert read.json()["status"] == "CONNECTED"

    # The link carries the session's user, as a keyed hash only; the token is nowhere in it.
    description = await api.links.temporal.get_workflow_handle(first["link_id"]).describe()
    published = description.typed_search_attributes.get(LINK_USER_REF)
    assert published == api.settings.lookup.key_for(user_ref)
    history = await plaintext_history(api.links, first["link_id"])
    assert user_ref in history, "the start carries the app's user_ref, sealed"
    assert token not in history
    assert token[4:40] not in history


async def test_a_page_tries_again_after_a_mistyped_password(api: Api) -> None:
    session = await api.session(provider="mx", user_ref=f"typo-{uuid.uuid4()}")
    token, link_id = session["link_token"], session["link_id"]
    username = unique("user_mfa")
    link = api.links.temporal.get_workflow_handle(link_id)

    async def page_start(password: str, key: str) -> httpx.Response:
        return await api.http.post(
            "/v1/links",
            json={"credentials": {"username": username, "password": password}},
            headers=page(token, **{"Idempotency-Key": key}),
        )

    async def current_run() -> str | None:
        return (await link.describe()).run_id

    typo = await page_start("pass_goood", "first")
    assert typo.status_code == 201, typo.text
    assert (typo.json()["status"], typo.json()["reason"]) == ("FAILED", "INVALID_CREDENTIALS")
    typo_run = await current_run()
    # The same request again (a retry) is answered as before: no second login with the typo.
    assert (await page_start("pass_goood", "first")).json() == typo.json()
    assert await current_run() == typo_run

    fixed = await page_start(PASSWORD, "second")
    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["link_id"] == link_id
    assert fixed.json()["status"] == "MFA_REQUIRED"
    fixed_run = await current_run()
    assert fixed_run != typo_run, "the same link, tried again in a run of its own"
    assert (await page_start(PASSWORD, "second")).json() == fixed.json()
    [challenge] = fixed.json()["pending_challenges"]
    answered = await api.http.post(
        f"/v1/links/{link_id}/mfa", json=answer(challenge["id"], "correct"), headers=page(token)
    )
    assert answered.json()["status"] == "CONNECTED"

    # A link that did not end on a refused login is not started again.
    again = await page_start(PASSWORD, "third")
    assert again.json()["status"] == "CONNECTED"
    assert await current_run() == fixed_run


async def test_the_backend_starts_a_link_server_side_and_reads_it(api: Api) -> None:
    linked = await api.start(unique("user_good"))
    assert linked["status"] == "CONNECTED"
    assert len(linked["accounts"]) == 2
    read = await api.http.get(f"/v1/links/{linked['link_id']}", headers=BACKEND)
    assert read.status_code == 200
    assert read.json()["accounts"] == linked["accounts"]

    failed = await api.start(unique("user_bad"))
    assert (failed["status"], failed["reason"]) == ("FAILED", "INVALID_CREDENTIALS")


async def test_an_idempotency_key_replays_the_first_start_and_starts_one_link(api: Api) -> None:
    key = str(uuid.uuid4())
    body = {
        "provider": "mx",
        "user_ref": "replayed-user",
        "credentials": {"username": unique("user_mfa"), "password": PASSWORD},
    }
    headers = BACKEND | {"Idempotency-Key": key}
    first = await api.http.post("/v1/links", json=body, headers=headers)
    again = await api.http.post("/v1/links", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    link_id = first.json()["link_id"]
    assert key not in link_id

    # The key is for this user's link: another user with the same key is refused, not handed it.
    other = await api.http.post(
        "/v1/links", json=body | {"user_ref": "someone-else"}, headers=headers
    )
    assert other.status_code == 409
    assert error_of(other)["code"] == "link_id_in_use"
    listed = await api.links.list_links(user_ref_keys=api.settings.lookup.keys_for("someone-else"))
    assert listed == []


async def test_an_idempotency_key_replays_an_answer_which_acts_once(api: Api) -> None:
    started = await api.start(unique("user_otp"))
    link_id = started["link_id"]
    [where] = started["pending_challenges"]
    first_key = BACKEND | {"Idempotency-Key": f"answer-{uuid.uuid4()}"}
    body = answer(where["id"], where["options"][0]["value"])

    first = await api.http.post(f"/v1/links/{link_id}/mfa", json=body, headers=first_key)
    assert first.status_code == 200, first.text
    [code] = first.json()["pending_challenges"]
    again = await api.http.post(f"/v1/links/{link_id}/mfa", json=body, headers=first_key)
    assert again.json() == first.json()

    second_key = BACKEND | {"Idempotency-Key": f"answer-{uuid.uuid4()}"}
    connected = await api.http.post(
        f"/v1/links/{link_id}/mfa", json=answer(code["id"], "correct"), headers=second_key
    )
    assert connected.json()["status"] == "CONNECTED"
    # Long after, the first key still gets the first answer back, and nothing is sent again.
    late = await api.http.post(f"/v1/links/{link_id}/mfa", json=body, headers=first_key)
    assert late.status_code == 200
    assert late.json() == first.json()
    assert late.json()["status"] == "MFA_REQUIRED"
    now = (await api.http.get(f"/v1/links/{link_id}", headers=BACKEND)).json()
    assert now["status"] == "CONNECTED"
    assert now["attempts"]["answers_submitted"] == 2, "each answer acted once"


async def test_the_event_stream_sends_the_snapshot_each_time_it_changes(api: Api) -> None:
    session = await api.session(provider="mx", user_ref="watched-user")
    token = session["link_token"]
    started = await api.http.post(
        "/v1/links",
        json={"credentials": {"username": unique("user_mfa"), "password": PASSWORD}},
        headers=page(token),
    )
    link_id = started.json()["link_id"]
    [challenge] = started.json()["pending_challenges"]

    seen: list[dict[str, Any]] = []
    async with api.http.stream("GET", f"/v1/links/{link_id}/events", headers=page(token)) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = server_sent_events(stream)
        name, first = await anext(events)
        assert name == "snapshot"
        assert json.loads(first)["status"] == "MFA_REQUIRED"
        # An answer from elsewhere (the backend) reaches the page through the stream.
        answering = asyncio.create_task(
            api.http.post(
                f"/v1/links/{link_id}/mfa",
                json=answer(challenge["id"], "correct"),
                headers=BACKEND,
            )
        )
        async with asyncio.timeout(30):
            async for name, data in events:
                assert name == "snapshot"
                seen.append(json.loads(data))
                if seen[-1]["status"] == "CONNECTED":
                    break
        assert (await answering).status_code == 200
    assert seen[-1]["status"] == "CONNECTED"
    assert len({json.dumps(snapshot) for snapshot in seen}) == len(seen), "only changes are sent"


async def test_links_are_listed_by_user_ref_and_status(api: Api) -> None:
    user_ref, other_ref = f"lister-{uuid.uuid4()}", f"other-{uuid.uuid4()}"
    good = await api.start(unique("user_good"), user_ref=user_ref)
    bad = await api.start(unique("user_bad"), user_ref=user_ref)
    await api.start(unique("user_good"), user_ref=other_ref)

    async def listed(**params: str) -> set[str]:
        response = await api.http.get("/v1/links", params=params, headers=BACKEND)
        assert response.status_code == 200, response.text
        return {link["link_id"] for link in response.json()["links"]}

    async def eventually(expected: set[str], **params: str) -> None:
        """Visibility catches up with a link's search attributes within moments."""
        async with asyncio.timeout(20):
            while True:
                if await listed(**params) == expected:
                    return
                await asyncio.sleep(0.2)

    await eventually({good["link_id"], bad["link_id"]}, user_ref=user_ref)
    await eventually({good["link_id"]}, user_ref=user_ref, status="CONNECTED")
    assert await listed(user_ref=user_ref, status="FAILED") == {bad["link_id"]}
    assert await listed(user_ref=f"nobody-{uuid.uuid4()}") == set()
    response = await api.http.get("/v1/links", params={"user_ref": user_ref}, headers=BACKEND)
    [summary] = [link for link in response.json()["links"] if link["link_id"] == good["link_id"]]
    assert (summary["provider"], summary["status"]) == ("mx", "CONNECTED")


async def test_update_mode_takes_a_held_link_through_resolve_hold_and_reauthentication(
    api: Api,
) -> None:
    held = await api.start(unique("user_hold"), user_ref="held-user")
    assert (held["status"], held["reason"]) == ("ACTION_REQUIRED", "PROVIDER_HOLD")
    link_id = held["link_id"]
    session = await api.session(user_ref="held-user", link_id=link_id)
    assert (session["mode"], session["provider"], session["link_id"]) == ("update", "mx", link_id)
    token = session["link_token"]

    restart = await api.http.post(
        "/v1/links",
        json={"credentials": {"username": "user_good", "password": PASSWORD}},
        headers=page(token),
    )
    assert restart.status_code == 403
    assert error_of(restart)["code"] == "link_token_action_not_allowed"

    resolved = await api.http.post(f"/v1/links/{link_id}/resolve-hold", headers=page(token))
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "CONNECTED"
    again = await api.http.post(f"/v1/links/{link_id}/resolve-hold", headers=page(token))
    assert again.status_code == 409
    assert error_of(again)["code"] == "link_refused"

    relogin = await api.http.post(f"/v1/links/{link_id}/reauthenticate", headers=page(token))
    assert relogin.status_code == 200, relogin.text
    assert relogin.json()["link_id"] == link_id
    assert relogin.json()["attempts"]["logins"] == 2


async def test_new_credentials_through_update_mode_and_unlink_from_the_backend(api: Api) -> None:
    username = unique("user_good")
    linked = await api.start(username, user_ref="relinked")
    link_id = linked["link_id"]
    token = (await api.session(user_ref="relinked", link_id=link_id))["link_token"]
    relinked = await api.http.post(
        f"/v1/links/{link_id}/credentials",
        json={"credentials": {"username": username, "password": PASSWORD}},
        headers=page(token),
    )
    assert relinked.status_code == 200, relinked.text
    assert relinked.json()["status"] == "CONNECTED"
    assert relinked.json()["attempts"]["logins"] == 2

    refused = await api.http.delete(f"/v1/links/{link_id}", headers=page(token))
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "api_key_required"
    unlinked = await api.http.delete(f"/v1/links/{link_id}", headers=BACKEND)
    assert unlinked.status_code == 200, unlinked.text
    assert unlinked.json()["status"] == "UNLINKED"
    again = await api.http.delete(f"/v1/links/{link_id}", headers=BACKEND)
    assert (again.status_code, again.json()["status"]) == (200, "UNLINKED")
    ended = await api.http.post(
        "/v1/link-sessions", json={"user_ref": "late", "link_id": link_id}, headers=BACKEND
    )
    assert ended.status_code == 409
    assert error_of(ended)["code"] == "link_ended"


# ------------------------------------------------------------------ refusals


async def test_credentials_are_refused_without_a_valid_api_key_or_token(api: Api) -> None:
    cases = {
        "no header": {},
        "not bearer": {"Authorization": f"Basic {API_KEY}"},
        "unknown key": {"Authorization": "Bearer not-a-configured-api-key-at-all"},
    }
    for name, headers in cases.items():
        response = await api.http.get("/v1/links", headers=headers)
        assert response.status_code == 401, name
        assert error_of(response)["code"] == "unauthenticated", name
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert API_KEY not in response.text


async def test_an_expired_or_altered_token_is_401_and_another_links_token_is_403(
    api: Api,
) -> None:
    mine = await api.session(provider="mx", user_ref="me")
    theirs = await api.start(unique("user_good"))
    token = mine["link_token"]

    other_link = await api.http.get(f"/v1/links/{theirs['link_id']}", headers=page(token))
    assert other_link.status_code == 403
    assert error_of(other_link)["code"] == "link_token_wrong_link"
    answer_other = await api.http.post(
        f"/v1/links/{theirs['link_id']}/mfa", json=answer("x", "y"), headers=page(token)
    )
    assert answer_other.status_code == 403

    flipped = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    for altered in (flipped, token + "A", token[:-1], "lt1.garbage"):
        response = await api.http.get(f"/v1/links/{mine['link_id']}", headers=page(altered))
        assert response.status_code == 401, altered[-8:]
        assert error_of(response)["code"] == "link_token_invalid"

    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    issuer = LinkTokens((TOKEN_SECRET,), clock=lambda: an_hour_ago)
    expired, _ = issuer.issue(
        link_id=mine["link_id"],
        provider=api.settings.link_tokens.open(token).provider,
        mode=api.settings.link_tokens.open(token).mode,
        user_ref="me",
        options=api.settings.link_tokens.open(token).options,
    )
    response = await api.http.get(f"/v1/links/{mine['link_id']}", headers=page(expired))
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "link_token_expired"
    assert error["action"].startswith("POST /v1/link-sessions")

    for method, path in (("GET", "/v1/links"), ("POST", "/v1/link-sessions")):
        backend_only = await api.http.request(
            method, path, json={"user_ref": "x", "provider": "mx"}, headers=page(token)
        )
        assert backend_only.status_code == 403, path
        assert error_of(backend_only)["code"] == "api_key_required"


async def test_answer_attempts_per_token_are_limited_with_retry_after(api: Api) -> None:
    session = await api.session(provider="mx", user_ref="guesser")
    token = session["link_token"]
    started = await api.http.post(
        "/v1/links",
        json={"credentials": {"username": unique("user_mfa"), "password": PASSWORD}},
        headers=page(token),
    )
    link_id = started.json()["link_id"]
    statuses = []
    for guess in range(MAX_ATTEMPTS + 1):
        response = await api.http.post(
            f"/v1/links/{link_id}/mfa", json=answer(f"CRD-guess-{guess}", "x"), headers=page(token)
        )
        statuses.append(response.status_code)
    # The start was the first attempt; each refused guess is one more.
    assert statuses == [409] * (MAX_ATTEMPTS - 1) + [429, 429]
    assert error_of(response)["code"] == "too_many_attempts"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    # The backend's own calls are not limited, and reading is not an attempt.
    assert (await api.http.get(f"/v1/links/{link_id}", headers=page(token))).status_code == 200
    by_backend = await api.http.post(
        f"/v1/links/{link_id}/mfa", json=answer("CRD-from-backend", "x"), headers=BACKEND
    )
    assert by_backend.status_code == 409


async def test_unknown_links_and_refused_requests_answer_in_the_one_shape(api: Api) -> None:
    missing = await api.http.get(f"/v1/links/link-{uuid.uuid4()}", headers=BACKEND)
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "link_not_found"
    missing_update = await api.http.post(
        f"/v1/links/link-{uuid.uuid4()}/reauthenticate", headers=BACKEND
    )
    assert missing_update.status_code == 404
    missing_session = await api.http.post(
        "/v1/link-sessions",
        json={"user_ref": "u", "link_id": f"link-{uuid.uuid4()}"},
        headers=BACKEND,
    )
    assert missing_session.status_code == 404

    connected = await api.start(unique("user_good"))
    nothing_pending = await api.http.post(
        f"/v1/links/{connected['link_id']}/mfa", json=answer("CRD-1", "x"), headers=BACKEND
    )
    assert nothing_pending.status_code == 409
    refusal = error_of(nothing_pending)
    assert refusal["code"] == "answer_refused"
    assert "No MFA challenge is pending" in refusal["detail"]

    secret = "Hunter2-never-echoed"
    invalid = await api.http.post(
        "/v1/links",
        json={"provider": "mx", "user_ref": "u", "credentials": {"password": secret}},
        headers=BACKEND,
    )
    assert invalid.status_code == 422
    assert error_of(invalid)["code"] == "invalid_request"
    assert "credentials.username" in invalid.json()["error"]["detail"]
    assert secret not in invalid.text

    session = await api.session(provider="mx", user_ref="page-user")
    overreach = await api.http.post(
        "/v1/links",
        json={"provider": "teal", "credentials": {"username": "u", "password": "p"}},
        headers=page(session["link_token"]),
    )
    assert overreach.status_code == 422
    assert error_of(overreach)["code"] == "set_by_link_session"

    bad_key = await api.http.post(
        "/v1/links/x/reauthenticate", headers=BACKEND | {"Idempotency-Key": "two words"}
    )
    assert bad_key.status_code == 422
    assert "two words" not in bad_key.text
    inward = await api.http.post(
        "/v1/link-sessions",
        json={"provider": "mx", "user_ref": "u", "options": {"webhook_url": "http://10.0.0.1/"}},
        headers=BACKEND,
    )
    assert inward.status_code == 422
    assert error_of(inward)["code"] == "webhook_url_refused"


async def test_a_session_with_the_same_idempotency_key_names_the_same_new_link(api: Api) -> None:
    headers = BACKEND | {"Idempotency-Key": f"session-{uuid.uuid4()}"}
    body = {"provider": "mx", "user_ref": "retrying-app"}
    first = await api.http.post("/v1/link-sessions", json=body, headers=headers)
    again = await api.http.post("/v1/link-sessions", json=body, headers=headers)
    assert first.json()["link_id"] == again.json()["link_id"]
    assert first.json()["link_token"] != again.json()["link_token"], "each is its own session"
    assert first.headers["cache-control"] == "no-store"
    other = await api.http.post("/v1/link-sessions", json=body, headers=BACKEND)
    assert other.json()["link_id"] != first.json()["link_id"]

    # The same key for another user, or another provider, names another link: a page's start
    # under it must never find the first user's link.
    for changed in ({"user_ref": "another-user"}, {"provider": "teal"}):
        reused = await api.http.post("/v1/link-sessions", json=body | changed, headers=headers)
        assert reused.status_code == 201, reused.text
        assert reused.json()["link_id"] != first.json()["link_id"], changed


async def test_a_page_is_never_handed_another_users_link(api: Api) -> None:
    theirs = await api.start(unique("user_good"), user_ref="the-owner")
    assert theirs["status"] == "CONNECTED"
    # A create-mode session naming that link for someone else (no route issues one: forged with
    # the API's own secret, the worst a bug elsewhere could do).
    token, _ = api.settings.link_tokens.issue(
        link_id=theirs["link_id"],
        provider=Provider.MX,
        mode=SessionMode.CREATE,
        user_ref="an-intruder",
        options=LinkOptions(),
    )
    started = await api.http.post(
        "/v1/links",
        json={"credentials": {"username": unique("user_mfa"), "password": PASSWORD}},
        headers=page(token),
    )
    assert started.status_code == 409, started.text
    assert error_of(started)["code"] == "link_id_in_use"
    assert "accounts" not in started.text
    assert theirs["accounts"][0]["id"] not in started.text

    # Nor can the backend open an update-mode session on it for another user.
    update = await api.http.post(
        "/v1/link-sessions",
        json={"link_id": theirs["link_id"], "user_ref": "an-intruder"},
        headers=BACKEND,
    )
    assert update.status_code == 409, update.text
    assert error_of(update)["code"] == "user_mismatch"
    own = await api.http.post(
        "/v1/link-sessions",
        json={"link_id": theirs["link_id"], "user_ref": "the-owner"},
        headers=BACKEND,
    )
    assert own.status_code == 201, own.text


async def test_the_event_stream_ends_with_an_expired_event_when_its_token_expires(
    api: Api,
) -> None:
    linked = await api.start(unique("user_good"))
    ttl = api.settings.link_tokens.ttl
    # Issued long enough ago that it has two seconds left.
    issued = datetime.now(UTC) - ttl + timedelta(seconds=2)
    token, _ = LinkTokens((TOKEN_SECRET,), clock=lambda: issued).issue(
        link_id=linked["link_id"],
        provider=Provider.MX,
        mode=SessionMode.UPDATE,
        user_ref="x",
        options=LinkOptions(),
    )
    async with api.http.stream(
        "GET", f"/v1/links/{linked['link_id']}/events", headers=page(token)
    ) as stream:
        async with asyncio.timeout(15):
            received = [event async for event in server_sent_events(stream)]
    assert [name for name, _ in received] == ["snapshot", "expired"]
    assert json.loads(received[-1][1])["error"]["code"] == "link_token_expired"


async def test_a_link_that_does_not_answer_in_time_is_a_504_that_says_how_to_follow_up(
    dev_env: WorkflowEnvironment,
) -> None:
    # No worker polls this task queue: the link starts, and never reaches its first stop.
    links = LinkClient(dev_env.client, f"no-worker-{uuid.uuid4()}")
    settings = api_settings("http://link.example.test", wait_seconds=1)
    app = create_app(
        TEST_KEY_RING, CodecAccess(tokens=(CODEC_TOKEN,)), api_settings=settings, links=links
    )
    async for url in serve(app):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            response = await http.post(
                "/v1/links",
                json={
                    "provider": "mx",
                    "user_ref": "patient-user",
                    "credentials": {"username": "user_good", "password": PASSWORD},
                },
                headers=BACKEND | {"Idempotency-Key": "slow-start"},
            )
    assert response.status_code == 504
    error = error_of(response)
    assert error["code"] == "link_timeout"
    assert "Idempotency-Key" in error["action"]
