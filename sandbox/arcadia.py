"""Arcadia's Plug API as the sandbox speaks it, under `/arcadia`.

linkflow's Arcadia adapter is tested against this module over real HTTP, so it speaks Arcadia's
contract. Arcadia (utility data) logs into a utility's website with a *credential*; creating one
starts a *job*, and the credential's high-level `status` (CONNECTION_SUCCESS,
CONNECTION_IN_PROGRESS, CONNECTION_FAILURE) and detailed `statusDetail` say where it stands. When
the utility asks for multi-factor authentication, the client first selects a verification method
for the credential's current job (`resubmission` says whether the method is sent again), then sends
the one-time passcode (Arcadia's "Submit Multi-factor Authentication Method" page, kept in
tests/fixtures/documents/arcadia_submit_mfa_method.txt: the credential object and every
`statusDetail` word; header `Arcadia-Version`, which "defaults to 2024-02-21").

From Arcadia's public reference (docs.arcadia.com): OAuth2 client credentials at
`POST /oauth2/token` (form fields `grant_type`, `client_id`, `client_secret`, `scope`) and a
Bearer token on every Plug call; `POST /plug/credentials`, `GET /plug/credentials/{id}`,
`PATCH /plug/credentials/{id}` ("Update Credential"),
`PUT /plug/credentials/{id}/verificationMethod`, `PUT /plug/credentials/{id}/oneTimePasscode`
(the MFA method, then the passcode), `POST /plug/credentials/{id}/disable` ("along with
its associated accounts") and `GET /plug/accounts` with zero-based `page`, `size` and a field
`search`; and the "Status and Status Detail Descriptions" table giving each `statusDetail` its
`status`, `isCustomerActionRequired` and `isAccessible` (`CREDENTIAL_STATUSES` below). What the
seed and the reference leave out is marked `# Assumption(arcadia): ...` where it appears; the
main ones: the credential's `currentJob` (`{id, status, mfa}`, where `mfa` is
`{id, type, verificationMethods, selectedVerificationMethod, expiresAt}` with `type`
VERIFICATION_METHOD or ONE_TIME_PASSCODE, and every new request for input has a new `id`), the
names of the MFA bodies' fields, and error bodies `{"error": ..., "message": ...}` (OAuth errors
follow RFC 6749).

The shared test users (sandbox/users.py), in Arcadia's words:

- `user_good`: CONNECTION_SUCCESS / LOGIN_AND_DATA_DISCOVERY_SUCCESS, two utility accounts;
- `user_mfa`: one verification method on file, so Arcadia sends the code there itself and only the
  passcode is asked (ONE_TIME_PASSCODE);
- `user_otp`: choose among two masked phones (SMS), a call and an email (VERIFICATION_METHOD),
  then enter the passcode;
- `user_bad` (or a wrong password): CONNECTION_FAILURE / INVALID_CREDENTIALS;
- `user_hold`: CONNECTION_IN_PROGRESS / EMAIL_APPROVAL (the one hold Arcadia's table gives the
  customer to act on);
- `user_slow`: DATA_EXTRACTION_IN_PROGRESS for `SLOW_JOB_SECONDS` more, then linked;
- `user_unsupported`: CONNECTION_FAILURE / UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION.

A wrong passcode (or a method that was not offered) gets a new request for input (a new `mfa.id`),
as often as it comes, and an unanswered request expires into MULTI_FACTOR_AUTHENTICATION_TIMEOUT
after the sandbox's MFA window (`MFA_EXPIRY_SECONDS` unless `python -m sandbox
--arcadia-mfa-window-seconds` says otherwise). Updating a credential's username or password
(`PATCH`) starts a new job on the same credential, with a new MFA handshake where the user has MFA:
that is how an expired stored MFA token is renewed. Test hooks: the username
`status:<STATUS_DETAIL>` with password `pass_good` ends its job in that `statusDetail`, and the
test-only `POST /arcadia/_sandbox/credentials/{id}/mfa-token-expired` expires a connected
credential's stored MFA token (MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED).

A job in progress resolves on the first read after `latency_seconds`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, NamedTuple
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
    OTP_PHONES,
    Scenario,
    is_correct,
    scenario_for,
)

VERSION_HEADER = "arcadia-version"
API_VERSION = "2024-02-21"
# Assumption(arcadia): the sandbox serves 2024-02-21 only and refuses a version it does not know
# -- the reference documents the default, not what an unknown version gets.
SUPPORTED_VERSIONS = frozenset({API_VERSION})
CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
# Assumption(arcadia): access tokens live for an hour -- the reference says "time-limited" (its
# older API documented two hours).
TOKEN_TTL_SECONDS = 3600
# Assumption(arcadia): Arcadia waits ten minutes for an MFA answer before the job times out --
# its reference names MULTI_FACTOR_AUTHENTICATION_TIMEOUT but states no window.
MFA_EXPIRY_SECONDS = 600.0
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
TEST_HOOK_PREFIX = "status:"

# High-level statuses, as the seed lists them.
CONNECTION_SUCCESS = "CONNECTION_SUCCESS"
CONNECTION_IN_PROGRESS = "CONNECTION_IN_PROGRESS"
CONNECTION_FAILURE = "CONNECTION_FAILURE"


class CredentialStatus(NamedTuple):
    """One row of Arcadia's credential status table."""

    status: str
    is_customer_action_required: bool
    is_accessible: bool


