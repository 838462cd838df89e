"""Who is calling: the app's backend with an API key, or an end user's page with a link token.

Both send `Authorization: Bearer ...`; a link token is told apart by its `lt1.` prefix (API keys
may not start with it). An API key may do anything with any link. A link token may act only on
its session's link (403 `link_token_wrong_link` otherwise) and only as its session allows (403
`link_token_action_not_allowed`); an expired one is 401 `link_token_expired`, and one that was
altered, or sealed with a secret no longer configured, is 401 `link_token_invalid`. API keys are
compared in constant time against every configured key.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.context import ApiContext, api_context
from api.errors import ApiError
from api.link_tokens import (
    LinkAction,
    LinkSessionClaims,
    LinkTokenExpired,
    LinkTokenRefused,
    is_link_token,
)

api_key_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="The app's API key (LINKFLOW_API_KEYS), for calls from the app's backend.",
)
link_token_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="LinkToken",
    bearerFormat="lt1.…",
    description="A link token from POST /v1/link-sessions, for the end user's page.",
)

NEW_SESSION = "POST /v1/link-sessions (from the app's backend) for a new link token"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: an API key (by its position) or a link session."""

    api_key: int | None = None
    session: LinkSessionClaims | None = None

    def may(self, action: LinkAction, link_id: str) -> None:
        """Refuse a link token that is for another link or does not allow `action`."""
        if self.session is None:
            return
        if self.session.link_id != link_id:
            raise ApiError(
                403,
                "link_token_wrong_link",
                "This page cannot act on that link.",
                "The link token is for another link.",
                NEW_SESSION,
            )
        if not self.session.allows(action):
            raise ApiError(
                403,
                "link_token_action_not_allowed",
                "This page cannot do that.",
                f"The link token's session does not allow `{action.value}`; its actions are"
                f" {', '.join(sorted(self.session.actions))}.",
                NEW_SESSION,
            )


def link_token_expired(detail: str) -> ApiError:
    return ApiError(
        401,
        "link_token_expired",
        "This page has expired. Go back to the app and start again.",
        detail,
        NEW_SESSION,
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _unauthenticated(detail: str) -> ApiError:
    return ApiError(
        401,
        "unauthenticated",
        "You are not signed in to this service.",
        detail,
        "send Authorization: Bearer <API key or link token>",
        {"WWW-Authenticate": "Bearer"},
    )


def _identify(
    request: Request,
    context: ApiContext,
    credentials: HTTPAuthorizationCredentials | None,
) -> Caller:
    if credentials is None:
        if "authorization" in request.headers:
            raise _unauthenticated("The Authorization header is not `Bearer <credential>`.")
        raise _unauthenticated("The request has no Authorization header.")
    credential = credentials.credentials.strip()
    if is_link_token(credential):
        try:
            return Caller(session=context.settings.link_tokens.open(credential))
        except LinkTokenExpired:
            raise link_token_expired("The link token is past its expiry.") from None
        except LinkTokenRefused:
            raise ApiError(
                401,
                "link_token_invalid",
                "This page's link is not valid. Go back to the app and start again.",
                "The link token was altered, is not a link token, or was issued with a secret no"
                " longer configured.",
                NEW_SESSION,
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from None
    offered = credential.encode()
    # Compare with every key, always, so the time taken says nothing about which matched.
    matches = [hmac.compare_digest(offered, key.encode()) for key in context.settings.api_keys]
    if any(matches):
        return Caller(api_key=matches.index(True))
    raise _unauthenticated("The API key is not one of the configured keys.")


async def any_caller(
    request: Request,
    context: Annotated[ApiContext, Depends(api_context)],
    api_key: Annotated[HTTPAuthorizationCredentials | None, Security(api_key_scheme)],
    link_token: Annotated[HTTPAuthorizationCredentials | None, Security(link_token_scheme)],
) -> Caller:
    """An API key or a link token (the route checks what the token may do)."""
    return _identify(request, context, api_key or link_token)


async def backend_caller(
    request: Request,
    context: Annotated[ApiContext, Depends(api_context)],
    api_key: Annotated[HTTPAuthorizationCredentials | None, Security(api_key_scheme)],
) -> Caller:
    """An API key only: link tokens are refused with 403."""
    caller = _identify(request, context, api_key)
    if caller.session is not None:
        raise ApiError(
            403,
            "api_key_required",
            "This page cannot do that.",
            "This call is for the app's backend: send its API key, not a link token.",
            "call it from the backend with Authorization: Bearer <API key>",
        )
    return caller


AnyCaller = Annotated[Caller, Depends(any_caller)]
BackendCaller = Annotated[Caller, Depends(backend_caller)]
