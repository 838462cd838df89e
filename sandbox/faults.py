"""Injected provider failures, so that a chaos test can prove no link is lost to a flaky provider.

`FaultInjector` sits in front of every provider route (never `/health` or `/_sandbox/*`) and, per
request, draws at most one fault from the `FaultPlan` in force:

| kind | what the client sees | does the provider run the request? |
|---|---|---|
| `error` | 500, 502 or 503 with a JSON body | no |
| `throttle` | 429 with `Retry-After: <retry_after_seconds>` | no |
| `timeout` | nothing for `hang_seconds`, then a cut connection | no |
| `drop` | a cut connection mid-response (httpx: `RemoteProtocolError`) | yes |

`hang_seconds` defaults to 25, past the client's 20 s read timeout (`providers/http.py`).

`drop` is the lost response that makes a client retry a write the provider has already done: the
provider's answer is captured, then its status line, headers and half its body are sent under a
`Content-Length` larger than the body, and the app returns without finishing. uvicorn then closes
the connection (logging "ASGI callable returned without completing response."), and the client
reads a body that ends early. `timeout` ends the same way after its wait, unless the client has
hung up first.

The plan is changed at run time through `/_sandbox/faults` (see `Faults.routes`) or set at start
by `python -m sandbox --error-rate ...`; a `seed` makes the draws reproducible.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["error", "throttle", "timeout", "drop"]
FAULT_KINDS: tuple[FaultKind, ...] = ("error", "throttle", "timeout", "drop")
ERROR_STATUSES = (500, 502, 503)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Statuses whose response has no body by definition: a client would read them as complete.
BODYLESS_STATUSES = frozenset({204, 304})
RATE_SUM_TOLERANCE = 1e-9


class FaultPlan(BaseModel):
    """How often each fault happens; one draw per request picks at most one of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    throttle_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    retry_after_seconds: int = Field(default=1, ge=0)
    hang_seconds: float = Field(default=25.0, ge=0.0)
    seed: int | None = None
    only_writes: bool = False

    @model_validator(mode="after")
    def _rates_fit_one_draw(self) -> FaultPlan:
        total = self.error_rate + self.throttle_rate + self.timeout_rate + self.drop_rate
        if total > 1.0 + RATE_SUM_TOLERANCE:
            raise ValueError(
                "error_rate + throttle_rate + timeout_rate + drop_rate must be at most 1 "
                f"(each request gets at most one fault); they add up to {total:g}"
            )
        return self

    def rates(self) -> tuple[tuple[FaultKind, float], ...]:
        return (
            ("error", self.error_rate),
            ("throttle", self.throttle_rate),
            ("timeout", self.timeout_rate),
            ("drop", self.drop_rate),
        )


class Faults:
    """The plan in force, its random source, and how many of each fault it has injected."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = FaultPlan()
        self.rng = random.Random()
        self.set_plan(plan or FaultPlan())
        self.counts: dict[FaultKind, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.requests = 0

    def set_plan(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)

    def reset_counts(self) -> None:
        self.counts = dict.fromkeys(FAULT_KINDS, 0)
        self.requests = 0

    def draw(self, method: str) -> FaultKind | None:
        """Count one provider request and pick its fault, if any."""
        self.requests += 1
        if method == "HEAD" or (self.plan.only_writes and method not in WRITE_METHODS):
            return None
        point = self.rng.random()
        for kind, rate in self.plan.rates():
            if point < rate:
                self.counts[kind] += 1
                return kind
            point -= rate
        return None

    # ------------------------------------------------------------------ control plane

    def routes(self) -> list[Route]:
        """`/faults` for the `/_sandbox` mount: GET the plan, PUT a new one, DELETE all faults."""
        return [
            Route("/faults", self._get_plan, methods=["GET"]),
            Route("/faults", self._put_plan, methods=["PUT"]),
            Route("/faults", self._delete_plan, methods=["DELETE"]),
        ]

    async def _get_plan(self, request: Request) -> JSONResponse:
        return JSONResponse(self.plan.model_dump())

    async def _put_plan(self, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _control_error(400, "The body must be a JSON fault plan.")
        if not isinstance(body, dict):
            return _control_error(400, "The body must be a JSON object (a fault plan).")
        try:
            plan = FaultPlan.model_validate(body)
        except ValidationError as invalid:
            details = invalid.errors(include_url=False, include_context=False, include_input=False)
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'plan'}: {error['msg']}"
                for error in details
            )
            return _control_error(422, f"Invalid fault plan: {problems}", details)
        self.set_plan(plan)
        return JSONResponse(plan.model_dump())

    async def _delete_plan(self, request: Request) -> JSONResponse:
        self.set_plan(FaultPlan())
        return JSONResponse(self.plan.model_dump())


def _control_error(status: int, message: str, details: Any = None) -> JSONResponse:
    error: dict[str, Any] = {"message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status)


class FaultInjector:
    """ASGI middleware: inject the plan's faults into requests under the provider prefixes."""

    def __init__(self, app: ASGIApp, faults: Faults, prefixes: Iterable[str]) -> None:
        self.app = app
        self.faults = faults
        self.prefixes = tuple(prefix.rstrip("/") for prefix in prefixes)

    def _is_provider_path(self, path: str) -> bool:
        return any(path == prefix or path.startswith(f"{prefix}/") for prefix in self.prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._is_provider_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        kind = self.faults.draw(scope["method"])
        plan = self.faults.plan
        if kind == "error":
            status = self.faults.rng.choice(ERROR_STATUSES)
            await _send_json(send, status, _fault_body(kind, f"Injected HTTP {status}."), kind)
        elif kind == "throttle":
            message = f"Injected throttle; retry after {plan.retry_after_seconds} s."
            await _send_json(
                send,
                429,
                _fault_body(kind, message),
                kind,
                [(b"retry-after", str(plan.retry_after_seconds).encode())],
            )
        elif kind == "timeout":
            await _hang(receive, plan.hang_seconds)
            await _cut(send, kind, 504, [(b"content-type", b"application/json")], b"")
        elif kind == "drop":
            await self._process_then_cut(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _process_then_cut(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        if start is None:
            return
        await _cut(send, "drop", start["status"], list(start.get("headers", [])), bytes(body))


async def _hang(receive: Receive, seconds: float) -> None:
    """Wait `seconds`, or less if the client hangs up first."""

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(until_disconnect(), timeout=seconds)


async def _cut(
    send: Send, kind: FaultKind, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """Start a response that promises more body than it sends, then stop: the server cuts it."""
    if status in BODYLESS_STATUSES or status < 200:
        # These carry no body however long the Content-Length, so the client would take them as
        # complete; the status line of a response that never completes is no answer anyway.
        status = 200
    kept = [
        (name, value)
        for name, value in headers
        if name.lower() not in (b"content-length", b"transfer-encoding")
    ]
    promised = str(len(body) + 1).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*kept, (b"content-length", promised), (b"x-sandbox-fault", kind.encode())],
        }
    )
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})


def _fault_body(kind: FaultKind, message: str) -> dict[str, Any]:
    return {"error": {"code": f"sandbox_fault_{kind}", "message": message}}


async def _send_json(
    send: Send,
    status: int,
    content: dict[str, Any],
    kind: FaultKind,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(content).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-sandbox-fault", kind.encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
