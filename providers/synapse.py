"""The Synapse bank-login (ACH-US node) API adapter.

Synapse links a bank account by logging in to the bank on the user's behalf: linkflow creates a
Synapse user (`POST /v3.1/users`), gets it an oauth key (`POST /v3.1/oauth/{user_id}`), then posts
the bank login to `POST /v3.1/users/{user_id}/nodes`. That one call answers only when the bank
has: HTTP 200 with the account nodes, or HTTP 202 with one MFA question (`mfa.access_token`,
`mfa.message`, `mfa.type`). Each answer goes to the same path as `{"access_token", "mfa_answer"}`
and gets the next question or the nodes. There is no job to poll, so `poll()` returns what the
last call said, kept in the session.

References (Synapse's own; the published word wins over our guesses):

- "ACH-US MFA" (add-ach-us-node-via-bank-logins-mfa), the seed, kept in
  tests/fixtures/documents/synapse_ach_us_mfa.txt: the 200 and 202 bodies, the answer body.
- "Errors" (docs.synapsefi.com/docs/errors) and the client libraries' error tables
  (SynapseFI/SynapsePy `synapsepy/errors.py`, SynapseFI/SynapseGo): every `error_code`.
- "Account Aggregation Errors" (old-docs.synapsefi.com/docs/a-aggregation-common-errors) and
  "Account Aggregation Sandbox Values": a bank login's and a refresh's results as (HTTP code,
  error code) pairs; a refresh is `GET .../nodes/{node_id}?force_refresh=yes`.
- "OAuth & Fingerprint" (docs.synapsepay.com/docs/oauth-resources), "Create OAuth Key"
  (docs.synapsefi.com/api-references/oauth/oauth-via-refresh-token) and the help article "My
  oauth key keeps expiring": the key expires (`expires_in`, `expires_at`; two hours), a new one
  comes from the refresh token, which expires after some uses and is read again with
  `GET /v3.1/users/{user_id}`. SynapsePy's `User._do_request` and SynapseGo's `User.do` renew the
  key when a call is refused with `error_code` 110, and read the user's refresh token again when
  `/oauth` refuses theirs with 400.
- "Register New Fingerprint" (docs.synapsefi.com/docs/register-new-fingerprint): an unregistered
  fingerprint on `/oauth` answers 202, `error_code` 10, with `phone_numbers` for a PIN flow.

Synapse states its results as an HTTP code and an `error_code` together ("our errors are a
combination of an HTTP Status Code and an Error Code"), and one code means different things under
different HTTP codes (`error_code` 500 under HTTP 402 is a bank asking for the user, under 500 a
server error), so the status word is the pair `http_code:error_code` ("402:500").

The session keeps what later calls need, months later: the user (`user_id`), the device
(`fingerprint`), the oauth key with its expiry (`oauth_key`, `oauth_expires_at`), the refresh
token (`refresh_token`) and the end user's IP (`user_ip`, when the link request gave one). Every
request carries `X-SP-GATEWAY: client_id|client_secret`, `X-SP-USER: oauth_key|fingerprint` and
`X-SP-USER-IP` (the end user's, else the configured fallback). A refusal quotes Synapse's
`error_code`, never its `error.en` text (it goes into Temporal history).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, ClassVar, Self, TypeVar

import httpx

from linkflow.config import ProviderSettings
from linkflow.models import (
    Account,
    Challenge,
    ChallengeAnswer,
    ChallengeKind,
    LinkReason,
    LinkRequest,
    Provider,
)
from providers.adapter import HttpAdapter, answers_for_the_round
from providers.base import ProviderState
from providers.errors import LinkFailure, ProviderRejectedRequest, ProviderUnavailable
from providers.http import DEFAULT_TIMEOUT, raise_for_provider_status
from providers.json_fields import object_or_empty, text
from providers.privacy import UNREADABLE_WORD, opaque_id, provider_word
from providers.status import (
    Outcome,
    StatusTable,
    challenged,
    final,
    linked,
    needs_user,
    transient,
)

# The seed: "Bank logins can take awhile sometimes. We recommend keeping your timeout window a
# little over 300sec." Used for the bank-login, MFA-answer and refresh calls.
LOGIN_READ_TIMEOUT_SECONDS = 330.0
LOGIN_TIMEOUT = httpx.Timeout(
    connect=DEFAULT_TIMEOUT.connect,
    read=LOGIN_READ_TIMEOUT_SECONDS,
    write=DEFAULT_TIMEOUT.write,
    pool=DEFAULT_TIMEOUT.pool,
)
DEFAULT_BANK_NAME = "fake"
DEFAULT_USER_IP = "127.0.0.1"
# An oauth key this close to its `expires_at` is renewed before it is used.
RENEW_MARGIN_SECONDS = 60.0

# Status words: Synapse's `http_code:error_code`.
LINKED = "200:0"
MFA_PENDING = "202:10"
DEVICE_NOT_REGISTERED = "202:10:phone_numbers"
BANK_LOGIN_REFUSED = "400:200"
RELINK_NEEDED = "401:110"
NO_ACH_ACCOUNT = "402:460"
BANK_NEEDS_USER = "402:500"
MFA_ANSWERS_REFUSED = "409:400"
NOT_ALLOWED = "400:410"
# What links from before the pair words stored (their `error_code` alone), read as the pairs.
LEGACY_WORDS = {"0": LINKED, "10": MFA_PENDING, "410": BANK_NEEDS_USER}

HOLD_MESSAGE = (
    "Your bank needs your attention before it lets Synapse in (a locked login or a notice to"
    " respond to). Sort it out with your bank, then link the account again."
)
DEVICE_MESSAGE = (
    "Synapse does not recognise the device linkflow signs in from for this link and wants a PIN"
    " sent to the phone or email on the Synapse user, a step linkflow cannot complete. The"
    " operator must restore the link's device fingerprint or register it with Synapse; then"
    " resolve the hold."
)

ERROR_CODES = StatusTable(
    "Synapse",
    "http_code:error_code",
    {
        LINKED: linked("Your bank account is connected."),
        MFA_PENDING: challenged("Your bank needs you to answer a security question."),
        # "Mostly always for bad user credentials", says Synapse, though it also means a bank
        # Synapse does not support.
        BANK_LOGIN_REFUSED: final(
            LinkReason.INVALID_CREDENTIALS,
            "Your bank did not accept that username and password (or Synapse cannot log in to"
            " this bank). Check them and try again.",
        ),
        # A refresh's "Bad credentials: update the user's credentials by re-linking"; a refused
        # oauth key answers the same and is renewed first.
        RELINK_NEEDED: final(
            LinkReason.INVALID_CREDENTIALS,
            "Your bank no longer accepts the saved username and password. Enter them again.",
        ),
        NO_ACH_ACCOUNT: final(
            LinkReason.INSTITUTION_UNAVAILABLE,
            "Synapse found no checking or savings account it can link at this bank.",
        ),
        BANK_NEEDS_USER: needs_user(LinkReason.PROVIDER_HOLD, HOLD_MESSAGE),
        MFA_ANSWERS_REFUSED: final(
            LinkReason.MFA_FAILED,
            "Your bank did not accept the answers to its security questions.",
        ),
        # "Action not allowed on the object (either you do not have permissions or the action on
        # this object is not supported)"; for a refresh, "Refresh is not supported for the
        # selected bank (e.g. Ally)". Not a hold: nothing the user does changes it.
        NOT_ALLOWED: final(
            LinkReason.INSTITUTION_UNAVAILABLE,
            "Synapse does not allow this for your bank account (for instance, it cannot refresh"
            " accounts at this bank). Link the account another way.",
        ),
        DEVICE_NOT_REGISTERED: needs_user(LinkReason.PROVIDER_HOLD, DEVICE_MESSAGE),
        "429:429": transient("Synapse is receiving too many requests right now."),
        "500:500": transient("Synapse had an internal error (or an unknown refresh error)."),
        "503:503": transient("Synapse or the bank is temporarily unavailable."),
    },
)
# Synapse's codes that mean our own request is wrong (client keys, user credentials, fingerprint,
# payload, permissions, a missing object, an idempotency conflict, a failed request) when they
# come as no pair of the table above.
REQUEST_ERROR_CODES = frozenset({"100", "110", "120", "200", "300", "404", "450", "460"})
# Only these HTTP statuses carry a bank login's result in an error body; any other refusal (a
# 401 for an expired oauth key, say) is about our request.
LOGIN_RESULT_HTTP = frozenset({400, 402, 409})
# `/oauth`'s refusal of a stale refresh token (SynapsePy and SynapseGo then read the user's
# current one); 110 is taken the same way.
STALE_REFRESH_TOKEN_CODES = frozenset({"400", "110"})

MFA_TYPES: dict[str, ChallengeKind] = {"question": ChallengeKind.TEXT}

_ROUND_KEYS = frozenset({"access_token", "round", "mfa_type", "mfa_message", "message"})
T = TypeVar("T")
# A refresh Synapse did not simply do (a refusal, or the bank's MFA), for the table: its HTTP
# code and body.
Refusal = tuple[int, dict[str, Any]]


class DeviceNotRegistered(LinkFailure):
    """`/oauth` asked for the fingerprint PIN flow: the link needs an operator, not a retry."""

    def __init__(self) -> None:
        super().__init__(LinkReason.PROVIDER_HOLD, DEVICE_NOT_REGISTERED, DEVICE_MESSAGE)


def challenge_id(access_token: str, round_number: str) -> str:
    """A challenge id stable within a round and new in every round; the token is not exposed."""
    digest = hashlib.sha256(access_token.encode()).hexdigest()[:16]
    return f"synapse-mfa-{digest}-{round_number}"


def status_word(http_status: int, code: str) -> str:
    """Synapse's result as the table names it: `http_code:error_code`."""
    return f"{http_status}:{code}"


