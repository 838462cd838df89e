"""Traces and metrics: one trace from the caller to the provider, metrics an operator can scrape.

The trace test runs an MX link with two MFA rounds (`user_otp`) on a real dev server, through a
client made by `linkflow.temporal.connect` and a worker built by `worker.build_worker`, with the
provider reached through a small proxy that notes each `traceparent` it is sent. Every span the
link makes, from the caller's through the workflow's and the activities' to the provider's HTTP
call, lands in one trace, the provider receives that trace in `traceparent`, and no span holds
a secret.

The metrics test serves a worker's runtime for Prometheus and scrapes it: the SDK's metrics,
linkflow's link counts by status, its provider error counter, and the two metrics the link
workflow records, which a replay of the same history does not count again.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

# The sandbox imports this module again for MetricsProbe; what it needs only outside a workflow
# passes through. `link_metrics` is imported inside the sandbox, as the link workflow does.
with workflow.unsafe.imports_passed_through():
    import httpx
    import pytest
    import uvicorn
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from api.app import create_app
    from api.codec_server import CodecAccess
    from linkflow.config import ConfigurationError, TemporalSettings
    from linkflow.devstack import free_port
    from linkflow.models import (
        ChallengeAnswer,
        Credentials,
        LinkRequest,
        LinkStatus,
        MfaSubmission,
        Provider,
    )
    from linkflow.telemetry import (
        LinkCounts,
        ProviderErrorMetrics,
        mask_query,
        metrics_address,
        prometheus_runtime,
        tracer_provider,
    )
    from linkflow.temporal import connect
    from sandbox.users import CORRECT_ANSWER
    from tests.conftest import TEST_KEY_RING, WEBHOOK_SECRET
    from tests.fixtures.leaks import found
    from tests.test_api import API_KEY, BACKEND, CODEC_TOKEN, api_settings

from workflows import link_metrics

SETTLED = {LinkStatus.MFA_REQUIRED, LinkStatus.CONNECTED, LinkStatus.ACTION_REQUIRED}
PASSWORD = "pass_good"
# What the worker, the provider and the codec hold that no span may: MX's sandbox keys (sent as
# Basic auth), the codec's key, the webhook signing secret; with the password and the answer.
SECRETS = [
    PASSWORD,
    CORRECT_ANSWER,
    "sandbox-api-key",
    API_KEY,
    CODEC_TOKEN,
    "bGlua2Zsb3ctdGVzdC1rZXktbm90LWEtc2VjcmV0LTE=",
    WEBHOOK_SECRET,
]
HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this process finishes, kept in memory, through linkflow's tracer provider."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = tracer_provider("linkflow-tests")
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    # A shut exporter keeps nothing more: later tests' spans go nowhere.
    exporter.shutdown()


async def traced_client(env: WorkflowEnvironment, **options: Any) -> Client:
    """A client made the way every linkflow process makes one, to the test's dev server."""
    settings = TemporalSettings(
        address=env.client.service_client.config.target_host, namespace=env.client.namespace
    )
    return await connect(settings, key_ring=TEST_KEY_RING, **options)


@asynccontextmanager
async def provider_proxy(upstream: str) -> AsyncIterator[tuple[str, list[str]]]:
    """A pass-through HTTP proxy to `upstream`; yields its URL and the `traceparent`s it saw."""
    traceparents: list[str] = []
    forward = httpx.AsyncClient(base_url=upstream, timeout=30)

    async def relay(request: Request) -> Response:
        if "traceparent" in request.headers:
            traceparents.append(request.headers["traceparent"])
        answer = await forward.request(
            request.method,
            request.url.path,
            params=request.url.query or None,
            headers={k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP},
            content=await request.body(),
        )
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(answer.content, answer.status_code, headers)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", relay, methods=methods)])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the proxy stopped before it started"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}", traceparents
    finally:
        server.should_exit = True
        await serving
        await forward.aclose()


def answer(challenge_id: str, value: str) -> MfaSubmission:
    return MfaSubmission(answers=[ChallengeAnswer(challenge_id=challenge_id, value=value)])


def span_text(span: ReadableSpan) -> str:
    """Everything a span would carry to a backend, as text."""
    return json.dumps(
        {
            "name": span.name,
            "attributes": dict(span.attributes or {}),
            "events": [[event.name, dict(event.attributes or {})] for event in span.events],
            "status": span.status.description,
            "links": [dict(link.attributes or {}) for link in span.links],
        },
        default=str,
    )