SUCCESS = CredentialStatus(CONNECTION_SUCCESS, False, True)
ARCADIA_WORKING = CredentialStatus(CONNECTION_IN_PROGRESS, False, True)
CUSTOMER_MUST_FIX = CredentialStatus(CONNECTION_FAILURE, True, False)

# Every detailed status of the seed, and the three Arcadia added since, as Arcadia's "Status and
# Status Detail Descriptions" table gives them.
# Assumption(arcadia): the rows that table leaves out (the intervals pair, the MFA words,
# UNSUCCESSFUL_EMAIL_APPROVAL, USER_REVOKED_ACCESS, the newer three) read as their group's
# documented rows do -- their rows were not captured; MULTI_FACTOR_AUTHENTICATION_FAILURE waits
# for Arcadia, whose support article says its team investigates MFA its robots cannot pass.
CREDENTIAL_STATUSES: dict[str, CredentialStatus] = {
    "LOGIN_AND_DATA_DISCOVERY_SUCCESS": SUCCESS,
    "LOGIN_AND_INTERVALS_DISCOVERY_SUCCESS": SUCCESS,
    "LOGIN_SUCCESS_INTERVALS_DISCOVERY_FAILURE": SUCCESS,
    "DATA_EXTRACTION_NOT_REQUESTED": SUCCESS,
    "PROVIDER_WEBSITE_INACCESSIBLE": CredentialStatus(CONNECTION_IN_PROGRESS, False, False),
    "ISSUE_UNDER_REVIEW": ARCADIA_WORKING,
    "PROVIDER_WEBSITE_NAVIGATION_FAILURE": ARCADIA_WORKING,
    "UNSUPPORTED_CAPTCHA": ARCADIA_WORKING,
    "EMAIL_APPROVAL": CredentialStatus(CONNECTION_IN_PROGRESS, True, False),
    "REQUIRES_ENROLLMENT": CredentialStatus(CONNECTION_IN_PROGRESS, False, False),
    "DATA_EXTRACTION_IN_PROGRESS": ARCADIA_WORKING,
    "INVALID_CREDENTIALS": CUSTOMER_MUST_FIX,
    "MULTI_FACTOR_AUTHENTICATION_FAILURE": CredentialStatus(CONNECTION_FAILURE, False, False),
    "UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION": CUSTOMER_MUST_FIX,
    "MULTI_FACTOR_AUTHENTICATION_TIMEOUT": CUSTOMER_MUST_FIX,
    "MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED": CUSTOMER_MUST_FIX,
    "OTHER_ACCESS_LIMITATION": CUSTOMER_MUST_FIX,
    "PROVIDER_REGISTRATION_INCOMPLETE": CUSTOMER_MUST_FIX,
    "UNSUCCESSFUL_EMAIL_APPROVAL": CUSTOMER_MUST_FIX,
    "USER_REVOKED_ACCESS": CUSTOMER_MUST_FIX,
    "CONNECTION_DEACTIVATED": CUSTOMER_MUST_FIX,
}
STATUS_OF_DETAIL: dict[str, str] = {
    detail: row.status for detail, row in CREDENTIAL_STATUSES.items()
}
LINKED_DETAILS = frozenset(d for d, s in STATUS_OF_DETAIL.items() if s == CONNECTION_SUCCESS)
THIRD_PARTY_PORTAL_DETAILS = frozenset({"REQUIRES_ENROLLMENT", "EMAIL_APPROVAL"})

