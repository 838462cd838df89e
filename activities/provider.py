"""Activities that call provider adapters, with Temporal's concerns added.

Each activity is one provider call (or one bounded wait), takes one input model and returns one
result model. The adapters do the HTTP; these methods add idempotency keys, heartbeats while a
provider works, and the translation of every failure into a typed `ApplicationError`.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import PROVIDER_REJECTED_REQUEST, PROVIDER_UNAVAILABLE, to_application_error
from linkflow.models import Account, Challenge, ChallengeAnswer, LinkRequest, Provider
from providers.base import Outcome, ProviderAdapter, ProviderState

T = TypeVar("T")
HEARTBEAT_EVERY_SECONDS = 5.0
ADAPTER_ERROR = "ProviderAdapterError"

logger = logging.getLogger(__name__)


class LoginInput(BaseModel):
    link_id: str
    request: LinkRequest


class WaitInput(BaseModel):
    provider: Provider
    session: dict[str, str]
    max_wait_seconds: float = Field(default=20.0, gt=0)
    pending_challenge_ids: list[str] = Field(
        default_factory=list,
        description="Also keep waiting while the provider still asks exactly these challenges"
        " (a push approval the user has not granted yet).",
    )
    poll_interval_seconds: float = Field(default=0.25, gt=0)


class AnswerInput(BaseModel):
    provider: Provider
    session: dict[str, str]
    challenges: list[Challenge]
    answers: list[ChallengeAnswer]


class SessionInput(BaseModel):
    provider: Provider
    session: dict[str, str]


class ReauthenticateInput(BaseModel):
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
                activity.heartbeat()
        except Exception as error:
            typed = to_application_error(error)
            if typed is None:
                raise _unexpected(error) from None
            raise typed from error
        finally:
            task.cancel()

    @activity.defn
    async def provider_login(self, data: LoginInput) -> ProviderState:
        adapter = self._adapter(data.request.provider)
        return await self._call_provider(
            adapter.login(data.link_id, data.request, idempotency_key=idempotency_key())
        )

    @activity.defn
    async def provider_wait(self, data: WaitInput) -> ProviderState:
        """Poll until the provider's job leaves PENDING, or until `max_wait_seconds` pass.

        A short wait here answers the user quickly; longer waits are the workflow's durable
        timers, so a provider that works for an hour never holds an activity for an hour.
        """
        adapter = self._adapter(data.provider)
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + data.max_wait_seconds
        state: ProviderState | None = None
        while True:
            pause = max(data.poll_interval_seconds, adapter.min_poll_interval_seconds)
            try:
                state = await self._call_provider(adapter.poll(data.session))
            except ApplicationError as error:
                # One failed read among many is no reason to fail the wait: keep polling, and
                # let Temporal retry only a wait in which the provider never answered.
                if error.non_retryable or loop.time() >= give_up_at:
                    raise
                activity.heartbeat(f"poll failed: {error.type}")
                if error.next_retry_delay is not None:  # the provider's Retry-After
                    pause = max(pause, error.next_retry_delay.total_seconds())
            else:
                if not _still_waiting(state, data):
                    return state
                activity.heartbeat(state.raw_status)
            if loop.time() >= give_up_at:
                if state is None:
                    raise ApplicationError(
                        "The provider did not answer any read while the job was followed.",
                        type=PROVIDER_UNAVAILABLE,
                    )
                return state
            await asyncio.sleep(max(0.0, min(pause, give_up_at - loop.time())))

    @activity.defn
    async def provider_answer(self, data: AnswerInput) -> ProviderState:
        adapter = self._adapter(data.provider)
        return await self._call_provider(
            adapter.answer(
                data.session, data.challenges, data.answers, idempotency_key=idempotency_key()
            )
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
    async def provider_refresh(self, data: SessionInput) -> ProviderState:
        adapter = self._adapter(data.provider)
        return await self._call_provider(
            adapter.refresh(data.session, idempotency_key=idempotency_key())
        )

    @activity.defn
    async def provider_reauthenticate(self, data: ReauthenticateInput) -> ProviderState:
        adapter = self._adapter(data.request.provider)
        return await self._call_provider(
            adapter.reauthenticate(
                data.link_id, data.request, data.session, idempotency_key=idempotency_key()
            )
        )

    @activity.defn
    async def provider_resolve_hold(self, data: SessionInput) -> ProviderState:
        adapter = self._adapter(data.provider)
        return await self._call_provider(
            adapter.resolve_hold(data.session, idempotency_key=idempotency_key())
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


def _still_waiting(state: ProviderState, waiting: WaitInput) -> bool:
    if state.outcome is Outcome.PENDING:
        return True
    return (
        state.outcome is Outcome.CHALLENGED
        and bool(waiting.pending_challenge_ids)
        and [c.id for c in state.challenges] == waiting.pending_challenge_ids
    )
