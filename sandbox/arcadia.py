"""Arcadia's Plug API as the sandbox speaks it, under `/arcadia`.

linkflow's Arcadia adapter is tested against this module over real HTTP, so it speaks Arcadia's
contract. Arcadia (utility data) logs into a utility's website with a *credential*; creating one
starts a *job*, and the credential's high-level `status` (CONNECTION_SUCCESS,
CONNECTION_IN_PROGRESS, CONNECTION_FAILURE) and detailed `statusDetail` say where it stands. When
the utility asks for multi-factor authentication, the client first submits a verification method
for the credential's current job (`resubmission` says whether the method is sent again), then the
one-time passcode (Arcadia's "Submit Multi-factor Authentication Method" page, kept in
tests/fixtures/documents/arcadia_submit_mfa_method.txt: the credential object and every
`statusDetail` word; header `Arcadia-Version`, default `2024-02-21`).

From Arcadia's public reference (docs.arcadia.com): OAuth2 client credentials at
`POST /oauth2/token` (form fields `grant_type`, `client_id`, `client_secret`, `scope`) and a
Bearer token on every Plug call; `POST /plug/credentials`, `GET /plug/credentials/{id}`,
`POST /plug/credentials/{id}/mfa`, `POST /plug/credentials/{id}/otp`,
`POST /plug/credentials/{id}/disable` ("along with its associated accounts") and
`GET /plug/accounts` with zero-based `page`, `size` and a field `search`; and the table pairing
each `statusDetail` with its `status`. What the seed and the reference leave out is marked
"Assumption" where it appears; the main ones:

- the credential's field names are the seed's descriptions named as Arcadia's docs name them
  elsewhere (`statusDetail`, `isCustomerActionRequired`, `isAccessible`, ...);
- `currentJob` on the credential: `{id, status, mfa}`, where `mfa` (only while the job waits for
  the user) is `{id, type, verificationMethods, selectedVerificationMethod, expiresAt}` with
  `type` VERIFICATION_METHOD (choose where the code goes) or ONE_TIME_PASSCODE (enter it);
  every new request for input has a new `id`;
- the `/mfa` body is `{jobId, resubmission, type, value}` (the seed's four required fields: a
  string, the boolean, two strings) and the `/otp` body `{jobId, oneTimePasscode}`;
- error bodies are `{"error": ..., "message": ...}`; OAuth errors follow RFC 6749.

The shared test users (sandbox/users.py), in Arcadia's words:

- `user_good`: CONNECTION_SUCCESS / LOGIN_AND_DATA_DISCOVERY_SUCCESS, two utility accounts;
- `user_mfa`: one verification method on file, so Arcadia sends the code there itself and only the
  passcode is asked (ONE_TIME_PASSCODE);
- `user_otp`: choose among two masked phones (SMS) and an email (VERIFICATION_METHOD), then
  enter the passcode;
- `user_bad` (or a wrong password): CONNECTION_FAILURE / INVALID_CREDENTIALS;
- `user_hold`: CONNECTION_IN_PROGRESS / REQUIRES_ENROLLMENT;
- `user_slow`: DATA_EXTRACTION_IN_PROGRESS for `SLOW_JOB_SECONDS` more, then linked;
- `user_unsupported`: CONNECTION_IN_PROGRESS / UNSUPPORTED_CAPTCHA.

A wrong passcode (or a method that was not offered) gets a new request for input (a new `mfa.id`);
the third wrong answer ends the job with MULTI_FACTOR_AUTHENTICATION_FAILURE, and an unanswered
request expires into MULTI_FACTOR_AUTHENTICATION_TIMEOUT after the sandbox's MFA window
(`MFA_EXPIRY_SECONDS` unless `python -m sandbox --arcadia-mfa-window-seconds` says otherwise).
Assumption: an answer sent after that is refused with 409 `conflict`, as nothing waits for it, and
the credential then reads MULTI_FACTOR_AUTHENTICATION_TIMEOUT. Test hook
(Assumption: Arcadia's sandbox offers scenario credentials per provider; this one is ours): the
username `status:<STATUS_DETAIL>` with password `pass_good` ends its job in that `statusDetail`.

A job in progress resolves on the first read after `latency_seconds`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.skeleton import (
    ProviderSandbox,
    Refused,
    RouteSpec,
    basic_credentials,
    bearer_token,
    idempotency_key,
    json_object,
)
from sandbox.users import (
    GOOD_PASSWORD,
    MAX_WRONG_ANSWERS,
    OTP_PHONES,
    Scenario,
    is_correct,
    scenario_for,
)

VERSION_HEADER = "arcadia-version"
API_VERSION = "2024-02-21"
# Assumption: the versions this sandbox serves; Arcadia refuses a version it does not know.
SUPPORTED_VERSIONS = frozenset({API_VERSION})
CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
# Assumption: Arcadia's access tokens live for an hour (its older API documented two hours).
TOKEN_TTL_SECONDS = 3600
# Assumption: how long Arcadia waits for an MFA answer before the job times out (its reference
# names MULTI_FACTOR_AUTHENTICATION_TIMEOUT but states no window).
MFA_EXPIRY_SECONDS = 600.0
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
TEST_HOOK_PREFIX = "status:"

# High-level statuses, as the seed lists them.
CONNECTION_SUCCESS = "CONNECTION_SUCCESS"
CONNECTION_IN_PROGRESS = "CONNECTION_IN_PROGRESS"
CONNECTION_FAILURE = "CONNECTION_FAILURE"

# Every detailed status of the seed, with the high-level status Arcadia's "Status and Status
# Detail Descriptions" table pairs it with. Assumption for the words that table leaves out
# (the intervals pair, the MFA words past UNSUPPORTED_..., UNSUCCESSFUL_EMAIL_APPROVAL,
# USER_REVOKED_ACCESS): they sit with the group their meaning belongs to.
STATUS_OF_DETAIL: dict[str, str] = {
    "LOGIN_AND_DATA_DISCOVERY_SUCCESS": CONNECTION_SUCCESS,
    "LOGIN_AND_INTERVALS_DISCOVERY_SUCCESS": CONNECTION_SUCCESS,
    "LOGIN_SUCCESS_INTERVALS_DISCOVERY_FAILURE": CONNECTION_SUCCESS,
    "PROVIDER_WEBSITE_INACCESSIBLE": CONNECTION_IN_PROGRESS,
    "ISSUE_UNDER_REVIEW": CONNECTION_IN_PROGRESS,
    "PROVIDER_WEBSITE_NAVIGATION_FAILURE": CONNECTION_IN_PROGRESS,
    "UNSUPPORTED_CAPTCHA": CONNECTION_IN_PROGRESS,
    "INVALID_CREDENTIALS": CONNECTION_FAILURE,
    "MULTI_FACTOR_AUTHENTICATION_FAILURE": CONNECTION_FAILURE,
    "UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION": CONNECTION_FAILURE,
    "MULTI_FACTOR_AUTHENTICATION_TIMEOUT": CONNECTION_FAILURE,
    "MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED": CONNECTION_FAILURE,
    "OTHER_ACCESS_LIMITATION": CONNECTION_FAILURE,
    "DATA_EXTRACTION_IN_PROGRESS": CONNECTION_IN_PROGRESS,
    "REQUIRES_ENROLLMENT": CONNECTION_IN_PROGRESS,
    "EMAIL_APPROVAL": CONNECTION_IN_PROGRESS,
    "UNSUCCESSFUL_EMAIL_APPROVAL": CONNECTION_FAILURE,
    "USER_REVOKED_ACCESS": CONNECTION_FAILURE,
}
# Assumption: Arcadia's isCustomerActionRequired per statusDetail (the table's column, true where
# the end user or the client has to act).
CUSTOMER_ACTION_REQUIRED = frozenset(
    {
        "INVALID_CREDENTIALS",
        "MULTI_FACTOR_AUTHENTICATION_FAILURE",
        "UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION",
        "MULTI_FACTOR_AUTHENTICATION_TIMEOUT",
        "MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED",
        "OTHER_ACCESS_LIMITATION",
        "EMAIL_APPROVAL",
        "UNSUCCESSFUL_EMAIL_APPROVAL",
        "USER_REVOKED_ACCESS",
    }
)
LINKED_DETAILS = frozenset(d for d, s in STATUS_OF_DETAIL.items() if s == CONNECTION_SUCCESS)

# Assumption: the job and MFA words of `currentJob`.
JOB_RUNNING = "RUNNING"
JOB_WAITING_FOR_INPUT = "WAITING_FOR_INPUT"
JOB_SUCCEEDED = "SUCCEEDED"
JOB_FAILED = "FAILED"
VERIFICATION_METHOD = "VERIFICATION_METHOD"
ONE_TIME_PASSCODE = "ONE_TIME_PASSCODE"

# Assumption: the sandbox's one utility ("provider" in Arcadia's words).
PROVIDER: dict[str, Any] = {
    "billingAddressCountry": "US",
    "id": "sandbox-power-and-light",
    "isIntervalDataSupported": True,
    "isRealTimeCredentialValidationSupported": True,
    "name": "Sandbox Power & Light",
}
PROVIDER_WEBSITE = "https://www.sandbox-power-and-light.example"
# The methods `user_otp` may choose from: the shared masked phones by SMS, and an email.
OTP_METHODS: tuple[dict[str, str], ...] = (
    *({"type": "SMS", "value": phone.label} for phone in OTP_PHONES),
    {"type": "EMAIL", "value": "j***@example.com"},
)
# `user_mfa` has one method on file, so Arcadia sends the code there without asking.
SINGLE_METHOD: dict[str, str] = {"type": "SMS", "value": OTP_PHONES[0].label}
# Assumption: a subset of Arcadia's account object.
ACCOUNT_SPECS = (("ELECTRIC", "4000123401234"), ("GAS", "4000123405678"))
# Assumption: Arcadia's code for a request it cannot read.
BAD_REQUEST = "bad_request"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Credential:
    """One utility login at Arcadia and its current job."""

    id: str
    scenario: Scenario
    username: str
    correlation_id: str | None
    resolves_at: float
    next_step: str
    final_detail: str | None = None
    status: str = CONNECTION_IN_PROGRESS
    status_detail: str = "DATA_EXTRACTION_IN_PROGRESS"
    is_active: bool = True
    job_id: str = field(default_factory=lambda: f"job_{uuid.uuid4().hex}")
    job_status: str = JOB_RUNNING
    mfa: dict[str, Any] | None = None
    mfa_expires_at: float = 0.0
    # None: a request for input never expires.
    mfa_window_seconds: float | None = MFA_EXPIRY_SECONDS
    chosen_method: dict[str, str] | None = None
    wrong_answers: int = 0
    created_at: datetime = field(default_factory=utc_now)
    last_modified_at: datetime = field(default_factory=utc_now)

    def advance(self, now: float) -> None:
        """Resolve the job in progress if its time has come, or time out an unanswered MFA."""
        if self.job_status == JOB_WAITING_FOR_INPUT and now >= self.mfa_expires_at:
            self._finish("MULTI_FACTOR_AUTHENTICATION_TIMEOUT")
            return
        if self.job_status != JOB_RUNNING or now < self.resolves_at:
            return
        step = self.next_step
        if step == "link":
            self._finish("LOGIN_AND_DATA_DISCOVERY_SUCCESS")
        elif step == "finish":
            self._finish(self.final_detail or "ISSUE_UNDER_REVIEW")
        elif step == "ask_method":
            self._ask(now, VERIFICATION_METHOD, list(OTP_METHODS))
        elif step == "ask_code":
            self._ask(now, ONE_TIME_PASSCODE, [])
        else:  # pragma: no cover - every step is set by this module
            raise AssertionError(step)

    def _ask(self, now: float, kind: str, methods: list[dict[str, str]]) -> None:
        window = self.mfa_window_seconds
        asked_at = utc_now()
        self.job_status = JOB_WAITING_FOR_INPUT
        self.mfa_expires_at = now + window if window is not None else float("inf")
        self.mfa = {
            "id": f"mfa_{uuid.uuid4().hex}",
            "type": kind,
            "verificationMethods": methods,
            "selectedVerificationMethod": dict(self.chosen_method) if self.chosen_method else None,
            "expiresAt": iso(asked_at + timedelta(seconds=window)) if window is not None else None,
        }
        self.last_modified_at = asked_at

    def _finish(self, detail: str) -> None:
        self.status = STATUS_OF_DETAIL[detail]
        self.status_detail = detail
        self.job_status = JOB_SUCCEEDED if detail in LINKED_DETAILS else JOB_FAILED
        self.mfa = None
        self.last_modified_at = utc_now()

    def run(self, now: float, latency: float, next_step: str, detail: str | None = None) -> None:
        """Hand the job back to Arcadia's robots until `latency` has passed."""
        self.job_status = JOB_RUNNING
        self.mfa = None
        self.next_step = next_step
        self.final_detail = detail
        self.resolves_at = now + latency
        self.last_modified_at = utc_now()

    def wrong_answer(self, now: float, latency: float, ask_again: str) -> None:
        self.wrong_answers += 1
        if self.wrong_answers >= MAX_WRONG_ANSWERS:
            self.run(now, latency, "finish", "MULTI_FACTOR_AUTHENTICATION_FAILURE")
        else:
            self.run(now, latency, ask_again)

    @property
    def linked(self) -> bool:
        return self.status == CONNECTION_SUCCESS

    def body(self) -> dict[str, Any]:
        """The seed's credential object, plus the assumed `currentJob`."""
        return {
            "correlationId": self.correlation_id,
            "createdAt": iso(self.created_at),
            "createdBy": CLIENT_ID,
            "id": self.id,
            "isAccessible": self.status != CONNECTION_FAILURE,
            "isActive": self.is_active,
            "isCustomerActionRequired": self.job_status == JOB_WAITING_FOR_INPUT
            or self.status_detail in CUSTOMER_ACTION_REQUIRED,
            "isThirdPartyPortal": self.status_detail in ("REQUIRES_ENROLLMENT", "EMAIL_APPROVAL"),
            "lastModifiedAt": iso(self.last_modified_at),
            "lastModifiedBy": CLIENT_ID,
            "nextScheduledJobAt": iso(self.created_at + timedelta(days=1)),
            "provider": dict(PROVIDER),
            "status": self.status,
            "statusDetail": self.status_detail,
            "totalAccounts": len(ACCOUNT_SPECS) if self.linked else 0,
            "username": self.username,
            # Assumption: the seed's three optional, provider-specific login inputs.
            "accountNumber": None,
            "additionalField1": None,
            "additionalField2": None,
            "website": PROVIDER_WEBSITE,
            "currentJob": {"id": self.job_id, "status": self.job_status, "mfa": self.mfa},
        }

    def accounts(self) -> list[dict[str, Any]]:
        if not self.linked:
            return []
        return [
            {
                "id": f"acct_{uuid.uuid5(uuid.NAMESPACE_URL, f'{self.id}/{service}').hex}",
                "accountNumber": number,
                "correlationId": self.correlation_id,
                "createdAt": iso(self.created_at),
                "credentialId": self.id,
                "isActive": self.is_active,
                "provider": {"id": PROVIDER["id"], "name": PROVIDER["name"]},
                "serviceType": service,
                "status": self.status,
                "statusDetail": self.status_detail,
            }
            for service, number in ACCOUNT_SPECS
        ]


