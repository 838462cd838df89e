"""Synapse's bank-login API (ACH-US nodes) as the sandbox speaks it, under `/synapse`.

linkflow's Synapse adapter is tested against this module over real HTTP, so it speaks Synapse's
v3.1 contract. The seed document (Synapse's "ACH-US MFA" page, kept in
tests/fixtures/documents/synapse_ach_us_mfa.txt) gives the heart of it:
`POST /v3.1/users/{user_id}/nodes` with `{"access_token", "mfa_answer"}` answers one MFA question;
HTTP 202 with `{"error_code": "10", "http_code": "202", "mfa": {"access_token", "message",
"type": "question"}, "success": true}` means another question, HTTP 200 with `{"error_code": "0",
"http_code": "200", "limit", "node_count", "nodes": [...], "page_count", "success": true}` means
linked; questions come one at a time; a bank login may take minutes (one synchronous call, no job
to poll). Requests carry `X-SP-USER-IP` and `X-SP-USER: oauth_key|fingerprint`.

Synapse's public reference and its client libraries (SynapsePy, SynapseGo) add the rest:

- `X-SP-GATEWAY: client_id|client_secret`; `POST /v3.1/users` (returns `_id` and
  `refresh_token`); `GET /v3.1/users/{user_id}` (the user, with its current `refresh_token`);
  the ACH-US login body `{"type": "ACH-US", "info": {"bank_id", "bank_pw", "bank_name"}}`;
  `GET` and `DELETE` on nodes, and `GET .../nodes/{node_id}?force_refresh=yes` to refresh a node
  from the bank ("Account Aggregation Sandbox Values", "Link with Bank Login").
- `POST /v3.1/oauth/{user_id}` `{"refresh_token"}` -> `oauth_key`, `expires_at`, `expires_in`
  ("OAuth Key currently expires in 2 hours"; `--synapse-oauth-lifetime-seconds` shortens it),
  `refresh_token` and `refresh_expires_in`. A key past its expiry is refused like a wrong one
  (HTTP 401, `error_code` 110, on which Synapse's clients renew it). "Refresh tokens expire
  after 10 uses": the tenth use's answer carries a new one; a stale one is refused with HTTP 409,
  `error_code` 400 (Synapse's clients then read the user again).
- "Register New Fingerprint": `/oauth` from a fingerprint the user has not registered answers
  HTTP 202, `error_code` 10, with the user's `phone_numbers`; the same call with `phone_number`
  sends a PIN, and with `validation_pin` registers the fingerprint and gives the key.
- The error body `{"error": {"en": ...}, "error_code", "http_code", "success": false}` and the
  codes of "Errors" and "Account Aggregation Errors": a bank login's bad credentials are HTTP 400,
  `error_code` 200; no ACH-capable account 402/460; a locked account or a bank asking for the
  user's attention 402/500; maintenance 503/503; a wrong MFA answer 409/400. A refresh's "not
  allowed" is 400/410, "bad credentials: re-link" 401/110, "unknown refresh error" 500/500,
  "temporarily unavailable" 503/503.
- The documented test logins (bank `fake`): `synapse_nomfa` / `test1234` (no MFA),
  `synapse_good` / `test1234` (asks the seed's question: `test_answer` links, `again` asks
  another), `synapse_code_mfa` / `test1234` (a code question, `123456`), `synapse_no_accounts`,
  `synapse_bank_request` and `synapse_maintenance`; and the password endings that set a linked
  node's refresh: `_sync_not_allowed`, `_needs_relink`, `_sync_unknown_error`,
  `_sync_unavailable`, `_sync_balance_higher`, `_sync_balance_lower` (for the shared test users
  too: `pass_good_needs_relink` is `pass_good` whose refreshes ask to re-link).

What this module adds is marked "Assumption(synapse)"; among it: a wrong answer gets the same
question again (the third wrong answer in a login is 409/400 and ends the `access_token`);
`user_otp`'s "which phone?" is a plain `question`; `user_unsupported` gets an `mfa` whose `type`
is `captcha`; an `Idempotency-Key` (or `X-SP-IDEMPOTENCY-KEY`) repeated on a POST replays the
first answer and is counted in `duplicate_requests`.

The ACH-US login call sleeps `latency_seconds` (plus `SLOW_JOB_SECONDS` for `user_slow`) before it
answers; so does every MFA answer and every forced refresh.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.skeleton import (
    IDEMPOTENCY_KEY_HEADER,
    ProviderSandbox,
    Refused,
    RouteSpec,
    idempotency_key,
    json_object,
    object_id,
)
from sandbox.users import (
    MAX_WRONG_ANSWERS,
    OTP_PHONES,
    SECURITY_QUESTION,
    Scenario,
    is_correct,
    otp_code_prompt,
    scenario_for,
)

API_HOST = "https://uat-api.synapsefi.com"
CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
CLIENT_NAME = "linkflow sandbox"
GATEWAY_HEADER = "x-sp-gateway"
USER_HEADER = "x-sp-user"
USER_IP_HEADER = "x-sp-user-ip"
IDEMPOTENCY_HEADERS = (IDEMPOTENCY_KEY_HEADER, "x-sp-idempotency-key")
# "OAuth Key currently expires in 2 hours"; "Refresh tokens expire after 10 uses".
OAUTH_EXPIRES_IN = 7200
REFRESH_TOKEN_USES = 10
OAUTH_SCOPE = ["USER|PATCH", "USER|GET", "NODES|POST", "NODES|GET", "NODE|GET", "NODE|DELETE"]
# Assumption(synapse): the sandbox's fingerprint PIN is 123456 -- Synapse sends no PIN in its
# sandbox and its page's table of sandbox fingerprint values was not readable.
SANDBOX_VALIDATION_PIN = "123456"

# Synapse's documented test logins (bank `fake`), beside the shared test users.
HOOK_PASSWORD = "test1234"
HOOK_NO_MFA = "synapse_nomfa"
HOOK_MFA = "synapse_good"
HOOK_CODE_MFA = "synapse_code_mfa"
HOOK_NO_ACCOUNTS = "synapse_no_accounts"
HOOK_BANK_REQUEST = "synapse_bank_request"
HOOK_MAINTENANCE = "synapse_maintenance"
HOOK_ANSWER = "test_answer"
HOOK_AGAIN = "again"
HOOK_CODE = "123456"
# The seed's own example question.
SEED_QUESTION = "I heard you don't like questions so can I ask you a question anyway?"

# A refresh's result per the password's documented ending: (HTTP code, error_code, message).
SYNC_ERRORS: dict[str, tuple[int, str, str]] = {
    "_sync_not_allowed": (400, "410", "Refresh not allowed."),
    "_needs_relink": (401, "110", "Bad credentials. Please re-link the account."),
    "_sync_unknown_error": (500, "500", "Unknown refresh error."),
    "_sync_unavailable": (503, "503", "Refresh temporarily unavailable."),
}
SYNC_BALANCES = {"_sync_balance_higher": (800.0, 1500.0), "_sync_balance_lower": (10.0, 50.0)}
PASSWORD_ENDINGS = (*SYNC_ERRORS, *SYNC_BALANCES)

HOLD_MESSAGE = (
    "Your bank has locked online access to this account. Call your bank or log in to its"
    " website to unlock it, then link the account again."
)
BAD_LOGIN_MESSAGE = "The username or password provided were not correct."
NO_ACCOUNTS_MESSAGE = "No ACH capable account found."
MAINTENANCE_MESSAGE = "Service unavailable due to bank maintenance."
MFA_FAILED_MESSAGE = "Incorrect Values Supplied: the MFA answers were not correct."
DEVICE_MESSAGE = "Fingerprint not registered. Please perform the MFA flow."

Reply = tuple[int, dict[str, Any]]
# Synapse's code for a payload it cannot read.
PAYLOAD_ERROR = "200"


def refusal(http_code: int, error_code: str, message: str) -> Refused:
    """A refusal with Synapse's `error_code`."""
    return Refused(http_code, message, error_code)


