"""A bound on what one API request may send, checked before any of it is parsed.

Every body the API takes (a login, an answer, a session request) is a few hundred bytes; the
models bound each field. This middleware refuses a body over `MAX_BODY_BYTES` for the `/v1` routes
with a 413 in the API's error shape, whether it declares its length or streams it in chunks, so a
caller cannot make the API buffer megabytes to find out they are invalid. The codec routes keep
their own, larger bound (they carry whole histories).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response

MAX_BODY_BYTES = 64 * 1024
LIMITED_PREFIX = "/v1"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(LIMITED_PREFIX):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        # Read the body whole (it is small or refused), then hand it on as one message.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(message), send)
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay_body(bytes(body), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "body_too_large",
            "The request is too large.",
            f"Request bodies are at most {self.max_bytes} bytes.",
            "send a smaller body",
        )
        await response(scope, receive, send)


def _replay(message: Message) -> Receive:
    async def receive() -> Message:
        return message

    return receive


def _replay_body(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, the server's own messages (a disconnect) pass through.
        return await receive()

    return replay
