"""The stories every provider tells for the shared test users, asserted once for all five.

`sandbox/users.py` gives every provider the same test users (`user_good`, `user_mfa`,
`user_otp`, `user_bad`, `user_hold`, `user_slow`, `user_unsupported`); each provider tells their
stories in its own words. `STORIES` holds those words, one `Story` per provider, and every test
here runs each provider's adapter (built from the settings, as the worker builds it) against the
sandbox over real HTTP. What only one provider does stays in its own contract module
(`tests/test_<provider>_contract.py`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from linkflow.config import ProviderSettings
from linkflow.models import ChallengeKind, LinkReason, Provider
from providers.arcadia import ArcadiaAdapter
from providers.base import (
    LinkFailure,
    Outcome,
    ProviderAdapter,
    ProviderRejectedRequest,
    ProviderState,
)
from providers.mx import MxAdapter
from providers.registry import ADAPTERS
from providers.synapse import SynapseAdapter
from providers.teal import TealAdapter
from providers.unbill import UnbillAdapter
from sandbox.users import OTP_PHONES, SECURITY_QUESTION, SLOW_JOB_SECONDS
from tests.fixtures.links import (
    link_request,
    new_key,
    right_answers,
    send,
    settle,
    start,
)

# An account as a test compares it: name, kind, mask, balance, currency.
AccountRow = tuple[str, str, str | None, str | None, str | None]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
OBJECT_ID = r"[0-9a-f]{24}"
WRONG_SECRET = "not-the-secret"


@dataclass(frozen=True)
class Story:
    """How one provider tells the shared test users' stories, in its own words."""

    provider: Provider
    # The provider's word right after a login and right after an answer while it works on them;
    # None where the call itself answers with the outcome (Synapse's one long bank login).
    started: str | None
    resumed: str | None
    linked: str
    # The keys of a linked login's session.
    session_keys: frozenset[str]
    # `user_good`'s accounts, and what an account id looks like.
    accounts: tuple[AccountRow, ...]
    account_ids: str
    # `user_mfa`: each round's challenges, as (kind, prompt).
    mfa_rounds: tuple[tuple[tuple[ChallengeKind, str], ...], ...]
    # `user_otp`: each round's kinds of challenge.
    otp_rounds: tuple[tuple[ChallengeKind, ...], ...]
    # Whether the provider says when it stops waiting for an answer.
    deadlines: bool
    invalid: str
    hold: str
    hold_says: str
    unsupported: str
    # The word after three wrong rounds; None where the provider sets no limit of its own and
    # asks again (Arcadia: a refused code is no MULTI_FACTOR_AUTHENTICATION_FAILURE).
    mfa_failed: str | None
    # After a revoke: whether reading the login is refused as unknown (404), and whether it
    # still lists accounts, empty.
    revoked_unknown: bool
    revoked_lists_nothing: bool
    # An adapter whose key the provider refuses (given the sandbox's URL), and the code it says.
    refused_keys: Callable[[str], ProviderAdapter]
    refusal_code: str | None
    # What `user_unsupported`'s message names (most providers: the captcha they cannot pass).
    unsupported_says: str = "captcha"


