"""Where linkflow's processes find Temporal and the providers.

Every setting comes from an environment variable with a default that works on a laptop running the
dev stack, so `python worker.py` needs no flags locally and a deployment sets only what differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from linkflow.models import Provider

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8099"


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the message names the variables to set, never a value."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _optional_env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _optional_flag(name: str) -> bool | None:
    value = _optional_env(name)
    if value is None:
        return None
    if value.lower() in _TRUE_WORDS:
        return True
    if value.lower() in _FALSE_WORDS:
        return False
    raise ConfigurationError(f"{name} must be true or false.")


@dataclass(frozen=True)
class TemporalSettings:
    """Where the Temporal service is and how to reach it securely.

    The variable names are the ones the `temporal` CLI and the SDKs' environment configuration
    read, so one set of exports serves linkflow and `temporal workflow show` alike. An API key
    (Temporal Cloud) turns TLS on; so does any certificate or server name.
    """

    address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "linkflow"
    api_key: str | None = field(default=None, repr=False)
    # TEMPORAL_TLS as set; None when unset, and then `uses_tls` infers it from the rest.
    tls: bool | None = None
    tls_server_ca_cert_path: str | None = None
    tls_client_cert_path: str | None = None
    tls_client_key_path: str | None = None
    tls_server_name: str | None = None

    def __post_init__(self) -> None:
        _check_address(self.address)
        if (self.tls_client_cert_path is None) != (self.tls_client_key_path is None):
            raise ConfigurationError(
                "mTLS needs both TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH."
            )
        if self.tls is False and self._has_tls_options:
            raise ConfigurationError(
                "TEMPORAL_TLS is false but TLS certificates or a server name are set: unset"
                " TEMPORAL_TLS or the TEMPORAL_TLS_* variables."
            )

    @property
    def _has_tls_options(self) -> bool:
        return any(
            value is not None
            for value in (
                self.tls_server_ca_cert_path,
                self.tls_client_cert_path,
                self.tls_client_key_path,
                self.tls_server_name,
            )
        )

    @property
    def uses_tls(self) -> bool:
        if self.tls is not None:
            return self.tls
        return self.api_key is not None or self._has_tls_options

    @classmethod
    def from_env(cls) -> TemporalSettings:
        return cls(
            address=_env("TEMPORAL_ADDRESS", cls.address),
            namespace=_env("TEMPORAL_NAMESPACE", cls.namespace),
            task_queue=_env("LINKFLOW_TASK_QUEUE", cls.task_queue),
            api_key=_optional_env("TEMPORAL_API_KEY"),
            tls=_optional_flag("TEMPORAL_TLS"),
            tls_server_ca_cert_path=_optional_env("TEMPORAL_TLS_SERVER_CA_CERT_PATH"),
            tls_client_cert_path=_optional_env("TEMPORAL_TLS_CLIENT_CERT_PATH"),
            tls_client_key_path=_optional_env("TEMPORAL_TLS_CLIENT_KEY_PATH"),
            tls_server_name=_optional_env("TEMPORAL_TLS_SERVER_NAME"),
        )


def _check_address(address: str) -> None:
    """`host:port` as gRPC dials it (`[::1]:7233` for an IPv6 literal); a port is required, or
    the client would quietly dial port 80."""
    refused = ConfigurationError(
        "TEMPORAL_ADDRESS must be host:port with a port from 1 to 65535, like localhost:7233."
    )
    if not address or any(character.isspace() for character in address):
        raise refused
    try:
        parts = urlsplit(f"//{address}")
        port = parts.port
    except ValueError:
        raise refused from None
    if not parts.hostname or port is None or not 0 < port < 65536 or parts.path or parts.query:
        raise refused


@dataclass(frozen=True)
class ProviderEndpoint:
    """Where one provider's API is, and the keys linkflow's account there uses."""

    base_url: str
    keys: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class ProviderSettings:
    """Provider endpoints and API keys. By default every provider is the local sandbox.

    Provider P reads `LINKFLOW_P_BASE_URL` (default: the sandbox's `/p`) and one variable per key
    its adapter names, `LINKFLOW_P_KEYNAME` (default: the sandbox's test key).
    """

    sandbox_url: str

    @classmethod
    def from_env(cls) -> ProviderSettings:
        return cls(sandbox_url=_env("LINKFLOW_SANDBOX_URL", DEFAULT_SANDBOX_URL).rstrip("/"))

    def endpoint(self, provider: Provider, key_defaults: dict[str, str]) -> ProviderEndpoint:
        prefix = f"LINKFLOW_{provider.value.upper()}_"
        return ProviderEndpoint(
            base_url=_env(f"{prefix}BASE_URL", f"{self.sandbox_url}/{provider.value}"),
            keys={
                name: _env(f"{prefix}{name.upper()}", value) for name, value in key_defaults.items()
            },
        )
