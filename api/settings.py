"""What the HTTP API reads from its environment, checked once at start.

The API is on once API keys are configured (`LINKFLOW_API_KEYS`, comma-separated, or
`LINKFLOW_API_KEYS_FILE`, one a line; several may be active, so a key can be rotated). It then
needs the link-token secrets and the user_ref lookup key too, and refuses to start without them.
With no API key at all, `python -m api` serves only the codec routes, and every `/v1` route answers
503 `api_not_configured`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from api.attempts import DEFAULT_MAX_ATTEMPTS, DEFAULT_WINDOW_SECONDS, AttemptLimits
from api.link_tokens import MIN_SECRET_LENGTH, LinkTokens, is_link_token
from linkflow.config import ConfigurationError
from linkflow.lookup import UserRefLookup, secrets_from_env

API_KEYS_VARIABLE = "LINKFLOW_API_KEYS"
API_KEYS_FILE_VARIABLE = "LINKFLOW_API_KEYS_FILE"
TOKEN_SECRETS_VARIABLE = "LINKFLOW_LINK_TOKEN_SECRETS"
TOKEN_SECRETS_FILE_VARIABLE = "LINKFLOW_LINK_TOKEN_SECRETS_FILE"
TOKEN_TTL_VARIABLE = "LINKFLOW_LINK_TOKEN_TTL_SECONDS"
MAX_ATTEMPTS_VARIABLE = "LINKFLOW_LINK_TOKEN_MAX_ATTEMPTS"
ATTEMPT_WINDOW_VARIABLE = "LINKFLOW_LINK_TOKEN_ATTEMPT_WINDOW_SECONDS"
PUBLIC_URL_VARIABLE = "LINKFLOW_PUBLIC_URL"
WAIT_VARIABLE = "LINKFLOW_API_WAIT_SECONDS"
EVENTS_STREAM_VARIABLE = "LINKFLOW_EVENTS_STREAM_SECONDS"
MIN_API_KEY_LENGTH = 24
DEFAULT_PUBLIC_URL = "http://localhost:8098"
DEFAULT_TOKEN_TTL_SECONDS = 30 * 60
DEFAULT_WAIT_SECONDS = 50.0
DEFAULT_EVENTS_STREAM_SECONDS = 300.0


@dataclass(frozen=True)
class ApiSettings:
    api_keys: tuple[str, ...] = field(repr=False)
    link_tokens: LinkTokens
    lookup: UserRefLookup
    public_url: str = DEFAULT_PUBLIC_URL
    attempt_limits: AttemptLimits = field(default_factory=AttemptLimits)
    # How long a call waits for the link (its first challenge, an answer's outcome) before it
    # answers 504 and leaves the link to go on.
    wait_seconds: float = DEFAULT_WAIT_SECONDS
    # How long one event stream stays open before the client reconnects.
    events_stream_seconds: float = DEFAULT_EVENTS_STREAM_SECONDS

    def __post_init__(self) -> None:
        if not self.api_keys:
            raise ConfigurationError("The API needs at least one API key.")
        for position, key in enumerate(self.api_keys, start=1):
            if len(key) < MIN_API_KEY_LENGTH:
                raise ConfigurationError(
                    f"API key {position} is shorter than {MIN_API_KEY_LENGTH} characters."
                )
            if is_link_token(key):
                raise ConfigurationError(f"API key {position} starts like a link token (lt1.).")
        object.__setattr__(self, "public_url", _checked_public_url(self.public_url))

    @property
    def connect_page_url(self) -> str:
        return f"{self.public_url}/connect"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings | None:
        """The configured API, or None when no API key is set (the codec routes alone)."""
        environ = os.environ if environ is None else environ
        api_keys = secrets_from_env(
            environ,
            API_KEYS_VARIABLE,
            API_KEYS_FILE_VARIABLE,
            what="API key",
            min_length=MIN_API_KEY_LENGTH,
        )
        if not api_keys:
            return None
        token_secrets = secrets_from_env(
            environ,
            TOKEN_SECRETS_VARIABLE,
            TOKEN_SECRETS_FILE_VARIABLE,
            what="link token secret",
            min_length=MIN_SECRET_LENGTH,
        )
        if not token_secrets:
            raise ConfigurationError(
                f"API keys are set but no link token secret: set {TOKEN_SECRETS_VARIABLE}"
                f" (comma-separated, newest first, {MIN_SECRET_LENGTH}+ characters each) or"
                f" {TOKEN_SECRETS_FILE_VARIABLE}."
            )
        lookup = UserRefLookup.from_env(environ)
        if lookup is None:
            raise ConfigurationError(
                "API keys are set but no lookup key: set LINKFLOW_LOOKUP_KEY or"
                " LINKFLOW_LOOKUP_KEY_FILE (32+ characters), the key of the user_ref hash that"
                " links are listed by."
            )
        ttl = _number(environ, TOKEN_TTL_VARIABLE, DEFAULT_TOKEN_TTL_SECONDS, 60, 24 * 3600)
        return cls(
            api_keys=api_keys,
            link_tokens=LinkTokens(token_secrets, ttl=timedelta(seconds=ttl)),
            lookup=lookup,
            public_url=environ.get(PUBLIC_URL_VARIABLE, "").strip() or DEFAULT_PUBLIC_URL,
            attempt_limits=AttemptLimits(
                max_attempts=int(
                    _number(environ, MAX_ATTEMPTS_VARIABLE, DEFAULT_MAX_ATTEMPTS, 1, 10_000)
                ),
                window_seconds=_number(
                    environ, ATTEMPT_WINDOW_VARIABLE, DEFAULT_WINDOW_SECONDS, 1, 86_400
                ),
            ),
            wait_seconds=_number(environ, WAIT_VARIABLE, DEFAULT_WAIT_SECONDS, 1, 600),
            events_stream_seconds=_number(
                environ, EVENTS_STREAM_VARIABLE, DEFAULT_EVENTS_STREAM_SECONDS, 1, 3600
            ),
        )


def _number(
    environ: Mapping[str, str], variable: str, default: float, low: float, high: float
) -> float:
    text = environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{variable} must be a number.") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{variable} must be between {low:g} and {high:g}.")
    return value


def _checked_public_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(
            f"{PUBLIC_URL_VARIABLE} must be the API's public http(s) address, such as"
            " https://link.example.com, with no query or fragment."
        )
    return url.strip().rstrip("/")