def state_from_session(session: dict[str, str]) -> ProviderState:
    """Where the login stands, as the last Synapse answer (kept in the session) said."""
    raw = session.get("raw_status", "")
    raw = LEGACY_WORDS.get(raw, raw)
    meaning = ERROR_CODES.meanings.get(raw)
    if meaning is None or meaning.outcome is None:
        raise ProviderUnavailable(f"The Synapse login has no known state ({provider_word(raw)}).")
    challenges: list[Challenge] = []
    if meaning.outcome is Outcome.CHALLENGED:
        challenges = [
            Challenge(
                id=challenge_id(session["access_token"], session["round"]),
                kind=MFA_TYPES[session["mfa_type"]],
                prompt=session["mfa_message"],
            )
        ]
    return ProviderState(
        outcome=meaning.outcome,
        raw_status=raw,
        session=dict(session) | {"raw_status": raw},
        challenges=challenges,
        reason=meaning.reason,
        message=session.get("message") or meaning.message,
    )


def state_from_response(
    http_status: int, body: dict[str, Any], session: dict[str, str]
) -> ProviderState:
    """Read Synapse's answer to a bank login, an MFA answer or a refresh; raise for failures."""
    code = synapse_code(body)
    word = status_word(http_status, code) if code is not None else None
    if word not in ERROR_CODES.meanings and (
        code in REQUEST_ERROR_CODES or (code is None and http_status >= 400)
    ):
        raise ProviderRejectedRequest(
            f"Synapse refused the request (HTTP {http_status}, error_code {code}).",
            http_status,
            error_code=code,
        )
    word, meaning = ERROR_CODES.meaning_of(word)
    outcome = ERROR_CODES.outcome_of(word, meaning)
    kept = without_round(session) | {"raw_status": word}
    if outcome is Outcome.CHALLENGED:
        mfa = body.get("mfa")
        if not isinstance(mfa, dict) or not text(mfa.get("access_token")):
            raise ProviderUnavailable("Synapse asked for MFA without an access_token.")
        mfa_type = mfa.get("type")
        if not isinstance(mfa_type, str) or mfa_type not in MFA_TYPES:
            raise LinkFailure(
                LinkReason.UNSUPPORTED_MFA,
                word,
                "Your bank asks for a kind of verification linkflow cannot show"
                f" ({provider_word(mfa_type)}). Link this account another way.",
            )
        kept |= {
            "access_token": str(mfa["access_token"]),
            "round": str(int(session.get("round", "0")) + 1),
            "mfa_type": mfa_type,
            "mfa_message": text(mfa.get("message")) or meaning.message,
        }
    elif outcome is Outcome.ACTION_REQUIRED:
        # The bank's notice is meant for the user (it says what to do); it is kept as the
        # state's message, never put into an error.
        kept["message"] = _bank_notice(body) or meaning.message
    return state_from_session(kept)