def is_http_client_span(span: ReadableSpan) -> bool:
    attributes = span.attributes or {}
    return span.kind is SpanKind.CLIENT and ("http.url" in attributes or "url.full" in attributes)


async def test_one_trace_from_the_caller_to_the_provider(
    dev_env: WorkflowEnvironment, run_worker, sandbox_url: str, spans: InMemorySpanExporter
):
    client = await traced_client(dev_env)
    caller = trace.get_tracer("tests.test_telemetry")
    async with (
        provider_proxy(sandbox_url) as (proxy_url, traceparents),
        run_worker(client, provider_url=proxy_url) as links,
    ):
        with caller.start_as_current_span("backend request") as root:
            link_id = await links.start_link(
                LinkRequest(
                    provider=Provider.MX,
                    user_ref="app-user-traced",
                    credentials=Credentials(username="user_otp", password=PASSWORD),
                )
            )
            waiting = await links.wait_for(link_id, SETTLED, within=timedelta(seconds=30))
            [phone] = waiting.pending_challenges
            after_phone = await links.submit_mfa(link_id, answer(phone.id, phone.options[0].value))
            [code] = after_phone.pending_challenges
            result = await links.submit_mfa(link_id, answer(code.id, CORRECT_ANSWER))
        assert result.status is LinkStatus.CONNECTED

    trace_id = root.get_span_context().trace_id
    finished = spans.get_finished_spans()
    in_trace = [span for span in finished if span.context.trace_id == trace_id]
    names = [span.name for span in in_trace]
    assert any(
        name.startswith(("StartWorkflow:", "StartUpdateWithStartWorkflow:")) for name in names
    )
    assert any(name.startswith("StartWorkflowUpdate:submit_mfa") for name in names), names
    assert any(name.startswith("RunWorkflow:") for name in names), names
    assert any(name.startswith("RunActivity:") for name in names), names
    assert any(is_http_client_span(span) for span in in_trace), names

    # Nothing the link did fell out of the trace: no orphaned workflow, activity or HTTP span.
    of_this_link = [
        span
        for span in finished
        if (span.attributes or {}).get("temporalWorkflowID") == link_id
        or proxy_url in str((span.attributes or {}).get("http.url", ""))
        or proxy_url in str((span.attributes or {}).get("url.full", ""))
    ]
    assert of_this_link
    assert {span.context.trace_id for span in of_this_link} == {trace_id}

    # The provider was sent the trace with every request.
    assert traceparents
    assert {traceparent.split("-")[1] for traceparent in traceparents} == {f"{trace_id:032x}"}

    leaked = {span.name: found(SECRETS, span_text(span)) for span in finished}
    assert {name: secrets for name, secrets in leaked.items() if secrets} == {}


@pytest.mark.parametrize(
    "address", ["9464", "localhost:9464", "http://0.0.0.0:9464", "0.0.0.0:99999", "0.0.0.0:"]
)
def test_a_metrics_address_that_is_no_ip_and_port_is_refused(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINKFLOW_METRICS_ADDRESS", address)
    with pytest.raises(ConfigurationError, match="must be an IP address and a port"):
        metrics_address()


def test_a_metrics_address_already_taken_is_refused_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ConfigurationError, match=f"Cannot serve metrics at {address}"):
            prometheus_runtime(address)


def test_url_queries_are_masked():
    assert mask_query("http://x/v1/links?user_ref=alice&limit=5") == (
        "http://x/v1/links?user_ref=REDACTED&limit=REDACTED"
    )
    assert mask_query("http://x/v1/links") == "http://x/v1/links"