STORIES = [
    Story(
        provider=Provider.MX,
        started="CREATED",
        resumed="RESUMED",
        linked="CONNECTED",
        session_keys=frozenset({"user_guid", "member_guid"}),
        accounts=(
            ("MX Bank Checking", "CHECKING", "1234", "1250.75", "USD"),
            ("MX Bank Savings", "SAVINGS", "5678", "9800.05", "USD"),
        ),
        account_ids=r"ACT-.+",
        mfa_rounds=(((ChallengeKind.TEXT, SECURITY_QUESTION),),),
        otp_rounds=((ChallengeKind.OPTIONS,), (ChallengeKind.CODE,)),
        deadlines=False,
        invalid="DENIED",
        hold="IMPEDED",
        hold_says="attention",
        unsupported="CHALLENGED",
        mfa_failed="REJECTED",
        revoked_unknown=True,
        revoked_lists_nothing=False,
        refused_keys=lambda url: MxAdapter(f"{url}/mx", "sandbox-client-id", ""),
        refusal_code=None,
    ),
    Story(
        provider=Provider.SYNAPSE,
        started=None,
        resumed=None,
        linked="200:0",
        session_keys=frozenset(
            {
                "user_id",
                "oauth_key",
                "oauth_expires_at",
                "refresh_token",
                "fingerprint",
                "raw_status",
            }
        ),
        accounts=(
            ("SynapsePay Test Checking Account - 8901", "CHECKING", "8901", "800.00", "USD"),
            ("SynapsePay Test Savings Account - 2345", "SAVINGS", "2345", "1500.00", "USD"),
        ),
        account_ids=OBJECT_ID,
        mfa_rounds=(
            ((ChallengeKind.TEXT, SECURITY_QUESTION),),
            ((ChallengeKind.TEXT, "What was the name of your first pet?"),),
            ((ChallengeKind.TEXT, "What is your mother's maiden name?"),),
        ),
        # Synapse has no options: "which phone?" is a text question.
        otp_rounds=((ChallengeKind.TEXT,), (ChallengeKind.TEXT,)),
        deadlines=False,
        # Synapse's words are its `http_code:error_code` pairs.
        invalid="400:200",
        hold="402:500",
        hold_says="locked",
        unsupported="202:10",
        mfa_failed="409:400",
        revoked_unknown=False,
        revoked_lists_nothing=True,
        refused_keys=lambda url: SynapseAdapter(
            f"{url}/synapse", "sandbox-client-id", WRONG_SECRET, fingerprint="test-fingerprint"
        ),
        refusal_code="100",
    ),
    Story(
        provider=Provider.ARCADIA,
        started="DATA_EXTRACTION_IN_PROGRESS",
        resumed="DATA_EXTRACTION_IN_PROGRESS",
        linked="LOGIN_AND_DATA_DISCOVERY_SUCCESS",
        session_keys=frozenset({"credential_id", "job_id"}),
        accounts=(
            ("Sandbox Power & Light Electric", "UTILITY", "1234", None, None),
            ("Sandbox Power & Light Gas", "UTILITY", "5678", None, None),
        ),
        account_ids=r"acct_[0-9a-f]{32}",
        mfa_rounds=(
            (
                (
                    ChallengeKind.CODE,
                    "Enter the one-time code your utility sent you"
                    f" (text message to {OTP_PHONES[0].label})",
                ),
            ),
        ),
        otp_rounds=((ChallengeKind.DEVICE_CHOICE,), (ChallengeKind.CODE,)),
        deadlines=True,
        invalid="INVALID_CREDENTIALS",
        # Arcadia's table gives the customer one hold to act on; its own work (enrollment, a
        # captcha) is in progress.
        hold="EMAIL_APPROVAL",
        hold_says="email",
        unsupported="UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION",
        mfa_failed=None,
        revoked_unknown=False,
        revoked_lists_nothing=True,
        refused_keys=lambda url: ArcadiaAdapter(
            f"{url}/arcadia", "sandbox-client-id", WRONG_SECRET
        ),
        refusal_code="invalid_client",
        unsupported_says="two-step verification",
    ),
    Story(
        provider=Provider.TEAL,
        started="PENDING",
        resumed="PENDING",
        linked="ACTIVE",
        session_keys=frozenset({"user_id", "authorisation_id", "account_id"}),
        accounts=(
            ("Acme Ltd payroll (latest pay date 2023-05-27)", "PAYROLL", None, None, None),
            ("Globex Ltd payroll (latest pay date 2023-05-15)", "PAYROLL", None, None, None),
        ),
        account_ids=UUID,
        mfa_rounds=(((ChallengeKind.SECRET, "Enter characters 2, 4 and 7 of your password"),),),
        otp_rounds=((ChallengeKind.TEXT,), (ChallengeKind.CODE,)),
        deadlines=False,
        invalid="INVALID",
        hold="ACTION_REQUIRED",
        hold_says="terms",
        unsupported="MFA_REQUIRED",
        mfa_failed="MFA_FAILED",
        revoked_unknown=True,
        revoked_lists_nothing=False,
        refused_keys=lambda url: TealAdapter(f"{url}/teal", ""),
        refusal_code="UNAUTHORISED",
    ),
    Story(
        provider=Provider.UNBILL,
        started="pending",
        resumed="pending",
        linked="verified",
        session_keys=frozenset({"client_id", "auth_id", "company_id"}),
        accounts=(("Netflix", "BILL", None, "15.49", "USD"),),
        account_ids=OBJECT_ID,
        # The seed's two questions, asked and answered together.
        mfa_rounds=(
            (
                (ChallengeKind.TEXT, "What city did you grow up in?"),
                (ChallengeKind.TEXT, "What is your favorite food?"),
            ),
        ),
        otp_rounds=((ChallengeKind.CODE,),),
        deadlines=False,
        invalid="authenticate",
        hold="hold",
        hold_says="Terms and Conditions",
        unsupported="mfa-required",
        mfa_failed="authenticate",
        revoked_unknown=True,
        revoked_lists_nothing=True,
        refused_keys=lambda url: UnbillAdapter(f"{url}/unbill", ""),
        refusal_code=None,
    ),
]