def without_round(session: dict[str, str]) -> dict[str, str]:
    """The session without the keys of an MFA round or a hold's notice."""
    return {k: v for k, v in session.items() if k not in _ROUND_KEYS}


def oauth_fields(body: dict[str, Any], refresh_token: str, now: float) -> dict[str, str]:
    """What an `/oauth` answer gives the session: the key, its expiry, the refresh token."""
    oauth_key = text(body.get("oauth_key"))
    if not oauth_key:
        raise ProviderUnavailable("Synapse answered /oauth without an oauth_key.")
    # "When the OAuth Key is refreshed, a new refresh token might be issued as well."
    fields = {
        "oauth_key": oauth_key,
        "refresh_token": text(body.get("refresh_token")) or refresh_token,
    }
    expires_at = _seconds(body.get("expires_at"))
    expires_in = _seconds(body.get("expires_in"))
    if expires_at is None and expires_in is not None:
        expires_at = now + expires_in
    if expires_at is not None:
        fields["oauth_expires_at"] = str(int(expires_at))
    return fields


class SynapseAdapter(HttpAdapter):
    """linkflow's `ProviderAdapter` for Synapse.

    Session: `user_id`, `fingerprint`, `oauth_key`, `oauth_expires_at`, `refresh_token`,
    `raw_status`, `user_ip` when the link request named the end user's IP, and while MFA is
    pending `access_token`, `round`, `mfa_type`, `mfa_message` (`message` for a hold).
    """

    provider = Provider.SYNAPSE
    STATUSES = ERROR_CODES
    CHALLENGE_KINDS: ClassVar[Mapping[str, ChallengeKind]] = MFA_TYPES
    ERROR_CODE_FIELD = ("error_code",)
    # Synapse's own idempotency header (its client libraries send it on POSTs).
    IDEMPOTENCY_HEADER = "X-SP-IDEMPOTENCY-KEY"

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        fingerprint: str,
        user_ip: str = DEFAULT_USER_IP,
        bank_name: str = DEFAULT_BANK_NAME,
        renew_margin_seconds: float = RENEW_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # The configured IP is only the fallback: a session with the end user's IP overrides it.
        super().__init__(
            base_url,
            headers={"X-SP-GATEWAY": f"{client_id}|{client_secret}", "X-SP-USER-IP": user_ip},
            transport=transport,
        )
        self._fingerprint = fingerprint
        self._bank_name = bank_name
        self._renew_margin_seconds = renew_margin_seconds
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: ProviderSettings) -> Self:
        endpoint = settings.endpoint(
            Provider.SYNAPSE,
            {
                "client_id": "sandbox-client-id",
                "client_secret": "sandbox-client-secret",
                "fingerprint": "sandbox-fingerprint",
                "user_ip": DEFAULT_USER_IP,
            },
        )
        return cls(
            endpoint.base_url,
            endpoint.keys["client_id"],
            endpoint.keys["client_secret"],
            fingerprint=endpoint.keys["fingerprint"],
            user_ip=endpoint.keys["user_ip"],
        )

    # ------------------------------------------------------------------ the user's headers

    def _headers(self, session: Mapping[str, str], *, with_key: bool = True) -> dict[str, str]:
        """`X-SP-USER` (the link's own fingerprint) and the end user's `X-SP-USER-IP`."""
        oauth_key = session.get("oauth_key", "") if with_key else ""
        headers = {"X-SP-USER": f"{oauth_key}|{session.get('fingerprint') or self._fingerprint}"}
        if session.get("user_ip"):
            headers["X-SP-USER-IP"] = session["user_ip"]
        return headers

    # ------------------------------------------------------------------ the oauth key

    def _renewal_due(self, session: Mapping[str, str]) -> bool:
        """Whether the session's oauth key lapses within the margin (or there is none).

        A link from before linkflow kept the expiry has none: its key is renewed when refused.
        """
        if not session.get("oauth_key"):
            return True
        expires_at = _seconds(session.get("oauth_expires_at"))
        return expires_at is not None and expires_at - self._clock() <= self._renew_margin_seconds

    async def _post_oauth(self, session: Mapping[str, str], refresh_token: str) -> dict[str, str]:
        """`POST /v3.1/oauth/{user_id}`: a new key, or the fingerprint PIN flow's first answer."""
        response = await self._request(
            "POST",
            f"/v3.1/oauth/{session['user_id']}",
            body={"refresh_token": refresh_token},
            headers=self._headers(session, with_key=False),
        )
        body: Any = None
        with contextlib.suppress(ValueError):
            body = response.json()
        if not isinstance(body, dict):
            raise ProviderUnavailable("Synapse answered /oauth without a JSON object.")
        if response.status_code == 202 and "phone_numbers" in body:
            raise DeviceNotRegistered
        return oauth_fields(body, refresh_token, self._clock())

    async def _renewed(self, session: dict[str, str]) -> dict[str, str]:
        """The session with a new oauth key, from its refresh token or, if Synapse refuses that
        one as stale, from the one `GET /v3.1/users/{user_id}` gives now."""
        refresh_token = session.get("refresh_token", "")
        if refresh_token:
            try:
                return session | await self._post_oauth(session, refresh_token)
            except ProviderRejectedRequest as refused:
                if refused.error_code not in STALE_REFRESH_TOKEN_CODES:
                    raise
        user = await self._object(
            "GET",
            f"/v3.1/users/{session['user_id']}",
            headers=self._headers(session, with_key=False),
        )
        refresh_token = text(user.get("refresh_token")) or ""
        if not refresh_token:
            raise ProviderUnavailable("Synapse showed the user without its refresh_token.")
        return session | await self._post_oauth(session, refresh_token)

    async def _fresh(self, session: dict[str, str]) -> dict[str, str]:
        """The session, its oauth key renewed first if it lapses within the margin."""
        return await self._renewed(session) if self._renewal_due(session) else session

    async def _as_user(
        self, session: dict[str, str], call: Callable[[dict[str, str], bool], Awaitable[T]]
    ) -> tuple[dict[str, str], T]:
        """`call` with a live oauth key: renewed before it lapses, and once more if Synapse
        refuses it (HTTP 401, `error_code` 110). `call` is told whether it is that retry."""
        session = await self._fresh(session)
        try:
            return session, await call(session, False)
        except ProviderRejectedRequest as refused:
            if (refused.status_code, refused.error_code) != (401, "110"):
                raise
        session = await self._renewed(session)
        return session, await call(session, True)

    # ------------------------------------------------------------------ the bank login

    async def _login_call(
        self, session: dict[str, str], body: dict[str, Any], idempotency_key: str
    ) -> ProviderState:
        """A bank login or an MFA answer: one long call whose answer is the login's new state.

        Its refusals (HTTP 400, 402 or 409 with an `error_code`) are login results too: a wrong
        password, a failed MFA, a bank asking for the user.
        """

        async def post(current: dict[str, str], retried: bool) -> ProviderState:
            path = f"/v3.1/users/{current['user_id']}/nodes"
            # A refused first try may be stored under its key: the retry is a new request.
            key = f"{idempotency_key}:renewed" if retried else idempotency_key
            response = await self._send(
                "POST",
                path,
                body=body,
                headers=self._headers(current),
                idempotency_key=key,
                timeout=LOGIN_TIMEOUT,
            )
            data: Any = None
            with contextlib.suppress(ValueError):
                data = response.json()
            if not isinstance(data, dict) or response.status_code not in LOGIN_RESULT_HTTP:
                raise_for_provider_status(response, self.name, code_field=self.ERROR_CODE_FIELD)
            if not isinstance(data, dict):
                raise ProviderUnavailable(f"Synapse answered POST {path} without a JSON object.")
            return state_from_response(response.status_code, data, current)

        try:
            _, state = await self._as_user(session, post)
        except DeviceNotRegistered:
            return state_from_session(
                without_round(session) | {"raw_status": DEVICE_NOT_REGISTERED}
            )
        return state

    def _bank_login_body(self, request: LinkRequest) -> dict[str, Any]:
        credentials = request.credentials
        return {
            "type": "ACH-US",
            "info": {
                "bank_id": credentials.username,
                "bank_pw": credentials.password.get_secret_value(),
                "bank_name": request.options.institution_code or self._bank_name,
            },
        }

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        session = {"fingerprint": self._fingerprint} | _user_ip(request, {})
        # Assumption(synapse): one Synapse user per link, created with placeholder contact
        # details (an opaque login email, phone 000.000.0000) -- Synapse requires them, but a link
        # request carries none; so its fingerprint PIN flow could reach no one (see DEVICE_MESSAGE).
        login_name = opaque_id("synapse-login", link_id)
        user = await self._object(
            "POST",
            "/v3.1/users",
            body={
                "logins": [{"email": f"{login_name}@users.linkflow.invalid"}],
                "phone_numbers": ["000.000.0000"],
                "legal_names": ["Linkflow User"],
                "extra": {"supp_id": request.user_ref, "cip_tag": 1, "is_business": False},
            },
            headers=self._headers(session, with_key=False),
            idempotency_key=f"{idempotency_key}:user",
        )
        user_id, refresh_token = text(user.get("_id")), text(user.get("refresh_token"))
        if not user_id or not refresh_token:
            raise ProviderUnavailable("Synapse created a user but did not say its id.")
        session |= {"user_id": user_id, "refresh_token": refresh_token}
        return await self._login_call(
            session, self._bank_login_body(request), f"{idempotency_key}:nodes"
        )

    async def poll(self, session: dict[str, str]) -> ProviderState:
        # Synapse has no job to read: each call answered with the login's new state.
        return state_from_session(session)

    async def answer(
        self,
        session: dict[str, str],
        challenges: list[Challenge],
        answers: list[ChallengeAnswer],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        current = state_from_session(session)
        given = answers_for_the_round(current, answers)
        if not given:
            return current
        return await self._login_call(
            session,
            {
                "access_token": session["access_token"],
                "mfa_answer": given[0].value.get_secret_value(),
            },
            idempotency_key,
        )

    # ------------------------------------------------------------------ the later life

    async def refresh(self, session: dict[str, str], *, idempotency_key: str) -> ProviderState:
        """Ask Synapse to refresh every ACH-US node from the bank (`?force_refresh=yes`)."""
        if session.get("raw_status") == MFA_PENDING:
            return state_from_session(session)
        try:
            session, nodes = await self._as_user(session, self._list_nodes)
            if not nodes:
                # Nothing linked at Synapse (a hold met at the first login): as it was.
                return state_from_session(session)
            for node in nodes:

                async def force(
                    current: dict[str, str], retried: bool, node_id: object = node["_id"]
                ) -> Refusal | None:
                    return await self._force_refresh(current, node_id, retried)

                session, refused = await self._as_user(session, force)
                if refused is not None:
                    return state_from_response(*refused, session)
        except DeviceNotRegistered:
            return state_from_session(
                without_round(session) | {"raw_status": DEVICE_NOT_REGISTERED}
            )
        return state_from_session(without_round(session) | {"raw_status": LINKED})

    async def _force_refresh(
        self, session: dict[str, str], node_id: object, retried: bool
    ) -> Refusal | None:
        """`GET .../nodes/{node_id}?force_refresh=yes`: None when the node was refreshed, else
        Synapse's refusal (its HTTP code and body) for the table. A first 401 with `error_code`
        110 is raised, so that the key is renewed; after that, it is the bank's "re-link"."""
        response = await self._send(
            "GET",
            f"/v3.1/users/{session['user_id']}/nodes/{node_id}",
            params={"force_refresh": "yes"},
            headers=self._headers(session),
            timeout=LOGIN_TIMEOUT,
        )
        body: Any = None
        with contextlib.suppress(ValueError):
            body = response.json()
        # Assumption(synapse): a forced refresh that needs the bank's MFA answers as a bank login
        # does (HTTP 202, error_code 10, `mfa`) -- Synapse's pages list no MFA for a refresh.
        if response.status_code == 202 and isinstance(body, dict) and "mfa" in body:
            return response.status_code, body
        if response.is_success:
            return None
        refresh_results = {*LOGIN_RESULT_HTTP, 401} if retried else LOGIN_RESULT_HTTP
        if not isinstance(body, dict) or response.status_code not in refresh_results:
            raise_for_provider_status(response, self.name, code_field=self.ERROR_CODE_FIELD)
        if not isinstance(body, dict):
            raise ProviderUnavailable("Synapse refused a refresh without a JSON object.")
        return response.status_code, body

    async def reauthenticate(
        self,
        link_id: str,
        request: LinkRequest,
        session: dict[str, str],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        """Log in to the bank again as the Synapse user this link created (never a second one)."""
        if not session.get("user_id"):
            return await self.login(link_id, request, idempotency_key=idempotency_key)
        session = _user_ip(request, without_round(session))
        # Assumption(synapse): a bank login posted again for a user who has that bank's nodes
        # updates those nodes, not duplicates -- Synapse's references do not say what a repeated
        # bank login does to existing nodes.
        return await self._login_call(
            session, self._bank_login_body(request), f"{idempotency_key}:nodes"
        )

    async def resolve_hold(self, session: dict[str, str], *, idempotency_key: str) -> ProviderState:
        """A device hold is tried again (the operator may have registered the fingerprint); a
        bank's hold is read back (the user links again once the bank lets Synapse in)."""
        if session.get("raw_status") == DEVICE_NOT_REGISTERED:
            return await self.refresh(session, idempotency_key=idempotency_key)
        return state_from_session(session)

    # ------------------------------------------------------------------ nodes

    async def _list_nodes(self, session: dict[str, str], retried: bool) -> list[dict[str, Any]]:
        listed = await self._object(
            "GET", f"/v3.1/users/{session['user_id']}/nodes", headers=self._headers(session)
        )
        nodes = listed.get("nodes") or []
        return [node for node in nodes if isinstance(node, dict) and node.get("type") == "ACH-US"]

    async def fetch_accounts(self, session: dict[str, str]) -> list[Account]:
        _, nodes = await self._as_user(session, self._list_nodes)
        return [account_from_node(node) for node in nodes]

    async def revoke(self, session: dict[str, str]) -> None:
        # Assumption(synapse): removing the link is deleting each of the user's ACH-US nodes --
        # Synapse documents deleting a node, and no way to remove a bank login as a whole.
        session, nodes = await self._as_user(session, self._list_nodes)
        for node in nodes:
            path = f"/v3.1/users/{session['user_id']}/nodes/{node['_id']}"

            async def delete(current: dict[str, str], retried: bool, path: str = path) -> None:
                await self._object("DELETE", path, headers=self._headers(current))

            await self._unless_gone(self._as_user(session, delete))


def account_from_node(node: dict[str, Any]) -> Account:
    """One of Synapse's ACH-US nodes as a linkflow `Account`."""
    info = object_or_empty(node.get("info"))
    balance = object_or_empty(info.get("balance"))
    account_num = text(info.get("account_num"))
    amount = balance.get("amount")
    return Account(
        id=str(node.get("_id")),
        name=text(info.get("nickname")) or text(info.get("bank_name")) or "Bank account",
        kind=text(info.get("class")) or "ACH-US",
        # Synapse sends only the end of the number; linkflow keeps at most four digits.
        mask=account_num[-4:] if account_num else None,
        # The seed writes amounts as strings ("800.00"); Synapse's node examples elsewhere as
        # numbers (0.0). Either is kept as the decimal it is.
        balance=text(amount) or (str(amount) if isinstance(amount, int | Decimal) else None),
        currency=text(balance.get("currency")),
    )


def synapse_code(body: dict[str, Any]) -> str | None:
    """Synapse's `error_code`, as a word (it is "0", "10", "110", ...)."""
    code = body.get("error_code")
    word = provider_word(code)
    return None if code is None or word == UNREADABLE_WORD else word


def _bank_notice(body: dict[str, Any]) -> str:
    """The bank's own words in a refusal (`error.en`), meant for the user."""
    error = body.get("error")
    return (text(error.get("en")) if isinstance(error, dict) else None) or ""


def _user_ip(request: LinkRequest, session: dict[str, str]) -> dict[str, str]:
    """The session with the end user's IP from the request, when it names one."""
    if request.end_user_ip is None:
        return session
    return session | {"user_ip": str(request.end_user_ip)}


def _seconds(value: object) -> float | None:
    """A number of seconds Synapse wrote as a number or a string of digits, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return None
