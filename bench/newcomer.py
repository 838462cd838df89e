"""The simplest MX link workflow a newcomer to Temporal would write: linkflow's yardstick.

bench/speed.py runs this beside linkflow on the same dev server and sandbox, so that linkflow's
speed and cost read as ratios to what the obvious design costs. The newcomer follows Temporal's
samples and nothing more: the plain `pydantic_data_converter` (no codec), its own task queue and
worker process, one activity that logs in and polls the provider until it asks something, then one
`submit_mfa` update per MFA round that runs one activity (answer, poll until the next question or
the end, fetch the accounts once connected) and returns where the login stands. The provider calls
are linkflow's own MX adapter (providers/mx.py), so both sides do the same HTTP; polling follows
linkflow's pace (read at once, then every 0.25 s) so that neither waits more than the other.

`BareUpdateWorkflow` is the floor under both: an update that returns at once (`ping`), so an
answer's round trip can be read as a multiple of the cheapest round trip the server offers; and an
update that runs one local activity making two reads of the sandbox's MX and returns
(`provider_floor`): the least an answer that must send one call and read the result once can cost.

    python bench/newcomer.py worker --address 127.0.0.1:7233 --task-queue newcomer \\
        --sandbox-url http://127.0.0.1:8099
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import importlib
import logging
import signal
import sys
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow

if __name__ == "__main__":  # run as a script: make the project importable (not in the sandbox)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, Field

    from linkflow.models import Account, Challenge, LinkRequest, MfaSubmission
    from providers.base import Outcome, ProviderState
    from providers.mx import MxAdapter

LINK_WORKFLOW = "NewcomerLinkWorkflow"
BARE_WORKFLOW = "BareUpdateWorkflow"
POLL_INTERVAL_SECONDS = 0.25
ACTIVITY_TIMEOUT = timedelta(seconds=60)
READY_LINE = "Newcomer worker polling task queue"

logger = logging.getLogger("bench.newcomer")


class LinkStep(BaseModel):
    """Where the login stands after an activity, and the accounts once it is linked."""

    state: ProviderState
    accounts: list[Account] = Field(default_factory=list)

    @property
    def asks_user(self) -> bool:
        return self.state.outcome is Outcome.CHALLENGED


class AnswerInput(BaseModel):
    session: dict[str, str]
    challenges: list[Challenge]
    submission: MfaSubmission


class NewcomerActivities:
    """The two provider activities, over linkflow's MX adapter."""

    def __init__(self, adapter: MxAdapter) -> None:
        self.adapter = adapter

    @activity.defn(name="newcomer_login")
    async def login(self, request: LinkRequest) -> LinkStep:
        state = await self.adapter.login(
            activity.info().workflow_id or "", request, idempotency_key=_idempotency_key()
        )
        return await self._until_settled(state)

    @activity.defn(name="newcomer_answer")
    async def answer(self, data: AnswerInput) -> LinkStep:
        state = await self.adapter.answer(
            data.session,
            data.challenges,
            data.submission.answers,
            idempotency_key=_idempotency_key(),
        )
        return await self._until_settled(state)

    @activity.defn(name="newcomer_read_twice")
    async def read_twice(self, institution: str) -> int:
        """Two reads of one MX resource: as many requests as an answer and its first read."""
        for _ in range(2):
            await self.adapter.credential_fields(institution)
        return 2

    async def _until_settled(self, state: ProviderState) -> LinkStep:
        while state.outcome is Outcome.PENDING:
            state = await self.adapter.poll(state.session)
            if state.outcome is Outcome.PENDING:
                await asyncio.sleep(POLL_INTERVAL_SECONDS)
        accounts = []
        if state.outcome is Outcome.LINKED:
            accounts = await self.adapter.fetch_accounts(state.session)
        return LinkStep(state=state, accounts=accounts)


