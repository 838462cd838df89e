"""Link tokens, the attempt limit, the user_ref hash and the ids Idempotency-Keys become.

Unit tests: no server. The same refusals over real HTTP are in tests/test_api.py.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from api.attempts import AttemptLimiter, AttemptLimits
from api.auth import Caller
from api.errors import ApiError
from api.idempotency import start_id, update_id
from api.link_tokens import (
    ACTIONS_BY_MODE,
    LinkAction,
    LinkTokenExpired,
    LinkTokenInvalid,
    LinkTokens,
    SessionMode,
)
from api.settings import ApiSettings
from linkflow.config import ConfigurationError
from linkflow.lookup import UserRefLookup
from linkflow.models import LinkOptions, Provider

SECRET = "first-link-token-secret-0123456789abcdef"
NEWER_SECRET = "second-link-token-secret-0123456789abcdef"
USER_REF = "jane.doe@example.com"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def issue(tokens: LinkTokens, link_id: str = "link-1", mode: SessionMode = SessionMode.CREATE):
    return tokens.issue(
        link_id=link_id,
        provider=Provider.MX,
        mode=mode,
        user_ref=USER_REF,
        options=LinkOptions(mfa_timeout_seconds=120),
    )


def test_a_token_carries_its_session_sealed_and_opaque() -> None:
    tokens = LinkTokens((SECRET,))
    token, claims = issue(tokens)
    opened = tokens.open(token)
    assert opened == claims
    assert (opened.link_id, opened.user_ref, opened.options.mfa_timeout_seconds) == (
        "link-1",
        USER_REF,
        120,
    )
    assert opened.expires_at - opened.issued_at == timedelta(minutes=30)
    assert token.startswith("lt1.")
    raw = base64.urlsafe_b64decode(token[4:] + "==")
    for clear in (USER_REF, "link-1", "mfa_timeout", "provider"):
        assert clear.encode() not in raw
        assert clear not in token
    # Two sessions for the same link are two tokens with two session ids.
    second, second_claims = issue(tokens)
    assert second != token
    assert second_claims.session_id != claims.session_id


def test_a_token_expires_after_its_lifetime() -> None:
    clock = Clock()
    tokens = LinkTokens((SECRET,), ttl=timedelta(minutes=30), clock=clock)
    token, _ = issue(tokens)
    clock.now += timedelta(minutes=29, seconds=59)
    assert tokens.open(token).link_id == "link-1"
    clock.now += timedelta(seconds=1)
    with pytest.raises(LinkTokenExpired):
        tokens.open(token)


def test_any_change_to_a_token_is_refused() -> None:
    tokens = LinkTokens((SECRET,))
    token, _ = issue(tokens)
    body = token[4:]
    changed = [
        token + "A",
        token[:-1],
        "lt2." + body,
        "lt1." + body[::-1],
        "lt1.",
        "lt1.!!!!",
        "lt1." + "A" * 10_000,
    ]
    # Every character changed in turn, including the last one's unused low bits.
    for position in range(0, len(body), 7):
        replacement = "B" if body[position] != "B" else "C"
        changed.append("lt1." + body[:position] + replacement + body[position + 1 :])
    last = body[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = alphabet[alphabet.index(last) ^ 1]
    changed.append(token[:-1] + sibling)
    for altered in changed:
        with pytest.raises(LinkTokenInvalid):
            tokens.open(altered)


def test_a_token_is_refused_by_a_ring_without_its_secret() -> None:
    token, _ = issue(LinkTokens((SECRET,)))
    with pytest.raises(LinkTokenInvalid):
        LinkTokens((NEWER_SECRET,)).open(token)


def test_secrets_rotate_newest_first_without_losing_a_session() -> None:
    old_ring = LinkTokens((SECRET,))
    old_token, _ = issue(old_ring)
    rotating = LinkTokens((NEWER_SECRET, SECRET))
    assert rotating.open(old_token).link_id == "link-1"
    new_token, _ = issue(rotating)
    assert LinkTokens((NEWER_SECRET,)).open(new_token).link_id == "link-1"
    with pytest.raises(LinkTokenInvalid):
        old_ring.open(new_token)
    # Once the old secret is retired, its tokens open no session.
    with pytest.raises(LinkTokenInvalid):
        LinkTokens((NEWER_SECRET,)).open(old_token)


def test_a_token_acts_only_on_its_own_link_and_within_its_actions() -> None:
    tokens = LinkTokens((SECRET,))
    _, create = issue(tokens)
    _, update = issue(tokens, mode=SessionMode.UPDATE)
    page = Caller(session=create)
    page.may(LinkAction.START, "link-1")
    page.may(LinkAction.MFA, "link-1")
    with pytest.raises(ApiError) as other_link:
        page.may(LinkAction.READ, "link-2")
    assert (other_link.value.status, other_link.value.body.error.code) == (
        403,
        "link_token_wrong_link",
    )
    with pytest.raises(ApiError) as not_allowed:
        page.may(LinkAction.RESOLVE_HOLD, "link-1")
    assert not_allowed.value.body.error.code == "link_token_action_not_allowed"
    with pytest.raises(ApiError):
        Caller(session=update).may(LinkAction.START, "link-1")
    Caller(session=update).may(LinkAction.CREDENTIALS, "link-1")
    Caller(api_key=0).may(LinkAction.START, "any-link")
    assert LinkAction.START not in ACTIONS_BY_MODE[SessionMode.UPDATE]


def test_a_short_secret_is_refused_without_repeating_it() -> None:
    with pytest.raises(ConfigurationError) as refused:
        LinkTokens(("too-short-secret",))
    assert "too-short-secret" not in str(refused.value)
    with pytest.raises(ConfigurationError):
        LinkTokens(())


def test_attempts_are_limited_in_a_sliding_window_per_session() -> None:
    now = [1000.0]
    limiter = AttemptLimiter(AttemptLimits(max_attempts=3, window_seconds=60), clock=lambda: now[0])
    assert [limiter.attempt("a") for _ in range(3)] == [None, None, None]
    assert limiter.attempt("a") == 60
    assert limiter.attempt("b") is None, "each session counts on its own"
    now[0] += 45
    assert limiter.attempt("a") == 15
    now[0] += 15
    assert limiter.attempt("a") is None, "the oldest attempts left the window"


def test_the_attempt_limiter_forgets_the_least_recent_sessions_past_its_bound() -> None:
    limiter = AttemptLimiter(AttemptLimits(max_attempts=1, window_seconds=60), max_tracked=2)
    for session in ("a", "b", "c"):
        assert limiter.attempt(session) is None
    assert limiter.attempt("a") is None, "a was forgotten to bound memory"
    assert limiter.attempt("c") is not None


def test_the_user_ref_hash_is_keyed_and_every_key_finds_it() -> None:
    key, newer = "lookup-key-0123456789abcdef-0123456789", "newer-lookup-key-0123456789abcdef-0123"
    old = UserRefLookup((key,))
    rotated = UserRefLookup((newer, key))
    published = old.key_for(USER_REF)
    assert len(published) == 64
    assert int(published, 16) >= 0
    assert USER_REF not in published
    assert published == old.key_for(f"  {USER_REF} ")
    assert published != UserRefLookup((newer,)).key_for(USER_REF)
    assert rotated.key_for(USER_REF) != published
    assert published in rotated.keys_for(USER_REF)


def test_lookup_keys_come_from_the_environment_or_a_file(tmp_path) -> None:
    assert UserRefLookup.from_env({}) is None
    key_file = tmp_path / "lookup.key"
    key_file.write_text("# lookup keys\nfile-lookup-key-0123456789abcdef-0123\n")
    from_file = UserRefLookup.from_env({"LINKFLOW_LOOKUP_KEY_FILE": str(key_file)})
    assert from_file is not None
    assert from_file.keys == ("file-lookup-key-0123456789abcdef-0123",)
    with pytest.raises(ConfigurationError) as short:
        UserRefLookup.from_env({"LINKFLOW_LOOKUP_KEY": "short-key"})
    assert "short-key" not in str(short.value)


def test_idempotency_keys_become_ids_that_never_show_the_key() -> None:
    key = "d3b07384-d9a0-4c9b-8f1e-1c2b3a4d5e6f"
    assert start_id("links", key) == start_id("links", key)
    assert start_id("links", key) != start_id("link-sessions", key)
    assert update_id("submit_mfa", key) != update_id("unlink", key)
    for derived in (start_id("links", key), update_id("submit_mfa", key)):
        assert key not in derived
        assert key[:8] not in derived
    assert start_id("links", key).startswith("link-")


def test_the_api_is_off_without_api_keys_and_complete_with_them(tmp_path) -> None:
    assert ApiSettings.from_env({}) is None
    keys = {"LINKFLOW_API_KEYS": "backend-api-key-0123456789abcdef"}
    with pytest.raises(ConfigurationError, match="LINKFLOW_LINK_TOKEN_SECRETS"):
        ApiSettings.from_env(keys)
    with_secret = keys | {"LINKFLOW_LINK_TOKEN_SECRETS": SECRET}
    with pytest.raises(ConfigurationError, match="LINKFLOW_LOOKUP_KEY"):
        ApiSettings.from_env(with_secret)
    complete = with_secret | {
        "LINKFLOW_LOOKUP_KEY": "lookup-key-0123456789abcdef-0123456789",
        "LINKFLOW_PUBLIC_URL": "https://link.example.com/",
        "LINKFLOW_LINK_TOKEN_TTL_SECONDS": "600",
    }
    settings = ApiSettings.from_env(complete)
    assert settings is not None
    assert settings.connect_page_url == "https://link.example.com/connect"
    assert settings.link_tokens.ttl == timedelta(minutes=10)
    for wrong in (
        {"LINKFLOW_API_KEYS": "lt1.looks-like-a-link-token-0123456789"},
        {"LINKFLOW_API_KEYS": "short"},
        {"LINKFLOW_PUBLIC_URL": "ftp://link.example.com"},
        {"LINKFLOW_LINK_TOKEN_TTL_SECONDS": "forever"},
    ):
        with pytest.raises(ConfigurationError) as refused:
            ApiSettings.from_env(complete | wrong)
        assert "looks-like-a-link-token" not in str(refused.value)
