"""Serving the app with uvicorn so that its logs hold no secret and no personal data.

uvicorn's access log writes each request line, query string included, and `GET /v1/links?user_ref=`
carries the app's reference for a person. `QueryStringRedactor` drops the query from every access
line. Headers (where API keys and link tokens travel) are never logged by uvicorn, link tokens
travel in URLs only in the page's fragment, which browsers never send, and Idempotency-Keys are
read only to derive ids.
"""

from __future__ import annotations

import logging

import uvicorn
from starlette.types import ASGIApp

ACCESS_LOGGER = "uvicorn.access"


class QueryStringRedactor(logging.Filter):
    """Keeps uvicorn's access line, minus the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, separator, _ = args[2].partition("?")
            record.args = (args[0], args[1], path + ("?…" if separator else ""), args[3], args[4])
        return True


def server_config(app: ASGIApp, *, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    """uvicorn's config for the app, with the access log redacted (configured, not yet served)."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level)
    # uvicorn sets its loggers up when the config is made; the filter goes on after that.
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, QueryStringRedactor) for existing in access.filters):
        access.addFilter(QueryStringRedactor())
    return config
