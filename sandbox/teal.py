"""Teal's payroll API as the sandbox speaks it, under `/teal`.

linkflow's Teal adapter is tested against this module over real HTTP, so it speaks Teal's
contract: every request carries `X-API-KEY`, and an *account* (one user's login at one payroll
provider) is created with `POST /accounts`, read with `GET /accounts/{account_id}` and answered
with `PUT /accounts/{account_id}/mfa` `{"mfa": "..."}` (Teal's "Submit an MFA response for an
account" page, kept in tests/fixtures/documents/teal_submit_mfa_response.txt). Every account body
has the seed's fields (`account_id`, `payroll_provider`, `user_name`, `created_at`, `status`,
`mfa_enabled`, `latest_pay_date`), and `authorization_url` while an OAuth payroll provider waits
for the user.

Teal's `user_id` is Teal's own: `POST /users` (`name` and `email`, which "can be the user's
identifier in your system") returns it, and an account is created for a user Teal knows. Creating
an account and answering its MFA "requires a valid authorisation for the user": the user's
acceptance of Teal's terms, recorded with `POST /authorisations` (`user_id`, `user_agent`, and
optionally `term_id`, `ip_address`, `fingerprint`) and listed with `GET /authorisations`. The
optional `x-teal-authorisation-id` header names the authorisation to use; without it Teal resolves
a valid one for the user, and with none the request is refused. Ids are accepted in every form
Teal's documents show, including its example authorisation id
`7f3b8c2a-1d4e-5f6g-7h8i-9j0k1l2m3n4o` (uuid-shaped, not hexadecimal).

Teal's public reference (docs.goteal.co: "Create a User", "Authorisations", "Create an account",
"Submit MFA response") gives these bodies, a `mfa_method` object (`{"type": "Code", "source":
"AUTHENTICATOR_APP"}`), the `authorization_url` of "provider using OAUTH2", the payroll
submissions of `GET /payroll/{user_id}` and the note that an MFA answer is "a code, a date, or
password characters". It does not list the status words nor the rest of `mfa_method`; what this
module adds is marked `# Assumption(teal): ...` where it appears. In brief:

- status words: PENDING, MFA_REQUIRED, ACTIVE, INVALID, MFA_FAILED, ACTION_REQUIRED (the adapter
  also knows AUTHORISATION_REQUIRED, EXPIRED and ERROR, which this sandbox never sends);
- `mfa_method` (only while MFA_REQUIRED): `id` (new every round), `type` (`Code`, `Date`,
  `PasswordCharacters`), `source` (`AUTHENTICATOR_APP`, `SMS`, `EMAIL`, `USER`) and `prompt`;
- `status_message` (only while ACTION_REQUIRED): what the payroll provider asks the user to do.

Teal takes one string per MFA step, so a choice (MX's "where should we text your code?") cannot be
expressed. `user_otp` is therefore asked first for a documented value, a date of birth (`Date`),
then for a code texted to the phone on file (`Code` from `SMS`); `correct` answers both.

`user_redirect` (Teal's own test user) logs in at an OAuth payroll provider: its account answers
with an `authorization_url`, which this sandbox serves itself (test-only, under
`/teal/_sandbox/oauth/authorize`): visiting it completes the OAuth login, and so does waiting
`OAUTH_SECONDS`. Another test-only route, `POST /teal/_sandbox/authorisations/{id}/revoke`,
revokes an authorisation.

A job in progress (PENDING) resolves on the first read after `latency_seconds`.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from sandbox.skeleton import (
    ProviderSandbox,
    Refused,
    RouteSpec,
    idempotency_key,
    json_object,
)
from sandbox.users import (
    GOOD_PASSWORD,
    MAX_WRONG_ANSWERS,
    Scenario,
    is_correct,
    scenario_for,
)

API_KEY_HEADER = "x-api-key"
AUTHORISATION_HEADER = "x-teal-authorisation-id"
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
# Teal's ids, in every form its documents show: uuids, and its example authorisation id, which is
# uuid-shaped but not hexadecimal.
TEAL_ID = re.compile(r"[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}", re.IGNORECASE)
# Teal's system term for recurring checks: the id its reference's examples give a term.
SYSTEM_TERM_ID = "550e8400-e29b-41d4-a716-446655440000"
# Teal's test user for an OAuth payroll provider, and how long until its OAuth login completes
# by itself.
REDIRECT_USER = "user_redirect"
OAUTH_SECONDS = 2.0
OAUTH_PATH = "/_sandbox/oauth/authorize"

# Assumption(teal): the account status words beyond PENDING -- the reference shows only PENDING
# and says an account is able to receive data, needs authorisation, or is invalid or expired.
PENDING = "PENDING"
MFA_REQUIRED = "MFA_REQUIRED"
ACTIVE = "ACTIVE"
INVALID = "INVALID"
MFA_FAILED = "MFA_FAILED"
ACTION_REQUIRED = "ACTION_REQUIRED"

HOLD_MESSAGE = (
    "Your payroll provider asks you to accept its updated terms. Log in to its website,"
    " accept them, then link this account again."
)

# Assumption(teal): a request Teal cannot take is refused with code INVALID_REQUEST -- the
# reference shows no error body.
INVALID_REQUEST = "INVALID_REQUEST"
# Assumption(teal): a user Teal does not know is a 404 USER_NOT_FOUND, and a request without a
# valid authorisation a 403 AUTHORISATION_REQUIRED -- the reference says only "rejected".
USER_NOT_FOUND = "USER_NOT_FOUND"
AUTHORISATION_REQUIRED = "AUTHORISATION_REQUIRED"


def refusal(status: int, code: str, message: str) -> Refused:
    """A refusal with Teal's error code."""
    return Refused(status, message, code)


