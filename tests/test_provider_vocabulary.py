"""The shared vocabulary and base of the adapters, without a provider behind them.

`providers/status.py` says what a status word means and raises accordingly; `providers/adapter.py`
builds every adapter's client one way and sends every request one way. The contract tests prove
both against the sandbox; these pin down the rules themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from linkflow.models import ChallengeAnswer, LinkReason
from providers.adapter import HttpAdapter, answers_for_the_round
from providers.base import ProviderState
from providers.errors import LinkFailure, ProviderUnavailable
from providers.mx import MxAdapter
from providers.status import (
    Actor,
    Handling,
    Outcome,
    StatusMeaning,
    StatusTable,
    challenged,
    final,
    in_progress,
    linked,
    needs_user,
    transient,
)
from providers.synapse import SynapseAdapter
from providers.teal import TealAdapter
from providers.unbill import UnbillAdapter

TABLE = StatusTable(
    "Acme",
    "status",
    {
        "DONE": linked("Connected."),
        "BUSY": in_progress("Working."),
        "ASKING": challenged("Answer this."),
        "HELD": needs_user(LinkReason.PROVIDER_HOLD, "Act at Acme."),
        "WRONG": final(LinkReason.INVALID_CREDENTIALS, "Wrong password."),
        "DOWN": transient("Acme is down."),
    },
)


def test_a_word_either_goes_on_or_ends_never_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        StatusMeaning(Outcome.LINKED, failure=LinkReason.MFA_FAILED)


def test_a_reason_qualifies_action_required_and_only_it() -> None:
    with pytest.raises(ValueError, match="reason"):
        StatusMeaning(Outcome.ACTION_REQUIRED)
    with pytest.raises(ValueError, match="reason"):
        StatusMeaning(Outcome.PENDING, reason=LinkReason.PROVIDER_HOLD)


@pytest.mark.parametrize(
    ("word", "handling", "actor"),
    [
        ("DONE", Handling.LINKED, Actor.NOBODY),
        ("BUSY", Handling.IN_PROGRESS, Actor.PROVIDER),
        ("ASKING", Handling.CHALLENGED, Actor.USER),
        ("HELD", Handling.NEEDS_USER, Actor.USER),
        ("WRONG", Handling.TERMINAL, Actor.USER),
        ("DOWN", Handling.TRANSIENT, Actor.PROVIDER),
    ],
)
def test_each_kind_of_word_is_handled_and_acted_on_by_its_usual_party(
    word: str, handling: Handling, actor: Actor
) -> None:
    meaning = TABLE.meanings[word]
    assert (meaning.handling, meaning.who_acts) == (handling, actor)
    assert meaning.transient is (handling is Handling.TRANSIENT)


def test_a_meaning_may_name_who_acts_when_it_is_not_the_usual_party() -> None:
    working = StatusMeaning(
        Outcome.ACTION_REQUIRED,
        reason=LinkReason.PROVIDER_HOLD,
        message="Acme is enrolling the account.",
        actor=Actor.PROVIDER,
    )
    assert (working.handling, working.who_acts) == (Handling.NEEDS_USER, Actor.PROVIDER)


@pytest.mark.parametrize(
    ("word", "outcome"),
    [
        ("DONE", Outcome.LINKED),
        ("BUSY", Outcome.PENDING),
        ("ASKING", Outcome.CHALLENGED),
        ("HELD", Outcome.ACTION_REQUIRED),
    ],
)
def test_a_word_that_goes_on_gives_its_outcome(word: str, outcome: Outcome) -> None:
    assert TABLE.outcome_of(*TABLE.meaning_of(word)) is outcome


def test_a_final_word_ends_the_link_with_its_reason_word_and_sentence() -> None:
    with pytest.raises(LinkFailure) as failure:
        TABLE.outcome_of(*TABLE.meaning_of("WRONG"))
    assert (failure.value.reason, failure.value.raw_status, failure.value.message) == (
        LinkReason.INVALID_CREDENTIALS,
        "WRONG",
        "Wrong password.",
    )


def test_a_transient_word_is_passing_trouble_named_by_provider_field_and_word() -> None:
    with pytest.raises(ProviderUnavailable, match=r"^Acme's status is DOWN: Acme is down\.$"):
        TABLE.outcome_of(*TABLE.meaning_of("DOWN"))


@pytest.mark.parametrize("word", ["NEW_WORD", None, 7, "Dear Jane, your account"])
def test_a_word_the_table_lacks_is_passing_trouble_that_quotes_no_free_text(word: object) -> None:
    with pytest.raises(ProviderUnavailable, match="Acme's status is") as unknown:
        TABLE.meaning_of(word)
    assert "Jane" not in str(unknown.value)


def state(outcome: Outcome, *ids: str) -> ProviderState:
    return ProviderState.model_validate(
        {
            "outcome": outcome,
            "raw_status": "x",
            "challenges": [{"id": i, "kind": "text", "prompt": "?"} for i in ids],
        }
    )


def answers(*ids: str) -> list[ChallengeAnswer]:
    return [ChallengeAnswer(challenge_id=i, value=SecretStr("a")) for i in ids]


def test_only_answers_to_the_round_asked_now_are_sent() -> None:
    asked = state(Outcome.CHALLENGED, "round-2")
    assert [
        a.challenge_id for a in answers_for_the_round(asked, answers("round-1", "round-2"))
    ] == ["round-2"]
    assert answers_for_the_round(state(Outcome.PENDING), answers("round-2")) == []


# ---------------------------------------------------------------------- the shared transport

Seen = list[httpx.Request]


def recording(seen: Seen) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={})

    return httpx.MockTransport(handler)


ADAPTERS_OVER: dict[str, tuple[Callable[[httpx.MockTransport], HttpAdapter], dict[str, str]]] = {
    "mx": (
        lambda transport: MxAdapter("http://p.test", "id", "key", transport=transport),
        {"Accept": "application/vnd.mx.api.v1+json", "Authorization": "Basic aWQ6a2V5"},
    ),
    "synapse": (
        lambda transport: SynapseAdapter(
            "http://p.test",
            "id",
            "secret",
            fingerprint="fp",
            user_ip="1.2.3.4",
            transport=transport,
        ),
        {"X-SP-GATEWAY": "id|secret", "X-SP-USER-IP": "1.2.3.4"},
    ),
    "teal": (
        lambda transport: TealAdapter(
            "http://p.test",
            "key",
            authorisation_id="0b9e7a4e-5c55-4f4e-8f0e-3f1f4a0e9b11",
            transport=transport,
        ),
        {"X-API-KEY": "key", "x-teal-authorisation-id": "0b9e7a4e-5c55-4f4e-8f0e-3f1f4a0e9b11"},
    ),
    "unbill": (
        lambda transport: UnbillAdapter("http://p.test", "key", transport=transport),
        {"Authorization": "Bearer key"},
    ),
}


@pytest.mark.parametrize("name", list(ADAPTERS_OVER))
async def test_a_replaced_transport_still_carries_the_adapters_own_headers(name: str) -> None:
    seen: Seen = []
    build, headers = ADAPTERS_OVER[name]
    adapter = build(recording(seen))
    try:
        await adapter._send("GET", "/anything")
    finally:
        await adapter.aclose()
    [request] = seen
    assert {k: request.headers.get(k) for k in headers} == headers


@pytest.mark.parametrize(
    ("build", "header"),
    [
        (lambda t: MxAdapter("http://p.test", "id", "key", transport=t), "Idempotency-Key"),
        (
            lambda t: SynapseAdapter("http://p.test", "id", "s", fingerprint="f", transport=t),
            "X-SP-IDEMPOTENCY-KEY",
        ),
    ],
    ids=["idempotency-key", "synapse"],
)
async def test_a_key_goes_in_the_providers_own_idempotency_header(
    build: Callable[[httpx.MockTransport], HttpAdapter], header: str
) -> None:
    seen: Seen = []
    adapter = build(recording(seen))
    try:
        await adapter._send("POST", "/anything", idempotency_key="key-1")
        await adapter._send("POST", "/anything")
    finally:
        await adapter.aclose()
    assert [request.headers.get(header) for request in seen] == ["key-1", None]
