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
and `X-SP-USER-IP`. Synapse's status word is its `error_code`; `STATUS_MEANINGS` maps the codes a
bank login can end in (the seed shows "0" and "10"; the others come from Synapse's public error
table and are shared with sandbox/synapse.py, which marks its assumptions).

Synapse states no expiry for an MFA question, so challenges carry no provider deadline. A refusal
quotes Synapse's `error_code`, never its `error.en` text (it goes into Temporal history).
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

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
from providers.base import (
    LifecycleByLoggingInAgain,
    LinkFailure,
    Outcome,
    ProviderRejectedRequest,
    ProviderState,
    ProviderUnavailable,
)
from providers.http import DEFAULT_TIMEOUT, make_client, raise_for_provider_status
from providers.mapping import StatusMeaning, final, transient
from providers.privacy import UNREADABLE_WORD, opaque_id, provider_word

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
# Synapse's own idempotency header (its client libraries send it on POSTs).
IDEMPOTENCY_HEADER = "X-SP-IDEMPOTENCY-KEY"

LINKED = "0"
MFA_PENDING = "10"
HOLD_MESSAGE = (
    "Your bank needs your attention before it lets Synapse in (a locked login or a notice to"
    " respond to). Sort it out with your bank, then link the account again."
)

ERROR_CODES: dict[str, StatusMeaning] = {
    LINKED: StatusMeaning(Outcome.LINKED, message="Your bank account is connected."),
    MFA_PENDING: StatusMeaning(
        Outcome.CHALLENGED, message="Your bank needs you to answer a security question."
    ),
    "110": final(
        LinkReason.INVALID_CREDENTIALS,
        "Your bank did not accept that username and password. Check them and try again.",
    ),
    "400": final(
        LinkReason.MFA_FAILED, "Your bank did not accept the answers to its security questions."
    ),
    # Assumption: Synapse's "action not allowed" is what a bank login the bank has locked or
    # put on hold ends in; its `error.en` (the bank's notice) becomes the user's message.
    "410": StatusMeaning(
        Outcome.ACTION_REQUIRED, reason=LinkReason.PROVIDER_HOLD, message=HOLD_MESSAGE
    ),
    "429": transient("Synapse is receiving too many requests right now."),
    "500": transient("Synapse had an internal error."),
    "503": transient("Synapse is temporarily unavailable."),
}
# Synapse's codes that mean our own request is wrong (client keys, fingerprint, payload,
# permissions, a missing object, an idempotency conflict, a failed request): never a login result.
REQUEST_ERROR_CODES = frozenset({"100", "120", "200", "300", "404", "450", "460"})
# Only these HTTP statuses carry a bank login's result in an error body; any other refusal (a
# 401 for a bad oauth key, say) is about our request.
LOGIN_RESULT_HTTP = frozenset({400, 409})

MFA_TYPES: dict[str, ChallengeKind] = {"question": ChallengeKind.TEXT}

STATUS_FIELD = "error_code"
STATUS_MEANINGS = ERROR_CODES
CHALLENGE_KINDS = MFA_TYPES


def challenge_id(access_token: str, round_number: str) -> str:
    """A challenge id stable within a round and new in every round; the token is not exposed."""
    digest = hashlib.sha256(access_token.encode()).hexdigest()[:16]
    return f"synapse-mfa-{digest}-{round_number}"


