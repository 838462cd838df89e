"""AccountLinkWorkflow: one end user's link at one provider, as a durable state machine.

The workflow holds the truth about the link. It logs in through activities, follows the provider's
job with short activity waits and durable backoff timers, and runs MFA rounds: each round shows the
pending challenges with a deadline, accepts answers through the `submit_mfa` update (or the
`answer_mfa` signal), sends them to the provider once every challenge of the round is answered, and
returns the next challenge or the result in the same round trip. No I/O happens here.

Once connected (or held), the link lives on: it refreshes on a durable timer, waits in
ACTION_REQUIRED for the user when the provider needs them (`reauthenticate`, `update_credentials`,
`resolve_hold`), ends UNLINKED on `unlink`, and continues as new every so many refreshes so that
its history stays bounded. Each status change starts a signed webhook delivery beside the link.

Nothing a caller sends can fail a workflow task. The workflow is registered dynamic and its
handlers take raw payloads (see `workflows/inbox.py`): an unreadable start ends the link FAILED with
`INVALID_REQUEST` at once, a malformed update is refused by its validator, and a malformed signal
is recorded as a refusal and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.errors import LINK_FAILURE, NON_RETRYABLE_ERROR_TYPES, LinkFailureDetails
    from activities.provider import (
        AnswerInput,
        LoginInput,
        ProviderActivities,
        ReauthenticateInput,
        SessionInput,
        WaitInput,
    )
    from activities.webhooks import WebhookDelivery
    from linkflow.models import (
        MAX_ANSWER_LENGTH,
        CarriedLink,
        Challenge,
        ChallengeAnswer,
        ChallengeKind,
        LinkReason,
        LinkRequest,
        LinkSnapshot,
        LinkStatus,
        MfaSubmission,
        Provider,
        ProviderTrouble,
        RelinkRequest,
        StatusChange,
        WebhookEvent,
    )
    from linkflow.refusals import bounded, quote
    from linkflow.temporal import LINK_PROVIDER, LINK_STATUS, LINK_USER_REF
    from providers.base import Outcome, ProviderState
    from workflows.inbox import NO_PAYLOAD, MalformedMessage, read_only_payload, read_payload
    from workflows.webhook_delivery import WebhookDeliveryWorkflow

WORKFLOW_TYPE = "AccountLinkWorkflow"
ANSWER_MFA_SIGNAL = "answer_mfa"
SETTLED_UPDATE = "settled"

ResultT = TypeVar("ResultT", bound=BaseModel)
# Where a living link rested before a step of its later life: status, reason, message.
Resting = tuple[LinkStatus, LinkReason | None, str | None]

PROVIDER_CALL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
    non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
)
PROVIDER_CALL_TIMEOUT = timedelta(seconds=60)
# Synapse's bank logins "can take awhile": its document advises a little over 300 seconds.
SLOW_PROVIDER_CALL_TIMEOUTS = {Provider.SYNAPSE: timedelta(seconds=330)}
# Activities heartbeat every few seconds while a provider works; silence this long means the
# worker died, and Temporal retries the call elsewhere instead of waiting out its timeout.
PROVIDER_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
# One activity waits this long for a provider's job; past it, durable timers take over.
ACTIVE_WAIT_SECONDS = 20.0
# Durable backoff between provider checks once the job outlasts an activity's wait.
PROVIDER_RECHECK_DELAYS = (5, 10, 30, 60, 120, 300, 900, 1800, 3600)
# Links that existed before they rode out bad days gave a provider's job 30 minutes; a provider
# may take days (Arcadia's ISSUE_UNDER_REVIEW), so a job now has a week, checked hourly at most.
LEGACY_MAX_PROVIDER_JOB_SECONDS = 30 * 60
MAX_PROVIDER_JOB_SECONDS = 7 * 24 * 60 * 60
RIDES_OUT_BAD_DAYS_PATCH = "rides-out-bad-days"
# A living link whose provider fails tries again after these delays (capped at its refresh
# interval), keeping its last data; after PROVIDER_TROUBLE_ESCALATES_AFTER of failures it says so
# as ACTION_REQUIRED (INSTITUTION_UNAVAILABLE), still trying, until the provider answers again.
PROVIDER_TROUBLE_RETRY_SECONDS = (300, 900, 3600, 4 * 3600, 12 * 3600)
PROVIDER_TROUBLE_ESCALATES_AFTER = timedelta(days=3)
STATUS_HISTORY_LENGTH = 20
# Links that existed before links lived past their first connection end there, as they did.
LIVING_LINK_PATCH = "living-link"

# Holds can clear by themselves (an emailed approval, an enrollment), so a held link keeps
# checking on its refresh schedule; a link waiting for new credentials or a fresh MFA does not,
# as logging in again with what failed could lock the user's account.
RECHECKED_REASONS = frozenset(
    {LinkReason.PROVIDER_HOLD, LinkReason.ACCOUNT_LOCKED, LinkReason.INSTITUTION_UNAVAILABLE}
)
# What a failed step of a connected link's later life means: the user can mend it.
RECOVERABLE_LATER = {
    LinkReason.INVALID_CREDENTIALS: LinkReason.REAUTH_REQUIRED,
    LinkReason.MFA_TIMEOUT: LinkReason.MFA_REFRESH_REQUIRED,
    LinkReason.MFA_FAILED: LinkReason.MFA_REFRESH_REQUIRED,
}

# Where a caller waiting for the link's next stop gets its answer.
ASKING_OR_RESTING = frozenset(
    {
        LinkStatus.MFA_REQUIRED,
        LinkStatus.CONNECTED,
        LinkStatus.ACTION_REQUIRED,
        LinkStatus.FAILED,
        LinkStatus.UNLINKED,
    }
)

NEXT_STEP = {
    LinkStatus.CONNECTING: "wait: the provider is working",
    LinkStatus.MFA_REQUIRED: "answer the pending challenges",
    LinkStatus.CONNECTED: "nothing: the link is live and refreshes on schedule",
    LinkStatus.ACTION_REQUIRED: "act as the message says, then resume this link",
    LinkStatus.FAILED: "start a new link, or nothing",
    LinkStatus.UNLINKED: "nothing",
}
NEXT_STEP_BY_REASON = {
    LinkReason.REAUTH_REQUIRED: "send the new password with the `update_credentials` update",
    LinkReason.MFA_REFRESH_REQUIRED: "send `reauthenticate`, then answer the new challenges",
    LinkReason.PROVIDER_HOLD: "act at the provider as the message says, then send `resolve_hold`",
    LinkReason.ACCOUNT_LOCKED: "unlock the account at the provider, then send `resolve_hold`",
}


class Command(StrEnum):
    """What the living link does next, asked by a timer or by one of its updates."""

    REFRESH = "refresh"
    REAUTHENTICATE = "reauthenticate"
    UPDATE_CREDENTIALS = "update_credentials"
    RESOLVE_HOLD = "resolve_hold"


class _LinkEnded(Exception):
    """Raised inside the run to stop the link with a final status."""

    def __init__(self, status: LinkStatus, reason: LinkReason | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class _UnlinkRequested(Exception):
    """Raised at the link's next waiting point once `unlink` has been accepted."""


