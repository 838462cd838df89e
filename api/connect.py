"""The connect page: where the end user logs in at the provider and answers its questions.

The app's backend asks the API for a link session and sends its user to the `connect_url` it gets
back, `/connect#token=...`. This router serves that page and its two assets: plain HTML, CSS and
a small script from `api/static/`, no build step, no third-party asset, so the page works offline
and loads nothing the API does not serve. The script reads the token from the URL fragment, which
browsers never send to a server, and talks to the API's `/v1/...` routes with it in an
`Authorization` header.

The token is opaque to the page, so `GET /connect/session` tells the page what its session is
for (the link, the provider, new link or update mode, the actions allowed, the expiry), and
nothing the app put in it about its user.

Every response forbids what the page does not need: no framing, no inline or foreign script, no
referrer, no caching of a page that a token opens.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from api.auth import AnyCaller
from api.errors import ApiError
from api.link_tokens import LinkAction, SessionMode
from linkflow.models import Provider

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page's own files, by the name it asks for them under and their media type.
ASSETS = {
    "connect.css": "text/css; charset=utf-8",
    "connect.js": "text/javascript; charset=utf-8",
}

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # Challenge pictures arrive inside the snapshot as data: URIs.
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class PageSession(BaseModel):
    """What a link token lets the page do, without what the app said about its user."""

    link_id: str
    provider: Provider
    mode: SessionMode
    actions: list[LinkAction]
    expires_at: datetime


def connect_router(static_dir: Path = STATIC_DIR) -> APIRouter:
    """`GET /connect` (the page), its assets, and `GET /connect/session` (the page's session)."""
    page = (static_dir / "connect.html").read_bytes()
    assets = {name: (static_dir / name).read_bytes() for name in ASSETS}
    router = APIRouter(include_in_schema=False)

    @router.get("/connect")
    async def connect_page() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    def asset_endpoint(name: str) -> None:
        body, media_type = assets[name], ASSETS[name]

        async def asset() -> Response:
            return Response(body, media_type=media_type, headers=SECURITY_HEADERS)

        router.add_api_route(f"/connect/{name}", asset, methods=["GET"])

    for name in ASSETS:
        asset_endpoint(name)

    @router.get("/connect/session")
    async def page_session(caller: AnyCaller) -> Response:
        session = caller.session
        if session is None:
            raise ApiError(
                403,
                "link_token_required",
                "This page cannot do that.",
                "GET /connect/session describes a link token's session; an API key has none.",
                "send the link token from POST /v1/link-sessions",
            )
        described = PageSession(
            link_id=session.link_id,
            provider=session.provider,
            mode=session.mode,
            actions=session.actions,
            expires_at=session.expires_at,
        )
        return Response(
            described.model_dump_json(),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    return router
