"""The Synapse bank-login (ACH-US node) API adapter.

Synapse links a bank account by logging in to the bank on the user's behalf: linkflow creates a
Synapse user (`POST /v3.1/users`), gets it an oauth key (`POST /v3.1/oauth/{user_id}`), then posts
the bank login to `POST /v3.1/users/{user_id}/nodes` (Synapse's "ACH-US MFA" page, kept in
tests/fixtures/documents/synapse_ach_us_mfa.txt). That one call answers
only when the bank has: HTTP 200 with the account nodes, or HTTP 202 with one MFA question
(`error_code` "10", `mfa.access_token`, `mfa.message`, `mfa.type`). Each answer goes to the same
path as `{"access_token", "mfa_answer"}` and gets the next question or the nodes. There is no job
to poll, so `poll()` returns what the last call said, kept in the session.

Every request carries `X-SP-GATEWAY: client_id|client_secret`, `X-SP-USER: oauth_key|fingerprint`
and `X-SP-USER-IP`. Synapse's status word is its `error_code`; `ERROR_CODES` (the adapter's
`STATUSES`) maps the codes a bank login can end in (the seed shows "0" and "10"; the others come
from Synapse's public error table and are shared with sandbox/synapse.py, which marks its
assumptions).

Synapse states no expiry for an MFA question, so challenges carry no provider deadline. A refusal
quotes Synapse's `error_code`, never its `error.en` text (it goes into Temporal history).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar, Self

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
# little over 300sec." Used for the bank-login and MFA-answer calls only.
LOGIN_READ_TIMEOUT_SECONDS = 330.0
LOGIN_TIMEOUT = httpx.Timeout(
    connect=DEFAULT_TIMEOUT.connect,
    read=LOGIN_READ_TIMEOUT_SECONDS,
    write=DEFAULT_TIMEOUT.write,
    pool=DEFAULT_TIMEOUT.pool,
)
DEFAULT_BANK_NAME = "fake"
DEFAULT_USER_IP = "127.0.0.1"

LINKED = "0"
MFA_PENDING = "10"
HOLD_MESSAGE = (
    "Your bank needs your attention before it lets Synapse in (a locked login or a notice to"
    " respond to). Sort it out with your bank, then link the account again."
)

ERROR_CODES = StatusTable(
    "Synapse",
    "error_code",
    {
        LINKED: linked("Your bank account is connected."),
        MFA_PENDING: challenged("Your bank needs you to answer a security question."),
        "110": final(
            LinkReason.INVALID_CREDENTIALS,
            "Your bank did not accept that username and password. Check them and try again.",
        ),
        "400": final(
            LinkReason.MFA_FAILED,
            "Your bank did not accept the answers to its security questions.",
        ),
        # Assumption: Synapse's "action not allowed" is what a bank login the bank has locked or
        # put on hold ends in; its `error.en` (the bank's notice) becomes the user's message.
        "410": needs_user(LinkReason.PROVIDER_HOLD, HOLD_MESSAGE),
        "429": transient("Synapse is receiving too many requests right now."),
        "500": transient("Synapse had an internal error."),
        "503": transient("Synapse is temporarily unavailable."),
    },
)
# Synapse's codes that mean our own request is wrong (client keys, fingerprint, payload,
# permissions, a missing object, an idempotency conflict, a failed request): never a login result.
REQUEST_ERROR_CODES = frozenset({"100", "120", "200", "300", "404", "450", "460"})
# Only these HTTP statuses carry a bank login's result in an error body; any other refusal (a
# 401 for a bad oauth key, say) is about our request.
LOGIN_RESULT_HTTP = frozenset({400, 409})

MFA_TYPES: dict[str, ChallengeKind] = {"question": ChallengeKind.TEXT}


def challenge_id(access_token: str, round_number: str) -> str:
    """A challenge id stable within a round and new in every round; the token is not exposed."""
    digest = hashlib.sha256(access_token.encode()).hexdigest()[:16]
    return f"synapse-mfa-{digest}-{round_number}"


def state_from_session(session: dict[str, str]) -> ProviderState:
    """Where the login stands, as the last Synapse answer (kept in the session) said."""
    raw = session.get("raw_status", "")
    meaning = ERROR_CODES.meanings.get(raw)
    if meaning is None or meaning.outcome is None:
        raise ProviderUnavailable(f"The Synapse login has no known state ({raw!r}).")
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
        session=dict(session),
        challenges=challenges,
        reason=meaning.reason,
        message=session.get("message") or meaning.message,
    )


def state_from_response(
    http_status: int, body: dict[str, Any], session: dict[str, str]
) -> ProviderState:
    """Read Synapse's answer to a bank login or an MFA answer; raise for failures and trouble."""
    code = synapse_code(body)
    if code in REQUEST_ERROR_CODES or (code is None and http_status >= 400):
        raise ProviderRejectedRequest(
            f"Synapse refused the request (HTTP {http_status}, error_code {code}).",
            http_status,
            error_code=code,
        )
    code, meaning = ERROR_CODES.meaning_of(code)
    outcome = ERROR_CODES.outcome_of(code, meaning)
    kept = {k: v for k, v in session.items() if k not in _ROUND_KEYS}
    kept["raw_status"] = code
    if outcome is Outcome.CHALLENGED:
        mfa = body.get("mfa")
        if not isinstance(mfa, dict) or not text(mfa.get("access_token")):
            raise ProviderUnavailable("Synapse asked for MFA without an access_token.")
        mfa_type = mfa.get("type")
        if not isinstance(mfa_type, str) or mfa_type not in MFA_TYPES:
            raise LinkFailure(
                LinkReason.UNSUPPORTED_MFA,
                code,
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


_ROUND_KEYS = frozenset({"access_token", "round", "mfa_type", "mfa_message", "message"})


class SynapseAdapter(HttpAdapter):
    """linkflow's `ProviderAdapter` for Synapse.

    Session: `user_id`, `oauth_key`, `fingerprint`, `raw_status`, and while MFA is pending
    `access_token`, `round`, `mfa_type`, `mfa_message` (`message` for a locked login).
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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            headers={"X-SP-GATEWAY": f"{client_id}|{client_secret}", "X-SP-USER-IP": user_ip},
            transport=transport,
        )
        self._fingerprint = fingerprint
        self._bank_name = bank_name

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

    def _user(self, oauth_key: str = "") -> dict[str, str]:
        """`X-SP-USER`, which every call carries (with no oauth key before there is one)."""
        return {"X-SP-USER": f"{oauth_key}|{self._fingerprint}"}

    async def _login_call(
        self, session: dict[str, str], body: dict[str, Any], idempotency_key: str
    ) -> ProviderState:
        """A bank login or an MFA answer: one long call whose answer is the login's new state.

        Its refusals (HTTP 400 or 409 with an `error_code`) are login results too: a wrong
        password, a failed MFA, a hold.
        """
        path = f"/v3.1/users/{session['user_id']}/nodes"
        response = await self._send(
            "POST",
            path,
            body=body,
            headers=self._user(session["oauth_key"]),
            idempotency_key=idempotency_key,
            timeout=LOGIN_TIMEOUT,
        )
        data: Any = None
        with contextlib.suppress(ValueError):
            data = response.json()
        if not isinstance(data, dict) or response.status_code not in LOGIN_RESULT_HTTP:
            raise_for_provider_status(response, self.name, code_field=self.ERROR_CODE_FIELD)
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"Synapse answered POST {path} without a JSON object.")
        return state_from_response(response.status_code, data, session)

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        # Assumption: a Synapse user per link, with placeholders where Synapse wants contact
        # details (the login email names the link only opaquely); linkflow's user_ref is its
        # supp_id, which stays in the body, never in a URL.
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
            headers=self._user(),
            idempotency_key=f"{idempotency_key}:user",
        )
        user_id, refresh_token = text(user.get("_id")), text(user.get("refresh_token"))
        if not user_id or not refresh_token:
            raise ProviderUnavailable("Synapse created a user but did not say its id.")
        oauth = await self._object(
            "POST",
            f"/v3.1/oauth/{user_id}",
            body={"refresh_token": refresh_token},
            headers=self._user(),
        )
        oauth_key = text(oauth.get("oauth_key"))
        if not oauth_key:
            raise ProviderUnavailable("Synapse did not give an oauth_key.")
        session = {"user_id": user_id, "oauth_key": oauth_key, "fingerprint": self._fingerprint}
        credentials = request.credentials
        return await self._login_call(
            session,
            {
                "type": "ACH-US",
                "info": {
                    "bank_id": credentials.username,
                    "bank_pw": credentials.password.get_secret_value(),
                    "bank_name": request.options.institution_code or self._bank_name,
                },
            },
            f"{idempotency_key}:nodes",
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

    async def _nodes(self, session: dict[str, str]) -> list[dict[str, Any]]:
        listed = await self._object(
            "GET",
            f"/v3.1/users/{session['user_id']}/nodes",
            headers=self._user(session["oauth_key"]),
        )
        nodes = listed.get("nodes") or []
        return [node for node in nodes if isinstance(node, dict) and node.get("type") == "ACH-US"]

    async def fetch_accounts(self, session: dict[str, str]) -> list[Account]:
        return [account_from_node(node) for node in await self._nodes(session)]

    async def revoke(self, session: dict[str, str]) -> None:
        # Assumption: removing the link is deleting each of the user's ACH-US nodes.
        for node in await self._nodes(session):
            await self._unless_gone(
                self._object(
                    "DELETE",
                    f"/v3.1/users/{session['user_id']}/nodes/{node['_id']}",
                    headers=self._user(session["oauth_key"]),
                )
            )


def account_from_node(node: dict[str, Any]) -> Account:
    """One of Synapse's ACH-US nodes as a linkflow `Account`."""
    info = object_or_empty(node.get("info"))
    balance = object_or_empty(info.get("balance"))
    account_num = text(info.get("account_num"))
    return Account(
        id=str(node.get("_id")),
        name=text(info.get("nickname")) or text(info.get("bank_name")) or "Bank account",
        kind=text(info.get("class")) or "ACH-US",
        # Synapse sends only the end of the number; linkflow keeps at most four digits.
        mask=account_num[-4:] if account_num else None,
        balance=text(balance.get("amount")),
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
