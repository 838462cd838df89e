"""Activities that call provider adapters, with Temporal's concerns added.

Each activity is one step of the link at the provider: the call, then (when the workflow asks,
with `follow_seconds`) following the provider's job until it leaves PENDING, and reading the
accounts once it is LINKED (`fetch_accounts`), so that one answer costs one activity. It takes one
input model and returns one result model. The adapters do the HTTP; these methods add idempotency
keys, heartbeats while a provider works (not for local activities, which cannot heartbeat), polling
that starts soon and backs off (never faster than the provider allows), and the translation of
every failure into a typed `ApplicationError`.

Links recorded before steps followed their jobs send neither field and get the old behaviour: the
call alone.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import PROVIDER_REJECTED_REQUEST, PROVIDER_UNAVAILABLE, to_application_error
from linkflow.models import Account, Challenge, ChallengeAnswer, LinkRequest, Provider
from providers.base import Outcome, ProviderAdapter, ProviderState

T = TypeVar("T")
HEARTBEAT_EVERY_SECONDS = 5.0
# Following a job: the first read at once, the next 20 ms later, then every 25 ms for about two
# seconds (bench/speed.py: a 0.3 s job is seen 37 ms after it ends, against 54 ms reading every
# 50 ms), then every `longest` pause (a quarter second by default) for about eight seconds, then
# every second. A provider's own limit (MX: three seconds) always wins; only the sandbox allows
# these.
FIRST_POLL_PAUSE = 0.02
QUICK_POLL_PAUSE_CAP = 0.025
QUICK_POLLS = 80
STEADY_POLLS = 32
ADAPTER_ERROR = "ProviderAdapterError"

logger = logging.getLogger(__name__)


class ReadsAccounts(BaseModel):
    fetch_accounts: bool = Field(
        default=False, description="Once the provider says LINKED, read the accounts too."
    )


class Following(ReadsAccounts):
    """What a step does after its call: follow the provider's job, read the accounts."""

    follow_seconds: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="Follow a job still PENDING after the call for up to this long (0: return at"
        " once).",
    )
    step_key: str | None = Field(
        default=None,
        max_length=64,
        description="The step's Idempotency-Key, chosen by the workflow, so that every attempt"
        " of the step sends the same one (a local activity retried after a durable backoff runs"
        " under a new activity id).",
    )

    def idempotency_key(self) -> str:
        return self.step_key or idempotency_key()


class StepState(ProviderState):
    """Where the provider stands after a step, with the accounts when it read them."""

    accounts: list[Account] | None = None


class LoginInput(Following):
    link_id: str
    request: LinkRequest


class WaitInput(ReadsAccounts):
    """A wait follows for `max_wait_seconds` and sends nothing, so it needs no step key."""

    provider: Provider
    session: dict[str, str]
    max_wait_seconds: float = Field(default=20.0, gt=0)
    pending_challenge_ids: list[str] = Field(
        default_factory=list,
        description="Also keep waiting while the provider still asks exactly these challenges"
        " (a push approval the user has not granted yet).",
    )
    poll_interval_seconds: float = Field(default=0.25, gt=0)


class AnswerInput(Following):
    provider: Provider
    session: dict[str, str]
    challenges: list[Challenge]
    answers: list[ChallengeAnswer]


class SessionInput(BaseModel):
    provider: Provider
    session: dict[str, str]


class SessionStep(SessionInput, Following):
    """A step on a known login (a refresh, a resolved hold)."""


class ReauthenticateInput(Following):
    link_id: str
    request: LinkRequest
    session: dict[str, str]


class AccountsResult(BaseModel):
    accounts: list[Account]


def idempotency_key() -> str:
    """Stable across retries of one activity, distinct between activities (Temporal's advice)."""
    info = activity.info()
    return f"{info.workflow_run_id}-{info.activity_id}"