def _idempotency_key() -> str:
    """The same for every attempt of one activity, so a retried call is recognised."""
    info = activity.info()
    return f"{info.workflow_id}/{info.activity_id}"


@workflow.defn(name=LINK_WORKFLOW)
class NewcomerLinkWorkflow:
    """Log in, then one update per MFA round; ends when the provider asks nothing more."""

    def __init__(self) -> None:
        self.step: LinkStep | None = None

    @workflow.run
    async def run(self, request: LinkRequest) -> LinkStep:
        self.step = await workflow.execute_activity_method(
            NewcomerActivities.login, request, start_to_close_timeout=ACTIVITY_TIMEOUT
        )
        await workflow.wait_condition(lambda: self.step is not None and not self.step.asks_user)
        return self.step

    @workflow.query
    def current(self) -> LinkStep | None:
        return self.step

    @workflow.update
    async def first_challenge(self) -> LinkStep:
        """Wait for the login to say what it asks (how a client learns the first question)."""
        await workflow.wait_condition(lambda: self.step is not None)
        assert self.step is not None
        return self.step

    @workflow.update
    async def submit_mfa(self, submission: MfaSubmission) -> LinkStep:
        step = self.step
        assert step is not None
        self.step = await workflow.execute_activity_method(
            NewcomerActivities.answer,
            AnswerInput(
                session=step.state.session,
                challenges=step.state.challenges,
                submission=submission,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        return self.step

    @submit_mfa.validator
    def _only_when_asked(self, submission: MfaSubmission) -> None:
        if self.step is None or not self.step.asks_user:
            raise ValueError("Nothing is being asked.")


@workflow.defn(name=BARE_WORKFLOW)
class BareUpdateWorkflow:
    """An update that returns at once: the cheapest round trip through a workflow."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.update
    def ping(self) -> int:
        return 1

    @workflow.update
    async def provider_floor(self, institution: str) -> int:
        return await workflow.execute_local_activity_method(
            NewcomerActivities.read_twice, institution, start_to_close_timeout=ACTIVITY_TIMEOUT
        )

    @workflow.signal
    def finish(self) -> None:
        self.done = True


async def run_worker(address: str, namespace: str, task_queue: str, sandbox_url: str) -> None:
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Worker

    from linkflow.config import ProviderSettings

    client = await Client.connect(
        address, namespace=namespace, data_converter=pydantic_data_converter
    )
    adapter = MxAdapter.from_settings(ProviderSettings(sandbox_url=sandbox_url.rstrip("/")))
    activities = NewcomerActivities(adapter)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[NewcomerLinkWorkflow, BareUpdateWorkflow],
            activities=[activities.login, activities.answer, activities.read_twice],
        ):
            logger.info("%s %r on %s", READY_LINE, task_queue, address)
            await stop.wait()
    finally:
        await adapter.aclose()


def main() -> None:
    from linkflow.process import exit_now

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run the newcomer's worker")
    worker.add_argument("--address", default="127.0.0.1:7233")
    worker.add_argument("--namespace", default="default")
    worker.add_argument("--task-queue", default="newcomer")
    worker.add_argument("--sandbox-url", default="http://127.0.0.1:8099")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The workflow sandbox imports this module for every run; give it bytecode to read, as
    # Python writes by itself where PYTHONDONTWRITEBYTECODE is unset (linkflow's worker does the
    # same for its workflow modules), so neither side pays for compiling it per run.
    compileall.compile_file(__file__, quiet=2)
    # The workflow sandbox re-imports workflows by module name, which `__main__` is not.
    module = importlib.import_module("bench.newcomer")
    status = 0
    try:
        asyncio.run(
            module.run_worker(args.address, args.namespace, args.task_queue, args.sandbox_url)
        )
    except (ConnectionError, RuntimeError) as error:
        logger.error("The newcomer's worker could not run: %s", error)
        status = 1
    exit_now(status)


if __name__ == "__main__":
    main()
