"""MX's Platform API as the sandbox speaks it, under `/mx`.

linkflow's MX adapter is tested against this module over real HTTP, so it must speak MX's
contract, not a convenient imitation of it. It follows MX's "Handling Multifactor Authentication"
guide (kept in tests/fixtures/documents/mx_handling_mfa.txt) and the MX Platform API reference
(its "Member Connection Statuses" table, and MX's OpenAPI description in github.com/mxenabled/
openapi): a member's `connection_status` moves through CREATED, CHALLENGED with a `challenges` array
(`field_name`, `guid`, `label`, `type`, and `options`, `image_options` or `image_data` by type),
RESUMED after `PUT .../resume` (still `is_being_aggregated`, not yet `is_authenticated`), and
CONNECTED, with the guide's field names. A challenge's `type` is a string (TEXT, OPTIONS, TOKEN,
IMAGE_DATA, IMAGE_OPTIONS), as the reference has it; the guide's example shows the number 0. MX's
test bank is institution `mxbank` and its right answer is `correct`.

Details beyond these references are marked `Assumption(mx)` where they appear.

A job in progress (`is_being_aggregated`) resolves on the first read after `latency_seconds`: to
the next challenge, to CONNECTED, or to a final word. A wrong answer is REJECTED (still being
aggregated) for another `latency_seconds`, then the same question comes back under a new guid;
the third wrong answer in a row ends the job REJECTED. Credentials that fail three times in a
row make the member PREVENTED instead of DENIED.

Besides the shared test users (`sandbox/users.py`), MX's own bank has two that ask MX's picture
questions (password `pass_good`): `user_image` chooses among pictures (IMAGE_OPTIONS; any
offered picture's `value` is right) and `user_image_data` names what a picture shows
(IMAGE_DATA, a bare base64 PNG; the answer is `correct`).

A connected member lives on: `POST .../aggregate` refreshes it (CONNECTED while it aggregates) and
`PUT .../members/{guid}` updates its credentials (UPDATED while it aggregates). What the bank does
on the next aggregation is set through the test-only `POST /mx/_sandbox/bank-events`
(`{"username", "event", "new_password"}`), `event` being one of `BANK_EVENTS`: a changed password
is DENIED until the member's credentials are updated to it, an expired MFA token asks the
security question again (on every aggregation until it is answered), a hold is IMPEDED until the
next aggregation, a pause is DISABLED (still connected, its accounts still listed) until the next
aggregation, and missing, imported or removed credentials leave the member IMPAIRED, IMPORTED or
with a null status until its credentials are updated.

The accounts list is empty until the member has connected once, as MX lists no accounts for a
member that has not aggregated yet.

A bank takes MFA answers for a limited time, after which MX reports the member EXPIRED; MX states
no length for it. The sandbox's challenges never expire unless `python -m sandbox
--mx-mfa-window-seconds N` is given: then a challenge unanswered for N seconds turns the member
EXPIRED (no longer being aggregated, no challenges).
"""

from __future__ import annotations

import base64
import struct
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

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
    GOOD_PASSWORD,
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
# "The end user's entered credentials have failed to connect three times in a row": PREVENTED.
PREVENTED_AFTER_FAILURES = 3
# MX's member with no credentials has a null connection_status; the sandbox names it so inside.
NULL_STATUS = "null"
# The words a member keeps until its credentials are updated.
NEEDS_CREDENTIALS = frozenset({"PREVENTED", "IMPAIRED", "IMPORTED", NULL_STATUS})

# Challenge `type`, as MX's reference names it.
TEXT, OPTIONS, TOKEN, IMAGE_DATA, IMAGE_OPTIONS = (
    "TEXT",
    "OPTIONS",
    "TOKEN",
    "IMAGE_DATA",
    "IMAGE_OPTIONS",
)

# Assumption(mx): the shape of `GET /institutions/{code}/credentials` for MX's test bank -- the
# seed shows none, and the reference gives fields but no example for `mxbank`.
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


