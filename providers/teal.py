"""The Teal payroll API adapter.

Teal links a user's payroll login through an *account*: `POST /accounts` starts Teal's job, the
account's `status` says where it stands, and when the payroll provider asks for MFA the account
says what it asks (`mfa_method`); the single answer goes to `PUT /accounts/{account_id}/mfa` as
`{"mfa": "..."}` (Teal's "Submit an MFA response for an account" page, kept in
tests/fixtures/documents/teal_submit_mfa_response.txt). Once the account is ACTIVE its payroll
submissions (`GET /payroll/{user_id}`) give the employments linkflow lists as accounts.

The references, from docs.goteal.co: "Create a User" (`POST /users`): Teal's `user_id` is Teal's
own, returned when the user is created; "Authorisations" and "Record an authorisation"
(`POST /authorisations`, `GET /authorisations?user_id=...&status=active`): creating an account and
answering its MFA "requires a valid authorisation for the user", named by the optional
`x-teal-authorisation-id` header; "Create an account": an OAuth payroll provider answers with an
`authorization_url`, where the user logs in. So a login creates the Teal user (with an opaque
name and email derived from the link's id, never the app's `user_ref`), records the user's
authorisation, and creates the account under it; the session keeps all three ids, and a later
login of the same link reuses the user and resolves a valid authorisation before creating one.
An `authorization_url` reaches the user as a `redirect` challenge with the URL to visit, and the
link waits for Teal, as for a push approval. Every call carries `X-API-KEY`. Teal states no
expiry for an MFA request, so challenges carry no provider deadline.

Teal's reference shows only the status word PENDING and `mfa_method` `{"type": "Code", "source":
"AUTHENTICATOR_APP"}`; the other words and fields read here are assumptions shared with
sandbox/teal.py, which describes them. `ACCOUNT_STATUSES` (the adapter's `STATUSES`) is the one
table of Teal's status words and their meaning for a link.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Self, Unpack

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
from providers.adapter import HttpAdapter, RequestOptions, answers_for_the_round
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
AUTHORISATION_HEADER = "x-teal-authorisation-id"
# Where an OAuth payroll provider's account says the user must log in.
AUTHORIZATION_URL = "authorization_url"
# Assumption(teal): a server-to-server authorisation names linkflow as its `user_agent` -- the
# field is required and linkflow never sees the end user's browser.
USER_AGENT = "linkflow"
# Teal documents `limit` up to 100 on its authorisation list.
AUTHORISATIONS_LIMIT = 100
PAGE_LIMIT = 1000
# Teal's lists are paged; this bounds a provider that keeps promising more items.
MAX_PAGES = 1000

IN_PROGRESS = in_progress("Connecting to your payroll provider.")

# Assumption(teal): the status words beyond PENDING -- the reference says an account is able to
# receive data, needs authorisation, or is invalid or expired, without listing the words.
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

# `mfa_method.type` -> linkflow's kind. "Code" is Teal's documented word.
# Assumption(teal): "Date" and "PasswordCharacters" are the types of the other two answers the
# reference lists ("a code, a date, or password characters") -- it names only "Code".
MFA_TYPES: dict[str, ChallengeKind] = {
    "Code": ChallengeKind.CODE,
    "Date": ChallengeKind.TEXT,
    "PasswordCharacters": ChallengeKind.SECRET,
}
# What Teal asks of the user: an MFA answer, or a login on an OAuth payroll provider's page.
CHALLENGE_KINDS: dict[str, ChallengeKind] = MFA_TYPES | {AUTHORIZATION_URL: ChallengeKind.REDIRECT}
REDIRECT_PROMPT = (
    "Log in on your payroll provider's own page to let Teal read your payroll; the connection"
    " goes on by itself once you have."
)
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
        # Assumption(teal): `mfa_method.id` names the round -- the reference shows no id; without
        # one the round is named by what it asks.
        id=method_id or f"{account_id}:{mfa_type}:{source}",
        kind=kind,
        prompt=prompt or DEFAULT_PROMPTS[mfa_type],
    )


def redirect_challenge(account_id: str, url: str) -> Challenge:
    """The OAuth login the user makes on the payroll provider's page, as a `redirect`."""
    # One id per URL: the same login while it waits, a new one if Teal sends a new URL.
    digest = hashlib.sha256(f"{account_id}\0{url}".encode()).hexdigest()[:16]
    return Challenge(
        id=f"oauth-{digest}", kind=ChallengeKind.REDIRECT, prompt=REDIRECT_PROMPT, url=url
    )


