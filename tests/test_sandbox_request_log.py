"""The sandbox's record of request lines and its MFA window settings, in process and on the CLI.

The URL privacy tests trust `GET /_sandbox/requests` to hold every provider request line as a
client sent it, and the MFA window tests trust the `--...-mfa-window-seconds` flags to reach the
providers; these tests hold both to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from sandbox.__main__ import parse_args
from sandbox.app import create_app
from sandbox.arcadia import MFA_EXPIRY_SECONDS, ArcadiaSandbox
from sandbox.mx import MxSandbox
from sandbox.request_log import RequestLog


@pytest.fixture
def app() -> Starlette:
    return create_app(latency_seconds=0)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as client:
        yield client


async def lines(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/_sandbox/requests")
    assert response.status_code == 200, response.text
    recorded: list[str] = response.json()["requests"]
    return recorded


async def test_every_provider_request_line_is_recorded_as_sent(client: httpx.AsyncClient) -> None:
    await client.get("/teal/payroll/jane%40example.com", params={"account_id": "a b", "limit": 5})
    await client.post("/unbill/client", json={"identifier": "in-a-body-only"})
    await client.get("/health")
    await client.get("/_sandbox/stats")
    assert await lines(client) == [
        "GET /teal/payroll/jane%40example.com?account_id=a+b&limit=5",
        "POST /unbill/client",
    ]


async def test_a_request_the_fault_injector_answers_is_recorded_too(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/_sandbox/faults", json={"error_rate": 1})
    refused = await client.get("/mx/users")
    assert refused.status_code >= 500
    assert await lines(client) == ["GET /mx/users"]


async def test_stats_reset_forgets_the_lines(client: httpx.AsyncClient) -> None:
    await client.get("/arcadia/plug/accounts")
    assert await lines(client) == ["GET /arcadia/plug/accounts"]
    assert (await client.post("/_sandbox/stats/reset")).status_code == 200
    assert await lines(client) == []


def test_the_log_keeps_only_the_newest_lines() -> None:
    log = RequestLog(max_lines=2)
    for number in range(3):
        log.record({"method": "GET", "path": f"/mx/{number}", "query_string": b""})
    assert list(log.lines) == ["GET /mx/1", "GET /mx/2"]


def test_the_mfa_windows_reach_arcadia_and_mx() -> None:
    app = create_app(latency_seconds=0, mfa_window_seconds={"arcadia": 2.5, "mx": 4.0})
    arcadia: ArcadiaSandbox = app.state.providers["arcadia"]
    mx: MxSandbox = app.state.providers["mx"]
    assert (arcadia.mfa_window_seconds, mx.mfa_window_seconds) == (2.5, 4.0)
    defaults = create_app(latency_seconds=0)
    assert defaults.state.providers["arcadia"].mfa_window_seconds == MFA_EXPIRY_SECONDS
    assert defaults.state.providers["mx"].mfa_window_seconds is None


def test_a_provider_without_an_mfa_window_refuses_one() -> None:
    with pytest.raises(ValueError, match="synapse"):
        create_app(latency_seconds=0, mfa_window_seconds={"synapse": 1.0})


def test_the_command_line_sets_the_mfa_windows() -> None:
    args, _ = parse_args(["--arcadia-mfa-window-seconds", "1.5", "--mx-mfa-window-seconds", "2"])
    assert (args.arcadia_mfa_window_seconds, args.mx_mfa_window_seconds) == (1.5, 2.0)
    args, _ = parse_args([])
    assert (args.arcadia_mfa_window_seconds, args.mx_mfa_window_seconds) == (
        MFA_EXPIRY_SECONDS,
        None,
    )


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_the_command_line_refuses_a_window_that_is_not_a_positive_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--arcadia-mfa-window-seconds", value])
    assert "--arcadia-mfa-window-seconds" in capsys.readouterr().err
