"""Where a webhook may be delivered: the rule that keeps deliveries out of internal networks.

A webhook URL comes from whoever starts a link, so without a rule it would make the worker POST to,
and report on, anything the worker can reach: the cloud metadata service, an admin port on
localhost, a database's HTTP interface on the private network. `check_webhook_url` refuses such
URLs by their text (at link start and again at delivery); `resolve_checked_addresses` refuses a
host name any of whose DNS addresses is not public, and the delivery connects only to an address it
returned, so a DNS answer that changes between the check and the connection cannot aim it inward.

`LINKFLOW_WEBHOOK_ALLOWED_HOSTS` (host names, IP addresses or CIDR blocks, comma-separated) names
receivers that may be local, and plain http, for development and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

from linkflow.config import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

ALLOWED_HOSTS_VARIABLE = "LINKFLOW_WEBHOOK_ALLOWED_HOSTS"
ALLOW_HTTP_VARIABLE = "LINKFLOW_WEBHOOK_ALLOW_HTTP_FOR_ALLOWED"

# Names that only ever mean "this machine", "this network" or a cloud's metadata service. Any name
# without a dot is refused as well: resolvers complete it with the local search domains.
LOCAL_HOST_NAMES = frozenset(
    {
        "localhost.localdomain",
        "metadata.google.internal",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)
LOCAL_NAME_SUFFIXES = (
    ".localhost",
    ".local",
    ".localdomain",
    ".internal",
    ".intranet",
    ".lan",
    ".home",
    ".corp",
    ".private",
    ".arpa",
)

# Blocks the `ipaddress` flags miss: shared address space (CGNAT, where Alibaba's metadata service
# lives), the IETF protocol block, benchmarking, and 6to4 relays.
NOT_PUBLIC_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("192.88.99.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("fec0::/10"),
)
NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")

_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}\Z)({_LABEL}\.)*{_LABEL}")
_DECIMAL = re.compile(r"[0-9]+")
_OCTAL = re.compile(r"0[0-7]*")
_HEXADECIMAL = re.compile(r"0[xX][0-9a-fA-F]*")


class WebhookUrlRefused(ValueError):
    """Webhooks may not be delivered to this URL; the message says why without quoting the URL."""


@dataclass(frozen=True)
class WebhookPolicy:
    """Which receivers are exempt from the public-address rule, and whether they may use http."""

    allowed_hosts: frozenset[str] = frozenset()
    allow_http_for_allowed: bool = True
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in self.allowed_hosts:
            text = entry.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
            address = literal_address(text)
            if address is not None:
                networks.append(ipaddress.ip_network(address))
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.fullmatch(text):
                raise ConfigurationError(
                    f"{ALLOWED_HOSTS_VARIABLE} holds {entry[:80]!r}, which is neither a host name,"
                    " an IP address nor a CIDR block."
                )
            names.add(text)
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_networks", tuple(networks))

    @classmethod
    def allowing(cls, *hosts: str) -> WebhookPolicy:
        """A policy that lets these hosts receive webhooks, local and over http included."""
        return cls(allowed_hosts=frozenset(hosts))

    @classmethod
    def from_env(cls) -> WebhookPolicy:
        entries = os.environ.get(ALLOWED_HOSTS_VARIABLE, "").split(",")
        allow_http = os.environ.get(ALLOW_HTTP_VARIABLE, "true").strip().lower()
        if allow_http not in {"true", "false", "1", "0", "yes", "no"}:
            raise ConfigurationError(f"{ALLOW_HTTP_VARIABLE} must be true or false.")
        return cls(
            allowed_hosts=frozenset(entry.strip() for entry in entries if entry.strip()),
            allow_http_for_allowed=allow_http in {"true", "1", "yes"},
        )

    def allows_name(self, host: str) -> bool:
        return _normal_name(host) in self._names

    def allows_address(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(candidate in network for candidate in candidates for network in self._networks)


def check_webhook_url(url: str, policy: WebhookPolicy) -> None:
    """Raise `WebhookUrlRefused` unless webhooks may be sent to `url`, judged by its text alone."""
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii").lower()
    except (httpx.InvalidURL, TypeError, ValueError):
        raise WebhookUrlRefused("The webhook URL is not a valid URL.") from None
    if parsed.scheme not in {"https", "http"}:
        raise WebhookUrlRefused("The webhook URL must use https.")
    if parsed.userinfo:
        raise WebhookUrlRefused("The webhook URL must not carry a user name or password.")
    if not host:
        raise WebhookUrlRefused("The webhook URL has no host.")
    if "%" in host:
        raise WebhookUrlRefused("The webhook URL's host must not name a network interface.")
    address = literal_address(host)
    if address is None and _looks_numeric(host):
        raise WebhookUrlRefused("The webhook URL's host is not a valid IP address.")
    allowed = policy.allows_address(address) if address is not None else policy.allows_name(host)
    if parsed.scheme == "http" and not (allowed and policy.allow_http_for_allowed):
        raise WebhookUrlRefused("The webhook URL must use https.")
    if allowed:
        return
    if address is not None:
        reason = address_refusal(address)
        if reason:
            raise WebhookUrlRefused(f"The webhook URL's host is {reason}.")
    elif is_local_name(host):
        raise WebhookUrlRefused(
            "The webhook URL's host is a local name or a metadata service, which webhooks may"
            " not reach."
        )


async def resolve_addresses(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _unique(ipaddress.ip_address(str(info[4][0])) for info in infos)


async def resolve_checked_addresses(
    host: str, port: int, policy: WebhookPolicy, *, resolve: Resolver | None = None
) -> list[IPAddress]:
    """The addresses to deliver to; refused when any of them is not public (or allowlisted).

    Raises `WebhookUrlRefused`, or `OSError` (`socket.gaierror`) when the name does not resolve.
    """
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        addresses = await (resolve or resolve_addresses)(host, port)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "The host name resolves to no address.")
    if literal is None and policy.allows_name(host):
        return addresses
    for address in addresses:
        if policy.allows_address(address):
            continue
        reason = address_refusal(address)
        if reason:
            raise WebhookUrlRefused(f"The webhook URL's host resolves to {reason}.")
    return addresses


def address_refusal(address: IPAddress) -> str | None:
    """Why webhooks may not reach `address`, as the end of a sentence; None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_refusal(embedded)
    kind = _address_kind(address)
    if kind is None:
        return None
    return f"{kind} address, which webhooks may not reach"


