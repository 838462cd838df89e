"""Unbill's bill-pay API as the sandbox speaks it, under `/unbill`.

linkflow's Unbill adapter is tested against this module over real HTTP, so it speaks Unbill's
contract. The seed document (Unbill's "Auth Object" page, kept in
tests/fixtures/documents/unbill_auth_object.txt) gives the *auth* object (`_id`,
`status.type`, `company` with `_id`, `name` and `logo`), its status words `verified`,
`authenticate`, `hold` (with a `reason` of `userMessage` and `code`, lifted with
`POST /auth/{authId}/fix-hold`) and `mfa-required` (with `mfa.method` `questions`, `code` or
`prompt` and `mfa.mfa`, a list of `question` + `identifier`), and its test hooks: the statuses
`verified`, `authenticate`, `hold` (code `account_issue_accept_toc`), `mfa-required-questions`,
`mfa-required-code` and `mfa-required-prompt`, accepted here as the `status` field of the create
request and as the username (password `pass_good`). As the seed says, a test auth is `verified`
"as long as no other valid auth status is entered": a create request whose `status` holds anything
but one of those words (an unknown word, an empty one, a number, null) makes a `verified` auth,
whatever its credentials. A request with no `status` tells the shared test users' stories.

Unbill's public reference (its Slate docs, github.com/unbill/slate) adds: `Authorization: Bearer
<API key>` on every request; `POST /client` `{"identifier"}` -> `{"clientId"}` (creates or returns
the client); `GET /auth/list/{clientId}` -> `{"data": [auth, ...]}`, the one documented way to
read auths; `POST /auth/{authId}/answer-questions` `{"answers": [{"answer", "identifier"}]}` ->
`{"success": true}`; `POST /auth/{authId}/fix-hold` and `DELETE /auth/{authId}` ->
`{"success": true}`; `GET /bill/list/{clientId}` -> `{"data": [{"bill": {...}, "payments": []}]}`;
errors as 4xx with `{"message": "..."}`. There is no route that reads one auth. Everything else is
an assumption, marked `# Assumption(unbill): ...` where it appears; in brief:

- `POST /auth` `{"userId", "companyId", "form": {"username", "password"}, "status"?}` (the route
  and fields of Unbill's older reference, `userId` being the clientId; today auths are created in
  Unbill's Connect widget) creates an auth and answers with the auth object;
- `pending` is the status while Unbill is signing in to the company (the document has no word
  for it): a new auth, an answered MFA round and a fixed hold are `pending` for
  `latency_seconds`, then resolve on the next read;
- a `code` MFA is answered through `answer-questions` like `questions` (one item, its
  `identifier` with the code); a `prompt` MFA has one item and no answer: the user approves on
  a device, which this sandbox does by itself `PROMPT_APPROVAL_PERIODS` latency periods after
  the prompt is first shown;
- the third wrong MFA round turns the auth to `authenticate` (the login must be redone);
- `user_unsupported` gets an MFA `method` Unbill does not document (`captcha`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.skeleton import (
    ProviderSandbox,
    Refused,
    RouteSpec,
    bearer_token,
    idempotency_key,
    json_object,
    object_id,
)
from sandbox.users import (
    GOOD_PASSWORD,
    MAX_WRONG_ANSWERS,
    OTP_PHONES,
    Scenario,
    is_correct,
    otp_code_prompt,
    scenario_for,
)

# Status words: the seed's four, and the sandbox's own word for a job in progress.
VERIFIED = "verified"
AUTHENTICATE = "authenticate"
HOLD = "hold"
MFA_REQUIRED = "mfa-required"
# Assumption(unbill): `pending` is the word while Unbill signs in to the company -- the seed
# documents no in-progress word.
PENDING = "pending"

# The seed's example company, exactly; it is the sandbox's test company.
TEST_COMPANY: dict[str, Any] = {
    "_id": "579b695decea110719b1874d",
    "name": "Netflix",
    "logo": {
        "url": "https://s3.amazonaws.com/app-assets.unbill.io-primary/uploads/"
        "utility-provider-logos/7242937ba29042cce61a8e4745269fce.png",
        "background": False,
    },
}
# A second company, from Unbill's auth list example, so that a client can hold auths at two
# companies.
SECOND_COMPANY: dict[str, Any] = {
    "_id": "579b695decea110719b1874e",
    "name": "Time Warner Cable",
    "logo": {
        "url": "https://s3.amazonaws.com/app-assets.unbill.io-primary/uploads/"
        "utility-provider-logos/4c805851c738c006546b234e3c3c793d.png",
        "background": False,
    },
}
COMPANIES = {str(company["_id"]): company for company in (TEST_COMPANY, SECOND_COMPANY)}

# The hold the seed's test hook places ("The account_issue_accept_toc hold code"), with the
# message Unbill's hold-code reference gives for that code.
HOLD_REASON = {
    "userMessage": "Please log in to your account and accept the Terms and Conditions.",
    "code": "account_issue_accept_toc",
}

# How many latency periods a `prompt` waits before the user "approves" it on the device.
PROMPT_APPROVAL_PERIODS = 3


@dataclass(frozen=True)
class MfaSpec:
    """An MFA round Unbill relays from the company; each round gets fresh identifiers."""

    method: str
    questions: tuple[str, ...]

    def issue(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "mfa": [
                {"question": question, "identifier": uuid.uuid4().hex[:8]}
                for question in self.questions
            ],
        }


# The seed's two questions, answered together.
QUESTIONS = MfaSpec("questions", ("What city did you grow up in?", "What is your favorite food?"))
# Assumption(unbill): a `code` round is one item whose `question` says where the code went --
# the seed names the method, not its items.
CODE = MfaSpec("code", (otp_code_prompt(OTP_PHONES[0].value),))
# Assumption(unbill): a `prompt` round is one item telling the user to approve on the device --
# the seed names the method, not its items.
PROMPT = MfaSpec("prompt", ("Approve the sign-in request in the Netflix app on your phone.",))
CAPTCHA = MfaSpec("captcha", ("Type the characters you see in the picture.",))

# A job in progress resolves into an MFA round or a status word.
Step = MfaSpec | str

FIRST_STEPS: dict[Scenario, Step] = {
    Scenario.NO_MFA: VERIFIED,
    Scenario.QUESTION: QUESTIONS,
    Scenario.OTP: CODE,
    Scenario.INVALID: AUTHENTICATE,
    Scenario.HOLD: HOLD,
    Scenario.SLOW: VERIFIED,
    Scenario.UNSUPPORTED: CAPTCHA,
}

# The seed's test hooks: "For Testing set status to ...".
TEST_STATUSES: dict[str, Step] = {
    VERIFIED: VERIFIED,
    AUTHENTICATE: AUTHENTICATE,
    HOLD: HOLD,
    "mfa-required-questions": QUESTIONS,
    "mfa-required-code": CODE,
    "mfa-required-prompt": PROMPT,
}


# A create request that sets no `status` field at all.
NO_TEST_STATUS = object()


def first_step(username: str, password: str, test_status: object) -> tuple[Step, bool]:
    """What a new auth resolves to, and whether it is the slow one.

    A request that sets `status` is a test of Unbill's own: a valid test status is what the auth
    becomes, and anything else makes it `verified`, as the seed says that happens "as long as no
    other valid auth status is entered". A request without `status` tells the shared test users'
    stories.
    """
    if test_status is not NO_TEST_STATUS:
        if isinstance(test_status, str) and test_status in TEST_STATUSES:
            return TEST_STATUSES[test_status], False
        return VERIFIED, False
    if username in TEST_STATUSES:
        step = TEST_STATUSES[username] if password == GOOD_PASSWORD else AUTHENTICATE
        return step, False
    scenario = scenario_for(username, password)
    return FIRST_STEPS[scenario], scenario is Scenario.SLOW


@dataclass
class Auth:
    id: str
    client_id: str
    company: dict[str, Any]
    resolves_at: float
    next_step: Step
    status: str = PENDING
    mfa: dict[str, Any] | None = None
    asked: MfaSpec | None = None
    approves_at: float | None = None
    reason: dict[str, str] | None = None
    wrong_answers: int = 0
    bill: dict[str, Any] | None = None

    def advance(self, now: float, latency_seconds: float) -> None:
        """Move on by at most one step per read, so every state is seen at least once."""
        if self.status == PENDING and now >= self.resolves_at:
            self._apply(self.next_step, now, latency_seconds)
        elif (
            self.status == MFA_REQUIRED and self.approves_at is not None and now >= self.approves_at
        ):
            self._apply(VERIFIED, now, latency_seconds)

    def _apply(self, step: Step, now: float, latency_seconds: float) -> None:
        self.mfa = self.reason = None
        self.asked = None
        self.approves_at = None
        if isinstance(step, MfaSpec):
            self.status = MFA_REQUIRED
            self.asked = step
            self.mfa = step.issue()
            if step is PROMPT:
                self.approves_at = now + PROMPT_APPROVAL_PERIODS * latency_seconds
            return
        self.status = step
        if step == HOLD:
            self.reason = dict(HOLD_REASON)
        elif step == VERIFIED and self.bill is None:
            self.bill = self._new_bill()

    def answer(self, answers: dict[str, str], now: float, latency_seconds: float) -> None:
        """Judge one round of answers (already checked to cover every current question)."""
        asked = self.asked
        if asked is None:
            raise Refused(409, "This auth has no questions to answer.")
        right = all(is_correct(value) for value in answers.values())
        self.status, self.mfa, self.asked = PENDING, None, None
        self.resolves_at = now + latency_seconds
        if right:
            self.next_step = VERIFIED
            return
        self.wrong_answers += 1
        # Assumption(unbill): a wrong round gets new questions, and the third turns the auth to
        # `authenticate` -- the reference says nothing of wrong answers.
        self.next_step = AUTHENTICATE if self.wrong_answers >= MAX_WRONG_ANSWERS else asked

    def fix_hold(self, now: float, latency_seconds: float) -> None:
        # Assumption(unbill): after a fixed hold Unbill signs in again (`pending`), then verifies
        # -- the reference says only that fix-hold resumes the services.
        self.status, self.reason = PENDING, None
        self.resolves_at = now + latency_seconds
        self.next_step = VERIFIED

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "_id": self.id,
            "status": {"type": self.status},
            "company": self.company,
        }
        if self.reason is not None:
            body["reason"] = self.reason
        if self.mfa is not None:
            body["mfa"] = self.mfa
        return body

    def _new_bill(self) -> dict[str, Any]:
        # A verified auth has one upcoming bill, in Unbill's bill object shape.
        due = (datetime.now(UTC) + timedelta(days=14)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        due_text = due.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {
            "_id": object_id(),
            "balance": "15.49",
            "dueDate": due_text,
            "payDate": due_text,
            "status": {"type": "upcoming"},
            "settings": {"recurring": "disabled", "schedule": "on-due-date"},
            "company": self.company | {"schedule": "on-due-date"},
        }


@dataclass
class UnbillSandbox(ProviderSandbox):
    """Unbill's state for one sandbox process: clients, auths and the Idempotency-Keys seen."""

    PREFIX = "/unbill"

    # What each test user does here, in this provider's words (the README's table of test users
    # is generated from these; tests/test_provider_contracts.py asserts the stories).
    TEST_USERS: ClassVar[Mapping[str, str]] = {
        "user_good": "`verified`",
        "user_mfa": "two `questions` at once, answered in one update",
        "user_otp": "one `code`",
        "user_bad": "`authenticate`",
        "user_hold": "`hold` (`account_issue_accept_toc`)",
        "user_slow": "`pending` for 3 s",
        "user_unsupported": "a `captcha` method",
    }

    # Client identifier (the app's user reference) -> clientId.
    clients: dict[str, str] = field(default_factory=dict)
    auths: dict[str, Auth] = field(default_factory=dict)

    def route_table(self) -> Sequence[RouteSpec]:
        return (
            ("/client", "POST", self.create_client),
            ("/auth", "POST", self.create_auth),
            ("/auth/list/{client}", "GET", self.list_auths),
            ("/auth/{auth}", "DELETE", self.delete_auth),
            ("/auth/{auth}/answer-questions", "POST", self.answer_questions),
            ("/auth/{auth}/fix-hold", "POST", self.fix_hold),
            ("/bill/list/{client}", "GET", self.list_bills),
        )

    def check(self, request: Request) -> None:
        """Unbill's check on every request: the API key as a bearer token."""
        if bearer_token(request) is None:
            raise Refused(401, "Pass your API key as a bearer token in the Authorization header.")

    def error_response(self, refused: Refused) -> Response:
        return JSONResponse({"message": refused.message}, status_code=refused.status)

    # ------------------------------------------------------------------ helpers

    def _auth(self, request: Request) -> Auth:
        auth = self.auths.get(request.path_params["auth"])
        if auth is None:
            raise Refused(404, "Auth not found.")
        auth.advance(self.clock(), self.latency_seconds)
        return auth

    def _client(self, request: Request) -> str:
        client_id: str = request.path_params["client"]
        if client_id not in self.clients.values():
            raise Refused(404, "Client not found.")
        return client_id

    # ------------------------------------------------------------------ clients

    async def create_client(self, request: Request) -> Response:
        identifier = (await json_object(request)).get("identifier")
        if not isinstance(identifier, str) or not identifier:
            raise Refused(400, "identifier is required.")
        client_id = self.clients.setdefault(identifier, object_id())
        return JSONResponse({"clientId": client_id})

    # ------------------------------------------------------------------ auths

    async def create_auth(self, request: Request) -> Response:
        body = await json_object(request)
        # Assumption(unbill): the older reference's `userId` is the client's `clientId` -- it
        # predates clients.
        client_id = body.get("userId")
        if not isinstance(client_id, str) or client_id not in self.clients.values():
            raise Refused(404, "Client not found.")
        company = COMPANIES.get(str(body.get("companyId")))
        if company is None:
            raise Refused(404, "Company not found.")
        form = body.get("form")
        if not isinstance(form, dict) or not all(
            isinstance(form.get(name), str) and form.get(name) for name in ("username", "password")
        ):
            raise Refused(400, "form must give a username and a password.")
        step, slow = first_step(
            form["username"], form["password"], body.get("status", NO_TEST_STATUS)
        )
        auth = Auth(
            id=object_id(),
            client_id=client_id,
            company=company,
            resolves_at=self.clock() + self.job_seconds(slow),
            next_step=step,
        )
        self.auths[auth.id] = auth
        self.ledger.record(idempotency_key(request), auth.id)
        # Assumption(unbill): the create answer is the auth object -- the older reference answered
        # with a bill or an MFA token, from before the auth object.
        return JSONResponse(auth.body())

    async def list_auths(self, request: Request) -> Response:
        client_id = self._client(request)
        now = self.clock()
        data = []
        for auth in self.auths.values():
            if auth.client_id == client_id:
                auth.advance(now, self.latency_seconds)
                data.append(auth.body())
        return JSONResponse({"data": data})

    async def answer_questions(self, request: Request) -> Response:
        body = await json_object(request)
        # The body is read before the auth so that no await separates the checks below from
        # the change they guard.
        auth = self._auth(request)
        # Recorded before the checks: a retried answer that arrives after the first was
        # accepted is exactly the duplicate worth counting.
        self.ledger.record(idempotency_key(request), auth.id)
        if auth.status != MFA_REQUIRED or auth.mfa is None:
            raise Refused(409, f"The auth is {auth.status}, not {MFA_REQUIRED}.")
        # Assumption(unbill): a `code` round is answered through answer-questions like
        # `questions`, and a `prompt` is not answered at all -- the reference documents the
        # route for questions only.
        if auth.mfa["method"] == PROMPT.method:
            raise Refused(409, "This sign-in is approved on the user's device, not answered.")
        answers = _answers(body.get("answers"))
        current = {item["identifier"] for item in auth.mfa["mfa"]}
        if unknown := set(answers) - current:
            raise Refused(400, f"Not a current question: {', '.join(sorted(unknown))}.")
        if missing := current - set(answers):
            raise Refused(400, f"Answer every question; missing {', '.join(sorted(missing))}.")
        auth.answer(answers, self.clock(), self.latency_seconds)
        return JSONResponse({"success": True})

    async def fix_hold(self, request: Request) -> Response:
        auth = self._auth(request)
        if auth.status != HOLD:
            # Assumption(unbill): fixing an auth that is not on hold is refused -- the reference
            # says only that an unknown authId is an error.
            raise Refused(409, f"The auth is {auth.status}, not {HOLD}.")
        auth.fix_hold(self.clock(), self.latency_seconds)
        return JSONResponse({"success": True})

    async def delete_auth(self, request: Request) -> Response:
        auth = self._auth(request)
        del self.auths[auth.id]
        return JSONResponse({"success": True})

    # ------------------------------------------------------------------ bills

    async def list_bills(self, request: Request) -> Response:
        client_id = self._client(request)
        now = self.clock()
        # Assumption(unbill): a bill is the client's account at a company, so a second auth at the
        # same company (the same person logging in again) finds the one bill already listed --
        # the reference's bill object names its company and no auth.
        bills: dict[str, dict[str, Any]] = {}
        for auth in self.auths.values():
            if auth.client_id != client_id:
                continue
            auth.advance(now, self.latency_seconds)
            if auth.bill is not None and auth.status == VERIFIED:
                bills.setdefault(str(auth.company.get("_id")), auth.bill)
        return JSONResponse({"data": [{"bill": bill, "payments": []} for bill in bills.values()]})


def _answers(items: object) -> dict[str, str]:
    """Read `[{"answer": ..., "identifier": ...}]`, Unbill's shape for MFA answers."""
    if not isinstance(items, list) or not items:
        raise Refused(400, "answers must be a non-empty list of {answer, identifier}.")
    answers: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            raise Refused(400, "Every answer must be {answer, identifier}.")
        identifier, answer = item.get("identifier"), item.get("answer")
        if not isinstance(identifier, str) or not isinstance(answer, str):
            raise Refused(400, "Every answer needs a string answer and identifier.")
        if identifier in answers:
            raise Refused(400, f"answers give {identifier} twice.")
        answers[identifier] = answer
    return answers


def create_sandbox(latency_seconds: float) -> UnbillSandbox:
    return UnbillSandbox(latency_seconds=latency_seconds)