def test_every_provider_with_an_adapter_tells_the_stories() -> None:
    assert [story.provider for story in STORIES] == list(ADAPTERS)


@pytest.fixture(params=STORIES, ids=[story.provider.value for story in STORIES])
def story(request: pytest.FixtureRequest) -> Story:
    told: Story = request.param
    return told


@pytest.fixture
async def adapter(story: Story, sandbox_url: str) -> AsyncIterator[ProviderAdapter]:
    """The provider's adapter as the worker builds it: from the settings, keys defaulted."""
    made = ADAPTERS[story.provider].from_settings(ProviderSettings(sandbox_url=sandbox_url))
    yield made
    await made.aclose()


async def log_in(adapter: ProviderAdapter, story: Story, username: str) -> ProviderState:
    """A login as `username`; a provider with a job says so in its own word first."""
    state = await start(adapter, username)
    if story.started is not None:
        assert (state.outcome, state.raw_status) == (Outcome.PENDING, story.started)
    return state


async def answer(
    adapter: ProviderAdapter, story: Story, state: ProviderState, *values: str
) -> ProviderState:
    """Answer the round, then wait for the provider's verdict; the login's ids stay."""
    answered = await send(adapter, state, *values)
    if story.resumed is not None:
        assert (answered.outcome, answered.raw_status) == (Outcome.PENDING, story.resumed)
    for key in story.session_keys - {"raw_status"}:
        assert answered.session[key] == state.session[key], key
    return await settle(adapter, answered)


async def finish(adapter: ProviderAdapter, story: Story, state: ProviderState) -> ProviderState:
    """Answer every round rightly until the provider stops asking."""
    for _ in range(10):
        if state.outcome is not Outcome.CHALLENGED:
            return state
        state = await answer(adapter, story, state, *right_answers(state))
    pytest.fail(f"{story.provider.value} kept asking")


async def test_user_good_links_with_its_accounts(story: Story, adapter: ProviderAdapter) -> None:
    linked = await settle(adapter, await log_in(adapter, story, "user_good"))
    assert (linked.outcome, linked.raw_status) == (Outcome.LINKED, story.linked)
    assert linked.challenges == []
    assert linked.message
    assert set(linked.session) == story.session_keys
    assert "pass_good" not in str(linked.session)

    accounts = await adapter.fetch_accounts(linked.session)
    assert [(a.name, a.kind, a.mask, a.balance, a.currency) for a in accounts] == list(
        story.accounts
    )
    assert all(re.fullmatch(story.account_ids, a.id) for a in accounts), accounts
    assert len({a.id for a in accounts}) == len(accounts)
    # Listing again names the same accounts.
    assert [a.id for a in await adapter.fetch_accounts(linked.session)] == [a.id for a in accounts]


