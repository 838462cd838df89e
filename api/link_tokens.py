"""Link tokens: what lets an end user's browser act on one link session, and nothing more.

The app's backend asks for a link session with its API key and hands the token to the end user's
browser (in the connect URL's fragment). The token is the session itself, sealed: AES-256-GCM over
the session's claims (its link id, provider, mode, the app's user_ref and link options, the
actions it allows, its expiry), so it is opaque (the user_ref inside is the app's personal data)
and any change to it fails authentication. No server keeps sessions, so any API process with the
secret can serve any session.

The key is derived with HKDF-SHA256 from a secret dedicated to link tokens
(`LINKFLOW_LINK_TOKEN_SECRETS`, or `..._FILE`), not from the payload codec's keys: a codec key must
live as long as any history it sealed, while a token secret can be retired 30 minutes after it
stops issuing; and a leaked token secret lets someone mint sessions but read no history. Secrets
are newest first: the newest seals, every one opens, so a secret rotates with no session lost.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ValidationError

from linkflow.config import ConfigurationError
from linkflow.models import LinkOptions, Provider

TOKEN_PREFIX = "lt1."
MIN_SECRET_LENGTH = 32
MAX_TOKEN_LENGTH = 8192
NONCE_BYTES = 12
HKDF_SALT = b"linkflow"
HKDF_INFO = b"linkflow link token v1"
DEFAULT_TTL = timedelta(minutes=30)


class LinkAction(StrEnum):
    """What a link token may do; each route names the one it needs."""

    START = "start"
    READ = "read"
    MFA = "mfa"
    REAUTHENTICATE = "reauthenticate"
    CREDENTIALS = "credentials"
    RESOLVE_HOLD = "resolve_hold"


class SessionMode(StrEnum):
    CREATE = "create"
    UPDATE = "update"


# A new link's page logs in and answers; an existing link's page takes the user through the
# later-life updates. Neither may unlink: that is the app's decision, made with its API key.
ACTIONS_BY_MODE: dict[SessionMode, frozenset[LinkAction]] = {
    SessionMode.CREATE: frozenset({LinkAction.START, LinkAction.READ, LinkAction.MFA}),
    SessionMode.UPDATE: frozenset(
        {
            LinkAction.READ,
            LinkAction.MFA,
            LinkAction.REAUTHENTICATE,
            LinkAction.CREDENTIALS,
            LinkAction.RESOLVE_HOLD,
        }
    ),
}


class LinkSessionClaims(BaseModel):
    """What a link token carries, sealed."""

    session_id: str
    link_id: str
    provider: Provider
    mode: SessionMode
    user_ref: str
    options: LinkOptions
    actions: list[LinkAction]
    issued_at: datetime
    expires_at: datetime

    def allows(self, action: LinkAction) -> bool:
        return action in self.actions


class LinkTokenRefused(Exception):
    """A token that opens no session; the message says why, never what the token held."""


class LinkTokenInvalid(LinkTokenRefused):
    """Not a link token, tampered with, or sealed with a secret no longer configured."""


class LinkTokenExpired(LinkTokenRefused):
    """An authentic token past its expiry."""


Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class LinkTokens:
    """Seals and opens link tokens with keys derived from the configured secrets."""

    def __init__(
        self, secrets: Sequence[str], *, ttl: timedelta = DEFAULT_TTL, clock: Clock = _now
    ) -> None:
        if not secrets:
            raise ConfigurationError("Link tokens need at least one secret.")
        for position, secret in enumerate(secrets, start=1):
            if len(secret) < MIN_SECRET_LENGTH:
                raise ConfigurationError(
                    f"Link token secret {position} is shorter than {MIN_SECRET_LENGTH} characters."
                )
        if ttl <= timedelta(0):
            raise ConfigurationError("A link token's lifetime must be positive.")
        self._ciphers = [AESGCM(_derive_key(secret)) for secret in secrets]
        self.ttl = ttl
        self._clock = clock

    def __repr__(self) -> str:
        return f"LinkTokens(secrets={len(self._ciphers)}, ttl={self.ttl})"

    def issue(
        self,
        *,
        link_id: str,
        provider: Provider,
        mode: SessionMode,
        user_ref: str,
        options: LinkOptions,
    ) -> tuple[str, LinkSessionClaims]:
        """A new session's token and the claims it carries."""
        issued_at = self._clock()
        claims = LinkSessionClaims(
            session_id=secrets.token_hex(16),
            link_id=link_id,
            provider=provider,
            mode=mode,
            user_ref=user_ref,
            options=options,
            actions=sorted(ACTIONS_BY_MODE[mode]),
            issued_at=issued_at,
            expires_at=issued_at + self.ttl,
        )
        return self.seal(claims), claims

    def seal(self, claims: LinkSessionClaims) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[0].encrypt(nonce, claims.model_dump_json().encode(), HKDF_INFO)
        return TOKEN_PREFIX + _encode(nonce + sealed)

    def open(self, token: str) -> LinkSessionClaims:
        """The session a token carries; `LinkTokenInvalid` or `LinkTokenExpired` otherwise."""
        if not is_link_token(token) or len(token) > MAX_TOKEN_LENGTH:
            raise LinkTokenInvalid("This is not a link token.")
        raw = _decode(token.removeprefix(TOKEN_PREFIX))
        if raw is None or len(raw) <= NONCE_BYTES:
            raise LinkTokenInvalid("This link token is malformed.")
        nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        for cipher in self._ciphers:
            try:
                plain = cipher.decrypt(nonce, sealed, HKDF_INFO)
            except InvalidTag:
                continue
            break
        else:
            raise LinkTokenInvalid("This link token was altered, or was issued with a retired key.")
        try:
            claims = LinkSessionClaims.model_validate_json(plain)
        except ValidationError:
            raise LinkTokenInvalid("This link token holds no session.") from None
        if self._clock() >= claims.expires_at:
            raise LinkTokenExpired("This link token has expired.")
        return claims


def is_link_token(credential: str) -> bool:
    return credential.startswith(TOKEN_PREFIX)


def _derive_key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO).derive(
        secret.encode()
    )


def _decode(text: str) -> bytes | None:
    """Unpadded URL-safe base64, in its one canonical spelling: another spelling of the same bytes
    (a stray character, different unused bits) is a changed token too."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _encode(raw) == text else None


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
