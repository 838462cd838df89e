"""The link's vocabulary, shared by every part of linkflow.

The workflow, the activities, the provider adapters, the client for backend code and the CLI all
speak these pydantic models, and Temporal carries them through `pydantic_data_converter`. Keeping
them in one module is what lets a status word or a challenge kind mean the same thing everywhere.

Secrets (passwords, MFA answers) are `SecretStr`: they are masked in `repr`, `str` and log lines,
and revealed only when the data converter serializes them to JSON for Temporal. Encrypting those
payloads at rest is the job of the payload codec, not of these models.

Every string a caller can send is bounded here, so an oversized or malformed message is refused by
validation before it can reach a provider, a log line or the link's history.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    PlainSerializer,
    SecretStr,
    StringConstraints,
    UrlConstraints,
    field_validator,
)

DEFAULT_MFA_TIMEOUT_SECONDS = 300
DEFAULT_REFRESH_INTERVAL_SECONDS = 24 * 60 * 60
DEFAULT_REFRESHES_PER_RUN = 30


def _reveal_for_json(secret: SecretStr) -> str:
    return secret.get_secret_value()


# A secret that survives a JSON round trip through the data converter but stays masked in
# `repr`, `str` and `model_dump()` (Python mode), which is what loggers and f-strings see.
TransportSecret = Annotated[
    SecretStr, PlainSerializer(_reveal_for_json, return_type=str, when_used="json")
]

MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 256
MAX_SECRET_LENGTH = 1024
MAX_ANSWER_LENGTH = 512
MAX_ANSWERS_PER_SUBMISSION = 16
MAX_EXTRA_FIELDS = 16
MAX_URL_LENGTH = 2048

NonEmptyStr = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH)
]
IdStr = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_LENGTH)
]
ExtraFieldName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)
]
WebhookUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=MAX_URL_LENGTH)]


class Provider(StrEnum):
    MX = "mx"
    SYNAPSE = "synapse"
    ARCADIA = "arcadia"
    TEAL = "teal"
    UNBILL = "unbill"


class LinkStatus(StrEnum):
    CONNECTING = "CONNECTING"
    MFA_REQUIRED = "MFA_REQUIRED"
    CONNECTED = "CONNECTED"
    ACTION_REQUIRED = "ACTION_REQUIRED"
    FAILED = "FAILED"
    UNLINKED = "UNLINKED"

    @property
    def is_final(self) -> bool:
        return self in (LinkStatus.FAILED, LinkStatus.UNLINKED)


class LinkReason(StrEnum):
    """Why a link is `FAILED` or `ACTION_REQUIRED`."""

    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    MFA_TIMEOUT = "MFA_TIMEOUT"
    MFA_FAILED = "MFA_FAILED"
    UNSUPPORTED_MFA = "UNSUPPORTED_MFA"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    PROVIDER_HOLD = "PROVIDER_HOLD"
    REAUTH_REQUIRED = "REAUTH_REQUIRED"
    MFA_REFRESH_REQUIRED = "MFA_REFRESH_REQUIRED"
    USER_REVOKED_ACCESS = "USER_REVOKED_ACCESS"
    INSTITUTION_UNAVAILABLE = "INSTITUTION_UNAVAILABLE"
    INVALID_REQUEST = "INVALID_REQUEST"


class ChallengeKind(StrEnum):
    TEXT = "text"
    SECRET = "secret"
    CODE = "code"
    OPTIONS = "options"
    IMAGE_OPTIONS = "image_options"
    DEVICE_CHOICE = "device_choice"
    PUSH_APPROVAL = "push_approval"
    REDIRECT = "redirect"

    @property
    def has_options(self) -> bool:
        return self in (
            ChallengeKind.OPTIONS,
            ChallengeKind.IMAGE_OPTIONS,
            ChallengeKind.DEVICE_CHOICE,
        )

    @property
    def needs_answer(self) -> bool:
        """A push approval is granted on the user's device, and a redirect on the provider's own
        page (an OAuth payroll login, say); for these the link only waits for the provider."""
        return self not in (ChallengeKind.PUSH_APPROVAL, ChallengeKind.REDIRECT)


class Credentials(BaseModel):
    """What the end user typed into the provider's login form."""

    model_config = ConfigDict(frozen=True)

    username: NonEmptyStr = Field(repr=False)
    password: TransportSecret = Field(min_length=1, max_length=MAX_SECRET_LENGTH)
    # Extra login fields some providers ask for (Arcadia's utility account number, ...).
    extra: dict[ExtraFieldName, TransportSecret] = Field(
        default_factory=dict, max_length=MAX_EXTRA_FIELDS
    )

    @field_validator("extra")
    @classmethod
    def _bounded_extra_values(cls, extra: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if any(len(value.get_secret_value()) > MAX_SECRET_LENGTH for value in extra.values()):
            raise ValueError(f"an extra field is longer than {MAX_SECRET_LENGTH} characters")
        return extra


class LinkOptions(BaseModel):
    mfa_timeout_seconds: int = Field(default=DEFAULT_MFA_TIMEOUT_SECONDS, ge=5, le=86_400)
    institution_code: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")] | None
    ) = Field(
        default=None,
        description="The provider's institution, where it has several (MX): an id, which goes"
        " into the provider's URLs, so letters, digits, '_', '.', ':' and '-' only.",
    )
    refresh_interval_seconds: int = Field(
        default=DEFAULT_REFRESH_INTERVAL_SECONDS,
        ge=1,
        le=366 * 86_400,
        description="How often a connected link refreshes its data (daily by default).",
    )
    refreshes_per_run: int = Field(
        default=DEFAULT_REFRESHES_PER_RUN,
        ge=1,
        le=1_000,
        description="Refreshes before the link continues as a new run, bounding its history.",
    )
    webhook_url: WebhookUrl | None = Field(
        default=None,
        description="Where the app wants a signed JSON event each time the link's status changes.",
    )

    @field_validator("webhook_url")
    @classmethod
    def _no_credentials_in_webhook_url(cls, url: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if url is not None and (url.username or url.password):
            raise ValueError("a webhook URL must not carry credentials")
        return url


class LinkRequest(BaseModel):
    """Everything needed to start one account link."""

    provider: Provider
    user_ref: NonEmptyStr = Field(
        description="The app's own reference for its end user; opaque to linkflow."
    )
    credentials: Credentials
    options: LinkOptions = Field(default_factory=LinkOptions)
    user_ref_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16,64}$")] | None = Field(
        default=None,
        description="A keyed hash of user_ref that the link publishes as its LinkUserRef search"
        " attribute, so the app can list one user's links; set by LinkClient and the HTTP API.",
    )
    end_user_ip: IPvAnyAddress | None = Field(
        default=None,
        description="The end user's own IP address, for providers that ask for it on every call"
        " (Synapse's X-SP-USER-IP); the worker's configured address is only a fallback.",
    )
    carried: CarriedLink | None = Field(
        default=None,
        description="Set only by the link itself when it continues as a new run: the state it"
        " carries across. Callers leave it out.",
    )