def teal_time(moment: datetime | None = None) -> str:
    """Teal's date-time form, as in its examples: `2019-05-17T00:00:00.000Z`."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class MfaSpec:
    """One MFA step; every time it is asked it gets a new `id`."""

    type: str
    source: str
    prompt: str

    def issue(self) -> dict[str, str]:
        # Assumption(teal): `mfa_method` carries an `id` (new every round) and a `prompt` beside
        # the documented `type` and `source` -- the reference shows only those two.
        return {
            "id": str(uuid.uuid4()),
            "type": self.type,
            "source": self.source,
            "prompt": self.prompt,
        }


PASSWORD_CHARACTERS = MfaSpec(
    "PasswordCharacters", "USER", "Enter characters 2, 4 and 7 of your password"
)
DATE_OF_BIRTH = MfaSpec("Date", "USER", "Enter your date of birth (YYYY-MM-DD)")
SMS_CODE = MfaSpec("Code", "SMS", "Enter the code we texted to the phone number ending 4321")
CAPTCHA = MfaSpec("Captcha", "PROVIDER", "Solve the picture puzzle")

# The step of an OAuth payroll provider: the user logs in on its own page.
OAUTH = "OAUTH"
Step = MfaSpec | str
FIRST_STEPS: dict[Scenario, Step] = {
    Scenario.NO_MFA: ACTIVE,
    Scenario.QUESTION: PASSWORD_CHARACTERS,
    Scenario.OTP: DATE_OF_BIRTH,
    Scenario.INVALID: INVALID,
    Scenario.HOLD: ACTION_REQUIRED,
    Scenario.SLOW: ACTIVE,
    Scenario.UNSUPPORTED: CAPTCHA,
}
NEXT_STEPS: dict[MfaSpec, Step] = {
    PASSWORD_CHARACTERS: ACTIVE,
    DATE_OF_BIRTH: SMS_CODE,
    SMS_CODE: ACTIVE,
}

# The payroll submissions behind an ACTIVE sandbox account, trimmed to the documented fields the
# adapter reads (`id`, `account_id`, `employment_information`, `income_information`), with the
# reference's own employer and amounts.
PAYSLIPS: tuple[tuple[str, str, str, str, int, int], ...] = (
    # employer, role, pay_date, pay_interval_start, gross_pay, net_pay
    ("Acme Ltd", "Software Engineer", "2023-04-27", "2023-04-01", 3500, 2500),
    ("Acme Ltd", "Software Engineer", "2023-05-27", "2023-05-01", 3500, 2500),
    ("Globex Ltd", "Consultant", "2023-05-15", "2023-05-01", 800, 640),
)


@dataclass
class TealUser:
    """A user as Teal knows it; `user_id` is Teal's."""

    user_id: str
    name: str
    email: str
    created_at: str = field(default_factory=teal_time)

    def body(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "created_at": self.created_at,
            "name": self.name,
            "email": self.email,
        }


