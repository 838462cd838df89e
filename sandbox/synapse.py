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

Synapse's public reference and its client libraries (SynapsePy's `errors.py`) add the rest:
`X-SP-GATEWAY: client_id|client_secret`; `POST /v3.1/users` (returns `_id` and `refresh_token`);
`POST /v3.1/oauth/{user_id}` `{"refresh_token"}` -> `oauth_key`; the ACH-US login body
`{"type": "ACH-US", "info": {"bank_id", "bank_pw", "bank_name"}}`; `GET` and `DELETE` on nodes;
the error body `{"error": {"en": ...}, "error_code", "http_code", "success": false}` with the codes
100 (incorrect client credentials), 110 (incorrect user credentials), 200 (payload error),
400 (incorrect values, e.g. a wrong MFA response), 404 (object not found), 410 (action not
allowed), 429, 500 and 503; and the test logins `synapse_nomfa` / `synapse_good` with password
`test1234` (the latter asks one question, answered `test_answer`). What this module adds is
marked "Assumption"; in brief:

- a refused bank login is HTTP 400, `error_code` "110" (the bank refused the user's credentials);
  a bad or missing oauth key is HTTP 401 with the same code, so only the HTTP status tells them
  apart;
- a locked bank login (`user_hold`) is HTTP 400, `error_code` "410" with the bank's notice;
- a wrong answer gets the same question again (HTTP 202, the same `access_token`); the third
  wrong answer in a login is HTTP 409, `error_code` "400", and ends the `access_token`;
- `user_otp`'s "which phone?" is a plain `question` (Synapse has no other shape): the phone's
  label, its last four digits or `correct` answer it; then comes the code question;
- `user_unsupported` gets an `mfa` whose `type` is `captcha`;
- an `Idempotency-Key` (or Synapse's `X-SP-IDEMPOTENCY-KEY`) repeated on a POST replays the first
  answer and is counted in `duplicate_requests`.

The ACH-US login call sleeps `latency_seconds` (plus `SLOW_JOB_SECONDS` for `user_slow`) before it
answers; so does every MFA answer.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
OAUTH_EXPIRES_IN = 7200

# Synapse's documented test logins (any bank_name), beside the shared test users.
HOOK_PASSWORD = "test1234"
HOOK_NO_MFA = "synapse_nomfa"
HOOK_MFA = "synapse_good"
HOOK_ANSWER = "test_answer"
# The seed's own example question.
SEED_QUESTION = "I heard you don't like questions so can I ask you a question anyway?"

HOLD_MESSAGE = (
    "Your bank has locked online access to this account. Call your bank or log in to its"
    " website to unlock it, then link the account again."
)
BAD_LOGIN_MESSAGE = "The username or password provided were not correct."
MFA_FAILED_MESSAGE = "Incorrect Values Supplied: the MFA answers were not correct."

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
    HOOK_MFA: (Question(SEED_QUESTION, answers=frozenset({HOOK_ANSWER})),),
    HOOK_NO_MFA: (),
}


@dataclass
class Node:
    node_id: str
    user_id: str
    nickname: str
    account_class: str
    account_num: str
    amount: str
    created_ms: int

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


# Assumption: the accounts behind every successful sandbox login (the seed's checking account and
# a savings account beside it).
ACCOUNTS = (
    ("SynapsePay Test Checking Account - 8901", "CHECKING", "8901", "800.00"),
    ("SynapsePay Test Savings Account - 2345", "SAVINGS", "2345", "1500.00"),
)


@dataclass
class Login:
    """One ACH-US bank login in MFA: its questions, where it stands, its wrong answers."""

    access_token: str
    user_id: str
    script: tuple[Question, ...]
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


@dataclass
class SynapseSandbox(ProviderSandbox):
    """Synapse's state for one sandbox process: users, their nodes, logins in MFA, keys seen."""

    PREFIX = "/synapse"

    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # user _id -> {"refresh_token", "oauth_keys", "body"}
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    logins: dict[str, Login] = field(default_factory=dict)
    replies: dict[str, asyncio.Future[Reply]] = field(default_factory=dict)

    def route_table(self) -> Sequence[RouteSpec]:
        nodes = "/v3.1/users/{user_id}/nodes"
        return (
            ("/v3.1/users", "POST", self.create_user),
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
        if not request.headers.get(USER_IP_HEADER, "").strip():
            raise refusal(400, PAYLOAD_ERROR, "X-SP-USER-IP is required.")

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
            self.users[user_id] = {"body": user, "oauth_keys": set()}
            return 200, user

        return await self._once(request, user_id, make)

    async def oauth(self, request: Request) -> Response:
        body = await json_object(request, PAYLOAD_ERROR)
        user_id = request.path_params["user_id"]
        user = self.users.get(user_id)
        if user is None:
            raise refusal(404, "404", "User not found.")
        if body.get("refresh_token") != user["body"]["refresh_token"]:
            raise refusal(401, "110", "refresh_token is invalid or expired.")
        oauth_key = f"oauth_{secrets.token_hex(16)}"
        user["oauth_keys"].add(oauth_key)
        now = int(self.clock())
        return JSONResponse(
            {
                "client_id": CLIENT_ID,
                "client_name": CLIENT_NAME,
                "expires_at": str(now + OAUTH_EXPIRES_IN),
                "expires_in": str(OAUTH_EXPIRES_IN),
                "oauth_key": oauth_key,
                "refresh_expires_in": 4,
                "refresh_token": user["body"]["refresh_token"],
                "scope": ["USER|PATCH", "USER|GET", "NODES|POST", "NODES|GET", "NODE|DELETE"],
                "user_id": user_id,
            }
        )

    def _user(self, request: Request) -> str:
        """The path's user, checked against the oauth key of `X-SP-USER`."""
        user_id: str = request.path_params["user_id"]
        user = self.users.get(user_id)
        if user is None:
            raise refusal(404, "404", "User not found.")
        oauth_key = request.headers.get(USER_HEADER, "").partition("|")[0]
        if oauth_key not in user["oauth_keys"]:
            # Assumption: Synapse's answer to a missing, wrong or expired oauth key.
            raise refusal(401, "110", "Error in oauth_key. oauth_key expired or invalid.")
        return user_id

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
        bank_id, bank_pw = info["bank_id"], info["bank_pw"]
        script_name: str
        if bank_id in (HOOK_NO_MFA, HOOK_MFA):
            script_name = bank_id if bank_pw == HOOK_PASSWORD else Scenario.INVALID
        else:
            script_name = scenario_for(bank_id, bank_pw)
        slow = script_name == Scenario.SLOW
        # A bank login is one long call (the seed advises a timeout "a little over 300sec").
        await self.sleep(self.job_seconds(slow))
        if script_name == Scenario.INVALID:
            raise refusal(400, "110", BAD_LOGIN_MESSAGE)
        if script_name == Scenario.HOLD:
            raise refusal(400, "410", HOLD_MESSAGE)
        script = SCRIPTS[script_name]
        if not script:
            return self._linked(user_id)
        login = Login(access_token=f"fake_{secrets.token_hex(15)}", user_id=user_id, script=script)
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
            raise refusal(409, "410", "This MFA question was already answered.")
        if not question.accepts(answer):
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
        return self._linked(user_id)

    def _linked(self, user_id: str) -> Reply:
        created_ms = int(self.clock() * 1000)
        for nickname, account_class, account_num, amount in ACCOUNTS:
            node = Node(
                object_id(), user_id, nickname, account_class, account_num, amount, created_ms
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
        return JSONResponse(self._node(request).body())

    async def delete_node(self, request: Request) -> Response:
        node = self._node(request)
        del self.nodes[node.node_id]
        # Assumption: a deleted node answers with its body, now inactive.
        return JSONResponse(node.body() | {"is_active": False})


async def _replied(make: Callable[[], Awaitable[Reply]]) -> Reply:
    try:
        return await make()
    except Refused as refused:
        return reply_to(refused)


def create_sandbox(latency_seconds: float) -> SynapseSandbox:
    return SynapseSandbox(latency_seconds=latency_seconds)
