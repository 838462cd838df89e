"""One shape for every refusal the API makes, FastAPI's own 404, 405 and 422 included.

    {"error": {"code": "link_token_expired",
               "message": "This page has expired. Go back to the app and start again.",
               "detail": "The link token's 30 minutes are over.",
               "action": "POST /v1/link-sessions"}}

`code` is for programs, `message` for the end user, `detail` for the developer, and `action` names
the call that mends it, the way a link's `reason` does. A refusal never repeats what the caller
sent: validation errors name the field and the rule, as `linkflow.refusals` does, never the value
(which may be a password, an answer or a token).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from linkflow.refusals import bounded, describe_errors

logger = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str = Field(description="A machine code, stable across releases: `link_not_found`.")
    message: str = Field(description="A sentence the app may show its end user.")
    detail: str = Field(description="A sentence for the developer: what exactly was refused.")
    action: str = Field(description="The call that mends it, or `none`.")


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer of the API."""

    error: ErrorDetail


class ApiError(Exception):
    """A refusal, raised anywhere below a route and answered in the one shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: str,
        action: str = "none",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body = ErrorBody(
            error=ErrorDetail(code=code, message=message, detail=bounded(detail), action=action)
        )
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse(
            self.body.model_dump(mode="json"), status_code=self.status, headers=self.headers
        )


def error_response(
    status: int,
    code: str,
    message: str,
    detail: str,
    action: str = "none",
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return ApiError(status, code, message, detail, action, headers).response()


# What the OpenAPI document says each refusal looks like.
def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorBody, "description": STATUS_MEANINGS[status]} for status in statuses
    }


def documented_json(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`documented`, for a route whose own responses are not JSON (the event stream)."""
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {
        status: {
            "description": STATUS_MEANINGS[status],
            "content": {"application/json": {"schema": schema}},
        }
        for status in statuses
    }


STATUS_MEANINGS = {
    400: "The body could not be read as UTF-8 JSON.",
    401: "No credential, or one that is unknown, altered or expired.",
    403: "The credential is valid but may not do this.",
    404: "No such link (or route).",
    405: "The route takes another method.",
    409: "The link refused the request in its current state; nothing changed.",
    413: "The body is too large.",
    415: "The body is not JSON.",
    422: "The body, a parameter or a header is invalid; `detail` names it.",
    429: "Too many attempts with this link token; wait `Retry-After` seconds.",
    503: "Temporal or the API's configuration is unavailable; retry later.",
    504: "The link did not answer in time; it may still act. Retry with the same Idempotency-Key.",
}


def unreadable_body(errors: Sequence[Any]) -> str | None:
    """Why the body could not be read as JSON at all (a 400, not a field's 422), or None.

    FastAPI reports a JSON body that does not parse as `json_invalid` at `body.<character>`, and
    a body sent without a JSON Content-Type as raw bytes where the object should be.
    """
    for error in errors:
        where = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            at = f" at character {where[-1]}" if where and isinstance(where[-1], int) else ""
            return f"The request body is not valid JSON{at}."
        if where == ("body",) and isinstance(error.get("input"), bytes):
            return "The request body was not sent as JSON."
    return None


HTTP_CODES = {
    400: ("bad_request", "The request could not be read."),
    404: ("not_found", "There is no such page."),
    405: ("method_not_allowed", "This request is not possible here."),
    413: ("body_too_large", "The request is too large."),
    415: ("unsupported_media_type", "The request could not be read."),
}


def install_error_handlers(app: FastAPI) -> None:
    """Answer FastAPI's and Starlette's own refusals in the one shape."""

    async def on_api_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return error.response()

    async def on_validation_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        unreadable = unreadable_body(error.errors())
        if unreadable is not None:
            return error_response(
                400,
                "bad_request",
                "The request could not be read.",
                unreadable,
                "send the body as UTF-8 JSON with Content-Type: application/json",
            )
        return error_response(
            422,
            "invalid_request",
            "Something in the request is not valid.",
            describe_errors(error.errors(), nowhere="request"),
            "fix the named fields and send the request again",
        )

    async def on_http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        code, message = HTTP_CODES.get(error.status_code, ("http_error", "The request failed."))
        detail = {
            400: "The request body could not be parsed: send UTF-8 JSON, nested a few hundred"
            " levels at most.",
            404: "No route matches this path; see /openapi.json.",
            405: "This route does not take this method; see the Allow header.",
        }.get(error.status_code, f"HTTP {error.status_code}.")
        return error_response(
            error.status_code, code, message, detail, "see /docs", headers=error.headers
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


class LastResort:
    """ASGI middleware: an exception nothing else handled becomes a 500 in the one shape.

    Only the exception's type is logged. Letting it reach the server would log its message and
    traceback, and a message can quote what the caller sent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            logger.error(
                "Unhandled %s in %s %s", type(error).__name__, scope["method"], _path(scope)
            )
            if started:
                return
            body = ApiError(
                500,
                "internal_error",
                "Something went wrong on our side.",
                "The API failed unexpectedly; its log names the error's type.",
                "retry later",
            ).body
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send(
                {"type": "http.response.body", "body": json.dumps(body.model_dump()).encode()}
            )


def _path(scope: Scope) -> str:
    return str(scope.get("path", ""))[:200]
