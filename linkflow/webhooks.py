"""Signing and verifying linkflow's webhook events, for the sender and for receivers alike.

Each delivery carries `Linkflow-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`: one `v1` per
active signing secret, each an HMAC-SHA256, keyed with that secret, over `<t>.` followed by the
exact body bytes. Signing the timestamp with the body lets a receiver refuse both forged and
replayed deliveries: it recomputes the HMAC over the raw body it received, compares in constant
time, and refuses a timestamp older than its tolerance (five minutes by default). Several `v1`s let
secrets rotate: while the old and the new secret are both active, a receiver holding either one
verifies. Receivers in Python can call `verify_signature` directly.

The worker's secrets come from `WebhookSigning.from_env()`; there is no built-in default.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from linkflow.config import ConfigurationError

SIGNATURE_HEADER = "Linkflow-Signature"
EVENT_ID_HEADER = "Linkflow-Event-Id"
DEFAULT_TOLERANCE_SECONDS = 300

SECRETS_VARIABLE = "LINKFLOW_WEBHOOK_SECRETS"
SECRETS_FILE_VARIABLE = "LINKFLOW_WEBHOOK_SECRETS_FILE"
LEGACY_SECRET_VARIABLE = "LINKFLOW_WEBHOOK_SECRET"
MINIMUM_SECRET_LENGTH = 32
MAXIMUM_ACTIVE_SECRETS = 8

# Bounds on what a receiver parses, so any header costs little to refuse.
MAXIMUM_HEADER_LENGTH = 4096
MAXIMUM_SIGNATURES = 16
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class InvalidSignature(ValueError):
    """The delivery is not from linkflow, was altered, or is too old."""


@dataclass(frozen=True)
class WebhookSigning:
    """The active signing secrets, newest first; every delivery is signed with each of them."""

    secrets: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        _check_secrets(self.secrets, "the webhook signing settings")

    @classmethod
    def from_env(cls) -> WebhookSigning:
        """Read `LINKFLOW_WEBHOOK_SECRETS`, else `..._SECRETS_FILE`, else `LINKFLOW_WEBHOOK_SECRET`.

        Raises `ConfigurationError` when none is set or a secret is too short.
        """
        listed = os.environ.get(SECRETS_VARIABLE, "").strip()
        path = os.environ.get(SECRETS_FILE_VARIABLE, "").strip()
        legacy = os.environ.get(LEGACY_SECRET_VARIABLE, "").strip()
        if listed:
            source, secrets = SECRETS_VARIABLE, _comma_separated(listed)
        elif path:
            source, secrets = SECRETS_FILE_VARIABLE, _secrets_file(path)
        elif legacy:
            source, secrets = LEGACY_SECRET_VARIABLE, (legacy,)
        else:
            raise ConfigurationError(
                f"No webhook signing secret is configured: set {SECRETS_VARIABLE} (comma-separated,"
                f" newest first), {SECRETS_FILE_VARIABLE} (a file with one secret per line, newest"
                f" first) or {LEGACY_SECRET_VARIABLE}; each secret needs at least"
                f" {MINIMUM_SECRET_LENGTH} characters."
            )
        _check_secrets(secrets, source)
        return cls(secrets)

    def header(self, body: bytes, *, timestamp: int | None = None) -> str:
        return signature_header(self.secrets, body, timestamp=timestamp)


def _comma_separated(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _secrets_file(path: str) -> tuple[str, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as error:
        raise ConfigurationError(
            f"{SECRETS_FILE_VARIABLE} names {path!r}, which cannot be read"
            f" ({type(error).__name__})."
        ) from None
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def _check_secrets(secrets: Sequence[str], source: str) -> None:
    if not secrets:
        raise ConfigurationError(f"{source} holds no webhook signing secret.")
    if len(secrets) > MAXIMUM_ACTIVE_SECRETS:
        raise ConfigurationError(
            f"{source} holds {len(secrets)} webhook signing secrets; at most"
            f" {MAXIMUM_ACTIVE_SECRETS} may be active at once."
        )
    for position, secret in enumerate(secrets, start=1):
        if len(secret) < MINIMUM_SECRET_LENGTH:
            raise ConfigurationError(
                f"Webhook signing secret number {position} in {source} is shorter than"
                f" {MINIMUM_SECRET_LENGTH} characters; use a long random value, such as the"
                " output of `python -c 'import secrets; print(secrets.token_hex(32))'`."
            )


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` keyed with `secret`."""
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(
    secrets: str | Sequence[str], body: bytes, *, timestamp: int | None = None
) -> str:
    """The `Linkflow-Signature` value for `body`, signed now unless `timestamp` is given."""
    moment = int(time.time()) if timestamp is None else timestamp
    signatures = ",".join(f"v1={signature(secret, moment, body)}" for secret in _listed(secrets))
    return f"t={moment},{signatures}"


def verify_signature(
    secrets: str | Sequence[str],
    header: str | None,
    body: bytes,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise `InvalidSignature` unless `header` signs `body` with one of `secrets`, recently enough.

    Any header at all, however malformed, is refused with `InvalidSignature` and nothing else.
    """
    keys = _listed(secrets)
    timestamp, given = _parse_header(header)
    current = time.time() if now is None else now
    # Written so that a NaN clock or tolerance refuses rather than accepts.
    if not math.isfinite(current) or not abs(current - timestamp) <= tolerance_seconds:
        raise InvalidSignature("The delivery's timestamp is outside the tolerance.")
    matched = False
    for key in keys:
        expected = signature(key, timestamp, body)
        for candidate in given:
            matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise InvalidSignature("The signature does not match the body.")


def _listed(secrets: str | Sequence[str]) -> tuple[str, ...]:
    listed = (secrets,) if isinstance(secrets, str) else tuple(secrets)
    if not listed:
        raise ValueError("At least one webhook signing secret is needed.")
    return listed


def _parse_header(header: object) -> tuple[int, list[str]]:
    """The timestamp and the well-formed `v1` signatures; `InvalidSignature` for anything else."""
    if not header or not isinstance(header, str):
        raise InvalidSignature(f"The {SIGNATURE_HEADER} header is missing.")
    malformed = InvalidSignature(f"The {SIGNATURE_HEADER} header is malformed.")
    if len(header) > MAXIMUM_HEADER_LENGTH:
        raise malformed
    timestamps: list[str] = []
    given: list[str] = []
    for part in header.split(","):
        name, has_value, value = part.partition("=")
        if not has_value:
            continue
        name, value = name.strip(), value.strip()
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            given.append(value.lower())
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise malformed
    if not given or len(given) > MAXIMUM_SIGNATURES:
        raise malformed
    if not all(_HEX_DIGEST.fullmatch(candidate) for candidate in given):
        raise malformed
    return int(timestamps[0]), given