FIRST_STEPS: dict[Scenario, tuple[str, str | None]] = {
    Scenario.NO_MFA: ("link", None),
    Scenario.QUESTION: ("ask_code", None),
    Scenario.OTP: ("ask_method", None),
    Scenario.INVALID: ("finish", "INVALID_CREDENTIALS"),
    Scenario.HOLD: ("finish", "REQUIRES_ENROLLMENT"),
    Scenario.SLOW: ("link", None),
    Scenario.UNSUPPORTED: ("finish", "UNSUPPORTED_CAPTCHA"),
}


@dataclass
class ArcadiaSandbox(ProviderSandbox):
    """Arcadia's state for one sandbox process: tokens, credentials, Idempotency-Keys seen."""

    PREFIX = "/arcadia"

    # How long a request for MFA input stays open; None: for ever.
    mfa_window_seconds: float | None = MFA_EXPIRY_SECONDS
    tokens: dict[str, float] = field(default_factory=dict)
    credentials: dict[str, Credential] = field(default_factory=dict)
    tokens_issued: int = 0

    def route_table(self) -> Sequence[RouteSpec]:
        credential = "/plug/credentials/{credential}"
        return (
            ("/plug/credentials", "POST", self.create_credential),
            (credential, "GET", self.get_credential),
            (f"{credential}/mfa", "POST", self.submit_mfa),
            (f"{credential}/otp", "POST", self.submit_otp),
            (f"{credential}/disable", "POST", self.disable_credential),
            ("/plug/accounts", "GET", self.list_accounts),
        )

    def open_routes(self) -> Sequence[RouteSpec]:
        return (("/oauth2/token", "POST", self.create_token),)

    def check(self, request: Request) -> None:
        """Arcadia's checks on every Plug request: a live Bearer token and a known version."""
        expires_at = self.tokens.get(bearer_token(request) or "")
        if expires_at is None or self.clock() >= expires_at:
            raise Refused(401, "A valid Bearer access token is required.", "unauthorized")
        if request.headers.get(VERSION_HEADER) not in SUPPORTED_VERSIONS:
            raise Refused(
                400, f"Set the Arcadia-Version header to {API_VERSION}.", "invalid_version"
            )

    def error_response(self, refused: Refused) -> Response:
        # Assumption: Arcadia's error body shape.
        return JSONResponse(
            {"error": refused.code or BAD_REQUEST, "message": refused.message},
            status_code=refused.status,
        )

    def expire_tokens(self) -> None:
        """Test hook: every token issued so far is expired from now on."""
        for token in self.tokens:
            self.tokens[token] = 0.0

    # ------------------------------------------------------------------ OAuth2

    async def create_token(self, request: Request) -> Response:
        # RFC 6749 section 4.4: form-encoded; client credentials in the body or as Basic auth.
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return _oauth_error(400, "invalid_request", "Send a form-encoded body.")
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        client_id, client_secret = basic_credentials(request) or (None, None)
        client_id = form.get("client_id", client_id)
        client_secret = form.get("client_secret", client_secret)
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Use client_credentials.")
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            return _oauth_error(401, "invalid_client", "Unknown client or wrong secret.")
        token = secrets.token_urlsafe(32)
        self.tokens[token] = self.clock() + TOKEN_TTL_SECONDS
        self.tokens_issued += 1
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL_SECONDS},
            headers={"Cache-Control": "no-store"},
        )

    # ------------------------------------------------------------------ credentials

    def _credential(self, request: Request) -> Credential:
        credential = self.credentials.get(request.path_params["credential"])
        if credential is None:
            raise Refused(404, "Credential not found.", "not_found")
        credential.advance(self.clock())
        return credential

    async def create_credential(self, request: Request) -> Response:
        body = await json_object(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not username or not isinstance(password, str):
            raise Refused(400, "username and password are required strings.")
        provider_id = body.get("providerId", PROVIDER["id"])
        if provider_id != PROVIDER["id"]:
            raise Refused(404, f"Provider {provider_id!r} not found.", "not_found")
        correlation_id = body.get("correlationId")
        if correlation_id is not None and not isinstance(correlation_id, str):
            raise Refused(400, "correlationId must be a string.")
        step, detail = _first_step(username, password)
        scenario = scenario_for(username, password)
        now = self.clock()
        credential = Credential(
            id=f"cred_{uuid.uuid4().hex}",
            scenario=scenario,
            username=username,
            correlation_id=correlation_id,
            resolves_at=now + self.job_seconds(scenario is Scenario.SLOW),
            next_step=step,
            final_detail=detail,
            mfa_window_seconds=self.mfa_window_seconds,
        )
        if scenario is Scenario.QUESTION:
            credential.chosen_method = dict(SINGLE_METHOD)
        self.credentials[credential.id] = credential
        self.ledger.record(idempotency_key(request), credential.id)
        return JSONResponse(credential.body())

    async def get_credential(self, request: Request) -> Response:
        return JSONResponse(self._credential(request).body())

    def _waiting_job(self, credential: Credential, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("jobId") != credential.job_id:
            raise Refused(409, "jobId is not the credential's current job.", "conflict")
        if credential.job_status != JOB_WAITING_FOR_INPUT or credential.mfa is None:
            raise Refused(
                409, f"The current job is {credential.job_status}, not waiting for MFA.", "conflict"
            )
        return credential.mfa

    async def submit_mfa(self, request: Request) -> Response:
        body = await json_object(request)
        credential = self._credential(request)
        # Recorded before the checks: a retried submission arriving after the first was accepted
        # is exactly the duplicate worth counting.
        self.ledger.record(idempotency_key(request), credential.id)
        mfa = self._waiting_job(credential, body)
        resubmission, kind, value = body.get("resubmission"), body.get("type"), body.get("value")
        if not isinstance(resubmission, bool) or not isinstance(kind, str):
            raise Refused(400, "resubmission (boolean), type and value are required.")
        if not isinstance(value, str):
            raise Refused(400, "resubmission (boolean), type and value are required.")
        now = self.clock()
        if mfa["type"] == ONE_TIME_PASSCODE:
            # Asking for the code to be sent again: only as a resubmission of the chosen method.
            if not resubmission or {"type": kind, "value": value} != credential.chosen_method:
                raise Refused(
                    409,
                    "A passcode is awaited; resubmit the selected method to resend it.",
                    "conflict",
                )
            credential.run(now, self.latency_seconds, "ask_code")
            return JSONResponse(credential.body())
        if resubmission != (credential.chosen_method is not None):
            raise Refused(400, "resubmission must say whether a method was chosen before.")
        choice = {"type": kind, "value": value}
        if choice not in mfa["verificationMethods"]:
            credential.wrong_answer(now, self.latency_seconds, "ask_method")
        else:
            credential.chosen_method = choice
            credential.run(now, self.latency_seconds, "ask_code")
        return JSONResponse(credential.body())

    async def submit_otp(self, request: Request) -> Response:
        body = await json_object(request)
        credential = self._credential(request)
        self.ledger.record(idempotency_key(request), credential.id)
        mfa = self._waiting_job(credential, body)
        if mfa["type"] != ONE_TIME_PASSCODE:
            raise Refused(409, "Select a verification method first.", "conflict")
        passcode = body.get("oneTimePasscode")
        if not isinstance(passcode, str) or not passcode:
            raise Refused(400, "oneTimePasscode is required.")
        now = self.clock()
        if is_correct(passcode):
            credential.run(now, self.latency_seconds, "link")
        else:
            credential.wrong_answer(now, self.latency_seconds, "ask_code")
        return JSONResponse(credential.body())

    async def disable_credential(self, request: Request) -> Response:
        credential = self._credential(request)
        credential.is_active = False
        credential.last_modified_at = utc_now()
        return JSONResponse(credential.body())

    async def list_accounts(self, request: Request) -> Response:
        page, size = _paging(request)
        # Assumption: the search expression for one credential's accounts.
        search = request.query_params.get("search", "")
        field_name, _, wanted = search.partition("==")
        if search and field_name != "credentialId":
            raise Refused(400, "Only credentialId==<id> searches are supported here.")
        accounts: list[dict[str, Any]] = []
        for credential in self.credentials.values():
            if not search or credential.id == wanted:
                credential.advance(self.clock())
                accounts += credential.accounts()
        chunk = accounts[page * size : (page + 1) * size]
        total_pages = max(1, -(-len(accounts) // size))
        # Assumption: Arcadia's page envelope (Spring's, as its page/size/sort parameters are).
        return JSONResponse(
            {
                "content": chunk,
                "number": page,
                "size": size,
                "totalElements": len(accounts),
                "totalPages": total_pages,
                "first": page == 0,
                "last": page >= total_pages - 1,
            }
        )


def _first_step(username: str, password: str) -> tuple[str, str | None]:
    if username.startswith(TEST_HOOK_PREFIX) and password == GOOD_PASSWORD:
        detail = username.removeprefix(TEST_HOOK_PREFIX)
        if detail not in STATUS_OF_DETAIL:
            raise Refused(400, f"Unknown statusDetail test hook {detail!r}.")
        return "finish", detail
    return FIRST_STEPS[scenario_for(username, password)]


def _oauth_error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": code, "error_description": description},
        status_code=status,
        headers={"WWW-Authenticate": "Basic"} if status == 401 else None,
    )


def _paging(request: Request) -> tuple[int, int]:
    try:
        page = int(request.query_params.get("page", "0"))
        size = int(request.query_params.get("size", str(DEFAULT_PAGE_SIZE)))
    except ValueError as invalid:
        raise Refused(400, "page and size must be integers.") from invalid
    if page < 0 or not 1 <= size <= MAX_PAGE_SIZE:
        raise Refused(400, f"page must be 0 or more; size 1 to {MAX_PAGE_SIZE}.")
    return page, size


def create_sandbox(
    latency_seconds: float, mfa_window_seconds: float | None = MFA_EXPIRY_SECONDS
) -> ArcadiaSandbox:
    return ArcadiaSandbox(latency_seconds=latency_seconds, mfa_window_seconds=mfa_window_seconds)
