"""The MX Platform API adapter.

MX aggregates bank data through a *member*: one user's login at one institution. Creating a member
starts a job; its `connection_status` says where the job stands, and when it is CHALLENGED the
status carries the MFA `challenges`, answered all at once with `PUT .../resume` (MX's
"Handling Multifactor Authentication" guide, kept in tests/fixtures/documents/mx_handling_mfa.txt).
`CONNECTION_STATUSES` below is the one table of MX's status words and their meaning for a link
(`MxAdapter.STATUSES`); the README's table is generated from it.

MX states no expiry time for a challenge, but a challenge the user leaves unanswered for longer
than the bank allows ends the member EXPIRED. An answer that arrives after that is refused (the
member is no longer CHALLENGED); the adapter then reads the member, so the link ends
`MFA_TIMEOUT` with a sentence for the user rather than as a refused request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple, Self, Unpack

import httpx

from linkflow.config import ProviderSettings
from linkflow.models import (
    Account,
    Challenge,
    ChallengeAnswer,
    ChallengeKind,
    ChallengeOption,
    LinkReason,
    LinkRequest,
    Provider,
)
from providers.adapter import HttpAdapter, RequestOptions
from providers.base import ProviderState
from providers.errors import LinkFailure, ProviderRejectedRequest, ProviderUnavailable
from providers.json_fields import required_object, text
from providers.privacy import provider_word
from providers.status import (
    Outcome,
    StatusTable,
    challenged,
    final,
    in_progress,
    linked,
    needs_user,
    transient,
)

MX_ACCEPT = "application/vnd.mx.api.v1+json"
PAGE_SIZE = 100
# MX lists are paged; this bounds a provider that keeps promising one more page.
MAX_PAGES = 1000


IN_PROGRESS = in_progress("Connecting to your bank.")


CONNECTION_STATUSES = StatusTable(
    "MX",
    "connection_status",
    {
        "CREATED": IN_PROGRESS,
        "PENDING": IN_PROGRESS,
        "RESUMED": IN_PROGRESS,
        "RECONNECTED": IN_PROGRESS,
        "UPDATED": IN_PROGRESS,
        "DELAYED": IN_PROGRESS,
        "TRANSFERRED": IN_PROGRESS,
        "CHALLENGED": challenged("Your bank needs you to answer a security question."),
        "CONNECTED": linked("Your bank account is connected."),
        "DENIED": final(
            LinkReason.INVALID_CREDENTIALS,
            "Your bank did not accept that username and password. Check them and try again.",
        ),
        "REJECTED": final(
            LinkReason.MFA_FAILED,
            "Your bank did not accept the answers to its security questions.",
        ),
        "EXPIRED": final(
            LinkReason.MFA_TIMEOUT,
            "Your bank's security question expired before it was answered. Please start again.",
        ),
        "LOCKED": needs_user(
            LinkReason.ACCOUNT_LOCKED,
            "Your bank has locked your online account. Unlock it on your bank's website,"
            " then try again.",
        ),
        "IMPEDED": needs_user(
            LinkReason.PROVIDER_HOLD,
            "Your bank needs your attention: log in to its website and respond to the"
            " notice there, then try again.",
        ),
        "PREVENTED": final(
            LinkReason.INSTITUTION_UNAVAILABLE,
            "The connection to your bank was stopped after several failed attempts.",
        ),
        "DISABLED": final(
            LinkReason.INSTITUTION_UNAVAILABLE, "Connections to this bank are turned off for now."
        ),
        "DISCONTINUED": final(
            LinkReason.INSTITUTION_UNAVAILABLE,
            "Connections to this bank are no longer supported.",
        ),
        "CLOSED": final(
            LinkReason.INSTITUTION_UNAVAILABLE, "This connection to your bank has been closed."
        ),
        "DEGRADED": transient("MX reports its connection to the bank as degraded."),
        "FAILED": transient("MX could not finish talking to the bank."),
        "DISCONNECTED": transient("MX could not reach the bank."),
    },
)


class ChallengeType(NamedTuple):
    name: str
    kind: ChallengeKind


# MX names challenge types; the seed's example numbers them (`"type": 0` for a text question).
# Both forms are read. The numbers past 0 follow the order of MX's names (an assumption).
CHALLENGE_TYPES: dict[int, ChallengeType] = {
    0: ChallengeType("TEXT", ChallengeKind.TEXT),
    1: ChallengeType("OPTIONS", ChallengeKind.OPTIONS),
    2: ChallengeType("TOKEN", ChallengeKind.CODE),
    3: ChallengeType("IMAGE_DATA", ChallengeKind.TEXT),
    4: ChallengeType("IMAGE_OPTIONS", ChallengeKind.IMAGE_OPTIONS),
}
CHALLENGE_TYPES_BY_NAME = {t.name: t for t in CHALLENGE_TYPES.values()}
SECRET_LABEL = re.compile(r"\b(password|passcode|passphrase|pin)\b", re.IGNORECASE)


def _challenge_type(raw_type: object) -> ChallengeType | None:
    if isinstance(raw_type, int) and not isinstance(raw_type, bool):
        found = CHALLENGE_TYPES.get(raw_type)
    elif isinstance(raw_type, str):
        word = raw_type.strip().upper()
        found = CHALLENGE_TYPES.get(int(word)) if word.isascii() and word.isdigit() else None
        found = found or CHALLENGE_TYPES_BY_NAME.get(word)
    else:
        found = None
    return found


def normalize_challenge(raw: dict[str, Any]) -> Challenge:
    """Turn one of MX's challenge objects into linkflow's `Challenge` (id = MX's guid)."""
    guid = raw.get("guid")
    if not isinstance(guid, str) or not guid:
        raise ProviderUnavailable("MX sent a challenge without a guid.")
    challenge_type = _challenge_type(raw.get("type"))
    if challenge_type is None:
        # A captcha or a kind of question MX does not document: nobody can answer it here.
        raise LinkFailure(
            LinkReason.UNSUPPORTED_MFA,
            "CHALLENGED",
            "Your bank asks for a kind of verification linkflow cannot show"
            f" ({provider_word(raw.get('type'))}). Link this account another way.",
        )
    label = str(raw.get("label") or "Answer your bank's security question.")
    kind = challenge_type.kind
    if kind is ChallengeKind.TEXT and SECRET_LABEL.search(label):
        kind = ChallengeKind.SECRET
    options = []
    if kind.has_options:
        options = [
            ChallengeOption(
                value=str(option["value"]),
                label=str(option.get("label") or option["value"]),
                image_data_uri=text(option.get("data_uri")),
            )
            for option in raw.get("options") or []
            if isinstance(option, dict) and option.get("value") is not None
        ]
    return Challenge(
        id=guid,
        kind=kind,
        prompt=label,
        options=options,
        image_data_uri=text(raw.get("image_data")) if challenge_type.name == "IMAGE_DATA" else None,
    )


def state_from_member(member: dict[str, Any], session: dict[str, str]) -> ProviderState:
    """Read MX's member (or member status) object; raise for final failures and trouble."""
    status, meaning = CONNECTION_STATUSES.meaning_of(member.get("connection_status"))
    outcome = CONNECTION_STATUSES.outcome_of(status, meaning)
    message = meaning.message
    if outcome is Outcome.LINKED and member.get("is_being_aggregated"):
        # Connected, but MX is still gathering the accounts.
        outcome, message = Outcome.PENDING, IN_PROGRESS.message
    challenges: list[Challenge] = []
    if outcome is Outcome.CHALLENGED:
        challenges = [
            normalize_challenge(raw)
            for raw in member.get("challenges") or []
            if isinstance(raw, dict)
        ]
        if not challenges:
            outcome, message = Outcome.PENDING, IN_PROGRESS.message
    return ProviderState(
        outcome=outcome,
        raw_status=status,
        session=dict(session),
        challenges=challenges,
        reason=meaning.reason,
        message=message,
    )


def _member(value: object) -> dict[str, Any]:
    return required_object(value, "MX", "member")


class MxAdapter(HttpAdapter):
    """linkflow's `ProviderAdapter` for MX; session = `{"user_guid", "member_guid"}`."""

    provider = Provider.MX
    STATUSES = CONNECTION_STATUSES
    CHALLENGE_KINDS: ClassVar[Mapping[str, ChallengeKind]] = {
        t.name: t.kind for t in CHALLENGE_TYPES.values()
    }

    def __init__(
        self,
        base_url: str,
        client_id: str,
        api_key: str,
        *,
        default_institution_code: str = "mxbank",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            headers={"Accept": MX_ACCEPT},
            auth=(client_id, api_key),
            transport=transport,
        )
        self._institution_code = default_institution_code

    @classmethod
    def from_settings(cls, settings: ProviderSettings) -> Self:
        endpoint = settings.endpoint(
            Provider.MX, {"client_id": "sandbox-client-id", "api_key": "sandbox-api-key"}
        )
        return cls(endpoint.base_url, endpoint.keys["client_id"], endpoint.keys["api_key"])

    async def _read(
        self, method: str, path: str, key: str, **options: Unpack[RequestOptions]
    ) -> tuple[Any, dict[str, Any]]:
        """Call MX and return `body[key]` and the whole body; a malformed body is transient."""
        body = await self._json(method, path, **options)
        if not isinstance(body, dict) or key not in body:
            raise ProviderUnavailable(f"MX answered {method} {path} without {key!r}.")
        return body[key], body

    async def _pages(self, path: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            chunk, body = await self._read(
                "GET", path, key, params={"page": page, "records_per_page": PAGE_SIZE}
            )
            items += [item for item in chunk or [] if isinstance(item, dict)]
            pagination = body.get("pagination") or {}
            if page >= int(pagination.get("total_pages") or 1):
                break
        return items

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        user_guid = await self._ensure_user(request.user_ref)
        institution = request.options.institution_code or self._institution_code
        fields = await self._credential_fields(institution)
        created, _ = await self._read(
            "POST",
            f"/users/{user_guid}/members",
            "member",
            body={
                "member": {
                    "institution_code": institution,
                    "credentials": _credential_values(fields, request),
                }
            },
            idempotency_key=idempotency_key,
        )
        member = _member(created)
        member_guid = member.get("guid")
        if not isinstance(member_guid, str):
            raise ProviderUnavailable("MX created a member but did not say its guid.")
        return state_from_member(member, {"user_guid": user_guid, "member_guid": member_guid})

    async def _credential_fields(self, institution: str) -> dict[str, str]:
        """The institution's login fields, `field_name` -> credential guid."""
        try:
            fields, _ = await self._read(
                "GET", f"/institutions/{institution}/credentials", "credentials"
            )
        except ProviderRejectedRequest as error:
            if error.status_code != 404:
                raise
            raise LinkFailure(
                LinkReason.INSTITUTION_UNAVAILABLE,
                "INSTITUTION_NOT_FOUND",
                "This bank is not available for connection.",
            ) from error
        return {
            str(field["field_name"]): str(field["guid"])
            for field in fields or []
            if isinstance(field, dict) and field.get("field_name") and field.get("guid")
        }

    async def _ensure_user(self, partner_id: str) -> str:
        """The guid of the MX user whose partner `id` is `partner_id`, creating it if needed."""
        try:
            user, _ = await self._read(
                "POST", "/users", "user", body={"user": {"id": partner_id, "metadata": None}}
            )
        except ProviderRejectedRequest as error:
            if error.status_code != 409:
                raise
        else:
            guid = required_object(user, "MX", "user").get("guid")
            if not isinstance(guid, str):
                raise ProviderUnavailable("MX created a user but did not say its guid.")
            return guid
        for existing in await self._pages("/users", "users"):
            if existing.get("id") == partner_id:
                return str(existing["guid"])
        raise ProviderUnavailable("MX says this user exists but does not list it yet.")

    @staticmethod
    def _member_path(session: dict[str, str]) -> str:
        return f"/users/{session['user_guid']}/members/{session['member_guid']}"

    async def poll(self, session: dict[str, str]) -> ProviderState:
        path = self._member_path(session)
        status, _ = await self._read("GET", f"{path}/status", "member")
        member = _member(status)
        if member.get("connection_status") == "CHALLENGED" and not member.get("challenges"):
            member = member | {"challenges": await self._pages(f"{path}/challenges", "challenges")}
        return state_from_member(member, session)

    async def answer(
        self,
        session: dict[str, str],
        challenges: list[Challenge],
        answers: list[ChallengeAnswer],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        try:
            resumed, _ = await self._read(
                "PUT",
                f"{self._member_path(session)}/resume",
                "member",
                body={
                    "member": {
                        "challenges": [
                            {"guid": answer.challenge_id, "value": answer.value.get_secret_value()}
                            for answer in answers
                        ]
                    }
                },
                idempotency_key=idempotency_key,
            )
        except ProviderRejectedRequest as refused:
            # A resume after the bank stopped waiting finds the member EXPIRED.
            await self._raise_why_nothing_waits(session, refused)
            raise
        return state_from_member(_member(resumed), session)

    async def refresh(self, session: dict[str, str], *, idempotency_key: str) -> ProviderState:
        # Assumption (MX's reference): `POST .../aggregate` starts an aggregation and answers 202
        # with the member; MFA may be asked again on the way, as the seed's guide says.
        member, _ = await self._read(
            "POST",
            f"{self._member_path(session)}/aggregate",
            "member",
            idempotency_key=idempotency_key,
        )
        return state_from_member(_member(member), session)

    async def reauthenticate(
        self,
        link_id: str,
        request: LinkRequest,
        session: dict[str, str],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        # Assumption (MX's reference): `PUT .../members/{guid}` with the credentials updates the
        # member and starts an aggregation with them, the same member kept (MX's update mode).
        institution = request.options.institution_code or self._institution_code
        fields = await self._credential_fields(institution)
        member, _ = await self._read(
            "PUT",
            self._member_path(session),
            "member",
            body={"member": {"credentials": _credential_values(fields, request)}},
            idempotency_key=idempotency_key,
        )
        return state_from_member(_member(member), session)

    async def resolve_hold(self, session: dict[str, str], *, idempotency_key: str) -> ProviderState:
        # MX has no route to lift a hold: the user acts at the bank, then an aggregation tells.
        return await self.refresh(session, idempotency_key=idempotency_key)

    async def fetch_accounts(self, session: dict[str, str]) -> list[Account]:
        raw = await self._pages(f"{self._member_path(session)}/accounts", "accounts")
        return [account_from_mx(account) for account in raw]

    async def revoke(self, session: dict[str, str]) -> None:
        await self._unless_gone(self._request("DELETE", self._member_path(session)))


def _credential_values(fields: dict[str, str], request: LinkRequest) -> list[dict[str, str]]:
    """The request's credentials as MX's `[{guid, value}]`, for the institution's fields."""
    credentials = request.credentials
    values = {
        "username": credentials.username,
        "password": credentials.password.get_secret_value(),
    } | {name: secret.get_secret_value() for name, secret in credentials.extra.items()}
    return [
        {"guid": guid, "value": values[name]} for name, guid in fields.items() if name in values
    ]


def account_from_mx(raw: dict[str, Any]) -> Account:
    """One of MX's account objects as a linkflow `Account`."""
    number = str(raw.get("account_number") or "")
    balance = raw.get("balance")
    return Account(
        id=str(raw["guid"]),
        name=str(raw.get("name") or "Account"),
        kind=str(raw.get("type") or "UNKNOWN"),
        mask=number[-4:] or None,
        balance=None if balance is None else str(balance),
        currency=text(raw.get("currency_code")),
    )