def solid_png(red: int, green: int, blue: int, size: int = 8) -> bytes:
    """A `size` x `size` PNG of one colour: the sandbox bank's pictures."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    row = b"\x00" + bytes((red, green, blue)) * size
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def base64_text(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Choice:
    """One choice a question offers; a picture's `data:` URI for IMAGE_OPTIONS."""

    label: str
    value: str
    data_uri: str | None = None


@dataclass(frozen=True)
class ChallengeSpec:
    """A question the bank asks; each time it is asked it (and each choice) gets a fresh guid."""

    label: str
    type: str
    choices: tuple[Choice, ...] = ()
    # IMAGE_DATA's picture, bare base64 as MX's references describe it.
    image_data: str | None = None

    def issue(self) -> dict[str, Any]:
        challenge: dict[str, Any] = {
            "field_name": None,
            "guid": f"CRD-{uuid.uuid4()}",
            "label": self.label,
            "type": self.type,
        }
        if self.type == OPTIONS:
            challenge["options"] = [
                {"guid": f"CRD-{uuid.uuid4()}", "label": choice.label, "value": choice.value}
                for choice in self.choices
            ]
        elif self.type == IMAGE_OPTIONS:
            challenge["image_options"] = [
                {
                    "data_uri": choice.data_uri,
                    "guid": f"CRD-{uuid.uuid4()}",
                    "label": choice.label,
                    "value": choice.value,
                }
                for choice in self.choices
            ]
        elif self.type == IMAGE_DATA:
            challenge["image_data"] = self.image_data
        return challenge

    def accepts(self, value: str) -> bool:
        # Assumption(mx): a choice is answered with the chosen option's `value` -- the resume
        # reference takes one {guid, value} per challenge and does not say which field it is.
        if self.choices:
            return is_offered(value, (choice.value for choice in self.choices))
        return is_correct(value)


@dataclass(frozen=True)
class AskAgain:
    """After a wrong answer: REJECTED while still aggregating, then the question again."""

    question: ChallengeSpec
    after_seconds: float


QUESTION = ChallengeSpec(SECURITY_QUESTION, TEXT)
PHONE_CHOICE = ChallengeSpec(
    OTP_DESTINATION_QUESTION,
    OPTIONS,
    tuple(Choice(phone.label, phone.value) for phone in OTP_PHONES),
)
# `user_unsupported`: a kind of question MX does not document, standing for a bank's captcha.
CAPTCHA = ChallengeSpec("Type the characters you see in the picture.", "CAPTCHA")
PICTURE_CHOICE = ChallengeSpec(
    "Which picture did you choose when you enrolled?",
    IMAGE_OPTIONS,
    tuple(
        Choice(label, value, f"data:image/png;base64,{base64_text(solid_png(*rgb))}")
        for label, value, rgb in (
            ("Red square", "image-red", (220, 40, 40)),
            ("Green square", "image-green", (40, 170, 70)),
            ("Blue square", "image-blue", (40, 80, 220)),
        )
    ),
)
PICTURE_QUESTION = ChallengeSpec(
    "Type the word the picture shows.", IMAGE_DATA, image_data=base64_text(solid_png(90, 90, 90))
)

# MX's own test users, beyond the shared ones: banks that ask MX's picture questions. They stay
# here because the shared table is every provider's, and no other provider has pictures.
PICTURE_USERS: dict[str, ChallengeSpec] = {
    "user_image": PICTURE_CHOICE,
    "user_image_data": PICTURE_QUESTION,
}


def picture_question(username: str, password: str) -> ChallengeSpec | None:
    """The picture question an MX-only test user's bank asks first; None for anyone else."""
    if password != GOOD_PASSWORD:
        return None
    return PICTURE_USERS.get(username.split("+", 1)[0])


def logs_in(username: str, password: str) -> bool:
    """Whether the sandbox's bank takes these credentials."""
    return (
        picture_question(username, password) is not None
        or scenario_for(username, password) is not Scenario.INVALID
    )


# A job in progress resolves into a challenge, a wrong answer's REJECTED, or a status word.
Step = ChallengeSpec | AskAgain | str

