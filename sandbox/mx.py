"""MX's Platform API as the sandbox speaks it, under `/mx`.

It follows MX's "Handling Multifactor Authentication" guide (shared/seeds/002_...): a member's
`connection_status` moves through CREATED, CHALLENGED with a `challenges` array (guid, label,
type), RESUMED after `PUT .../resume`, and CONNECTED, with the same field names. MX's test bank is
institution `mxbank`, and its right answer is `correct`. Beyond the seed document, these details
are assumptions taken from MX's public API reference and marked where they appear: user creation
and listing, institution credentials, the accounts list, and the numbering of challenge `type`
past 0.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.users import MAX_WRONG_ANSWERS, Scenario, is_correct, scenario_for

MX_ACCEPT = "application/vnd.mx.api.v1+json"
INSTITUTION_CODE = "mxbank"

# Challenge `type` as integers, as in the seed's example (`"type": 0` for a text question). The
# seed shows only 0; the rest follow the order of MX's documented names (an assumption).
TEXT, OPTIONS, TOKEN, IMAGE_DATA, IMAGE_OPTIONS = 0, 1, 2, 3, 4

PHONES = [("(***) ***-4321", "phone-4321"), ("(***) ***-8765", "phone-8765")]

# Assumption: MX's credential fields for its test bank, as `GET /institutions/{code}/credentials`.
CREDENTIAL_FIELDS = [
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
]

Handler = Callable[[Request], Awaitable[Response]]


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status_code=status)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ChallengeSpec:
    label: str
    type: int
    options: list[tuple[str, str]] = field(default_factory=list)

    def issue(self) -> dict[str, Any]:
        challenge: dict[str, Any] = {
            "field_name": None,
            "guid": f"CRD-{uuid.uuid4()}",
            "label": self.label,
            "type": self.type,
        }
        if self.options:
            challenge["options"] = [{"label": lbl, "value": val} for lbl, val in self.options]
        return challenge


QUESTION = ChallengeSpec("What city were you born in?", TEXT)
PHONE_CHOICE = ChallengeSpec("Where should we text your one-time code?", OPTIONS, PHONES)


def code_challenge(phone_value: str) -> ChallengeSpec:
    label = next(label for label, value in PHONES if value == phone_value)
    return ChallengeSpec(f"Enter the code we texted to {label}", TOKEN)


@dataclass
class Member:
    guid: str
    user_guid: str
    scenario: Scenario
    connection_status: str = "CREATED"
    is_authenticated: bool = False
    is_being_aggregated: bool = True
    aggregated_at: str | None = None
    successfully_aggregated_at: str | None = None
    challenges: list[dict[str, Any]] = field(default_factory=list)
    current_spec: ChallengeSpec | None = None
    wrong_answers: int = 0
    resolves_at: float = 0.0
    # What the job turns into once it resolves: a challenge, "CONNECTED" or a failure word.
    next_spec: ChallengeSpec | None = None
    next_status: str | None = None

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
        return self.status_body() | {
            "institution_code": INSTITUTION_CODE,
            "user_guid": self.user_guid,
        }


@dataclass
class MxSandbox:
    latency_seconds: float = 0.3
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    # Idempotency-Key -> the response first given for it, replayed for any repeat.
    idempotent_responses: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    duplicate_submissions: int = 0

    def routes(self) -> list[Route]:
        guarded = self._guarded
        return [
            Route("/users", guarded(self.create_user), methods=["POST"]),
            Route("/users", guarded(self.list_users), methods=["GET"]),
            Route(
                "/institutions/{code}/credentials",
                guarded(self.institution_credentials),
                methods=["GET"],
            ),
            Route("/users/{user}/members", guarded(self.create_member), methods=["POST"]),
            Route(
                "/users/{user}/members/{member}/status",
                guarded(self.member_status),
                methods=["GET"],
            ),
            Route(
                "/users/{user}/members/{member}/challenges",
                guarded(self.member_challenges),
                methods=["GET"],
            ),
            Route("/users/{user}/members/{member}/resume", guarded(self.resume), methods=["PUT"]),
            Route(
                "/users/{user}/members/{member}/accounts",
                guarded(self.list_accounts),
                methods=["GET"],
            ),
            Route(
                "/users/{user}/members/{member}", guarded(self.delete_member), methods=["DELETE"]
            ),
        ]

    # ------------------------------------------------------------------ request checks

    def _guarded(self, handler: Handler) -> Handler:
        async def checked(request: Request) -> Response:
            if not _has_basic_auth(request):
                return error(401, "Authentication is required: use Basic client_id:api_key.")
            if request.headers.get("accept") != MX_ACCEPT:
                return error(406, f"Set the Accept header to {MX_ACCEPT}.")
            return await handler(request)

        return checked

    async def _json(self, request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _member(self, request: Request) -> Member | None:
        member = self.members.get(request.path_params["member"])
        if member is None or member.user_guid != request.path_params["user"]:
            return None
        self._advance(member)
        return member

    def _replayed(self, request: Request) -> JSONResponse | None:
        key = request.headers.get("idempotency-key")
        if key and key in self.idempotent_responses:
            self.duplicate_submissions += 1
            status, body = self.idempotent_responses[key]
            return JSONResponse(body, status_code=status)
        return None

    def _remember(self, request: Request, status: int, body: dict[str, Any]) -> JSONResponse:
        key = request.headers.get("idempotency-key")
        if key:
            self.idempotent_responses[key] = (status, body)
        return JSONResponse(body, status_code=status)

    # ------------------------------------------------------------------ users

    async def create_user(self, request: Request) -> Response:
        body = await self._json(request)
        user = body.get("user") if body else None
        if not isinstance(user, dict):
            return error(400, "Body must be {'user': {...}}.")
        partner_id = user.get("id")
        if partner_id is not None and any(u["id"] == partner_id for u in self.users.values()):
            return error(409, f"A user with id {partner_id!r} already exists.")
        guid = f"USR-{uuid.uuid4()}"
        self.users[guid] = {
            "guid": guid,
            "id": partner_id,
            "is_disabled": False,
            "metadata": user.get("metadata"),
        }
        return JSONResponse({"user": self.users[guid]})

    async def list_users(self, request: Request) -> Response:
        page = max(1, int(request.query_params.get("page", "1")))
        per_page = max(1, min(1000, int(request.query_params.get("records_per_page", "25"))))
        users = list(self.users.values())
        chunk = users[(page - 1) * per_page : page * per_page]
        return JSONResponse({"users": chunk, "pagination": _pagination(page, per_page, users)})

    async def institution_credentials(self, request: Request) -> Response:
        if request.path_params["code"] != INSTITUTION_CODE:
            return error(404, "Institution not found.")
        return JSONResponse({"credentials": CREDENTIAL_FIELDS})

    # ------------------------------------------------------------------ members

    async def create_member(self, request: Request) -> Response:
        if replay := self._replayed(request):
            return replay
        user_guid = request.path_params["user"]
        if user_guid not in self.users:
            return error(404, "User not found.")
        body = await self._json(request)
        member = body.get("member") if body else None
        if not isinstance(member, dict) or member.get("institution_code") != INSTITUTION_CODE:
            return error(400, f"Give member.institution_code {INSTITUTION_CODE!r}.")
        given = {c.get("guid"): c.get("value") for c in member.get("credentials") or []}
        fields = {f["field_name"]: f["guid"] for f in CREDENTIAL_FIELDS}
        if set(given) != set(fields.values()) or not all(
            isinstance(v, str) for v in given.values()
        ):
            return error(400, "Give a value for every credential guid of the institution.")
        username = str(given[fields["username"]])
        password = str(given[fields["password"]])
        created = Member(
            guid=f"MBR-{uuid.uuid4()}",
            user_guid=user_guid,
            scenario=scenario_for(username, password),
            resolves_at=time.monotonic() + self.latency_seconds,
        )
        created.next_spec, created.next_status = self._first_step(created.scenario)
        self.members[created.guid] = created
        return self._remember(request, 202, {"member": created.member_body()})

    def _first_step(self, scenario: Scenario) -> tuple[ChallengeSpec | None, str | None]:
        return {
            Scenario.NO_MFA: (None, "CONNECTED"),
            Scenario.QUESTION: (QUESTION, None),
            Scenario.OTP: (PHONE_CHOICE, None),
            Scenario.INVALID: (None, "DENIED"),
        }[scenario]

    def _advance(self, member: Member) -> None:
        """Resolve a job in progress once its latency has passed."""
        if member.connection_status not in ("CREATED", "RESUMED"):
            return
        if time.monotonic() < member.resolves_at:
            return
        if member.next_spec is not None:
            member.current_spec = member.next_spec
            member.challenges = [member.next_spec.issue()]
            member.connection_status = "CHALLENGED"
            return
        member.challenges = []
        member.connection_status = member.next_status or "CONNECTED"
        member.is_being_aggregated = False
        if member.connection_status == "CONNECTED":
            member.is_authenticated = True
            member.aggregated_at = member.successfully_aggregated_at = now_iso()

    async def member_status(self, request: Request) -> Response:
        member = self._member(request)
        if member is None:
            return error(404, "Member not found.")
        return JSONResponse({"member": member.status_body()})

    async def member_challenges(self, request: Request) -> Response:
        member = self._member(request)
        if member is None:
            return error(404, "Member not found.")
        challenges = member.challenges if member.connection_status == "CHALLENGED" else []
        return JSONResponse(
            {"challenges": challenges, "pagination": _pagination(1, 25, challenges)}
        )

    async def resume(self, request: Request) -> Response:
        if replay := self._replayed(request):
            return replay
        member = self._member(request)
        if member is None:
            return error(404, "Member not found.")
        if member.connection_status != "CHALLENGED":
            return error(409, f"Member is {member.connection_status}, not CHALLENGED.")
        body = await self._json(request)
        given = ((body or {}).get("member") or {}).get("challenges")
        if not isinstance(given, list) or not all(isinstance(c, dict) for c in given):
            return error(400, "Body must be {'member': {'challenges': [{'guid', 'value'}]}}.")
        answers = {c.get("guid"): c.get("value") for c in given}
        current = {c["guid"]: c for c in member.challenges}
        if unknown := set(answers) - set(current):
            return error(400, f"Not a current challenge: {', '.join(map(str, unknown))}.")
        if missing := set(current) - set(answers):
            return error(400, f"Answer every challenge; missing {', '.join(missing)}.")
        if not all(isinstance(v, str) for v in answers.values()):
            return error(400, "Every challenge value must be a string.")
        self._judge(member, [(current[guid], str(value)) for guid, value in answers.items()])
        return self._remember(request, 202, {"member": member.member_body()})

    def _judge(self, member: Member, answers: list[tuple[dict[str, Any], str]]) -> None:
        right = all(
            value in {o["value"] for o in challenge.get("options", [])}
            if challenge["type"] in (OPTIONS, IMAGE_OPTIONS)
            else is_correct(value)
            for challenge, value in answers
        )
        member.connection_status = "RESUMED"
        member.resolves_at = time.monotonic() + self.latency_seconds
        if not right:
            member.wrong_answers += 1
            if member.wrong_answers >= MAX_WRONG_ANSWERS:
                member.next_spec, member.next_status = None, "REJECTED"
            else:
                member.next_spec = member.current_spec
            return
        if member.current_spec is PHONE_CHOICE:
            member.next_spec = code_challenge(answers[0][1])
        else:
            member.next_spec, member.next_status = None, "CONNECTED"

    async def list_accounts(self, request: Request) -> Response:
        member = self._member(request)
        if member is None:
            return error(404, "Member not found.")
        accounts = _accounts(member) if member.connection_status == "CONNECTED" else []
        return JSONResponse({"accounts": accounts, "pagination": _pagination(1, 25, accounts)})

    async def delete_member(self, request: Request) -> Response:
        if self._member(request) is None:
            return error(404, "Member not found.")
        del self.members[request.path_params["member"]]
        return Response(status_code=204)


def _has_basic_auth(request: Request) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        client_id, _, api_key = base64.b64decode(encoded).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return bool(client_id and api_key)


def _pagination(page: int, per_page: int, items: list[Any]) -> dict[str, int]:
    return {
        "current_page": page,
        "per_page": per_page,
        "total_entries": len(items),
        "total_pages": max(1, -(-len(items) // per_page)),
    }


def _accounts(member: Member) -> list[dict[str, Any]]:
    # Assumption: fields from MX's account object, a subset.
    return [
        {
            "guid": f"ACT-{member.guid[4:12]}-chk",
            "name": "MX Bank Checking",
            "type": "CHECKING",
            "account_number": "100200301234",
            "balance": 1250.75,
            "currency_code": "USD",
            "member_guid": member.guid,
            "user_guid": member.user_guid,
        },
        {
            "guid": f"ACT-{member.guid[4:12]}-sav",
            "name": "MX Bank Savings",
            "type": "SAVINGS",
            "account_number": "100200305678",
            "balance": 9800.0,
            "currency_code": "USD",
            "member_guid": member.guid,
            "user_guid": member.user_guid,
        },
    ]
