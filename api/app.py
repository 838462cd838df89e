"""The one FastAPI application linkflow serves: `python -m api` runs it, tests mount it in-process.

It holds the HTTP API (`/v1`, with its OpenAPI document at `/openapi.json` and docs at `/docs`,
whose Swagger UI files come from the `fastapi-offline` package, not a CDN, so the docs work on a
machine without internet) and the codec server for Temporal Web and the CLI (`/encode`,
`/decode`, behind their own access check, left out of the API's document). It refuses to exist
without the payload codec's keys: it could neither seal what it starts nor read what it shows.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.attempts import AttemptLimiter
from api.backend import Connector, LinkBackend
from api.body_limit import BodyLimit
from api.codec_server import CodecAccess, codec_router
from api.connect import connect_router
from api.context import ApiContext
from api.errors import LastResort, install_error_handlers
from api.routes import router as v1_router
from api.schemas import Health
from api.settings import ApiSettings
from linkflow.client import LinkClient
from linkflow.codec import EncryptionCodec, KeyRing, require_key_ring
from linkflow.config import TemporalSettings
from linkflow.telemetry import instrument_api
from linkflow.temporal import connect
from linkflow.webhook_policy import WebhookPolicy

DESCRIPTION = """\
Start and manage account links from any backend, and let the end user answer the provider's
questions in linkflow's page.

**Auth.** The app's backend sends `Authorization: Bearer <API key>`. The end user's page sends
`Authorization: Bearer <link token>` (from `POST /v1/link-sessions`), which acts only on its
session's link and only as the session allows.

**Errors.** Every refusal is `{"error": {"code", "message", "detail", "action"}}`: a machine
code, a sentence for the end user, one for the developer, and the call that mends it.

**Idempotency.** An `Idempotency-Key` header on a POST (or DELETE) makes a retried request
return the first result; the link never acts twice on it.
"""

DOCS_ASSETS = "/docs/assets"


def create_app(
    key_ring: KeyRing | None = None,
    access: CodecAccess | None = None,
    *,
    api_settings: ApiSettings | None = None,
    links: LinkClient | None = None,
) -> FastAPI:
    """The app. Without `api_settings` the API reads its environment (no API keys: codec only);
    `links` is a ready client (tests); otherwise the API connects to Temporal on first use."""
    key_ring = key_ring or require_key_ring()
    access = access or CodecAccess.from_env()
    settings = api_settings or ApiSettings.from_env()
    webhook_policy = WebhookPolicy.from_env()
    app = FastAPIOffline(
        title="linkflow",
        version="1",
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        static_url=DOCS_ASSETS,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(LastResort)
    app.include_router(codec_router(EncryptionCodec(key_ring), access), include_in_schema=False)
    app.include_router(v1_router)
    app.include_router(connect_router())
    # Each request a server span, parent of the Temporal calls it makes (linkflow.telemetry).
    instrument_api(app)

    @app.get("/healthz", tags=["health"], operation_id="health")
    async def healthz() -> Health:
        return Health(status="ok")

    app.state.linkflow_api = None
    if settings is not None:
        if links is not None:
            backend = LinkBackend.of(links, wait_seconds=settings.wait_seconds)
        else:
            backend = LinkBackend(
                _connector(key_ring, settings, webhook_policy), wait_seconds=settings.wait_seconds
            )
        app.state.linkflow_api = ApiContext(
            settings=settings,
            backend=backend,
            attempts=AttemptLimiter(settings.attempt_limits),
            webhook_policy=webhook_policy,
        )
    return app


def _connector(key_ring: KeyRing, settings: ApiSettings, policy: WebhookPolicy) -> Connector:
    # Read now, so that a malformed Temporal setting stops the API from starting, saying why,
    # rather than failing every request.
    temporal = TemporalSettings.from_env()

    async def connect_links() -> LinkClient:
        client = await connect(temporal, key_ring=key_ring)
        return LinkClient(client, temporal.task_queue, policy, user_refs=settings.lookup)

    return connect_links
