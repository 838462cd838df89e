"""Temporal connections from configuration alone: TLS, mTLS, an API key, and never without a key."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import TLSConfig
from temporalio.testing import WorkflowEnvironment

from linkflow.config import ConfigurationError, TemporalSettings
from linkflow.devstack import PROJECT_ROOT
from linkflow.temporal import connect, tls_config
from tests.conftest import TEST_KEY_RING

API_KEY = "cloud-api-key-4b1d9e"
TLS_VARIABLES = (
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_SERVER_NAME",
)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in TLS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_tls_settings_the_connection_is_plain(environment: pytest.MonkeyPatch) -> None:
    settings = TemporalSettings.from_env()
    assert settings.uses_tls is False
    assert tls_config(settings) is False


def test_an_api_key_turns_tls_on_and_never_shows(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("TEMPORAL_API_KEY", API_KEY)
    environment.setenv("TEMPORAL_ADDRESS", "ns.acct.tmprl.cloud:7233")
    settings = TemporalSettings.from_env()
    assert settings.api_key == API_KEY
    assert tls_config(settings) is True
    assert API_KEY not in repr(settings)
    assert API_KEY not in str(settings)


def test_tls_can_be_turned_off_explicitly(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("TEMPORAL_API_KEY", API_KEY)
    environment.setenv("TEMPORAL_TLS", "false")
    assert tls_config(TemporalSettings.from_env()) is False


def test_mtls_reads_the_certificate_files(environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = {}
    for name in ("ca.pem", "client.pem", "client.key"):
        files[name] = tmp_path / name
        files[name].write_bytes(f"-----BEGIN {name}-----\n".encode())
    environment.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(files["ca.pem"]))
    environment.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(files["client.pem"]))
    environment.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(files["client.key"]))
    environment.setenv("TEMPORAL_TLS_SERVER_NAME", "temporal.internal")

    config = tls_config(TemporalSettings.from_env())

    assert isinstance(config, TLSConfig)
    assert config.server_root_ca_cert == b"-----BEGIN ca.pem-----\n"
    assert config.client_cert == b"-----BEGIN client.pem-----\n"
    assert config.client_private_key == b"-----BEGIN client.key-----\n"
    assert config.domain == "temporal.internal"


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        ({"TEMPORAL_TLS": "maybe"}, "TEMPORAL_TLS must be true or false"),
        ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "/c.pem"}, "needs both"),
        ({"TEMPORAL_TLS_CLIENT_KEY_PATH": "/c.key"}, "needs both"),
        ({"TEMPORAL_TLS": "off", "TEMPORAL_TLS_SERVER_NAME": "x"}, "TEMPORAL_TLS is false"),
    ],
)
def test_contradictory_tls_settings_are_refused_with_a_sentence(
    environment: pytest.MonkeyPatch, variables: dict[str, str], says: str
) -> None:
    for name, value in variables.items():
        environment.setenv(name, value)
    with pytest.raises(ConfigurationError, match=says):
        TemporalSettings.from_env()


def test_a_missing_certificate_file_names_its_variable(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environment.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(tmp_path / "absent.pem"))
    with pytest.raises(ConfigurationError, match="TEMPORAL_TLS_SERVER_CA_CERT_PATH"):
        tls_config(TemporalSettings.from_env())


async def test_an_api_key_reaches_the_server_without_breaking_the_connection(
    dev_env: WorkflowEnvironment,
) -> None:
    address = dev_env.client.service_client.config.target_host
    settings = TemporalSettings(address=address, api_key=API_KEY, tls=False)
    client = await connect(settings, key_ring=TEST_KEY_RING)
    assert await client.service_client.check_health()
    assert client.data_converter.payload_codec is not None


async def test_asking_for_tls_from_a_plain_server_fails_instead_of_falling_back(
    dev_env: WorkflowEnvironment,
) -> None:
    address = dev_env.client.service_client.config.target_host
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await connect(TemporalSettings(address=address, tls=True), key_ring=TEST_KEY_RING)


@pytest.mark.parametrize(
    "address",
    ["not an address", "localhost", "localhost:abc", "localhost:99999", "host:0", ":7233"],
)
def test_a_malformed_address_is_refused_naming_its_variable(address: str) -> None:
    with pytest.raises(ConfigurationError, match="TEMPORAL_ADDRESS must be host:port"):
        TemporalSettings(address=address)


@pytest.mark.parametrize("address", ["localhost:7233", "[::1]:7233", "temporal.example:443"])
def test_a_well_formed_address_is_taken(address: str) -> None:
    assert TemporalSettings(address=address).address == address


async def test_a_namespace_the_server_does_not_have_is_refused_naming_its_variable(
    dev_env: WorkflowEnvironment,
) -> None:
    address = dev_env.client.service_client.config.target_host
    settings = TemporalSettings(address=address, namespace="no-such-namespace")
    with pytest.raises(ConfigurationError, match="no namespace 'no-such-namespace'"):
        await connect(settings, key_ring=TEST_KEY_RING)


def test_the_worker_refuses_a_missing_namespace_in_one_line(dev_env: WorkflowEnvironment) -> None:
    env = {
        **{
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("TEMPORAL", "LINKFLOW"))
        },
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "no-such-namespace",
        "LINKFLOW_CODEC_KEYS": "k1=" + base64.b64encode(b"k" * 32).decode(),
        "LINKFLOW_WEBHOOK_SECRETS": "s" * 40,
    }
    run = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    [line] = [line for line in run.stderr.splitlines() if "could not run" in line]
    assert "no namespace 'no-such-namespace' (TEMPORAL_NAMESPACE)" in line