class _ProviderStillWorking(_LinkEnded):
    """The provider's job outlasted the wait: the end of a first login, a bad day later on."""

    def __init__(self, message: str) -> None:
        super().__init__(LinkStatus.FAILED, LinkReason.PROVIDER_ERROR, message)


# Dynamic, so that the SDK hands the start's payloads over unread, however many and whatever they
# hold; `run` ends any other workflow type at once. Clients start it by its name, WORKFLOW_TYPE.
@workflow.defn(dynamic=True)
class AccountLinkWorkflow:
    @workflow.init
    def __init__(self, inputs: Sequence[RawValue]) -> None:
        now = workflow.now()
        self._link = LinkSnapshot(
            link_id=workflow.info().workflow_id,
            status=LinkStatus.CONNECTING,
            started_at=now,
            updated_at=now,
            history=[StatusChange(at=now, status=LinkStatus.CONNECTING)],
        )
        self._provider_session: dict[str, str] = {}
        self._events_sent = 0
        self._valid_request: LinkRequest | None = None
        self._continued = False
        try:
            request = _read_start(inputs)
        except MalformedMessage as refusal:
            self._link.status = LinkStatus.FAILED
            self._link.reason = LinkReason.INVALID_REQUEST
            self._link.message = str(refusal)
            self._link.history = [
                StatusChange(at=now, status=LinkStatus.FAILED, reason=LinkReason.INVALID_REQUEST)
            ]
        else:
            self._valid_request = request.model_copy(update={"carried": None})
            self._link.provider = request.provider
            if request.carried is not None:
                self._continued = True
                self._link = request.carried.snapshot.model_copy(deep=True)
                self._link.attempts.runs += 1
                self._provider_session = dict(request.carried.provider_session)
                self._events_sent = request.carried.events_sent
        self._command: Command | None = None
        self._unlink_requested = False
        self._settles = 0
        self._refreshes_this_run = 0
        self._deliveries: list[asyncio.Task[None]] = []
        self._pending: dict[str, Challenge] = {}
        self._answers: dict[str, ChallengeAnswer] = {}
        # challenge id -> (round, digest of its accepted answer), to recognise identical repeats.
        self._accepted: dict[str, tuple[int, str]] = {}
        self._round = 0
        self._settled_round = 0
        self._provider_sets_deadline = False
        self._just_answered: list[Challenge] = []
        self._ended = False

    # ---------------------------------------------------------------- the run

    @property
    def _request(self) -> LinkRequest:
        # Only a link whose start was readable gets past the first lines of `run`.
        if self._valid_request is None:
            raise RuntimeError("The link has no readable start request.")
        return self._valid_request

    @_request.setter
    def _request(self, request: LinkRequest) -> None:
        self._valid_request = request

    @workflow.run
    async def run(self, inputs: Sequence[RawValue]) -> LinkSnapshot:
        workflow_type = workflow.info().workflow_type
        if workflow_type != WORKFLOW_TYPE:
            raise ApplicationError(
                f"This worker runs no workflow type {quote(workflow_type)}.",
                type="UnknownWorkflowType",
                non_retryable=True,
            )
        self._publish(search_attributes_changed=True)
        if self._valid_request is None:
            self._ended = True
            return self._snapshot()
        try:
            if not self._continued:
                state = await self._provider_call(
                    ProviderActivities.provider_login,
                    LoginInput(link_id=self._link.link_id, request=self._request),
                    summary="log in",
                    start_to_close=self._slow_call_timeout,
                )
                self._link.attempts.logins += 1
                await self._follow(state)
            if self._continued or workflow.patched(LIVING_LINK_PATCH):
                await self._live()
        except _LinkEnded as ended:
            self._end(ended.status, ended.reason, ended.message)
        except ActivityError as error:
            reason, message, raw_status = _failure_from(error)
            self._link.provider_status = raw_status or self._link.provider_status
            self._end(LinkStatus.FAILED, reason, message)
        except _UnlinkRequested:
            await self._unlink()
        self._ended = True
        await self._wait_for_background_work()
        return self._snapshot()

    async def _follow(self, state: ProviderState, *, user_present: bool = True) -> None:
        """Drive the provider's job from `state` until the link is connected or needs the user.

        `user_present` is false for a scheduled refresh: a challenge then cannot be answered
        within minutes, so the link asks the user to come back instead of starting a deadline.
        """
        while True:
            self._note_provider_state(state)
            if self._unlink_requested:
                raise _UnlinkRequested
            if state.outcome is Outcome.PENDING:
                state = await self._wait_for_provider()
            elif state.outcome is Outcome.CHALLENGED and not user_present:
                # Cleared before the status change publishes the details, which name it.
                self._link.next_refresh_at = None
                self._set_status(
                    LinkStatus.ACTION_REQUIRED,
                    reason=LinkReason.MFA_REFRESH_REQUIRED,
                    message="The provider asks you to verify your identity again before it"
                    " shares new data. Reauthenticate, then answer its questions.",
                )
                self._settle()
                return
            elif state.outcome is Outcome.CHALLENGED and not _needs_answers(state.challenges):
                state = await self._await_approval(state.challenges)
            elif state.outcome is Outcome.CHALLENGED:
                challenges, answers = await self._mfa_round(state.challenges)
                self._just_answered = challenges
                self._set_status(LinkStatus.CONNECTING)
                state = await self._provider_call(
                    ProviderActivities.provider_answer,
                    AnswerInput(
                        provider=self._request.provider,
                        session=self._provider_session,
                        challenges=challenges,
                        answers=answers,
                    ),
                    summary=f"send {len(answers)} MFA answer(s)",
                    start_to_close=self._slow_call_timeout,
                )
            elif state.outcome is Outcome.LINKED:
                result = await self._provider_call(
                    ProviderActivities.provider_fetch_accounts,
                    SessionInput(provider=self._request.provider, session=self._provider_session),
                    summary="fetch accounts",
                )
                self._link.accounts = result.accounts
                self._link.provider_trouble = None
                self._link.last_answer_rejected = False
                now = workflow.now()
                self._link.last_refreshed_at = now
                self._link.next_refresh_at = now + self._refresh_interval
                self._set_status(
                    LinkStatus.CONNECTED, message=f"{len(result.accounts)} account(s) linked."
                )
                self._settle()
                return
            else:
                reason = state.reason or LinkReason.PROVIDER_HOLD
                self._link.next_refresh_at = (
                    workflow.now() + self._refresh_interval if reason in RECHECKED_REASONS else None
                )
                self._set_status(LinkStatus.ACTION_REQUIRED, reason=reason, message=state.message)
                self._settle()
                return

    async def _wait_for_provider(self) -> ProviderState:
        """Follow a provider job: a short active wait, then durable rechecks that back off."""
        started = workflow.now()
        for delay in _recheck_delays():
            state = await self._provider_call(
                ProviderActivities.provider_wait,
                WaitInput(
                    provider=self._request.provider,
                    session=self._provider_session,
                    max_wait_seconds=ACTIVE_WAIT_SECONDS,
                ),
                summary="wait for the provider",
                start_to_close=timedelta(seconds=ACTIVE_WAIT_SECONDS + 30),
            )
            if state.outcome is not Outcome.PENDING:
                return state
            self._note_provider_state(state)
            waited = (workflow.now() - started).total_seconds()
            if waited >= LEGACY_MAX_PROVIDER_JOB_SECONDS and (
                waited >= MAX_PROVIDER_JOB_SECONDS or not workflow.patched(RIDES_OUT_BAD_DAYS_PATCH)
            ):
                raise _ProviderStillWorking(
                    f"The provider was still working after {_duration_words(waited)}."
                )
            # Answer anyone waiting on an update now rather than after a long timer.
            self._settle()
            await self._pause(delay, f"provider still working; check again in {delay}s")
        raise AssertionError("unreachable: the recheck delays never end")

    def _begin_round(self, challenges: list[Challenge]) -> datetime:
        """Show a round of challenges; returns its deadline.

        The deadline is the link's window, or the provider's own expiry where it states an earlier
        one: an answer the provider would no longer take is not worth waiting for.
        """
        links_deadline = workflow.now() + timedelta(
            seconds=self._request.options.mfa_timeout_seconds
        )
        deadline = min([links_deadline, *(c.deadline for c in challenges if c.deadline)])
        self._provider_sets_deadline = deadline < links_deadline
        self._round += 1
        self._link.attempts.mfa_rounds += 1
        # A question asked again right after its answer went in means the provider rejected it
        # (every provider here answers a wrong answer so); the snapshot says so, for every UI.
        asked_again = {(c.kind, c.prompt) for c in self._just_answered}
        self._just_answered = []
        self._pending = {
            c.id: c.model_copy(
                update={
                    "deadline": deadline,
                    "after_rejected_answer": (c.kind, c.prompt) in asked_again,
                }
            )
            for c in challenges
        }
        self._link.last_answer_rejected = any(
            c.after_rejected_answer for c in self._pending.values()
        )
        self._answers = {}
        self._set_status(LinkStatus.MFA_REQUIRED)
        # The round before this one is fully processed: whoever answered it gets this snapshot.
        self._settle(self._round - 1)
        return deadline

    async def _await_approval(self, challenges: list[Challenge]) -> ProviderState:
        """A round the user completes on a device (a push approval): watch the provider."""
        deadline = self._begin_round(challenges)
        while (remaining := (deadline - workflow.now()).total_seconds()) > 0:
            if self._unlink_requested:
                raise _UnlinkRequested
            state = await self._provider_call(
                ProviderActivities.provider_wait,
                WaitInput(
                    provider=self._request.provider,
                    session=self._provider_session,
                    max_wait_seconds=min(ACTIVE_WAIT_SECONDS, remaining),
                    pending_challenge_ids=[c.id for c in challenges],
                ),
                summary="wait for the user's approval on their device",
                start_to_close=timedelta(seconds=ACTIVE_WAIT_SECONDS + 30),
            )
            if state.outcome is not Outcome.CHALLENGED or [c.id for c in state.challenges] != [
                c.id for c in challenges
            ]:
                self._pending = {}
                return state
        raise _LinkEnded(
            LinkStatus.FAILED,
            LinkReason.MFA_TIMEOUT,
            f"The sign-in was not approved within {self._window_words()}.",
        )

    async def _mfa_round(
        self, challenges: list[Challenge]
    ) -> tuple[list[Challenge], list[ChallengeAnswer]]:
        """Show one round of challenges and wait, up to the deadline, for all their answers."""
        deadline = self._begin_round(challenges)
        try:
            await workflow.wait_condition(
                lambda: self._round_complete() or self._unlink_requested,
                timeout=max(0.0, (deadline - workflow.now()).total_seconds()),
                timeout_summary=f"MFA round {self._round} deadline",
            )
            if self._unlink_requested:
                raise _UnlinkRequested
        except TimeoutError:
            # An answer accepted in the same workflow task as the timer still counts.
            if not self._round_complete():
                raise _LinkEnded(
                    LinkStatus.FAILED,
                    LinkReason.MFA_TIMEOUT,
                    f"No answer arrived within {self._window_words()}.",
                ) from None
        round_challenges = list(self._pending.values())
        answers = [self._answers[c.id] for c in round_challenges if c.id in self._answers]
        self._pending = {}
        self._answers = {}
        return round_challenges, answers

    def _window_words(self) -> str:
        """The round's window in words: the link's, or the provider's when it was shorter."""
        if self._provider_sets_deadline:
            return "the time the provider allows"
        return f"{self._request.options.mfa_timeout_seconds} seconds"

    async def _pause(self, seconds: float, summary: str) -> None:
        """A durable timer that an accepted `unlink` cuts short."""
        try:
            await workflow.wait_condition(
                lambda: self._unlink_requested, timeout=seconds, timeout_summary=summary
            )
        except TimeoutError:
            return
        raise _UnlinkRequested

    # ---------------------------------------------------------------- the link's later life

    async def _live(self) -> None:
        """Keep a connected or held link alive: refresh on schedule, serve the user's updates."""
        while True:
            command = await self._next_command()
            await self._carry_out(command)
            self._command = None
            self._settle()
            if self._refreshes_this_run >= self._request.options.refreshes_per_run or (
                workflow.info().is_continue_as_new_suggested()
            ):
                await self._continue_as_new()

    async def _next_command(self) -> Command:
        """Wait for an update's command or the next refresh, whichever comes first."""
        due = self._link.next_refresh_at
        timeout = None if due is None else max(0.0, (due - workflow.now()).total_seconds())
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._command is not None or self._unlink_requested,
                timeout=timeout,
                timeout_summary="next refresh",
            )
        if self._unlink_requested:
            raise _UnlinkRequested
        return self._command or Command.REFRESH

    async def _carry_out(self, command: Command) -> None:
        """One step of the link's later life; what the user can mend leaves it ACTION_REQUIRED.

        A provider that fails or keeps working (an outage, a bad day) does not end a link that has
        lived for months: it rests as it was, with its last data, and tries again later.
        """
        resting: Resting = (self._link.status, self._link.reason, self._link.message)
        session = SessionInput(provider=self._request.provider, session=self._provider_session)
        try:
            if command is Command.REFRESH:
                self._link.attempts.refreshes += 1
                self._refreshes_this_run += 1
                state = await self._provider_call(
                    ProviderActivities.provider_refresh, session, summary="refresh"
                )
                await self._follow(state, user_present=False)
                return
            self._set_status(LinkStatus.CONNECTING, message="Connecting to the provider again.")
            if command is Command.RESOLVE_HOLD:
                state = await self._provider_call(
                    ProviderActivities.provider_resolve_hold,
                    session,
                    summary="tell the provider the hold is resolved",
                )
            else:
                state = await self._provider_call(
                    ProviderActivities.provider_reauthenticate,
                    ReauthenticateInput(
                        link_id=self._link.link_id,
                        request=self._request,
                        session=self._provider_session,
                    ),
                    summary="log in again",
                    start_to_close=self._slow_call_timeout,
                )
                self._link.attempts.logins += 1
            await self._follow(state)
        except _ProviderStillWorking as ended:
            if not workflow.patched(RIDES_OUT_BAD_DAYS_PATCH):
                self._after_failed_step(ended.status, ended.reason, ended.message)
                return
            self._ride_out(resting, ended.message)
        except _LinkEnded as ended:
            self._after_failed_step(ended.status, ended.reason, ended.message)
        except ActivityError as error:
            reason, message, raw_status = _failure_from(error)
            if not _is_final(error) and workflow.patched(RIDES_OUT_BAD_DAYS_PATCH):
                self._ride_out(resting, message)
                return
            self._link.provider_status = raw_status or self._link.provider_status
            self._after_failed_step(LinkStatus.FAILED, reason, message)

    def _ride_out(self, resting: Resting, why: str) -> None:
        """Rest as before the failed step, and try again later on a backing-off schedule.

        A link the schedule checks (connected, or held) retries by itself; one waiting for its
        user (new credentials, a fresh MFA) stays waiting, and the user's next try goes through.
        """
        now = workflow.now()
        trouble = self._link.provider_trouble
        failures = (trouble.failures if trouble else 0) + 1
        since = trouble.since if trouble else now
        status, reason, message = resting
        self._pending = {}
        self._answers = {}
        retry_at: datetime | None = None
        if status is LinkStatus.CONNECTED or reason in RECHECKED_REASONS:
            ladder = PROVIDER_TROUBLE_RETRY_SECONDS
            delay = min(ladder[min(failures, len(ladder)) - 1], self._refresh_interval_seconds)
            retry_at = now + timedelta(seconds=delay)
            if status is LinkStatus.CONNECTED and now - since >= PROVIDER_TROUBLE_ESCALATES_AFTER:
                status, reason = LinkStatus.ACTION_REQUIRED, LinkReason.INSTITUTION_UNAVAILABLE
                message = (
                    f"The provider has not answered since {since:%Y-%m-%d %H:%M} UTC; the link"
                    " keeps its last data and keeps trying."
                )
        self._link.provider_trouble = ProviderTrouble(
            since=since, failures=failures, message=why, retry_at=retry_at
        )
        self._link.next_refresh_at = retry_at
        self._set_status(status, reason, message)

    def _after_failed_step(
        self, status: LinkStatus, reason: LinkReason | None, message: str
    ) -> None:
        later = RECOVERABLE_LATER.get(reason) if reason is not None else None
        if later is None:
            raise _LinkEnded(status, reason, message)
        self._pending = {}
        self._answers = {}
        self._link.next_refresh_at = None
        self._set_status(LinkStatus.ACTION_REQUIRED, reason=later, message=message)

    async def _continue_as_new(self) -> None:
        """Start the next run with this one's state, once nothing is left in flight here.

        An update that arrives meanwhile is served first (its handler waits for the link, so
        waiting for handlers alone could wait forever); the next pass of the loop comes back.
        """
        await asyncio.gather(*self._deliveries)
        await workflow.wait_condition(
            lambda: (
                workflow.all_handlers_finished()
                or self._command is not None
                or self._unlink_requested
            )
        )
        if self._command is not None or self._unlink_requested:
            return
        carried = CarriedLink(
            snapshot=self._snapshot(),
            provider_session=self._provider_session,
            events_sent=self._events_sent,
        )
        workflow.continue_as_new(self._request.model_copy(update={"carried": carried}))

    async def _unlink(self) -> None:
        self._pending = {}
        self._answers = {}
        message = "The link was removed at the provider."
        if self._provider_session:
            try:
                await workflow.execute_activity_method(
                    ProviderActivities.provider_revoke,
                    SessionInput(provider=self._request.provider, session=self._provider_session),
                    start_to_close_timeout=PROVIDER_CALL_TIMEOUT,
                    heartbeat_timeout=PROVIDER_HEARTBEAT_TIMEOUT,
                    retry_policy=PROVIDER_CALL_RETRY,
                    summary=f"{self._request.provider.value}: revoke the link",
                )
            except ActivityError as error:
                _, detail, _ = _failure_from(error)
                message = f"The link was removed here; the provider did not confirm: {detail}"
        self._link.next_refresh_at = None
        self._end(LinkStatus.UNLINKED, None, message)

    async def _wait_for_background_work(self) -> None:
        await asyncio.gather(*self._deliveries)
        await workflow.wait_condition(workflow.all_handlers_finished)

    @property
    def _refresh_interval(self) -> timedelta:
        return timedelta(seconds=self._refresh_interval_seconds)

    @property
    def _refresh_interval_seconds(self) -> int:
        return self._request.options.refresh_interval_seconds

    # ---------------------------------------------------------------- messages

    @workflow.query(name="snapshot")
    def snapshot(self) -> LinkSnapshot:
        return self._snapshot()

    # Update handlers take a `RawValue` (with a default, for an update sent with no payload) and
    # read it themselves; the validator reads the same payload first and refuses what it cannot.

    @workflow.update(name="submit_mfa")
    async def submit_mfa(self, submission: RawValue = NO_PAYLOAD) -> LinkSnapshot:
        """Answer pending challenges (an `MfaSubmission`); returns the next challenge or result."""
        answered_round = self._accept(read_payload(submission, MfaSubmission, "submit_mfa update"))
        if answered_round == self._round and not self._round_complete():
            return self._snapshot()
        await workflow.wait_condition(lambda: self._settled_round >= answered_round or self._ended)
        return self._snapshot()

    @submit_mfa.validator
    def validate_submit_mfa(self, submission: RawValue = NO_PAYLOAD) -> None:
        self._check(read_payload(submission, MfaSubmission, "submit_mfa update"))

    @workflow.signal(dynamic=True)
    def on_signal(self, name: str, payloads: Sequence[RawValue]) -> None:
        """`answer_mfa`: the same answer as `submit_mfa`, for clients that can only signal.

        Dynamic, so that a signal with no payload, several, or one the SDK cannot decode still
        reaches the link, which records why it refused it. Other signal names are refused too.
        """
        try:
            if name != ANSWER_MFA_SIGNAL:
                raise MalformedMessage(
                    f"The link takes no signal by that name ({len(name)} characters); answers"
                    f" go by {ANSWER_MFA_SIGNAL!r}."
                )
            submission = read_only_payload(payloads, MfaSubmission, "answer_mfa signal")
            self._check(submission)
        except ValueError as refusal:
            self._link.last_refusal = bounded(str(refusal))
            self._link.attempts.answers_refused += 1
            workflow.logger.warning("Refused a signal: %s", self._link.last_refusal)
            return
        self._link.last_refusal = None
        self._accept(submission)

    @workflow.update(name="reauthenticate")
    async def reauthenticate(self) -> LinkSnapshot:
        """Log in again (a fresh MFA, say); returns the first challenge or the result."""
        return await self._run_command(Command.REAUTHENTICATE)

    @reauthenticate.validator
    def validate_reauthenticate(self) -> None:
        self._check_command(Command.REAUTHENTICATE)

    @workflow.update(name="update_credentials")
    async def update_credentials(self, relink: RawValue = NO_PAYLOAD) -> LinkSnapshot:
        """Resume the link with the user's new credentials (a `RelinkRequest`; update mode)."""
        credentials = read_payload(relink, RelinkRequest, "update_credentials update").credentials
        self._request = self._request.model_copy(update={"credentials": credentials})
        return await self._run_command(Command.UPDATE_CREDENTIALS)

    @update_credentials.validator
    def validate_update_credentials(self, relink: RawValue = NO_PAYLOAD) -> None:
        read_payload(relink, RelinkRequest, "update_credentials update")
        self._check_command(Command.UPDATE_CREDENTIALS)

    @workflow.update(name="resolve_hold")
    async def resolve_hold(self) -> LinkSnapshot:
        """The user has done what the hold asked; the provider is told and the link goes on."""
        return await self._run_command(Command.RESOLVE_HOLD)

    @resolve_hold.validator
    def validate_resolve_hold(self) -> None:
        self._check_command(Command.RESOLVE_HOLD)

    @workflow.update(name="unlink")
    async def unlink(self) -> LinkSnapshot:
        """Revoke the link at the provider and end it UNLINKED."""
        self._unlink_requested = True
        await workflow.wait_condition(lambda: self._ended)
        return self._snapshot()

    @unlink.validator
    def validate_unlink(self) -> None:
        if self._ended or self._link.status.is_final:
            raise ValueError(
                f"The link has ended ({self._link.status}); there is nothing to unlink."
            )

    @workflow.update(name=SETTLED_UPDATE)
    async def settled(self) -> LinkSnapshot:
        """The snapshot once the link asks the user (MFA_REQUIRED), rests or has ended.

        Sent with the start (update-with-start), it gives the caller the first challenge or the
        result in the same round trip, with no polling.
        """
        await workflow.wait_condition(lambda: self._ended or self._link.status in ASKING_OR_RESTING)
        return self._snapshot()

    async def _run_command(self, command: Command) -> LinkSnapshot:
        self._command = command
        settled = self._settles
        await workflow.wait_condition(lambda: self._settles > settled or self._ended)
        return self._snapshot()

    def _check_command(self, command: Command) -> None:
        """Refuse a later-life update the link cannot take now, saying why."""
        status, reason = self._link.status, self._link.reason
        if self._ended or status.is_final:
            raise ValueError(f"The link has ended ({status}); start a new link instead.")
        if self._unlink_requested:
            raise ValueError("The link is being unlinked.")
        if self._command is not None or status not in (
            LinkStatus.CONNECTED,
            LinkStatus.ACTION_REQUIRED,
        ):
            raise ValueError(
                f"The link is busy ({status}); try again once it is CONNECTED or ACTION_REQUIRED."
            )
        if command is Command.RESOLVE_HOLD and (
            status is not LinkStatus.ACTION_REQUIRED or reason not in RECHECKED_REASONS
        ):
            raise ValueError(
                f"The link is not held by the provider ({status}"
                + (f", {reason}" if reason else "")
                + "); there is no hold to resolve."
            )

    def _check(self, submission: MfaSubmission) -> None:
        """Refuse, with a sentence a person understands, any answer the round cannot take.

        Only ids the provider issued are quoted back: an id the link does not know may be
        anything a careless client put there, its user's password included.
        """
        if not submission.answers:
            raise ValueError("The submission has no answers.")
        seen: set[str] = set()
        for answer in submission.answers:
            challenge_id = answer.challenge_id
            if challenge_id in seen:
                raise ValueError(
                    f"Challenge {self._named(challenge_id)} is answered twice in one submission."
                )
            seen.add(challenge_id)
            value = answer.value.get_secret_value().strip()
            accepted = self._accepted.get(challenge_id)
            if accepted is not None:
                if accepted[1] == self._digest(challenge_id, value):
                    continue
                raise ValueError(
                    f"Challenge {quote(challenge_id)} was already answered;"
                    " its answer cannot be changed."
                )
            challenge = self._pending.get(challenge_id)
            if challenge is None:
                if not self._pending:
                    raise ValueError(
                        f"No MFA challenge is pending for this link (status {self._link.status})."
                    )
                pending = ", ".join(quote(pending_id) for pending_id in self._pending)
                raise ValueError(
                    f"Unknown challenge (an id of {len(challenge_id)} characters that is not"
                    f" pending); pending: {pending}."
                )
            if not challenge.kind.needs_answer:
                where = (
                    "at the provider's page it links to"
                    if challenge.kind is ChallengeKind.REDIRECT
                    else "on the user's device"
                )
                raise ValueError(
                    f"Challenge {quote(challenge_id)} is completed {where}; it takes no answer."
                )
            if not value:
                raise ValueError(f"The answer to challenge {quote(challenge_id)} is empty.")
            if len(value) > MAX_ANSWER_LENGTH:
                raise ValueError(
                    f"The answer to challenge {quote(challenge_id)} is longer than"
                    f" {MAX_ANSWER_LENGTH} characters."
                )
            if challenge.kind.has_options and value not in challenge.option_values():
                raise ValueError(
                    f"The answer to challenge {quote(challenge_id)} is not one of its options:"
                    f" {', '.join(challenge.option_values())}."
                )

    def _named(self, challenge_id: str) -> str:
        known = challenge_id in self._pending or challenge_id in self._accepted
        return (
            quote(challenge_id) if known else f"(an unknown id of {len(challenge_id)} characters)"
        )

    def _accept(self, submission: MfaSubmission) -> int:
        """Record checked answers; returns the latest round they belong to."""
        answered_round = 0
        for answer in submission.answers:
            value = answer.value.get_secret_value().strip()
            accepted = self._accepted.get(answer.challenge_id)
            if accepted is not None:
                answered_round = max(answered_round, accepted[0])
                continue
            self._answers[answer.challenge_id] = ChallengeAnswer(
                challenge_id=answer.challenge_id, value=value
            )
            self._accepted[answer.challenge_id] = (
                self._round,
                self._digest(answer.challenge_id, value),
            )
            self._link.attempts.answers_submitted += 1
            answered_round = self._round
        return answered_round

    def _digest(self, challenge_id: str, value: str) -> str:
        salt = workflow.info().workflow_id
        return hashlib.sha256(f"{salt}\0{challenge_id}\0{value}".encode()).hexdigest()

    def _round_complete(self) -> bool:
        return bool(self._pending) and all(
            challenge_id in self._answers
            for challenge_id, challenge in self._pending.items()
            if challenge.kind.needs_answer
        )

    def _settle(self, round_number: int | None = None) -> None:
        """Tell update handlers waiting on a round or a command that the provider has answered."""
        self._settled_round = self._round if round_number is None else round_number
        self._settles += 1

    # ---------------------------------------------------------------- state and visibility

    def _snapshot(self) -> LinkSnapshot:
        return self._link.model_copy(
            update={
                "pending_challenges": [
                    challenge
                    for challenge_id, challenge in self._pending.items()
                    if challenge_id not in self._answers
                ]
            },
            deep=True,
        )

    def _note_provider_state(self, state: ProviderState) -> None:
        self._provider_session = state.session or self._provider_session
        if state.raw_status != self._link.provider_status:
            self._link.provider_status = state.raw_status
            self._link.updated_at = workflow.now()
            self._publish()

    def _set_status(
        self,
        status: LinkStatus,
        reason: LinkReason | None = None,
        message: str | None = None,
    ) -> None:
        changed = (status, reason) != (self._link.status, self._link.reason)
        now = workflow.now()
        self._link.status = status
        self._link.reason = reason
        self._link.message = message
        self._link.updated_at = now
        if changed:
            self._link.history = [
                *self._link.history,
                StatusChange(at=now, status=status, reason=reason),
            ][-STATUS_HISTORY_LENGTH:]
            self._announce(now)
        self._publish(search_attributes_changed=changed)

    def _announce(self, at: datetime) -> None:
        """Start delivering the status change to the app's webhook, beside the link."""
        url = self._request.options.webhook_url
        if url is None:
            return
        self._events_sent += 1
        event = WebhookEvent(
            id=f"{self._link.link_id}:{self._events_sent}",
            sequence=self._events_sent,
            link_id=self._link.link_id,
            provider=self._request.provider,
            status=self._link.status,
            reason=self._link.reason,
            message=self._link.message,
            occurred_at=at,
        )
        self._deliveries.append(
            asyncio.create_task(self._start_delivery(WebhookDelivery(url=url, event=event)))
        )

    async def _start_delivery(self, delivery: WebhookDelivery) -> None:
        # An event whose delivery is already under way (the same id) is not delivered twice.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                WebhookDeliveryWorkflow.run,
                delivery,
                id=f"{delivery.event.id}:webhook",
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"webhook: {delivery.event.status.value}",
            )

    def _end(self, status: LinkStatus, reason: LinkReason | None, message: str) -> None:
        self._pending.clear()
        self._answers.clear()
        self._set_status(status, reason, message)
        self._settle()

    def _publish(self, *, search_attributes_changed: bool = False) -> None:
        """Keep Temporal Web's view current: search attributes and the Markdown details."""
        if search_attributes_changed:
            updates = [LINK_STATUS.value_set(self._link.status.value)]
            if self._link.provider is not None:
                updates.append(LINK_PROVIDER.value_set(self._link.provider.value))
            if self._valid_request is not None and self._valid_request.user_ref_key:
                updates.append(LINK_USER_REF.value_set(self._valid_request.user_ref_key))
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(_details_markdown(self._snapshot()))

    # ---------------------------------------------------------------- activities

    @property
    def _slow_call_timeout(self) -> timedelta:
        """Login and answer calls wait as long as the provider's logins may take."""
        return SLOW_PROVIDER_CALL_TIMEOUTS.get(self._request.provider, PROVIDER_CALL_TIMEOUT)

    async def _provider_call(
        self,
        activity: Callable[..., Awaitable[ResultT]],
        data: BaseModel,
        *,
        summary: str,
        start_to_close: timedelta = PROVIDER_CALL_TIMEOUT,
    ) -> ResultT:
        return await workflow.execute_activity(
            activity,
            args=[data],
            start_to_close_timeout=start_to_close,
            heartbeat_timeout=PROVIDER_HEARTBEAT_TIMEOUT,
            retry_policy=PROVIDER_CALL_RETRY,
            summary=f"{self._request.provider.value}: {summary}",
        )


