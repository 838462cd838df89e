"""The API's own request and response bodies, built from linkflow's models.

Where the API passes a link's vocabulary through (credentials, link options, an MFA submission,
new credentials, a snapshot) it uses `linkflow.models` as they are, so the OpenAPI document is the
workflow's contract. The bodies here only add what HTTP needs around them: a link session, a start
that may come from a backend or a page, a list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, StringConstraints, WithJsonSchema

from api.link_tokens import LinkAction, SessionMode
from linkflow.client import LINK_ID_PATTERN, LinkSummary
from linkflow.models import Credentials, LinkOptions, NonEmptyStr, Provider

LINK_ID_REGEX = f"^{LINK_ID_PATTERN.pattern}$"
LinkId = Annotated[str, StringConstraints(pattern=LINK_ID_REGEX)]
# pydantic documents IPvAnyAddress with a format of its own; say it in OpenAPI's words.
IpAddress = Annotated[
    IPvAnyAddress,
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]}
    ),
]


class LinkSessionRequest(BaseModel):
    """Ask for a link session: a new link (no `link_id`), or update mode on an existing one."""

    model_config = ConfigDict(extra="forbid")

    provider: Provider | None = Field(
        default=None,
        description="Required for a new link. For an existing link, leave it out or give the"
        " link's own provider.",
    )
    user_ref: NonEmptyStr = Field(
        description="The app's own reference for its end user; linkflow indexes only a keyed hash"
        " of it."
    )
    options: LinkOptions = Field(
        default_factory=LinkOptions,
        description="For a new link: its options. An existing link keeps its own.",
    )
    link_id: LinkId | None = Field(
        default=None,
        description="An existing link, for update mode (re-authentication, new credentials,"
        " a held link).",
    )


class LinkSession(BaseModel):
    """A link session: give `connect_url` to the end user's browser."""

    link_token: str = Field(
        description="Opaque; authenticates the end user's page for this session only."
    )
    connect_url: str = Field(description="The page, with the token in its fragment (`#token=`).")
    expires_at: datetime
    link_id: str = Field(description="The link this session starts or updates.")
    provider: Provider
    mode: SessionMode
    actions: list[LinkAction] = Field(description="What the link token may do.")


class NewLink(BaseModel):
    """Start a link. From the app's backend (API key): `provider`, `user_ref` and `credentials`,
    optionally `options`, `link_id` and `end_user_ip`. From the end user's page (link token):
    `credentials` only, and optionally `end_user_ip`; the rest comes from the link session."""

    model_config = ConfigDict(extra="forbid")

    credentials: Credentials
    provider: Provider | None = None
    user_ref: NonEmptyStr | None = None
    options: LinkOptions | None = None
    link_id: LinkId | None = Field(
        default=None,
        description="Name the link (starting the same id again returns the existing link).",
    )
    end_user_ip: IpAddress | None = Field(
        default=None,
        description="The end user's IP address, for providers that ask for it; with a link token"
        " it defaults to the page's address.",
    )


class LinkList(BaseModel):
    links: list[LinkSummary]


class Health(BaseModel):
    status: str
