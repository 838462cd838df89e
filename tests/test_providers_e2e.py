"""Every provider times every test user, through AccountLinkWorkflow on the local dev server.

The same workflow, the same `submit_mfa` update and the same answering loop link each provider's
sandbox over real HTTP; only the expected number of MFA rounds differs, as each provider asks in
its own way (Synapse cycles through three questions, Unbill asks two at once, Arcadia asks for a
delivery method and then the code).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from linkflow.client import LinkClient
from linkflow.models import (
    ChallengeKind,
    Credentials,
    LinkReason,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    Provider,
)
from providers.registry import IMPLEMENTED_PROVIDERS
from tests.fixtures.answers import right_answers

SETTLED = {LinkStatus.MFA_REQUIRED, LinkStatus.CONNECTED, LinkStatus.ACTION_REQUIRED}


@dataclass(frozen=True)
class Expected:
    status: LinkStatus
    reason: LinkReason | None = None


CONNECTED = Expected(LinkStatus.CONNECTED)
EXPECTED = {
    "user_good": CONNECTED,
    "user_mfa": CONNECTED,
    "user_otp": CONNECTED,
    "user_slow": CONNECTED,
    "user_bad": Expected(LinkStatus.FAILED, LinkReason.INVALID_CREDENTIALS),
    "user_hold": Expected(LinkStatus.ACTION_REQUIRED, LinkReason.PROVIDER_HOLD),
    "user_unsupported": Expected(LinkStatus.FAILED, LinkReason.UNSUPPORTED_MFA),
}

# MFA rounds each provider asks of its MFA users (a round is what one update answers).
ROUNDS = {
    (Provider.MX, "user_mfa"): 1,
    (Provider.MX, "user_otp"): 2,
    (Provider.SYNAPSE, "user_mfa"): 3,
    (Provider.SYNAPSE, "user_otp"): 2,
    (Provider.ARCADIA, "user_mfa"): 1,
    (Provider.ARCADIA, "user_otp"): 2,
    (Provider.TEAL, "user_mfa"): 1,
    (Provider.TEAL, "user_otp"): 2,
    (Provider.UNBILL, "user_mfa"): 1,
    (Provider.UNBILL, "user_otp"): 1,
}


def link_request(provider: Provider, username: str) -> LinkRequest:
    return LinkRequest(
        provider=provider,
        user_ref=f"e2e-{provider.value}-{username}",
        credentials=Credentials(username=username, password="pass_good"),
    )


async def link_answering_everything(
    links: LinkClient, provider: Provider, username: str
) -> tuple[LinkSnapshot, list[LinkSnapshot]]:
    """Run a link to its end, answering each round; returns the end and every round seen."""
    link_id = await links.start_link(link_request(provider, username))
    rounds: list[LinkSnapshot] = []
    snapshot = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=60))
    while snapshot.status is LinkStatus.MFA_REQUIRED:
        rounds.append(snapshot)
        submission = right_answers(snapshot)
        if not submission.answers:  # a push approval: the user approves on their device
            snapshot = await links.wait_for(
                link_id, SETTLED - {LinkStatus.MFA_REQUIRED}, within=timedelta(seconds=60)
            )
            continue
        snapshot = await links.submit_mfa(link_id, submission)
        if snapshot.status is LinkStatus.CONNECTING:
            snapshot = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=60))
    return await links.settled(link_id), rounds


@pytest.mark.parametrize("username", list(EXPECTED))
@pytest.mark.parametrize("provider", IMPLEMENTED_PROVIDERS, ids=lambda p: p.value)
async def test_every_provider_and_test_user(
    dev_env: WorkflowEnvironment, run_worker, provider: Provider, username: str
) -> None:
    async with run_worker(dev_env.client) as links:
        result, rounds = await link_answering_everything(links, provider, username)

    expected = EXPECTED[username]
    assert (result.status, result.reason) == (expected.status, expected.reason), result.message
    assert result.provider == provider
    assert result.provider_status
    if expected.status is LinkStatus.CONNECTED:
        assert result.accounts, "a connected link has accounts"
    else:
        assert result.accounts == []
    if (provider, username) in ROUNDS:
        assert len(rounds) == ROUNDS[(provider, username)]
    if username in ("user_good", "user_slow", "user_bad"):
        assert rounds == []
    for round_ in rounds:
        assert round_.pending_challenges
        assert all(challenge.deadline for challenge in round_.pending_challenges)
    if expected.status is LinkStatus.ACTION_REQUIRED:
        assert result.message, "a hold tells the user what to do"


# What each provider's own way of asking looks like, beyond the shared matrix above.


async def test_unbill_asks_two_questions_answered_in_one_update(
    dev_env: WorkflowEnvironment, run_worker
) -> None:
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(link_request(Provider.UNBILL, "user_mfa"))
        asked = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=30))
        assert [c.kind for c in asked.pending_challenges] == [ChallengeKind.TEXT] * 2
        assert len({c.id for c in asked.pending_challenges}) == 2
        answered = await links.submit_mfa(link_id, right_answers(asked))
        if answered.status is LinkStatus.CONNECTING:
            answered = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=30))
        assert answered.status is LinkStatus.CONNECTED
        assert answered.attempts.mfa_rounds == 1
        assert answered.attempts.answers_submitted == 2


async def test_unbill_push_approval_completes_without_an_answer(
    dev_env: WorkflowEnvironment, run_worker
) -> None:
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(link_request(Provider.UNBILL, "mfa-required-prompt"))
        asked = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=30))
        assert asked.status is LinkStatus.MFA_REQUIRED
        [prompt] = asked.pending_challenges
        assert prompt.kind is ChallengeKind.PUSH_APPROVAL
        assert prompt.deadline is not None
        result = await links.settled(link_id)
    assert result.status is LinkStatus.CONNECTED
    assert result.accounts
    assert result.attempts.answers_submitted == 0


async def test_arcadia_asks_for_a_method_then_the_code(
    dev_env: WorkflowEnvironment, run_worker
) -> None:
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(link_request(Provider.ARCADIA, "user_otp"))
        choosing = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=30))
        [method] = choosing.pending_challenges
        assert method.kind is ChallengeKind.DEVICE_CHOICE
        assert len(method.options) >= 2
        coding = await links.submit_mfa(link_id, right_answers(choosing))
        if coding.status is LinkStatus.CONNECTING:
            coding = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=30))
        [code] = coding.pending_challenges
        assert code.kind is ChallengeKind.CODE
        assert code.id != method.id
        result = await links.submit_mfa(link_id, right_answers(coding))
        if result.status is LinkStatus.CONNECTING:
            result = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=30))
    assert result.status is LinkStatus.CONNECTED
    assert result.accounts


async def test_synapse_asks_three_questions_one_at_a_time(
    dev_env: WorkflowEnvironment, run_worker
) -> None:
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(link_request(Provider.SYNAPSE, "user_mfa"))
        snapshot = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=30))
        asked: list[str] = []
        while snapshot.status is LinkStatus.MFA_REQUIRED:
            [question] = snapshot.pending_challenges
            assert question.kind is ChallengeKind.TEXT
            asked.append(question.prompt)
            snapshot = await links.submit_mfa(link_id, right_answers(snapshot))
    assert snapshot.status is LinkStatus.CONNECTED
    assert len(asked) == len(set(asked)) == 3
    assert snapshot.attempts.mfa_rounds == 3