def _read_start(inputs: Sequence[RawValue]) -> LinkRequest:
    """The start's one `LinkRequest`; state carried across runs only from the link itself."""
    request = read_only_payload(inputs, LinkRequest, "start request")
    if request.carried is not None and workflow.info().continued_run_id is None:
        raise MalformedMessage(
            "The start request carries a previous run's state (`carried`), which only the link"
            " itself may hand to its next run; leave it out."
        )
    return request


def _needs_answers(challenges: list[Challenge]) -> bool:
    return any(challenge.kind.needs_answer for challenge in challenges)


def _recheck_delays() -> Iterator[int]:
    yield from PROVIDER_RECHECK_DELAYS
    while True:
        yield PROVIDER_RECHECK_DELAYS[-1]


def _is_final(error: ActivityError) -> bool:
    """Whether a failed provider call is the provider's final word (a documented business
    failure), rather than an outage, a timeout or a refusal that a fix on our side can mend."""
    cause = error.cause
    return isinstance(cause, ApplicationError) and cause.type == LINK_FAILURE


def _duration_words(seconds: float) -> str:
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.0f} days"
    if seconds >= 2 * 3_600:
        return f"{seconds / 3_600:.0f} hours"
    return f"{seconds / 60:.0f} minutes"


def _failure_from(error: ActivityError) -> tuple[LinkReason, str, str | None]:
    """The reason, the user's message and the provider's raw status of a failed provider call."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == LINK_FAILURE and cause.details:
        details = LinkFailureDetails.model_validate(cause.details[0])
        return details.reason, cause.message, details.raw_status
    reason_text = str(cause) if cause is not None else str(error)
    return LinkReason.PROVIDER_ERROR, f"The provider kept failing: {reason_text}", None


def _details_markdown(link: LinkSnapshot) -> str:
    lines = [f"**{link.status.value}**" + (f" ({link.reason.value})" if link.reason else "")]
    provider = link.provider.value if link.provider else "-"
    lines.append(f"Provider: {provider}, raw status `{link.provider_status or '-'}`.")
    next_step = NEXT_STEP[link.status]
    if link.status is LinkStatus.ACTION_REQUIRED and link.reason in NEXT_STEP_BY_REASON:
        next_step = NEXT_STEP_BY_REASON[link.reason]
    lines.append(f"Next: {next_step}.")
    if link.message:
        lines.append(f"> {link.message}")
    for challenge in link.pending_challenges:
        deadline = challenge.deadline.strftime("%H:%M:%S UTC") if challenge.deadline else "-"
        lines.append(
            f"- `{challenge.id}` ({challenge.kind.value}, answer by {deadline}): {challenge.prompt}"
        )
    if link.accounts:
        lines.append(f"{len(link.accounts)} account(s) linked.")
    if link.next_refresh_at:
        lines.append(f"Next refresh: {link.next_refresh_at:%Y-%m-%d %H:%M:%S} UTC.")
    return "\n\n".join(lines)
