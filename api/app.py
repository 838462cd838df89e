"""The one FastAPI application linkflow serves: `python -m api` runs it, tests mount it in-process.

It refuses to exist without the payload codec's keys: a codec server without them could only
answer every request with ciphertext.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.codec_server import CodecAccess, codec_router
from linkflow.codec import EncryptionCodec, KeyRing, require_key_ring


def create_app(key_ring: KeyRing | None = None, access: CodecAccess | None = None) -> FastAPI:
    """The app with the codec routes at `/encode` and `/decode` (and `/<namespace>/...`)."""
    key_ring = key_ring or require_key_ring()
    access = access or CodecAccess.from_env()
    app = FastAPI(title="linkflow", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(codec_router(EncryptionCodec(key_ring), access))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
