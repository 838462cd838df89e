"""Connecting to Temporal the one way every linkflow process does.

One data converter (pydantic, sealed by the payload codec), one set of search attributes, one place
that registers them, and one set of server limits, so the worker, the CLI, the tests and backend
code never disagree about how a link is stored, found or bounded. A process without the codec's
keys refuses to connect: it could neither read a link nor write one that stays sealed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, Interceptor, TLSConfig
from temporalio.common import SearchAttributeKey
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError, RPCStatusCode

from linkflow.codec import KeyRing, data_converter, require_key_ring
from linkflow.config import ConfigurationError, TemporalSettings
from linkflow.telemetry import tracing_interceptor

LINK_STATUS = SearchAttributeKey.for_keyword("LinkStatus")
LINK_PROVIDER = SearchAttributeKey.for_keyword("LinkProvider")
# A keyed hash of the app's user_ref (never the value: visibility holds no personal data), so the
# app can list one user's links.
LINK_USER_REF = SearchAttributeKey.for_keyword("LinkUserRef")
SEARCH_ATTRIBUTES = (LINK_STATUS, LINK_PROVIDER, LINK_USER_REF)


def link_search_attributes(
    status: str, provider: str | None, user_ref_key: str | None
) -> list[tuple[SearchAttributeKey[str], str]]:
    """The search attributes a link carries, as (key, value): its status and, when known, its
    provider and the keyed hash of its user's reference."""
    attributes = [(LINK_STATUS, status)]
    if provider is not None:
        attributes.append((LINK_PROVIDER, provider))
    if user_ref_key:
        attributes.append((LINK_USER_REF, user_ref_key))
    return attributes


# What one caller can put in a link's history, set on the server: any payload (a signal's, a
# start's) over BLOB_SIZE_ERROR_BYTES is refused by the server before it is recorded (the default,
# 2 MB, lets a few refused messages fill a history to its limit), and a run accepts at most
# MAX_SIGNALS_PER_RUN signals; continue-as-new starts the count again.
# Updates need their own bound: the server admits an update of any size below its gRPC limit, and
# the worker's answer to it (acceptance or rejection) repeats the update's input. An input over the
# blob limit makes that answer unsendable, so the workflow task fails on every retry while the
# update waits. Capping the payloads of a link's in-flight updates well below the blob limit has
# the server refuse such an update at admission instead.
BLOB_SIZE_ERROR_BYTES = 256 * 1024
BLOB_SIZE_WARN_BYTES = 64 * 1024
MAX_SIGNALS_PER_RUN = 200
MAX_IN_FLIGHT_UPDATE_BYTES = 128 * 1024
# And what linkflow holds open: a link with a webhook keeps one long-poll of its history open while
# it converses (its follower, `activities/webhooks.py`), as does each open event stream of the API.
# The server admits 1,200 concurrent long-polls of one method per namespace and frontend by
# default and refuses the rest; this admits one per link a worker holds waiting (10,000), twice.
LONG_POLLS_PER_NAMESPACE = 20_000
SERVER_LIMITS: dict[str, int] = {
    "limit.blobSize.error": BLOB_SIZE_ERROR_BYTES,
    "limit.blobSize.warn": BLOB_SIZE_WARN_BYTES,
    "history.maximumSignalsPerExecution": MAX_SIGNALS_PER_RUN,
    "history.maxInFlightUpdatePayloads": MAX_IN_FLIGHT_UPDATE_BYTES,
    "frontend.namespaceCount": LONG_POLLS_PER_NAMESPACE,
}

logger = logging.getLogger(__name__)


async def connect(
    settings: TemporalSettings | None = None,
    *,
    runtime: Runtime | None = None,
    key_ring: KeyRing | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """A client that seals every payload with `key_ring` (by default the configured one).

    The client carries the caller's trace into every workflow it starts, updates or signals (the
    SDK's tracing interceptor, before `interceptors`), and so do the workers built on it; with no
    tracer provider installed that costs nothing. `runtime` is where the client's metrics go (a
    worker's Prometheus runtime, see `linkflow.telemetry`).

    Raises `ConfigurationError` (a `RuntimeError`) when no key is configured or a TLS file
    cannot be read, before any connection is attempted.
    """
    settings = settings or TemporalSettings.from_env()
    converter = data_converter(key_ring or require_key_ring())
    client = await Client.connect(
        settings.address,
        namespace=settings.namespace,
        api_key=settings.api_key,
        tls=tls_config(settings),
        data_converter=converter,
        interceptors=[tracing_interceptor(), *interceptors],
        runtime=runtime,
    )
    await _check_namespace(client, settings)
    return client


async def _check_namespace(client: Client, settings: TemporalSettings) -> None:
    """Refuse a namespace the server does not have: every call would fail NOT_FOUND, which
    reads as "no such link" rather than as the configuration it is. Any other refusal (a key
    that may not describe namespaces, say) is left to the calls that follow."""
    request = DescribeNamespaceRequest(namespace=settings.namespace)
    try:
        await client.workflow_service.describe_namespace(request)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise ConfigurationError(
                f"Temporal at {settings.address} has no namespace {settings.namespace!r}"
                " (TEMPORAL_NAMESPACE)."
            ) from None


def tls_config(settings: TemporalSettings) -> bool | TLSConfig:
    """TLS as the settings ask: off, the system's roots, or a CA, a client pair and a name."""
    if not settings.uses_tls:
        return False
    if not any(
        (
            settings.tls_server_ca_cert_path,
            settings.tls_client_cert_path,
            settings.tls_server_name,
        )
    ):
        return True
    return TLSConfig(
        server_root_ca_cert=_read_pem(
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH", settings.tls_server_ca_cert_path
        ),
        client_cert=_read_pem("TEMPORAL_TLS_CLIENT_CERT_PATH", settings.tls_client_cert_path),
        client_private_key=_read_pem("TEMPORAL_TLS_CLIENT_KEY_PATH", settings.tls_client_key_path),
        domain=settings.tls_server_name,
    )


def _read_pem(variable: str, path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigurationError(
            f"{variable} names {path}, which cannot be read: {error.strerror}."
        ) from None


def quiet_runtime() -> Runtime:
    """A runtime whose client logs only errors: its retry warnings would flood a chaos run."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )


def dev_server_search_attribute_args() -> list[str]:
    """`temporal server start-dev` flags that register linkflow's search attributes at start."""
    args: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    return args


def dev_server_limit_args() -> list[str]:
    """`temporal server start-dev` flags that set `SERVER_LIMITS` (values are JSON)."""
    args: list[str] = []
    for key, value in SERVER_LIMITS.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    return args


async def ensure_search_attributes(client: Client) -> None:
    """Register the search attributes if the namespace lacks them (a fresh cluster, say)."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if not missing:
        return
    logger.info("Registering search attributes %s", ", ".join(missing))
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
    )