# Assumption(arcadia): the job and MFA words of `currentJob` -- the reference documents no job
# object, only that the MFA routes act on "the credential's current job".
JOB_RUNNING = "RUNNING"
JOB_WAITING_FOR_INPUT = "WAITING_FOR_INPUT"
JOB_SUCCEEDED = "SUCCEEDED"
JOB_FAILED = "FAILED"
VERIFICATION_METHOD = "VERIFICATION_METHOD"
ONE_TIME_PASSCODE = "ONE_TIME_PASSCODE"

# Assumption(arcadia): the sandbox's one utility ("provider" in Arcadia's words) -- the seed
# documents the provider object's fields, not a test utility.
PROVIDER: dict[str, Any] = {
    "billingAddressCountry": "US",
    "id": "sandbox-power-and-light",
    "isIntervalDataSupported": True,
    "isRealTimeCredentialValidationSupported": True,
    "name": "Sandbox Power & Light",
}
PROVIDER_WEBSITE = "https://www.sandbox-power-and-light.example"
# The methods `user_otp` may choose from: Arcadia's guides name SMS, Call and Email.
OTP_METHODS: tuple[dict[str, str], ...] = (
    *({"type": "SMS", "value": phone.label} for phone in OTP_PHONES),
    {"type": "CALL", "value": OTP_PHONES[0].label},
    {"type": "EMAIL", "value": "j***@example.com"},
)
# `user_mfa` has one method on file, so Arcadia sends the code there without asking.
SINGLE_METHOD: dict[str, str] = {"type": "SMS", "value": OTP_PHONES[0].label}
# Assumption(arcadia): an account object carries at least these fields -- the seed documents the
# credential, not the account.
ACCOUNT_SPECS = (("ELECTRIC", "4000123401234"), ("GAS", "4000123405678"))
# Assumption(arcadia): a request Arcadia cannot read is refused with code `bad_request` -- the
# reference shows no error body.
BAD_REQUEST = "bad_request"
# The login inputs "Update Credential" takes that start a new job when they change.
LOGIN_INPUTS = ("username", "password")


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
    password: str = field(repr=False)
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
    # Whether a job has found the credential's accounts (they outlive a disabled credential).
    discovered: bool = False
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
        self.discovered = self.discovered or detail in LINKED_DETAILS
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

    def start_job(self, now: float, seconds: float, first: tuple[str, str | None]) -> None:
        """A new job on this credential (created, or its login inputs updated)."""
        self.job_id = f"job_{uuid.uuid4().hex}"
        self.status, self.status_detail = CONNECTION_IN_PROGRESS, "DATA_EXTRACTION_IN_PROGRESS"
        self.chosen_method = dict(SINGLE_METHOD) if self.scenario is Scenario.QUESTION else None
        self.run(now, seconds, *first)

    def expire_mfa_token(self) -> None:
        """The utility's session token Arcadia stored at the last MFA has expired."""
        self._finish("MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED")

    @property
    def linked(self) -> bool:
        return self.status == CONNECTION_SUCCESS

    def body(self) -> dict[str, Any]:
        """The seed's credential object, plus the assumed `currentJob`."""
        row = CREDENTIAL_STATUSES[self.status_detail]
        return {
            "correlationId": self.correlation_id,
            "createdAt": iso(self.created_at),
            "createdBy": CLIENT_ID,
            "id": self.id,
            "isAccessible": row.is_accessible,
            "isActive": self.is_active,
            # Assumption(arcadia): a job waiting for MFA input needs the customer's action --
            # the table's rows are per `statusDetail`, and the MFA request is the customer's to
            # answer.
            "isCustomerActionRequired": self.job_status == JOB_WAITING_FOR_INPUT
            or row.is_customer_action_required,
            "isThirdPartyPortal": self.status_detail in THIRD_PARTY_PORTAL_DETAILS,
            "lastModifiedAt": iso(self.last_modified_at),
            "lastModifiedBy": CLIENT_ID,
            "nextScheduledJobAt": iso(self.created_at + timedelta(days=1)),
            "provider": dict(PROVIDER),
            "status": self.status,
            "statusDetail": self.status_detail,
            "totalAccounts": len(ACCOUNT_SPECS) if self.linked else 0,
            "username": self.username,
            # The seed's three optional, provider-specific login inputs.
            "accountNumber": None,
            "additionalField1": None,
            "additionalField2": None,
            "website": PROVIDER_WEBSITE,
            "currentJob": {"id": self.job_id, "status": self.job_status, "mfa": self.mfa},
        }

    def accounts(self) -> list[dict[str, Any]]:
        if not self.discovered:
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
    Scenario.HOLD: ("finish", "EMAIL_APPROVAL"),
    Scenario.SLOW: ("link", None),
    Scenario.UNSUPPORTED: ("finish", "UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION"),
}