def state_from_session(session: dict[str, str]) -> ProviderState:
    """Where the login stands, as the last Synapse answer (kept in the session) said."""
    raw = session.get("raw_status", "")
    meaning = ERROR_CODES.get(raw)
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
    code = _error_code(body)
    if code in REQUEST_ERROR_CODES or (code is None and http_status >= 400):
        raise ProviderRejectedRequest(
            f"Synapse refused the request (HTTP {http_status}, error_code {code}).",
            http_status,
            error_code=code,
        )
    meaning = ERROR_CODES.get(code) if code is not None else None
    if code is None or meaning is None:
        raise ProviderUnavailable(f"Synapse sent an error_code linkflow does not know: {code}.")
    if meaning.failure is not None:
        raise LinkFailure(meaning.failure, code, meaning.message)
    if meaning.outcome is None:
        raise ProviderUnavailable(f"Synapse error_code {code}: {meaning.message}")
    kept = {k: v for k, v in session.items() if k not in _ROUND_KEYS}
    kept["raw_status"] = code
    if meaning.outcome is Outcome.CHALLENGED:
        mfa = body.get("mfa")
        if not isinstance(mfa, dict) or not _text(mfa.get("access_token")):
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
            "mfa_message": _text(mfa.get("message")) or meaning.message,
        }
    elif meaning.outcome is Outcome.ACTION_REQUIRED:
        # The bank's notice is meant for the user (it says what to do); it is kept as the
        # state's message, never put into an error.
        kept["message"] = _error_message(body) or meaning.message
    return state_from_session(kept)


_ROUND_KEYS = frozenset({"access_token", "round", "mfa_type", "mfa_message", "message"})


