"""The sandbox's chaos machinery: Idempotency-Key replay, injected faults and their control plane.

The chaos test trusts these to mean what they say: that a replayed write never reached the
provider, that a dropped response was processed, and that the counters it asserts on count what
happened. Most tests run in process; one runs `python -m sandbox --drop-rate 1` to prove that a
drop is a real cut connection to httpx and that the retry is answered from the replay store.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from activities.errors import PROVIDER_UNREACHABLE, to_application_error
from sandbox.__main__ import parse_args
from sandbox.app import create_app
from sandbox.faults import FaultPlan, Faults
from sandbox.idempotency import IdempotentReplay
from sandbox.mx import CREDENTIAL_FIELDS, MX_ACCEPT, MxSandbox
from sandbox.users import Scenario, scenario_for
from tests.fixtures.sandbox import sandbox_process

AUTH = ("sandbox-client-id", "sandbox-api-key")
BASIC = "Basic " + base64.b64encode(":".join(AUTH).encode()).decode()
MX_HEADERS = {"Accept": MX_ACCEPT, "Authorization": BASIC}
USERNAME_GUID, PASSWORD_GUID = (str(field["guid"]) for field in CREDENTIAL_FIELDS)


def member_body(username: str) -> dict[str, Any]:
    return {
        "member": {
            "institution_code": "mxbank",
            "credentials": [
                {"guid": USERNAME_GUID, "value": username},
                {"guid": PASSWORD_GUID, "value": "pass_good"},
            ],
        }
    }


@pytest.fixture
def app() -> Starlette:
    return create_app(latency_seconds=0)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as client:
        yield client


def mx_state(app: Starlette) -> MxSandbox:
    sandbox: MxSandbox = app.state.providers["mx"]
    return sandbox


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/_sandbox/stats")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def set_plan(client: httpx.AsyncClient, **plan: Any) -> None:
    response = await client.put("/_sandbox/faults", json=plan)
    assert response.status_code == 200, response.text


async def call_asgi(
    app: Any, method: str, path: str, *, body: bytes = b"", disconnect: bool = False
) -> list[Message]:
    """Call an ASGI app directly and return what it sent, complete or not.

    httpx's ASGITransport refuses a response that never completes, and that is exactly what the
    `timeout` and `drop` faults send. `disconnect` makes the client hang up once the body is read.
    """
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"sandbox"),
            *((k.lower().encode(), v.encode()) for k, v in MX_HEADERS.items()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("sandbox", 80),
    }
    sent: list[Message] = []
    requested = False
    never = asyncio.Event()

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        if not disconnect:
            await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def is_cut(messages: list[Message]) -> bool:
    """Whether a response promised more body than it sent and never finished."""
    start, *bodies = messages
    promised = int(dict(start["headers"])[b"content-length"])
    sent = sum(len(message.get("body", b"")) for message in bodies)
    return sent < promised and all(message.get("more_body") for message in bodies)


# ---------------------------------------------------------------------- idempotent replay


async def test_a_repeated_key_replays_the_first_answer_without_reaching_the_provider(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    headers = MX_HEADERS | {"Idempotency-Key": "user-1"}
    first = await client.post("/mx/users", json={"user": {"id": "app-1"}}, headers=headers)
    again = await client.post("/mx/users", json={"user": {"id": "app-1"}}, headers=headers)

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert len(mx_state(app).users) == 1
    mx = (await stats(client))["providers"]["mx"]
    assert mx == {
        "executed_with_key": 1,
        "replayed": 1,
        "unkeyed_writes": 0,
        "key_conflicts": 0,
        "duplicate_requests": 0,
    }


async def test_a_retried_member_creation_makes_one_member(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    user = (await client.post("/mx/users", json={"user": {}}, headers=MX_HEADERS)).json()["user"]
    path = f"/mx/users/{user['guid']}/members"
    headers = MX_HEADERS | {"Idempotency-Key": "login-1"}

    answers = [
        await client.post(path, json=member_body("user_good"), headers=headers) for _ in range(3)
    ]

    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.json()["member"]["guid"] for answer in answers}) == 1
    assert len(mx_state(app).members) == 1
    totals = await stats(client)
    assert totals["providers"]["mx"]["unkeyed_writes"] == 1
    assert totals["providers"]["mx"]["replayed"] == 2
    assert totals["duplicate_requests"] == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "mentions"),
    [
        ("DELETE", "/mx/users/u/members/m", None, "cannot be reused for DELETE"),
        ("POST", "/mx/users", {"user": {"id": "other"}}, "with another body"),
    ],
    ids=["another-path", "another-body"],
)
async def test_reusing_a_key_for_another_request_is_refused(
    app: Starlette,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    mentions: str,
) -> None:
    headers = MX_HEADERS | {"Idempotency-Key": "k"}
    assert (await client.post("/mx/users", json={"user": {}}, headers=headers)).status_code == 200

    reused = await client.request(method, path, json=body, headers=headers)

    assert reused.status_code == 422
    assert "POST /mx/users" in reused.json()["error"]["message"]
    assert mentions in reused.json()["error"]["message"]
    assert len(mx_state(app).users) == 1
    assert (await stats(client))["providers"]["mx"]["key_conflicts"] == 1


async def test_reads_are_never_replayed_and_writes_without_a_key_are_counted(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(2):
        response = await client.get("/mx/users", headers=MX_HEADERS | {"Idempotency-Key": "r"})
        assert "idempotent-replayed" not in response.headers
        await client.post("/mx/users", json={"user": {}}, headers=MX_HEADERS)

    mx = (await stats(client))["providers"]["mx"]
    assert (mx["unkeyed_writes"], mx["executed_with_key"], mx["replayed"]) == (2, 0, 0)


class Scripted:
    """An ASGI app that answers the given statuses in turn, counting its calls."""

    def __init__(self, *statuses: int, gate: asyncio.Event | None = None) -> None:
        self.statuses = list(statuses)
        self.calls = 0
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        status = self.statuses[min(self.calls, len(self.statuses)) - 1]
        if self.gate is not None:
            await self.gate.wait()
        body = f'{{"call": {self.calls}}}'.encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("failure", [500, 503, 429])
async def test_an_answer_the_client_retries_is_not_stored(failure: int) -> None:
    provider = Scripted(failure, 201)
    replay = IdempotentReplay(provider)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=replay), base_url="http://p"
    ) as client:
        answers = [await client.post("/x", headers={"Idempotency-Key": "k"}) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [failure, 201, 201]
    assert [answer.json()["call"] for answer in answers] == [1, 2, 2]
    assert provider.calls == 2
    assert (replay.stats.executed_with_key, replay.stats.replayed) == (2, 1)


async def test_synapse_idempotency_header_counts_as_a_key() -> None:
    provider = Scripted(200)
    replay = IdempotentReplay(provider)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=replay), base_url="http://p"
    ) as client:
        for _ in range(2):
            await client.post("/x", headers={"X-SP-IDEMPOTENCY-KEY": "k"})

    assert provider.calls == 1
    assert replay.stats.replayed == 1


async def test_a_concurrent_duplicate_waits_for_the_first_then_replays() -> None:
    gate = asyncio.Event()
    provider = Scripted(201, gate=gate)
    replay = IdempotentReplay(provider)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=replay), base_url="http://p"
    ) as client:
        first = asyncio.create_task(client.post("/x", headers={"Idempotency-Key": "k"}))
        second = asyncio.create_task(client.post("/x", headers={"Idempotency-Key": "k"}))
        await asyncio.sleep(0.05)
        assert provider.calls == 1
        assert not second.done()
        gate.set()
        answers = await asyncio.gather(first, second)

    assert [answer.json() for answer in answers] == [{"call": 1}, {"call": 1}]
    assert provider.calls == 1
    assert (replay.stats.executed_with_key, replay.stats.replayed) == (1, 1)


# ---------------------------------------------------------------------- faults


async def test_error_fault_answers_5xx_before_the_provider(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await set_plan(client, error_rate=1, seed=7)

    answers = [
        await client.post("/mx/users", json={"user": {}}, headers=MX_HEADERS) for _ in range(20)
    ]

    assert {answer.status_code for answer in answers} <= {500, 502, 503}
    assert len({answer.status_code for answer in answers}) > 1
    assert answers[0].json()["error"]["code"] == "sandbox_fault_error"
    assert mx_state(app).users == {}
    totals = await stats(client)
    assert totals["faults"] == {"error": 20, "throttle": 0, "timeout": 0, "drop": 0}
    assert totals["requests"] == 20


async def test_throttle_fault_answers_429_with_retry_after(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await set_plan(client, throttle_rate=1, retry_after_seconds=3)

    answer = await client.post("/mx/users", json={"user": {}}, headers=MX_HEADERS)

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    assert mx_state(app).users == {}
    assert (await stats(client))["faults"]["throttle"] == 1


async def test_timeout_fault_hangs_then_cuts_without_reaching_the_provider(app: Starlette) -> None:
    app.state.faults.set_plan(FaultPlan(timeout_rate=1, hang_seconds=0.2))
    loop = asyncio.get_running_loop()

    started = loop.time()
    sent = await call_asgi(app, "POST", "/mx/users", body=b'{"user": {}}')

    assert loop.time() - started >= 0.2
    assert is_cut(sent)
    assert mx_state(app).users == {}
    assert app.state.faults.counts["timeout"] == 1


async def test_timeout_fault_stops_hanging_when_the_client_hangs_up(app: Starlette) -> None:
    app.state.faults.set_plan(FaultPlan(timeout_rate=1, hang_seconds=30))

    await asyncio.wait_for(call_asgi(app, "GET", "/mx/users", disconnect=True), timeout=5)


async def test_drop_fault_processes_the_request_then_cuts_the_answer(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    app.state.faults.set_plan(FaultPlan(drop_rate=1))

    sent = await call_asgi(app, "POST", "/mx/users", body=b'{"user": {"id": "app-1"}}')

    assert is_cut(sent)
    assert sent[0]["status"] == 200
    assert [user["id"] for user in mx_state(app).users.values()] == ["app-1"]
    assert (await stats(client))["faults"]["drop"] == 1


async def test_drop_fault_cuts_a_bodiless_answer_too(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    user = (await client.post("/mx/users", json={"user": {}}, headers=MX_HEADERS)).json()["user"]
    members = f"/mx/users/{user['guid']}/members"
    created = await client.post(members, json=member_body("user_good"), headers=MX_HEADERS)
    app.state.faults.set_plan(FaultPlan(drop_rate=1))

    # MX answers a deleted member with 204, which no Content-Length could make look unfinished.
    deleted = await call_asgi(app, "DELETE", f"{members}/{created.json()['member']['guid']}")

    assert is_cut(deleted)
    assert mx_state(app).members == {}


async def test_faults_spare_health_and_the_control_plane(client: httpx.AsyncClient) -> None:
    await set_plan(client, error_rate=1)

    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/_sandbox/faults")).status_code == 200
    assert (await stats(client))["requests"] == 0


async def test_only_writes_spares_reads(client: httpx.AsyncClient) -> None:
    await set_plan(client, error_rate=1, only_writes=True)

    assert (await client.get("/mx/users", headers=MX_HEADERS)).status_code == 200
    answer = await client.post("/mx/users", json={"user": {}}, headers=MX_HEADERS)
    assert answer.status_code >= 500


def test_a_seed_makes_the_draws_reproducible() -> None:
    plan = FaultPlan(error_rate=0.3, throttle_rate=0.2, drop_rate=0.2, seed=42)
    draws = [[faults.draw("POST") for _ in range(50)] for faults in (Faults(plan), Faults(plan))]

    assert draws[0] == draws[1]
    assert {"error", "throttle", "drop", None} == set(draws[0])


# ---------------------------------------------------------------------- control plane


async def test_the_plan_can_be_read_replaced_and_cleared(client: httpx.AsyncClient) -> None:
    assert (await client.get("/_sandbox/faults")).json() == FaultPlan().model_dump()

    await set_plan(client, drop_rate=0.25, hang_seconds=2, seed=1)
    current = (await client.get("/_sandbox/faults")).json()
    assert (current["drop_rate"], current["hang_seconds"], current["seed"]) == (0.25, 2, 1)
    assert current["error_rate"] == 0

    cleared = await client.delete("/_sandbox/faults")
    assert cleared.status_code == 200
    assert (await client.get("/_sandbox/faults")).json() == FaultPlan().model_dump()


@pytest.mark.parametrize(
    ("plan", "mentions"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"drop_rate": -0.1}, "drop_rate"),
        ({"error_rate": 0.6, "drop_rate": 0.6}, "at most 1"),
        ({"retry_after_seconds": -1}, "retry_after_seconds"),
        ({"hang_seconds": -1}, "hang_seconds"),
        ({"eror_rate": 0.5}, "eror_rate"),
        ({"error_rate": "often"}, "error_rate"),
    ],
)
async def test_an_invalid_plan_is_refused_and_the_old_one_kept(
    client: httpx.AsyncClient, plan: dict[str, Any], mentions: str
) -> None:
    await set_plan(client, throttle_rate=0.5)

    refused = await client.put("/_sandbox/faults", json=plan)

    assert refused.status_code == 422
    assert mentions in refused.json()["error"]["message"]
    assert (await client.get("/_sandbox/faults")).json()["throttle_rate"] == 0.5


@pytest.mark.parametrize("body", [b"not json", b"[0.5]"])
async def test_a_plan_that_is_not_a_json_object_is_a_bad_request(
    client: httpx.AsyncClient, body: bytes
) -> None:
    refused = await client.put("/_sandbox/faults", content=body)

    assert refused.status_code == 400
    assert "JSON" in refused.json()["error"]["message"]


async def test_stats_reset_zeroes_the_counters_not_the_replay_store(
    client: httpx.AsyncClient,
) -> None:
    headers = MX_HEADERS | {"Idempotency-Key": "k"}
    await client.post("/mx/users", json={"user": {}}, headers=headers)
    await set_plan(client, throttle_rate=1)
    await client.get("/mx/users", headers=MX_HEADERS)
    await client.delete("/_sandbox/faults")

    reset = await client.post("/_sandbox/stats/reset")

    assert reset.status_code == 200
    assert reset.json()["faults"] == {"error": 0, "throttle": 0, "timeout": 0, "drop": 0}
    assert reset.json()["requests"] == 0
    assert all(set(p.values()) == {0} for p in reset.json()["providers"].values())
    again = await client.post("/mx/users", json={"user": {}}, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"


def test_command_line_sets_the_initial_plan() -> None:
    rates = ["--drop-rate", "0.2", "--throttle-rate", "0.1"]
    _, plan = parse_args(
        [*rates, "--retry-after-seconds", "2", "--hang-seconds", "1.5", "--fault-seed", "9"]
    )

    assert plan == FaultPlan(
        drop_rate=0.2, throttle_rate=0.1, retry_after_seconds=2, hang_seconds=1.5, seed=9
    )


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["--error-rate", "2"], "--error-rate: must be from 0 to 1"),
        (["--drop-rate", "x"], "--drop-rate: must be a number"),
        (["--hang-seconds", "-1"], "--hang-seconds: must not be negative"),
        (["--retry-after-seconds", "1.5"], "--retry-after-seconds: must be a whole number"),
        (["--error-rate", "0.6", "--timeout-rate", "0.6"], "must be at most 1"),
    ],
)
def test_command_line_refuses_an_invalid_plan(
    argv: list[str], mentions: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)

    assert exited.value.code == 2
    assert mentions in capsys.readouterr().err


# ---------------------------------------------------------------------- plus-tags


def test_a_plus_tag_keeps_the_scenario() -> None:
    assert scenario_for("user_good+abc", "pass_good") is Scenario.NO_MFA
    assert scenario_for("user_mfa+a+b", "pass_good") is Scenario.QUESTION
    assert scenario_for("user_good+abc", "wrong") is Scenario.INVALID
    assert scenario_for("+user_good", "pass_good") is Scenario.INVALID


async def test_a_plus_tagged_user_links_like_user_good_at_mx(client: httpx.AsyncClient) -> None:
    user = (await client.post("/mx/users", json={"user": {}}, headers=MX_HEADERS)).json()["user"]
    created = await client.post(
        f"/mx/users/{user['guid']}/members",
        json=member_body("user_good+abc"),
        headers=MX_HEADERS,
    )
    assert created.status_code == 202, created.text
    member = created.json()["member"]["guid"]

    status = await client.get(
        f"/mx/users/{user['guid']}/members/{member}/status", headers=MX_HEADERS
    )

    assert status.json()["member"]["connection_status"] == "CONNECTED"
    assert status.json()["member"]["is_authenticated"] is True


# ---------------------------------------------------------------------- over a real socket


async def test_a_dropped_answer_is_a_transport_error_and_its_retry_a_replay() -> None:
    partner_id = f"app-{uuid.uuid4()}"
    body, key = {"user": {"id": partner_id}}, {"Idempotency-Key": partner_id}
    with sandbox_process("--latency-seconds", "0", "--drop-rate", "1") as url:
        async with httpx.AsyncClient(
            base_url=url, auth=AUTH, headers={"Accept": MX_ACCEPT}, timeout=10
        ) as client:
            with pytest.raises(httpx.TransportError) as dropped:
                await client.post("/mx/users", json=body, headers=key)
            unreachable = to_application_error(dropped.value)
            assert unreachable is not None
            assert unreachable.type == PROVIDER_UNREACHABLE

            assert (await client.get("/health")).status_code == 200
            assert (await client.delete("/_sandbox/faults")).status_code == 200
            retried = await client.post("/mx/users", json=body, headers=key)
            listed = (await client.get("/mx/users")).json()["users"]
            totals = (await client.get("/_sandbox/stats")).json()

    assert retried.status_code == 200
    assert retried.headers["idempotent-replayed"] == "true"
    assert [user["guid"] for user in listed if user["id"] == partner_id] == [
        retried.json()["user"]["guid"]
    ]
    assert totals["faults"]["drop"] == 1
    assert totals["providers"]["mx"]["executed_with_key"] == 1
    assert totals["providers"]["mx"]["replayed"] == 1