class ChallengeOption(BaseModel):
    value: str
    label: str
    image_data_uri: str | None = None


class Challenge(BaseModel):
    """One question the provider asks the end user, normalized across providers."""

    id: str
    kind: ChallengeKind
    prompt: str
    options: list[ChallengeOption] = Field(default_factory=list)
    image_data_uri: str | None = Field(
        default=None, description="A picture the question is about (MX's IMAGE_DATA)."
    )
    url: str | None = Field(
        default=None,
        description="Where a `redirect` challenge sends the user (the provider's own login page).",
    )
    deadline: datetime | None = None
    after_rejected_answer: bool = Field(
        default=False,
        description="The provider asks this again because it rejected the answer just sent.",
    )

    def option_values(self) -> list[str]:
        return [option.value for option in self.options]


class ChallengeAnswer(BaseModel):
    challenge_id: IdStr
    value: TransportSecret = Field(max_length=MAX_ANSWER_LENGTH)


class MfaSubmission(BaseModel):
    """The payload of the `submit_mfa` update and of the `answer_mfa` signal."""

    answers: list[ChallengeAnswer] = Field(max_length=MAX_ANSWERS_PER_SUBMISSION)


class Account(BaseModel):
    id: str
    name: str
    kind: str
    mask: str | None = Field(default=None, description="Last digits of the account number.")
    balance: str | None = Field(
        default=None, description="Decimal amount, as the provider sent it."
    )
    currency: str | None = None


