"""The MX Platform API adapter.

MX aggregates bank data through a *member* (one user's login at one institution). Creating a
member starts a job; its `connection_status` says where the job stands, and when it is CHALLENGED
the status carries the MFA `challenges`, answered all at once with `PUT .../resume`
(shared/seeds/002_...). `CONNECTION_STATUSES` below is the whole map from MX's status words to
linkflow's; the README's table is checked against it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

import httpx

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
from providers.base import (
    LinkFailure,
    Outcome,
    ProviderRejectedRequest,
    ProviderState,
    ProviderUnavailable,
)
from providers.http import make_client, raise_for_provider_status

MX_ACCEPT = "application/vnd.mx.api.v1+json"
PAGE_SIZE = 100
CENTS = Decimal("0.01")


class StatusMeaning(NamedTuple):
    """What one MX `connection_status` means for a link.

    `outcome` is set for words the link follows; `failure` for final answers; neither for the
    transient words that are worth asking again (they raise `ProviderUnavailable`).
    """

    outcome: Outcome | None = None
    failure: LinkReason | None = None
    reason: LinkReason | None = None
    message: str = ""


IN_PROGRESS = StatusMeaning(Outcome.PENDING, message="MX is working on the connection.")
TRANSIENT = StatusMeaning(message="MX could not reach the institution just now.")

CONNECTION_STATUSES: dict[str, StatusMeaning] = {
    "CREATED": IN_PROGRESS,
    "PENDING": IN_PROGRESS,
    "RESUMED": IN_PROGRESS,
    "RECONNECTED": IN_PROGRESS,
    "UPDATED": IN_PROGRESS,
    "DELAYED": IN_PROGRESS,
    "TRANSFERRED": IN_PROGRESS,
    "CHALLENGED": StatusMeaning(Outcome.CHALLENGED, message="The bank asks a question."),
    "CONNECTED": StatusMeaning(Outcome.LINKED, message="Connected."),
    "DENIED": StatusMeaning(
        failure=LinkReason.INVALID_CREDENTIALS, message="The bank refused these credentials."
    ),
    "REJECTED": StatusMeaning(
        failure=LinkReason.MFA_FAILED, message="The bank refused the MFA answers."
    ),
    "EXPIRED": StatusMeaning(
        failure=LinkReason.MFA_TIMEOUT, message="The MFA question expired at the bank."
    ),
    "LOCKED": StatusMeaning(
        Outcome.ACTION_REQUIRED,
        reason=LinkReason.ACCOUNT_LOCKED,
        message="The bank locked the account; unlock it at the bank's website.",
    ),
    "IMPEDED": StatusMeaning(
        Outcome.ACTION_REQUIRED,
        reason=LinkReason.PROVIDER_HOLD,
        message="The bank needs you to log in to its website and accept a notice.",
    ),
    "PREVENTED": StatusMeaning(
        failure=LinkReason.INSTITUTION_UNAVAILABLE, message="MX cannot connect to this bank."
    ),
    "DISABLED": StatusMeaning(
        failure=LinkReason.INSTITUTION_UNAVAILABLE, message="This bank is disabled at MX."
    ),
    "DISCONTINUED": StatusMeaning(
        failure=LinkReason.INSTITUTION_UNAVAILABLE, message="MX no longer supports this bank."
    ),
    "CLOSED": StatusMeaning(
        failure=LinkReason.INSTITUTION_UNAVAILABLE, message="The account at the bank is closed."
    ),
    "DEGRADED": TRANSIENT,
    "FAILED": TRANSIENT,
    "DISCONNECTED": TRANSIENT,
}

# MX names challenge types; its older examples (and the seed) number them. Both are read.
CHALLENGE_TYPES: dict[str | int, str] = {
    0: "TEXT",
    1: "OPTIONS",
    2: "TOKEN",
    3: "IMAGE_DATA",
    4: "IMAGE_OPTIONS",
}
CHALLENGE_KINDS = {
    "TEXT": ChallengeKind.TEXT,
    "OPTIONS": ChallengeKind.OPTIONS,
    "TOKEN": ChallengeKind.CODE,
    "IMAGE_DATA": ChallengeKind.TEXT,
    "IMAGE_OPTIONS": ChallengeKind.IMAGE_OPTIONS,
}
SECRET_WORDS = ("password", "pin", "passcode")


def normalize_challenge(raw: dict[str, Any]) -> Challenge:
    raw_type = raw.get("type")
    type_name = CHALLENGE_TYPES.get(raw_type, str(raw_type).upper()) if raw_type is not None else ""
    kind = CHALLENGE_KINDS.get(type_name, ChallengeKind.TEXT)
    label = str(raw.get("label") or "Answer the bank's question")
    if kind is ChallengeKind.TEXT and any(word in label.lower() for word in SECRET_WORDS):
        kind = ChallengeKind.SECRET
    return Challenge(
        id=str(raw["guid"]),
        kind=kind,
        prompt=label,
        options=[
            ChallengeOption(
                value=str(option.get("value")),
                label=str(option.get("label") or option.get("value")),
                image_data_uri=option.get("data_uri"),
            )
            for option in raw.get("options") or []
        ],
        image_data_uri=raw.get("image_data") if type_name == "IMAGE_DATA" else None,
    )


def state_from_member(member: dict[str, Any], session: dict[str, str]) -> ProviderState:
    """Read MX's member (or member status) object; raise for final failures."""
    status = str(member.get("connection_status") or "")
    meaning = CONNECTION_STATUSES.get(status)
    if meaning is None:
        raise ProviderUnavailable(f"MX sent an unknown connection_status {status!r}.")
    if meaning.failure is not None:
        raise LinkFailure(meaning.failure, status, meaning.message)
    if meaning.outcome is None:
        raise ProviderUnavailable(f"MX connection_status {status}: {meaning.message}")
    outcome = meaning.outcome
    if outcome is Outcome.LINKED and member.get("is_being_aggregated"):
        outcome = Outcome.PENDING  # Connected, but the accounts are still being gathered.
    challenges = (
        [normalize_challenge(c) for c in member.get("challenges") or []]
        if outcome is Outcome.CHALLENGED
        else []
    )
    if outcome is Outcome.CHALLENGED and not challenges:
        outcome = Outcome.PENDING  # MX has not listed the questions yet: ask again.
    return ProviderState(
        outcome=outcome,
        raw_status=status,
        session=session,
        challenges=challenges,
        reason=meaning.reason,
        message=meaning.message if outcome is Outcome.ACTION_REQUIRED else None,
    )


