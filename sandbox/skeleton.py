"""The thin frame every provider's sandbox module is built on; the rest is each provider's own.

Five provider modules repeat the same scaffolding around very different contracts. What they
share lives here: the refusal a handler raises (`Refused`), the JSON body reader, the credential
readers for Basic and Bearer auth, the idempotency ledger (which object each key was first sent
for, and how many requests repeated one), and `ProviderSandbox`, a base that mounts a provider's
route table under its prefix with the provider's auth check in front of every route and its
error shape behind every refusal.

What stays in each provider module is what makes it that provider: its objects and how they
move (its state machine), its checks on every request, the shape of its error bodies, its paging
and its test hooks.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from sandbox.users import SLOW_JOB_SECONDS

Handler = Callable[[Request], Awaitable[Response]]
# One route of a provider's table: its path, its method and its handler.
RouteSpec = tuple[str, str, Handler]

IDEMPOTENCY_KEY_HEADER = "idempotency-key"


class Refused(Exception):
    """A request the provider refuses: its HTTP status, its message and, if it has one, its code.

    Each provider module turns it into its own error body (`ProviderSandbox.error_response`).
    """

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


async def json_object(request: Request, code: str | None = None) -> dict[str, Any]:
    """The request's body, which must be a JSON object; else 400 with the provider's `code`."""
    try:
        body = await request.json()
    except ValueError as invalid:
        raise Refused(400, "The body must be a JSON object.", code) from invalid
    if not isinstance(body, dict):
        raise Refused(400, "The body must be a JSON object.", code)
    return body


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """The `Authorization: Basic` user and password, if the request has readable ones."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def bearer_token(request: Request) -> str | None:
    """The `Authorization: Bearer` token, if the request has a non-blank one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token.strip() else None


def object_id() -> str:
    """A 24-hex-digit id, the shape of the (MongoDB) ids Synapse and Unbill hand out."""
    return secrets.token_hex(12)


def idempotency_key(request: Request, headers: Iterable[str] = (IDEMPOTENCY_KEY_HEADER,)) -> str:
    """The request's idempotency key, from the first of `headers` it carries ("" if none)."""
    return next((request.headers[name] for name in headers if request.headers.get(name)), "")


@dataclass
class IdempotencyLedger:
    """The Idempotency-Keys a provider module has seen.

    Real providers answer a repeated key with the first answer (`sandbox/idempotency.py` does
    that in front of every module), so a key repeated here is a retry that slipped past: it is
    counted in `duplicate_requests`. `first_object` names the object each key was first sent
    for; `uses` counts, per object, the requests that carried each key.
    """

    first_object: dict[str, str] = field(default_factory=dict)
    uses: dict[str, dict[str, int]] = field(default_factory=dict)
    duplicate_requests: int = 0

    def record(self, key: str, object_id: str) -> None:
        if not key:
            return
        if key in self.first_object:
            self.duplicate_requests += 1
        self.first_object.setdefault(key, object_id)
        counts = self.uses.setdefault(object_id, {})
        counts[key] = counts.get(key, 0) + 1

    def keys_of(self, object_id: str) -> dict[str, int]:
        """Each key sent for `object_id`, with how many requests carried it."""
        return dict(self.uses.get(object_id, {}))


@dataclass
class ProviderSandbox(ABC):
    """One provider's in-memory API: its state, its routes, its checks and its error shape."""

    PREFIX: ClassVar[str]
    # Each test user's story in this provider's words: the shared users of sandbox/users.py,
    # then the provider's own. The README's table of test users is generated from these.
    TEST_USERS: ClassVar[Mapping[str, str]]

    latency_seconds: float = 0.3
    clock: Callable[[], float] = time.monotonic
    ledger: IdempotencyLedger = field(default_factory=IdempotencyLedger)

    @property
    def duplicate_requests(self) -> int:
        return self.ledger.duplicate_requests

    def job_seconds(self, slow: bool = False) -> float:
        """How long a provider job takes: the latency, and more for `user_slow`'s."""
        return self.latency_seconds + (SLOW_JOB_SECONDS if slow else 0.0)

    def mount(self) -> Mount:
        return Mount(self.PREFIX, routes=self.routes())

    def routes(self) -> list[Route]:
        return [
            *(Route(path, self._answered(h), methods=[m]) for path, m, h in self.open_routes()),
            *(Route(path, self._guarded(h), methods=[m]) for path, m, h in self.route_table()),
        ]

    @abstractmethod
    def route_table(self) -> Sequence[RouteSpec]:
        """The provider's API: every route behind its checks on every request."""

    def open_routes(self) -> Sequence[RouteSpec]:
        """Routes outside those checks (an OAuth token endpoint, a test-only hook)."""
        return ()

    @abstractmethod
    def check(self, request: Request) -> None:
        """The provider's checks on every request of its API; raises `Refused`."""

    @abstractmethod
    def error_response(self, refused: Refused) -> Response:
        """A refusal in the provider's own error shape."""

    def _answered(self, handler: Handler) -> Handler:
        async def answered(request: Request) -> Response:
            try:
                return await handler(request)
            except Refused as refused:
                return self.error_response(refused)

        return answered

    def _guarded(self, handler: Handler) -> Handler:
        async def checked(request: Request) -> Response:
            self.check(request)
            return await handler(request)

        return self._answered(checked)
