"""The `/v1` routes: link sessions, links, their answers and later life, events and listing.

Route names are public interface. Each route says who may call it (an API key, or a link token
allowed the route's action on the route's link), and answers with linkflow's own models, or a
refusal in the one error shape (api/errors.py).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from api.auth import AnyCaller, BackendCaller, Caller
from api.context import ApiContext, api_context
from api.errors import ApiError, documented, documented_json
from api.events import EventStreamResponse, snapshot_events
from api.idempotency import IdempotencyKey, start_id, update_id
from api.link_tokens import LinkAction, LinkSessionClaims, SessionMode
from api.schemas import LINK_ID_REGEX, LinkList, LinkSession, LinkSessionRequest, NewLink
from linkflow.client import LinkClient, LinkNotFound, new_link_id
from linkflow.models import (
    LinkOptions,
    LinkReason,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    MfaSubmission,
    Provider,
    RelinkRequest,
)
from linkflow.webhook_policy import WebhookUrlRefused, check_webhook_url

router = APIRouter(prefix="/v1", tags=["links"])

Context = Annotated[ApiContext, Depends(api_context)]
LinkIdPath = Annotated[
    str, Path(pattern=LINK_ID_REGEX, max_length=128, description="The link's id.")
]
NO_STORE = {"Cache-Control": "no-store"}
# One server-sent event, as OpenAPI before 3.2 describes each event of a stream.
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["snapshot", "error", "expired"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "A LinkSnapshot (`snapshot`), or an ErrorBody (`error`, `expired`).",
        },
        "id": {"type": "string", "description": "The snapshot's updated_at."},
        "retry": {"type": "integer", "minimum": 0},
    },
}
# Fields a link session fixes; a page's start may not set them.
SESSION_FIELDS = ("provider", "user_ref", "options", "link_id")


def _check_options(context: ApiContext, options: LinkOptions | None) -> None:
    """Refuse, before a link starts, options it could only fail on later."""
    if options is None:
        return
    if options.webhook_url is None:
        return
    try:
        check_webhook_url(str(options.webhook_url), context.webhook_policy)
    except WebhookUrlRefused as refused:
        raise ApiError(
            422,
            "webhook_url_refused",
            "The link could not be set up.",
            f"options.webhook_url: {refused}",
            "use a public https address for the webhook",
        ) from None


def _count_attempt(context: ApiContext, caller: Caller) -> None:
    """Answer attempts per link token are limited; the app's backend is not."""
    if caller.session is None:
        return
    wait = context.attempts.attempt(caller.session.session_id)
    if wait is not None:
        raise ApiError(
            429,
            "too_many_attempts",
            "Too many attempts. Please wait a moment and try again.",
            f"This link token made {context.attempts.limits.max_attempts} attempts within"
            f" {context.attempts.limits.window_seconds:g} seconds.",
            f"retry after {wait} seconds",
            {"Retry-After": str(wait)},
        )


async def _snapshot(context: ApiContext, link_id: str) -> LinkSnapshot:
    async def read(client: LinkClient) -> LinkSnapshot:
        return await client.snapshot(link_id)

    return await context.backend.run(read, link_id=link_id)