async def test_api_requests_are_server_spans_without_their_query(spans: InMemorySpanExporter):
    from fastapi import FastAPI

    from linkflow.telemetry import instrument_api

    app = FastAPI()

    @app.get("/v1/things")
    async def things(user_ref: str) -> dict[str, str]:
        return {"ok": "yes"}

    instrument_api(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.get("/v1/things", params={"user_ref": "alice-personal-ref"})
    assert response.status_code == 200
    [server] = [
        span
        for span in spans.get_finished_spans()
        if span.kind is SpanKind.SERVER and span.name == "GET /v1/things"
    ]
    assert "alice-personal-ref" not in span_text(server)


async def test_an_api_request_is_the_root_of_the_links_trace(
    dev_env: WorkflowEnvironment, run_worker, spans: InMemorySpanExporter
):
    client = await traced_client(dev_env)
    async with run_worker(client) as links:
        app = create_app(
            TEST_KEY_RING,
            CodecAccess(tokens=(CODEC_TOKEN,)),
            api_settings=api_settings("http://link.example.test"),
            links=links,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            started = await http.post(
                "/v1/links",
                json={
                    "provider": "mx",
                    "user_ref": "app-user-api-traced",
                    "credentials": {"username": "user_good", "password": PASSWORD},
                },
                headers=BACKEND,
            )
            assert started.status_code == 201, started.text
            listed = await http.get(
                "/v1/links", params={"user_ref": "app-user-api-traced"}, headers=BACKEND
            )
            assert listed.status_code == 200, listed.text
    link_id = started.json()["link_id"]

    finished = spans.get_finished_spans()
    [request] = [
        span for span in finished if span.kind is SpanKind.SERVER and span.name == "POST /v1/links"
    ]
    of_this_link = [
        span for span in finished if (span.attributes or {}).get("temporalWorkflowID") == link_id
    ]
    assert any(span.name.startswith("RunActivity:") for span in of_this_link)
    assert {span.context.trace_id for span in of_this_link} == {request.context.trace_id}
    # The listing's query string (a user's reference) is masked; no span holds a secret.
    [listing] = [
        span for span in finished if span.kind is SpanKind.SERVER and span.name == "GET /v1/links"
    ]
    assert "app-user-api-traced" not in span_text(listing)
    leaked = {span.name: found(SECRETS, span_text(span)) for span in finished}
    assert {name: secrets for name, secrets in leaked.items() if secrets} == {}


# ------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class ProviderCall:
    provider: str


@activity.defn
async def failing_provider_call(call: ProviderCall) -> None:
    raise ApplicationError("The provider is down.", type="ProviderUnavailable", non_retryable=True)


@workflow.defn
class MetricsProbe:
    """Records the link's two metrics and meets one provider error, like a link would."""

    @workflow.run
    async def run(self) -> None:
        link_metrics.status_changed("mx", "CONNECTED")
        link_metrics.answer_settled("mx", 12.5)
        with suppress(ActivityError):
            await workflow.execute_activity(
                failing_provider_call,
                ProviderCall("mx"),
                start_to_close_timeout=timedelta(seconds=10),
            )


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of `name` whose labels include `labels`, or None."""
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{label}="{value}"' in line for label, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def scrape(address: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"http://{address}/metrics")
    assert response.status_code == 200
    return response.text


async def test_the_worker_serves_metrics_for_prometheus(dev_env: WorkflowEnvironment):
    address = f"127.0.0.1:{free_port()}"
    runtime = prometheus_runtime(address)
    client = await traced_client(dev_env, runtime=runtime)
    task_queue = f"metrics-{uuid.uuid4()}"
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[MetricsProbe],
        activities=[failing_provider_call],
        interceptors=[ProviderErrorMetrics([failing_provider_call])],
    )
    async with worker:
        handle = await client.start_workflow(
            MetricsProbe.run, id=f"metrics-{uuid.uuid4()}", task_queue=task_queue
        )
        await handle.result()
    counts = await LinkCounts(client, runtime).publish_once()
    assert set(counts) == set(LinkStatus)

    metrics = await scrape(address)
    changes = sample(metrics, "linkflow_link_status_changes", provider="mx", status="CONNECTED")
    assert changes == 1, metrics
    assert sample(metrics, "linkflow_answer_latency_count", provider="mx") == 1, metrics
    assert sample(metrics, "linkflow_answer_latency_bucket", provider="mx", le="10") == 0
    assert sample(metrics, "linkflow_answer_latency_bucket", provider="mx", le="20") == 1
    errors = sample(
        metrics, "linkflow_provider_errors", error_type="ProviderUnavailable", provider="mx"
    )
    assert errors == 1, metrics
    for status in LinkStatus:
        assert sample(metrics, "linkflow_links", status=status.value) is not None, metrics
    assert "temporal_workflow_completed" in metrics

    # Replaying the probe's history records nothing again.
    history = await handle.fetch_history()
    await Replayer(workflows=[MetricsProbe], runtime=runtime).replay_workflow(history)
    again = await scrape(address)
    assert sample(again, "linkflow_link_status_changes", provider="mx", status="CONNECTED") == 1
    assert sample(again, "linkflow_answer_latency_count", provider="mx") == 1
