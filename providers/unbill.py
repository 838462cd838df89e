"""The Unbill bill-pay API adapter.

Unbill links an end user's account at a biller (a *company*) through an *auth*: the user's login
at that company. The auth's `status.type` says where it stands (Unbill's "Auth Object" page, kept
in tests/fixtures/documents/unbill_auth_object.txt):
`verified`, `authenticate` (the credentials do not work), `hold` (the user must act on the
company's website, then `POST /auth/{authId}/fix-hold`) or `mfa-required` with an `mfa` object
whose `method` is `questions`, `code` or `prompt` and whose `mfa` list holds every question of
the round, each with its `identifier`; all of them are answered in one
`POST /auth/{authId}/answer-questions`. `AUTH_STATUSES` below (the adapter's `STATUSES`) is the
one table of Unbill's status words and their meaning for a link; the README's table is generated
from it.

The routes past the seed come from Unbill's public reference (its Slate docs,
github.com/unbill/slate: "Create Client", "List all auths", "Answer questions", "Fix auth hold",
"Delete auth", "List all bills"). An auth is read the documented way, from the client's list
(`GET /auth/list/{clientId}` -> `{"data": [auth, ...]}`), never from a route of its own. Today's
reference creates auths only through Unbill's Connect widget; `POST /auth` is its older
reference's route (`userId`, `companyId`, `form`), used here as a marked assumption, and nothing
is read from its answer but the auth's `_id` when it says one. The `pending` word is an
assumption shared with the sandbox (see `sandbox/unbill.py`).

The app's `user_ref` is the client's `identifier`, sent in a body only; URLs carry Unbill's own
`clientId` and auth ids. Unbill states no expiry for an MFA round, so challenges carry no provider
deadline, and its error bodies (`{"message": ...}`) have no code: a refusal says only the HTTP
status, method and path.
"""

from __future__ import annotations

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
from providers.adapter import HttpAdapter, RequestOptions
from providers.base import ProviderState
from providers.errors import LinkFailure, ProviderRejectedRequest, ProviderUnavailable
from providers.json_fields import object_or_empty, text
from providers.privacy import provider_word
from providers.status import (
    Outcome,
    StatusTable,
    challenged,
    final,
    in_progress,
    linked,
    needs_user,
)

# The sandbox's test company (the seed's example, Netflix); a link names another through
# `LinkOptions.institution_code`.
DEFAULT_COMPANY_ID = "579b695decea110719b1874d"
# What Unbill's list of bills is, in linkflow's account vocabulary.
BILL_KIND = "BILL"
# Assumption(unbill): bill amounts are US dollars -- Unbill is a US bill-pay service and its
# bill object states no currency.
BILL_CURRENCY = "USD"
# The create request's optional test hook (the seed's "For Testing set status to ..."), read
# from the login's extra credential fields.
TEST_STATUS_FIELD = "status"
# Session flag set once an MFA round has been answered; see `state_from_auth`.
MFA_ANSWERED = "mfa_answered"

IN_PROGRESS = in_progress("Signing in to your biller.")

AUTH_STATUSES = StatusTable(
    "Unbill",
    "status.type",
    {
        # Assumption(unbill): `pending` is the word while Unbill signs in to the company -- the
        # seed documents no in-progress word.
        "pending": IN_PROGRESS,
        "verified": linked("Your biller account is connected."),
        "mfa-required": challenged("Your biller needs you to confirm it is you."),
        "hold": needs_user(
            LinkReason.PROVIDER_HOLD,
            "Your biller needs your attention: log in to its website and do what it asks,"
            " then come back.",
        ),
        "authenticate": final(
            LinkReason.INVALID_CREDENTIALS,
            "Your biller did not accept that username and password. Check them and try again.",
        ),
    },
)

MFA_METHODS: dict[str, ChallengeKind] = {
    "questions": ChallengeKind.TEXT,
    "code": ChallengeKind.CODE,
    "prompt": ChallengeKind.PUSH_APPROVAL,
}

PROMPT_TEXT = "Approve the sign-in request on your device."
# What to show when Unbill sends an item without its `question`.
DEFAULT_PROMPTS = {
    ChallengeKind.TEXT: "Answer your biller's security question.",
    ChallengeKind.CODE: "Enter the code your biller sent you.",
    ChallengeKind.PUSH_APPROVAL: PROMPT_TEXT,
}
MFA_FAILED_MESSAGE = (
    "Your biller did not accept the answers to its security questions. Please start again."
)


