"""The sandbox's ASGI app: each provider's contract mounted under its own path prefix.

Each provider lives in its own module (`sandbox/mx.py`, `sandbox/arcadia.py`, ...) whose state
object, a `ProviderSandbox` (`sandbox/skeleton.py`), builds a Starlette `Mount`; adding a provider
is one more entry in `SANDBOXES`, a typed table of each module's `create_sandbox`. The state
objects stay reachable as `app.state.providers` so that in-process tests can look inside (for
instance at the Idempotency-Keys a provider has seen).

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from sandbox import arcadia, mx, synapse, teal, unbill
from sandbox.faults import FaultInjector, FaultPlan, Faults
from sandbox.idempotency import IdempotentReplay
from sandbox.request_log import RequestLog, RequestRecorder
from sandbox.skeleton import ProviderSandbox

CONTROL_PREFIX = "/_sandbox"


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


# Every provider the sandbox serves, by name, with the factory that builds it for a latency.
SANDBOXES: dict[str, Callable[[float], ProviderSandbox]] = {
    "mx": mx.create_sandbox,
    "synapse": synapse.create_sandbox,
    "arcadia": arcadia.create_sandbox,
    "teal": teal.create_sandbox,
    "unbill": unbill.create_sandbox,
}
# The providers whose MFA requests expire in the sandbox; their factory also takes the window.
MFA_WINDOW_SANDBOXES: dict[str, Callable[[float, float | None], ProviderSandbox]] = {
    "arcadia": arcadia.create_sandbox,
    "mx": mx.create_sandbox,
}
MFA_WINDOW_PROVIDERS = frozenset(MFA_WINDOW_SANDBOXES)


def provider_sandboxes(
    latency_seconds: float, mfa_window_seconds: Mapping[str, float | None] | None = None
) -> dict[str, ProviderSandbox]:
    """Every provider the sandbox serves, by name.

    `mfa_window_seconds` overrides a provider's MFA window (None: it never expires); a provider
    left out keeps its module's default.
    """
    windows = dict(mfa_window_seconds or {})
    if unknown := set(windows) - MFA_WINDOW_PROVIDERS:
        raise ValueError(f"No MFA window to set for {', '.join(sorted(unknown))}.")
    return {
        name: MFA_WINDOW_SANDBOXES[name](latency_seconds, windows[name])
        if name in windows
        else create(latency_seconds)
        for name, create in SANDBOXES.items()
    }


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
                "duplicate_requests": provider.duplicate_requests
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
            self.duplicate_baseline[name] = provider.duplicate_requests
        return JSONResponse(self.stats())


def create_app(
    latency_seconds: float = 0.3,
    fault_plan: FaultPlan | None = None,
    *,
    mfa_window_seconds: Mapping[str, float | None] | None = None,
    synapse_oauth_lifetime_seconds: float | None = None,
) -> Starlette:
    providers = provider_sandboxes(latency_seconds, mfa_window_seconds)
    # Synapse's oauth keys last two hours; a test shortens that to watch one expire.
    synapse_sandbox = providers["synapse"]
    if synapse_oauth_lifetime_seconds is not None and isinstance(
        synapse_sandbox, synapse.SynapseSandbox
    ):
        synapse_sandbox.oauth_lifetime_seconds = synapse_oauth_lifetime_seconds
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
