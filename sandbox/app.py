"""The sandbox's ASGI app: each provider's contract mounted under its own path prefix.

Each provider lives in its own module (`sandbox/mx.py`, `sandbox/arcadia.py`, ...)
whose state object builds a Starlette `Mount`; adding a provider is one more entry in
`SANDBOX_MODULES`. The state objects stay reachable as `app.state.providers` so that in-process
tests can look inside (for instance at the Idempotency-Keys a provider has seen).

Around the providers sit the two pieces a chaos test needs: each provider's mount is wrapped in
its own `IdempotentReplay` (`app.state.replays`), and the whole app in a `FaultInjector`
(`app.state.faults`). Both are steered and read through the control plane under `/_sandbox`:

| request | answer |
|---|---|
| `GET /_sandbox/faults` | the `FaultPlan` in force |
| `PUT /_sandbox/faults` | replaces the plan (400 for a body that is not JSON, 422 for a bad plan) |
| `DELETE /_sandbox/faults` | no faults from now on |
| `GET /_sandbox/stats` | injected faults by kind, provider requests, replay counters per provider |
| `POST /_sandbox/stats/reset` | zeroes those counters, forgets the request lines (keeps replays) |
| `GET /_sandbox/requests` | each provider request line received (`METHOD /path?query`) |

Providers whose MFA requests expire (Arcadia's and MX's) take their window from
`mfa_window_seconds` (`python -m sandbox --arcadia-mfa-window-seconds`, ...), so a test can watch
a provider stop waiting within seconds.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from sandbox.faults import FaultInjector, FaultPlan, Faults
from sandbox.idempotency import IdempotentReplay
from sandbox.request_log import RequestLog, RequestRecorder

CONTROL_PREFIX = "/_sandbox"


class ProviderSandbox(Protocol):
    """One provider's in-memory API."""

    def mount(self) -> Mount: ...


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


SANDBOX_MODULES = {
    "mx": "sandbox.mx",
    "synapse": "sandbox.synapse",
    "arcadia": "sandbox.arcadia",
    "teal": "sandbox.teal",
    "unbill": "sandbox.unbill",
}


# The providers whose MFA requests expire in the sandbox; `create_sandbox` takes their window.
MFA_WINDOW_PROVIDERS = frozenset({"arcadia", "mx"})


def provider_sandboxes(
    latency_seconds: float, mfa_window_seconds: Mapping[str, float | None] | None = None
) -> dict[str, ProviderSandbox]:
    """Every provider the sandbox serves, by name; each module has `create_sandbox`.

    `mfa_window_seconds` overrides a provider's MFA window (None: it never expires); a provider
    left out keeps its module's default.
    """
    windows = dict(mfa_window_seconds or {})
    if unknown := set(windows) - MFA_WINDOW_PROVIDERS:
        raise ValueError(f"No MFA window to set for {', '.join(sorted(unknown))}.")
    sandboxes: dict[str, ProviderSandbox] = {}
    for name, module in SANDBOX_MODULES.items():
        create = importlib.import_module(module).create_sandbox
        if name in windows:
            sandboxes[name] = create(latency_seconds, mfa_window_seconds=windows[name])
        else:
            sandboxes[name] = create(latency_seconds)
    return sandboxes


def _duplicate_requests(provider: ProviderSandbox) -> int:
    """The provider module's own count of repeated keys (only a key that slipped past replay)."""
    count = getattr(provider, "duplicate_requests", 0)
    return count if isinstance(count, int) else 0


@dataclass
class ControlPlane:
    """`/_sandbox`: the fault plan's routes and the counters a chaos test checks."""

    faults: Faults
    providers: dict[str, ProviderSandbox]
    replays: dict[str, IdempotentReplay]
    request_log: RequestLog = field(default_factory=RequestLog)
    # Provider modules' `duplicate_requests` at the last reset; stats report the growth since.
    duplicate_baseline: dict[str, int] = field(default_factory=dict)

    def mount(self) -> Mount:
        routes: list[BaseRoute] = [
            *self.faults.routes(),
            *self.request_log.routes(),
            Route("/stats", self.get_stats, methods=["GET"]),
            Route("/stats/reset", self.reset_stats, methods=["POST"]),
        ]
        return Mount(CONTROL_PREFIX, routes=routes)

    def stats(self) -> dict[str, Any]:
        providers = {
            name: self.replays[name].stats.as_dict()
            | {
                "duplicate_requests": _duplicate_requests(provider)
                - self.duplicate_baseline.get(name, 0)
            }
            for name, provider in self.providers.items()
        }
        return {
            "faults": dict(self.faults.counts),
            "requests": self.faults.requests,
            "duplicate_requests": sum(p["duplicate_requests"] for p in providers.values()),
            "providers": providers,
        }

    async def get_stats(self, request: Request) -> JSONResponse:
        return JSONResponse(self.stats())

    async def reset_stats(self, request: Request) -> JSONResponse:
        self.faults.reset_counts()
        self.request_log.clear()
        for name, provider in self.providers.items():
            self.replays[name].stats.reset()
            self.duplicate_baseline[name] = _duplicate_requests(provider)
        return JSONResponse(self.stats())


def create_app(
    latency_seconds: float = 0.3,
    fault_plan: FaultPlan | None = None,
    *,
    mfa_window_seconds: Mapping[str, float | None] | None = None,
) -> Starlette:
    providers = provider_sandboxes(latency_seconds, mfa_window_seconds)
    replays: dict[str, IdempotentReplay] = {}
    mounts: list[Mount] = []
    for name, provider in providers.items():
        mount = provider.mount()
        replays[name] = IdempotentReplay(mount.app)
        mounts.append(Mount(mount.path, app=replays[name], name=mount.name))
    faults = Faults(fault_plan)
    control = ControlPlane(faults, providers, replays)
    routes: list[BaseRoute] = [Route("/health", health, methods=["GET"]), control.mount(), *mounts]
    prefixes = [mount.path for mount in mounts]
    app = Starlette(
        routes=routes,
        middleware=[
            # Outermost: a request the fault injector answers still reached the provider's URL.
            Middleware(RequestRecorder, log=control.request_log, prefixes=prefixes),
            Middleware(FaultInjector, faults=faults, prefixes=prefixes),
        ],
    )
    app.state.providers = providers
    app.state.replays = replays
    app.state.faults = faults
    app.state.control = control
    return app
