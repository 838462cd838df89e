"""Temporal's remote codec protocol, for the people who read links in Temporal Web and the CLI.

Linkflow's payloads are encrypted at rest (linkflow/codec.py). Temporal Web and
`temporal workflow show --codec-endpoint URL` send them here to read them: `POST .../decode` takes
`{"payloads": [...]}` (the `Payloads` proto in its JSON form), decrypts each payload and masks
every secret in it (linkflow/masking.py) before answering in the same form, so a person sees the
whole story of a link and never a password, an answer or a token. `POST .../encode` encrypts what
Temporal Web sends when a person starts or signals a workflow there. As the protocol asks, only
the last part of the path counts, so `/decode` and `/default/decode` are the same endpoint.

Who may call: a request carrying `Authorization: Bearer <token>` with one of the configured
tokens (`LINKFLOW_CODEC_TOKENS`, comma-separated, or `LINKFLOW_CODEC_TOKENS_FILE`, one a line), or
a browser page from a configured Temporal Web origin (`LINKFLOW_CODEC_CORS_ORIGINS`, default
http://localhost:8233 and http://127.0.0.1:8233; `none` for no browser at all). The origin rule
exists because Temporal Web as the dev server serves it cannot send a token: it sends only
`Content-Type` and `X-Namespace`, and an access token only when it signs users in with OIDC and
the codec endpoint is https. A browser cannot forge its Origin, but any other program can, so an
origin is no proof of identity: keep the codec server on a loopback or private address, or
behind your single sign-on. What the origin rule can reach is masked anyway.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from linkflow.codec import EncryptionCodec
from linkflow.config import ConfigurationError
from linkflow.masking import mask_payload

TOKENS_VARIABLE = "LINKFLOW_CODEC_TOKENS"
TOKENS_FILE_VARIABLE = "LINKFLOW_CODEC_TOKENS_FILE"
ORIGINS_VARIABLE = "LINKFLOW_CODEC_CORS_ORIGINS"
DEFAULT_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")
MIN_TOKEN_LENGTH = 24
MAX_BODY_BYTES = 8 * 1024 * 1024
ALLOWED_REQUEST_HEADERS = "Authorization, Content-Type, X-Namespace"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodecAccess:
    """Who may call the codec server: bearer tokens, and the browser origins of Temporal Web."""

    tokens: tuple[str, ...] = field(default=(), repr=False)
    origins: tuple[str, ...] = DEFAULT_ORIGINS

    def __post_init__(self) -> None:
        for position, token in enumerate(self.tokens, start=1):
            if len(token) < MIN_TOKEN_LENGTH:
                raise ConfigurationError(
                    f"Codec token {position} is shorter than {MIN_TOKEN_LENGTH} characters."
                )
        for origin in self.origins:
            scheme, separator, host = origin.partition("://")
            if scheme not in ("http", "https") or not separator or not host or "/" in host:
                raise ConfigurationError(
                    f"{ORIGINS_VARIABLE} holds {origin!r}, which is not an origin such as"
                    " http://localhost:8233."
                )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CodecAccess:
        environ = os.environ if environ is None else environ
        tokens = _split(environ.get(TOKENS_VARIABLE, ""), ",")
        token_file = environ.get(TOKENS_FILE_VARIABLE, "").strip()
        if token_file:
            tokens += _read_token_file(Path(token_file))
        origins_setting = environ.get(ORIGINS_VARIABLE, "").strip()
        origins: tuple[str, ...]
        if not origins_setting:
            origins = DEFAULT_ORIGINS
        elif origins_setting.lower() == "none":
            origins = ()
        else:
            origins = tuple(origin.rstrip("/") for origin in _split(origins_setting, ","))
        return cls(tokens=tokens, origins=origins)

    def allows_origin(self, origin: str | None) -> bool:
        return origin is not None and origin in self.origins

    def accepts_token(self, authorization: str | None) -> bool:
        if authorization is None:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        offered = token.strip().encode()
        # Compare with every token, always, so the time taken says nothing about which matched.
        matches = [hmac.compare_digest(offered, known.encode()) for known in self.tokens]
        return any(matches)


def _split(text: str, separator: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(separator) if part.strip())


def _read_token_file(path: Path) -> tuple[str, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        raise ConfigurationError(
            f"The codec token file {path} ({TOKENS_FILE_VARIABLE}) cannot be read."
        ) from None
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


class Refusal(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def codec_router(codec: EncryptionCodec, access: CodecAccess) -> APIRouter:
    """`/encode` and `/decode` (at any depth), their CORS preflights, and the access check."""

    def cors_headers(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is None or not access.allows_origin(origin):
            return {}
        # Credentials allowed: Temporal Web's "include cross-origin credentials" setting.
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def check_access(request: Request) -> None:
        if access.allows_origin(request.headers.get("origin")):
            return
        authorization = request.headers.get("authorization")
        if access.accepts_token(authorization):
            return
        if authorization is None and "origin" not in request.headers:
            raise Refusal(
                401,
                "Send `Authorization: Bearer <token>` with a token from LINKFLOW_CODEC_TOKENS.",
                {"WWW-Authenticate": "Bearer"},
            )
        raise Refusal(403, "This token or origin may not use the codec server.")

    async def preflight(request: Request) -> Response:
        if not access.allows_origin(request.headers.get("origin")):
            return _error(403, "This origin may not use the codec server.")
        headers = cors_headers(request) | {
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ALLOWED_REQUEST_HEADERS,
            "Access-Control-Max-Age": "600",
        }
        # Chrome's Private Network Access asks this before a page calls a loopback address.
        if request.headers.get("access-control-request-private-network") == "true":
            headers["Access-Control-Allow-Private-Network"] = "true"
        return Response(status_code=204, headers=headers)

    def payloads_endpoint(
        convert: Callable[[Iterable[Payload]], list[Payload]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            cors = cors_headers(request)
            try:
                check_access(request)
                payloads = await _read_payloads(request)
            except Refusal as refusal:
                return _error(refusal.status, refusal.message, cors | refusal.headers)
            converted = Payloads(payloads=convert(payloads.payloads))
            body = json_format.MessageToJson(converted, always_print_fields_with_no_presence=True)
            return Response(body, media_type="application/json", headers=cors)

        return endpoint

    def decode_for_people(payloads: Iterable[Payload]) -> list[Payload]:
        return [mask_payload(codec.decrypt(payload)) for payload in payloads]

    def encode(payloads: Iterable[Payload]) -> list[Payload]:
        return [codec.encrypt(payload) for payload in payloads]

    router = APIRouter()
    for action, convert in (("decode", decode_for_people), ("encode", encode)):
        for path in (f"/{action}", f"/{{prefix:path}}/{action}"):
            router.add_api_route(path, payloads_endpoint(convert), methods=["POST"])
            router.add_api_route(path, preflight, methods=["OPTIONS"])
    return router


async def _read_payloads(request: Request) -> Payloads:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise Refusal(415, "Send the payloads as application/json.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Refusal(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Refusal(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        return json_format.Parse(bytes(body), Payloads())
    except (json_format.ParseError, ValueError, TypeError, RecursionError):
        raise Refusal(
            400, 'The body is not {"payloads": [...]} in the Payloads proto\'s JSON form.'
        ) from None


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))
