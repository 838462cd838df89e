"""MX's Platform API as the sandbox speaks it, under `/mx`.

linkflow's MX adapter is tested against this module over real HTTP, so it must speak MX's
contract, not a convenient imitation of it. It follows MX's "Handling Multifactor Authentication"
guide (kept in tests/fixtures/documents/mx_handling_mfa.txt): a member's `connection_status`
moves through CREATED, CHALLENGED with a `challenges` array (`field_name`, `guid`, `label`,
`type`), RESUMED after `PUT .../resume` (still `is_being_aggregated`, not yet
`is_authenticated`), and CONNECTED, with the guide's field names. MX's test bank is
institution `mxbank` and its right answer is `correct`.

Details beyond the seed document are assumptions taken from MX's public API reference and are
marked "Assumption" where they appear: user creation and listing, institution credentials, the
challenges and accounts lists, member deletion, error bodies, and challenge `type` numbers past 0.

A job in progress (`is_being_aggregated`) resolves on the first read after `latency_seconds`: to
the next challenge, to CONNECTED, or to a final failure (DENIED, REJECTED).

A connected member lives on: `POST .../aggregate` refreshes it (CONNECTED while it aggregates) and
`PUT .../members/{guid}` updates its credentials (UPDATED while it aggregates). What the bank does
on the next aggregation is set through the test-only `POST /mx/_sandbox/bank-events`
(`{"username", "event": "password_changed" | "mfa_expired" | "hold", "new_password"}`): a changed
password is DENIED until the member's credentials are updated to it, an expired MFA token asks the
security question again (on every aggregation until it is answered), and a hold is IMPEDED until
the next aggregation.

The accounts list is empty until the member is CONNECTED, as MX lists no accounts for a member
that has not aggregated yet.

A bank takes MFA answers for a limited time, after which MX reports the member EXPIRED; MX states
no length for it. The sandbox's challenges never expire unless `python -m sandbox
--mx-mfa-window-seconds N` is given: then a challenge unanswered for N seconds turns the member
EXPIRED (no longer being aggregated, no challenges). Assumption: a resume sent after that is
refused with 409, as any resume of a member that is not CHALLENGED is here.
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
    basic_credentials,
    idempotency_key,
    json_object,
)
from sandbox.users import (
    MAX_WRONG_ANSWERS,
    OTP_DESTINATION_QUESTION,
    OTP_PHONES,
    SECURITY_QUESTION,
    Scenario,
    is_correct,
    is_offered,
    otp_code_prompt,
    scenario_for,
)

MX_ACCEPT = "application/vnd.mx.api.v1+json"
INSTITUTION_CODE = "mxbank"
DEFAULT_RECORDS_PER_PAGE = 25
MAX_RECORDS_PER_PAGE = 1000

# Challenge `type` as integers, as in the seed's example (`"type": 0` for a text question).
# Assumption: the seed shows only 0; the others follow the order of MX's documented type names.
TEXT, OPTIONS, TOKEN, IMAGE_DATA, IMAGE_OPTIONS = 0, 1, 2, 3, 4

# Assumption: the shape of `GET /institutions/{code}/credentials` for MX's test bank.
CREDENTIAL_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "guid": "CRD-1ec152cd-e628-e81a-e852-d1e7104624da",
        "field_name": "username",
        "label": "Username",
        "type": "TEXT",
        "display_order": 1,
    },
    {
        "guid": "CRD-1ec152cd-e628-e81a-e852-d1e7104624db",
        "field_name": "password",
        "label": "Password",
        "type": "PASSWORD",
        "display_order": 2,
    },
)
CREDENTIAL_GUIDS = {str(f["field_name"]): str(f["guid"]) for f in CREDENTIAL_FIELDS}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ChallengeSpec:
    """A question the bank asks; each time it is asked it gets a fresh guid."""

    label: str
    type: int | str
    options: tuple[tuple[str, str], ...] = ()

    def issue(self) -> dict[str, Any]:
        challenge: dict[str, Any] = {
            "field_name": None,
            "guid": f"CRD-{uuid.uuid4()}",
            "label": self.label,
            "type": self.type,
        }
        if self.options:
            challenge["options"] = [
                {"label": label, "value": value} for label, value in self.options
            ]
        return challenge

    def accepts(self, value: str) -> bool:
        if self.type in (OPTIONS, IMAGE_OPTIONS):
            return is_offered(value, (option_value for _, option_value in self.options))
        return is_correct(value)


QUESTION = ChallengeSpec(SECURITY_QUESTION, TEXT)
PHONE_CHOICE = ChallengeSpec(OTP_DESTINATION_QUESTION, OPTIONS, tuple(OTP_PHONES))
# `user_unsupported`: a kind of question MX does not document, standing for a bank's captcha.
CAPTCHA = ChallengeSpec("Type the characters you see in the picture.", "CAPTCHA")

# A job in progress resolves into either another challenge or a connection_status word.
Step = ChallengeSpec | str

FIRST_STEPS: dict[Scenario, Step] = {
    Scenario.NO_MFA: "CONNECTED",
    Scenario.QUESTION: QUESTION,
    Scenario.OTP: PHONE_CHOICE,
    Scenario.INVALID: "DENIED",
    Scenario.HOLD: "IMPEDED",
    Scenario.SLOW: "CONNECTED",
    Scenario.UNSUPPORTED: CAPTCHA,
}


@dataclass
class Member:
    guid: str
    user_guid: str
    username: str
    password: str
    scenario: Scenario
    resolves_at: float
    next_step: Step
    connection_status: str = "CREATED"
    is_authenticated: bool = False
    is_being_aggregated: bool = True
    aggregated_at: str | None = None
    successfully_aggregated_at: str | None = None
    challenges: list[dict[str, Any]] = field(default_factory=list)
    asked: ChallengeSpec | None = None
    wrong_answers: int = 0
    # The bank's MFA token for this member expired: every aggregation asks until it is answered.
    mfa_expired: bool = False
    # How long the bank waits for the answers to a challenge (None: for ever), and since when.
    mfa_window_seconds: float | None = None
    challenged_at: float = 0.0

    def advance(self, now: float) -> None:
        """Resolve a job in progress once its latency has passed; expire an unanswered challenge."""
        window = self.mfa_window_seconds
        if (
            self.connection_status == "CHALLENGED"
            and window is not None
            and now >= self.challenged_at + window
        ):
            self.challenges, self.asked = [], None
            self.connection_status = "EXPIRED"
            self.is_being_aggregated = False
            return
        waiting = not self.is_being_aggregated or self.connection_status == "CHALLENGED"
        if waiting or now < self.resolves_at:
            return
        step = self.next_step
        if isinstance(step, ChallengeSpec):
            self.asked = step
            self.challenges = [step.issue()]
            self.connection_status = "CHALLENGED"
            self.challenged_at = now
            return
        self.challenges = []
        self.connection_status = step
        self.is_being_aggregated = False
        if step == "CONNECTED":
            self.is_authenticated = True
            self.aggregated_at = self.successfully_aggregated_at = now_iso()

    def aggregate(self, step: Step, now: float, latency_seconds: float, status: str) -> None:
        """Start an aggregation (a refresh, or a login with updated credentials)."""
        if self.is_being_aggregated:
            return
        self.next_step = step
        self.wrong_answers = 0
        self.challenges = []
        self.asked = None
        self.is_being_aggregated = True
        self.resolves_at = now + latency_seconds
        if not (status == "CONNECTED" and self.connection_status == "CONNECTED"):
            self.connection_status = status

    def resume(self, answers: dict[str, str], now: float, latency_seconds: float) -> None:
        """Judge one round of answers (already checked to cover every current challenge)."""
        asked = self.asked
        if asked is None:
            raise Refused(409, "The member has no question to answer.")
        right = all(asked.accepts(value) for value in answers.values())
        self.connection_status = "RESUMED"
        self.challenges = []
        self.resolves_at = now + latency_seconds
        if not right:
            self.wrong_answers += 1
            self.next_step = "REJECTED" if self.wrong_answers >= MAX_WRONG_ANSWERS else asked
        elif asked is PHONE_CHOICE:
            chosen = next(iter(answers.values()))
            self.next_step = ChallengeSpec(otp_code_prompt(chosen), TOKEN)
        else:
            self.mfa_expired = False
            self.next_step = "CONNECTED"

    def status_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "aggregated_at": self.aggregated_at,
            "connection_status": self.connection_status,
            "guid": self.guid,
            "is_authenticated": self.is_authenticated,
            "is_being_aggregated": self.is_being_aggregated,
            "successfully_aggregated_at": self.successfully_aggregated_at,
        }
        if self.connection_status == "CHALLENGED":
            body["challenges"] = self.challenges
        return body

    def member_body(self) -> dict[str, Any]:
        # Assumption: the member object carries the status fields plus these two.
        return self.status_body() | {
            "institution_code": INSTITUTION_CODE,
            "user_guid": self.user_guid,
        }

    def accounts(self) -> list[dict[str, Any]]:
        if self.connection_status != "CONNECTED":
            return []
        # Assumption: a subset of MX's account object.
        return [
            {
                "guid": f"ACT-{uuid.uuid5(uuid.NAMESPACE_URL, f'{self.guid}/{kind}')}",
                "name": name,
                "type": kind,
                "account_number": number,
                "balance": balance,
                "currency_code": "USD",
                "member_guid": self.guid,
                "user_guid": self.user_guid,
            }
            for name, kind, number, balance in (
                ("MX Bank Checking", "CHECKING", "100200301234", 1250.75),
                ("MX Bank Savings", "SAVINGS", "100200305678", 9800.05),
            )
        ]


@dataclass
class MxSandbox(ProviderSandbox):
    """MX's state for one sandbox process: users, members and the Idempotency-Keys seen."""

    PREFIX = "/mx"

    # How long a challenge waits for its answers before the member is EXPIRED; None: for ever.
    mfa_window_seconds: float | None = None
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    # The bank's side, set by the test-only bank-events route: a username's changed password,
    # and what its next aggregation meets ("mfa_expired" or "hold").
    bank_passwords: dict[str, str] = field(default_factory=dict)
    bank_events: dict[str, str] = field(default_factory=dict)

    def route_table(self) -> Sequence[RouteSpec]:
        member = "/users/{user}/members/{member}"
        return (
            ("/users", "POST", self.create_user),
            ("/users", "GET", self.list_users),
            ("/institutions/{code}/credentials", "GET", self.institution_credentials),
            ("/users/{user}/members", "POST", self.create_member),
            (f"{member}/status", "GET", self.member_status),
            (f"{member}/challenges", "GET", self.member_challenges),
            (f"{member}/resume", "PUT", self.resume),
            (f"{member}/accounts", "GET", self.list_accounts),
            (f"{member}/aggregate", "POST", self.aggregate),
            (member, "PUT", self.update_member),
            (member, "DELETE", self.delete_member),
        )

    def open_routes(self) -> Sequence[RouteSpec]:
        return (("/_sandbox/bank-events", "POST", self.bank_event),)

    def check(self, request: Request) -> None:
        """MX's checks on every request: Basic client_id:api_key, and MX's Accept header."""
        client_id, api_key = basic_credentials(request) or ("", "")
        if not (client_id and api_key):
            raise Refused(401, "Authentication is required: use Basic client_id:api_key.")
        accepted = request.headers.get("accept", "").split(",")
        if not any(item.split(";")[0].strip().lower() == MX_ACCEPT for item in accepted):
            raise Refused(406, f"Set the Accept header to {MX_ACCEPT}.")

    def error_response(self, refused: Refused) -> Response:
        # Assumption: MX's error body shape.
        return JSONResponse({"error": {"message": refused.message}}, status_code=refused.status)

    # ------------------------------------------------------------------ helpers

    def _member(self, request: Request) -> Member:
        member = self.members.get(request.path_params["member"])
        if member is None or member.user_guid != request.path_params["user"]:
            raise Refused(404, "Member not found.")
        member.advance(self.clock())
        return member

    # ------------------------------------------------------------------ users

    async def create_user(self, request: Request) -> Response:
        user = (await json_object(request)).get("user")
        if not isinstance(user, dict):
            raise Refused(400, "The body must be {'user': {...}}.")
        partner_id = user.get("id")
        if partner_id is not None and any(u["id"] == partner_id for u in self.users.values()):
            raise Refused(409, "A user with this id already exists.")
        guid = f"USR-{uuid.uuid4()}"
        self.users[guid] = {
            "guid": guid,
            "id": partner_id,
            "is_disabled": False,
            "metadata": user.get("metadata"),
        }
        return JSONResponse({"user": self.users[guid]})

    async def list_users(self, request: Request) -> Response:
        users = list(self.users.values())
        page, per_page = _paging(request)
        chunk = users[(page - 1) * per_page : page * per_page]
        return JSONResponse({"users": chunk, "pagination": _pagination(page, per_page, users)})

    async def institution_credentials(self, request: Request) -> Response:
        if request.path_params["code"] != INSTITUTION_CODE:
            raise Refused(404, "Institution not found.")
        return JSONResponse({"credentials": list(CREDENTIAL_FIELDS)})

    # ------------------------------------------------------------------ members

    async def create_member(self, request: Request) -> Response:
        body = await json_object(request)
        user_guid = request.path_params["user"]
        if user_guid not in self.users:
            raise Refused(404, "User not found.")
        requested = body.get("member")
        if not isinstance(requested, dict):
            raise Refused(400, "The body must be {'member': {...}}.")
        if requested.get("institution_code") != INSTITUTION_CODE:
            raise Refused(404, "Institution not found.")
        given = _guid_values(requested.get("credentials"), "member.credentials")
        if unknown := set(given) - set(CREDENTIAL_GUIDS.values()):
            raise Refused(400, f"Unknown credential guid: {', '.join(sorted(unknown))}.")
        if missing := [n for n, g in CREDENTIAL_GUIDS.items() if not given.get(g)]:
            raise Refused(400, f"Missing credential: {', '.join(missing)}.")
        username = given[CREDENTIAL_GUIDS["username"]]
        password = given[CREDENTIAL_GUIDS["password"]]
        scenario = scenario_for(username, password)
        member = Member(
            guid=f"MBR-{uuid.uuid4()}",
            user_guid=user_guid,
            username=username,
            password=password,
            scenario=scenario,
            resolves_at=self.clock() + self.job_seconds(scenario is Scenario.SLOW),
            next_step=FIRST_STEPS[scenario],
            mfa_window_seconds=self.mfa_window_seconds,
        )
        self.members[member.guid] = member
        self.ledger.record(idempotency_key(request), member.guid)
        return JSONResponse({"member": member.member_body()}, status_code=202)

    async def member_status(self, request: Request) -> Response:
        return JSONResponse({"member": self._member(request).status_body()})

    async def member_challenges(self, request: Request) -> Response:
        # Assumption: MX's "List member challenges" shape.
        challenges = self._member(request).challenges
        page, per_page = _paging(request)
        return JSONResponse(
            {
                "challenges": challenges[(page - 1) * per_page : page * per_page],
                "pagination": _pagination(page, per_page, challenges),
            }
        )

    async def resume(self, request: Request) -> Response:
        body = await json_object(request)
        # The body is read before the member so that no await separates the checks below from
        # the change they guard.
        member = self._member(request)
        # Recorded before the checks: a retried resume that arrives after the first was accepted
        # is exactly the duplicate worth counting.
        self.ledger.record(idempotency_key(request), member.guid)
        if member.connection_status != "CHALLENGED":
            raise Refused(409, f"The member is {member.connection_status}, not CHALLENGED.")
        requested = body.get("member")
        if not isinstance(requested, dict):
            raise Refused(400, "The body must be {'member': {'challenges': [...]}}.")
        answers = _guid_values(requested.get("challenges"), "member.challenges")
        current = {challenge["guid"] for challenge in member.challenges}
        if unknown := set(answers) - current:
            raise Refused(400, f"Not a current challenge: {', '.join(sorted(unknown))}.")
        if missing := current - set(answers):
            raise Refused(400, f"Answer every challenge; missing {', '.join(sorted(missing))}.")
        member.resume(answers, self.clock(), self.latency_seconds)
        return JSONResponse({"member": member.member_body()}, status_code=202)

    async def list_accounts(self, request: Request) -> Response:
        accounts = self._member(request).accounts()
        page, per_page = _paging(request)
        return JSONResponse(
            {
                "accounts": accounts[(page - 1) * per_page : page * per_page],
                "pagination": _pagination(page, per_page, accounts),
            }
        )

    async def aggregate(self, request: Request) -> Response:
        # Assumption: MX's "Aggregate member" answers 202 with the member.
        member = self._member(request)
        self.ledger.record(idempotency_key(request), member.guid)
        if member.connection_status in ("CREATED", "CHALLENGED", "RESUMED"):
            raise Refused(409, f"The member is {member.connection_status}; it cannot aggregate.")
        member.aggregate(
            self._aggregation_step(member), self.clock(), self.latency_seconds, "CONNECTED"
        )
        return JSONResponse({"member": member.member_body()}, status_code=202)

    async def update_member(self, request: Request) -> Response:
        # Assumption: MX's "Update member" takes `{"member": {"credentials": [...]}}` and
        # aggregates with the new credentials.
        body = await json_object(request)
        member = self._member(request)
        self.ledger.record(idempotency_key(request), member.guid)
        requested = body.get("member")
        if not isinstance(requested, dict):
            raise Refused(400, "The body must be {'member': {...}}.")
        given = _guid_values(requested.get("credentials"), "member.credentials")
        if unknown := set(given) - set(CREDENTIAL_GUIDS.values()):
            raise Refused(400, f"Unknown credential guid: {', '.join(sorted(unknown))}.")
        member.username = given.get(CREDENTIAL_GUIDS["username"], member.username)
        member.password = given.get(CREDENTIAL_GUIDS["password"], member.password)
        member.is_being_aggregated = False
        member.aggregate(
            self._aggregation_step(member), self.clock(), self.latency_seconds, "UPDATED"
        )
        return JSONResponse({"member": member.member_body()}, status_code=202)

    def _aggregation_step(self, member: Member) -> Step:
        """What the bank does when a connected member aggregates again."""
        expected = self.bank_passwords.get(member.username)
        if expected is not None:
            valid = member.password == expected
        else:
            valid = scenario_for(member.username, member.password) is not Scenario.INVALID
        if not valid:
            return "DENIED"
        event = self.bank_events.pop(member.username, None)
        if event == "mfa_expired" or member.mfa_expired:
            member.mfa_expired = True
            return QUESTION
        if event == "hold":
            return "IMPEDED"
        return "CONNECTED"

    async def bank_event(self, request: Request) -> Response:
        """Test only: make the bank change a user's password, expire its MFA, or hold it."""
        body = await json_object(request)
        username, event = body.get("username"), body.get("event")
        if not isinstance(username, str) or not username:
            raise Refused(400, "username is required.")
        if event == "password_changed":
            new_password = body.get("new_password")
            if not isinstance(new_password, str) or not new_password:
                raise Refused(400, "password_changed needs a new_password.")
            self.bank_passwords[username] = new_password
        elif event in ("mfa_expired", "hold"):
            self.bank_events[username] = event
        else:
            raise Refused(400, "event must be password_changed, mfa_expired or hold.")
        return JSONResponse({"username": username, "event": event})

    async def delete_member(self, request: Request) -> Response:
        member = self._member(request)
        del self.members[member.guid]
        return Response(status_code=204)


