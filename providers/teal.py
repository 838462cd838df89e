"""The Teal payroll API adapter.

Teal links a user's payroll login through an *account*: `POST /accounts` starts Teal's job, the
account's `status` says where it stands, and when the payroll provider asks for MFA the account
says what it asks (`mfa_method`); the single answer goes to `PUT /accounts/{account_id}/mfa` as
`{"mfa": "..."}` (Teal's "Submit an MFA response for an account" page, kept in
tests/fixtures/documents/teal_submit_mfa_response.txt). Every call carries `X-API-KEY`, and
`x-teal-authorisation-id` when one is configured. Once the account is ACTIVE its payroll
submissions (`GET /payroll/{user_id}`) give the employments linkflow lists as accounts.

Teal's `user_id` is an id linkflow chooses, and it appears in the payroll URL, so it is an opaque
id derived from the link's id (`providers.privacy.opaque_id`), never the app's `user_ref`. Teal
states no expiry for an MFA request, so challenges carry no provider deadline.

Teal's reference shows only the status word PENDING and `mfa_method` `{"type": "Code", "source":
"AUTHENTICATOR_APP"}`; the other words and fields read here are assumptions shared with
sandbox/teal.py, which describes them. `ACCOUNT_STATUSES` (the adapter's `STATUSES`) is the one
table of Teal's status words and their meaning for a link.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import httpx

from linkflow.config import ProviderSettings
from linkflow.models import (
    Account,
    Challenge,
    ChallengeAnswer,
    ChallengeKind,
    LinkReason,
    LinkRequest,
    Provider,
)
from providers.adapter import HttpAdapter, answers_for_the_round
from providers.base import ProviderState
from providers.errors import LinkFailure, ProviderUnavailable
from providers.json_fields import text
from providers.privacy import opaque_id, provider_word
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

DEFAULT_PAYROLL_PROVIDER = "quickbooks"
PAGE_LIMIT = 1000
# Teal's lists are paged; this bounds a provider that keeps promising more items.
MAX_PAGES = 1000

IN_PROGRESS = in_progress("Connecting to your payroll provider.")

# Assumption: Teal's status words beyond PENDING (its reference says an account is able to
# receive data, needs authorisation, or is invalid or expired, without listing the words).
ACCOUNT_STATUSES = StatusTable(
    "Teal",
    "status",
    {
        "PENDING": IN_PROGRESS,
        "MFA_REQUIRED": challenged("Your payroll provider needs you to confirm it is you."),
        "ACTIVE": linked("Your payroll account is connected."),
        "ACTION_REQUIRED": needs_user(
            LinkReason.PROVIDER_HOLD,
            "Your payroll provider needs your attention: log in to its website and respond"
            " to the notice there, then try again.",
        ),
        "AUTHORISATION_REQUIRED": needs_user(
            LinkReason.REAUTH_REQUIRED,
            "Your payroll provider needs you to authorise access on its website.",
        ),
        "EXPIRED": needs_user(
            LinkReason.REAUTH_REQUIRED,
            "Access to your payroll account has expired. Please link it again.",
        ),
        "INVALID": final(
            LinkReason.INVALID_CREDENTIALS,
            "Your payroll provider did not accept that username and password."
            " Check them and try again.",
        ),
        "MFA_FAILED": final(
            LinkReason.MFA_FAILED,
            "Your payroll provider did not accept the answers to its security check.",
        ),
        "ERROR": transient("Teal could not finish talking to the payroll provider."),
    },
)

# `mfa_method.type` -> linkflow's kind. "Code" is Teal's documented word; "Date" and
# "PasswordCharacters" name the other two answers its reference lists (an assumption).
MFA_TYPES: dict[str, ChallengeKind] = {
    "Code": ChallengeKind.CODE,
    "Date": ChallengeKind.TEXT,
    "PasswordCharacters": ChallengeKind.SECRET,
}
CODE_SOURCES = {
    "AUTHENTICATOR_APP": "Enter the code from your authenticator app.",
    "SMS": "Enter the code your payroll provider texted you.",
    "EMAIL": "Enter the code your payroll provider emailed you.",
}
DEFAULT_PROMPTS = {
    "Code": "Enter the code your payroll provider sent you.",
    "Date": "Enter the date your payroll provider asks for (YYYY-MM-DD).",
    "PasswordCharacters": "Enter the characters of your password your payroll provider asks for.",
}


def normalize_challenge(account_id: str, method: dict[str, Any]) -> Challenge:
    """Turn Teal's `mfa_method` into linkflow's `Challenge` (id = the method's id)."""
    mfa_type = method.get("type")
    kind = MFA_TYPES.get(mfa_type) if isinstance(mfa_type, str) else None
    if kind is None or not isinstance(mfa_type, str):
        # A captcha, an app approval or anything else one string cannot answer.
        raise LinkFailure(
            LinkReason.UNSUPPORTED_MFA,
            "MFA_REQUIRED",
            "Your payroll provider asks for a kind of verification linkflow cannot show"
            f" ({provider_word(mfa_type)}). Link this account another way.",
        )
    source = method.get("source")
    prompt = text(method.get("prompt")) or (
        CODE_SOURCES.get(source) if mfa_type == "Code" and isinstance(source, str) else None
    )
    method_id = text(method.get("id"))
    return Challenge(
        # Without Teal's id (an assumed field), the round is named by what it asks.
        id=method_id or f"{account_id}:{mfa_type}:{source}",
        kind=kind,
        prompt=prompt or DEFAULT_PROMPTS[mfa_type],
    )


def state_from_account(account: dict[str, Any], session: dict[str, str]) -> ProviderState:
    """Read Teal's account object; raise for final failures and transient trouble."""
    status, meaning = ACCOUNT_STATUSES.meaning_of(account.get("status"))
    outcome, message = ACCOUNT_STATUSES.outcome_of(status, meaning), meaning.message
    challenges: list[Challenge] = []
    if outcome is Outcome.CHALLENGED:
        method = account.get("mfa_method")
        if isinstance(method, dict):
            challenges = [normalize_challenge(session.get("account_id", ""), method)]
        else:
            # MFA is needed but Teal has not said what it asks yet.
            outcome, message = Outcome.PENDING, IN_PROGRESS.message
    if outcome is Outcome.ACTION_REQUIRED:
        message = text(account.get("status_message")) or message
    return ProviderState(
        outcome=outcome,
        raw_status=status,
        session=dict(session),
        challenges=challenges,
        reason=meaning.reason,
        message=message,
    )


class TealAdapter(HttpAdapter):
    """linkflow's `ProviderAdapter` for Teal; session = `{"user_id", "account_id"}`."""

    provider = Provider.TEAL
    STATUSES = ACCOUNT_STATUSES
    CHALLENGE_KINDS: ClassVar[Mapping[str, ChallengeKind]] = MFA_TYPES
    # Assumption (sandbox/teal.py): Teal's error body is `{"error": {"code", "message"}}`.
    ERROR_CODE_FIELD = ("error", "code")

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        authorisation_id: str = "",
        default_payroll_provider: str = DEFAULT_PAYROLL_PROVIDER,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"X-API-KEY": api_key}
        if authorisation_id:
            headers["x-teal-authorisation-id"] = authorisation_id
        super().__init__(base_url, headers=headers, transport=transport)
        self._payroll_provider = default_payroll_provider

    @classmethod
    def from_settings(cls, settings: ProviderSettings) -> Self:
        endpoint = settings.endpoint(
            Provider.TEAL, {"api_key": "sandbox-api-key", "authorisation_id": ""}
        )
        return cls(
            endpoint.base_url,
            endpoint.keys["api_key"],
            authorisation_id=endpoint.keys["authorisation_id"],
        )

    async def _read_account(self, session: dict[str, str]) -> dict[str, Any]:
        return await self._object("GET", f"/accounts/{session['account_id']}")

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        credentials = request.credentials
        # Teal's user_id is ours to choose and travels in URLs (`GET /payroll/{user_id}`): one
        # opaque id per link, the same on every login of the link. Assumption: Teal takes any
        # string as user_id and needs no user object created first (its reference shows none).
        user_id = opaque_id("teal-user", link_id)
        body: dict[str, Any] = {
            "user_id": user_id,
            "payroll_provider": request.options.institution_code or self._payroll_provider,
            "user_name": credentials.username,
            "password": credentials.password.get_secret_value(),
        }
        if credentials.extra:
            body["extra_login_params"] = {
                name: secret.get_secret_value() for name, secret in credentials.extra.items()
            }
        account = await self._object(
            "POST", "/accounts", body=body, idempotency_key=idempotency_key
        )
        account_id = account.get("account_id")
        if not isinstance(account_id, str) or not account_id:
            raise ProviderUnavailable("Teal created an account but did not say its id.")
        return state_from_account(account, {"user_id": user_id, "account_id": account_id})

    async def poll(self, session: dict[str, str]) -> ProviderState:
        return state_from_account(await self._read_account(session), session)

    async def answer(
        self,
        session: dict[str, str],
        challenges: list[Challenge],
        answers: list[ChallengeAnswer],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        # Teal's answer names no round, so the adapter checks the round is still the one asked.
        current = await self.poll(session)
        given = answers_for_the_round(current, answers)
        if not given:
            return current
        account = await self._object(
            "PUT",
            f"/accounts/{session['account_id']}/mfa",
            body={"mfa": given[0].value.get_secret_value()},
            idempotency_key=idempotency_key,
        )
        return state_from_account(account, session)

    async def fetch_accounts(self, session: dict[str, str]) -> list[Account]:
        submissions: list[dict[str, Any]] = []
        offset = 0
        for _ in range(MAX_PAGES):
            page = await self._object(
                "GET",
                f"/payroll/{session['user_id']}",
                params={"account_id": session["account_id"], "offset": offset, "limit": PAGE_LIMIT},
            )
            chunk = page.get("payroll_submissions") or []
            submissions += [s for s in chunk if isinstance(s, dict)]
            pagination = page.get("pagination") or {}
            offset += len(chunk)
            if not chunk or offset >= int(pagination.get("total_count") or 0):
                break
        mine = [s for s in submissions if s.get("account_id") in (None, session["account_id"])]
        if mine:
            return employments(session["account_id"], mine)
        account = await self._read_account(session)
        return [
            Account(
                id=session["account_id"],
                name=_payroll_name(str(account.get("payroll_provider") or "Payroll"), account),
                kind="PAYROLL",
            )
        ]

    async def revoke(self, session: dict[str, str]) -> None:
        # Assumption (sandbox/teal.py): Teal answers a deletion with 204 and no body.
        await self._unless_gone(self._request("DELETE", f"/accounts/{session['account_id']}"))


def employments(account_id: str, submissions: list[dict[str, Any]]) -> list[Account]:
    """One linkflow account per employer in the payroll, named with its latest pay date."""
    latest: dict[str, str] = {}
    for submission in submissions:
        employment = submission.get("employment_information") or {}
        income = submission.get("income_information") or {}
        employer = text(employment.get("employer_name")) if isinstance(employment, dict) else None
        pay_date = text(income.get("pay_date")) if isinstance(income, dict) else None
        name = employer or "Employer"
        latest[name] = max(latest.get(name, ""), pay_date or "")
    return [
        Account(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"teal:{account_id}:{employer}")),
            name=_payroll_name(employer, {"latest_pay_date": pay_date}),
            kind="PAYROLL",
        )
        for employer, pay_date in latest.items()
    ]


def _payroll_name(employer: str, record: dict[str, Any]) -> str:
    pay_date = text(record.get("latest_pay_date"))
    return f"{employer} payroll" + (f" (latest pay date {pay_date[:10]})" if pay_date else "")
