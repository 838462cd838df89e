"""Where linkflow's processes find Temporal and the providers.

Every setting comes from an environment variable with a default that works on a laptop running the
dev stack, so `python worker.py` needs no flags locally and a deployment sets only what differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

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
class MxSettings:
    base_url: str
    client_id: str = field(repr=False)
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class ProviderSettings:
    """Provider endpoints and API keys. By default every provider is the local sandbox."""

    sandbox_url: str
    mx: MxSettings

    @classmethod
    def from_env(cls) -> ProviderSettings:
        sandbox_url = _env("LINKFLOW_SANDBOX_URL", DEFAULT_SANDBOX_URL).rstrip("/")
        return cls(
            sandbox_url=sandbox_url,
            mx=MxSettings(
                base_url=_env("LINKFLOW_MX_BASE_URL", f"{sandbox_url}/mx"),
                client_id=_env("LINKFLOW_MX_CLIENT_ID", "sandbox-client-id"),
                api_key=_env("LINKFLOW_MX_API_KEY", "sandbox-api-key"),
            ),
        )