class LinkAttempts(BaseModel):
    logins: int = 0
    mfa_rounds: int = 0
    answers_submitted: int = 0
    answers_refused: int = 0
    refreshes: int = 0
    runs: int = Field(default=1, description="Workflow runs so far (continue-as-new adds one).")


class StatusChange(BaseModel):
    at: datetime
    status: LinkStatus
    reason: LinkReason | None = None


class ProviderTrouble(BaseModel):
    """A living link's provider has not answered lately; the link keeps its last data and tries
    again on a backing-off schedule instead of ending."""

    since: datetime = Field(description="When the first call of this bad spell failed.")
    failures: int = Field(description="Failed attempts in a row.")
    message: str = Field(description="What went wrong last, in a sentence.")
    retry_at: datetime | None = Field(
        default=None, description="When the link tries again (None: when the user acts)."
    )


class LinkSnapshot(BaseModel):
    """What the `snapshot` query returns: the whole truth about one link, with no secrets."""

    link_id: str
    provider: Provider | None = Field(
        default=None, description="None only for a link whose start request was unreadable."
    )
    status: LinkStatus
    reason: LinkReason | None = None
    message: str | None = Field(
        default=None, description="A sentence for the end user: what happened, what to do."
    )
    provider_status: str | None = Field(
        default=None, description="The provider's own raw status word."
    )
    pending_challenges: list[Challenge] = Field(default_factory=list)
    accounts: list[Account] = Field(default_factory=list)
    attempts: LinkAttempts = Field(default_factory=LinkAttempts)
    last_answer_rejected: bool = Field(
        default=False,
        description="The provider rejected the last answers sent, and asks again.",
    )
    last_refusal: str | None = Field(
        default=None,
        description="Why the last signal was refused, if it was (ids in it are truncated).",
    )
    started_at: datetime
    updated_at: datetime
    last_refreshed_at: datetime | None = None
    next_refresh_at: datetime | None = None
    provider_trouble: ProviderTrouble | None = Field(
        default=None,
        description="Set while the provider fails a living link's calls; cleared by the next"
        " success.",
    )
    history: list[StatusChange] = Field(
        default_factory=list, description="The latest status changes, oldest first."
    )


class CarriedLink(BaseModel):
    """What a link hands to its next run when it continues as new."""

    snapshot: LinkSnapshot
    provider_session: dict[str, str] = Field(default_factory=dict)
    events_sent: int = Field(default=0, description="Webhook events numbered so far.")


class RelinkRequest(BaseModel):
    """The `update_credentials` update's payload: the user's new login."""

    credentials: Credentials


class WebhookEvent(BaseModel):
    """The JSON body the app's webhook receives when a link's status changes; no secrets."""

    id: str = Field(description="Unique per event: `<link id>:<sequence>`; receivers dedupe on it.")
    type: str = "link.status_changed"
    sequence: int = Field(description="Orders one link's events: deliveries may arrive late.")
    link_id: str
    provider: Provider
    status: LinkStatus
    reason: LinkReason | None = None
    message: str | None = None
    occurred_at: datetime


LinkRequest.model_rebuild()