def _address_kind(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "an unspecified"
    if address.is_loopback:
        return "a loopback"
    if address.is_link_local:
        return "a link-local (metadata service)"
    if address.is_multicast:
        return "a multicast"
    if address in ipaddress.ip_network("100.64.0.0/10"):
        return "a shared (carrier-grade NAT)"
    if address.is_private or any(address in network for network in NOT_PUBLIC_NETWORKS):
        return "a private"
    if address.is_reserved or not address.is_global:
        return "a reserved"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64, compatible), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_NETWORK:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def literal_address(host: str) -> IPAddress | None:
    """The IP address `host` spells, in any spelling a resolver accepts; None for a name.

    IPv4 is read the way `inet_aton` and browsers read it: `2130706433`, `0x7f.1`, `0177.0.0.1`,
    `127.1` and `0` are all addresses.
    """
    text = host.strip().removeprefix("[").removesuffix("]")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    return _ipv4_in_any_spelling(text)


def _ipv4_in_any_spelling(text: str) -> ipaddress.IPv4Address | None:
    parts = text.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    *leading, last = [number for number in numbers if number is not None]
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for position, number in enumerate(leading):
        value += number << (8 * (3 - position))
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str) -> int | None:
    if _HEXADECIMAL.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part):
        return int(part, 10)
    return None


def _looks_numeric(host: str) -> bool:
    """Whether a resolver would read `host` as an address: its last label is a number."""
    labels = host.rstrip(".").split(".")
    return _ipv4_number(labels[-1]) is not None


def is_local_name(host: str) -> bool:
    """Whether `host` names this machine, its network or a cloud metadata service."""
    name = _normal_name(host)
    return "." not in name or name in LOCAL_HOST_NAMES or name.endswith(LOCAL_NAME_SUFFIXES)


def _normal_name(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _unique(addresses: Iterable[IPAddress]) -> list[IPAddress]:
    seen: dict[IPAddress, None] = {}
    for address in addresses:
        seen.setdefault(address, None)
    return list(seen)
