"""What every API route works with: its settings, its way to Temporal, its attempt counter and
the webhook rule.

`create_app` puts one `ApiContext` on the app; a process started without API keys has none, and
every `/v1` route then answers 503 `api_not_configured` instead of failing in some other way.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from api.attempts import AttemptLimiter
from api.backend import LinkBackend
from api.errors import ApiError
from api.settings import API_KEYS_FILE_VARIABLE, API_KEYS_VARIABLE, ApiSettings
from linkflow.webhook_policy import WebhookPolicy


@dataclass(frozen=True)
class ApiContext:
    settings: ApiSettings
    backend: LinkBackend
    attempts: AttemptLimiter
    # The rule the link client applies at start, applied here too so a session is refused early.
    webhook_policy: WebhookPolicy


def api_context(request: Request) -> ApiContext:
    context = getattr(request.app.state, "linkflow_api", None)
    if not isinstance(context, ApiContext):
        raise ApiError(
            503,
            "api_not_configured",
            "The service is not available.",
            f"This linkflow process serves no API: it was started without {API_KEYS_VARIABLE}"
            f" or {API_KEYS_FILE_VARIABLE}.",
            "configure API keys and restart the API",
        )
    return context