@router.post(
    "/link-sessions",
    status_code=201,
    operation_id="createLinkSession",
    summary="Ask for a link session and the page's connect_url (backend)",
    responses=documented(400, 401, 403, 404, 409, 413, 422, 503, 504),
)
async def create_link_session(
    body: LinkSessionRequest,
    caller: BackendCaller,
    context: Context,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> LinkSession:
    """A new link's session, or with `link_id` an existing link's (update mode). The same
    Idempotency-Key again, for the same user and provider, names the same new link; for another
    user or provider it names another (a session's link does not exist until its page starts it,
    so a reused key cannot be refused here as a start's is)."""
    if body.link_id is None:
        if body.provider is None:
            raise ApiError(
                422,
                "invalid_request",
                "Something in the request is not valid.",
                "provider: required for a new link",
                "send the provider",
            )
        _check_options(context, body.options)
        link_id = (
            start_id("link-sessions", idempotency_key, body.provider.value, body.user_ref)
            if idempotency_key
            else new_link_id()
        )
        provider, mode = body.provider, SessionMode.CREATE
    else:
        link_id, mode = body.link_id, SessionMode.UPDATE
        snapshot = await _snapshot(context, link_id)
        if snapshot.status.is_final or snapshot.provider is None:
            raise ApiError(
                409,
                "link_ended",
                "This link has ended and cannot be updated.",
                f"The link is {snapshot.status.value}; a session can only update a living link.",
                "POST /v1/link-sessions without link_id for a new link",
            )
        if body.provider is not None and body.provider != snapshot.provider:
            raise ApiError(
                409,
                "provider_mismatch",
                "This link belongs to another provider.",
                f"The link's provider is {snapshot.provider.value}, not {body.provider.value}.",
                "leave provider out, or give the link's own",
            )
        if await _belongs_to_another_user(context, link_id, body.user_ref, unnamed=False):
            raise ApiError(
                409,
                "user_mismatch",
                "This link belongs to another user.",
                "The link was started for another user_ref; a session updates its own user's"
                " link only.",
                "give the user_ref the link was started for",
            )
        provider = snapshot.provider
    token, claims = context.settings.link_tokens.issue(
        link_id=link_id,
        provider=provider,
        mode=mode,
        user_ref=body.user_ref,
        options=body.options,
    )
    response.headers.update(NO_STORE)
    return LinkSession(
        link_token=token,
        connect_url=f"{context.settings.connect_page_url}#token={token}",
        expires_at=claims.expires_at,
        link_id=link_id,
        provider=provider,
        mode=mode,
        actions=claims.actions,
    )


@router.post(
    "/links",
    status_code=201,
    operation_id="startLink",
    summary="Start a link; returns its first challenge or result",
    responses=documented(400, 401, 403, 409, 413, 422, 429, 503, 504),
)
async def start_link(
    body: NewLink,
    caller: AnyCaller,
    context: Context,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> LinkSnapshot:
    """Start a link and answer with its first snapshot that asks the user or rests (the first
    challenge, or the result) in one round trip. Starting the same link id again (or the same
    Idempotency-Key) returns the first link, and with the key its first answer; but a page whose
    link ended because the provider refused its login starts it again with the new login (its
    retried request, by Idempotency-Key, gets that run's answer and logs in no more)."""
    if caller.session is not None:
        link_request, link_id = _page_start(body, caller.session, caller, context, request)
    else:
        link_request, link_id = _backend_start(body, context, idempotency_key)
    settled_id = update_id("start", idempotency_key) if idempotency_key else None

    async def start(client: LinkClient) -> tuple[str, LinkSnapshot]:
        return await client.start_and_wait_once(link_request, link_id, update_id=settled_id)

    refused = await _refused_login(context, link_id) if caller.session is not None else None
    if refused is not None:
        # The page's user mistyped their login and sends it again: the same link tries again.
        await _check_same_link(context, link_request, refused, strict=True)

        async def again(client: LinkClient) -> LinkSnapshot:
            return await client.start_again_after_refused_login(
                link_request, link_id, update_id=settled_id
            )

        snapshot = await context.backend.run(again, link_id=link_id)
    else:
        link_id, snapshot = await context.backend.run(start, link_id=link_id)
        await _check_same_link(context, link_request, snapshot, strict=caller.session is not None)
    response.headers["Location"] = f"/v1/links/{link_id}"
    return snapshot


async def _refused_login(context: ApiContext, link_id: str) -> LinkSnapshot | None:
    """The link's snapshot if it exists and ended because the provider refused its login."""

    async def last(client: LinkClient) -> LinkSnapshot | None:
        try:
            return await client.snapshot(link_id)
        except LinkNotFound:
            return None

    snapshot = await context.backend.run(last, link_id=link_id)
    if snapshot is None or (snapshot.status, snapshot.reason) != (
        LinkStatus.FAILED,
        LinkReason.INVALID_CREDENTIALS,
    ):
        return None
    return snapshot


def _page_start(
    body: NewLink,
    session: LinkSessionClaims,
    caller: Caller,
    context: ApiContext,
    request: Request,
) -> tuple[LinkRequest, str]:
    caller.may(LinkAction.START, session.link_id)
    fixed = [name for name in SESSION_FIELDS if getattr(body, name) is not None]
    if fixed:
        raise ApiError(
            422,
            "set_by_link_session",
            "Something in the request is not valid.",
            f"{', '.join(fixed)}: set by the link session; a page sends only credentials (and"
            " end_user_ip).",
            "send only credentials",
        )
    _count_attempt(context, caller)
    link_request = LinkRequest(
        provider=session.provider,
        user_ref=session.user_ref,
        credentials=body.credentials,
        options=session.options,
        user_ref_key=context.settings.lookup.key_for(session.user_ref),
        end_user_ip=body.end_user_ip or _client_address(request),
    )
    return link_request, session.link_id


def _backend_start(
    body: NewLink, context: ApiContext, idempotency_key: str | None
) -> tuple[LinkRequest, str]:
    missing = [name for name in ("provider", "user_ref") if getattr(body, name) is None]
    if body.provider is None or body.user_ref is None:
        raise ApiError(
            422,
            "invalid_request",
            "Something in the request is not valid.",
            f"{', '.join(missing)}: required when the app's backend starts a link",
            "send provider and user_ref",
        )
    _check_options(context, body.options)
    link_request = LinkRequest(
        provider=body.provider,
        user_ref=body.user_ref,
        credentials=body.credentials,
        options=body.options or LinkOptions(),
        user_ref_key=context.settings.lookup.key_for(body.user_ref),
        end_user_ip=body.end_user_ip,
    )
    link_id = body.link_id or (
        start_id("links", idempotency_key) if idempotency_key else new_link_id()
    )
    return link_request, link_id


async def _check_same_link(
    context: ApiContext, link_request: LinkRequest, snapshot: LinkSnapshot, *, strict: bool
) -> None:
    """A start that found an existing link (its id or key reused) must be for the same user and
    provider; otherwise the caller would be handed another user's link. `strict` (a page's
    start) also refuses a link that names no user, which no page's start leaves."""
    if snapshot.provider not in (None, link_request.provider) or await _belongs_to_another_user(
        context, snapshot.link_id, link_request.user_ref, unnamed=strict
    ):
        raise ApiError(
            409,
            "link_id_in_use",
            "This link could not be started.",
            "A link with this id (or Idempotency-Key) already exists for another user or"
            " provider; nothing was started.",
            "use a new Idempotency-Key or link_id",
        )


async def _belongs_to_another_user(
    context: ApiContext, link_id: str, user_ref: str, *, unnamed: bool
) -> bool:
    """Whether the link was started for a user other than `user_ref`; `unnamed` is the answer
    for a link that names no user (one started without a lookup key)."""

    async def published_key(client: LinkClient) -> str | None:
        return await client.user_ref_key(link_id)

    user_ref_key = await context.backend.run(published_key, link_id=link_id)
    if user_ref_key is None:
        return unnamed
    return user_ref_key not in context.settings.lookup.keys_for(user_ref)


def _client_address(request: Request) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if request.client is None:
        return None
    try:
        return ipaddress.ip_address(request.client.host)
    except ValueError:
        return None


@router.get(
    "/links/{link_id}",
    operation_id="getLink",
    summary="A link's snapshot",
    responses=documented(401, 403, 404, 422, 503, 504),
)
async def get_link(link_id: LinkIdPath, caller: AnyCaller, context: Context) -> LinkSnapshot:
    caller.may(LinkAction.READ, link_id)
    return await _snapshot(context, link_id)


async def _update(
    context: ApiContext,
    caller: Caller,
    link_id: str,
    action: LinkAction | None,
    name: str,
    arg: BaseModel | None,
    idempotency_key: str | None,
) -> LinkSnapshot:
    """Send update `name`; `action` is what a link token needs for it (None: API keys only)."""
    if action is not None:
        caller.may(action, link_id)
        _count_attempt(context, caller)
    sent_id = update_id(name, idempotency_key) if idempotency_key else None

    async def send(client: LinkClient) -> LinkSnapshot:
        return await client.run_update(link_id, name, arg, update_id=sent_id)

    return await context.backend.run(send, link_id=link_id)


UPDATE_ERRORS = documented(400, 401, 403, 404, 409, 413, 422, 429, 503, 504)


@router.post(
    "/links/{link_id}/mfa",
    operation_id="submitMfa",
    summary="Answer the pending challenges; returns the next challenge or the result",
    responses=UPDATE_ERRORS,
)
async def submit_mfa(
    link_id: LinkIdPath,
    body: MfaSubmission,
    caller: AnyCaller,
    context: Context,
    idempotency_key: IdempotencyKey = None,
) -> LinkSnapshot:
    return await _update(
        context, caller, link_id, LinkAction.MFA, "submit_mfa", body, idempotency_key
    )


@router.post(
    "/links/{link_id}/reauthenticate",
    operation_id="reauthenticate",
    summary="Log in again (a fresh MFA); returns the first challenge or the result",
    responses=UPDATE_ERRORS,
)
async def reauthenticate(
    link_id: LinkIdPath,
    caller: AnyCaller,
    context: Context,
    idempotency_key: IdempotencyKey = None,
) -> LinkSnapshot:
    return await _update(
        context,
        caller,
        link_id,
        LinkAction.REAUTHENTICATE,
        "reauthenticate",
        None,
        idempotency_key,
    )


@router.post(
    "/links/{link_id}/credentials",
    operation_id="updateCredentials",
    summary="Resume a link with the user's new credentials (update mode)",
    responses=UPDATE_ERRORS,
)
async def update_credentials(
    link_id: LinkIdPath,
    body: RelinkRequest,
    caller: AnyCaller,
    context: Context,
    idempotency_key: IdempotencyKey = None,
) -> LinkSnapshot:
    return await _update(
        context,
        caller,
        link_id,
        LinkAction.CREDENTIALS,
        "update_credentials",
        body,
        idempotency_key,
    )


@router.post(
    "/links/{link_id}/resolve-hold",
    operation_id="resolveHold",
    summary="Tell a held link that the user has done what the provider asked",
    responses=UPDATE_ERRORS,
)
async def resolve_hold(
    link_id: LinkIdPath,
    caller: AnyCaller,
    context: Context,
    idempotency_key: IdempotencyKey = None,
) -> LinkSnapshot:
    return await _update(
        context,
        caller,
        link_id,
        LinkAction.RESOLVE_HOLD,
        "resolve_hold",
        None,
        idempotency_key,
    )


@router.delete(
    "/links/{link_id}",
    operation_id="unlink",
    summary="Unlink: revoke at the provider and end the link UNLINKED (backend)",
    responses=documented(401, 403, 404, 409, 422, 503, 504),
)
async def unlink(
    link_id: LinkIdPath,
    caller: BackendCaller,
    context: Context,
    idempotency_key: IdempotencyKey = None,
) -> LinkSnapshot:
    """Idempotent: a link that has already ended answers with its final snapshot."""
    try:
        return await _update(context, caller, link_id, None, "unlink", None, idempotency_key)
    except ApiError as refusal:
        if refusal.status != 409:
            raise
        snapshot = await _snapshot(context, link_id)
        if snapshot.status.is_final:
            return snapshot
        raise


@router.get(
    "/links/{link_id}/events",
    operation_id="linkEvents",
    summary="Server-sent events: the link's snapshot each time it changes",
    response_class=EventStreamResponse,
    responses={
        200: {
            "description": "`event: snapshot` with a LinkSnapshot as `data` on each change;"
            " `error` and `expired` events carry the error shape.",
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
        },
        **documented_json(401, 403, 404, 422, 503, 504),
    },
)
async def link_events(
    link_id: LinkIdPath, caller: AnyCaller, context: Context
) -> EventStreamResponse:
    caller.may(LinkAction.READ, link_id)
    first = await _snapshot(context, link_id)
    stream = snapshot_events(
        context.backend,
        link_id,
        first,
        stream_seconds=context.settings.events_stream_seconds,
        expires_at=caller.session.expires_at if caller.session else None,
    )
    return EventStreamResponse(
        stream, headers=NO_STORE | {"X-Accel-Buffering": "no", "Connection": "keep-alive"}
    )


@router.get(
    "/links",
    operation_id="listLinks",
    summary="List links by user_ref, status and provider (backend)",
    responses=documented(401, 403, 422, 503, 504),
)
async def list_links(
    caller: BackendCaller,
    context: Context,
    user_ref: Annotated[
        str | None,
        Query(min_length=1, max_length=256, description="The app's reference for its user."),
    ] = None,
    status: Annotated[LinkStatus | None, Query()] = None,
    provider: Annotated[Provider | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> LinkList:
    """Newest first. Visibility holds only a keyed hash of user_ref, never the value."""
    keys = context.settings.lookup.keys_for(user_ref) if user_ref is not None else None

    async def listing(client: LinkClient) -> LinkList:
        links = await client.list_links(
            user_ref_keys=keys, status=status, provider=provider, limit=limit
        )
        return LinkList(links=links)

    return await context.backend.run(listing)