FIRST_STEPS: dict[Scenario, Step] = {
    Scenario.NO_MFA: "CONNECTED",
    Scenario.QUESTION: QUESTION,
    Scenario.OTP: PHONE_CHOICE,
    Scenario.INVALID: "DENIED",
    Scenario.HOLD: "IMPEDED",
    Scenario.SLOW: "CONNECTED",
    Scenario.UNSUPPORTED: CAPTCHA,
}

# The bank-events route's events that leave a member without the credentials it needs, and the
# word it then keeps until they are updated.
CREDENTIAL_EVENTS = {
    "credentials_incomplete": "IMPAIRED",
    "imported": "IMPORTED",
    "credentials_removed": NULL_STATUS,
}
BANK_EVENTS = ("password_changed", "mfa_expired", "hold", "paused", *CREDENTIAL_EVENTS)


@dataclass
class Member:
    guid: str
    user_guid: str
    username: str
    password: str
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
    # Credential failures in a row; the third makes the member PREVENTED.
    failed_logins: int = 0
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
        elif isinstance(step, AskAgain):
            self.connection_status = "REJECTED"
            self.next_step = step.question
            self.resolves_at = now + step.after_seconds
        else:
            self.finish(step)

    def finish(self, word: str) -> None:
        """End the job in a status word."""
        if word == "DENIED":
            self.failed_logins += 1
            if self.failed_logins >= PREVENTED_AFTER_FAILURES:
                word = "PREVENTED"
        self.challenges, self.asked = [], None
        self.connection_status = word
        self.is_being_aggregated = False
        if word == "CONNECTED":
            self.failed_logins = 0
            self.is_authenticated = True
            self.aggregated_at = self.successfully_aggregated_at = now_iso()

    @property
    def needs_credentials(self) -> bool:
        return self.connection_status in NEEDS_CREDENTIALS

    def aggregate(self, step: Step, now: float, latency_seconds: float, status: str) -> None:
        """Start an aggregation (a refresh, or a login with updated credentials)."""
        if self.is_being_aggregated:
            return
        self.next_step = step
        self.wrong_answers = 0
        self.challenges = []
        self.asked = None
        self.is_being_aggregated = True
        # Atrium's reference: `is_authenticated` "resets to false each time /aggregate is called".
        self.is_authenticated = False
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
            self.next_step = (
                "REJECTED"
                if self.wrong_answers >= MAX_WRONG_ANSWERS
                else AskAgain(asked, latency_seconds)
            )
        elif asked is PHONE_CHOICE:
            chosen = next(iter(answers.values()))
            self.next_step = ChallengeSpec(otp_code_prompt(chosen), TOKEN)
        else:
            self.mfa_expired = False
            self.next_step = "CONNECTED"

    def status_body(self) -> dict[str, Any]:
        status = self.connection_status
        body: dict[str, Any] = {
            "aggregated_at": self.aggregated_at,
            "connection_status": None if status == NULL_STATUS else status,
            "guid": self.guid,
            "is_authenticated": self.is_authenticated,
            "is_being_aggregated": self.is_being_aggregated,
            "successfully_aggregated_at": self.successfully_aggregated_at,
        }
        if status == "CHALLENGED":
            body["challenges"] = self.challenges
        return body

    def member_body(self) -> dict[str, Any]:
        # Assumption(mx): the sandbox's member object is its status fields plus these two -- the
        # reference's member has many more, none of which linkflow reads.
        return self.status_body() | {
            "institution_code": INSTITUTION_CODE,
            "user_guid": self.user_guid,
        }

    def accounts(self) -> list[dict[str, Any]]:
        if self.successfully_aggregated_at is None:
            return []
        # Assumption(mx): the sandbox's accounts are a subset of MX's account object -- the
        # fields linkflow reads, with the reference's names.
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

    # What each test user does here, in this provider's words (the README's table of test users
    # is generated from these; tests/test_provider_contracts.py asserts the stories).
    TEST_USERS: ClassVar[Mapping[str, str]] = {
        "user_good": "`CONNECTED` at once",
        "user_mfa": "one text question",
        "user_otp": "choose a phone, then the code",
        "user_bad": "`DENIED`",
        "user_hold": "`IMPEDED`",
        "user_slow": "`CREATED` (aggregating) for 3 s",
        "user_unsupported": "a captcha MX does not document",
        "user_image": "an `IMAGE_OPTIONS` choice among pictures; any offered picture is right",
        "user_image_data": "an `IMAGE_DATA` picture to name; answer `correct`",
    }

    # How long a challenge waits for its answers before the member is EXPIRED; None: for ever.
    mfa_window_seconds: float | None = None
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    # The bank's side, set by the test-only bank-events route: a username's changed password,
    # and what its next aggregation meets (one of `BANK_EVENTS` but a password change).
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
        # Assumption(mx): an error body is {"error": {"message": ...}} -- the seed shows none, and
        # MX's error pages show only a message.
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
            resolves_at=self.clock() + self.job_seconds(scenario is Scenario.SLOW),
            next_step=picture_question(username, password) or FIRST_STEPS[scenario],
            mfa_window_seconds=self.mfa_window_seconds,
        )
        self.members[member.guid] = member
        self.ledger.record(idempotency_key(request), member.guid)
        return JSONResponse({"member": member.member_body()}, status_code=202)

    async def member_status(self, request: Request) -> Response:
        return JSONResponse({"member": self._member(request).status_body()})

    async def member_challenges(self, request: Request) -> Response:
        # MX's "List member challenges": 204 No Content unless the member is CHALLENGED.
        member = self._member(request)
        if member.connection_status != "CHALLENGED":
            return Response(status_code=204)
        challenges = member.challenges
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
            # Assumption(mx): a resume of a member that is not CHALLENGED is refused with 409 --
            # the Platform API reference names no status for it (MX's older Nexus API says 405).
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
        # MX's "Aggregate member" answers 202 with the member.
        member = self._member(request)
        self.ledger.record(idempotency_key(request), member.guid)
        if member.connection_status in ("CREATED", "CHALLENGED", "RESUMED"):
            raise Refused(409, f"The member is {member.connection_status}; it cannot aggregate.")
        if member.needs_credentials:
            # Assumption(mx): MX starts no aggregation for a member that needs new credentials
            # and answers with the member as it is -- the reference says only to update them first.
            return JSONResponse({"member": member.member_body()}, status_code=202)
        member.aggregate(
            self._aggregation_step(member), self.clock(), self.latency_seconds, "CONNECTED"
        )
        return JSONResponse({"member": member.member_body()}, status_code=202)

    async def update_member(self, request: Request) -> Response:
        # MX's "Update member" takes `{"member": {"credentials": [...]}}` and answers 200 with the
        # member; MX aggregates a member whose credentials are updated.
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
        return JSONResponse({"member": member.member_body()})

    def _aggregation_step(self, member: Member) -> Step:
        """What the bank does when a connected member aggregates again."""
        expected = self.bank_passwords.get(member.username)
        if expected is not None:
            valid = member.password == expected
        else:
            valid = logs_in(member.username, member.password)
        if not valid:
            return "DENIED"
        event = self.bank_events.pop(member.username, None)
        if event in CREDENTIAL_EVENTS:
            return CREDENTIAL_EVENTS[event]
        if event == "mfa_expired" or member.mfa_expired:
            member.mfa_expired = True
            return QUESTION
        if event == "hold":
            return "IMPEDED"
        if event == "paused":
            # Assumption(mx): a paused member's next aggregation after this one runs as usual --
            # MX says DISABLED is "momentarily paused" and gives no way to resume it.
            return "DISABLED"
        return "CONNECTED"

    async def bank_event(self, request: Request) -> Response:
        """Test only: what the bank (or MX) does to a user's next aggregation: `BANK_EVENTS`."""
        body = await json_object(request)
        username, event = body.get("username"), body.get("event")
        if not isinstance(username, str) or not username:
            raise Refused(400, "username is required.")
        if event == "password_changed":
            new_password = body.get("new_password")
            if not isinstance(new_password, str) or not new_password:
                raise Refused(400, "password_changed needs a new_password.")
            self.bank_passwords[username] = new_password
        elif event in BANK_EVENTS:
            self.bank_events[username] = event
        else:
            raise Refused(400, f"event must be one of {', '.join(BANK_EVENTS)}.")
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