def _guid_values(items: object, where: str) -> dict[str, str]:
    """Read `[{"guid": ..., "value": ...}]`, MX's shape for credentials and answers."""
    if not isinstance(items, list) or not items:
        raise Refused(400, f"{where} must be a non-empty list of {{'guid', 'value'}}.")
    values: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            raise Refused(400, f"Every item of {where} must be {{'guid', 'value'}}.")
        guid, value = item.get("guid"), item.get("value")
        if not isinstance(guid, str) or not isinstance(value, str):
            raise Refused(400, f"Every item of {where} needs a string guid and value.")
        if guid in values:
            raise Refused(400, f"{where} gives {guid} twice.")
        values[guid] = value
    return values


def _paging(request: Request) -> tuple[int, int]:
    try:
        page = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("records_per_page", DEFAULT_RECORDS_PER_PAGE))
    except ValueError as invalid:
        raise Refused(400, "page and records_per_page must be integers.") from invalid
    if page < 1 or not 1 <= per_page <= MAX_RECORDS_PER_PAGE:
        raise Refused(400, f"page must be 1 or more; records_per_page 1 to {MAX_RECORDS_PER_PAGE}.")
    return page, per_page


def _pagination(page: int, per_page: int, items: Sequence[Any]) -> dict[str, int]:
    return {
        "current_page": page,
        "per_page": per_page,
        "total_entries": len(items),
        "total_pages": max(1, -(-len(items) // per_page)),
    }


def create_sandbox(latency_seconds: float, mfa_window_seconds: float | None = None) -> MxSandbox:
    return MxSandbox(latency_seconds=latency_seconds, mfa_window_seconds=mfa_window_seconds)
