"""The half of every adapter that is the same: its HTTP client and the idioms all five repeat.

In the manner of python-social-auth's backend base, an adapter is a few class attributes and the
methods its provider's contract needs; `HttpAdapter` carries the rest once:

- the client, built one way for every adapter from the adapter's own headers and auth; a test
  replaces only its transport (an in-process sandbox, a mock), never what the requests carry;
- one request: the provider's idempotency header when a key is given, its status check
  (`providers/http.py`), and its JSON read;
- a removal that finds the thing gone already (404) has done its work;
- after the provider refuses an answer, the login is read again, so that a final word (the
  MFA window closed) ends the link instead of a refused request;
- the later-life defaults for a provider with no route of its own for them: a refresh reads the
  job's state, a re-authentication is a fresh login, a resolved hold is read back.

What each provider must say for itself (`provider`, `STATUSES`, `CHALLENGE_KINDS`, and the
`login` and `poll` the defaults build on) is abstract here, so mypy refuses to build an adapter
that leaves one out; the registry (`providers/registry.py`) holds every adapter to the whole
`ProviderAdapter` protocol.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar, NotRequired, TypedDict, Unpack

import httpx

from linkflow.models import ChallengeAnswer, ChallengeKind, LinkRequest, Provider
from providers.base import ProviderState
from providers.errors import LinkFailure, ProviderRejectedRequest
from providers.http import (
    idempotency_header,
    make_client,
    raise_for_provider_status,
    read_json,
    read_object,
)
from providers.status import Outcome, StatusTable

# Refusals that say our credentials are wrong, not that the login moved on.
CREDENTIAL_REFUSALS = frozenset({401, 403})


class RequestOptions(TypedDict):
    """What one call to a provider may carry besides its method and path."""

    body: NotRequired[dict[str, Any] | None]
    params: NotRequired[dict[str, Any] | None]
    headers: NotRequired[Mapping[str, str]]
    idempotency_key: NotRequired[str | None]
    timeout: NotRequired[httpx.Timeout]


class HttpAdapter(ABC):
    """A provider adapter's shared transport and idioms; see the module's docstring."""

    # Where the provider's error body carries its structured code (`("error", "code")`).
    ERROR_CODE_FIELD: ClassVar[tuple[str, ...]] = ()
    # The header that lets the provider recognise a retried create or answer.
    IDEMPOTENCY_HEADER: ClassVar[str] = "Idempotency-Key"
    # How long a caller waits between two reads of one job, where the provider publishes a limit.
    min_poll_interval_seconds: float = 0.0

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = make_client(
            base_url, headers=dict(headers or {}), auth=auth, transport=transport
        )

    # ------------------------------------------------------------------ what a provider says

    @property
    @abstractmethod
    def provider(self) -> Provider: ...

    @property
    @abstractmethod
    def STATUSES(self) -> StatusTable: ...

    @property
    @abstractmethod
    def CHALLENGE_KINDS(self) -> Mapping[str, ChallengeKind]: ...

    @property
    def name(self) -> str:
        """The provider as messages name it."""
        return self.STATUSES.provider_name

    # ------------------------------------------------------------------ HTTP

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """One request as the provider takes it; its answer is not judged here."""
        headers = dict(options.get("headers") or {})
        headers |= idempotency_header(options.get("idempotency_key"), self.IDEMPOTENCY_HEADER)
        # httpx's own transport errors propagate: the activities classify timeouts and refusals.
        return await self._client.request(
            method,
            path,
            json=options.get("body"),
            params=options.get("params"),
            headers=headers,
            timeout=options.get("timeout", httpx.USE_CLIENT_DEFAULT),
        )

    async def _request(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """`_send`, then the typed error an unsuccessful answer means."""
        response = await self._send(method, path, **options)
        raise_for_provider_status(response, self.name, code_field=self.ERROR_CODE_FIELD)
        return response

    async def _json(self, method: str, path: str, **options: Unpack[RequestOptions]) -> Any:
        """`_request`, then the answer's JSON (a body that is not JSON is passing trouble)."""
        return read_json(await self._request(method, path, **options), self.name)

    async def _object(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> dict[str, Any]:
        """`_json` for the routes whose answer must be one JSON object."""
        return read_object(await self._request(method, path, **options), self.name)

    @staticmethod
    async def _unless_gone(removal: Awaitable[object]) -> None:
        """Await a removal at the provider; a 404 says it is gone already, as it should be."""
        try:
            await removal
        except ProviderRejectedRequest as error:
            if error.status_code != 404:
                raise

    async def _raise_why_nothing_waits(
        self, session: dict[str, str], refused: ProviderRejectedRequest
    ) -> None:
        """After the provider refused an answer, raise its final word on the login if it has one.

        An answer after the provider's MFA window is refused because nothing waits for it any
        more; the login then reads as timed out (or another final word), which is what the link
        must end with. Returns when the login is still alive (a repeated or stale answer), and
        the refusal stands.
        """
        if refused.status_code in CREDENTIAL_REFUSALS:
            return
        try:
            await self.poll(session)
        except ProviderRejectedRequest:
            return
        except LinkFailure as failure:
            raise failure from refused

    # ------------------------------------------------------------------ the later-life defaults

    @abstractmethod
    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState: ...

    @abstractmethod
    async def poll(self, session: dict[str, str]) -> ProviderState: ...

    async def refresh(self, session: dict[str, str], *, idempotency_key: str) -> ProviderState:
        return await self.poll(session)

    async def reauthenticate(
        self,
        link_id: str,
        request: LinkRequest,
        session: dict[str, str],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        return await self.login(link_id, request, idempotency_key=idempotency_key)

    async def resolve_hold(self, session: dict[str, str], *, idempotency_key: str) -> ProviderState:
        return await self.poll(session)


def answers_for_the_round(
    current: ProviderState, answers: list[ChallengeAnswer]
) -> list[ChallengeAnswer]:
    """The answers meant for the round the provider asks now; none when it asks nothing.

    For providers whose answer names no round: an answer for an earlier round, or a retried
    call after the provider took the answer, must not be sent to the next question.
    """
    if current.outcome is not Outcome.CHALLENGED:
        return []
    asked = {challenge.id for challenge in current.challenges}
    return [answer for answer in answers if answer.challenge_id in asked]
