"""The webhook URL policy: internal targets refused by their text and after DNS, the allowlist."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from linkflow.config import ConfigurationError
from linkflow.webhook_policy import (
    WebhookPolicy,
    WebhookUrlRefused,
    check_webhook_url,
    literal_address,
    resolve_checked_addresses,
)

STRICT = WebhookPolicy()

# The ten internal targets of issue 8, and more spellings of the same places.
INTERNAL_TARGETS = [
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "https://127.0.0.1:7233/",
    "https://localhost/hook",
    "https://[::1]/hook",
    "https://10.0.0.5/hook",
    "https://0/hook",
    "https://2130706433/hook",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://metadata/latest",
    "https://instance-data/latest",
    "https://0x7f.1/hook",
    "https://0x7f000001/hook",
    "https://127.1/hook",
    "https://127.0.0.1./hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:a9fe:a9fe]/hook",
    "https://[64:ff9b::a9fe:a9fe]/hook",
    "https://[2002:a9fe:a9fe::]/hook",
    "https://[fe80::1]/hook",
    "https://[fd00:ec2::254]/hook",
    "https://[::]/hook",
    "https://0.0.0.0/hook",
    "https://192.168.1.1/hook",
    "https://172.16.0.1/hook",
    "https://100.100.100.200/hook",
    "https://224.0.0.1/hook",
    "https://240.0.0.1/hook",
    "https://api.localhost/hook",
    "https://printer.local/hook",
    "https://db.corp.internal/hook",
    "https://LOCALHOST./hook",
    "https://1.2.3.4.5/hook",
]


@pytest.mark.parametrize("url", INTERNAL_TARGETS)
def test_an_internal_target_is_refused_in_any_spelling(url: str) -> None:
    with pytest.raises(WebhookUrlRefused):
        check_webhook_url(url, STRICT)


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hooks/linkflow", "https://8.8.8.8/hook", "https://[2606:4700::1]:8443/"],
)
def test_a_public_https_url_is_accepted(url: str) -> None:
    check_webhook_url(url, STRICT)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/hook", "https"),
        ("ftp://example.com/hook", "https"),
        ("https://app:hunter2-password@example.com/hook", "user name or password"),
        ("https://token@example.com/hook", "user name or password"),
        ("not a url at all", "https"),
        ("https:///hook", "valid URL|no host"),
        ("https://[fe80::1%25eth0]/hook", "network interface"),
    ],
)
def test_a_url_that_is_not_plain_https_is_refused_with_a_sentence(url: str, why: str) -> None:
    with pytest.raises(WebhookUrlRefused, match=why) as refused:
        check_webhook_url(url, STRICT)
    assert "hunter2" not in str(refused.value)
    assert "token" not in str(refused.value)


def test_the_refusal_names_the_kind_of_address_without_quoting_the_url() -> None:
    with pytest.raises(WebhookUrlRefused, match="link-local") as refused:
        check_webhook_url("https://169.254.169.254/latest/meta-data/", STRICT)
    assert "169.254" not in str(refused.value)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("10.0.0.5.", "10.0.0.5"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("[::1]", "::1"),
        ("example.com", None),
        ("256.0.0.1", None),
        ("1.2.3.4.5", None),
        ("1_0.0.0.1", None),
    ],
)
def test_ip_addresses_are_read_in_every_spelling_a_resolver_accepts(
    host: str, address: str | None
) -> None:
    expected = None if address is None else ipaddress.ip_address(address)
    assert literal_address(host) == expected


def test_an_allowlisted_receiver_may_be_local_and_plain_http() -> None:
    policy = WebhookPolicy.allowing("127.0.0.1", "localhost", "10.1.0.0/16", "[::1]")
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://2130706433:8080/hook",
        "http://localhost:8080/hook",
        "https://LocalHost./hook",
        "http://10.1.2.3/hook",
        "http://[::1]:9/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ):
        check_webhook_url(url, policy)
    for url in ("http://10.2.0.1/hook", "https://169.254.169.254/", "https://metadata/"):
        with pytest.raises(WebhookUrlRefused):
            check_webhook_url(url, policy)


def test_an_allowlisted_receiver_needs_https_when_http_is_not_allowed() -> None:
    policy = WebhookPolicy(allowed_hosts=frozenset({"127.0.0.1"}), allow_http_for_allowed=False)
    check_webhook_url("https://127.0.0.1:8443/hook", policy)
    with pytest.raises(WebhookUrlRefused, match="https"):
        check_webhook_url("http://127.0.0.1:8080/hook", policy)


def test_the_allowlist_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKFLOW_WEBHOOK_ALLOWED_HOSTS", " 127.0.0.1, localhost ,,10.9.0.0/16")
    policy = WebhookPolicy.from_env()
    check_webhook_url("http://localhost:1/hook", policy)
    check_webhook_url("http://10.9.8.7/hook", policy)
    monkeypatch.delenv("LINKFLOW_WEBHOOK_ALLOWED_HOSTS")
    with pytest.raises(WebhookUrlRefused):
        check_webhook_url("http://localhost:1/hook", WebhookPolicy.from_env())


def test_a_malformed_allowlist_entry_stops_the_process_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LINKFLOW_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1,http://receiver/")
    with pytest.raises(ConfigurationError, match="LINKFLOW_WEBHOOK_ALLOWED_HOSTS"):
        WebhookPolicy.from_env()


# ---------------------------------------------------------------------------- after DNS


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A resolver that answers for the names a test registers and for nothing else."""
    answers: dict[str, list[str]] = {}

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            )
            for address in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