class ProviderActivities:
    """The worker builds one instance with the adapters it configured; their clients live here."""

    def __init__(self, adapters: Mapping[Provider, ProviderAdapter]) -> None:
        self._adapters = dict(adapters)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.provider_login,
            self.provider_wait,
            self.provider_answer,
            self.provider_fetch_accounts,
            self.provider_revoke,
            self.provider_refresh,
            self.provider_reauthenticate,
            self.provider_resolve_hold,
        ]

    async def aclose(self) -> None:
        await asyncio.gather(*(adapter.aclose() for adapter in self._adapters.values()))

    def _adapter(self, provider: Provider) -> ProviderAdapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            raise ApplicationError(
                f"This worker has no adapter for provider {provider.value!r}.",
                type=PROVIDER_REJECTED_REQUEST,
                non_retryable=True,
            )
        return adapter

    @staticmethod
    async def _call_provider(call: Awaitable[T]) -> T:
        """Await a provider call, heartbeating while it runs (bank logins can take minutes)."""
        task = asyncio.ensure_future(call)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY_SECONDS)
                if done:
                    return task.result()
                _heartbeat()
        except Exception as error:
            typed = to_application_error(error)
            if typed is None:
                raise _unexpected(error) from None
            raise typed from error
        finally:
            task.cancel()

    async def _step(
        self, adapter: ProviderAdapter, call: Awaitable[ProviderState], following: Following
    ) -> StepState:
        """The call, then the job followed and the accounts read, as `following` asks."""
        state = await self._call_provider(call)
        if state.outcome is Outcome.PENDING and following.follow_seconds > 0:
            state = await self._follow(adapter, state.session, following.follow_seconds)
        return await self._with_accounts(adapter, state, following)

    async def _with_accounts(
        self, adapter: ProviderAdapter, state: ProviderState, reads: ReadsAccounts
    ) -> StepState:
        accounts = None
        if reads.fetch_accounts and state.outcome is Outcome.LINKED:
            accounts = await self._call_provider(adapter.fetch_accounts(state.session))
        return StepState(**dict(state), accounts=accounts)

    async def _follow(
        self,
        adapter: ProviderAdapter,
        session: dict[str, str],
        seconds: float,
        *,
        pending_challenge_ids: list[str] | None = None,
        longest_pause: float = 0.25,
    ) -> ProviderState:
        """Poll until the provider's job leaves PENDING (or stops asking exactly the given
        challenges), or until `seconds` pass; returns the last state read."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        give_up_at = started + seconds
        state: ProviderState | None = None
        for pause in poll_pauses(longest_pause):
            pause = max(pause, adapter.min_poll_interval_seconds)
            try:
                state = await self._call_provider(adapter.poll(session))
            except ApplicationError as error:
                # One failed read among many is no reason to fail the wait: keep polling, and
                # let Temporal retry only a wait in which the provider never answered.
                if error.non_retryable or loop.time() >= give_up_at:
                    raise
                _heartbeat(f"poll failed: {error.type}")
                if error.next_retry_delay is not None:  # the provider's Retry-After
                    pause = max(pause, error.next_retry_delay.total_seconds())
            else:
                if not _still_waiting(state, pending_challenge_ids):
                    return state
                _heartbeat(state.raw_status)
            if loop.time() >= give_up_at:
                break
            await asyncio.sleep(max(0.0, min(pause, give_up_at - loop.time())))
        if state is None:
            raise ApplicationError(
                "The provider did not answer any read while the job was followed.",
                type=PROVIDER_UNAVAILABLE,
            )
        return state

    @activity.defn
    async def provider_login(self, data: LoginInput) -> StepState:
        adapter = self._adapter(data.request.provider)
        return await self._step(
            adapter,
            adapter.login(data.link_id, data.request, idempotency_key=data.idempotency_key()),
            data,
        )

    @activity.defn
    async def provider_wait(self, data: WaitInput) -> StepState:
        """Poll until the provider's job leaves PENDING, or until `max_wait_seconds` pass.

        A short wait here answers the user quickly; longer waits are the workflow's durable
        timers, so a provider that works for an hour never holds an activity for an hour.
        """
        adapter = self._adapter(data.provider)
        state = await self._follow(
            adapter,
            data.session,
            data.max_wait_seconds,
            pending_challenge_ids=data.pending_challenge_ids,
            longest_pause=data.poll_interval_seconds,
        )
        return await self._with_accounts(adapter, state, data)

    @activity.defn
    async def provider_answer(self, data: AnswerInput) -> StepState:
        adapter = self._adapter(data.provider)
        return await self._step(
            adapter,
            adapter.answer(
                data.session, data.challenges, data.answers, idempotency_key=data.idempotency_key()
            ),
            data,
        )

    @activity.defn
    async def provider_fetch_accounts(self, data: SessionInput) -> AccountsResult:
        adapter = self._adapter(data.provider)
        accounts = await self._call_provider(adapter.fetch_accounts(data.session))
        return AccountsResult(accounts=accounts)

    @activity.defn
    async def provider_revoke(self, data: SessionInput) -> None:
        await self._call_provider(self._adapter(data.provider).revoke(data.session))

    @activity.defn
    async def provider_refresh(self, data: SessionStep) -> StepState:
        adapter = self._adapter(data.provider)
        return await self._step(
            adapter, adapter.refresh(data.session, idempotency_key=data.idempotency_key()), data
        )

    @activity.defn
    async def provider_reauthenticate(self, data: ReauthenticateInput) -> StepState:
        adapter = self._adapter(data.request.provider)
        return await self._step(
            adapter,
            adapter.reauthenticate(
                data.link_id, data.request, data.session, idempotency_key=data.idempotency_key()
            ),
            data,
        )

    @activity.defn
    async def provider_resolve_hold(self, data: SessionStep) -> StepState:
        adapter = self._adapter(data.provider)
        return await self._step(
            adapter,
            adapter.resolve_hold(data.session, idempotency_key=data.idempotency_key()),
            data,
        )


def _unexpected(error: Exception) -> ApplicationError:
    """An adapter's bug, reported by its type and place only.

    Its message may quote what the adapter was handling (a credential, a provider's reply), and
    an activity's failure message is stored in the link's history, so neither carries it.
    """
    where = "".join(traceback.format_tb(error.__traceback__))
    logger.error("Unexpected %s in a provider adapter:\n%s", type(error).__name__, where)
    return ApplicationError(
        f"Unexpected {type(error).__name__} in the provider adapter.", type=ADAPTER_ERROR
    )


def poll_pauses(longest: float) -> Iterator[float]:
    """Pauses between reads of a job: soon after the call (a sandbox or a quick provider answers
    within tens of milliseconds), then backing off to `longest`, and to a second after a while.
    Callers never pause less than the provider allows."""
    pause = FIRST_POLL_PAUSE
    for _ in range(QUICK_POLLS):
        yield pause
        pause = min(pause * 1.5, QUICK_POLL_PAUSE_CAP, longest)
    for _ in range(STEADY_POLLS):
        yield longest
    while True:
        yield max(longest, 1.0)


def _heartbeat(*details: Any) -> None:
    # A local activity runs inside the workflow task, which the worker keeps alive instead.
    if not activity.info().is_local:
        activity.heartbeat(*details)


def _still_waiting(state: ProviderState, pending_challenge_ids: list[str] | None) -> bool:
    if state.outcome is Outcome.PENDING:
        return True
    return (
        state.outcome is Outcome.CHALLENGED
        and bool(pending_challenge_ids)
        and [c.id for c in state.challenges] == pending_challenge_ids
    )
