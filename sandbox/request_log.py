"""The request lines the sandbox's providers received, as an access log would show them.

A URL's path and query string are what access logs keep, so a test proves that no personal data
reaches a provider's URL by reading these lines back (`GET /_sandbox/requests`) after a login.
`RequestLog` records every request under the provider prefixes as `METHOD target`, the target as
the client sent it (percent-encoded path, then `?` and the query string), oldest first, keeping the
newest `MAX_LINES`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_LINES = 10_000


class RequestLog:
    """The recorded request lines and the `/requests` route that reads them."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self.lines: deque[str] = deque(maxlen=max_lines)

    def record(self, scope: Scope) -> None:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        target = raw_path.decode("latin-1")
        if query := scope.get("query_string", b""):
            target += "?" + query.decode("latin-1")
        self.lines.append(f"{scope['method']} {target}")

    def clear(self) -> None:
        self.lines.clear()

    def routes(self) -> list[Route]:
        """`/requests` for the `/_sandbox` mount: the recorded lines, oldest first."""
        return [Route("/requests", self._get_lines, methods=["GET"])]

    async def _get_lines(self, request: Request) -> JSONResponse:
        return JSONResponse({"requests": list(self.lines)})


class RequestRecorder:
    """ASGI middleware: record each request under the provider prefixes, then pass it on."""

    def __init__(self, app: ASGIApp, log: RequestLog, prefixes: Iterable[str]) -> None:
        self.app = app
        self.log = log
        self.prefixes = tuple(prefix.rstrip("/") for prefix in prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(
            scope["path"] == prefix or scope["path"].startswith(f"{prefix}/")
            for prefix in self.prefixes
        ):
            self.log.record(scope)
        await self.app(scope, receive, send)