@dataclass
class ArcadiaSandbox(ProviderSandbox):
    """Arcadia's state for one sandbox process: tokens, credentials, Idempotency-Keys seen."""

    PREFIX = "/arcadia"

    # What each test user does here, in this provider's words (the README's table of test users
    # is generated from these; tests/test_provider_contracts.py asserts the stories).
    TEST_USERS: ClassVar[Mapping[str, str]] = {
        "user_good": "`LOGIN_AND_DATA_DISCOVERY_SUCCESS`",
        "user_mfa": "one passcode (`ONE_TIME_PASSCODE`)",
        "user_otp": "choose a method (`VERIFICATION_METHOD`), then the passcode",
        "user_bad": "`INVALID_CREDENTIALS`",
        "user_hold": "`EMAIL_APPROVAL`",
        "user_slow": "`DATA_EXTRACTION_IN_PROGRESS` for 3 s",
        "user_unsupported": "`UNSUPPORTED_MULTI_FACTOR_AUTHENTICATION`",
    }

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
            (credential, "PATCH", self.update_credential),
            (f"{credential}/verificationMethod", "PUT", self.submit_verification_method),
            (f"{credential}/oneTimePasscode", "PUT", self.submit_one_time_passcode),
            (f"{credential}/disable", "POST", self.disable_credential),
            ("/plug/accounts", "GET", self.list_accounts),
        )

    def open_routes(self) -> Sequence[RouteSpec]:
        return (
            ("/oauth2/token", "POST", self.create_token),
            (
                "/_sandbox/credentials/{credential}/mfa-token-expired",
                "POST",
                self.expire_mfa_token,
            ),
        )

    def check(self, request: Request) -> None:
        """Arcadia's checks on every Plug request: a live Bearer token and a known version.

        A request without `Arcadia-Version` is served as the documented default, 2024-02-21.
        """
        expires_at = self.tokens.get(bearer_token(request) or "")
        if expires_at is None or self.clock() >= expires_at:
            raise Refused(401, "A valid Bearer access token is required.", "unauthorized")
        if request.headers.get(VERSION_HEADER, API_VERSION) not in SUPPORTED_VERSIONS:
            raise Refused(
                400, f"Set the Arcadia-Version header to {API_VERSION}.", "invalid_version"
            )

    def error_response(self, refused: Refused) -> Response:
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
        first = _first_step(username, password)
        scenario = scenario_for(username, password)
        credential = Credential(
            id=f"cred_{uuid.uuid4().hex}",
            scenario=scenario,
            username=username,
            password=password,
            correlation_id=correlation_id,
            resolves_at=0.0,
            next_step=first[0],
            mfa_window_seconds=self.mfa_window_seconds,
        )
        credential.start_job(self.clock(), self.job_seconds(scenario is Scenario.SLOW), first)
        self.credentials[credential.id] = credential
        self.ledger.record(idempotency_key(request), credential.id)
        return JSONResponse(credential.body())

    async def get_credential(self, request: Request) -> Response:
        return JSONResponse(self._credential(request).body())

    async def update_credential(self, request: Request) -> Response:
        """ "Update Credential": new login inputs start a new job on the same credential."""
        body = await json_object(request)
        credential = self._credential(request)
        self.ledger.record(idempotency_key(request), credential.id)
        if not body:
            raise Refused(400, "Send at least one field to update.")
        inputs = {name: body[name] for name in LOGIN_INPUTS if name in body}
        if any(not isinstance(value, str) or not value for value in inputs.values()):
            raise Refused(400, "username and password must be non-empty strings.")
        if isinstance(body.get("correlationId"), str):
            credential.correlation_id = body["correlationId"]
        if not inputs:
            return JSONResponse(credential.body())
        credential.username = inputs.get("username", credential.username)
        credential.password = inputs.get("password", credential.password)
        credential.scenario = scenario_for(credential.username, credential.password)
        credential.start_job(
            self.clock(),
            self.job_seconds(credential.scenario is Scenario.SLOW),
            _first_step(credential.username, credential.password),
        )
        credential.last_modified_at = utc_now()
        return JSONResponse(credential.body())

    async def expire_mfa_token(self, request: Request) -> Response:
        """Test hook: a connected credential's stored MFA token expires."""
        credential = self._credential(request)
        if not credential.linked:
            raise Refused(
                409, "Only a connected credential has an MFA token to expire.", "conflict"
            )
        credential.expire_mfa_token()
        return JSONResponse(credential.body())

    def _waiting_job(self, credential: Credential, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("jobId") != credential.job_id:
            raise Refused(409, "jobId is not the credential's current job.", "conflict")
        if credential.job_status != JOB_WAITING_FOR_INPUT or credential.mfa is None:
            raise Refused(
                409, f"The current job is {credential.job_status}, not waiting for MFA.", "conflict"
            )
        return credential.mfa

    async def submit_verification_method(self, request: Request) -> Response:
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
            credential.run(now, self.latency_seconds, "ask_method")
        else:
            credential.chosen_method = choice
            credential.run(now, self.latency_seconds, "ask_code")
        return JSONResponse(credential.body())

    async def submit_one_time_passcode(self, request: Request) -> Response:
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
        # Assumption(arcadia): a wrong passcode gets a new request for one, with no limit of
        # Arcadia's own -- the reference names no word for a refused code.
        credential.run(now, self.latency_seconds, "link" if is_correct(passcode) else "ask_code")
        return JSONResponse(credential.body())

    async def disable_credential(self, request: Request) -> Response:
        credential = self._credential(request)
        credential.is_active = False
        # Assumption(arcadia): a disabled credential reads CONNECTION_DEACTIVATED -- the newer
        # word's row was not captured; "Disable Credential" stops its data.
        credential.status = CONNECTION_FAILURE
        credential.status_detail = "CONNECTION_DEACTIVATED"
        credential.last_modified_at = utc_now()
        return JSONResponse(credential.body())

    async def list_accounts(self, request: Request) -> Response:
        page, size = _paging(request)
        # Assumption(arcadia): one credential's accounts are `search=credentialId==<id>` -- the
        # reference names the `search` field but no expression.
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
        # Assumption(arcadia): a page comes in Spring's envelope -- Arcadia's page, size and sort
        # parameters are Spring's; the reference shows no envelope.
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
