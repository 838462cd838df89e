"""AccountLinkWorkflow: one end user's link at one provider, told as its story.

The link logs in, follows the provider's job and runs MFA rounds (answers come by the `submit_mfa`
update or the `answer_mfa` signal). Once connected (or held) it lives on: it refreshes on a durable
timer, waits in ACTION_REQUIRED when its user must act, ends UNLINKED on `unlink`, and continues as
new every so many refreshes. Its parts live beside it: `mfa_round`, `waiting`, `provider_calls`,
`link_record`, `webhook_outbox`, `later_life`, and `inbox` (no message can fail a workflow task).

Why no lock: only `run` changes the link's status and calls the provider. Handlers check in their
validators, record answers or a command in one synchronous step, then wait for the run to settle;
Temporal runs one coroutine at a time up to its next `await`, so no handler sees half a change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    # Not `from workflows import inbox`: the sandbox would import it anew for every run.
    import workflows.inbox as inbox
    import workflows.later_life as later_life
    import workflows.link_record as link_record
    from activities.provider import StepState
    from activities.webhooks import WEBHOOK_BACKLOG_QUERY, WebhookBacklog
    from linkflow.models import LinkReason, LinkSnapshot, LinkStatus, MfaSubmission, RelinkRequest
    from providers.base import Outcome, ProviderState
    from workflows.later_life import Command
    from workflows.provider_calls import ProviderCallFailed, ProviderCalls
    from workflows.waiting import RIDES_OUT_BAD_DAYS_PATCH as RIDES_OUT_BAD_DAYS
    from workflows.waiting import LinkEnded, ProviderStillWorking, UnlinkRequested, Waiting

WORKFLOW_TYPE = "AccountLinkWorkflow"
ANSWER_MFA_SIGNAL = "answer_mfa"
SETTLED_UPDATE = "settled"
# Links that existed before links lived past their first connection end there, as they did.
LIVING_LINK_PATCH = "living-link"


@workflow.defn(dynamic=True)
class AccountLinkWorkflow:
    @workflow.init
    def __init__(self, inputs: Sequence[RawValue]) -> None:
        self._record = link_record.LinkRecord.from_start(inputs)
        self._command: Command | None = None
        self._unlink_requested = self._ended = False
        self._refreshes_this_run = 0

    @workflow.run
    async def run(self, inputs: Sequence[RawValue]) -> LinkSnapshot:
        inbox.refuse_other_workflow_types(WORKFLOW_TYPE)
        record = self._record
        record.choose_paths()
        record.publish(write_attributes=True)
        if record.request is None:
            self._ended = True
            return record.snapshot()
        request = record.request
        self._calls = ProviderCalls(request.provider, one_call_per_step=record.folded)
        self._waits = Waiting(record, self._calls, lambda: self._unlink_requested)
        try:
            if not record.continued:
                record.link.attempts.logins += 1
                await self._follow(await self._calls.login(record.link.link_id, request))
            if record.continued or record.runs_code_since(LIVING_LINK_PATCH):
                await self._live()
        except LinkEnded as ended:
            record.end(ended.status, ended.reason, ended.message)
        except ProviderCallFailed as failed:
            reason, message, raw_status = failed.explained()
            record.link.provider_status = raw_status or record.link.provider_status
            record.end(LinkStatus.FAILED, reason, message)
        except UnlinkRequested:
            await later_life.unlink(record, self._calls)
        self._ended = True
        await record.outbox.close()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return record.snapshot()

    async def _follow(self, state: ProviderState, *, user_present: bool = True) -> None:
        """Drive the provider's job until the link is connected or needs the user (a scheduled
        refresh has no user present: a challenge then asks the user to come back)."""
        record = self._record
        while True:
            record.note_provider_state(state)
            self._waits.check_unlink()
            challenged = state.outcome is Outcome.CHALLENGED
            if state.outcome is Outcome.PENDING:
                state = await self._waits.for_provider()
            elif challenged and not user_present:
                return record.needs_fresh_mfa()
            elif challenged and not any(c.kind.needs_answer for c in state.challenges):
                state = await self._waits.for_approval(state)
            elif challenged:
                challenges, answers = await self._waits.for_answers(state)
                record.set_status(LinkStatus.CONNECTING)
                state = await self._calls.answer(record.session, challenges, answers)
            elif state.outcome is Outcome.LINKED:
                accounts = state.accounts if isinstance(state, StepState) else None
                if accounts is None:
                    accounts = (await self._calls.fetch_accounts(record.session)).accounts
                return record.connected(accounts)
            else:
                reason = state.reason or LinkReason.PROVIDER_HOLD
                rechecked = reason in later_life.RECHECKED_REASONS
                return record.held(reason, state.message, rechecked=rechecked)

    # ---------------------------------------------------------------- the link's later life

    async def _live(self) -> None:
        """Keep a connected or held link alive: refresh on schedule, serve the user's updates."""
        record = self._record
        while True:
            due = record.link.next_refresh_at
            timeout = None if due is None else max(0.0, (due - workflow.now()).total_seconds())
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    self._asked,
                    timeout=timeout,
                    timeout_summary="next refresh",
                )
            self._waits.check_unlink()
            await self._carry_out(self._command or Command.REFRESH)
            self._command = None
            record.settle()
            if self._refreshes_this_run >= record.valid_request.options.refreshes_per_run or (
                workflow.info().is_continue_as_new_suggested()
            ):
                await self._continue_as_new()

    async def _carry_out(self, command: Command) -> None:
        """One step of the link's later life; a bad day at the provider does not end the link."""
        record = self._record
        resting = later_life.Resting.of(record.link)
        try:
            if command is Command.REFRESH:
                record.link.attempts.refreshes += 1
                self._refreshes_this_run += 1
                state = await self._calls.refresh(record.session)
                return await self._follow(state, user_present=False)
            record.set_status(LinkStatus.CONNECTING, message="Connecting to the provider again.")
            if command is Command.RESOLVE_HOLD:
                state = await self._calls.resolve_hold(record.session)
            else:
                record.link.attempts.logins += 1
                state = await self._calls.reauthenticate(
                    record.link.link_id, record.valid_request, record.session
                )
            await self._follow(state)
        except ProviderStillWorking as ended:
            if record.runs_code_since(RIDES_OUT_BAD_DAYS):
                return later_life.rest_through_trouble(record, resting, ended.message)
            if not later_life.ask_user_to_mend(record, ended.reason, ended.message):
                raise
        except LinkEnded as ended:
            if not later_life.ask_user_to_mend(record, ended.reason, ended.message):
                raise
        except ProviderCallFailed as failed:
            reason, message, raw_status = failed.explained()
            if not failed.is_final and record.runs_code_since(RIDES_OUT_BAD_DAYS):
                return later_life.rest_through_trouble(record, resting, message)
            record.link.provider_status = raw_status or record.link.provider_status
            if not later_life.ask_user_to_mend(record, reason, message):
                raise LinkEnded(LinkStatus.FAILED, reason, message) from None

    async def _continue_as_new(self) -> None:
        """Start the next run with this one's state once nothing is in flight. An update arriving
        meanwhile is served first (waiting for its handler alone could wait forever)."""
        record = self._record
        await record.outbox.close()
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() or self._asked())
        if self._asked():
            return
        carried = record.carried()
        workflow.continue_as_new(record.valid_request.model_copy(update={"carried": carried}))

    def _asked(self) -> bool:
        return self._command is not None or self._unlink_requested

    # ---------------------------------------------------------------- messages

    @workflow.query(name="snapshot")
    def snapshot(self) -> LinkSnapshot:
        return self._record.snapshot()

    @workflow.query(name=WEBHOOK_BACKLOG_QUERY)
    def webhook_backlog(self) -> WebhookBacklog:
        return self._record.webhook_backlog()

    # Update handlers take a `RawValue` (with a default, for an update sent with no payload) and
    # read it themselves; the validator reads the same payload first and refuses what it cannot.

    @workflow.update(name="submit_mfa")
    async def submit_mfa(self, submission: RawValue = inbox.NO_PAYLOAD) -> LinkSnapshot:
        """Answer pending challenges (an `MfaSubmission`); returns the next challenge or result."""
        record = self._record
        submitted = inbox.read_payload(submission, MfaSubmission, "submit_mfa update")
        answered_round = self._accept(submitted)
        if answered_round < record.round.number or record.round.complete:
            await workflow.wait_condition(
                lambda: record.settled_round >= answered_round or self._ended
            )
        return record.snapshot()

    @submit_mfa.validator
    def validate_submit_mfa(self, submission: RawValue = inbox.NO_PAYLOAD) -> None:
        submitted = inbox.read_payload(submission, MfaSubmission, "submit_mfa update")
        self._record.round.check(submitted, self._record.link.status)

    @workflow.signal(dynamic=True)
    def on_signal(self, name: str, payloads: Sequence[RawValue]) -> None:
        """`answer_mfa`: the same answer as `submit_mfa`, for clients that can only signal.

        Dynamic, so that a signal with no payload, several, or one the SDK cannot decode still
        reaches the link, which records why it refused it. Other signal names are refused too.
        """
        try:
            submission = inbox.read_signal(name, payloads, ANSWER_MFA_SIGNAL, MfaSubmission)
            self._record.round.check(submission, self._record.link.status)
        except ValueError as refusal:
            return self._record.refused_signal(refusal)
        self._record.link.last_refusal = None
        self._accept(submission)

    def _accept(self, submission: MfaSubmission) -> int:
        answered_round, new = self._record.round.accept(submission)
        self._record.link.attempts.answers_submitted += new
        return answered_round

    @workflow.update(name="reauthenticate")
    async def reauthenticate(self) -> LinkSnapshot:
        """Log in again (a fresh MFA, say); returns the first challenge or the result."""
        return await self._run_command(Command.REAUTHENTICATE)

    @reauthenticate.validator
    def validate_reauthenticate(self) -> None:
        self._check_command(Command.REAUTHENTICATE)

    @workflow.update(name="update_credentials")
    async def update_credentials(self, relink: RawValue = inbox.NO_PAYLOAD) -> LinkSnapshot:
        """Resume the link with the user's new credentials (a `RelinkRequest`; update mode)."""
        relinked = inbox.read_payload(relink, RelinkRequest, "update_credentials update")
        self._record.relink(relinked.credentials)
        return await self._run_command(Command.UPDATE_CREDENTIALS)

    @update_credentials.validator
    def validate_update_credentials(self, relink: RawValue = inbox.NO_PAYLOAD) -> None:
        inbox.read_payload(relink, RelinkRequest, "update_credentials update")
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
        return self._record.snapshot()

    @unlink.validator
    def validate_unlink(self) -> None:
        if self._ended or self._record.link.status.is_final:
            status = self._record.link.status
            raise ValueError(f"The link has ended ({status}); there is nothing to unlink.")

    @workflow.update(name=SETTLED_UPDATE)
    async def settled(self) -> LinkSnapshot:
        """The snapshot once the link asks the user, rests or has ended; sent with the start
        (update-with-start), it gives the first challenge or the result in one round trip."""
        record = self._record
        await workflow.wait_condition(
            lambda: self._ended or record.link.status in link_record.ASKING_OR_RESTING
        )
        return record.snapshot()

    async def _run_command(self, command: Command) -> LinkSnapshot:
        self._command = command
        settles = self._record.settles
        await workflow.wait_condition(lambda: self._record.settles > settles or self._ended)
        return self._record.snapshot()

    def _check_command(self, command: Command) -> None:
        busy, ended, unlinking = self._command is not None, self._ended, self._unlink_requested
        link = self._record.link
        if refusal := later_life.refused_command(link, command, busy, ended, unlinking):
            raise ValueError(refusal)