class MxAdapter:
    provider = Provider.MX

    def __init__(
        self,
        base_url: str,
        client_id: str,
        api_key: str,
        *,
        default_institution_code: str = "mxbank",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._institution_code = default_institution_code
        self._client = client or make_client(
            base_url,
            headers={"Accept": MX_ACCEPT, "Content-Type": "application/json"},
            auth=(client_id, api_key),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._client.request(
            method, path, json=json, params=params, headers=headers
        )
        raise_for_provider_status(response, "MX")
        return response

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        user_guid = await self._ensure_user(request.user_ref)
        institution = request.options.institution_code or self._institution_code
        fields = (await self._call("GET", f"/institutions/{institution}/credentials")).json()
        guids = {field["field_name"]: field["guid"] for field in fields["credentials"]}
        values = {
            "username": request.credentials.username,
            "password": request.credentials.password.get_secret_value(),
        } | {name: secret.get_secret_value() for name, secret in request.credentials.extra.items()}
        credentials = [
            {"guid": guid, "value": values[name]} for name, guid in guids.items() if name in values
        ]
        created = await self._call(
            "POST",
            f"/users/{user_guid}/members",
            json={"member": {"institution_code": institution, "credentials": credentials}},
            idempotency_key=idempotency_key,
        )
        member = created.json()["member"]
        return state_from_member(member, {"user_guid": user_guid, "member_guid": member["guid"]})

    async def _ensure_user(self, partner_id: str) -> str:
        try:
            created = await self._call("POST", "/users", json={"user": {"id": partner_id}})
        except ProviderRejectedRequest as error:
            if error.status_code != 409:
                raise
        else:
            return str(created.json()["user"]["guid"])
        page = 1
        while True:
            listed = await self._call(
                "GET", "/users", params={"page": page, "records_per_page": PAGE_SIZE}
            )
            body = listed.json()
            for user in body["users"]:
                if user.get("id") == partner_id:
                    return str(user["guid"])
            if page >= body["pagination"]["total_pages"]:
                raise ProviderRejectedRequest(
                    f"MX said user {partner_id!r} exists but does not list it.", 409
                )
            page += 1

    def _member_path(self, session: dict[str, str]) -> str:
        return f"/users/{session['user_guid']}/members/{session['member_guid']}"

    async def poll(self, session: dict[str, str]) -> ProviderState:
        response = await self._call("GET", f"{self._member_path(session)}/status")
        return state_from_member(response.json()["member"], session)

    async def answer(
        self,
        session: dict[str, str],
        challenges: list[Challenge],
        answers: list[ChallengeAnswer],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        response = await self._call(
            "PUT",
            f"{self._member_path(session)}/resume",
            json={
                "member": {
                    "challenges": [
                        {"guid": a.challenge_id, "value": a.value.get_secret_value()}
                        for a in answers
                    ]
                }
            },
            idempotency_key=idempotency_key,
        )
        return state_from_member(response.json()["member"], session)

    async def fetch_accounts(self, session: dict[str, str]) -> list[Account]:
        accounts: list[Account] = []
        page = 1
        while True:
            response = await self._call(
                "GET",
                f"{self._member_path(session)}/accounts",
                params={"page": page, "records_per_page": PAGE_SIZE},
            )
            body = response.json()
            accounts += [_account(raw) for raw in body["accounts"]]
            if page >= body["pagination"]["total_pages"]:
                return accounts
            page += 1

    async def revoke(self, session: dict[str, str]) -> None:
        try:
            await self._call("DELETE", self._member_path(session))
        except ProviderRejectedRequest as error:
            if error.status_code != 404:
                raise


def _account(raw: dict[str, Any]) -> Account:
    number = str(raw.get("account_number") or "")
    balance = raw.get("balance")
    return Account(
        id=str(raw["guid"]),
        name=str(raw.get("name") or "Account"),
        kind=str(raw.get("type") or "UNKNOWN"),
        mask=number[-4:] or None,
        balance=None if balance is None else str(Decimal(str(balance)).quantize(CENTS)),
        currency=raw.get("currency_code"),
    )
