"""Run a linkflow worker: the link and webhook workflows and their activities on the link's task
queue, and the links' webhook followers on a queue of their own beside it.

Configuration comes from the environment (see linkflow/config.py): TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, LINKFLOW_TASK_QUEUE, LINKFLOW_SANDBOX_URL, the providers' keys and
LINKFLOW_WEBHOOK_SECRET; for traces and metrics (linkflow/telemetry.py)
OTEL_EXPORTER_OTLP_ENDPOINT and LINKFLOW_METRICS_ADDRESS.
"""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import inspect
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import Interceptor, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.provider import ProviderActivities
from activities.webhooks import WebhookActivities, follower_task_queue
from linkflow.config import ConfigurationError, ProviderSettings, TemporalSettings
from linkflow.process import exit_now
from linkflow.telemetry import (
    LinkCounts,
    ProviderErrorMetrics,
    configure_tracing,
    prometheus_runtime_from_env,
    shutdown_tracing,
)
from linkflow.temporal import connect, ensure_search_attributes
from linkflow.webhook_policy import WebhookPolicy
from linkflow.webhooks import WebhookSigning
from providers.registry import build_adapters
from workflows.account_link import AccountLinkWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow, WebhookHandoverWorkflow

logger = logging.getLogger("linkflow.worker")

# Measured by bench/memory.py: a cached link costs the worker about 180 KiB (about 60 KiB of it
# the workflow sandbox's own copy of the run), an evicted one almost nothing, and answering an
# evicted link replays its short history. With 1,000 cached, 10,000 links waiting on MFA held
# 303 MiB and answered in 1.6-1.8 times the light-load time; caching all 10,000 took about 1.8 GiB.
DEFAULT_MAX_CACHED_WORKFLOWS = 1000
# Every activity is a coroutine, so a slot costs little, and a provider call spends its time waiting
# on the provider: the SDK's default of 100 would make the 101st link wait for others' providers.
MAX_CONCURRENT_ACTIVITIES = 1000
# A follower (`follow_webhooks`) holds its slot while its link converses (until a minute passes
# with nothing to deliver), waiting on a long-poll of the link's history: room for as many as the
# links one worker holds waiting.
MAX_CONCURRENT_FOLLOWERS = 10_000
WORKFLOWS = [AccountLinkWorkflow, WebhookDeliveryWorkflow, WebhookHandoverWorkflow]


def max_cached_workflows_from_env() -> int:
    """LINKFLOW_MAX_CACHED_WORKFLOWS, a count of workflows the worker keeps in memory."""
    raw = os.environ.get("LINKFLOW_MAX_CACHED_WORKFLOWS", "").strip()
    if not raw:
        return DEFAULT_MAX_CACHED_WORKFLOWS
    if not raw.isdigit():
        raise ConfigurationError(
            "LINKFLOW_MAX_CACHED_WORKFLOWS must be a whole number of workflows (0 or more)."
        )
    return int(raw)


class LinkActivities:
    """Every activity a linkflow worker runs, with the HTTP clients behind them."""

    def __init__(
        self, providers: ProviderSettings, signing: WebhookSigning, policy: WebhookPolicy
    ) -> None:
        self.providers = ProviderActivities(build_adapters(providers))
        self.webhooks = WebhookActivities(signing, policy)

    def all(self) -> list[Callable[..., Any]]:
        return [
            *self.providers.all(),
            self.webhooks.deliver_webhook,
            self.webhooks.deliver_webhooks,
            # Also here for followers scheduled on the link's queue before followers had their own.
            self.webhooks.follow_webhooks,
        ]

    async def aclose(self) -> None:
        await asyncio.gather(self.providers.aclose(), self.webhooks.aclose())


