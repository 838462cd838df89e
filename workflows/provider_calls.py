"""The link's calls to its provider, typed: each step's input model is the activity's own.

A step is one call and, for links started since steps follow their jobs (`one_call_per_step`),
the provider's job followed for a few seconds and the accounts read once it is LINKED, all in the
same activity; a step's answer then usually arrives in the same workflow task as the update that
asked for it. Short steps a user waits on run as local activities (no activity task round trip,
one history event); a scheduled refresh, a provider whose logins take minutes (Synapse) and every
longer wait run as ordinary activities, which heartbeat and move to another worker if this one
dies. Links recorded before
make their calls as they did then, one activity per call, so their histories replay.

Every call goes through `workflow.execute_activity_method` or its local twin, so mypy
rejects an input model that does not match its activity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.errors import LINK_FAILURE, NON_RETRYABLE_ERROR_TYPES, LinkFailureDetails
    from activities.provider import (
        AccountsResult,
        AnswerInput,
        LoginInput,
        ProviderActivities,
        ReauthenticateInput,
        SessionInput,
        SessionStep,
        StepState,
        WaitInput,
    )
    from linkflow.models import Challenge, ChallengeAnswer, LinkReason, LinkRequest, Provider

InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")

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
# One ordinary activity follows a provider's job this long; past it, durable timers take over.
ACTIVE_WAIT_SECONDS = 20.0
# A step that runs locally follows the job this long: under the workflow task's own timeout
# (10 s, which the worker extends every 8 s while a local activity runs), so a quick job never
# costs a task of its own, and a slow one moves on to ordinary activities.
LOCAL_FOLLOW_SECONDS = 5.0
LOCAL_STEP_TIMEOUT = timedelta(seconds=30)
# A local step's first retries wait inside the worker; longer backoffs (a provider that is down)
# become durable timers, so the workflow task is not kept open (and heartbeating) for minutes.
LOCAL_RETRY_THRESHOLD = timedelta(seconds=3)


class ProviderCallFailed(Exception):
    """A provider call failed for good (its retries spent, or the provider's final word).

    `cause` is the activity's own failure: an ordinary activity's comes wrapped in an
    `ActivityError`, a local activity's does not, and the link reads both the same way.
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause

    @property
    def is_final(self) -> bool:
        """The provider's final word (a documented business failure), rather than an outage,
        a timeout or a refusal that a fix on our side can mend."""
        return isinstance(self.cause, ApplicationError) and self.cause.type == LINK_FAILURE

    def explained(self) -> tuple[LinkReason, str, str | None]:
        """The reason, the user's message and the provider's raw status."""
        cause = self.cause
        if isinstance(cause, ApplicationError) and cause.type == LINK_FAILURE and cause.details:
            details = LinkFailureDetails.model_validate(cause.details[0])
            return details.reason, cause.message, details.raw_status
        return LinkReason.PROVIDER_ERROR, f"The provider kept failing: {cause}", None


class ProviderCalls:
    """One link's provider calls, made the way its run was recorded."""

    def __init__(self, provider: Provider, *, one_call_per_step: bool) -> None:
        self.provider = provider
        self.one_call_per_step = one_call_per_step
        self._steps = 0
        self._slow = provider in SLOW_PROVIDER_CALL_TIMEOUTS
        self._step_timeout = SLOW_PROVIDER_CALL_TIMEOUTS.get(provider, PROVIDER_CALL_TIMEOUT)

    def _following(self) -> dict[str, Any]:
        if not self.one_call_per_step:
            return {}
        follow = ACTIVE_WAIT_SECONDS if self._slow else LOCAL_FOLLOW_SECONDS
        # The step's Idempotency-Key, the same for each of its attempts: counted, not drawn, so
        # it depends on nothing but the run's own story.
        self._steps += 1
        step_key = f"{workflow.info().run_id}-step-{self._steps}"
        return {"follow_seconds": follow, "fetch_accounts": True, "step_key": step_key}

    async def login(self, link_id: str, request: LinkRequest) -> StepState:
        data = LoginInput(link_id=link_id, request=request, **self._following())
        return await self._step(ProviderActivities.provider_login, data, "log in")

    async def answer(
        self, session: dict[str, str], challenges: list[Challenge], answers: list[ChallengeAnswer]
    ) -> StepState:
        data = AnswerInput(
            provider=self.provider,
            session=session,
            challenges=challenges,
            answers=answers,
            **self._following(),
        )
        return await self._step(
            ProviderActivities.provider_answer, data, f"send {len(answers)} MFA answer(s)"
        )

    async def reauthenticate(
        self, link_id: str, request: LinkRequest, session: dict[str, str]
    ) -> StepState:
        data = ReauthenticateInput(
            link_id=link_id, request=request, session=session, **self._following()
        )
        return await self._step(ProviderActivities.provider_reauthenticate, data, "log in again")

    async def refresh(self, session: dict[str, str]) -> StepState:
        data = SessionStep(provider=self.provider, session=session, **self._following())
        # No one waits on a scheduled refresh: an ordinary activity, whose retries cost no
        # workflow tasks while a provider is down.
        return await self._step(
            ProviderActivities.provider_refresh, data, "refresh", slow=False, local=False
        )

    async def resolve_hold(self, session: dict[str, str]) -> StepState:
        data = SessionStep(provider=self.provider, session=session, **self._following())
        return await self._step(
            ProviderActivities.provider_resolve_hold,
            data,
            "tell the provider the hold is resolved",
            slow=False,
        )

    async def wait(
        self,
        session: dict[str, str],
        seconds: float,
        pending_challenge_ids: list[str] | None = None,
    ) -> StepState:
        """Follow the provider's job (or a push approval) in an ordinary, heartbeating activity."""
        data = WaitInput(
            provider=self.provider,
            session=session,
            max_wait_seconds=seconds,
            pending_challenge_ids=pending_challenge_ids or [],
            fetch_accounts=self.one_call_per_step,
        )
        summary = (
            "wait for the user's approval on their device"
            if pending_challenge_ids
            else "wait for the provider"
        )
        return await self._activity(
            ProviderActivities.provider_wait, data, summary, timedelta(seconds=seconds + 30)
        )

    async def fetch_accounts(self, session: dict[str, str]) -> AccountsResult:
        data = SessionInput(provider=self.provider, session=session)
        return await self._activity(
            ProviderActivities.provider_fetch_accounts,
            data,
            "fetch accounts",
            PROVIDER_CALL_TIMEOUT,
        )

    async def revoke(self, session: dict[str, str]) -> None:
        data = SessionInput(provider=self.provider, session=session)
        if self.one_call_per_step:
            await self._local(ProviderActivities.provider_revoke, data, "revoke the link")
        else:
            await self._activity(
                ProviderActivities.provider_revoke, data, "revoke the link", PROVIDER_CALL_TIMEOUT
            )

    async def _step(
        self,
        activity: Callable[[ProviderActivities, InputT], Awaitable[ResultT]],
        data: InputT,
        summary: str,
        *,
        slow: bool | None = None,
        local: bool = True,
    ) -> ResultT:
        slow = self._slow if slow is None else slow
        if self.one_call_per_step and local and not slow:
            return await self._local(activity, data, summary)
        timeout = self._step_timeout if slow else PROVIDER_CALL_TIMEOUT
        return await self._activity(activity, data, summary, timeout)

    async def _activity(
        self,
        activity: Callable[[ProviderActivities, InputT], Awaitable[ResultT]],
        data: InputT,
        summary: str,
        start_to_close: timedelta,
    ) -> ResultT:
        try:
            return await workflow.execute_activity_method(
                activity,
                data,
                start_to_close_timeout=start_to_close,
                heartbeat_timeout=PROVIDER_HEARTBEAT_TIMEOUT,
                retry_policy=PROVIDER_CALL_RETRY,
                summary=f"{self.provider.value}: {summary}",
            )
        except ActivityError as error:
            raise ProviderCallFailed(error.cause or error) from error

    async def _local(
        self,
        activity: Callable[[ProviderActivities, InputT], Awaitable[ResultT]],
        data: InputT,
        summary: str,
    ) -> ResultT:
        try:
            return await workflow.execute_local_activity_method(
                activity,
                data,
                start_to_close_timeout=LOCAL_STEP_TIMEOUT,
                retry_policy=PROVIDER_CALL_RETRY,
                local_retry_threshold=LOCAL_RETRY_THRESHOLD,
                summary=f"{self.provider.value}: {summary}",
            )
        except ActivityError as error:
            raise ProviderCallFailed(error.cause or error) from error
        except FailureError as error:
            raise ProviderCallFailed(error) from error
