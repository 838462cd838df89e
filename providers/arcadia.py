"""The Arcadia Plug API adapter.

Arcadia (utility data) logs into a utility's website through a *credential*. Creating one starts a
job; the credential's high-level `status` and detailed `statusDetail` say where it stands, and when
the utility asks for multi-factor authentication the client selects a verification method and then
sends the one-time passcode. Every call carries a Bearer token from Arcadia's OAuth2
client-credentials endpoint and the `Arcadia-Version` header. The references, from
docs.arcadia.com:

- "Submit Multi-factor Authentication Method" (`PUT /plug/credentials/{id}/verificationMethod`,
  with `resubmission`; the seed, kept in tests/fixtures/documents/arcadia_submit_mfa_method.txt)
  and "Submit One Time Passcode" (`PUT /plug/credentials/{id}/oneTimePasscode`);
- "Update Credential" (`PATCH /plug/credentials/{id}`): how a login is tried again on the same
  credential, as the "Token Storage" guide's new MFA handshake for an expired stored MFA token
  (MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED) is;
- "Status and Status Detail Descriptions": each `statusDetail` with its `status`,
  `isCustomerActionRequired` and `isAccessible`. `STATUS_DETAILS` below is that table in
  linkflow's words (`ArcadiaAdapter.STATUSES`), who must act included; the README's tables are
  generated from it.

Arcadia keeps a request for MFA input open for a limited time, then ends the job in
MULTI_FACTOR_AUTHENTICATION_TIMEOUT. Each challenge's `deadline` is that expiry, so the link never
waits longer than Arcadia does; an answer that arrives after it (Arcadia refuses it: nothing is
waiting) ends the link `MFA_TIMEOUT`, not as a refused request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self, Unpack

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
from providers.http import raise_for_provider_status
from providers.json_fields import object_or_empty
from providers.privacy import provider_word
from providers.status import (
    Actor,
    Outcome,
    StatusMeaning,
    StatusTable,
    final,
    in_progress,
    linked,
    needs_user,
    transient,
)

# Arcadia's documented default for `Arcadia-Version`; the adapter names it on every call.
API_VERSION = "2024-02-21"
TOKEN_PATH = "/oauth2/token"
PAGE_SIZE = 100
# Arcadia lists are paged; this bounds a provider that keeps promising one more page.
MAX_PAGES = 1000
# A token is renewed this long before Arcadia says it expires (at most a tenth of its life).
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0
# Assumption(arcadia): Arcadia keeps a request for MFA input open ten minutes, when the request
# carries no `expiresAt` -- its reference names MULTI_FACTOR_AUTHENTICATION_TIMEOUT but no window.
MFA_WINDOW_SECONDS = 600.0

CONNECTION_SUCCESS = "CONNECTION_SUCCESS"
CONNECTION_IN_PROGRESS = "CONNECTION_IN_PROGRESS"
CONNECTION_FAILURE = "CONNECTION_FAILURE"
# Assumption(arcadia): the current job reads WAITING_FOR_INPUT while it waits for MFA input --
# the reference documents no job object; the sandbox shares the word (sandbox/arcadia.py).
JOB_WAITING_FOR_INPUT = "WAITING_FOR_INPUT"
VERIFICATION_METHOD = "VERIFICATION_METHOD"
ONE_TIME_PASSCODE = "ONE_TIME_PASSCODE"
# The routes that take the user's MFA input, as Arcadia's reference names them.
VERIFICATION_METHOD_ROUTE = "verificationMethod"
ONE_TIME_PASSCODE_ROUTE = "oneTimePasscode"

IN_PROGRESS = in_progress("Connecting to your utility.")
PROVIDER_HOLD = LinkReason.PROVIDER_HOLD
# Arcadia's words for Arcadia at work: its table files them under CONNECTION_IN_PROGRESS with
# `isCustomerActionRequired` false ("The Arcadia team has started to investigate the issue and
# will update the status accordingly"), so the link waits for Arcadia, however long it takes.
ARCADIA_AT_WORK = " Arcadia is working on it; the connection goes on by itself once it is done."

# How `status` and `statusDetail` combine (see `state_from_credential`):
# 1. A current job waiting for the user's input is CHALLENGED, whatever the statuses say (Arcadia
#    keeps CONNECTION_IN_PROGRESS / DATA_EXTRACTION_IN_PROGRESS while it waits).
# 2. Otherwise `statusDetail` decides: it is the finer word, and Arcadia's table files a customer
#    action (EMAIL_APPROVAL) under CONNECTION_IN_PROGRESS, so `status` alone would read it as
#    "still working".
# 3. `status` qualifies it: a success detail under a status other than CONNECTION_SUCCESS is still
#    in progress, and a detail linkflow does not know falls back on `status` (SUCCESS: linked,
#    IN_PROGRESS: pending, FAILURE: a hold the user is shown and the link checks again).
STATUS_DETAILS = StatusTable(
    "Arcadia",
    "statusDetail",
    {
        "LOGIN_AND_DATA_DISCOVERY_SUCCESS": linked("Your utility account is connected."),
        "LOGIN_AND_INTERVALS_DISCOVERY_SUCCESS": linked(
            "Your utility account is connected, with its smart-meter (interval) data.",
        ),
        "LOGIN_SUCCESS_INTERVALS_DISCOVERY_FAILURE": linked(
            "Your utility account is connected, but no smart-meter (interval) data was"
            " found: only bills and usage totals are available.",
        ),
        # Assumption(arcadia): DATA_EXTRACTION_NOT_REQUESTED is a login that succeeded with no
        # data extraction asked for: linked, nobody to act -- the captured table has no row for it.
        "DATA_EXTRACTION_NOT_REQUESTED": linked(
            "Your utility account is connected; Arcadia has not been asked to fetch its data yet.",
        ),
        "DATA_EXTRACTION_IN_PROGRESS": IN_PROGRESS,
        "ISSUE_UNDER_REVIEW": in_progress(
            "Arcadia is looking into a problem with your utility's website." + ARCADIA_AT_WORK,
        ),
        "PROVIDER_WEBSITE_INACCESSIBLE": in_progress(
            "Your utility's website cannot be reached now." + ARCADIA_AT_WORK
        ),
        "PROVIDER_WEBSITE_NAVIGATION_FAILURE": in_progress(
            "Arcadia could not find its way through your utility's website." + ARCADIA_AT_WORK
        ),
        "UNSUPPORTED_CAPTCHA": in_progress(
            "Your utility's website shows a CAPTCHA that Arcadia has not got past yet."
            + ARCADIA_AT_WORK,
        ),
        "REQUIRES_ENROLLMENT": in_progress(
            "Your utility shares data only through its own data-access portal, and Arcadia"
            " is setting up access there." + ARCADIA_AT_WORK,
        ),
        "EMAIL_APPROVAL": needs_user(
            PROVIDER_HOLD,
            "Your utility has emailed you a request to approve data access. Open that email"
            " and approve it; the connection goes on once it is approved.",
        ),
        "INVALID_CREDENTIALS": final(
            LinkReason.INVALID_CREDENTIALS,
            "Your utility did not accept that username and password. Check them and try again.",
        ),
        # Assumption(arcadia): MULTI_FACTOR_AUTHENTICATION_FAILURE is MFA Arcadia's robots could
        # not pass, held until Arcadia acts -- the captured table has no row for it; Arcadia's
        # support article says its team then investigates and may ask to turn the MFA off.
        "MULTI_FACTOR_AUTHENTICATION_FAILURE": StatusMeaning(
            Outcome.ACTION_REQUIRED,
            reason=PROVIDER_HOLD,
            message="Arcadia could not get past your utility's two-step verification and is"
            " looking into it; the connection goes on once it can. Turning two-step"
            " verification off in your utility account's settings may help.",
            actor=Actor.PROVIDER,
        ),
        "MULTI_FACTOR_AUTHENTICATION_TIMEOUT": final(
            LinkReason.MFA_TIMEOUT,
            "Your utility's verification request expired before it was answered."
            " Please start again.",
        ),
        "UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION": final(
            LinkReason.UNSUPPORTED_MFA,
            "Your utility asks for a kind of two-step verification Arcadia cannot pass on. You"
            " may be able to turn off two-step verification in your utility account's settings,"
            " then try again.",
        ),
        "MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED": needs_user(
            LinkReason.MFA_REFRESH_REQUIRED,
            "Your utility needs you to verify your identity again (a new one-time code)"
            " before your data can be refreshed.",
        ),
        "OTHER_ACCESS_LIMITATION": needs_user(
            PROVIDER_HOLD,
            "Your utility account needs your attention (it may be locked, need a new"
            " password, or need paperless billing turned on). Log in to your utility's website,"
            " resolve the notice there, then try again.",
        ),
        # Assumption(arcadia): PROVIDER_REGISTRATION_INCOMPLETE asks the user to finish their
        # online registration at the utility: a hold -- the captured table has no row for it.
        "PROVIDER_REGISTRATION_INCOMPLETE": needs_user(
            PROVIDER_HOLD,
            "Your online account at your utility is not fully set up. Finish registering on"
            " your utility's website; the connection goes on once that is done.",
        ),
        # The emailed enrollment request was not approved: an out-of-band verification of the
        # account holder that failed, hence MFA_FAILED.
        "UNSUCCESSFUL_EMAIL_APPROVAL": final(
            LinkReason.MFA_FAILED,
            "The data-access request your utility emailed you was not approved. Please start again"
            " and approve the email when it arrives.",
        ),
        "USER_REVOKED_ACCESS": final(
            LinkReason.USER_REVOKED_ACCESS,
            "Access to this utility account was revoked. Connect it again to share its data.",
        ),
        # Assumption(arcadia): CONNECTION_DEACTIVATED is a disabled credential, final like a
        # revoked access -- the captured table has no row for it; "Disable Credential" says data
        # stops with it.
        "CONNECTION_DEACTIVATED": final(
            LinkReason.USER_REVOKED_ACCESS,
            "This utility connection was deactivated at Arcadia. Connect it again to share its"
            " data.",
        ),
    },
)

# Arcadia's documented pairing of each `statusDetail` with its high-level `status` (its
# "credential statuses" table); the sandbox keeps its own copy of the table, and a test holds the
# two, and the README's table, equal.
# Assumption(arcadia): the words the captured table leaves out (the intervals pair, the MFA words,
# UNSUCCESSFUL_EMAIL_APPROVAL, USER_REVOKED_ACCESS and the three newer ones) sit with the group
# their meaning belongs to -- the table's rows for them were not captured.
HIGH_LEVEL_STATUS: dict[str, str] = {
    "LOGIN_AND_DATA_DISCOVERY_SUCCESS": CONNECTION_SUCCESS,
    "LOGIN_AND_INTERVALS_DISCOVERY_SUCCESS": CONNECTION_SUCCESS,
    "LOGIN_SUCCESS_INTERVALS_DISCOVERY_FAILURE": CONNECTION_SUCCESS,
    "DATA_EXTRACTION_NOT_REQUESTED": CONNECTION_SUCCESS,
    "DATA_EXTRACTION_IN_PROGRESS": CONNECTION_IN_PROGRESS,
    "ISSUE_UNDER_REVIEW": CONNECTION_IN_PROGRESS,
    "PROVIDER_WEBSITE_INACCESSIBLE": CONNECTION_IN_PROGRESS,
    "PROVIDER_WEBSITE_NAVIGATION_FAILURE": CONNECTION_IN_PROGRESS,
    "UNSUPPORTED_CAPTCHA": CONNECTION_IN_PROGRESS,
    "REQUIRES_ENROLLMENT": CONNECTION_IN_PROGRESS,
    "EMAIL_APPROVAL": CONNECTION_IN_PROGRESS,
    "INVALID_CREDENTIALS": CONNECTION_FAILURE,
    "MULTI_FACTOR_AUTHENTICATION_FAILURE": CONNECTION_FAILURE,
    "MULTI_FACTOR_AUTHENTICATION_TIMEOUT": CONNECTION_FAILURE,
    "UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION": CONNECTION_FAILURE,
    "MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED": CONNECTION_FAILURE,
    "OTHER_ACCESS_LIMITATION": CONNECTION_FAILURE,
    "PROVIDER_REGISTRATION_INCOMPLETE": CONNECTION_FAILURE,
    "UNSUCCESSFUL_EMAIL_APPROVAL": CONNECTION_FAILURE,
    "USER_REVOKED_ACCESS": CONNECTION_FAILURE,
    "CONNECTION_DEACTIVATED": CONNECTION_FAILURE,
}
# The words Arcadia added after the seed's page was captured (handled like the seed's).
NEWER_STATUS_DETAILS = frozenset(
    {"CONNECTION_DEACTIVATED", "DATA_EXTRACTION_NOT_REQUESTED", "PROVIDER_REGISTRATION_INCOMPLETE"}
)


# Assumption(arcadia): `currentJob.mfa.type` is VERIFICATION_METHOD or ONE_TIME_PASSCODE -- the
# reference documents the two routes but no request object; the sandbox shares the words.
MFA_TYPES: dict[str, ChallengeKind] = {
    VERIFICATION_METHOD: ChallengeKind.DEVICE_CHOICE,
    ONE_TIME_PASSCODE: ChallengeKind.CODE,
}
# How a verification method's `type` is said to the user (Arcadia's guides name SMS, Call, Email).
METHOD_LABELS = {"SMS": "Text message to", "CALL": "Phone call to", "EMAIL": "Email to"}
METHOD_SEPARATOR = ":"


def method_option(method: dict[str, Any]) -> ChallengeOption:
    """A verification method as an option; its value `TYPE:masked destination` is sent back."""
    kind, value = str(method.get("type") or ""), str(method.get("value") or "")
    label = f"{METHOD_LABELS.get(kind.upper(), kind.title())} {value}".strip()
    return ChallengeOption(value=f"{kind}{METHOD_SEPARATOR}{value}", label=label)


def mfa_deadline(mfa: dict[str, Any], issued_at: datetime | None) -> datetime:
    """When Arcadia stops waiting for this request's answer.

    The request's own `expiresAt` when it has one; otherwise `MFA_WINDOW_SECONDS` after the
    request was issued, which is the credential's `lastModifiedAt` (a documented field: the job's
    turn to waiting for input modifies the credential), or after now when even that is missing.
    """
    # Assumption(arcadia): a request for MFA input says when it expires in `expiresAt` -- the
    # reference documents no request object; the sandbox sends the field.
    expires_at = _datetime(mfa.get("expiresAt"))
    if expires_at is not None:
        return expires_at
    return (issued_at or datetime.now(UTC)) + timedelta(seconds=MFA_WINDOW_SECONDS)


def normalize_challenge(mfa: dict[str, Any], issued_at: datetime | None = None) -> Challenge:
    """Turn the current job's request for input into linkflow's `Challenge` (id = Arcadia's)."""
    mfa_id, mfa_type = mfa.get("id"), mfa.get("type")
    if not isinstance(mfa_id, str) or not mfa_id:
        raise ProviderUnavailable("Arcadia asked for MFA input without an id.")
    kind = MFA_TYPES.get(mfa_type) if isinstance(mfa_type, str) else None
    if kind is None:
        word = provider_word(mfa_type)
        raise LinkFailure(
            LinkReason.UNSUPPORTED_MFA,
            word,
            "Your utility asks for a kind of verification linkflow cannot show"
            f" ({word}). Link this account another way.",
        )
    deadline = mfa_deadline(mfa, issued_at)
    if kind is ChallengeKind.DEVICE_CHOICE:
        options = [
            method_option(method)
            for method in mfa.get("verificationMethods") or []
            if isinstance(method, dict) and method.get("type")
        ]
        if not options:
            raise ProviderUnavailable(
                "Arcadia asked to choose a verification method but listed none."
            )
        return Challenge(
            id=mfa_id,
            kind=kind,
            prompt="Where should your utility send your one-time code?",
            options=options,
            deadline=deadline,
        )
    selected = mfa.get("selectedVerificationMethod")
    where = method_option(selected).label if isinstance(selected, dict) else ""
    prompt = "Enter the one-time code your utility sent you"
    if where:
        prompt += f" ({where[0].lower()}{where[1:]})"
    return Challenge(id=mfa_id, kind=kind, prompt=prompt, deadline=deadline)


def state_from_credential(credential: dict[str, Any], session: dict[str, str]) -> ProviderState:
    """Read Arcadia's credential object; raise for final failures and transient trouble."""
    status, detail = credential.get("status"), credential.get("statusDetail")
    job = object_or_empty(credential.get("currentJob"))
    session = dict(session)
    if isinstance(credential.get("id"), str):
        session["credential_id"] = credential["id"]
    if isinstance(job.get("id"), str):
        session["job_id"] = job["id"]
    mfa = job.get("mfa")
    if job.get("status") == JOB_WAITING_FOR_INPUT and isinstance(mfa, dict):
        selected = mfa.get("selectedVerificationMethod")
        if isinstance(selected, dict):
            session["verification_method"] = method_option(selected).value
        return ProviderState(
            outcome=Outcome.CHALLENGED,
            raw_status=str(mfa.get("type")),
            session=session,
            challenges=[normalize_challenge(mfa, _datetime(credential.get("lastModifiedAt")))],
            message="Your utility needs to verify it is you.",
        )
    meaning = STATUS_DETAILS.meanings.get(detail) if isinstance(detail, str) else None
    if meaning is None:
        meaning = _fallback_meaning(status, detail)
    raw = provider_word(detail if isinstance(detail, str) else status)
    outcome, message = STATUS_DETAILS.outcome_of(raw, meaning), meaning.message
    if outcome is Outcome.LINKED and status != CONNECTION_SUCCESS:
        outcome, message = Outcome.PENDING, IN_PROGRESS.message
    return ProviderState(
        outcome=outcome,
        raw_status=raw,
        session=session,
        reason=meaning.reason,
        message=message,
    )


def _fallback_meaning(status: object, detail: object) -> StatusMeaning:
    if status == CONNECTION_SUCCESS:
        return STATUS_DETAILS.meanings["LOGIN_AND_DATA_DISCOVERY_SUCCESS"]
    if status == CONNECTION_IN_PROGRESS:
        return IN_PROGRESS
    if status == CONNECTION_FAILURE:
        # Assumption(arcadia): a failure detail linkflow does not know is a hold, checked again
        # on the schedule -- only the words Arcadia documents as final may end a link.
        detail_word = provider_word(detail) if detail else "no detail given"
        return needs_user(
            PROVIDER_HOLD,
            f"Arcadia cannot connect to your utility now ({detail_word}). Check your utility"
            " account, then try again.",
        )
    return transient(f"Arcadia sent a status linkflow does not know: {provider_word(status)}.")


class ArcadiaAdapter(HttpAdapter):
    """linkflow's `ProviderAdapter` for Arcadia.

    Session: `credential_id`, the current `job_id`, and `verification_method` once one was
    chosen (it decides `resubmission`).
    """

    provider = Provider.ARCADIA
    STATUSES = STATUS_DETAILS
    CHALLENGE_KINDS: ClassVar[Mapping[str, ChallengeKind]] = MFA_TYPES
    # Where Arcadia puts the code of a refusal: `{"error": ...}` (RFC 6749 for OAuth errors).
    # Assumption(arcadia): the Plug API's own refusals carry their code in `error` too -- the
    # reference shows no error body.
    ERROR_CODE_FIELD = ("error",)

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        api_version: str = API_VERSION,
        default_provider_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(base_url, transport=transport)
        self._client_id = client_id
        self._client_secret = client_secret
        self._api_version = api_version
        self._default_provider_id = default_provider_id
        self._clock = clock
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: ProviderSettings) -> Self:
        endpoint = settings.endpoint(
            Provider.ARCADIA,
            {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"},
        )
        return cls(endpoint.base_url, endpoint.keys["client_id"], endpoint.keys["client_secret"])

    # ------------------------------------------------------------------ HTTP

    async def _access_token(self, stale: str | None = None) -> tuple[str, bool]:
        """A usable token, and whether it was fetched just now; never returns `stale`."""
        async with self._token_lock:
            token = self._token
            if token and token != stale and self._clock() < self._token_expires_at:
                return token, False
            response = await self._client.post(
                TOKEN_PATH,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
            )
            raise_for_provider_status(response, self.name, code_field=self.ERROR_CODE_FIELD)
            try:
                body = response.json()
                token = body["access_token"]
                lifetime = float(body.get("expires_in") or 0)
            except (ValueError, KeyError, TypeError) as error:
                raise ProviderUnavailable("Arcadia sent an unreadable access token.") from error
            if not isinstance(token, str) or not token:
                raise ProviderUnavailable("Arcadia sent an empty access token.")
            margin = min(TOKEN_EXPIRY_MARGIN_SECONDS, lifetime / 10)
            self._token, self._token_expires_at = token, self._clock() + lifetime - margin
            return token, True

    async def _send(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """A Plug call, with a Bearer token and `Arcadia-Version`.

        A cached token Arcadia refuses (revoked, or expired early) is renewed once.
        """
        token, fresh = await self._access_token()
        response = await super()._send(method, path, **self._authorized(options, token))
        if response.status_code == 401 and not fresh:
            token, _ = await self._access_token(stale=token)
            response = await super()._send(method, path, **self._authorized(options, token))
        return response

    def _authorized(self, options: RequestOptions, token: str) -> RequestOptions:
        authorized = options.copy()
        authorized["headers"] = dict(options.get("headers") or {}) | {
            "Authorization": f"Bearer {token}",
            "Arcadia-Version": self._api_version,
        }
        return authorized

    # ------------------------------------------------------------------ the protocol

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        # Arcadia's field for reconciling with one's own records: the link's id.
        body = self._login_inputs(request) | {"correlationId": link_id}
        provider_id = request.options.institution_code or self._default_provider_id
        if provider_id:
            body["providerId"] = provider_id
        try:
            credential = await self._object(
                "POST", "/plug/credentials", body=body, idempotency_key=idempotency_key
            )
        except ProviderRejectedRequest as error:
            if error.status_code != 404 or not provider_id:
                raise
            raise LinkFailure(
                LinkReason.INSTITUTION_UNAVAILABLE,
                "PROVIDER_NOT_FOUND",
                "This utility is not available for connection.",
            ) from error
        if not isinstance(credential.get("id"), str):
            raise ProviderUnavailable("Arcadia created a credential but did not say its id.")
        return state_from_credential(credential, {})

    @staticmethod
    def _login_inputs(request: LinkRequest) -> dict[str, Any]:
        """The credential's login inputs; extra ones (a utility account number, ...) go under
        the names Arcadia gives them."""
        credentials = request.credentials
        return {name: secret.get_secret_value() for name, secret in credentials.extra.items()} | {
            "username": credentials.username,
            "password": credentials.password.get_secret_value(),
        }

    @staticmethod
    def _path(session: dict[str, str]) -> str:
        return f"/plug/credentials/{session['credential_id']}"

    async def poll(self, session: dict[str, str]) -> ProviderState:
        return state_from_credential(await self._object("GET", self._path(session)), session)

    async def answer(
        self,
        session: dict[str, str],
        challenges: list[Challenge],
        answers: list[ChallengeAnswer],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        given = {answer.challenge_id: answer.value.get_secret_value() for answer in answers}
        state: ProviderState | None = None
        # Arcadia asks one thing per round; a round of several is answered in order.
        for challenge in challenges:
            if challenge.id not in given:
                raise ProviderRejectedRequest(
                    f"Not sent to Arcadia: no answer for challenge {challenge.id}.", 400
                )
            current = state.session if state else session
            # Assumption(arcadia): the method's four required fields are `jobId`, `resubmission`,
            # `type` and `value`, the passcode's `jobId` and `oneTimePasscode` -- the seed shows
            # the method's fields' types and descriptions, not their names.
            if challenge.kind is ChallengeKind.DEVICE_CHOICE:
                kind, _, value = given[challenge.id].partition(METHOD_SEPARATOR)
                route, body = (
                    VERIFICATION_METHOD_ROUTE,
                    {
                        "jobId": current.get("job_id"),
                        # True when this job had a method chosen already: Arcadia sends it again.
                        "resubmission": bool(current.get("verification_method")),
                        "type": kind,
                        "value": value,
                    },
                )
            elif challenge.kind is ChallengeKind.CODE:
                route, body = (
                    ONE_TIME_PASSCODE_ROUTE,
                    {
                        "jobId": current.get("job_id"),
                        "oneTimePasscode": given[challenge.id],
                    },
                )
            else:
                raise ProviderRejectedRequest(
                    f"Not sent to Arcadia: it never asks a {challenge.kind.value} challenge.", 400
                )
            try:
                credential = await self._object(
                    "PUT",
                    f"{self._path(current)}/{route}",
                    body=body,
                    idempotency_key=idempotency_key
                    if len(challenges) == 1
                    else f"{idempotency_key}-{challenge.id}",
                )
            except ProviderRejectedRequest as refused:
                # An answer after Arcadia's MFA window finds MULTI_FACTOR_AUTHENTICATION_TIMEOUT.
                await self._raise_why_nothing_waits(current, refused)
                raise
            state = state_from_credential(credential, current)
        if state is None:
            raise ProviderRejectedRequest("Not sent to Arcadia: no challenge to answer.", 400)
        return state

    async def fetch_accounts(self, session: dict[str, str]) -> list[Account]:
        accounts: list[Account] = []
        for page in range(MAX_PAGES):
            # Assumption(arcadia): one credential's accounts are `search=credentialId==<id>`,
            # paged in a Spring-style envelope -- the reference names `search`, `page` and `size`
            # but no expression or envelope.
            body = await self._object(
                "GET",
                "/plug/accounts",
                params={
                    "search": f"credentialId=={session['credential_id']}",
                    "page": page,
                    "size": PAGE_SIZE,
                },
            )
            accounts += [
                account_from_arcadia(raw)
                for raw in body.get("content") or []
                if isinstance(raw, dict) and raw.get("isActive", True) and raw.get("id")
            ]
            if body.get("last", True) or page + 1 >= int(body.get("totalPages") or 1):
                break
        return accounts

    async def reauthenticate(
        self,
        link_id: str,
        request: LinkRequest,
        session: dict[str, str],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        """Log in again on the same credential: a new job, and a new MFA handshake if asked.

        An expired stored MFA token (MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED) and a changed
        password are both mended on the credential the link has; a second credential would be a
        second connection to the same utility account.
        """
        if "credential_id" not in session:
            return await self.login(link_id, request, idempotency_key=idempotency_key)
        # Assumption(arcadia): updating a credential's username and password starts a new job on
        # it -- "Update Credential" lists the fields; the "Retry MFA Verification" guides re-enter
        # them to start the new MFA handshake.
        credential = await self._object(
            "PATCH",
            self._path(session),
            body=self._login_inputs(request),
            idempotency_key=idempotency_key,
        )
        # The new job has chosen no verification method yet.
        fresh = {"credential_id": session["credential_id"]}
        return state_from_credential(credential, fresh)

    async def revoke(self, session: dict[str, str]) -> None:
        """Disable the credential (Arcadia disables its accounts with it)."""
        await self._unless_gone(self._json("POST", f"{self._path(session)}/disable"))


def _datetime(value: object) -> datetime | None:
    """An Arcadia timestamp; one without a zone is UTC, as all of Arcadia's examples are."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def account_from_arcadia(raw: dict[str, Any]) -> Account:
    """One of Arcadia's account objects as a linkflow `Account`."""
    number = str(raw.get("accountNumber") or "")
    utility = str(object_or_empty(raw.get("provider")).get("name") or "Utility")
    service = str(raw.get("serviceType") or "").replace("_", " ").title()
    return Account(
        id=str(raw["id"]),
        name=f"{utility} {service}".strip(),
        kind="UTILITY",
        mask=number[-4:] or None,
    )