def state_from_account(account: dict[str, Any], session: dict[str, str]) -> ProviderState:
    """Read Teal's account object; raise for final failures and transient trouble."""
    status, meaning = ACCOUNT_STATUSES.meaning_of(account.get("status"))
    outcome, message = ACCOUNT_STATUSES.outcome_of(status, meaning), meaning.message
    challenges: list[Challenge] = []
    url = text(account.get(AUTHORIZATION_URL))
    if outcome is Outcome.PENDING and url is not None:
        outcome, message = Outcome.CHALLENGED, REDIRECT_PROMPT
        challenges = [redirect_challenge(session.get("account_id", ""), url)]
    elif outcome is Outcome.CHALLENGED:
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
    """linkflow's `ProviderAdapter` for Teal.

    Session: `{"user_id", "authorisation_id", "account_id"}`, all three Teal's ids.
    """

    provider = Provider.TEAL
    STATUSES = ACCOUNT_STATUSES
    CHALLENGE_KINDS: ClassVar[Mapping[str, ChallengeKind]] = CHALLENGE_KINDS
    # Assumption(teal): an error body is `{"error": {"code", "message"}}` -- the reference shows
    # none; the sandbox shares the shape.
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
        # A configured authorisation goes on calls that name none of their own; a login's
        # session names the user's own on every call.
        if authorisation_id:
            headers[AUTHORISATION_HEADER] = authorisation_id
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

    async def _for_user(
        self, session: dict[str, str], method: str, path: str, **options: Unpack[RequestOptions]
    ) -> dict[str, Any]:
        """A call on the user's behalf, under the session's authorisation."""
        if session.get("authorisation_id"):
            options["headers"] = {AUTHORISATION_HEADER: session["authorisation_id"]}
        return await self._object(method, path, **options)

    async def _read_account(self, session: dict[str, str]) -> dict[str, Any]:
        return await self._for_user(session, "GET", f"/accounts/{session['account_id']}")

    async def _create_user(self, link_id: str, idempotency_key: str) -> str:
        """A new Teal user for the link; Teal says its id."""
        # Teal's `email` "can be the user's identifier in your system" and its `name` "doesn't have
        # to be unique": both are the link's opaque id, so Teal holds no personal data.
        # Assumption(teal): `name` need not be a person's name -- the reference only says it
        # need not be unique.
        opaque = opaque_id("teal-user", link_id)
        user = await self._object(
            "POST",
            "/users",
            body={"name": f"linkflow {opaque}", "email": f"{opaque}@linkflow.invalid"},
            idempotency_key=f"{idempotency_key}:user",
        )
        user_id = text(user.get("user_id"))
        if user_id is None:
            raise ProviderUnavailable("Teal created a user but did not say its id.")
        return user_id

    async def _valid_authorisation(self, user_id: str) -> str | None:
        """An authorisation of the user's that Teal still holds valid, if there is one."""
        listed = await self._object(
            "GET",
            "/authorisations",
            params={"user_id": user_id, "status": "active", "limit": AUTHORISATIONS_LIMIT},
        )
        for authorisation in listed.get("authorisations") or []:
            if isinstance(authorisation, dict) and authorisation.get("is_valid") is True:
                found = text(authorisation.get("id"))
                if found is not None:
                    return found
        return None

    async def _record_authorisation(
        self, user_id: str, request: LinkRequest, idempotency_key: str
    ) -> str:
        """Record the user's authorisation under Teal's active term; Teal says its id."""
        # Assumption(teal): the app starting a link is the end user accepting Teal's active
        # terms -- Teal leaves how the acceptance is gathered to the client.
        body: dict[str, Any] = {"user_id": user_id, "user_agent": USER_AGENT}
        if request.end_user_ip is not None:
            body["ip_address"] = str(request.end_user_ip)
        authorisation = await self._object(
            "POST",
            "/authorisations",
            body=body,
            idempotency_key=f"{idempotency_key}:authorisation",
        )
        authorisation_id = text(authorisation.get("id"))
        if authorisation_id is None or authorisation.get("is_valid") is False:
            raise ProviderUnavailable("Teal recorded an authorisation but did not say it is valid.")
        return authorisation_id

    async def _create_account(
        self, session: dict[str, str], request: LinkRequest, idempotency_key: str
    ) -> ProviderState:
        credentials = request.credentials
        body: dict[str, Any] = {
            "user_id": session["user_id"],
            "payroll_provider": request.options.institution_code or self._payroll_provider,
            "user_name": credentials.username,
            "password": credentials.password.get_secret_value(),
        }
        if credentials.extra:
            body["extra_login_params"] = {
                name: secret.get_secret_value() for name, secret in credentials.extra.items()
            }
        account = await self._for_user(
            session, "POST", "/accounts", body=body, idempotency_key=idempotency_key
        )
        account_id = text(account.get("account_id"))
        if account_id is None:
            raise ProviderUnavailable("Teal created an account but did not say its id.")
        return state_from_account(account, session | {"account_id": account_id})

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        # Assumption(teal): Teal honours Idempotency-Key on POST /users and /authorisations, so a
        # retried login makes no second user -- the reference names no idempotency header.
        user_id = await self._create_user(link_id, idempotency_key)
        authorisation_id = await self._record_authorisation(user_id, request, idempotency_key)
        session = {"user_id": user_id, "authorisation_id": authorisation_id}
        return await self._create_account(session, request, idempotency_key)

    async def reauthenticate(
        self,
        link_id: str,
        request: LinkRequest,
        session: dict[str, str],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        """Log in again for the same Teal user, under a valid authorisation of theirs.

        The user's authorisation may have lapsed (a one-time one lasts a day): a valid one is
        resolved, or the user's acceptance recorded again. The new login is a new account.
        """
        if "user_id" not in session:
            return await self.login(link_id, request, idempotency_key=idempotency_key)
        user_id = session["user_id"]
        authorisation_id = await self._valid_authorisation(user_id)
        if authorisation_id is None:
            authorisation_id = await self._record_authorisation(user_id, request, idempotency_key)
        fresh = {"user_id": user_id, "authorisation_id": authorisation_id}
        state = await self._create_account(fresh, request, idempotency_key)
        # Assumption(teal): a fresh login is a new account, and the old one is deleted -- the
        # reference documents no route that updates an account's login.
        if session.get("account_id") and session["account_id"] != state.session["account_id"]:
            await self.revoke(session)
        return state

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
        account = await self._for_user(
            session,
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
            page = await self._for_user(
                session,
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
        # Assumption(teal): a deletion is answered 204 with no body -- the reference shows none.
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
