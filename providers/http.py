"""HTTP plumbing every adapter shares: one client shape and one reading of HTTP failures.

Clients never retry by themselves (Temporal owns retries), always have timeouts, and turn a
provider's HTTP failure into `ProviderUnavailable` (worth retrying, honouring `Retry-After`) or
`ProviderRejectedRequest` (our request is wrong; retrying cannot help).

Those errors' messages end up in Temporal history, so they say only the HTTP status, the method,
the path (which holds provider ids only, see `providers/privacy.py`) and at most the provider's
structured error code: never the body's free text, which may echo a username or carry a token.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport

from providers.errors import ProviderRejectedRequest, ProviderUnavailable
from providers.privacy import UNREADABLE_WORD, provider_word

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)
TRANSIENT_STATUS_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})


def make_client(
    base_url: str,
    *,
    headers: dict[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """A provider's client; `transport` replaces the network only (a test's in-process app).

    Each request is a client span of the current trace and carries it on in `traceparent`
    (OpenTelemetry's httpx transport; it records the method, the URL and the status, never a
    header or a body, see `linkflow.telemetry`).
    """
    # `retries=0` is httpx's default; it is spelled out because Temporal must be the only retrier.
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        auth=auth,
        timeout=timeout,
        transport=AsyncOpenTelemetryTransport(transport or httpx.AsyncHTTPTransport(retries=0)),
    )


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Read `Retry-After` as seconds, whether it is given in seconds or as an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def idempotency_header(key: str | None, name: str = "Idempotency-Key") -> dict[str, str]:
    """The header that lets a provider recognise a retried create or answer, when a key is given."""
    return {name: key} if key else {}


def read_json(response: httpx.Response, provider: str) -> Any:
    """A successful response's JSON; a body that is not JSON is the provider's passing trouble.

    Decimals are read as `Decimal`, keeping amounts exactly as the provider wrote them.
    """
    request = response.request
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError as error:
        raise ProviderUnavailable(
            f"{provider} answered {request.method} {request.url.path} with invalid JSON."
        ) from error


def read_object(response: httpx.Response, provider: str) -> dict[str, Any]:
    """`read_json` for the many routes whose answer must be one JSON object."""
    data = read_json(response, provider)
    if not isinstance(data, dict):
        request = response.request
        raise ProviderUnavailable(
            f"{provider} answered {request.method} {request.url.path} with no JSON object."
        )
    return data


def error_code(response: httpx.Response, *field: str) -> str | None:
    """The structured error code at `field` (a path of keys) of an error body, if it has one.

    Only a word is returned (`providers.privacy.provider_word`); a body that is not JSON, a
    missing field or a sentence in its place give None.
    """
    if not field:
        return None
    try:
        value: Any = response.json()
    except ValueError:
        return None
    for name in field:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    word = provider_word(value)
    return None if word == UNREADABLE_WORD else word


def raise_for_provider_status(
    response: httpx.Response, provider: str, *, code_field: tuple[str, ...] = ()
) -> None:
    """Raise the typed error an unsuccessful provider response means; return on success.

    `code_field` names where the provider puts its structured error code (`("error", "code")`
    for `{"error": {"code": ...}}`); the code, and nothing else of the body, joins the message.
    """
    if response.is_success:
        return
    request = response.request
    what = f"{provider} answered HTTP {response.status_code} to {request.method} {request.url.path}"
    if response.status_code in TRANSIENT_STATUS_CODES:
        raise ProviderUnavailable(f"{what}.", retry_after_seconds(response))
    code = error_code(response, *code_field)
    message = f"{what} (error code {code})." if code else f"{what}."
    raise ProviderRejectedRequest(message, response.status_code, error_code=code)
