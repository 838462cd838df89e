"""Webhook signatures as a receiver checks them, rotation, and where the worker gets its secrets."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from linkflow.config import ConfigurationError
from linkflow.webhooks import (
    InvalidSignature,
    WebhookSigning,
    signature,
    signature_header,
    verify_signature,
)

SECRET = "whsec-test-0123456789abcdef0123456789"
OLD_SECRET = "whsec-old-abcdefabcdefabcdefabcdefabcd"
BODY = b'{"id":"link-1:1","status":"CONNECTED"}'
SIGNED_AT = 1_700_000_000


def test_a_signed_body_verifies_with_the_documented_recipe() -> None:
    header = signature_header(SECRET, BODY, timestamp=SIGNED_AT)
    timestamp, given_signature = (part.split("=", 1)[1] for part in header.split(","))
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + BODY, hashlib.sha256)
    assert given_signature == expected.hexdigest()
    verify_signature(SECRET, header, BODY, now=SIGNED_AT + 100)


@pytest.mark.parametrize(
    ("header", "body", "now", "why"),
    [
        (None, BODY, SIGNED_AT, "missing"),
        ("", BODY, SIGNED_AT, "missing"),
        ("v1=abc", BODY, SIGNED_AT, "malformed"),
        ("t=soon,v1=abc", BODY, SIGNED_AT, "malformed"),
        (f"t={SIGNED_AT},v1=abc", BODY, SIGNED_AT, "malformed"),
        (f"t={SIGNED_AT},t={SIGNED_AT},v1={'0' * 64}", BODY, SIGNED_AT, "malformed"),
        (f"t={SIGNED_AT}", BODY, SIGNED_AT, "malformed"),
        (f"t=nan,v1={'0' * 64}", BODY, SIGNED_AT, "malformed"),
        (f"t={SIGNED_AT},v1={'é' * 64}", BODY, SIGNED_AT, "malformed"),
        (signature_header(SECRET, BODY, timestamp=SIGNED_AT), BODY + b" ", SIGNED_AT, "match"),
        (signature_header(OLD_SECRET, BODY, timestamp=SIGNED_AT), BODY, SIGNED_AT, "match"),
        (signature_header(SECRET, BODY, timestamp=SIGNED_AT), BODY, SIGNED_AT + 301, "tolerance"),
        (signature_header(SECRET, BODY, timestamp=SIGNED_AT), BODY, float("nan"), "tolerance"),
    ],
    ids=[
        "missing",
        "empty",
        "no-timestamp",
        "bad-timestamp",
        "short-signature",
        "two-timestamps",
        "no-signature",
        "nan-timestamp",
        "non-ascii-signature",
        "altered-body",
        "wrong-secret",
        "stale",
        "nan-clock",
    ],
)
def test_forged_altered_or_stale_deliveries_are_refused(
    header: str | None, body: bytes, now: float, why: str
) -> None:
    with pytest.raises(InvalidSignature, match=why):
        verify_signature(SECRET, header, body, now=now)


def test_during_a_rotation_the_old_and_the_new_secret_both_verify() -> None:
    signing = WebhookSigning((SECRET, OLD_SECRET))
    header = signing.header(BODY, timestamp=SIGNED_AT)
    assert header.count("v1=") == 2
    assert header.startswith(f"t={SIGNED_AT},v1={signature(SECRET, SIGNED_AT, BODY)},")
    verify_signature(SECRET, header, BODY, now=SIGNED_AT)
    verify_signature(OLD_SECRET, header, BODY, now=SIGNED_AT)
    verify_signature([OLD_SECRET, SECRET], header, BODY, now=SIGNED_AT)
    with pytest.raises(InvalidSignature, match="match"):
        verify_signature("a-third-secret-nobody-signed-with-000", header, BODY, now=SIGNED_AT)


def test_a_receiver_holding_both_secrets_accepts_a_sender_that_has_not_rotated_yet() -> None:
    header = signature_header([OLD_SECRET], BODY, timestamp=SIGNED_AT)
    verify_signature([SECRET, OLD_SECRET], header, BODY, now=SIGNED_AT)


# ---------------------------------------------------------------------------- any header at all


@settings(max_examples=500, deadline=None)
@given(header=st.text(max_size=300), body=st.binary(max_size=200))
@example(header="t=1700000000,v1=" + "\u00e9" * 64, body=BODY)
@example(header="t=1700000000," + "v1=" + "0" * 64 + ",v1=" * 40, body=BODY)
@example(header="t=" + "\u0661\u0667" + "\u0660" * 8 + ",v1=" + "0" * 64, body=BODY)
@example(header="t=" + "9" * 5000 + ",v1=" + "0" * 64, body=BODY)
@example(header="t=1e9,v1=" + "0" * 64, body=BODY)
@example(header="t=-1,v1=" + "0" * 64, body=BODY)
@example(header="\x00=\x00,,,===,t==,v1==", body=b"")
def test_any_header_string_is_refused_with_invalid_signature_only(header: str, body: bytes) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature([SECRET, OLD_SECRET], header, body, now=SIGNED_AT)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=500),
    secrets=st.lists(st.text(min_size=32, max_size=64), min_size=1, max_size=4),
    timestamp=st.integers(min_value=0, max_value=10**11),
)
def test_every_active_secret_verifies_what_was_signed(
    body: bytes, secrets: list[str], timestamp: int
) -> None:
    header = signature_header(secrets, body, timestamp=timestamp)
    for secret in secrets:
        verify_signature(secret, header, body, now=timestamp)
    verify_signature(list(reversed(secrets)), header, body, now=timestamp)


@settings(max_examples=500, deadline=None)
@given(
    body=st.binary(max_size=200),
    position=st.integers(min_value=0),
    inserted=st.text(max_size=8),
    removed=st.integers(min_value=0, max_value=8),
)
def test_a_mutated_header_is_either_still_valid_or_refused_with_invalid_signature(
    body: bytes, position: int, inserted: str, removed: int
) -> None:
    header = signature_header([SECRET, OLD_SECRET], body, timestamp=SIGNED_AT)
    cut = position % (len(header) + 1)
    mutated = header[:cut] + inserted + header[cut + removed :]
    try:
        verify_signature(SECRET, mutated, body, now=SIGNED_AT)
    except InvalidSignature:
        return


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200), extra=st.binary(min_size=1, max_size=20))
def test_a_changed_body_never_verifies(body: bytes, extra: bytes) -> None:
    header = signature_header([SECRET, OLD_SECRET], body, timestamp=SIGNED_AT)
    with pytest.raises(InvalidSignature, match="match"):
        verify_signature([SECRET, OLD_SECRET], header, body + extra, now=SIGNED_AT)


# ---------------------------------------------------------------------------- the worker's secrets


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "LINKFLOW_WEBHOOK_SECRETS",
        "LINKFLOW_WEBHOOK_SECRETS_FILE",
        "LINKFLOW_WEBHOOK_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_a_secret_the_worker_refuses_to_start_naming_the_variables(
    clean_env: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        WebhookSigning.from_env()
    for variable in (
        "LINKFLOW_WEBHOOK_SECRETS",
        "LINKFLOW_WEBHOOK_SECRETS_FILE",
        "LINKFLOW_WEBHOOK_SECRET",
    ):
        assert variable in str(refused.value)


def test_a_short_secret_is_refused_without_being_echoed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LINKFLOW_WEBHOOK_SECRETS", f"{SECRET},short-secret-xyz")
    with pytest.raises(ConfigurationError, match="number 2 in LINKFLOW_WEBHOOK_SECRETS") as refused:
        WebhookSigning.from_env()
    assert "short-secret-xyz" not in str(refused.value)
    assert SECRET not in str(refused.value)


def test_the_legacy_single_secret_is_held_to_the_same_length(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LINKFLOW_WEBHOOK_SECRET", "linkflow-dev-webhook-secret")
    with pytest.raises(ConfigurationError, match="LINKFLOW_WEBHOOK_SECRET"):
        WebhookSigning.from_env()
    clean_env.setenv("LINKFLOW_WEBHOOK_SECRET", SECRET)
    assert WebhookSigning.from_env().secrets == (SECRET,)


def test_secrets_are_listed_newest_first_in_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LINKFLOW_WEBHOOK_SECRETS", f" {SECRET} , {OLD_SECRET} ")
    clean_env.setenv("LINKFLOW_WEBHOOK_SECRET", "ignored-when-the-list-is-set-000000000")
    assert WebhookSigning.from_env().secrets == (SECRET, OLD_SECRET)


def test_secrets_can_come_from_a_file_with_comments(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets_file = tmp_path / "webhook-secrets"
    secrets_file.write_text(f"# newest first\n{SECRET}\n\n  {OLD_SECRET}  \n# retired soon\n")
    clean_env.setenv("LINKFLOW_WEBHOOK_SECRETS_FILE", str(secrets_file))
    assert WebhookSigning.from_env().secrets == (SECRET, OLD_SECRET)


def test_an_unreadable_or_empty_secrets_file_is_refused(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("LINKFLOW_WEBHOOK_SECRETS_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match="cannot be read"):
        WebhookSigning.from_env()
    only_comments = tmp_path / "only-comments"
    only_comments.write_text("# nothing yet\n\n")
    clean_env.setenv("LINKFLOW_WEBHOOK_SECRETS_FILE", str(only_comments))
    with pytest.raises(ConfigurationError, match="no webhook signing secret"):
        WebhookSigning.from_env()


def test_signing_settings_never_show_their_secrets() -> None:
    assert SECRET not in repr(WebhookSigning((SECRET,)))
