"""The MX Platform API adapter.

MX aggregates bank data through a *member*: one user's login at one institution. Creating a member
starts a job; its `connection_status` says where the job stands, and when it is CHALLENGED the
status carries the MFA `challenges`, answered all at once with `PUT .../resume`.

References, in the order they win:
- MX's guide "Handling Multifactor Authentication" (the seed, kept in
  tests/fixtures/documents/mx_handling_mfa.txt), which shows a challenge's `type` as the number 0;
- the MX Platform API reference (docs.mx.com/api-reference/platform-api): "Members Overview" with
  its "Member Connection Statuses" table, "Read member status", "List member challenges",
  "Resume aggregation", "Aggregate member" and "Update member", and MX's OpenAPI description of it
  (github.com/mxenabled/openapi, openapi/v20111101.yml: `ChallengeResponse` with its string `type`,
  `options` and `image_options` of `ImageOptionResponse` {guid, label, value, data_uri}, and
  `image_data`); MX's Atrium reference "Challenges" (`image_data` is base64 image data) and "Read
  Member Connection Status" ("MX recommends a minimum polling interval of 3 seconds");
- MX's own Connect widget (github.com/mxenabled/connect-widget: `src/const/Statuses.js`,
  `src/utilities/pollers.js`, `src/hooks/usePollMember.tsx`), for how MX itself reads a status
  together with `is_being_aggregated` and how often it polls.

`CONNECTION_STATUSES` below is the one table of MX's documented status words and their meaning
for a link (`MxAdapter.STATUSES`); the README's table is generated from it. What none of these
says is marked `Assumption(mx)` where the code relies on it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple, Self, Unpack

import httpx

from linkflow.config import ProviderSettings
from linkflow.models import (
    Account,
    Challenge,
    ChallengeAnswer,
    ChallengeKind,
    ChallengeOption,
    LinkReason,
    LinkRequest,
    Provider,
)
from providers.adapter import HttpAdapter, RequestOptions
from providers.base import ProviderState
from providers.errors import LinkFailure, ProviderRejectedRequest, ProviderUnavailable
from providers.http import read_json
from providers.json_fields import required_object, text
from providers.privacy import provider_word
from providers.status import (
    Outcome,
    StatusMeaning,
    StatusTable,
    challenged,
    final,
    in_progress,
    linked,
    needs_user,
    transient,
)

MX_ACCEPT = "application/vnd.mx.api.v1+json"
PAGE_SIZE = 100
# MX lists are paged; this bounds a provider that keeps promising one more page.
MAX_PAGES = 1000
# MX asks for at least 3 s between reads of a member's status (Atrium's "Read Member Connection
# Status"; MX's Connect widget polls every 3000 ms).
MIN_POLL_INTERVAL_SECONDS = 3.0

IN_PROGRESS = in_progress("Connecting to your bank.")
NEW_LOGIN_NEEDED = needs_user(
    LinkReason.REAUTH_REQUIRED,
    "Your bank needs your username and password again before your data can be updated.",
)
# MX's reference lists a member with no credentials under a `null` connection_status (JSON null);
# the table names it by this word.
NULL_STATUS = "null"

CONNECTION_STATUSES = StatusTable(
    "MX",
    "connection_status",
    {
        # New, and not yet aggregated.
        "CREATED": IN_PROGRESS,
        # The answers to a challenge arrived; whether they were right is not known yet.
        "RESUMED": IN_PROGRESS,
        # The credentials were updated; the member is not connected yet.
        "UPDATED": IN_PROGRESS,
        # Moved to a new data source; MX's Connect widget keeps polling it, as for CREATED.
        "RECONNECTED": IN_PROGRESS,
        # Assumption(mx): PENDING is waited on like CREATED -- MX's Connect widget treats it as a
        # member whose OAuth the user has not finished; linkflow creates no OAuth members.
        "PENDING": IN_PROGRESS,
        # Taking longer than usual, not connected yet; MX says to check back later.
        "DELAYED": in_progress("Your bank is taking longer than usual; linkflow keeps checking."),
        "CHALLENGED": challenged("Your bank needs you to answer a security question."),
        # A wrong answer: "another challenge may follow" (MX's Connect widget counts REJECTED with
        # CHALLENGED as its MFA statuses), so it is read as a challenge round; see
        # `state_from_member` for the one case in which it ends the login.
        "REJECTED": challenged("Your bank did not accept that answer; it may ask again."),
        "CONNECTED": linked("Your bank account is connected."),
        # "Aggregation has been momentarily paused, but the member is still connected."
        "DISABLED": linked(
            "Updates from your bank are paused for now; your account stays connected."
        ),
        "DENIED": final(
            LinkReason.INVALID_CREDENTIALS,
            "Your bank did not accept that username and password. Check them and try again.",
        ),
        # The MFA answers were not given within the time the bank allows.
        "EXPIRED": final(
            LinkReason.MFA_TIMEOUT,
            "Your bank's security question expired before it was answered. Please start again.",
        ),
        # Three failed attempts in a row: MX stops trying until the user enters them again.
        "PREVENTED": needs_user(
            LinkReason.REAUTH_REQUIRED,
            "The last three attempts to connect to your bank failed. Enter your username and"
            " password again to go on.",
        ),
        # Some or all of the credentials the bank needs are missing.
        "IMPAIRED": NEW_LOGIN_NEEDED,
        # Brought over from another provider without credentials (MX's "re-authenticate" case).
        "IMPORTED": NEW_LOGIN_NEEDED,
        # Assumption(mx): a member with a null status (no credentials) waits for the user's login
        # -- MX gives it no next step, as it is meant for manual members, which linkflow never
        # creates.
        NULL_STATUS: NEW_LOGIN_NEEDED,
        "LOCKED": needs_user(
            LinkReason.ACCOUNT_LOCKED,
            "Your bank has locked your online account. Unlock it on your bank's website,"
            " then try again.",
        ),
        "IMPEDED": needs_user(
            LinkReason.PROVIDER_HOLD,
            "Your bank needs your attention: log in to its website and respond to the"
            " notice there, then try again.",
        ),
        "DISCONTINUED": final(
            LinkReason.INSTITUTION_UNAVAILABLE,
            "Connections to this bank are no longer supported.",
        ),
        # Marked closed by the user, MX, the client or a partner.
        "CLOSED": final(
            LinkReason.INSTITUTION_UNAVAILABLE, "This connection to your bank has been closed."
        ),
        # Failed several times in a short while; MX is upgrading the connection.
        "DEGRADED": transient("MX reports its connection to the bank as degraded."),
        # Failed without connecting; MX says to try again later.
        "FAILED": transient("MX could not finish talking to the bank."),
        # Failing for two weeks; MX says it is working on it.
        "DISCONNECTED": transient("MX could not reach the bank."),
    },
)
REJECTED_FOR_GOOD = "Your bank did not accept the answers to its security questions."


class ChallengeType(NamedTuple):
    name: str
    kind: ChallengeKind


CHALLENGE_TYPES = {
    t.name: t
    for t in (
        ChallengeType("TEXT", ChallengeKind.TEXT),
        ChallengeType("OPTIONS", ChallengeKind.OPTIONS),
        ChallengeType("TOKEN", ChallengeKind.CODE),
        ChallengeType("IMAGE_DATA", ChallengeKind.TEXT),
        ChallengeType("IMAGE_OPTIONS", ChallengeKind.IMAGE_OPTIONS),
    )
}
# The reference names a challenge's `type` as a string; only the seed's example numbers it
# (`"type": 0` for a text question), so a number is still read.
# Assumption(mx): a numbered `type` uses the numbers of MX's Connect widget's credential types
# (0 TEXT, 2 OPTIONS, 12 TOKEN, 13 IMAGE_DATA, 14 IMAGE_OPTIONS) -- MX's references number none
# but the seed's 0.
NUMBERED_TYPES = {0: "TEXT", 2: "OPTIONS", 12: "TOKEN", 13: "IMAGE_DATA", 14: "IMAGE_OPTIONS"}
SECRET_LABEL = re.compile(r"\b(password|passcode|passphrase|pin)\b", re.IGNORECASE)
# The first bytes of the pictures a bank might send, and their media types.
PICTURE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def _challenge_type(raw_type: object) -> ChallengeType | None:
    if isinstance(raw_type, str):
        word = raw_type.strip().upper()
        if not (word.isascii() and word.isdigit()):
            return CHALLENGE_TYPES.get(word)
        raw_type = int(word)
    if isinstance(raw_type, int) and not isinstance(raw_type, bool):
        name = NUMBERED_TYPES.get(raw_type)
        return CHALLENGE_TYPES[name] if name else None
    return None


def picture_uri(value: object) -> str | None:
    """A picture MX sent, as a `data:` URI an `<img>` can show; None if it is not one.

    MX's `data_uri` is one already (`data:image/png;base64,...` in its reference); its
    `image_data` is bare base64, whose media type is read from the picture's first bytes.
    """
    picture = text(value)
    if picture is None:
        return None
    picture = picture.strip()
    if picture.startswith("data:"):
        return picture if picture.startswith("data:image/") else None
    encoded = "".join(picture.split())
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Assumption(mx): bare base64 image data that is not a PNG, JPEG or GIF is a PNG -- MX's
    # reference calls `image_data` base64 image data and names no media type.
    media_type = next(
        (kind for signature, kind in PICTURE_SIGNATURES if decoded.startswith(signature)),
        "image/png",
    )
    return f"data:{media_type};base64,{encoded}" if decoded else None


def _options(raw: dict[str, Any], challenge_type: ChallengeType) -> list[ChallengeOption]:
    """The choices of an OPTIONS or IMAGE_OPTIONS challenge, each by its value; a picture choice
    comes with its picture, and one without a readable picture is left out."""
    pictures = challenge_type.kind is ChallengeKind.IMAGE_OPTIONS
    # MX's reference puts picture choices in `image_options`; its Connect widget reads them from
    # `options`, so those are read when `image_options` is missing.
    items = (raw.get("image_options") or raw.get("options")) if pictures else raw.get("options")
    options: list[ChallengeOption] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        # Assumption(mx): the answer to a choice is the chosen option's `value` (its `guid` when
        # it has none) -- the resume reference takes one {guid, value} per challenge and names no
        # option field (MX's Connect widget, on MX's own widget API, sends the option's guid).
        value = text(item.get("value")) or text(item.get("guid"))
        image = picture_uri(item.get("data_uri")) if pictures else None
        if value is None or (pictures and image is None):
            continue
        label = text(item.get("label")) or value
        options.append(ChallengeOption(value=value, label=label, image_data_uri=image))
    if not options:
        raise ProviderUnavailable(f"MX sent a {challenge_type.name} challenge with no choices.")
    return options


def normalize_challenge(raw: dict[str, Any]) -> Challenge:
    """Turn one of MX's challenge objects into linkflow's `Challenge` (id = MX's guid)."""
    guid = raw.get("guid")
    if not isinstance(guid, str) or not guid:
        raise ProviderUnavailable("MX sent a challenge without a guid.")
    challenge_type = _challenge_type(raw.get("type"))
    if challenge_type is None:
        # A captcha or a kind of question MX does not document: nobody can answer it here.
        raise LinkFailure(
            LinkReason.UNSUPPORTED_MFA,
            "CHALLENGED",
            "Your bank asks for a kind of verification linkflow cannot show"
            f" ({provider_word(raw.get('type'))}). Link this account another way.",
        )
    label = str(raw.get("label") or "Answer your bank's security question.")
    kind = challenge_type.kind
    if kind is ChallengeKind.TEXT and SECRET_LABEL.search(label):
        kind = ChallengeKind.SECRET
    picture = None
    if challenge_type.name == "IMAGE_DATA":
        picture = picture_uri(raw.get("image_data"))
        if picture is None:
            raise ProviderUnavailable("MX sent an IMAGE_DATA challenge without a readable picture.")
    return Challenge(
        id=guid,
        kind=kind,
        prompt=label,
        options=_options(raw, challenge_type) if kind.has_options else [],
        image_data_uri=picture,
    )


def _connection_status(member: dict[str, Any]) -> tuple[str, StatusMeaning]:
    word = member.get("connection_status")
    if word is None and "connection_status" in member:
        word = NULL_STATUS
    return CONNECTION_STATUSES.meaning_of(word)


def state_from_member(member: dict[str, Any], session: dict[str, str]) -> ProviderState:
    """Read MX's member (or member status) object; raise for final failures and trouble.

    A status is read together with `is_being_aggregated`, as MX's Connect widget reads it: while
    MX is still aggregating, any word but a challenge only says where the job has got to (a
    connected member still gathers its accounts; an error may yet change), so the login is still
    in progress.
    """
    status, meaning = _connection_status(member)
    aggregating = member.get("is_being_aggregated") is True
    if meaning.outcome is Outcome.CHALLENGED:
        challenges = [
            normalize_challenge(raw)
            for raw in member.get("challenges") or []
            if isinstance(raw, dict)
        ]
        if challenges:
            return _state(Outcome.CHALLENGED, status, session, meaning.message, challenges)
        if status == "REJECTED" and not aggregating:
            # Assumption(mx): a REJECTED member that MX no longer aggregates will ask nothing
            # more, so the login ends MFA_FAILED -- MX says only that aggregation "may need to be
            # restarted".
            raise LinkFailure(LinkReason.MFA_FAILED, status, REJECTED_FOR_GOOD)
        # The next question is on its way (or, for CHALLENGED, listed apart: see `poll`).
        waiting = meaning.message if status == "REJECTED" else IN_PROGRESS.message
        return _state(Outcome.PENDING, status, session, waiting)
    if aggregating:
        return _state(Outcome.PENDING, status, session, IN_PROGRESS.message)
    outcome = CONNECTION_STATUSES.outcome_of(status, meaning)
    return _state(outcome, status, session, meaning.message, reason=meaning.reason)


def _state(
    outcome: Outcome,
    status: str,
    session: dict[str, str],
    message: str,
    challenges: list[Challenge] | None = None,
    *,
    reason: LinkReason | None = None,
) -> ProviderState:
    return ProviderState(
        outcome=outcome,
        raw_status=status,
        session=dict(session),
        challenges=challenges or [],
        reason=reason,
        message=message,
    )


def _member(value: object) -> dict[str, Any]:
    return required_object(value, "MX", "member")


class MxAdapter(HttpAdapter):
    """linkflow's `ProviderAdapter` for MX; session = `{"user_guid", "member_guid"}`.

    `min_poll_interval_seconds` is how long a caller should wait between two reads of one
    member's status: MX's `MIN_POLL_INTERVAL_SECONDS` against MX itself, none against the
    sandbox (built from the settings' sandbox URL), whose jobs take a fraction of a second.
    """

    provider = Provider.MX
    STATUSES = CONNECTION_STATUSES
    CHALLENGE_KINDS: ClassVar[Mapping[str, ChallengeKind]] = {
        name: challenge_type.kind for name, challenge_type in CHALLENGE_TYPES.items()
    }
    MIN_POLL_INTERVAL_SECONDS: ClassVar[float] = MIN_POLL_INTERVAL_SECONDS

    def __init__(
        self,
        base_url: str,
        client_id: str,
        api_key: str,
        *,
        default_institution_code: str = "mxbank",
        min_poll_interval_seconds: float = MIN_POLL_INTERVAL_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            headers={"Accept": MX_ACCEPT},
            auth=(client_id, api_key),
            transport=transport,
        )
        self._institution_code = default_institution_code
        self.min_poll_interval_seconds = min_poll_interval_seconds

    @classmethod
    def from_settings(cls, settings: ProviderSettings) -> Self:
        endpoint = settings.endpoint(
            Provider.MX, {"client_id": "sandbox-client-id", "api_key": "sandbox-api-key"}
        )
        sandboxed = endpoint.base_url == f"{settings.sandbox_url}/{Provider.MX.value}"
        return cls(
            endpoint.base_url,
            endpoint.keys["client_id"],
            endpoint.keys["api_key"],
            min_poll_interval_seconds=0.0 if sandboxed else MIN_POLL_INTERVAL_SECONDS,
        )

    async def _read(
        self, method: str, path: str, key: str, **options: Unpack[RequestOptions]
    ) -> tuple[Any, dict[str, Any]]:
        """Call MX and return `body[key]` and the whole body; a malformed body is transient.

        A 204 No Content (MX's list of challenges for a member no longer CHALLENGED) is an
        empty `key`.
        """
        response = await self._request(method, path, **options)
        if response.status_code == 204:
            return [], {}
        body = read_json(response, self.name)
        if not isinstance(body, dict) or key not in body:
            raise ProviderUnavailable(f"MX answered {method} {path} without {key!r}.")
        return body[key], body

    async def _pages(self, path: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            chunk, body = await self._read(
                "GET", path, key, params={"page": page, "records_per_page": PAGE_SIZE}
            )
            items += [item for item in chunk or [] if isinstance(item, dict)]
            pagination = body.get("pagination") or {}
            if page >= int(pagination.get("total_pages") or 1):
                break
        return items

    async def login(
        self, link_id: str, request: LinkRequest, *, idempotency_key: str
    ) -> ProviderState:
        institution = request.options.institution_code or self._institution_code
        # Neither read needs the other, so a login waits for one round trip instead of two.
        user_guid, fields = await asyncio.gather(
            self._ensure_user(request.user_ref), self.credential_fields(institution)
        )
        created, _ = await self._read(
            "POST",
            f"/users/{user_guid}/members",
            "member",
            body={
                "member": {
                    "institution_code": institution,
                    "credentials": _credential_values(fields, request),
                }
            },
            idempotency_key=idempotency_key,
        )
        member = _member(created)
        member_guid = member.get("guid")
        if not isinstance(member_guid, str):
            raise ProviderUnavailable("MX created a member but did not say its guid.")
        return state_from_member(member, {"user_guid": user_guid, "member_guid": member_guid})

    async def credential_fields(self, institution: str) -> dict[str, str]:
        """The institution's login fields, `field_name` -> credential guid."""
        try:
            fields, _ = await self._read(
                "GET", f"/institutions/{institution}/credentials", "credentials"
            )
        except ProviderRejectedRequest as error:
            if error.status_code != 404:
                raise
            raise LinkFailure(
                LinkReason.INSTITUTION_UNAVAILABLE,
                "INSTITUTION_NOT_FOUND",
                "This bank is not available for connection.",
            ) from error
        return {
            str(field["field_name"]): str(field["guid"])
            for field in fields or []
            if isinstance(field, dict) and field.get("field_name") and field.get("guid")
        }

    async def _ensure_user(self, partner_id: str) -> str:
        """The guid of the MX user whose partner `id` is `partner_id`, creating it if needed."""
        try:
            user, _ = await self._read(
                "POST", "/users", "user", body={"user": {"id": partner_id, "metadata": None}}
            )
        except ProviderRejectedRequest as error:
            if error.status_code != 409:
                raise
        else:
            guid = required_object(user, "MX", "user").get("guid")
            if not isinstance(guid, str):
                raise ProviderUnavailable("MX created a user but did not say its guid.")
            return guid
        for existing in await self._pages("/users", "users"):
            if existing.get("id") == partner_id:
                return str(existing["guid"])
        raise ProviderUnavailable("MX says this user exists but does not list it yet.")

    @staticmethod
    def _member_path(session: dict[str, str]) -> str:
        return f"/users/{session['user_guid']}/members/{session['member_guid']}"

    async def poll(self, session: dict[str, str]) -> ProviderState:
        path = self._member_path(session)
        status, _ = await self._read("GET", f"{path}/status", "member")
        member = _member(status)
        if member.get("connection_status") == "CHALLENGED" and not member.get("challenges"):
            member = member | {"challenges": await self._pages(f"{path}/challenges", "challenges")}
        return state_from_member(member, session)

    async def answer(
        self,
        session: dict[str, str],
        challenges: list[Challenge],
        answers: list[ChallengeAnswer],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        try:
            resumed, _ = await self._read(
                "PUT",
                f"{self._member_path(session)}/resume",
                "member",
                body={
                    "member": {
                        "challenges": [
                            {"guid": answer.challenge_id, "value": answer.value.get_secret_value()}
                            for answer in answers
                        ]
                    }
                },
                idempotency_key=idempotency_key,
            )
        except ProviderRejectedRequest as refused:
            # A resume after the bank stopped waiting finds the member EXPIRED.
            await self._raise_why_nothing_waits(session, refused)
            raise
        return state_from_member(_member(resumed), session)

    async def refresh(self, session: dict[str, str], *, idempotency_key: str) -> ProviderState:
        # MX's "Aggregate member": 202 with the member; MFA may be asked again on the way, as the
        # seed's guide says, and a member that needs new credentials says so instead.
        member, _ = await self._read(
            "POST",
            f"{self._member_path(session)}/aggregate",
            "member",
            idempotency_key=idempotency_key,
        )
        return state_from_member(_member(member), session)

    async def reauthenticate(
        self,
        link_id: str,
        request: LinkRequest,
        session: dict[str, str],
        *,
        idempotency_key: str,
    ) -> ProviderState:
        # MX's "Update member" with the credentials keeps the member; MX aggregates a member
        # whose credentials are updated (MX's "Aggregating Data and Dealing with MFA").
        institution = request.options.institution_code or self._institution_code
        fields = await self.credential_fields(institution)
        member, _ = await self._read(
            "PUT",
            self._member_path(session),
            "member",
            body={"member": {"credentials": _credential_values(fields, request)}},
            idempotency_key=idempotency_key,
        )
        return state_from_member(_member(member), session)

    async def resolve_hold(self, session: dict[str, str], *, idempotency_key: str) -> ProviderState:
        # MX has no route to lift a hold: the user acts at the bank, then an aggregation tells.
        return await self.refresh(session, idempotency_key=idempotency_key)

    async def fetch_accounts(self, session: dict[str, str]) -> list[Account]:
        raw = await self._pages(f"{self._member_path(session)}/accounts", "accounts")
        return [account_from_mx(account) for account in raw]

    async def revoke(self, session: dict[str, str]) -> None:
        await self._unless_gone(self._request("DELETE", self._member_path(session)))


def _credential_values(fields: dict[str, str], request: LinkRequest) -> list[dict[str, str]]:
    """The request's credentials as MX's `[{guid, value}]`, for the institution's fields."""
    credentials = request.credentials
    values = {
        "username": credentials.username,
        "password": credentials.password.get_secret_value(),
    } | {name: secret.get_secret_value() for name, secret in credentials.extra.items()}
    return [
        {"guid": guid, "value": values[name]} for name, guid in fields.items() if name in values
    ]


def account_from_mx(raw: dict[str, Any]) -> Account:
    """One of MX's account objects as a linkflow `Account`."""
    number = str(raw.get("account_number") or "")
    balance = raw.get("balance")
    return Account(
        id=str(raw["guid"]),
        name=str(raw.get("name") or "Account"),
        kind=str(raw.get("type") or "UNKNOWN"),
        mask=number[-4:] or None,
        balance=None if balance is None else str(balance),
        currency=text(raw.get("currency_code")),
    )