def normalize_challenges(auth_id: str, mfa: object) -> list[Challenge]:
    """Turn Unbill's `mfa` object into linkflow's challenges (id = Unbill's `identifier`)."""
    if not isinstance(mfa, dict):
        return []
    method = mfa.get("method")
    kind = MFA_METHODS.get(method) if isinstance(method, str) else None
    if kind is None:
        raise LinkFailure(
            LinkReason.UNSUPPORTED_MFA,
            "mfa-required",
            "Your biller asks for a kind of verification linkflow cannot show"
            f" ({provider_word(method)}). Link this account another way.",
        )
    items = [item for item in mfa.get("mfa") or [] if isinstance(item, dict)]
    challenges = [
        Challenge(
            id=str(item["identifier"]),
            kind=kind,
            prompt=text(item.get("question")) or DEFAULT_PROMPTS[kind],
        )
        for item in items
        if item.get("identifier")
    ]
    if not challenges and kind is ChallengeKind.PUSH_APPROVAL:
        # A prompt needs no identifier to be waited on; one stable id per auth will do.
        challenges = [Challenge(id=f"{auth_id}-prompt", kind=kind, prompt=PROMPT_TEXT)]
    return challenges


def state_from_auth(auth: dict[str, Any], session: dict[str, str]) -> ProviderState:
    """Read Unbill's auth object; raise for final failures and transient trouble."""
    status, meaning = AUTH_STATUSES.meaning_of(object_or_empty(auth.get("status")).get("type"))
    if status == "authenticate" and session.get(MFA_ANSWERED):
        # Unbill has one word for "this login must be redone": after an answered MFA round it
        # means the answers were refused, not the password.
        raise LinkFailure(LinkReason.MFA_FAILED, status, MFA_FAILED_MESSAGE)
    outcome, message = AUTH_STATUSES.outcome_of(status, meaning), meaning.message
    new_session = {k: v for k, v in session.items() if k != "hold_code"}
    challenges: list[Challenge] = []
    if outcome is Outcome.CHALLENGED:
        challenges = normalize_challenges(session.get("auth_id", ""), auth.get("mfa"))
        if not challenges:
            outcome, message = Outcome.PENDING, IN_PROGRESS.message
    elif outcome is Outcome.ACTION_REQUIRED:
        reason = auth.get("reason")
        if isinstance(reason, dict):
            message = text(reason.get("userMessage")) or message
            if code := text(reason.get("code")):
                new_session["hold_code"] = code
    return ProviderState(
        outcome=outcome,
        raw_status=status,
        session=new_session,
        challenges=challenges,
        reason=meaning.reason,
        message=message,
    )