def reply_to(refused: Refused) -> Reply:
    """A refusal in Synapse's error shape."""
    return refused.status, {
        "error": {"en": refused.message},
        "error_code": refused.code or PAYLOAD_ERROR,
        "http_code": str(refused.status),
        "success": False,
    }


@dataclass(frozen=True)
class Question:
    """One MFA question and the answers it takes."""

    message: str
    type: str = "question"
    answers: frozenset[str] = frozenset()
    # The OTP code question: its text names the phone chosen in the step before.
    names_phone: bool = False
    # An answer that asks the same question again (the documented `again`).
    again: str | None = None

    def accepts(self, value: str) -> bool:
        return is_correct(value) or value.strip() in self.answers


PHONE_QUESTION = Question(
    "Which phone should we text your one-time code to: "
    + " or ".join(phone.label for phone in OTP_PHONES)
    + "?",
    answers=frozenset(
        {p.label for p in OTP_PHONES}
        | {p.value for p in OTP_PHONES}
        | {p.label[-4:] for p in OTP_PHONES}
    ),
)
SCRIPTS: dict[str, tuple[Question, ...]] = {
    Scenario.NO_MFA: (),
    Scenario.SLOW: (),
    Scenario.QUESTION: (
        Question(SECURITY_QUESTION),
        Question("What was the name of your first pet?"),
        Question("What is your mother's maiden name?"),
    ),
    Scenario.OTP: (PHONE_QUESTION, Question("", names_phone=True)),
    Scenario.UNSUPPORTED: (Question("Solve the picture puzzle to continue.", type="captcha"),),
    HOOK_MFA: (Question(SEED_QUESTION, answers=frozenset({HOOK_ANSWER}), again=HOOK_AGAIN),),
    # Assumption(synapse): synapse_code_mfa's question is a plain `question` asking for the
    # code -- the sandbox values give the code (123456), not the question's words.
    HOOK_CODE_MFA: (
        Question("Enter the code your bank sent you.", answers=frozenset({HOOK_CODE})),
    ),
    HOOK_NO_MFA: (),
}
HOOK_REFUSALS: dict[str, tuple[int, str, str]] = {
    HOOK_NO_ACCOUNTS: (402, "460", NO_ACCOUNTS_MESSAGE),
    HOOK_BANK_REQUEST: (402, "500", HOLD_MESSAGE),
    HOOK_MAINTENANCE: (503, "503", MAINTENANCE_MESSAGE),
}
HOOK_LOGINS = frozenset({HOOK_NO_MFA, HOOK_MFA, HOOK_CODE_MFA, *HOOK_REFUSALS})


