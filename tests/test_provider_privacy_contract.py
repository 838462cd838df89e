"""What the adapters let out: no personal data in a provider's URLs, no body text in errors.

A URL's path and query string land in access logs, so for every provider a whole link (login,
every MFA round, accounts, revoke) runs against the sandbox over real HTTP and the sandbox's
record of the request lines it received (`GET /_sandbox/requests`) is searched for the user's
reference, username and link id. Provider errors become activity failure messages in Temporal
history, so refusals are checked to carry the status, method, path and at most an error code,
never the text of the provider's answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import unquote

import httpx
import pytest

from linkflow.config import ProviderSettings
from linkflow.models import ChallengeAnswer, Credentials, LinkRequest, Provider
from providers.base import (
    Outcome,
    ProviderAdapter,
    ProviderRejectedRequest,
    ProviderState,
    ProviderUnavailable,
)
from providers.http import raise_for_provider_status
from providers.privacy import opaque_id, provider_word
from providers.registry import ADAPTERS, IMPLEMENTED_PROVIDERS
from sandbox.users import CORRECT_ANSWER


@pytest.fixture(params=IMPLEMENTED_PROVIDERS, ids=[p.value for p in IMPLEMENTED_PROVIDERS])
async def adapter(
    request: pytest.FixtureRequest, sandbox_url: str
) -> AsyncIterator[ProviderAdapter]:
    provider: Provider = request.param
    made: ProviderAdapter = ADAPTERS[provider].from_settings(
        ProviderSettings(sandbox_url=sandbox_url)
    )
    yield made
    await made.aclose()


async def request_lines(sandbox_url: str) -> list[str]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{sandbox_url}/_sandbox/requests")
    assert response.status_code == 200, response.text
    lines: list[str] = response.json()["requests"]
    return lines


async def link_to_the_end(adapter: ProviderAdapter, request: LinkRequest, link_id: str) -> None:
    """Log in, answer every round rightly, list the accounts and revoke: every route a link uses."""
    state: ProviderState = await adapter.login(link_id, request, idempotency_key=str(uuid.uuid4()))
    for _ in range(500):
        if state.outcome is Outcome.LINKED:
            break
        if state.outcome is Outcome.CHALLENGED and any(
            c.kind.needs_answer for c in state.challenges
        ):
            answers = [
                ChallengeAnswer(
                    challenge_id=challenge.id,
                    value=challenge.options[0].value if challenge.options else CORRECT_ANSWER,
                )
                for challenge in state.challenges
                if challenge.kind.needs_answer
            ]
            state = await adapter.answer(
                state.session, state.challenges, answers, idempotency_key=str(uuid.uuid4())
            )
        else:
            await asyncio.sleep(0.02)
            state = await adapter.poll(state.session)
    assert state.outcome is Outcome.LINKED, state.raw_status
    assert await adapter.fetch_accounts(state.session)
    await adapter.refresh(state.session, idempotency_key=str(uuid.uuid4()))
    await adapter.revoke(state.session)


async def test_no_provider_url_holds_the_user_ref_username_or_link_id(
    adapter: ProviderAdapter, sandbox_url: str
) -> None:
    tag = uuid.uuid4().hex
    user_ref = f"jane.doe+{tag}@example.com"
    # A one-time code scenario: every provider asks at least one round, most two.
    username = f"user_otp+{tag}"
    link_id = f"link-for-{user_ref}"
    request = LinkRequest(
        provider=adapter.provider,
        user_ref=user_ref,
        credentials=Credentials(username=username, password="pass_good"),
    )
    await link_to_the_end(adapter, request, link_id)

    lines = await request_lines(sandbox_url)
    mine = [line for line in lines if f" /{adapter.provider.value}/" in line]
    assert len(mine) >= 4
    for line in lines:
        for form in (line, unquote(line)):
            assert tag not in form, line
            assert "jane.doe" not in form, line


def rejected(status: int, body: bytes, path: str = "/users/USR-1/members/MBR-1") -> httpx.Response:
    return httpx.Response(
        status,
        content=body,
        headers={"Content-Type": "application/json"},
        request=httpx.Request("PUT", f"http://provider.test{path}?user=jane"),
    )


def test_a_refusal_says_status_method_and_path_but_none_of_the_body() -> None:
    body = b'{"error": {"code": "NOT_FOUND", "message": "No member for jane.doe, token tok_123"}}'
    with pytest.raises(ProviderRejectedRequest) as refused:
        raise_for_provider_status(rejected(404, body), "MX")
    assert str(refused.value) == "MX answered HTTP 404 to PUT /users/USR-1/members/MBR-1."
    assert refused.value.error_code is None


def test_a_refusal_keeps_the_providers_structured_error_code() -> None:
    body = b'{"error": {"code": "NOT_FOUND", "message": "No member for jane.doe"}}'
    with pytest.raises(ProviderRejectedRequest) as refused:
        raise_for_provider_status(rejected(404, body), "Teal", code_field=("error", "code"))
    assert str(refused.value) == (
        "Teal answered HTTP 404 to PUT /users/USR-1/members/MBR-1 (error code NOT_FOUND)."
    )
    assert refused.value.error_code == "NOT_FOUND"


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": {"code": "user jane.doe has no access"}}',
        b'{"error": {"code": {"nested": "object"}}}',
        b'{"error": "flat"}',
        b"<html>jane.doe</html>",
    ],
    ids=["sentence", "object", "wrong-shape", "not-json"],
)
def test_an_error_code_that_is_not_a_word_is_left_out(body: bytes) -> None:
    with pytest.raises(ProviderRejectedRequest) as refused:
        raise_for_provider_status(rejected(400, body), "Teal", code_field=("error", "code"))
    assert "jane" not in str(refused.value)
    assert refused.value.error_code is None


def test_a_transient_failure_says_no_more_than_its_status_either() -> None:
    with pytest.raises(ProviderUnavailable) as unavailable:
        raise_for_provider_status(rejected(503, b'{"message": "jane.doe overloaded us"}'), "MX")
    assert str(unavailable.value) == "MX answered HTTP 503 to PUT /users/USR-1/members/MBR-1."


def test_provider_words_pass_and_sentences_do_not() -> None:
    assert (
        provider_word("MULTI_FACTOR_AUTHENTICATION_TIMEOUT")
        == "MULTI_FACTOR_AUTHENTICATION_TIMEOUT"
    )
    assert provider_word("mfa-required") == "mfa-required"
    assert provider_word(110) == "110"
    assert provider_word("Dear Jane, your account") == "?"
    assert provider_word("x" * 65) == "?"
    assert provider_word(None) == "?"
    assert provider_word(True) == "?"


def test_opaque_ids_are_stable_per_link_and_reveal_nothing() -> None:
    link_id = "link-for-jane.doe@example.com"
    first = opaque_id("teal-user", link_id)
    assert first == opaque_id("teal-user", link_id)
    assert first != opaque_id("teal-user", "link-for-someone-else")
    assert first != opaque_id("synapse-login", link_id)
    assert str(uuid.UUID(first)) == first
    assert "jane" not in first


# Each provider's answer to a read of something it does not know: the refusal names the code at
# most, never the provider's sentence (the sandbox's own words, quoted here). Synapse's login has
# no job to poll, so its read is the list of nodes.
UNKNOWN_OBJECT_REFUSALS = {
    Provider.MX: ({"user_guid": "USR-x", "member_guid": "MBR-x"}, "Member not found"),
    Provider.SYNAPSE: (
        {"user_id": "0" * 24, "oauth_key": "oauth_x", "fingerprint": "f"},
        "User not found",
    ),
    Provider.ARCADIA: ({"credential_id": "cred_x"}, "Credential not found"),
    Provider.TEAL: ({"user_id": "u", "account_id": "acct-x"}, "Account not found"),
    Provider.UNBILL: ({"client_id": "c", "auth_id": "auth-x", "company_id": "x"}, "Auth not found"),
}


@pytest.mark.parametrize(
    "provider", list(UNKNOWN_OBJECT_REFUSALS), ids=[p.value for p in UNKNOWN_OBJECT_REFUSALS]
)
async def test_a_real_refusal_quotes_no_text_of_the_providers_answer(
    provider: Provider, sandbox_url: str
) -> None:
    session, sentence = UNKNOWN_OBJECT_REFUSALS[provider]
    adapter: ProviderAdapter = ADAPTERS[provider].from_settings(
        ProviderSettings(sandbox_url=sandbox_url)
    )
    try:
        read = adapter.fetch_accounts if provider is Provider.SYNAPSE else adapter.poll
        with pytest.raises(ProviderRejectedRequest) as refused:
            await read(session)
    finally:
        await adapter.aclose()
    assert refused.value.status_code == 404
    assert sentence not in str(refused.value)
    assert "HTTP 404" in str(refused.value)
