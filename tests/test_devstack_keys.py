"""The dev stack's secrets and codec server: made on first run, private, reused, and wired in."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from linkflow.codec import EncryptionCodec, KeyRing
from linkflow.devstack import DevStack, StackError, StackPorts
from linkflow.masking import MASK
from linkflow.models import Credentials, LinkRequest, Provider


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_run_writes_private_keys_and_later_runs_reuse_them(tmp_path: Path) -> None:
    stack = DevStack(ports=StackPorts.free(), state_dir=tmp_path)
    stack.ensure_keys()
    files = (stack.codec_key_file, stack.webhook_secrets_file, stack.codec_tokens_file)
    first = {path: path.read_text() for path in files}

    assert mode(stack.keys_dir) == 0o700
    assert all(mode(path) == 0o600 for path in files)
    assert len(KeyRing.from_file(stack.codec_key_file).keys) == 1
    [webhook_secret] = stack.webhook_secrets_file.read_text().split()
    assert re.fullmatch(r"[A-Za-z0-9_-]{48}", webhook_secret)

    DevStack(ports=StackPorts.free(), state_dir=tmp_path).ensure_keys()
    assert {path: path.read_text() for path in files} == first


def test_every_process_and_the_caller_are_pointed_at_the_key_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINKFLOW_CODEC_KEYS", "from-the-shell=not-used")
    ports = StackPorts.free()
    stack = DevStack(ports=ports, state_dir=tmp_path)

    client = stack.client_env()
    assert client["LINKFLOW_CODEC_KEY_FILE"] == str(tmp_path / "keys" / "codec.keys")
    assert client["LINKFLOW_WEBHOOK_SECRETS_FILE"] == str(tmp_path / "keys" / "webhook.secrets")
    assert client["LINKFLOW_CODEC_KEYS"] == ""

    children = stack.env()
    assert children["LINKFLOW_CODEC_KEYS"] == ""
    assert children["LINKFLOW_CODEC_TOKENS_FILE"] == str(tmp_path / "keys" / "codec.tokens")
    assert children["LINKFLOW_CODEC_CORS_ORIGINS"].split(",") == [
        f"http://localhost:{ports.ui}",
        f"http://127.0.0.1:{ports.ui}",
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    stack = DevStack(ports=StackPorts.free(), state_dir=tmp_path_factory.mktemp("stack"))
    try:
        stack.start(worker=False)
        yield stack
    finally:
        stack.stop()


async def test_temporal_web_is_pointed_at_the_stacks_codec_server(stack: DevStack) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        settings = (await client.get(f"{stack.ports.ui_url}/api/v1/settings")).json()
    assert settings["Codec"]["Endpoint"] == stack.ports.api_url


async def test_the_stacks_codec_server_decodes_its_payloads_for_the_web_and_the_cli(
    stack: DevStack,
) -> None:
    request = LinkRequest(
        provider=Provider.MX,
        user_ref="stack-user",
        credentials=Credentials(username="user_mfa", password="Stack-pa55-31"),
    )
    plain = pydantic_data_converter.payload_converter.to_payloads([request])
    sealed = await EncryptionCodec(stack.key_ring()).encode(plain)
    content = json_format.MessageToJson(Payloads(payloads=sealed))
    cli = stack.codec_cli_env()
    ui_origin = stack.ports.ui_origins[0]

    async with httpx.AsyncClient(base_url=cli["TEMPORAL_CODEC_ENDPOINT"], timeout=10) as client:
        preflight = await client.options(
            "/decode",
            headers={"Origin": ui_origin, "Access-Control-Request-Method": "POST"},
        )
        from_the_web = await client.post(
            "/decode",
            content=content,
            headers={"Content-Type": "application/json", "Origin": ui_origin},
        )
        from_the_cli = await client.post(
            "/decode",
            content=content,
            headers={
                "Content-Type": "application/json",
                "Authorization": cli["TEMPORAL_CODEC_AUTH"],
            },
        )
        from_nobody = await client.post(
            "/decode", content=content, headers={"Content-Type": "application/json"}
        )

    assert preflight.status_code == 204
    assert from_nobody.status_code == 401
    for response in (from_the_web, from_the_cli):
        assert response.status_code == 200
        [payload] = json_format.Parse(response.text, Payloads()).payloads
        shown = json.loads(payload.data)
        assert shown["user_ref"] == "stack-user"
        assert shown["credentials"]["password"] == MASK


def test_a_second_stack_on_the_same_state_folder_is_refused_before_it_starts_anything(
    tmp_path: Path,
) -> None:
    running = DevStack(ports=StackPorts.free(), state_dir=tmp_path)
    running.hold_state_dir()
    second = DevStack(ports=StackPorts.free(), state_dir=tmp_path)
    with pytest.raises(StackError, match="Another dev stack is running from"):
        second.start()
    assert second.processes == []
    assert not (tmp_path / "logs").exists(), "the second stack touched no log"

    running.stop()
    second.hold_state_dir()  # the folder is free once the first stack stops
    second.stop()