@dataclass
class Node:
    node_id: str
    user_id: str
    nickname: str
    account_class: str
    account_num: str
    amount: str
    created_ms: int
    # The documented password ending the bank login had: how this node's refreshes go.
    sync: str = ""

    def body(self) -> dict[str, Any]:
        # The seed's node, field for field; only the ids, the account and the time differ.
        return {
            "_id": self.node_id,
            "_links": {
                "self": {
                    "href": f"{API_HOST}/v3.1/users/{self.user_id}/nodes/{self.node_id}",
                }
            },
            "allowed": "CREDIT-AND-DEBIT",
            "client": {"id": CLIENT_ID, "name": CLIENT_NAME},
            "extra": {"other": {}, "supp_id": ""},
            "info": {
                "account_num": self.account_num,
                "address": "PO BOX 85139, RICHMOND, VA, US",
                "balance": {"amount": self.amount, "currency": "USD"},
                "bank_long_name": "CAPITAL ONE N.A.",
                "bank_name": "CAPITAL ONE N.A.",
                "class": self.account_class,
                "match_info": {
                    "email_match": "match",
                    "name_match": "match",
                    "phonenumber_match": "no_match",
                },
                "name_on_account": " ",
                "nickname": self.nickname,
                "routing_num": "6110",
                "type": "BUSINESS",
            },
            "is_active": True,
            "timeline": [{"date": self.created_ms, "note": "Node created."}],
            "type": "ACH-US",
            "user_id": self.user_id,
        }


# Assumption(synapse): every successful sandbox login links the seed's checking account and a
# savings account beside it -- the seed shows one node of three and elides the rest.
ACCOUNTS = (
    ("SynapsePay Test Checking Account - 8901", "CHECKING", "8901", "800.00"),
    ("SynapsePay Test Savings Account - 2345", "SAVINGS", "2345", "1500.00"),
)


@dataclass
class User:
    """A Synapse user: its body, its keys, its refresh token's uses, its devices and IPs."""

    body: dict[str, Any]
    fingerprints: set[str]
    # oauth key -> when it expires (the sandbox's clock).
    oauth_keys: dict[str, float] = field(default_factory=dict)
    refresh_uses_left: int = REFRESH_TOKEN_USES
    # The `X-SP-USER-IP` of each request about this user, in order.
    ips: list[str] = field(default_factory=list)
    # Fingerprints that asked for a PIN, and the phone it went to.
    pins_sent: dict[str, str] = field(default_factory=dict)

    @property
    def refresh_token(self) -> str:
        token: str = self.body["refresh_token"]
        return token

    def rotate_refresh_token(self) -> None:
        self.body["refresh_token"] = f"refresh_{secrets.token_hex(10)}"
        self.refresh_uses_left = REFRESH_TOKEN_USES