async def test_user_mfa_answers_every_round_then_links(
    story: Story, adapter: ProviderAdapter
) -> None:
    state = await settle(adapter, await log_in(adapter, story, "user_mfa"))
    seen: set[str] = set()
    for expected in story.mfa_rounds:
        assert state.outcome is Outcome.CHALLENGED
        assert [(c.kind, c.prompt) for c in state.challenges] == list(expected)
        assert all(c.options == [] for c in state.challenges)
        assert all((c.deadline is not None) is story.deadlines for c in state.challenges)
        ids = [c.id for c in state.challenges]
        assert not seen & set(ids)
        seen |= set(ids)
        # Read again within the round: the same challenges.
        assert [c.id for c in (await adapter.poll(state.session)).challenges] == ids
        state = await answer(adapter, story, state, *right_answers(state))
    assert (state.outcome, state.raw_status) == (Outcome.LINKED, story.linked)
    assert len(await adapter.fetch_accounts(state.session)) == len(story.accounts)


async def test_user_otp_chooses_where_the_code_goes_then_enters_it(
    story: Story, adapter: ProviderAdapter
) -> None:
    state = await settle(adapter, await log_in(adapter, story, "user_otp"))
    for kinds in story.otp_rounds:
        assert state.outcome is Outcome.CHALLENGED
        assert tuple(c.kind for c in state.challenges) == kinds
        assert all(bool(c.options) is c.kind.has_options for c in state.challenges)
        state = await answer(adapter, story, state, *right_answers(state))
    assert (state.outcome, state.raw_status) == (Outcome.LINKED, story.linked)


@pytest.mark.parametrize(
    ("username", "password"),
    [("user_bad", "pass_good"), ("user_good", "not-the-password"), ("nobody", "pass_good")],
    ids=["user_bad", "wrong-password", "unknown-user"],
)
async def test_bad_credentials_fail_the_link(
    story: Story, adapter: ProviderAdapter, username: str, password: str
) -> None:
    with pytest.raises(LinkFailure) as failure:
        await settle(adapter, await start(adapter, username, password))
    assert (failure.value.reason, failure.value.raw_status) == (
        LinkReason.INVALID_CREDENTIALS,
        story.invalid,
    )
    assert "username and password" in failure.value.message
    assert password not in failure.value.message


async def test_a_wrong_answer_asks_the_same_again_under_new_ids(
    story: Story, adapter: ProviderAdapter
) -> None:
    first = await settle(adapter, await log_in(adapter, story, "user_mfa"))
    second = await answer(adapter, story, first, *["wrong"] * len(first.challenges))
    assert second.outcome is Outcome.CHALLENGED
    assert [c.prompt for c in second.challenges] == [c.prompt for c in first.challenges]
    assert not {c.id for c in second.challenges} & {c.id for c in first.challenges}
    assert (await finish(adapter, story, second)).outcome is Outcome.LINKED


async def test_three_wrong_rounds_fail_mfa(story: Story, adapter: ProviderAdapter) -> None:
    state = await settle(adapter, await log_in(adapter, story, "user_mfa"))
    state = await answer(adapter, story, state, *["wrong-1"] * len(state.challenges))
    state = await answer(adapter, story, state, *["wrong-2"] * len(state.challenges))
    if story.mfa_failed is None:
        again = await answer(adapter, story, state, *["wrong-3"] * len(state.challenges))
        assert again.outcome is Outcome.CHALLENGED
        assert not {c.id for c in again.challenges} & {c.id for c in state.challenges}
        return
    with pytest.raises(LinkFailure) as failure:
        await answer(adapter, story, state, *["wrong-3"] * len(state.challenges))
    assert (failure.value.reason, failure.value.raw_status) == (
        LinkReason.MFA_FAILED,
        story.mfa_failed,
    )


