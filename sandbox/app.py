"""The sandbox's ASGI app: each provider's contract mounted under its own path prefix."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from sandbox.mx import MxSandbox


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(latency_seconds: float = 0.3) -> Starlette:
    mx = MxSandbox(latency_seconds=latency_seconds)
    return Starlette(
        routes=[
            Route("/health", health),
            Mount("/mx", routes=mx.routes()),
        ]
    )
