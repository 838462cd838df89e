"""Webhook signatures as a receiver checks them, and the delivery activity's error handling."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from linkflow.webhooks import InvalidSignature, signature_header, verify_signature

SECRET = "whsec-test"
BODY = b'{"id":"link-1:1","status":"CONNECTED"}'


def test_a_signed_body_verifies_with_the_documented_recipe() -> None:
    header = signature_header(SECRET, BODY, timestamp=1_700_000_000)
    timestamp, given = (part.split("=", 1)[1] for part in header.split(","))
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + BODY, hashlib.sha256)
    assert given == expected.hexdigest()
    verify_signature(SECRET, header, BODY, now=1_700_000_100)


@pytest.mark.parametrize(
    ("header", "body", "now", "why"),
    [
        (None, BODY, 1_700_000_000, "missing"),
        ("v1=abc", BODY, 1_700_000_000, "malformed"),
        ("t=soon,v1=abc", BODY, 1_700_000_000, "malformed"),
        (
            signature_header(SECRET, BODY, timestamp=1_700_000_000),
            BODY + b" ",
            1_700_000_000,
            "match",
        ),
        (signature_header("other", BODY, timestamp=1_700_000_000), BODY, 1_700_000_000, "match"),
        (signature_header(SECRET, BODY, timestamp=1_700_000_000), BODY, 1_700_000_301, "tolerance"),
    ],
    ids=["missing", "no-timestamp", "bad-timestamp", "altered-body", "wrong-secret", "stale"],
)
def test_forged_altered_or_stale_deliveries_are_refused(
    header: str | None, body: bytes, now: float, why: str
) -> None:
    with pytest.raises(InvalidSignature, match=why):
        verify_signature(SECRET, header, body, now=now)
