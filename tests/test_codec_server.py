"""The codec server: Temporal's remote codec protocol, its access check, CORS, and masked decoding.

Most tests call the app in-process over httpx's ASGI transport; the last ones run the real
`python -m api` process and read a real dev server's history through `temporal workflow show`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.codec_server import MAX_BODY_BYTES, CodecAccess
from linkflow.codec import ENCRYPTED_ENCODING, EncryptionCodec
from linkflow.config import ConfigurationError
from linkflow.devstack import PROJECT_ROOT, free_port, port_is_open, temporal_cli
from linkflow.masking import MASK
from linkflow.models import ChallengeAnswer, Credentials, LinkRequest, MfaSubmission, Provider
from tests.conftest import TEST_KEY_RING
from tests.test_codec import base64_forms

TOKEN = "codec-test-token-5f0c2a9e71b3"
UI_ORIGIN = "http://localhost:8233"
PASSWORD = "Server-pa55-Zq1"
ANSWER = "Server-answer-Tokyo-88"
EXTRA = "acct-server-77120"


def request() -> LinkRequest:
    return LinkRequest(
        provider=Provider.ARCADIA,
        user_ref="server-user-4",
        credentials=Credentials(username="user_mfa", password=PASSWORD, extra={"account": EXTRA}),
    )


def submission() -> MfaSubmission:
    return MfaSubmission(answers=[ChallengeAnswer(challenge_id="CH-1", value=ANSWER)])


async def sealed(*values: object) -> list[Payload]:
    plain = pydantic_data_converter.payload_converter.to_payloads(list(values))
    return await EncryptionCodec(TEST_KEY_RING).encode(plain)


def body(payloads: list[Payload]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def read(response: httpx.Response) -> list[Payload]:
    return list(json_format.Parse(response.text, Payloads()).payloads)


@pytest.fixture
async def codec() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(TEST_KEY_RING, CodecAccess(tokens=(TOKEN,), origins=(UI_ORIGIN,)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://codec") as client:
        yield client


def with_token(**headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"} | headers


async def test_decode_shows_the_whole_request_with_every_secret_masked(
    codec: httpx.AsyncClient,
) -> None:
    response = await codec.post(
        "/decode",
        content=body(await sealed(request(), submission())),
        headers=with_token(**{"X-Namespace": "default"}),
    )
    assert response.status_code == 200
    shown_request, shown_submission = (json.loads(p.data) for p in read(response))
    assert shown_request["provider"] == "arcadia"
    assert shown_request["user_ref"] == "server-user-4"
    assert shown_request["credentials"] == {
        "username": "user_mfa",
        "password": MASK,
        "extra": {"account": MASK},
    }
    assert shown_submission == {"answers": [{"challenge_id": "CH-1", "value": MASK}]}
    for secret in (PASSWORD, ANSWER, EXTRA):
        assert secret not in response.text


async def test_encode_seals_what_temporal_web_sends_with_the_newest_key(
    codec: httpx.AsyncClient,
) -> None:
    plain = pydantic_data_converter.payload_converter.to_payloads([submission()])
    response = await codec.post("/encode", content=body(plain), headers=with_token())
    assert response.status_code == 200
    [encoded] = read(response)
    assert encoded.metadata["encoding"] == ENCRYPTED_ENCODING
    assert ANSWER.encode() not in encoded.data
    assert await EncryptionCodec(TEST_KEY_RING).decode([encoded]) == list(plain)


async def test_only_the_last_part_of_the_path_counts(codec: httpx.AsyncClient) -> None:
    for path in ("/default/decode", "/codec/default/decode"):
        response = await codec.post(
            path, content=body(await sealed(request())), headers=with_token()
        )
        assert response.status_code == 200, path
        assert PASSWORD not in response.text


async def test_a_payload_it_cannot_open_is_answered_unchanged(codec: httpx.AsyncClient) -> None:
    garbage = Payload(metadata={"encoding": ENCRYPTED_ENCODING, "encryption-key-id": b"gone"})
    garbage.data = b"\0" * 40
    response = await codec.post("/decode", content=body([garbage]), headers=with_token())
    assert response.status_code == 200
    assert read(response) == [garbage]


async def test_an_empty_list_is_answered_with_an_empty_list(codec: httpx.AsyncClient) -> None:
    response = await codec.post("/decode", content='{"payloads": []}', headers=with_token())
    assert response.status_code == 200
    assert response.json() == {"payloads": []}


# ------------------------------------------------------------------ who may call


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-the-token"}, 403),
        ({"Authorization": f"Basic {TOKEN}"}, 403),
        ({"Authorization": f"Bearer {TOKEN}x"}, 403),
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "http://localhost:8234"}, 403),
    ],
    ids=["nothing", "wrong-token", "not-bearer", "longer-token", "other-origin", "other-port"],
)
async def test_a_caller_without_a_token_or_the_web_origin_is_refused(
    codec: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    response = await codec.post(
        "/decode",
        content=body(await sealed(request())),
        headers={"Content-Type": "application/json"} | headers,
    )
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert PASSWORD not in response.text
    assert "access-control-allow-origin" not in response.headers
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


async def test_temporal_web_decodes_from_its_origin_without_a_token(
    codec: httpx.AsyncClient,
) -> None:
    response = await codec.post(
        "/decode",
        content=body(await sealed(request())),
        headers={"Content-Type": "application/json", "X-Namespace": "default", "Origin": UI_ORIGIN},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == UI_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in response.headers["vary"]
    assert PASSWORD not in response.text


async def test_the_browser_preflight_is_answered_for_the_web_origin_only(
    codec: httpx.AsyncClient,
) -> None:
    asking = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
        "Access-Control-Request-Private-Network": "true",
    }
    allowed = await codec.options("/decode", headers=asking | {"Origin": UI_ORIGIN})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    allowed_headers = allowed.headers["access-control-allow-headers"].lower()
    for header in ("content-type", "x-namespace", "authorization"):
        assert header in allowed_headers
    assert allowed.headers["access-control-allow-private-network"] == "true"

    refused = await codec.options("/encode", headers=asking | {"Origin": "http://evil.example"})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    assert set(refused.json()) == {"error"}


# ------------------------------------------------------------------ bad bodies


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        ("not json", "application/json", 400),
        ('{"payloads": 5}', "application/json", 400),
        ('{"payloads": [{"data": 5}]}', "application/json", 400),
        ('{"payloads": [{"metadata": {"encoding": 7}}]}', "application/json", 400),
        ('{"unknown": []}', "application/json", 400),
        ("[" * 100_000 + "]" * 100_000, "application/json", 400),
        (b"\xff\xfe{}", "application/json", 400),
        ('{"payloads": []}', "text/plain", 415),
        ('{"payloads": []}', "", 415),
        ("x" * (MAX_BODY_BYTES + 1), "application/json", 413),
    ],
    ids=[
        "not-json",
        "wrong-shape",
        "data-not-base64",
        "metadata-not-bytes",
        "unknown-field",
        "deeply-nested",
        "not-utf8",
        "text-plain",
        "no-content-type",
        "too-large",
    ],
)
@pytest.mark.parametrize("path", ["/decode", "/encode"])
async def test_a_bad_body_gets_a_json_error_never_a_crash(
    codec: httpx.AsyncClient, path: str, content: str | bytes, content_type: str, status: int
) -> None:
    headers = with_token()
    headers["Content-Type"] = content_type
    response = await codec.post(path, content=content, headers=headers)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert "Traceback" not in response.text


# ------------------------------------------------------------------ configuration


def test_the_web_origins_and_tokens_come_from_the_environment(tmp_path: Path) -> None:
    tokens_file = tmp_path / "codec.tokens"
    tokens_file.write_text(f"# for the CLI\n{TOKEN}-second\n")
    access = CodecAccess.from_env(
        {
            "LINKFLOW_CODEC_TOKENS": f"{TOKEN}, {TOKEN}-other",
            "LINKFLOW_CODEC_TOKENS_FILE": str(tokens_file),
            "LINKFLOW_CODEC_CORS_ORIGINS": "https://temporal.example.com/, http://localhost:9000",
        }
    )
    assert access.origins == ("https://temporal.example.com", "http://localhost:9000")
    for token in (TOKEN, f"{TOKEN}-other", f"{TOKEN}-second"):
        assert access.accepts_token(f"Bearer {token}")
    assert TOKEN not in repr(access)
    assert CodecAccess.from_env({}).origins == ("http://localhost:8233", "http://127.0.0.1:8233")
    assert CodecAccess.from_env({"LINKFLOW_CODEC_CORS_ORIGINS": "none"}).origins == ()


@pytest.mark.parametrize(
    "variables",
    [
        {"LINKFLOW_CODEC_TOKENS": "short-token"},
        {"LINKFLOW_CODEC_CORS_ORIGINS": "localhost:8233"},
        {"LINKFLOW_CODEC_CORS_ORIGINS": "http://localhost:8233/ui"},
        {"LINKFLOW_CODEC_TOKENS_FILE": "/nonexistent/codec.tokens"},
    ],
)
def test_bad_access_settings_are_refused_without_echoing_a_token(
    variables: dict[str, str],
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        CodecAccess.from_env(variables)
    assert "short-token" not in str(refused.value)


# ------------------------------------------------------------------ the real process


def api_env(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LINKFLOW_CODEC_", "TEMPORAL_CODEC_"))
    }
    return env | {"PYTHONUNBUFFERED": "1"} | extra


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "--port", str(port), "--log-level", "warning"],
        cwd=PROJECT_ROOT,
        env=api_env(LINKFLOW_CODEC_KEYS=TEST_KEY_RING.newest.entry(), LINKFLOW_CODEC_TOKENS=TOKEN),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_is_open(port):
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            assert time.monotonic() < deadline, "python -m api did not listen"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_the_real_process_decodes_and_masks_over_http(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as client:
        refused = await client.post("/decode", content=body(await sealed(request())))
        response = await client.post(
            "/decode", content=body(await sealed(request())), headers=with_token()
        )
        health = await client.get("/healthz")
    assert refused.status_code == 401
    assert response.status_code == 200
    assert json.loads(read(response)[0].data)["credentials"]["password"] == MASK
    assert health.json() == {"status": "ok"}


def test_the_api_refuses_to_start_without_a_key_in_one_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "api", "--port", str(free_port())],
        cwd=PROJECT_ROOT,
        env=api_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    [line] = run.stderr.strip().splitlines()
    assert "LINKFLOW_CODEC_KEYS" in line
    assert "LINKFLOW_CODEC_KEY_FILE" in line


def test_the_api_refuses_a_malformed_key_without_echoing_it() -> None:
    key_material = base64.b64encode(b"k" * 31).decode()
    run = subprocess.run(
        [sys.executable, "-m", "api", "--port", str(free_port())],
        cwd=PROJECT_ROOT,
        env=api_env(LINKFLOW_CODEC_KEYS=f"k1={key_material}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "31 bytes" in run.stderr
    assert key_material not in run.stderr
    assert "Traceback" not in run.stderr


def temporal_show(address: str, workflow_id: str, env: dict[str, str], *flags: str) -> str:
    run = subprocess.run(
        [temporal_cli(), "workflow", "show", "--address", address, "-w", workflow_id, *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


async def test_temporal_workflow_show_through_the_codec_shows_the_story_and_no_secret(
    dev_env: WorkflowEnvironment, api_url: str
) -> None:
    # No worker: the start and the signal are in history as the client sealed them.
    handle = await dev_env.client.start_workflow(
        "CodecShowProbe",
        request(),
        id=f"codec-show-{uuid.uuid4()}",
        task_queue=f"no-worker-{uuid.uuid4()}",
    )
    await handle.signal("answer_mfa", submission())
    address = dev_env.client.service_client.config.target_host
    without_codec = api_env()
    with_codec = without_codec | {
        "TEMPORAL_CODEC_ENDPOINT": api_url,
        "TEMPORAL_CODEC_AUTH": f"Bearer {TOKEN}",
    }

    sealed_views = [temporal_show(address, handle.id, without_codec, flag) for flag in FLAGS]
    decoded_views = [temporal_show(address, handle.id, with_codec, flag) for flag in FLAGS]

    readable = decoded_views[0]
    assert "input[0].provider: arcadia" in readable
    assert "input[0].user_ref: server-user-4" in readable
    assert "input[0].credentials.username: user_mfa" in readable
    assert f"input[0].credentials.password: {MASK}" in readable
    assert f"input[0].credentials.extra.account: {MASK}" in readable
    assert "input[0].answers[0].challenge_id: CH-1" in readable
    assert f"input[0].answers[0].value: {MASK}" in readable
    assert "server-user-4" not in sealed_views[0]
    for view in sealed_views + decoded_views:
        for secret in (PASSWORD, ANSWER, EXTRA):
            assert secret not in view
            assert not any(form in view for form in base64_forms(secret))


FLAGS = ("--detailed", "--output=json")