async def test_a_public_looking_name_that_resolves_inward_is_refused(
    dns: dict[str, list[str]],
) -> None:
    dns["hooks.example.com"] = ["127.0.0.1"]
    check_webhook_url("https://hooks.example.com/hook", STRICT)
    with pytest.raises(WebhookUrlRefused, match="resolves to a loopback address"):
        await resolve_checked_addresses("hooks.example.com", 443, STRICT)


async def test_one_internal_address_among_public_ones_is_enough_to_refuse(
    dns: dict[str, list[str]],
) -> None:
    dns["hooks.example.com"] = ["93.184.216.34", "2606:2800:220:1::1", "169.254.169.254"]
    with pytest.raises(WebhookUrlRefused, match="link-local"):
        await resolve_checked_addresses("hooks.example.com", 443, STRICT)


async def test_a_name_resolving_to_public_addresses_gives_each_address_once(
    dns: dict[str, list[str]],
) -> None:
    dns["hooks.example.com"] = ["93.184.216.34", "93.184.216.34", "2606:2800:220:1::1"]
    addresses = await resolve_checked_addresses("hooks.example.com", 443, STRICT)
    assert addresses == [
        ipaddress.ip_address("93.184.216.34"),
        ipaddress.ip_address("2606:2800:220:1::1"),
    ]


async def test_an_allowlisted_name_or_address_may_resolve_inward(
    dns: dict[str, list[str]],
) -> None:
    dns["receiver.test"] = ["127.0.0.1"]
    dns["hooks.example.com"] = ["10.0.0.7"]
    by_name = WebhookPolicy.allowing("receiver.test")
    assert await resolve_checked_addresses("receiver.test", 80, by_name) == [
        ipaddress.ip_address("127.0.0.1")
    ]
    by_network = WebhookPolicy.allowing("10.0.0.0/24")
    assert await resolve_checked_addresses("hooks.example.com", 443, by_network) == [
        ipaddress.ip_address("10.0.0.7")
    ]


async def test_a_name_that_does_not_resolve_raises_a_resolution_error(
    dns: dict[str, list[str]],
) -> None:
    with pytest.raises(socket.gaierror):
        await resolve_checked_addresses("nowhere.example.com", 443, STRICT)


async def test_a_literal_address_is_judged_without_asking_dns(dns: dict[str, list[str]]) -> None:
    with pytest.raises(WebhookUrlRefused, match="loopback"):
        await resolve_checked_addresses("2130706433", 443, STRICT)
    assert await resolve_checked_addresses("8.8.8.8", 443, STRICT) == [
        ipaddress.ip_address("8.8.8.8")
    ]