class UnbillAdapter(HttpAdapter):
    """linkflow's `ProviderAdapter` for Unbill.

    session = `{"client_id", "auth_id", "company_id"}`, plus `mfa_answered` once an MFA round
    was answered and `hold_code` (Unbill's `reason.code`) while the auth is on hold.
    """

    provider = Provider.UNBILL
    STATUSES = AUTH_STATUSES
    CHALLENGE_KINDS: ClassVar[Mapping[str, ChallengeKind]] = MFA_METHODS

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        default_company_id: str = DEFAULT_COMPANY_ID,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # No key, no header: Unbill then answers 401, which says what is missing.
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(base_url, headers=headers, transport=transport)
        self._company_id = default_company_id

    @classmethod
    def from_settings(cls, settings: ProviderSettings) -> Self:
        endpoint = settings.endpoint(Provider.UNBILL, {"api_key": "sandbox-api-key"})
        return cls(endpoint.base_url, endpoint.keys["api_key"])

    async def _succeed(self, method: str, path: str, **options: Unpack[RequestOptions]) -> None:
        """Call one of Unbill's `{"success": true}` routes."""
        result = await self._object(method, path, **options)
        if result.get("success") is not True:
            raise ProviderUnavailable(f"Unbill did not confirm {method} {path}.")

    async def _auths(self, client_id: str) -> list[dict[str, Any]]:
        """The client's auths, as Unbill's documented read lists them."""
        listed = await self._object("GET", f"/auth/list/{client_id}")
        return [auth for auth in listed.get("data") or [] if isinstance(auth, dict)]

    async def _read_auth(self, session: dict[str, str]) -> dict[str, Any]:
        """The session's auth from the client's list; gone from it is gone (404)."""
        for auth in await self._auths(session["client_id"]):
            if auth.get("_id") == session["auth_id"]:
                return auth
        raise ProviderRejectedRequest(
            f"Unbill lists no auth {session['auth_id']} for client {session['client_id']}.", 404
        )

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        # "Create Client" creates the client, or returns the one with this identifier.
        client = await self._object("POST", "/client", body={"identifier": request.user_ref})
        client_id = text(client.get("clientId"))
        if client_id is None:
            raise ProviderUnavailable("Unbill created a client but did not say its clientId.")
        credentials = request.credentials
        company_id = request.options.institution_code or self._company_id
        # Assumption(unbill): `POST /auth` (`userId` = the clientId, `companyId`, `form`) still
        # creates an auth -- today's reference creates auths only in Connect; its older one had it.
        body: dict[str, Any] = {
            "userId": client_id,
            "companyId": company_id,
            "form": {
                "username": credentials.username,
                "password": credentials.password.get_secret_value(),
            },
        }
        if test_status := credentials.extra.get(TEST_STATUS_FIELD):
            body[TEST_STATUS_FIELD] = test_status.get_secret_value()
        before = {auth.get("_id") for auth in await self._auths(client_id)}
        try:
            created = await self._object(
                "POST", "/auth", body=body, idempotency_key=idempotency_key
            )
        except ProviderRejectedRequest as error:
            if error.status_code != 404:
                raise
            raise LinkFailure(
                LinkReason.INSTITUTION_UNAVAILABLE,
                "COMPANY_NOT_FOUND",
                "This biller is not available for connection.",
            ) from error
        auth = self._created_auth(created, await self._auths(client_id), before, company_id)
        session = {
            "client_id": client_id,
            "auth_id": str(auth["_id"]),
            "company_id": str(object_or_empty(auth.get("company")).get("_id") or company_id),
        }
        return state_from_auth(auth, session)

    @staticmethod
    def _created_auth(
        created: dict[str, Any],
        listed: list[dict[str, Any]],
        before: set[object],
        company_id: str,
    ) -> dict[str, Any]:
        """The new auth as the client's list shows it.

        Its `_id` is the create answer's when it says one; otherwise it is the auth at this
        company that the list did not hold before.
        """
        said = text(created.get("_id"))
        for auth in listed:
            if said is not None and auth.get("_id") == said:
                return auth
        if said is None:
            new = [
                auth
                for auth in listed
                if auth.get("_id") not in before
                and str(object_or_empty(auth.get("company")).get("_id")) == company_id
            ]
            if len(new) == 1:
                return new[0]
        raise ProviderUnavailable("Unbill does not list the auth it was asked to create.")

    async def poll(self, session: dict[str, str]) -> ProviderState:
        return state_from_auth(await self._read_auth(session), session)

    async def answer(
        self,
        session: dict[str, str],
        challenges: list[Challenge],
        answers: list[ChallengeAnswer],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        # A prompt is approved on the user's device; there is nothing to send for it.
        waiting = {c.id for c in challenges if not c.kind.needs_answer}
        sent = [a for a in answers if a.challenge_id not in waiting]
        if not sent:
            return await self.poll(session)
        await self._succeed(
            "POST",
            f"/auth/{session['auth_id']}/answer-questions",
            body={
                "answers": [
                    {"answer": a.value.get_secret_value(), "identifier": a.challenge_id}
                    for a in sent
                ]
            },
            idempotency_key=idempotency_key,
        )
        return await self.poll(session | {MFA_ANSWERED: "true"})

    async def fix_hold(self, session: dict[str, str]) -> ProviderState:
        """Tell Unbill the user has done what the hold asked; Unbill then signs in again."""
        await self._succeed("POST", f"/auth/{session['auth_id']}/fix-hold")
        return await self.poll(session)

    async def resolve_hold(self, session: dict[str, str], *, idempotency_key: str) -> ProviderState:
        return await self.fix_hold(session)

    async def fetch_accounts(self, session: dict[str, str]) -> list[Account]:
        listed = await self._object("GET", f"/bill/list/{session['client_id']}")
        accounts = []
        for entry in listed.get("data") or []:
            bill = object_or_empty(entry).get("bill")
            if not isinstance(bill, dict) or not bill.get("_id"):
                continue
            company = object_or_empty(bill.get("company"))
            # Unbill lists every bill of the client; this link's are the auth's company's.
            if str(company.get("_id")) != session["company_id"]:
                continue
            balance = bill.get("balance")
            accounts.append(
                Account(
                    id=str(bill["_id"]),
                    name=str(company.get("name") or "Bill"),
                    kind=BILL_KIND,
                    balance=None if balance is None else str(balance),
                    currency=BILL_CURRENCY,
                )
            )
        return accounts

    async def revoke(self, session: dict[str, str]) -> None:
        await self._unless_gone(self._succeed("DELETE", f"/auth/{session['auth_id']}"))