@dataclass
class Login:
    """One ACH-US bank login in MFA: its questions, where it stands, its wrong answers."""

    access_token: str
    user_id: str
    script: tuple[Question, ...]
    sync: str = ""
    step: int = 0
    wrong_answers: int = 0
    # How many questions were sent so far; an answer is for the round it was sent in.
    rounds: int = 0
    chosen_phone: str = OTP_PHONES[0].value

    def question(self) -> Question:
        asked = self.script[self.step]
        if asked.names_phone:
            return Question(otp_code_prompt(self.chosen_phone))
        return asked

    def mfa_reply(self) -> Reply:
        self.rounds += 1
        question = self.question()
        return 202, {
            "error_code": "10",
            "http_code": "202",
            "mfa": {
                "access_token": self.access_token,
                "message": question.message,
                "type": question.type,
            },
            "success": True,
        }


def split_password(password: str) -> tuple[str, str]:
    """The password without a documented ending, and the ending ("" if none)."""
    for ending in PASSWORD_ENDINGS:
        if password.endswith(ending) and len(password) > len(ending):
            return password.removesuffix(ending), ending
    return password, ""


@dataclass
class SynapseSandbox(ProviderSandbox):
    """Synapse's state for one sandbox process: users, their nodes, logins in MFA, keys seen."""

    PREFIX = "/synapse"

    # What each test user does here, in this provider's words (the README's table of test users
    # is generated from these; tests/test_provider_contracts.py asserts the stories).
    TEST_USERS: ClassVar[Mapping[str, str]] = {
        "user_good": "HTTP 200 with nodes",
        "user_mfa": "three `question`s, one at a time (HTTP 202, `error_code` `10`)",
        "user_otp": "which phone (a text `question`: Synapse has no options), then the code",
        "user_bad": "HTTP 400, `error_code` `200`",
        "user_hold": "HTTP 402, `error_code` `500` with the bank's notice",
        "user_slow": "the login call itself takes 3 s longer",
        "user_unsupported": "an `mfa` of `type` `captcha`",
    }

    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    oauth_lifetime_seconds: float = OAUTH_EXPIRES_IN
    users: dict[str, User] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    logins: dict[str, Login] = field(default_factory=dict)
    replies: dict[str, asyncio.Future[Reply]] = field(default_factory=dict)

    def route_table(self) -> Sequence[RouteSpec]:
        nodes = "/v3.1/users/{user_id}/nodes"
        return (
            ("/v3.1/users", "POST", self.create_user),
            ("/v3.1/users/{user_id}", "GET", self.get_user),
            ("/v3.1/oauth/{user_id}", "POST", self.oauth),
            (nodes, "POST", self.add_node),
            (nodes, "GET", self.list_nodes),
            (f"{nodes}/{{node_id}}", "GET", self.get_node),
            (f"{nodes}/{{node_id}}", "DELETE", self.delete_node),
        )

    def check(self, request: Request) -> None:
        """Synapse's header checks on every request."""
        client_id, _, client_secret = request.headers.get(GATEWAY_HEADER, "").partition("|")
        if (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
            raise refusal(401, "100", "Incorrect client credentials in X-SP-GATEWAY.")
        _, bar, fingerprint = request.headers.get(USER_HEADER, "").partition("|")
        if not bar or not fingerprint:
            raise refusal(400, "120", "X-SP-USER must be oauth_key|fingerprint.")
        user_ip = request.headers.get(USER_IP_HEADER, "").strip()
        try:
            ipaddress.ip_address(user_ip)
        except ValueError:
            raise refusal(
                400, PAYLOAD_ERROR, "X-SP-USER-IP must be the user's IP address."
            ) from None
        user = self.users.get(request.path_params.get("user_id", ""))
        if user is not None:
            user.ips.append(user_ip)

    def error_response(self, refused: Refused) -> Response:
        status, body = reply_to(refused)
        return JSONResponse(body, status_code=status)

    # ------------------------------------------------------------------ idempotency

    async def _once(
        self, request: Request, user_id: str, make: Callable[[], Awaitable[Reply]]
    ) -> Response:
        """Run `make` once per idempotency key; a repeated key gets the first reply again."""
        key = idempotency_key(request, IDEMPOTENCY_HEADERS)
        if not key:
            status, body = await _replied(make)
            return JSONResponse(body, status_code=status)
        self.ledger.record(key, user_id)
        if key in self.replies:
            status, body = await asyncio.shield(self.replies[key])
            return JSONResponse(body, status_code=status)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.replies[key] = future
        future.set_result(await _replied(make))
        status, body = future.result()
        return JSONResponse(body, status_code=status)

    # ------------------------------------------------------------------ users and oauth

    async def create_user(self, request: Request) -> Response:
        body = await json_object(request, PAYLOAD_ERROR)
        logins = body.get("logins")
        if not isinstance(logins, list) or not logins or not isinstance(logins[0], dict):
            raise refusal(400, PAYLOAD_ERROR, "logins is required.")
        if not all(isinstance(body.get(k), list) for k in ("phone_numbers", "legal_names")):
            raise refusal(400, PAYLOAD_ERROR, "phone_numbers and legal_names are required.")
        user_id = object_id()
        # "The fingerprint supplied during the POST User creation is the registered fingerprint."
        fingerprint = request.headers.get(USER_HEADER, "").partition("|")[2]
        user_ip = request.headers.get(USER_IP_HEADER, "").strip()

        async def make() -> Reply:
            given = body.get("extra")
            extra: dict[str, Any] = given if isinstance(given, dict) else {}
            user = {
                "_id": user_id,
                "_links": {"self": {"href": f"{API_HOST}/v3.1/users/{user_id}"}},
                "client": {"id": CLIENT_ID, "name": CLIENT_NAME},
                "extra": {
                    "supp_id": str(extra.get("supp_id", "")),
                    "cip_tag": int(extra.get("cip_tag", 1)),
                    "is_business": bool(extra.get("is_business", False)),
                },
                "is_hidden": False,
                "legal_names": body["legal_names"],
                "logins": [
                    {"email": str(login.get("email", "")), "scope": "READ_AND_WRITE"}
                    for login in logins
                    if isinstance(login, dict)
                ],
                "permission": "UNVERIFIED",
                "phone_numbers": body["phone_numbers"],
                "refresh_token": f"refresh_{secrets.token_hex(10)}",
            }
            self.users[user_id] = User(body=user, fingerprints={fingerprint}, ips=[user_ip])
            return 200, user

        return await self._once(request, user_id, make)

    def _known_user(self, request: Request) -> User:
        user = self.users.get(request.path_params["user_id"])
        if user is None:
            raise refusal(404, "404", "User not found.")
        return user

    async def get_user(self, request: Request) -> Response:
        """View User: the user's body, with its current refresh token."""
        return JSONResponse(self._known_user(request).body)

    async def oauth(self, request: Request) -> Response:
        body = await json_object(request, PAYLOAD_ERROR)
        user = self._known_user(request)
        if body.get("refresh_token") != user.refresh_token:
            raise refusal(409, "400", "refresh_token is invalid or expired. Please GET the user.")
        fingerprint = request.headers.get(USER_HEADER, "").partition("|")[2]
        if fingerprint not in user.fingerprints:
            return self._register_device(user, fingerprint, body)
        return JSONResponse(self._new_oauth_key(user))

    def _register_device(self, user: User, fingerprint: str, body: dict[str, Any]) -> Response:
        """Synapse's 2FA for a fingerprint the user has not registered: phones, a PIN, the key."""
        phones = [str(phone) for phone in user.body["phone_numbers"]]
        phone, pin = body.get("phone_number"), body.get("validation_pin")
        if isinstance(pin, str) and fingerprint in user.pins_sent:
            if pin != SANDBOX_VALIDATION_PIN:
                raise refusal(409, "400", "Incorrect validation_pin.")
            user.fingerprints.add(fingerprint)
            del user.pins_sent[fingerprint]
            return JSONResponse(self._new_oauth_key(user))
        if isinstance(phone, str) and phone in phones:
            user.pins_sent[fingerprint] = phone
            # Assumption(synapse): the answer to choosing the PIN's phone is HTTP 200 with
            # `{"message": {"en": ...}, "success": true}` -- the page shows no example of it.
            return JSONResponse({"message": {"en": f"MFA sent to {phone}."}, "success": True})
        return JSONResponse(
            {
                "error": {"en": DEVICE_MESSAGE},
                "error_code": "10",
                "http_code": "202",
                "phone_numbers": phones,
                "success": False,
            },
            status_code=202,
        )

    def _new_oauth_key(self, user: User) -> dict[str, Any]:
        """A new oauth key; the refresh token's tenth use hands out its successor."""
        oauth_key = f"oauth_{secrets.token_hex(16)}"
        now = self.clock()
        user.oauth_keys[oauth_key] = now + self.oauth_lifetime_seconds
        user.refresh_uses_left -= 1
        if user.refresh_uses_left <= 0:
            user.rotate_refresh_token()
        return {
            "client_id": CLIENT_ID,
            "client_name": CLIENT_NAME,
            "expires_at": str(int(now + self.oauth_lifetime_seconds)),
            "expires_in": str(int(self.oauth_lifetime_seconds)),
            "oauth_key": oauth_key,
            "refresh_expires_in": user.refresh_uses_left,
            "refresh_token": user.refresh_token,
            "scope": OAUTH_SCOPE,
            "user_id": user.body["_id"],
        }

    def _user(self, request: Request) -> str:
        """The path's user, checked against the oauth key of `X-SP-USER`, which must be live."""
        user = self._known_user(request)
        oauth_key = request.headers.get(USER_HEADER, "").partition("|")[0]
        expires_at = user.oauth_keys.get(oauth_key)
        if expires_at is None or expires_at <= self.clock():
            # Assumption(synapse): an expired oauth key is refused as HTTP 401, error_code 110,
            # like a wrong one -- Synapse's clients renew the key on 110; no page shows the body.
            raise refusal(401, "110", "Error in oauth_key. oauth_key expired or invalid.")
        return str(user.body["_id"])

    # ------------------------------------------------------------------ nodes

    async def add_node(self, request: Request) -> Response:
        body = await json_object(request, PAYLOAD_ERROR)
        user_id = self._user(request)
        if "access_token" in body or "mfa_answer" in body:
            return await self._once(request, user_id, lambda: self._answer(user_id, body))
        if body.get("type") != "ACH-US":
            raise refusal(400, PAYLOAD_ERROR, "Only ACH-US bank logins are supported here.")
        info = body.get("info")
        if not isinstance(info, dict) or not all(
            isinstance(info.get(k), str) and info[k] for k in ("bank_id", "bank_pw", "bank_name")
        ):
            raise refusal(
                400, PAYLOAD_ERROR, "info.bank_id, info.bank_pw and info.bank_name needed."
            )
        return await self._once(request, user_id, lambda: self._login(user_id, info))

    async def _login(self, user_id: str, info: dict[str, Any]) -> Reply:
        bank_id = info["bank_id"]
        bank_pw, sync = split_password(info["bank_pw"])
        script_name: str
        if bank_id in HOOK_LOGINS:
            script_name = bank_id if bank_pw == HOOK_PASSWORD else Scenario.INVALID
        else:
            script_name = scenario_for(bank_id, bank_pw)
        slow = script_name == Scenario.SLOW
        # A bank login is one long call (the seed advises a timeout "a little over 300sec").
        await self.sleep(self.job_seconds(slow))
        if script_name == Scenario.INVALID:
            # "Mostly always for bad user credentials."
            raise refusal(400, PAYLOAD_ERROR, BAD_LOGIN_MESSAGE)
        if script_name == Scenario.HOLD:
            raise refusal(402, "500", HOLD_MESSAGE)
        if script_name in HOOK_REFUSALS:
            raise refusal(*HOOK_REFUSALS[script_name])
        script = SCRIPTS[script_name]
        if not script:
            return self._linked(user_id, sync)
        login = Login(
            access_token=f"fake_{secrets.token_hex(15)}", user_id=user_id, script=script, sync=sync
        )
        self.logins[login.access_token] = login
        return login.mfa_reply()

    async def _answer(self, user_id: str, body: dict[str, Any]) -> Reply:
        token, answer = body.get("access_token"), body.get("mfa_answer")
        if not isinstance(token, str) or not isinstance(answer, str) or not answer:
            raise refusal(400, PAYLOAD_ERROR, "access_token and mfa_answer are required.")
        login = self.logins.get(token)
        if login is None or login.user_id != user_id:
            raise refusal(404, "404", "access_token not found or no longer valid.")
        # Checked before the wait, changed after it: a second answer in the meantime is refused.
        question, asked_round = login.question(), login.rounds
        await self.sleep(self.latency_seconds)
        if self.logins.get(token) is not login or login.rounds != asked_round:
            # Assumption(synapse): an answer to a question already answered is refused as a
            # failed request (HTTP 400, error_code 460) -- no reference covers the race.
            raise refusal(400, "460", "This MFA question was already answered.")
        if question.again is not None and answer.strip() == question.again:
            return login.mfa_reply()
        if not question.accepts(answer):
            # Assumption(synapse): a wrong answer asks the same question again, and the third
            # wrong answer in a login is 409/400 and ends it -- Synapse documents only 409/400.
            login.wrong_answers += 1
            if login.wrong_answers >= MAX_WRONG_ANSWERS:
                del self.logins[token]
                raise refusal(409, "400", MFA_FAILED_MESSAGE)
            return login.mfa_reply()
        if question == PHONE_QUESTION:
            value = answer.strip()
            login.chosen_phone = next(
                (p.value for p in OTP_PHONES if value in (p.label, p.value, p.label[-4:])),
                OTP_PHONES[0].value,
            )
        login.step += 1
        if login.step < len(login.script):
            return login.mfa_reply()
        del self.logins[token]
        return self._linked(user_id, login.sync)

    def _linked(self, user_id: str, sync: str) -> Reply:
        created_ms = int(self.clock() * 1000)
        for nickname, account_class, account_num, amount in ACCOUNTS:
            # Assumption(synapse): a bank login posted again for a user who has that bank's
            # nodes updates those nodes (same ids), not duplicates -- no reference says.
            existing = next(
                (
                    node
                    for node in self.nodes.values()
                    if node.user_id == user_id and node.account_num == account_num
                ),
                None,
            )
            if existing is not None:
                existing.sync = sync
                continue
            node = Node(
                object_id(), user_id, nickname, account_class, account_num, amount, created_ms, sync
            )
            self.nodes[node.node_id] = node
        return 200, self._node_list(user_id)

    def _node_list(self, user_id: str) -> dict[str, Any]:
        found = [node.body() for node in self.nodes.values() if node.user_id == user_id]
        return {
            "error_code": "0",
            "http_code": "200",
            "limit": len(found),
            "node_count": len(found),
            "nodes": found,
            "page_count": 1,
            "success": True,
        }

    async def list_nodes(self, request: Request) -> Response:
        return JSONResponse(self._node_list(self._user(request)))

    def _node(self, request: Request) -> Node:
        user_id = self._user(request)
        node = self.nodes.get(request.path_params["node_id"])
        if node is None or node.user_id != user_id:
            raise refusal(404, "404", "Node not found.")
        return node

    async def get_node(self, request: Request) -> Response:
        node = self._node(request)
        if request.query_params.get("force_refresh", "").lower() == "yes":
            await self._refresh(node)
        return JSONResponse(node.body())

    async def _refresh(self, node: Node) -> None:
        """A forced refresh from the bank, as the node's documented password ending says."""
        await self.sleep(self.latency_seconds)
        if node.sync in SYNC_ERRORS:
            raise refusal(*SYNC_ERRORS[node.sync])
        if node.sync in SYNC_BALANCES:
            low, high = SYNC_BALANCES[node.sync]
            node.amount = f"{random.uniform(low, high):.2f}"

    async def delete_node(self, request: Request) -> Response:
        node = self._node(request)
        del self.nodes[node.node_id]
        # Assumption(synapse): a deleted node answers with its body, now inactive -- the
        # references show no example of the answer.
        return JSONResponse(node.body() | {"is_active": False})


async def _replied(make: Callable[[], Awaitable[Reply]]) -> Reply:
    try:
        return await make()
    except Refused as refused:
        return reply_to(refused)


def create_sandbox(
    latency_seconds: float, oauth_lifetime_seconds: float = OAUTH_EXPIRES_IN
) -> SynapseSandbox:
    return SynapseSandbox(
        latency_seconds=latency_seconds, oauth_lifetime_seconds=oauth_lifetime_seconds
    )