class SynapseAdapter(LifecycleByLoggingInAgain):
    """linkflow's `ProviderAdapter` for Synapse.

    Session: `user_id`, `oauth_key`, `fingerprint`, `raw_status`, and while MFA is pending
    `access_token`, `round`, `mfa_type`, `mfa_message` (`message` for a locked login).
    """

    provider = Provider.SYNAPSE

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        fingerprint: str,
        user_ip: str = DEFAULT_USER_IP,
        bank_name: str = DEFAULT_BANK_NAME,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._fingerprint = fingerprint
        self._bank_name = bank_name
        headers = {"X-SP-GATEWAY": f"{client_id}|{client_secret}", "X-SP-USER-IP": user_ip}
        if client is None:
            self._client = make_client(base_url, headers=headers)
        else:
            client.headers.update(headers)
            self._client = client

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        oauth_key: str = "",
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        long_call: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        headers = {"X-SP-USER": f"{oauth_key}|{self._fingerprint}"}
        if idempotency_key:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        # httpx's own transport errors propagate: the activities classify timeouts and refusals.
        response = await self._client.request(
            method,
            path,
            json=body,
            headers=headers,
            timeout=LOGIN_TIMEOUT if long_call else DEFAULT_TIMEOUT,
        )
        data: Any = None
        with contextlib.suppress(ValueError):
            data = response.json()
        if not isinstance(data, dict) or response.status_code not in LOGIN_RESULT_HTTP:
            raise_for_provider_status(response, "Synapse", code_field=("error_code",))
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"Synapse answered {method} {path} without a JSON object.")
        return response.status_code, data

    async def _read(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        status, data = await self._send(method, path, **kwargs)
        if status >= 400:
            code = _error_code(data)
            raise ProviderRejectedRequest(
                f"Synapse refused {method} {path} (HTTP {status}, error_code {code}).",
                status,
                error_code=code,
            )
        return data

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        # Assumption: a Synapse user per link, with placeholders where Synapse wants contact
        # details (the login email names the link only opaquely); linkflow's user_ref is its
        # supp_id, which stays in the body, never in a URL.
        login_name = opaque_id("synapse-login", link_id)
        user = await self._read(
            "POST",
            "/v3.1/users",
            body={
                "logins": [{"email": f"{login_name}@users.linkflow.invalid"}],
                "phone_numbers": ["000.000.0000"],
                "legal_names": ["Linkflow User"],
                "extra": {"supp_id": request.user_ref, "cip_tag": 1, "is_business": False},
            },
            idempotency_key=f"{idempotency_key}:user",
        )
        user_id, refresh_token = _text(user.get("_id")), _text(user.get("refresh_token"))
        if not user_id or not refresh_token:
            raise ProviderUnavailable("Synapse created a user but did not say its id.")
        oauth = await self._read(
            "POST", f"/v3.1/oauth/{user_id}", body={"refresh_token": refresh_token}
        )
        oauth_key = _text(oauth.get("oauth_key"))
        if not oauth_key:
            raise ProviderUnavailable("Synapse did not give an oauth_key.")
        session = {"user_id": user_id, "oauth_key": oauth_key, "fingerprint": self._fingerprint}
        credentials = request.credentials
        status, body = await self._send(
            "POST",
            f"/v3.1/users/{user_id}/nodes",
            oauth_key=oauth_key,
            body={
                "type": "ACH-US",
                "info": {
                    "bank_id": credentials.username,
                    "bank_pw": credentials.password.get_secret_value(),
                    "bank_name": request.options.institution_code or self._bank_name,
                },
            },
            idempotency_key=f"{idempotency_key}:nodes",
            long_call=True,
        )
        return state_from_response(status, body, session)

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
        # An answer for an earlier round is not sent to the current question.
        current = state_from_session(session)
        asked = {challenge.id for challenge in current.challenges}
        given = [answer for answer in answers if answer.challenge_id in asked]
        if current.outcome is not Outcome.CHALLENGED or not given:
            return current
        status, body = await self._send(
            "POST",
            f"/v3.1/users/{session['user_id']}/nodes",
            oauth_key=session["oauth_key"],
            body={
                "access_token": session["access_token"],
                "mfa_answer": given[0].value.get_secret_value(),
            },
            idempotency_key=idempotency_key,
            long_call=True,
        )
        return state_from_response(status, body, session)

    async def _nodes(self, session: dict[str, str]) -> list[dict[str, Any]]:
        listed = await self._read(
            "GET", f"/v3.1/users/{session['user_id']}/nodes", oauth_key=session["oauth_key"]
        )
        nodes = listed.get("nodes") or []
        return [node for node in nodes if isinstance(node, dict) and node.get("type") == "ACH-US"]

    async def fetch_accounts(self, session: dict[str, str]) -> list[Account]:
        return [account_from_node(node) for node in await self._nodes(session)]

    async def revoke(self, session: dict[str, str]) -> None:
        # Assumption: removing the link is deleting each of the user's ACH-US nodes.
        for node in await self._nodes(session):
            try:
                await self._read(
                    "DELETE",
                    f"/v3.1/users/{session['user_id']}/nodes/{node['_id']}",
                    oauth_key=session["oauth_key"],
                )
            except ProviderRejectedRequest as error:
                if error.status_code != 404:
                    raise


def account_from_node(node: dict[str, Any]) -> Account:
    info = _object(node.get("info"))
    balance = _object(info.get("balance"))
    account_num = _text(info.get("account_num"))
    return Account(
        id=str(node.get("_id")),
        name=_text(info.get("nickname")) or _text(info.get("bank_name")) or "Bank account",
        kind=_text(info.get("class")) or "ACH-US",
        # Synapse sends only the end of the number; linkflow keeps at most four digits.
        mask=account_num[-4:] if account_num else None,
        balance=_text(balance.get("amount")),
        currency=_text(balance.get("currency")),
    )


def _error_code(body: dict[str, Any]) -> str | None:
    """Synapse's `error_code`, as a word (it is "0", "10", "110", ...)."""
    code = body.get("error_code")
    word = provider_word(code)
    return None if code is None or word == UNREADABLE_WORD else word


def _error_message(body: dict[str, Any]) -> str:
    error = body.get("error")
    return (_text(error.get("en")) if isinstance(error, dict) else None) or ""


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def create_adapter(settings: ProviderSettings) -> SynapseAdapter:
    endpoint = settings.endpoint(
        Provider.SYNAPSE,
        {
            "client_id": "sandbox-client-id",
            "client_secret": "sandbox-client-secret",
            "fingerprint": "sandbox-fingerprint",
            "user_ip": DEFAULT_USER_IP,
        },
    )
    return SynapseAdapter(
        endpoint.base_url,
        endpoint.keys["client_id"],
        endpoint.keys["client_secret"],
        fingerprint=endpoint.keys["fingerprint"],
        user_ip=endpoint.keys["user_ip"],
    )
