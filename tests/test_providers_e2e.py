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
    ChallengeAnswer,
    Credentials,
    LinkReason,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    MfaSubmission,
    Provider,
)
from providers.mapping import IMPLEMENTED_PROVIDERS

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
    (Provider.UNBILL, "user_mfa"): 1,
}


def link_request(provider: Provider, username: str) -> LinkRequest:
    return LinkRequest(
        provider=provider,
        user_ref=f"e2e-{provider.value}-{username}",
        credentials=Credentials(username=username, password="pass_good"),
    )


def right_answers(snapshot: LinkSnapshot) -> MfaSubmission:
    """What a user who knows the answers submits: `correct`, or the first option offered."""
    return MfaSubmission(
        answers=[
            ChallengeAnswer(
                challenge_id=challenge.id,
                value=challenge.options[0].value if challenge.kind.has_options else "correct",
            )
            for challenge in snapshot.pending_challenges
            if challenge.kind.needs_answer
        ]
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
    return await links.result(link_id), rounds


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
