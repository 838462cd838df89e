"""Signing and verifying linkflow's webhook events, for the sender and for receivers alike.

Each delivery carries `Linkflow-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
HMAC-SHA256, keyed with the shared secret, over `<t>.` followed by the exact body bytes. Signing
the timestamp with the body lets a receiver refuse both forged and replayed deliveries: it
recomputes the HMAC over the raw body it received, compares in constant time, and refuses a
timestamp older than its tolerance (five minutes by default). Receivers in Python can call
`verify_signature` directly.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Linkflow-Signature"
EVENT_ID_HEADER = "Linkflow-Event-Id"
DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(ValueError):
    """The delivery is not from linkflow, was altered, or is too old."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The `Linkflow-Signature` value for `body`, signed now unless `timestamp` is given."""
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={signature(secret, moment, body)}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise `InvalidSignature` unless `header` signs `body` with `secret`, recently enough."""
    if not header:
        raise InvalidSignature(f"The {SIGNATURE_HEADER} header is missing.")
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError) as error:
        raise InvalidSignature(f"The {SIGNATURE_HEADER} header is malformed.") from error
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise InvalidSignature("The delivery's timestamp is outside the tolerance.")
    if not hmac.compare_digest(given, signature(secret, timestamp, body)):
        raise InvalidSignature("The signature does not match the body.")
