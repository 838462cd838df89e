"""The client backend code uses to start, answer and inspect account links.

It wraps Temporal's client with linkflow's names: a link id is a workflow id, a snapshot is the
`snapshot` query, an answer is the `submit_mfa` update (or the `answer_mfa` signal), and the link's
later life is the `reauthenticate`, `update_credentials`, `resolve_hold` and `unlink` updates.
Starting the same link id twice returns the existing link instead of making a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from linkflow.models import (
    Credentials,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    MfaSubmission,
    RelinkRequest,
)
from linkflow.temporal import connect
from linkflow.webhook_policy import WebhookPolicy, WebhookUrlRefused, check_webhook_url
from workflows.account_link import ANSWER_MFA_SIGNAL, SETTLED_UPDATE, WORKFLOW_TYPE


class LinkNotFound(LookupError):
    def __init__(self, link_id: str) -> None:
        super().__init__(f"No link with id {link_id!r}.")
        self.link_id = link_id


class LinkRefused(ValueError):
    """The link refused an update it cannot take now; nothing was changed."""


class AnswerRefused(LinkRefused):
    """The link refused an answer (stale, duplicate, malformed); nothing was changed."""


# A link rests in these until the user or its schedule moves it (or it has ended).
RESTING = {LinkStatus.CONNECTED, LinkStatus.ACTION_REQUIRED}
# Link ids are workflow ids: they show in Temporal Web, logs and URLs, so they hold no free text.
LINK_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def new_link_id() -> str:
    return f"link-{uuid.uuid4()}"


class LinkClient:
    def __init__(
        self, client: Client, task_queue: str, webhook_policy: WebhookPolicy | None = None
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._webhook_policy = webhook_policy or WebhookPolicy.from_env()

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
        """Start a link, or return the existing one with this id. Returns the link id.

        Raises `LinkRefused`, before anything is started, for a request no link should run: a
        webhook URL aimed at a private address, a malformed link id, a run's carried state.
        """
        link_id = link_id or new_link_id()
        self._check_start(request, link_id)
        # A link that ran before and has ended is still that link: REJECT_DUPLICATE refuses a
        # second run and the caller gets the existing id back.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self._client.start_workflow(
                WORKFLOW_TYPE,
                request,
                id=link_id,
                task_queue=self._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"{request.provider.value} account link",
            )
        return link_id

    async def start_and_wait(
        self, request: LinkRequest, link_id: str | None = None
    ) -> tuple[str, LinkSnapshot]:
        """Start the link (or find the one with this id) and return its id and its first
        snapshot that asks the user or rests: the first challenge or the result, in one round
        trip (update-with-start), with no polling.
        """
        link_id = link_id or new_link_id()
        self._check_start(request, link_id)
        start: WithStartWorkflowOperation[Any, LinkSnapshot] = WithStartWorkflowOperation(
            WORKFLOW_TYPE,
            args=[request],
            id=link_id,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"{request.provider.value} account link",
        )
        try:
            snapshot: LinkSnapshot = await self._client.execute_update_with_start_workflow(
                SETTLED_UPDATE, start_workflow_operation=start, result_type=LinkSnapshot
            )
        except WorkflowAlreadyStartedError:
            # The link ran before and has ended: it is still that link. The start operation
            # holds the same error; reading it keeps asyncio from reporting it as never read.
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await start.workflow_handle()
            return link_id, await self.snapshot(link_id)
        return link_id, snapshot

    def _check_start(self, request: LinkRequest, link_id: str) -> None:
        if not LINK_ID_PATTERN.fullmatch(link_id):
            raise LinkRefused(
                "A link id is 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a"
                " letter or digit."
            )
        if request.carried is not None:
            raise LinkRefused("`carried` is set only by a link continuing as new; leave it out.")
        url = request.options.webhook_url
        if url is not None:
            try:
                check_webhook_url(str(url), self._webhook_policy)
            except WebhookUrlRefused as refused:
                raise LinkRefused(str(refused)) from None

    def _handle(self, link_id: str) -> WorkflowHandle[Any, LinkSnapshot]:
        return self._client.get_workflow_handle(link_id, result_type=LinkSnapshot)

    async def snapshot(self, link_id: str) -> LinkSnapshot:
        try:
            snapshot: LinkSnapshot = await self._handle(link_id).query(
                "snapshot", result_type=LinkSnapshot
            )
            return snapshot
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise LinkNotFound(link_id) from error
            raise

    async def submit_mfa(self, link_id: str, submission: MfaSubmission) -> LinkSnapshot:
        """Answer through the update: refused answers raise `AnswerRefused`."""
        return await self._update(link_id, "submit_mfa", submission, AnswerRefused)

    async def reauthenticate(self, link_id: str) -> LinkSnapshot:
        """Log in again (the provider wants a fresh MFA); returns its first challenge or result."""
        return await self._update(link_id, "reauthenticate", None, LinkRefused)

    async def update_credentials(self, link_id: str, credentials: Credentials) -> LinkSnapshot:
        """Resume a link whose password changed, with the new credentials."""
        relink = RelinkRequest(credentials=credentials)
        return await self._update(link_id, "update_credentials", relink, LinkRefused)

    async def resolve_hold(self, link_id: str) -> LinkSnapshot:
        """Tell a held link that the user has done what the provider asked."""
        return await self._update(link_id, "resolve_hold", None, LinkRefused)

    async def unlink(self, link_id: str) -> LinkSnapshot:
        """Revoke the link at the provider and end it UNLINKED."""
        return await self._update(link_id, "unlink", None, LinkRefused)

    async def _update(
        self, link_id: str, name: str, arg: object, refused: type[LinkRefused]
    ) -> LinkSnapshot:
        handle = self._handle(link_id)
        args = [] if arg is None else [arg]
        try:
            snapshot: LinkSnapshot = await handle.execute_update(
                name, args=args, result_type=LinkSnapshot
            )
            return snapshot
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            raise refused(getattr(cause, "message", None) or str(cause)) from error
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                # Either no such link, or it has ended and takes no more updates.
                await self._require_running(link_id, refused)
            raise

    async def signal_mfa(self, link_id: str, submission: MfaSubmission) -> None:
        """Answer through the signal, for callers that cannot wait for a reply."""
        try:
            await self._handle(link_id).signal(ANSWER_MFA_SIGNAL, submission)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                await self._require_running(link_id, AnswerRefused)
            raise

    async def _require_running(self, link_id: str, refused: type[LinkRefused]) -> None:
        try:
            description = await self._handle(link_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise LinkNotFound(link_id) from error
            raise
        if description.status != WorkflowExecutionStatus.RUNNING:
            raise refused(f"Link {link_id} has ended; it takes no more answers or updates.")

    async def settled(
        self, link_id: str, *, within: timedelta = timedelta(minutes=10)
    ) -> LinkSnapshot:
        """Wait until the link rests (CONNECTED, ACTION_REQUIRED) or has ended."""
        return await self.wait_for(link_id, RESTING, within=within)

    async def result(self, link_id: str) -> LinkSnapshot:
        """The link's final snapshot, once it has ended (FAILED or UNLINKED)."""
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