@dataclass
class TealAuthorisation:
    """A user's recorded acceptance of one of Teal's authorisation terms."""

    id: str
    user_id: str
    term_id: str
    user_agent: str
    ip_address: str | None
    fingerprint: str | None
    status: str = "active"
    accepted_at: str = field(default_factory=teal_time)
    revoked_at: str | None = None

    @property
    def is_valid(self) -> bool:
        return self.status == "active"

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "ip_address": self.ip_address,
            "is_valid": self.is_valid,
            "accepted_at": self.accepted_at,
            "created_at": self.accepted_at,
            "user_id": self.user_id,
            "user_agent": self.user_agent,
            "revoked_at": self.revoked_at,
            "term_id": self.term_id,
            "fingerprint": self.fingerprint,
        }


@dataclass
class TealAccount:
    account_id: str
    user_id: str
    payroll_provider: str
    user_name: str
    scenario: Scenario
    resolves_at: float
    next_step: Step
    created_at: str = field(default_factory=teal_time)
    status: str = PENDING
    mfa_enabled: bool = False
    latest_pay_date: str | None = None
    mfa_method: dict[str, str] | None = None
    asked: MfaSpec | None = None
    wrong_answers: int = 0
    # The authorisation each authorised request for this account used, in order.
    authorisation_ids: list[str] = field(default_factory=list)
    # While an OAuth payroll provider waits for the user: where they log in, and until when.
    authorization_url: str | None = None
    oauth_due: float = 0.0

    def advance(self, now: float) -> None:
        """Resolve a job in progress once its latency has passed."""
        if self.authorization_url is not None and now >= self.oauth_due:
            self.complete_oauth(now, 0.0)
        if self.status != PENDING or now < self.resolves_at or self.next_step == OAUTH:
            return
        step = self.next_step
        if isinstance(step, MfaSpec):
            self.asked = step
            self.mfa_method = step.issue()
            self.mfa_enabled = True
            self.status = MFA_REQUIRED
            return
        self.mfa_method = None
        self.status = step
        if step == ACTIVE:
            self.latest_pay_date = max(f"{p[2]}T00:00:00.000Z" for p in PAYSLIPS)

    def await_oauth(self, url: str, due: float) -> None:
        """An OAuth payroll provider: the user logs in on its page, reached through `url`."""
        self.authorization_url, self.oauth_due = url, due

    def complete_oauth(self, now: float, latency_seconds: float) -> None:
        """The user has logged in at the OAuth payroll provider: Teal fetches the payroll."""
        if self.authorization_url is None:
            return
        self.authorization_url = None
        self.next_step = ACTIVE
        self.resolves_at = now + latency_seconds

    def answer(self, value: str, now: float, latency_seconds: float) -> None:
        asked = self.asked
        if asked is None:
            raise refusal(409, "NO_MFA_PENDING", "The account has no MFA to answer.")
        self.status = PENDING
        self.mfa_method = None
        self.resolves_at = now + latency_seconds
        if not is_correct(value):
            self.wrong_answers += 1
            self.next_step = MFA_FAILED if self.wrong_answers >= MAX_WRONG_ANSWERS else asked
        else:
            self.next_step = NEXT_STEPS.get(asked, ACTIVE)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "account_id": self.account_id,
            "payroll_provider": self.payroll_provider,
            "user_name": self.user_name,
            "created_at": self.created_at,
            "status": self.status,
            "mfa_enabled": self.mfa_enabled,
            "latest_pay_date": self.latest_pay_date,
        }
        if self.status == MFA_REQUIRED and self.mfa_method is not None:
            body["mfa_method"] = dict(self.mfa_method)
        if self.authorization_url is not None:
            # Assumption(teal): `authorization_url` is in every read while the OAuth login waits,
            # the status staying PENDING -- the reference shows it only in the create response.
            body["authorization_url"] = self.authorization_url
        if self.status == ACTION_REQUIRED:
            # Assumption(teal): ACTION_REQUIRED says what the provider asks in `status_message`
            # -- the reference documents no such field.
            body["status_message"] = HOLD_MESSAGE
        return body

    def payroll_submissions(self) -> list[dict[str, Any]]:
        if self.status != ACTIVE:
            return []
        return [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.account_id}/{pay_date}/{name}")),
                "account_id": self.account_id,
                "entry_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.account_id}/entry")),
                "created_at": self.created_at,
                "employment_information": {
                    "employer_name": name,
                    "role": role,
                    "type": "Full-time",
                    "status": "active",
                    "start_date": "2019-05-17T00:00:00.000Z",
                    "leave_date": None,
                },
                "income_information": {
                    "pay_date": f"{pay_date}T00:00:00.000Z",
                    "pay_interval_start": f"{start}T00:00:00.000Z",
                    "pay_interval_end": f"{pay_date}T00:00:00.000Z",
                    "pay_frequency": "Monthly",
                    "earnings": {"gross_pay": gross, "net_pay": net},
                },
            }
            for name, role, pay_date, start, gross, net in PAYSLIPS
        ]


