"""schemathesis against the API's own OpenAPI document, through the real dev stack.

The dev server, sandbox, worker and `python -m api` run as processes; schemathesis reads
`/openapi.json` from the running API and sends each operation valid and invalid requests
(bounded by `MAX_EXAMPLES` per operation and generation mode, so CI stays fast) with the stack's
API key. Every answer must be a documented status with a documented body, never a 5xx, and every
refusal must be in the one error shape; each valid request is sent again without its API key and
must be refused with 401. Cases that would start links are real starts at the sandbox; their
webhook URLs are removed first, so no link created here ever posts anywhere.

Each operation and generation mode is a pytest test of its own, its cases drawn from
schemathesis's strategies under hypothesis (schemathesis's lazy pytest loader fails on pytest 9).

The figures of the last run are written to `<stack state>/fuzz-figures.json` and printed (run
with `-s` to see them).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx

# The hypothesis and schemathesis modules below are imported now, while pytest collects, rather
# than lazily mid-run: pytest rewrites them as it imports them (their packages are pytest plugins),
# and on CPython 3.11.7 an `ast.parse` in a process whose other threads are busy can fail with "AST
# constructor recursion depth mismatch" (cpython issue 106905, fixed in 3.11.8). Two fresh-clone
# runs failed that way: in a schemathesis module, then in one of these four hypothesis ones (a
# pytest plugin that lists modules imported after collection now finds none).
import hypothesis.internal.conjecture.optimiser
import hypothesis.strategies._internal.flatmapped
import hypothesis.strategies._internal.random
import hypothesis.strategies._internal.regex  # noqa: F401 (imported for its side: see above)
import pytest
import schemathesis
import schemathesis.generation.body_overrides
import schemathesis.generation.dictionaries
import schemathesis.specs.openapi.schemas
import schemathesis.transport.asgi
import schemathesis.transport.wsgi
from hypothesis import HealthCheck, given, settings, strategies
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from linkflow.devstack import DevStack, StackPorts
from tests.test_api_errors import app_for

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 25
REQUEST_TIMEOUT_SECONDS = 60
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
ERROR_FIELDS = {"code", "message", "detail", "action"}
# The operations, read from the same app in process, so each is a test of its own.
OPERATIONS = [
    (method.upper(), path)
    for path, operations in app_for().openapi()["paths"].items()
    for method in operations
]

figures: dict[str, Counter[str]] = {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    ports = StackPorts.free()
    stack = DevStack(ports=ports, state_dir=tmp_path_factory.mktemp("fuzz-stack"))
    with pytest.MonkeyPatch.context() as environment:
        # An event stream for a link the fuzzer made ends soon, so its case ends too.
        environment.setenv("LINKFLOW_EVENTS_STREAM_SECONDS", "2")
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()
            _report(stack)


@pytest.fixture(scope="module")
def real_links(stack: DevStack) -> list[str]:
    """Links for the generated requests to act on besides made-up ids: connected, waiting for
    an answer, and held."""
    link_ids = []
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.ports.api}", timeout=60) as http:
        for username in ("user_good", "user_mfa", "user_hold"):
            started = http.post(
                "/v1/links",
                json={
                    "provider": "mx",
                    "user_ref": "fuzzed-user",
                    "credentials": {"username": f"{username}+fuzz", "password": "pass_good"},
                },
                headers={"Authorization": f"Bearer {stack.api_key()}"},
            )
            assert started.status_code == 201, started.text
            link_ids.append(started.json()["link_id"])
    return link_ids


@pytest.fixture(scope="module")
def api_schema(stack: DevStack) -> Any:
    """The document as the running API serves it."""
    return schemathesis.openapi.from_url(
        f"http://127.0.0.1:{stack.ports.api}/openapi.json", timeout=30
    )


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_fails_the_api_and_every_refusal_has_the_one_shape(
    method: str,
    path: str,
    mode: GenerationMode,
    api_schema: Any,
    stack: DevStack,
    real_links: list[str],
) -> None:
    if (method, path, mode) == ("GET", "/healthz", GenerationMode.NEGATIVE):
        pytest.skip("/healthz takes no input, so no request to it is invalid")
    operation = api_schema[path][method]
    authorization = {"Authorization": f"Bearer {stack.api_key()}"}

    strategy = operation.as_strategy(generation_mode=mode)
    if "{link_id}" in path and mode is GenerationMode.POSITIVE:
        on_real_links = [
            operation.as_strategy(generation_mode=mode, path_parameters={"link_id": link_id})
            for link_id in real_links
        ]
        strategy = strategies.one_of(strategy, *on_real_links)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        # The same examples on every run, so CI is reproducible; raise MAX_EXAMPLES to explore.
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def examples(case: Any) -> None:
        _without_webhooks(case.body)
        if mode is GenerationMode.POSITIVE:
            _as_a_backend_starts(case.body)
        if case.headers is None:
            case.headers = {}
        case.headers.update(authorization)
        response = case.call(timeout=REQUEST_TIMEOUT_SECONDS)
        counts = figures.setdefault(f"{method} {path}", Counter())
        counts[f"{mode.value} {_outcome(response)}"] += 1
        case.validate_response(response, checks=CHECKS)
        _check_error_shape(response)
        if mode is GenerationMode.POSITIVE and path.startswith("/v1/"):
            # The same request with no credential: refused, in the same shape.
            del case.headers["Authorization"]
            anonymous = case.call(timeout=REQUEST_TIMEOUT_SECONDS)
            counts[f"without auth {_outcome(anonymous)}"] += 1
            assert anonymous.status_code == 401, anonymous.text
            _check_error_shape(anonymous)

    examples()


def _outcome(response: Any) -> str:
    """`201`, or `409 answer_refused`: the status and, for a refusal, its code."""
    if response.status_code < 400:
        return str(response.status_code)
    try:
        return f"{response.status_code} {response.json()['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} (not the error shape)"


def _check_error_shape(response: Any) -> None:
    if response.status_code < 400:
        return
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == ERROR_FIELDS, body
    assert all(isinstance(body["error"][field], str) for field in ERROR_FIELDS)


def _as_a_backend_starts(body: object) -> None:
    """A backend's start names its provider and user (the schema leaves them optional, since a
    page's start takes them from its session), so positive starts really start links."""
    if not isinstance(body, dict):
        return
    if "credentials" in body:  # POST /v1/links
        body["provider"] = body.get("provider") or "mx"
        body["user_ref"] = body.get("user_ref") or "fuzzed-user"
    elif body.get("link_id") is None:  # POST /v1/link-sessions for a new link
        body["provider"] = body.get("provider") or "mx"


def _without_webhooks(body: object) -> None:
    """No generated link may post a webhook: the worker would reach out to whatever it names."""
    if isinstance(body, dict) and isinstance(body.get("options"), dict):
        body["options"].pop("webhook_url", None)


def _report(stack: DevStack) -> None:
    if not figures:
        return
    statuses: Counter[str] = Counter()
    for counts in figures.values():
        statuses.update(counts)
    report = {
        "operations": len(figures),
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "by_operation": {name: dict(sorted(counts.items())) for name, counts in figures.items()},
    }
    (stack.state_dir / "fuzz-figures.json").write_text(json.dumps(report, indent=2))
    print("\nschemathesis figures:", json.dumps(report, indent=2))
