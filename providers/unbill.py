"""The Unbill bill-pay API adapter.

Unbill links an end user's account at a biller (a *company*) through an *auth*: the user's login
at that company. The auth's `status.type` says where it stands (Unbill's "Auth Object" page, kept
in tests/fixtures/documents/unbill_auth_object.txt):
`verified`, `authenticate` (the credentials do not work), `hold` (the user must act on the
company's website, then `POST /auth/{authId}/fix-hold`) or `mfa-required` with an `mfa` object
whose `method` is `questions`, `code` or `prompt` and whose `mfa` list holds every question of
the round, each with its `identifier`; all of them are answered in one
`POST /auth/{authId}/answer-questions`. `STATUS_MEANINGS` below is the one map from Unbill's
status words to linkflow's meaning; the README's table is checked against it.

The routes past the seed come from Unbill's public reference; `POST /auth`, `GET /auth/{authId}`
and the `pending` word are assumptions shared with the sandbox (see `sandbox/unbill.py`).

The app's `user_ref` is the client's `identifier`, sent in a body only; URLs carry Unbill's own
`clientId` and auth ids. Unbill states no expiry for an MFA round, so challenges carry no provider
deadline, and its error bodies (`{"message": ...}`) have no code: a refusal says only the HTTP
status, method and path.
"""

from __future__ import annotations

from typing import Any

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
from providers.base import (
    LifecycleByLoggingInAgain,
    LinkFailure,
    Outcome,
    ProviderRejectedRequest,
    ProviderState,
    ProviderUnavailable,
)
from providers.http import idempotency_header, make_client, raise_for_provider_status, read_object
from providers.mapping import StatusMeaning, final
from providers.privacy import provider_word

# The sandbox's test company (the seed's example, Netflix); a link names another through
# `LinkOptions.institution_code`.
DEFAULT_COMPANY_ID = "579b695decea110719b1874d"
# What Unbill's list of bills is, in linkflow's account vocabulary.
BILL_KIND = "BILL"
# Assumption: Unbill is a US bill-pay service and states amounts in dollars without a currency.
BILL_CURRENCY = "USD"
# The create request's optional test hook (the seed's "For Testing set status to ..."), read
# from the login's extra credential fields.
TEST_STATUS_FIELD = "status"
# Session flag set once an MFA round has been answered; see `state_from_auth`.
MFA_ANSWERED = "mfa_answered"

IN_PROGRESS = StatusMeaning(Outcome.PENDING, message="Signing in to your biller.")

STATUS_MEANINGS: dict[str, StatusMeaning] = {
    # Assumption: Unbill's document has no in-progress word; `pending` is the sandbox's.
    "pending": IN_PROGRESS,
    "verified": StatusMeaning(Outcome.LINKED, message="Your biller account is connected."),
    "mfa-required": StatusMeaning(
        Outcome.CHALLENGED, message="Your biller needs you to confirm it is you."
    ),
    "hold": StatusMeaning(
        Outcome.ACTION_REQUIRED,
        reason=LinkReason.PROVIDER_HOLD,
        message="Your biller needs your attention: log in to its website and do what it asks,"
        " then come back.",
    ),
    "authenticate": final(
        LinkReason.INVALID_CREDENTIALS,
        "Your biller did not accept that username and password. Check them and try again.",
    ),
}

CHALLENGE_KINDS: dict[str, ChallengeKind] = {
    "questions": ChallengeKind.TEXT,
    "code": ChallengeKind.CODE,
    "prompt": ChallengeKind.PUSH_APPROVAL,
}

STATUS_FIELD = "status.type"

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


def _status_word(auth: dict[str, Any]) -> str | None:
    status = auth.get("status")
    word = status.get("type") if isinstance(status, dict) else None
    return word if isinstance(word, str) else None


