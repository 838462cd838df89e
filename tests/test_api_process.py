"""The API as the dev stack runs it: `python -m api` beside the dev server, sandbox and worker.

Every process is real and separate, configured only by the stack's key files. The test links a
user the way an app would (a session from the backend, the page's start and answer with the
link token), lists the user's links, and then reads every process's log for the secrets that
passed through: none may be there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from linkflow.devstack import DevStack, StackPorts

pytestmark = pytest.mark.e2e

PASSWORD = "pass_good"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    ports = StackPorts.free()
    stack = DevStack(ports=ports, state_dir=tmp_path_factory.mktemp("api-stack"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


async def test_the_stacks_api_links_a_user_through_a_session_and_logs_no_secret(
    stack: DevStack,
) -> None:
    api_key = stack.api_key()
    backend = {"Authorization": f"Bearer {api_key}"}
    user_ref = f"jane-{uuid.uuid4()}@example.com"
    idempotency_key = f"session-{uuid.uuid4()}"
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{stack.ports.api}", timeout=60
    ) as http:
        document = (await http.get("/openapi.json")).json()
        assert "/v1/link-sessions" in document["paths"]
        assert (await http.get("/docs")).status_code == 200

        created = await http.post(
            "/v1/link-sessions",
            json={"provider": "mx", "user_ref": user_ref},
            headers=backend | {"Idempotency-Key": idempotency_key},
        )
        assert created.status_code == 201, created.text
        session = created.json()
        token = session["link_token"]
        assert session["connect_url"].startswith(f"{stack.ports.api_url}/connect#token=lt1.")
        page = {"Authorization": f"Bearer {token}"}

        started = await http.post(
            "/v1/links",
            json={"credentials": {"username": "user_mfa+api-process", "password": PASSWORD}},
            headers=page,
        )
        assert started.status_code == 201, started.text
        [challenge] = started.json()["pending_challenges"]
        answered = await http.post(
            f"/v1/links/{session['link_id']}/mfa",
            json={"answers": [{"challenge_id": challenge["id"], "value": "correct"}]},
            headers=page,
        )
        assert answered.json()["status"] == "CONNECTED"

        async with asyncio.timeout(20):
            while True:
                listed = await http.get("/v1/links", params={"user_ref": user_ref}, headers=backend)
                assert listed.status_code == 200, listed.text
                if [link["link_id"] for link in listed.json()["links"]] == [session["link_id"]]:
                    break
                await asyncio.sleep(0.2)

    logs = {name: stack.log_path(name).read_text(errors="replace") for name in ("api", "worker")}
    assert "POST /v1/links" in logs["api"], "the access log is on"
    assert "/v1/links?…" in logs["api"], "with its query strings dropped"
    for name, text in logs.items():
        for secret in (api_key, token, token[4:40], user_ref, idempotency_key, PASSWORD):
            assert secret not in text, (name, secret[:12])