async def test_user_hold_needs_the_users_action(story: Story, adapter: ProviderAdapter) -> None:
    held = await settle(adapter, await log_in(adapter, story, "user_hold"))
    assert (held.outcome, held.reason, held.raw_status) == (
        Outcome.ACTION_REQUIRED,
        LinkReason.PROVIDER_HOLD,
        story.hold,
    )
    assert held.message
    assert story.hold_says in held.message
    # Reading again tells the same hold, until the user has acted.
    again = await adapter.poll(held.session)
    assert (again.outcome, again.raw_status, again.message) == (
        held.outcome,
        held.raw_status,
        held.message,
    )


async def test_user_slow_stays_in_progress_then_links(
    story: Story, adapter: ProviderAdapter
) -> None:
    began = time.monotonic()
    state = await log_in(adapter, story, "user_slow")
    for _ in range(100):
        if state.outcome is not Outcome.PENDING:
            break
        await asyncio.sleep(0.1)
        state = await adapter.poll(state.session)
    assert (state.outcome, state.raw_status) == (Outcome.LINKED, story.linked)
    assert time.monotonic() - began >= SLOW_JOB_SECONDS


async def test_user_unsupported_is_unsupported_mfa(story: Story, adapter: ProviderAdapter) -> None:
    with pytest.raises(LinkFailure) as failure:
        await settle(adapter, await log_in(adapter, story, "user_unsupported"))
    assert (failure.value.reason, failure.value.raw_status) == (
        LinkReason.UNSUPPORTED_MFA,
        story.unsupported,
    )
    assert story.unsupported_says in failure.value.message.lower()


async def test_revoke_removes_the_link_and_is_repeatable(
    story: Story, adapter: ProviderAdapter
) -> None:
    linked = await settle(adapter, await log_in(adapter, story, "user_good"))
    await adapter.revoke(linked.session)
    if story.revoked_unknown:
        with pytest.raises(ProviderRejectedRequest) as gone:
            await adapter.poll(linked.session)
        assert gone.value.status_code == 404
    if story.revoked_lists_nothing:
        assert await adapter.fetch_accounts(linked.session) == []
    await adapter.revoke(linked.session)  # Already gone is not an error.


async def test_a_key_the_provider_refuses_is_a_rejected_request(
    story: Story, sandbox_url: str
) -> None:
    refused_adapter = story.refused_keys(sandbox_url)
    try:
        with pytest.raises(ProviderRejectedRequest) as refused:
            await start(refused_adapter, "user_good")
    finally:
        await refused_adapter.aclose()
    assert refused.value.status_code == 401
    assert refused.value.error_code == story.refusal_code
    assert "HTTP 401" in str(refused.value)
    assert WRONG_SECRET not in str(refused.value)


UNKNOWN_INSTITUTIONS = {
    Provider.MX: "nobank",
    Provider.ARCADIA: "no-such-utility",
    Provider.UNBILL: "nocompany",
}


@pytest.mark.parametrize(
    "provider", list(UNKNOWN_INSTITUTIONS), ids=[p.value for p in UNKNOWN_INSTITUTIONS]
)
async def test_an_institution_the_provider_does_not_know_is_unavailable(
    provider: Provider, sandbox_url: str
) -> None:
    adapter = ADAPTERS[provider].from_settings(ProviderSettings(sandbox_url=sandbox_url))
    request = link_request(provider, "user_good", institution_code=UNKNOWN_INSTITUTIONS[provider])
    try:
        with pytest.raises(LinkFailure) as failure:
            await adapter.login("link-1", request, idempotency_key=new_key())
    finally:
        await adapter.aclose()
    assert failure.value.reason is LinkReason.INSTITUTION_UNAVAILABLE
