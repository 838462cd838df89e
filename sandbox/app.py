"""The sandbox's ASGI app: each provider's contract mounted under its own path prefix.

Each provider lives in its own module (`sandbox/mx.py`, `sandbox/arcadia.py`, ...)
whose state object builds a Starlette `Mount`; adding a provider is one more entry in
`SANDBOX_MODULES`. The state objects stay reachable as `app.state.providers` so that in-process
tests can look inside (for instance at the Idempotency-Keys a provider has seen).
"""

from __future__ import annotations

import importlib
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route


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


def provider_sandboxes(latency_seconds: float) -> dict[str, ProviderSandbox]:
    """Every provider the sandbox serves, by name; each module has `create_sandbox`."""
    return {
        name: importlib.import_module(module).create_sandbox(latency_seconds)
        for name, module in SANDBOX_MODULES.items()
    }


def create_app(latency_seconds: float = 0.3) -> Starlette:
    providers = provider_sandboxes(latency_seconds)
    routes: list[BaseRoute] = [Route("/health", health, methods=["GET"])]
    routes += [provider.mount() for provider in providers.values()]
    app = Starlette(routes=routes)
    app.state.providers = providers
    return app
