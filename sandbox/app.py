"""The sandbox's ASGI app: each provider's contract mounted under its own path prefix.

Each provider lives in its own module (`sandbox/mx.py`, later Synapse, Arcadia, Teal, Unbill)
whose state object builds a Starlette `Mount`; adding a provider is one more entry in
`provider_sandboxes`. The state objects stay reachable as `app.state.providers` so that in-process
tests can look inside (for instance at the Idempotency-Keys a provider has seen).
"""

from __future__ import annotations

from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from sandbox.mx import MxSandbox


class ProviderSandbox(Protocol):
    """One provider's in-memory API."""

    def mount(self) -> Mount: ...


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def provider_sandboxes(latency_seconds: float) -> dict[str, ProviderSandbox]:
    """Every provider the sandbox serves, by name."""
    return {"mx": MxSandbox(latency_seconds=latency_seconds)}


def create_app(latency_seconds: float = 0.3) -> Starlette:
    providers = provider_sandboxes(latency_seconds)
    routes: list[BaseRoute] = [Route("/health", health, methods=["GET"])]
    routes += [provider.mount() for provider in providers.values()]
    app = Starlette(routes=routes)
    app.state.providers = providers
    return app
