"""Where linkflow's processes find Temporal and the providers.

Every setting comes from an environment variable with a default that works on a laptop running the
dev stack, so `python worker.py` needs no flags locally and a deployment sets only what differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from linkflow.models import Provider

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8099"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class TemporalSettings:
    address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "linkflow"

    @classmethod
    def from_env(cls) -> TemporalSettings:
        return cls(
            address=_env("TEMPORAL_ADDRESS", cls.address),
            namespace=_env("TEMPORAL_NAMESPACE", cls.namespace),
            task_queue=_env("LINKFLOW_TASK_QUEUE", cls.task_queue),
        )


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


# The signing secret the local stack uses when none is set; a deployment must set its own.
DEV_WEBHOOK_SECRET = "linkflow-dev-webhook-secret"


@dataclass(frozen=True)
class WebhookSettings:
    """The secret webhook events are signed with (`LINKFLOW_WEBHOOK_SECRET`)."""

    secret: str = field(default=DEV_WEBHOOK_SECRET, repr=False)

    @classmethod
    def from_env(cls) -> WebhookSettings:
        return cls(secret=_env("LINKFLOW_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET))
