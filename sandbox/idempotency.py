"""Idempotency-Key replay in front of each provider's sandbox, as real providers do it.

The chaos test must prove that no provider submission runs twice even when a response is lost
and the client retries. Real providers (Stripe-style APIs, MX, Synapse) answer a repeated
`Idempotency-Key` with the first answer; the provider modules only count such repeats. This ASGI
middleware, wrapped around one provider's mounted app, gives the sandbox that behaviour:

- the first write (POST, PUT, PATCH, DELETE) with a key runs; once it completes with a response
  the client would not retry (below 500, and not 408, 425 or 429), that response is stored;
- a later write with the same key (and the same method, path and body) gets the stored response
  back, marked `Idempotent-Replayed: true`, without reaching the provider;
- a duplicate that arrives while the first is still running waits for it, then replays;
- the same key on a different method, path or body is refused with 422, as the IETF
  Idempotency-Key draft advises: the client reused a key, and replaying would answer the wrong
  request.

Synapse's own `X-SP-IDEMPOTENCY-KEY` header counts as a key too. The store lives as long as the
process; nothing expires, which is fine for a sandbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEY_HEADERS = (b"idempotency-key", b"x-sp-idempotency-key")
# Answers the client is told to retry: storing them would replay the failure forever.
NOT_STORED_STATUSES = frozenset({408, 425, 429})
REPLAYED_HEADER = (b"idempotent-replayed", b"true")


@dataclass
class ReplayStats:
    """What one provider's replay middleware has done since the last reset."""

    executed_with_key: int = 0
    replayed: int = 0
    unkeyed_writes: int = 0
    key_conflicts: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def reset(self) -> None:
        self.executed_with_key = self.replayed = self.unkeyed_writes = self.key_conflicts = 0


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class KeyEntry:
    """One key's first request, its lock (held while a request with it runs) and its answer."""

    method: str
    path: str
    body_digest: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    response: StoredResponse | None = None


class IdempotentReplay:
    """ASGI middleware: run each keyed write once, replay its response to repeats."""

    def __init__(self, app: ASGIApp, key_headers: Iterable[bytes] = KEY_HEADERS) -> None:
        self.app = app
        self.key_headers = tuple(key_headers)
        self.stats = ReplayStats()
        self.entries: dict[str, KeyEntry] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        key = self._key(scope)
        if key is None:
            self.stats.unkeyed_writes += 1
            await self.app(scope, receive, send)
            return
        body, receive = await _read_body(receive)
        method, path = scope["method"], scope["path"]
        digest = hashlib.sha256(body).hexdigest()
        entry = self.entries.setdefault(key, KeyEntry(method, path, digest))
        if (entry.method, entry.path, entry.body_digest) != (method, path, digest):
            self.stats.key_conflicts += 1
            await _send_conflict(send, key, entry, method, path)
            return
        async with entry.lock:
            if entry.response is not None:
                self.stats.replayed += 1
                await _replay(send, entry.response)
                return
            self.stats.executed_with_key += 1
            await self._run_and_store(scope, receive, send, entry)

    def _key(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name in self.key_headers and value:
                return bytes(value).decode("latin-1")
        return None

    async def _run_and_store(
        self, scope: Scope, receive: Receive, send: Send, entry: KeyEntry
    ) -> None:
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                # Stored before it is forwarded: the provider has done the work even if the
                # client is gone by now, and its retry must get this answer.
                if not message.get("more_body", False) and _storable(status):
                    entry.response = StoredResponse(status, headers, bytes(body))
            await send(message)

        await self.app(scope, receive, capture)


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a `receive` that hands it to the app as if unread."""
    body = bytearray()
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] != "http.request":
            # The client left before sending its body: let the app see that, as it would have.
            return bytes(body), _replaying(message, receive)
        body.extend(message.get("body", b""))
        more_body = message.get("more_body", False)
    return bytes(body), _replaying({"type": "http.request", "body": bytes(body)}, receive)


def _replaying(first: Message, receive: Receive) -> Receive:
    pending = [first]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def _storable(status: int) -> bool:
    return 0 < status < 500 and status not in NOT_STORED_STATUSES


async def _replay(send: Send, stored: StoredResponse) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": stored.status,
            "headers": [*stored.headers, REPLAYED_HEADER],
        }
    )
    await send({"type": "http.response.body", "body": stored.body, "more_body": False})


async def _send_conflict(send: Send, key: str, entry: KeyEntry, method: str, path: str) -> None:
    same_request = (entry.method, entry.path) == (method, path)
    message = (
        f"Idempotency-Key {key!r} was first used for {entry.method} {entry.path}"
        + (" with another body" if same_request else "")
        + f"; it cannot be reused for {method} {path}"
        + (" with this body." if same_request else ".")
    )
    body = json.dumps({"error": {"code": "idempotency_key_reused", "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
