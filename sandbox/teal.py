"""Teal's payroll API as the sandbox speaks it, under `/teal`.

linkflow's Teal adapter is tested against this module over real HTTP, so it speaks Teal's
contract: every request carries `X-API-KEY`, may carry `x-teal-authorisation-id` (a uuid), and an
*account* (one user's login at one payroll provider) is created with `POST /accounts`, read with
`GET /accounts/{account_id}` and answered with `PUT /accounts/{account_id}/mfa` `{"mfa": "..."}`
(Teal's "Submit an MFA response for an account" page, kept in
tests/fixtures/documents/teal_submit_mfa_response.txt). Every account body has exactly the seed's
fields (`account_id`, `payroll_provider`, `user_name`, `created_at`, `status`, `mfa_enabled`,
`latest_pay_date`).

`user_id` is the client's own id for its user; it appears in `GET /payroll/{user_id}`, so the
adapter sends an opaque one, never personal data.

Teal's public reference (docs.goteal.co) gives the create, get and list bodies, a `mfa_method`
object (`{"type": "Code", "source": "AUTHENTICATOR_APP"}`), the payroll submissions of
`GET /payroll/{user_id}` and the note that an MFA answer is "a code, a date, or password
characters". It does not list the status words nor the rest of `mfa_method`; what this module
adds is marked "Assumption" where it appears. In brief:

- status words: PENDING, MFA_REQUIRED, ACTIVE, INVALID, MFA_FAILED, ACTION_REQUIRED (the adapter
  also knows AUTHORISATION_REQUIRED, EXPIRED and ERROR, which this sandbox never sends);
- `mfa_method` (only while MFA_REQUIRED): `id` (new every round), `type` (`Code`, `Date`,
  `PasswordCharacters`), `source` (`AUTHENTICATOR_APP`, `SMS`, `EMAIL`, `USER`) and `prompt`;
- `status_message` (only while ACTION_REQUIRED): what the payroll provider asks the user to do.

Teal takes one string per MFA step, so a choice (MX's "where should we text your code?") cannot be
expressed. `user_otp` is therefore asked first for a documented value, a date of birth (`Date`),
then for a code texted to the phone on file (`Code` from `SMS`); `correct` answers both.

A job in progress (PENDING) resolves on the first read after `latency_seconds`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.skeleton import (
    ProviderSandbox,
    Refused,
    RouteSpec,
    idempotency_key,
    json_object,
)
from sandbox.users import (
    MAX_WRONG_ANSWERS,
    Scenario,
    is_correct,
    scenario_for,
)

API_KEY_HEADER = "x-api-key"
AUTHORISATION_HEADER = "x-teal-authorisation-id"
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000

# Assumption: Teal's account status words (the reference shows only PENDING).
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

# Assumption: Teal's code for a request it cannot take.
INVALID_REQUEST = "INVALID_REQUEST"


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
        # Assumption: `id` and `prompt` beside the documented `type` and `source`.
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

# Assumption: the payroll submissions behind an ACTIVE sandbox account, trimmed to the
# documented fields the adapter reads (`id`, `account_id`, `employment_information`,
# `income_information`), with the reference's own employer and amounts.
PAYSLIPS: tuple[tuple[str, str, str, str, int, int], ...] = (
    # employer, role, pay_date, pay_interval_start, gross_pay, net_pay
    ("Acme Ltd", "Software Engineer", "2023-04-27", "2023-04-01", 3500, 2500),
    ("Acme Ltd", "Software Engineer", "2023-05-27", "2023-05-01", 3500, 2500),
    ("Globex Ltd", "Consultant", "2023-05-15", "2023-05-01", 800, 640),
)


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
    # Every x-teal-authorisation-id sent for this account, in order.
    authorisation_ids: list[str] = field(default_factory=list)

    def advance(self, now: float) -> None:
        """Resolve a job in progress once its latency has passed."""
        if self.status != PENDING or now < self.resolves_at:
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
        if self.status == ACTION_REQUIRED:
            # Assumption: the field that carries the provider's request to the user.
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

    accounts: dict[str, TealAccount] = field(default_factory=dict)

    def route_table(self) -> Sequence[RouteSpec]:
        return (
            ("/accounts", "POST", self.create_account),
            ("/accounts", "GET", self.list_accounts),
            ("/accounts/{account_id}", "GET", self.get_account),
            ("/accounts/{account_id}", "DELETE", self.delete_account),
            ("/accounts/{account_id}/mfa", "PUT", self.submit_mfa),
            ("/payroll/{user_id}", "GET", self.payroll),
        )

    def check(self, request: Request) -> None:
        """Teal's checks on every request: an API key, and a well-formed authorisation id."""
        if not request.headers.get(API_KEY_HEADER, "").strip():
            raise refusal(401, "UNAUTHORISED", "Send your API key in the X-API-KEY header.")
        authorisation_id = request.headers.get(AUTHORISATION_HEADER)
        if authorisation_id is not None and not _is_uuid(authorisation_id):
            # Assumption: a malformed authorisation id is a 400.
            raise refusal(
                400, "INVALID_AUTHORISATION_ID", f"{AUTHORISATION_HEADER} must be a uuid."
            )

    def error_response(self, refused: Refused) -> Response:
        # Assumption: Teal's error body shape.
        return JSONResponse(
            {"error": {"code": refused.code or INVALID_REQUEST, "message": refused.message}},
            status_code=refused.status,
        )

    def _account(self, request: Request) -> TealAccount:
        account = self.accounts.get(request.path_params["account_id"])
        if account is None:
            raise refusal(404, "NOT_FOUND", "Account not found.")
        account.advance(self.clock())
        authorisation_id = request.headers.get(AUTHORISATION_HEADER)
        if authorisation_id:
            account.authorisation_ids.append(authorisation_id)
        return account

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
        # Assumption: the reference marks user_name and password optional because OAuth
        # providers need neither; every sandbox provider takes credentials, so both are needed.
        if not isinstance(user_name, str) or not isinstance(password, str):
            raise refusal(400, INVALID_REQUEST, "user_name and password are required.")
        scenario = scenario_for(user_name, password)
        account = TealAccount(
            account_id=str(uuid.uuid4()),
            user_id=user_id,
            payroll_provider=provider,
            user_name=user_name,
            scenario=scenario,
            resolves_at=self.clock() + self.job_seconds(scenario is Scenario.SLOW),
            next_step=FIRST_STEPS[scenario],
        )
        if authorisation_id := request.headers.get(AUTHORISATION_HEADER):
            account.authorisation_ids.append(authorisation_id)
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
        if account.status != MFA_REQUIRED:
            raise refusal(409, "NO_MFA_PENDING", f"The account is {account.status}.")
        account.answer(value, self.clock(), self.latency_seconds)
        return JSONResponse(account.body())

    async def delete_account(self, request: Request) -> Response:
        account = self._account(request)
        del self.accounts[account.account_id]
        # Assumption: Teal answers a deletion with 204 and no body.
        return Response(status_code=204)

    async def payroll(self, request: Request) -> Response:
        user_id = request.path_params["user_id"]
        # Assumption: `account_id` narrows the user's payroll to one account.
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


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _paging(request: Request) -> tuple[int, int]:
    # Assumption: `offset` counts items from 0 (the reference says "x >= 1" but its example,
    # offset 75 with limit 25, reads as an item offset).
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
