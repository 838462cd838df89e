"""Where a link waits: for its provider's job, for its user's answers or approval, for a timer.

Every wait here is durable (activities and timers in the link's history) and gives way to an
accepted `unlink` at its next step. A provider's job is followed by an activity for a while, then
checked on a backing-off schedule of durable timers, for up to a week; a round of challenges waits
for every answer up to its deadline; a push approval is watched at the provider until the user
grants it or the round's window closes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from linkflow.models import Challenge, ChallengeAnswer, LinkReason, LinkStatus
    from providers.base import Outcome, ProviderState
    from workflows import link_metrics
    from workflows.link_record import LinkRecord, duration_words
    from workflows.provider_calls import ACTIVE_WAIT_SECONDS, ProviderCalls

RIDES_OUT_BAD_DAYS_PATCH = "rides-out-bad-days"
# Durable backoff between provider checks once the job outlasts an activity's wait. A job had 30
# minutes before links rode out bad days; now a week (Arcadia's reviews take days).
PROVIDER_RECHECK_DELAYS = (5, 10, 30, 60, 120, 300, 900, 1800, 3600)
LEGACY_MAX_PROVIDER_JOB_SECONDS = 30 * 60
MAX_PROVIDER_JOB_SECONDS = 7 * 24 * 60 * 60


class LinkEnded(Exception):
    """Stops the link's current story with a status: the end of a first login, or a failed
    step of its later life."""

    def __init__(self, status: LinkStatus, reason: LinkReason | None, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


class ProviderStillWorking(LinkEnded):
    """The provider's job outlasted the wait: the end of a first login, a bad day later on."""

    def __init__(self, message: str) -> None:
        super().__init__(LinkStatus.FAILED, LinkReason.PROVIDER_ERROR, message)


class UnlinkRequested(Exception):
    """Raised at the link's next waiting point once `unlink` has been accepted."""


class Waiting:
    """The link's waits, cut short by `unlinking()` turning true."""

    def __init__(
        self, record: LinkRecord, calls: ProviderCalls, unlinking: Callable[[], bool]
    ) -> None:
        self._record = record
        self._calls = calls
        self._unlinking = unlinking
        self._provider_sets_deadline = False
        self._asked_at = workflow.now()

    def check_unlink(self) -> None:
        if self._unlinking():
            raise UnlinkRequested

    async def for_provider(self) -> ProviderState:
        """Follow a provider job: a short active wait, then durable rechecks that back off."""
        record = self._record
        started = workflow.now()
        record.publish(write_attributes=record.folded)  # visibility shows a long job
        for delay in _recheck_delays():
            state = await self._calls.wait(record.session, ACTIVE_WAIT_SECONDS)
            if state.outcome is not Outcome.PENDING:
                return state
            record.note_provider_state(state)
            waited = (workflow.now() - started).total_seconds()
            if waited >= LEGACY_MAX_PROVIDER_JOB_SECONDS and (
                waited >= MAX_PROVIDER_JOB_SECONDS
                or not record.runs_code_since(RIDES_OUT_BAD_DAYS_PATCH)
            ):
                raise ProviderStillWorking(
                    f"The provider was still working after {duration_words(waited)}."
                )
            record.settle()  # answer anyone waiting on an update now, not after a long timer
            await self.pause(delay, f"provider still working; check again in {delay}s")
        raise AssertionError("unreachable: the recheck delays never end")

    async def for_answers(
        self, state: ProviderState
    ) -> tuple[list[Challenge], list[ChallengeAnswer]]:
        """Show one round of challenges and wait, up to the deadline, for all their answers."""
        mfa_round = self._record.round
        remaining = self._begin_round(state)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: mfa_round.complete or self._unlinking(),
                timeout=remaining,
                timeout_summary=f"MFA round {mfa_round.number} deadline",
            )
        self.check_unlink()
        # An answer accepted in the same workflow task as the timer still counts.
        if not mfa_round.complete:
            message = f"No answer arrived within {self._window_words()}."
            raise LinkEnded(LinkStatus.FAILED, LinkReason.MFA_TIMEOUT, message)
        answered_in = (workflow.now() - self._asked_at).total_seconds()
        link_metrics.answer_settled(self._calls.provider.value, answered_in)
        return mfa_round.take()

    async def for_approval(self, state: ProviderState) -> ProviderState:
        """A round the user completes on a device (a push approval): watch the provider."""
        asked = [c.id for c in state.challenges]
        deadline = workflow.now() + timedelta(seconds=self._begin_round(state))
        while (remaining := (deadline - workflow.now()).total_seconds()) > 0:
            self.check_unlink()
            seconds = min(ACTIVE_WAIT_SECONDS, remaining)
            state = await self._calls.wait(
                self._record.session, seconds, pending_challenge_ids=asked
            )
            if state.outcome is not Outcome.CHALLENGED or [c.id for c in state.challenges] != asked:
                self._record.round.close()
                return state
        message = f"The sign-in was not approved within {self._window_words()}."
        raise LinkEnded(LinkStatus.FAILED, LinkReason.MFA_TIMEOUT, message)

    async def pause(self, seconds: float, summary: str) -> None:
        """A durable timer that an accepted `unlink` cuts short."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(self._unlinking, timeout=seconds, timeout_summary=summary)
        self.check_unlink()

    def _begin_round(self, state: ProviderState) -> float:
        """Show a round; returns the seconds to its deadline: the link's window, or the
        provider's own expiry where earlier (an answer it would refuse is not worth waiting for)."""
        record = self._record
        self._asked_at = workflow.now()
        window = timedelta(seconds=record.valid_request.options.mfa_timeout_seconds)
        links_deadline = workflow.now() + window
        deadline = min([links_deadline, *(c.deadline for c in state.challenges if c.deadline)])
        self._provider_sets_deadline = deadline < links_deadline
        record.round.begin(state.challenges, deadline)
        record.link.last_refusal = None  # a refused signal was about the round before
        record.link.attempts.mfa_rounds += 1
        record.link.last_answer_rejected = record.round.follows_a_rejected_answer
        record.set_status(LinkStatus.MFA_REQUIRED)
        record.settle(record.round.number - 1)  # whoever answered the last round gets this one
        return max(0.0, (deadline - workflow.now()).total_seconds())

    def _window_words(self) -> str:
        if self._provider_sets_deadline:
            return "the time the provider allows"
        return f"{self._record.valid_request.options.mfa_timeout_seconds} seconds"


def _recheck_delays() -> Iterator[int]:
    yield from PROVIDER_RECHECK_DELAYS
    while True:
        yield PROVIDER_RECHECK_DELAYS[-1]
