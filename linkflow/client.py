"""The client backend code uses to start, answer and inspect account links.

It wraps Temporal's client with linkflow's names: a link id is a workflow id, a snapshot is the
`snapshot` query, an answer is the `submit_mfa` update (or the `answer_mfa` signal). Starting the
same link id twice returns the existing link instead of making a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from linkflow.models import LinkRequest, LinkSnapshot, LinkStatus, MfaSubmission
from linkflow.temporal import connect
from workflows.account_link import AccountLinkWorkflow


class LinkNotFound(LookupError):
    def __init__(self, link_id: str) -> None:
        super().__init__(f"No link with id {link_id!r}.")
        self.link_id = link_id


class AnswerRefused(ValueError):
    """The link refused an answer (stale, duplicate, malformed); nothing was changed."""


def new_link_id() -> str:
    return f"link-{uuid.uuid4()}"


class LinkClient:
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    @classmethod
    async def connect(cls) -> LinkClient:
        from linkflow.config import TemporalSettings

        settings = TemporalSettings.from_env()
        return cls(await connect(settings), settings.task_queue)

    @property
    def temporal(self) -> Client:
        return self._client

    @property
    def task_queue(self) -> str:
        return self._task_queue

    async def start_link(self, request: LinkRequest, link_id: str | None = None) -> str:
        """Start a link, or return the existing one with this id. Returns the link id."""
        link_id = link_id or new_link_id()
        # A link that ran before and has ended is still that link: REJECT_DUPLICATE refuses a
        # second run and the caller gets the existing id back.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self._client.start_workflow(
                AccountLinkWorkflow.run,
                request,
                id=link_id,
                task_queue=self._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"{request.provider.value} account link",
            )
        return link_id

    def _handle(self, link_id: str) -> WorkflowHandle[AccountLinkWorkflow, LinkSnapshot]:
        return self._client.get_workflow_handle_for(AccountLinkWorkflow.run, link_id)

    async def snapshot(self, link_id: str) -> LinkSnapshot:
        try:
            return await self._handle(link_id).query(AccountLinkWorkflow.snapshot)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise LinkNotFound(link_id) from error
            raise

    async def submit_mfa(self, link_id: str, submission: MfaSubmission) -> LinkSnapshot:
        """Answer through the update: refused answers raise `AnswerRefused`."""
        try:
            snapshot: LinkSnapshot = await self._handle(link_id).execute_update(
                "submit_mfa", submission, result_type=LinkSnapshot
            )
            return snapshot
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            raise AnswerRefused(getattr(cause, "message", None) or str(cause)) from error
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                # Either no such link, or it has ended and takes no more answers.
                await self._require_running(link_id)
            raise

    async def signal_mfa(self, link_id: str, submission: MfaSubmission) -> None:
        """Answer through the signal, for callers that cannot wait for a reply."""
        try:
            await self._handle(link_id).signal(AccountLinkWorkflow.answer_mfa, submission)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                await self._require_running(link_id)
            raise

    async def _require_running(self, link_id: str) -> None:
        try:
            description = await self._handle(link_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise LinkNotFound(link_id) from error
            raise
        if description.status != WorkflowExecutionStatus.RUNNING:
            raise AnswerRefused(f"Link {link_id} has ended; it takes no more answers.")

    async def result(self, link_id: str) -> LinkSnapshot:
        try:
            return await self._handle(link_id).result()
        except WorkflowFailureError:
            return await self.snapshot(link_id)

    async def wait_for(
        self,
        link_id: str,
        statuses: set[LinkStatus],
        *,
        within: timedelta = timedelta(minutes=10),
        poll_interval: float = 0.2,
    ) -> LinkSnapshot:
        """Poll the snapshot until the link reaches one of `statuses` (or a final one)."""
        async with asyncio.timeout(within.total_seconds()):
            while True:
                snapshot = await self.snapshot(link_id)
                if snapshot.status in statuses or snapshot.status.is_final:
                    return snapshot
                await asyncio.sleep(poll_interval)
