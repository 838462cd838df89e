"""Teal's OAuth payroll provider through AccountLinkWorkflow on the local dev server.

An account at a payroll provider that uses OAuth answers with an `authorization_url`. The link
shows it as a `redirect` challenge with the URL to visit, takes no answer for it, and waits for
Teal like for a push approval, instead of waiting out its provider-job cap; the sandbox's
`user_redirect` completes once its URL is visited.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from linkflow.client import AnswerRefused
from linkflow.models import (
    ChallengeAnswer,
    ChallengeKind,
    Credentials,
    LinkRequest,
    LinkStatus,
    MfaSubmission,
    Provider,
)

SETTLED = {LinkStatus.MFA_REQUIRED, LinkStatus.CONNECTED, LinkStatus.ACTION_REQUIRED}


async def test_an_oauth_payroll_login_is_shown_as_a_redirect_and_connects_once_visited(
    dev_env: WorkflowEnvironment, run_worker
) -> None:
    async with run_worker(dev_env.client) as links:
        link_id = await links.start_link(
            LinkRequest(
                provider=Provider.TEAL,
                user_ref="e2e-teal-redirect",
                credentials=Credentials(username="user_redirect", password="pass_good"),
            )
        )
        asked = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=30))
        assert asked.status is LinkStatus.MFA_REQUIRED
        [redirect] = asked.pending_challenges
        assert redirect.kind is ChallengeKind.REDIRECT
        assert redirect.url is not None
        assert "/teal/_sandbox/oauth/authorize?" in redirect.url
        assert redirect.deadline is not None

        # Nothing is answered for it: the user logs in on the payroll provider's page.
        refused = MfaSubmission(answers=[ChallengeAnswer(challenge_id=redirect.id, value="x")])
        with pytest.raises(AnswerRefused, match="takes no answer"):
            await links.submit_mfa(link_id, refused)

        async with httpx.AsyncClient() as browser:
            assert (await browser.get(redirect.url)).status_code == 200
        result = await links.settled(link_id)
    assert result.status is LinkStatus.CONNECTED, result.message
    assert result.accounts
    assert result.attempts.answers_submitted == 0
