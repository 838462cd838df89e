"""Connecting to Temporal the one way every linkflow process does.

One data converter (pydantic), one set of search attributes, one place that registers them, so the
worker, the CLI, the tests and backend code never disagree about how a link is stored or found.
"""

from __future__ import annotations

import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from linkflow.config import TemporalSettings

LINK_STATUS = SearchAttributeKey.for_keyword("LinkStatus")
LINK_PROVIDER = SearchAttributeKey.for_keyword("LinkProvider")
SEARCH_ATTRIBUTES = (LINK_STATUS, LINK_PROVIDER)

logger = logging.getLogger(__name__)


async def connect(
    settings: TemporalSettings | None = None, *, runtime: Runtime | None = None
) -> Client:
    settings = settings or TemporalSettings.from_env()
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )


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