def precompile_workflow_modules() -> None:
    """Write the workflow modules' bytecode, if it is missing and the folder is writable.

    The workflow sandbox imports a link's workflow module afresh for every run it starts or
    replays; where no bytecode was written (PYTHONDONTWRITEBYTECODE, a read-only install) that
    means compiling it each time, measured at about 7 ms of every link's start. Python never
    writes bytecode under that setting by itself, but it does read what is there.
    """
    source = Path(inspect.getfile(AccountLinkWorkflow)).parent
    if not compileall.compile_dir(source, maxlevels=0, quiet=2):
        logger.info("Could not write bytecode for %s; each run compiles it", source)


class LinkWorker:
    """The worker of a link task queue and the worker of its followers' queue, run together."""

    def __init__(self, links: Worker, followers: Worker) -> None:
        self.links = links
        self.followers = followers
        self._running = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as starting:
            await starting.enter_async_context(self.links)
            await starting.enter_async_context(self.followers)
            self._running = starting.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._running.__aexit__(exc_type, exc, traceback)


def build_worker(
    client: Client,
    task_queue: str,
    activities: LinkActivities,
    *,
    max_cached_workflows: int = DEFAULT_MAX_CACHED_WORKFLOWS,
    max_concurrent_activities: int = MAX_CONCURRENT_ACTIVITIES,
    workflow_runner: WorkflowRunner | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> LinkWorker:
    """The worker. It also runs the interceptors of `client` (tracing, from `connect`) and counts
    the provider activities' failures; `interceptors` come after those."""
    precompile_workflow_modules()
    links = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities.all(),
        max_cached_workflows=max_cached_workflows,
        max_concurrent_activities=max_concurrent_activities,
        workflow_runner=workflow_runner or SandboxedWorkflowRunner(),
        interceptors=[ProviderErrorMetrics(activities.providers.all()), *interceptors],
    )
    followers = Worker(
        client,
        task_queue=follower_task_queue(task_queue),
        activities=[activities.webhooks.follow_webhooks],
        max_concurrent_activities=MAX_CONCURRENT_FOLLOWERS,
        interceptors=interceptors,
    )
    return LinkWorker(links, followers)


@contextlib.asynccontextmanager
async def counting_links(client: Client, runtime: Runtime | None) -> AsyncIterator[None]:
    """Publish `linkflow_links` while the worker runs, when it serves metrics."""
    if runtime is None:
        yield
        return
    task = asyncio.create_task(LinkCounts(client, runtime).run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_worker() -> None:
    temporal = TemporalSettings.from_env()
    providers = ProviderSettings.from_env()
    # Refuse to start, saying why, before connecting: no signing secret, a bad allowlist, a bad
    # cache size.
    signing = WebhookSigning.from_env()
    policy = WebhookPolicy.from_env()
    cache_size = max_cached_workflows_from_env()
    runtime = prometheus_runtime_from_env()
    client = await connect(temporal, runtime=runtime)
    await ensure_search_attributes(client)
    activities = LinkActivities(providers, signing, policy)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with (
            build_worker(
                client,
                temporal.task_queue,
                activities,
                max_cached_workflows=cache_size,
            ),
            counting_links(client, runtime),
        ):
            logger.info(
                "Worker polling task queue %r (webhook followers: %r) on %s (namespace %r);"
                " providers at %s",
                temporal.task_queue,
                follower_task_queue(temporal.task_queue),
                temporal.address,
                temporal.namespace,
                providers.sandbox_url,
            )
            await stop.wait()
            logger.info("Stopping: finishing the tasks in hand")
    finally:
        await activities.aclose()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    status = 0
    tracing = configure_tracing("linkflow-worker")
    try:
        asyncio.run(run_worker())
    except (ConnectionError, RuntimeError) as error:
        logger.error("The worker could not run: %s", error)
        status = 1
    except RPCError as error:
        logger.error("The worker could not run: Temporal refused it: %s", error.message)
        status = 1
    finally:
        shutdown_tracing(tracing)
    exit_now(status)


if __name__ == "__main__":
    main()