def normalize_challenges(auth_id: str, mfa: object) -> list[Challenge]:
    """Turn Unbill's `mfa` object into linkflow's challenges (id = Unbill's `identifier`)."""
    if not isinstance(mfa, dict):
        return []
    method = mfa.get("method")
    kind = CHALLENGE_KINDS.get(method) if isinstance(method, str) else None
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
            prompt=_text(item.get("question")) or DEFAULT_PROMPTS[kind],
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
    status = _status_word(auth)
    meaning = STATUS_MEANINGS.get(status) if status is not None else None
    if status is None or meaning is None:
        raise ProviderUnavailable(
            f"Unbill sent a status.type linkflow does not know: {provider_word(status)}."
        )
    if status == "authenticate" and session.get(MFA_ANSWERED):
        # Unbill has one word for "this login must be redone": after an answered MFA round it
        # means the answers were refused, not the password.
        raise LinkFailure(LinkReason.MFA_FAILED, status, MFA_FAILED_MESSAGE)
    if meaning.failure is not None:
        raise LinkFailure(meaning.failure, status, meaning.message)
    if meaning.outcome is None:
        raise ProviderUnavailable(f"Unbill status.type is {status}: {meaning.message}")
    outcome, message = meaning.outcome, meaning.message
    new_session = {k: v for k, v in session.items() if k != "hold_code"}
    challenges: list[Challenge] = []
    if outcome is Outcome.CHALLENGED:
        challenges = normalize_challenges(session.get("auth_id", ""), auth.get("mfa"))
        if not challenges:
            outcome, message = Outcome.PENDING, IN_PROGRESS.message
    elif outcome is Outcome.ACTION_REQUIRED:
        reason = auth.get("reason")
        if isinstance(reason, dict):
            message = _text(reason.get("userMessage")) or message
            if code := _text(reason.get("code")):
                new_session["hold_code"] = code
    return ProviderState(
        outcome=outcome,
        raw_status=status,
        session=new_session,
        challenges=challenges,
        reason=meaning.reason,
        message=message,
    )


class UnbillAdapter(LifecycleByLoggingInAgain):
    """linkflow's `ProviderAdapter` for Unbill.

    session = `{"client_id", "auth_id", "company_id"}`, plus `mfa_answered` once an MFA round
    was answered and `hold_code` (Unbill's `reason.code`) while the auth is on hold.
    """

    provider = Provider.UNBILL

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        default_company_id: str = DEFAULT_COMPANY_ID,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._company_id = default_company_id
        # No key, no header: Unbill then answers 401, which says what is missing.
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or make_client(base_url, headers=headers)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _read(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Call Unbill and return its JSON object; a malformed body is transient."""
        # httpx's own transport errors propagate: the activities classify timeouts and refusals.
        response = await self._client.request(
            method, path, json=body, headers=idempotency_header(idempotency_key)
        )
        raise_for_provider_status(response, "Unbill")
        return read_object(response, "Unbill", exact_numbers=True)

    async def _succeed(self, method: str, path: str, **kwargs: Any) -> None:
        """Call one of Unbill's `{"success": true}` routes."""
        result = await self._read(method, path, **kwargs)
        if result.get("success") is not True:
            raise ProviderUnavailable(f"Unbill did not confirm {method} {path}.")

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        client = await self._read("POST", "/client", body={"identifier": request.user_ref})
        client_id = client.get("clientId")
        if not isinstance(client_id, str) or not client_id:
            raise ProviderUnavailable("Unbill created a client but did not say its clientId.")
        credentials = request.credentials
        body: dict[str, Any] = {
            "clientId": client_id,
            "companyId": request.options.institution_code or self._company_id,
            "form": {
                "username": credentials.username,
                "password": credentials.password.get_secret_value(),
            },
        }
        if test_status := credentials.extra.get(TEST_STATUS_FIELD):
            body[TEST_STATUS_FIELD] = test_status.get_secret_value()
        try:
            auth = await self._read("POST", "/auth", body=body, idempotency_key=idempotency_key)
        except ProviderRejectedRequest as error:
            if error.status_code != 404:
                raise
            raise LinkFailure(
                LinkReason.INSTITUTION_UNAVAILABLE,
                "COMPANY_NOT_FOUND",
                "This biller is not available for connection.",
            ) from error
        auth_id = auth.get("_id")
        if not isinstance(auth_id, str) or not auth_id:
            raise ProviderUnavailable("Unbill created an auth but did not say its _id.")
        company = auth.get("company")
        company_id = company.get("_id") if isinstance(company, dict) else None
        session = {
            "client_id": client_id,
            "auth_id": auth_id,
            "company_id": str(company_id or body["companyId"]),
        }
        return state_from_auth(auth, session)

    async def poll(self, session: dict[str, str]) -> ProviderState:
        return state_from_auth(await self._read("GET", f"/auth/{session['auth_id']}"), session)

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
        listed = await self._read("GET", f"/bill/list/{session['client_id']}")
        accounts = []
        for entry in listed.get("data") or []:
            bill = entry.get("bill") if isinstance(entry, dict) else None
            if not isinstance(bill, dict) or not bill.get("_id"):
                continue
            company = bill.get("company")
            if not isinstance(company, dict):
                company = {}
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
        try:
            await self._succeed("DELETE", f"/auth/{session['auth_id']}")
        except ProviderRejectedRequest as error:
            if error.status_code != 404:
                raise


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def create_adapter(settings: ProviderSettings) -> UnbillAdapter:
    endpoint = settings.endpoint(Provider.UNBILL, {"api_key": "sandbox-api-key"})
    return UnbillAdapter(endpoint.base_url, endpoint.keys["api_key"])