@dataclass
class TealSandbox(ProviderSandbox):
    """Teal's state for one sandbox process: accounts and the Idempotency-Keys seen."""

    PREFIX = "/teal"

    # What each test user does here, in this provider's words (the README's table of test users
    # is generated from these; tests/test_provider_contracts.py asserts the stories).
    TEST_USERS: ClassVar[Mapping[str, str]] = {
        "user_good": "`ACTIVE`",
        "user_mfa": "password characters (`PasswordCharacters`, secret)",
        "user_otp": "a date (`Date`), then a texted `Code`",
        "user_bad": "`INVALID`",
        "user_hold": "`ACTION_REQUIRED` with the provider's message",
        "user_slow": "`PENDING` for 3 s",
        "user_unsupported": "a `Captcha` step",
        "user_redirect": "an OAuth payroll provider: a `redirect` challenge whose URL,"
        " once visited, connects the link",
    }

    accounts: dict[str, TealAccount] = field(default_factory=dict)
    users: dict[str, TealUser] = field(default_factory=dict)
    authorisations: dict[str, TealAuthorisation] = field(default_factory=dict)

    def route_table(self) -> Sequence[RouteSpec]:
        return (
            ("/users", "POST", self.create_user),
            ("/users/{user_id}", "GET", self.get_user),
            ("/authorisations", "POST", self.create_authorisation),
            ("/authorisations", "GET", self.list_authorisations),
            ("/accounts", "POST", self.create_account),
            ("/accounts", "GET", self.list_accounts),
            ("/accounts/{account_id}", "GET", self.get_account),
            ("/accounts/{account_id}", "DELETE", self.delete_account),
            ("/accounts/{account_id}/mfa", "PUT", self.submit_mfa),
            ("/payroll/{user_id}", "GET", self.payroll),
        )

    def open_routes(self) -> Sequence[RouteSpec]:
        return (
            (OAUTH_PATH, "GET", self.oauth_login),
            ("/_sandbox/authorisations/{authorisation_id}/revoke", "POST", self.revoke),
        )

    def check(self, request: Request) -> None:
        """Teal's checks on every request: an API key, and a well-formed authorisation id."""
        if not request.headers.get(API_KEY_HEADER, "").strip():
            raise refusal(401, "UNAUTHORISED", "Send your API key in the X-API-KEY header.")
        authorisation_id = request.headers.get(AUTHORISATION_HEADER)
        if authorisation_id is not None and not TEAL_ID.fullmatch(authorisation_id):
            # Assumption(teal): a malformed authorisation id is a 400 -- the reference types the
            # header `string<uuid>` but says nothing of a malformed one.
            raise refusal(
                400, "INVALID_AUTHORISATION_ID", f"{AUTHORISATION_HEADER} must be a uuid."
            )

    def error_response(self, refused: Refused) -> Response:
        # Assumption(teal): an error body is `{"error": {"code", "message"}}` -- the reference
        # shows none.
        return JSONResponse(
            {"error": {"code": refused.code or INVALID_REQUEST, "message": refused.message}},
            status_code=refused.status,
        )

    def _account(self, request: Request) -> TealAccount:
        account = self.accounts.get(request.path_params["account_id"])
        if account is None:
            raise refusal(404, "NOT_FOUND", "Account not found.")
        account.advance(self.clock())
        return account

    def _user(self, user_id: object) -> TealUser:
        user = self.users.get(user_id) if isinstance(user_id, str) else None
        if user is None:
            raise refusal(404, USER_NOT_FOUND, "No such user; create one with POST /users.")
        return user

    def _authorised(self, request: Request, user_id: str) -> TealAuthorisation:
        """The valid authorisation a request for `user_id` acts under: the one its header
        names, else one Teal resolves for the user; refused when there is none."""
        named = request.headers.get(AUTHORISATION_HEADER)
        if named is not None:
            authorisation = self.authorisations.get(named)
            if authorisation is None or authorisation.user_id != user_id:
                raise refusal(403, AUTHORISATION_REQUIRED, "That authorisation is not this user's.")
            if not authorisation.is_valid:
                raise refusal(403, AUTHORISATION_REQUIRED, "That authorisation is not valid.")
            return authorisation
        for authorisation in self.authorisations.values():
            if authorisation.user_id == user_id and authorisation.is_valid:
                return authorisation
        raise refusal(403, AUTHORISATION_REQUIRED, "The user has no valid authorisation.")

    # ------------------------------------------------------------------ users and authorisations

    async def create_user(self, request: Request) -> Response:
        body = await json_object(request, INVALID_REQUEST)
        name, email = body.get("name"), body.get("email")
        if not isinstance(name, str) or not name.strip():
            raise refusal(400, INVALID_REQUEST, "name is required.")
        if not isinstance(email, str) or not email.strip():
            raise refusal(400, INVALID_REQUEST, "email is required.")
        user = TealUser(user_id=str(uuid.uuid4()), name=name, email=email)
        self.users[user.user_id] = user
        self.ledger.record(idempotency_key(request), user.user_id)
        return JSONResponse(user.body(), status_code=201)

    async def get_user(self, request: Request) -> Response:
        return JSONResponse(self._user(request.path_params["user_id"]).body())

    async def create_authorisation(self, request: Request) -> Response:
        body = await json_object(request, INVALID_REQUEST)
        user_id, user_agent = body.get("user_id"), body.get("user_agent")
        if not isinstance(user_id, str) or not TEAL_ID.fullmatch(user_id):
            raise refusal(400, INVALID_REQUEST, "user_id (a uuid) is required.")
        if not isinstance(user_agent, str) or not user_agent.strip():
            raise refusal(400, INVALID_REQUEST, "user_agent is required.")
        self._user(user_id)
        term_id = body.get("term_id", SYSTEM_TERM_ID)
        if term_id != SYSTEM_TERM_ID:
            raise refusal(404, "TERM_NOT_FOUND", "No such active authorisation term.")
        optional = {name: body.get(name) for name in ("ip_address", "fingerprint")}
        if any(value is not None and not isinstance(value, str) for value in optional.values()):
            raise refusal(400, INVALID_REQUEST, "ip_address and fingerprint are strings.")
        authorisation = TealAuthorisation(
            id=str(uuid.uuid4()),
            user_id=user_id,
            term_id=term_id,
            user_agent=user_agent,
            ip_address=optional["ip_address"],
            fingerprint=optional["fingerprint"],
        )
        self.authorisations[authorisation.id] = authorisation
        self.ledger.record(idempotency_key(request), authorisation.id)
        return JSONResponse(authorisation.body(), status_code=201)

    async def list_authorisations(self, request: Request) -> Response:
        user_id = request.query_params.get("user_id")
        if not user_id:
            raise refusal(400, INVALID_REQUEST, "user_id is required.")
        wanted = request.query_params.get("status")
        found = [
            a
            for a in self.authorisations.values()
            if a.user_id == user_id and wanted in (None, a.status)
        ]
        offset, limit = _paging(request)
        chunk = found[offset : offset + limit]
        return JSONResponse(
            {
                "pagination": _pagination(offset, limit, len(chunk), len(found)),
                "authorisations": [a.body() for a in chunk],
            }
        )

    async def revoke(self, request: Request) -> Response:
        """Test hook: the user withdraws an authorisation."""
        authorisation = self.authorisations.get(request.path_params["authorisation_id"])
        if authorisation is None:
            raise refusal(404, "NOT_FOUND", "Authorisation not found.")
        authorisation.status, authorisation.revoked_at = "revoked", teal_time()
        return JSONResponse(authorisation.body())

    async def oauth_login(self, request: Request) -> Response:
        """The OAuth payroll provider's page: visiting it is logging in there."""
        account = self.accounts.get(request.query_params.get("account_id", ""))
        if account is None or account.authorization_url is None:
            return HTMLResponse("<p>Nothing waits for this login.</p>", status_code=404)
        account.complete_oauth(self.clock(), self.latency_seconds)
        return HTMLResponse("<p>Logged in. You may close this page.</p>")

    # ------------------------------------------------------------------ accounts

    async def create_account(self, request: Request) -> Response:
        body = await json_object(request, INVALID_REQUEST)
        user_id = body.get("user_id")
        provider = body.get("payroll_provider")
        user_name = body.get("user_name")
        password = body.get("password")
        if not isinstance(user_id, str) or not user_id.strip():
            raise refusal(400, INVALID_REQUEST, "user_id is required.")
        if not isinstance(provider, str) or not provider.strip():
            raise refusal(400, INVALID_REQUEST, "payroll_provider is required.")
        # Assumption(teal): the sandbox's payroll providers all take a login -- the reference
        # marks user_name and password optional, as an OAuth provider needs neither.
        if not isinstance(user_name, str) or not isinstance(password, str):
            raise refusal(400, INVALID_REQUEST, "user_name and password are required.")
        self._user(user_id)
        authorisation = self._authorised(request, user_id)
        scenario = scenario_for(user_name, password)
        oauth = user_name.split("+", 1)[0] == REDIRECT_USER and password == GOOD_PASSWORD
        account = TealAccount(
            account_id=str(uuid.uuid4()),
            user_id=user_id,
            payroll_provider=provider,
            user_name=user_name,
            scenario=scenario,
            resolves_at=self.clock() + self.job_seconds(scenario is Scenario.SLOW),
            next_step=OAUTH if oauth else FIRST_STEPS[scenario],
            authorisation_ids=[authorisation.id],
        )
        if oauth:
            query = urlencode({"account_id": account.account_id, "state": secrets.token_hex(8)})
            origin = f"{request.url.scheme}://{request.url.netloc}"
            url = f"{origin}{TealSandbox.PREFIX}{OAUTH_PATH}?{query}"
            account.await_oauth(url, self.clock() + OAUTH_SECONDS)
        self.accounts[account.account_id] = account
        self.ledger.record(idempotency_key(request), account.account_id)
        return JSONResponse(account.body(), status_code=201)

    async def list_accounts(self, request: Request) -> Response:
        user_id = request.query_params.get("user_id")
        now = self.clock()
        found = [a for a in self.accounts.values() if user_id in (None, a.user_id)]
        for account in found:
            account.advance(now)
        offset, limit = _paging(request)
        chunk = found[offset : offset + limit]
        return JSONResponse(
            {
                "pagination": _pagination(offset, limit, len(chunk), len(found)),
                "accounts": [account.body() for account in chunk],
            }
        )

    async def get_account(self, request: Request) -> Response:
        return JSONResponse(self._account(request).body())

    async def submit_mfa(self, request: Request) -> Response:
        body = await json_object(request, INVALID_REQUEST)
        # The body is read first so that no await separates the checks from the change.
        account = self._account(request)
        # Recorded before the checks: a retry after the first answer was taken is the duplicate
        # worth counting.
        self.ledger.record(idempotency_key(request), account.account_id)
        value = body.get("mfa")
        if not isinstance(value, str) or not value:
            raise refusal(400, INVALID_REQUEST, "mfa is required.")
        account.authorisation_ids.append(self._authorised(request, account.user_id).id)
        if account.status != MFA_REQUIRED:
            raise refusal(409, "NO_MFA_PENDING", f"The account is {account.status}.")
        account.answer(value, self.clock(), self.latency_seconds)
        return JSONResponse(account.body())

    async def delete_account(self, request: Request) -> Response:
        account = self._account(request)
        del self.accounts[account.account_id]
        # Assumption(teal): a deletion is answered 204 with no body -- the reference shows none.
        return Response(status_code=204)

    async def payroll(self, request: Request) -> Response:
        user_id = self._user(request.path_params["user_id"]).user_id
        # Assumption(teal): `account_id` narrows the user's payroll to one account -- the
        # reference lists the query parameter without saying so.
        account_id = request.query_params.get("account_id")
        now = self.clock()
        submissions: list[dict[str, Any]] = []
        for account in self.accounts.values():
            if account.user_id == user_id and account_id in (None, account.account_id):
                account.advance(now)
                submissions += account.payroll_submissions()
        offset, limit = _paging(request)
        chunk = submissions[offset : offset + limit]
        return JSONResponse(
            {
                "pagination": _pagination(offset, limit, len(chunk), len(submissions)),
                "payroll_submissions": chunk,
            }
        )


def _paging(request: Request) -> tuple[int, int]:
    # Assumption(teal): `offset` counts items from 0 -- the reference says "x >= 1" but its
    # example, offset 75 with limit 25, reads as an item offset.
    try:
        offset = int(request.query_params.get("offset", "0"))
        limit = int(request.query_params.get("limit", str(DEFAULT_LIMIT)))
    except ValueError as invalid:
        raise refusal(400, INVALID_REQUEST, "offset and limit must be integers.") from invalid
    if offset < 0 or not 1 <= limit <= MAX_LIMIT:
        raise refusal(400, INVALID_REQUEST, f"offset >= 0; limit 1 to {MAX_LIMIT}.")
    return offset, limit


def _pagination(offset: int, limit: int, count: int, total: int) -> dict[str, int]:
    return {"offset": offset, "limit": limit, "count": count, "total_count": total}


def create_sandbox(latency_seconds: float) -> TealSandbox:
    return TealSandbox(latency_seconds=latency_seconds)
