"""Traces and metrics the way operators expect them, and none of a link's secrets in either.

Traces: one OpenTelemetry trace runs from the caller (an API request, or `LinkClient` in backend
code) through the link's workflow and its activities to the provider's HTTP call, whose
`traceparent` header carries it on to the provider. The Temporal SDK's `TracingInterceptor`
(added by `linkflow.temporal.connect`) links the Temporal steps; the httpx transport
(`providers/http.py`) and the FastAPI app (`instrument_api`) add the HTTP spans. A process sends
its spans by OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set,
and records none otherwise.

Spans must never hold a secret. Passwords, answers, tokens and keys travel in request bodies and
headers, never in a URL (tests/test_provider_privacy_contract.py), and no span records a body; a
URL's query string is masked all the same (the API's `user_ref` filter is personal data), and the
header-capture variables of the HTTP instrumentations are dropped, since headers carry the
providers' tokens and linkflow's keys.

Metrics: the worker serves the Temporal SDK's metrics for Prometheus at
`LINKFLOW_METRICS_ADDRESS` (`host:port`, path `/metrics`), together with linkflow's own:
`linkflow_links` (running links by status, counted through visibility every 30 s),
`linkflow_provider_errors` (failed attempts of provider activities, by error type and provider),
and the two the link workflow records itself (`workflows/link_metrics.py`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.exceptions import ApplicationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from linkflow.config import ConfigurationError
from linkflow.models import LinkStatus
from workflows.link_metrics import ANSWER_LATENCY_HISTOGRAM

logger = logging.getLogger(__name__)

METRICS_ADDRESS_VARIABLE = "LINKFLOW_METRICS_ADDRESS"
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# The HTTP instrumentations record these headers when asked to; linkflow's carry secrets.
HEADER_CAPTURE_VARIABLES = (
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
)
# Span attributes that hold a URL or its query string (old and stable HTTP conventions).
URL_ATTRIBUTES = ("http.url", "url.full", "http.target")
QUERY_ATTRIBUTES = ("url.query",)
MASK = "REDACTED"

LINKS_GAUGE = "linkflow_links"
PROVIDER_ERRORS_COUNTER = "linkflow_provider_errors"
# Seconds from a challenge being asked to its answer settling: a person typing a code, up to the
# provider's window (300 s by default).
ANSWER_LATENCY_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0)
LINK_COUNT_INTERVAL_SECONDS = 30.0


# ---------------------------------------------------------------------------------------- traces


def configure_tracing(service_name: str) -> TracerProvider | None:
    """Install the process's tracer provider, exporting by OTLP, when an OTLP endpoint is set.

    Returns the provider (shut it down before the process exits, so the last spans leave), or
    None when no endpoint is set or `OTEL_SDK_DISABLED` is true: then every span is a no-op.
    """
    forbid_header_capture()
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if not any(os.environ.get(name, "").strip() for name in OTLP_ENDPOINT_VARIABLES):
        return None
    # Imported here: only a process that exports pays for the exporter's import.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = tracer_provider(service_name, BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    logger.info("Sending traces by OTLP as %r", service_name)
    return provider


def tracer_provider(service_name: str, *processors: SpanProcessor) -> TracerProvider:
    """A tracer provider that masks URL queries before `processors` see a span.

    `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the service when set; `service_name`
    otherwise.
    """
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(QueryMasking())
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def shutdown_tracing(provider: TracerProvider | None) -> None:
    """Send the spans still queued; entry points leave by `os._exit`, which would drop them."""
    if provider is not None:
        provider.shutdown()


def forbid_header_capture() -> None:
    """Drop the variables that would have the HTTP instrumentations record request headers."""
    for name in HEADER_CAPTURE_VARIABLES:
        if os.environ.pop(name, None) is not None:
            logger.warning("%s is ignored: linkflow never records HTTP headers in spans", name)


def tracing_interceptor() -> TracingInterceptor:
    """The Temporal SDK's interceptor that carries the trace through workflows and activities.

    On a client it serves every worker built on that client as well.
    """
    return TracingInterceptor()


def instrument_api(app: Any) -> None:
    """Give each request to the FastAPI `app` a server span (health checks excepted).

    The per-message `receive`/`send` spans are left out: they say nothing an operator reads.
    """
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="healthz",
        exclude_spans=["receive", "send"],
        server_request_hook=_mask_server_span,
    )


def _mask_server_span(span: trace.Span, scope: dict[str, Any]) -> None:
    mask_url_attributes(span)


def mask_query(url: str) -> str:
    """`url` with the value of each query parameter replaced by `REDACTED`."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    return urlunsplit(parts._replace(query=masked_query(parts.query)))


def masked_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{name}={MASK}" for name, _ in pairs) or MASK


def mask_url_attributes(span: trace.Span) -> None:
    """Mask the query values in `span`'s URL attributes (an SDK span; others have none to read)."""
    attributes = getattr(span, "attributes", None) or {}
    for name in URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(name, mask_query(value))
    for name in QUERY_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str) and value:
            span.set_attribute(name, masked_query(value))


class QueryMasking(SpanProcessor):
    """Masks query values in a span's URL attributes as it starts, before any exporter sees it.

    The httpx instrumentation sets them as it starts a span; the ASGI one sets them again after,
    so `instrument_api` masks its server spans once more in its request hook.
    """

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        mask_url_attributes(span)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


# --------------------------------------------------------------------------------------- metrics


def metrics_address() -> str | None:
    """`LINKFLOW_METRICS_ADDRESS` (`ip:port`), or None when the worker serves no metrics."""
    value = os.environ.get(METRICS_ADDRESS_VARIABLE, "").strip()
    if not value:
        return None
    host, _, port = value.rpartition(":")
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        valid_port = port.isdigit() and 0 < int(port) < 65536
    except ValueError:
        valid_port = False
    if not valid_port:
        raise ConfigurationError(
            f"{METRICS_ADDRESS_VARIABLE} must be an IP address and a port, like 0.0.0.0:9464"
            " (all interfaces) or 127.0.0.1:9464."
        )
    return value


def prometheus_runtime(bind_address: str) -> Runtime:
    """A Temporal runtime serving its metrics, and linkflow's, at http://bind_address/metrics."""
    try:
        return Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(
                    bind_address=bind_address,
                    histogram_bucket_overrides={ANSWER_LATENCY_HISTOGRAM: ANSWER_LATENCY_BUCKETS},
                )
            )
        )
    except (ValueError, RuntimeError, OSError) as error:  # the address is taken, or not ours
        raise ConfigurationError(
            f"Cannot serve metrics at {bind_address} ({METRICS_ADDRESS_VARIABLE}): {error}"
        ) from None


def prometheus_runtime_from_env() -> Runtime | None:
    address = metrics_address()
    if address is None:
        return None
    logger.info("Serving metrics for Prometheus at http://%s/metrics", address)
    return prometheus_runtime(address)


class LinkCounts:
    """Publishes `linkflow_links{status}`: the running links in each status, from visibility.

    One workflow cannot know how many links stand where, so the worker asks visibility. Only
    running executions count: a link that continued as new leaves closed runs carrying its status.
    """

    def __init__(
        self,
        client: Client,
        runtime: Runtime,
        *,
        statuses: Iterable[LinkStatus] = tuple(LinkStatus),
        interval_seconds: float = LINK_COUNT_INTERVAL_SECONDS,
    ) -> None:
        self._client = client
        self._statuses = tuple(statuses)
        self._interval_seconds = interval_seconds
        self._gauge = runtime.metric_meter.create_gauge(
            LINKS_GAUGE, "Running account links by LinkStatus", "links"
        )
        self._failing = False

    async def publish_once(self) -> dict[LinkStatus, int]:
        """Count each status and set the gauge; returns the counts."""
        counts: dict[LinkStatus, int] = {}
        for status in self._statuses:
            counted = await self._client.count_workflows(link_count_query(status))
            counts[status] = counted.count
            self._gauge.set(counted.count, {"status": status.value})
        return counts

    async def run(self) -> None:
        """Publish every interval until cancelled; a failed count is logged once and retried."""
        while True:
            try:
                await self.publish_once()
                self._failing = False
            except RPCError as error:
                if not self._failing:
                    logger.warning("Counting links by status failed: %s", error.message)
                self._failing = True
            await asyncio.sleep(self._interval_seconds)


def link_count_query(status: LinkStatus) -> str:
    return f"LinkStatus = '{status.value}' AND ExecutionStatus = 'Running'"


class ProviderErrorMetrics(Interceptor):
    """Counts each failed attempt of a provider activity as `linkflow_provider_errors`.

    Labels: `error_type` (the `ApplicationError`'s type, else the exception's class), `provider`
    (read from the activity's input when it names one) and the SDK's own (`activity_type`,
    `namespace`, `task_queue`). Only the activities in `provider_activities` (the functions the
    worker registers) are counted: a webhook's failure is not the provider's.
    """

    def __init__(self, provider_activities: Iterable[Callable[..., Any]]) -> None:
        self.provider_activities = frozenset(provider_activities)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountProviderErrors(next, self.provider_activities)


class _CountProviderErrors(ActivityInboundInterceptor):
    def __init__(
        self, next: ActivityInboundInterceptor, provider_activities: frozenset[Callable[..., Any]]
    ) -> None:
        super().__init__(next)
        self._provider_activities = provider_activities

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except Exception as error:
            if input.fn in self._provider_activities:
                count_provider_error(error, input.args)
            raise


def count_provider_error(error: Exception, args: Sequence[Any]) -> None:
    counter = activity.metric_meter().create_counter(
        PROVIDER_ERRORS_COUNTER, "Failed attempts of provider activities", "errors"
    )
    counter.add(1, {"error_type": error_type(error), "provider": provider_named_in(args)})


def error_type(error: Exception) -> str:
    if isinstance(error, ApplicationError) and error.type:
        return error.type
    return type(error).__name__


def provider_named_in(args: Sequence[Any]) -> str:
    """The provider an activity's input names (`input.provider` or `input.request.provider`)."""
    for arg in args:
        for holder in (arg, getattr(arg, "request", None)):
            provider = getattr(holder, "provider", None)
            if isinstance(provider, str) and provider:
                return str(provider)
    return "unknown"
