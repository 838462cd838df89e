"""A provider's own MFA window bounds the link's: no answer is awaited past the provider's expiry,
and a provider that stopped waiting ends the link `MFA_TIMEOUT` with a sentence for the user.

The sandbox here keeps MFA requests open for a second and a half (`short_mfa_window_sandbox_url`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from linkflow.models import (
    Credentials,
    LinkReason,
    LinkRequest,
    LinkStatus,
    Provider,
)
from tests.fixtures.answers import right_answers
from tests.fixtures.sandbox import SHORT_MFA_WINDOW_SECONDS

WAITING = {LinkStatus.MFA_REQUIRED, LinkStatus.CONNECTED, LinkStatus.ACTION_REQUIRED}


def request(provider: Provider) -> LinkRequest:
    return LinkRequest(
        provider=provider,
        user_ref=f"window-{provider.value}",
        credentials=Credentials(username="user_mfa", password="pass_good"),
    )


async def test_arcadias_expiry_is_the_challenge_deadline_and_ends_the_link_on_time(
    dev_env: WorkflowEnvironment, run_worker, short_mfa_window_sandbox_url: str
):
    async with run_worker(dev_env.client, provider_url=short_mfa_window_sandbox_url) as links:
        link_id = await links.start_link(request(Provider.ARCADIA))
        waiting = await links.wait_for(link_id, WAITING, within=timedelta(seconds=30))
        assert waiting.status is LinkStatus.MFA_REQUIRED
        [challenge] = waiting.pending_challenges
        assert challenge.deadline is not None
        # The link's own window is 300 s; the provider's is far shorter and wins.
        assert (challenge.deadline - waiting.updated_at).total_seconds() < 60

        result = await links.result(link_id)

        assert result.status is LinkStatus.FAILED
        assert result.reason is LinkReason.MFA_TIMEOUT
        assert result.message == "No answer arrived within the time the provider allows."


async def test_an_answer_after_mxs_window_ends_the_link_mfa_timeout_not_a_provider_error(
    dev_env: WorkflowEnvironment, run_worker, short_mfa_window_sandbox_url: str
):
    async with run_worker(dev_env.client, provider_url=short_mfa_window_sandbox_url) as links:
        link_id = await links.start_link(request(Provider.MX))
        waiting = await links.wait_for(link_id, WAITING, within=timedelta(seconds=30))
        assert waiting.status is LinkStatus.MFA_REQUIRED
        await asyncio.sleep(SHORT_MFA_WINDOW_SECONDS + 1)

        result = await links.submit_mfa(link_id, right_answers(waiting))

        assert result.status is LinkStatus.FAILED
        assert result.reason is LinkReason.MFA_TIMEOUT
        assert result.message
        assert "HTTP" not in result.message
