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
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from linkflow.history_growth import history_growth
from linkflow.lookup import UserRefLookup
from linkflow.models import (
    Credentials,
    LinkReason,
    LinkRequest,
    LinkSnapshot,
    LinkStatus,
    MfaSubmission,
    Provider,
    RelinkRequest,
)
from linkflow.temporal import (
    LINK_PROVIDER,
    LINK_STATUS,
    LINK_USER_REF,
    connect,
    link_search_attributes,
)
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
# A watcher reads the snapshot when the link's history grows, and at least this often.
REREAD_SECONDS = 5.0
# After Temporal could not be reached, the pause before following a link's history again.
REFOLLOW_SECONDS = 1.0
# Link ids are workflow ids: they show in Temporal Web, logs and URLs, so they hold no free text.
LINK_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def new_link_id() -> str:
    return f"link-{uuid.uuid4()}"


class LinkSummary(BaseModel):
    """One link as visibility lists it: no snapshot, no personal data."""

    link_id: str
    provider: Provider | None = None
    status: LinkStatus | None = None
    started_at: datetime | None = None
    closed_at: datetime | None = None


# Which refusal each update raises: answers are refused as answers.
UPDATE_REFUSALS: dict[str, type[LinkRefused]] = {
    "submit_mfa": AnswerRefused,
    "reauthenticate": LinkRefused,
    "update_credentials": LinkRefused,
    "resolve_hold": LinkRefused,
    "unlink": LinkRefused,
}


class LinkClient:
    def __init__(
        self,
        client: Client,
        task_queue: str,
        webhook_policy: WebhookPolicy | None = None,
        *,
        user_refs: UserRefLookup | None = None,
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._webhook_policy = webhook_policy or WebhookPolicy.from_env()
        # With a lookup key, every link started here is listable by its user_ref.
        self._user_refs = user_refs

    @classmethod
    async def connect(cls) -> LinkClient:
        from linkflow.config import TemporalSettings

        settings = TemporalSettings.from_env()
        return cls(await connect(settings), settings.task_queue, user_refs=UserRefLookup.from_env())

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
        request = self._indexed(request)
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
                search_attributes=starting_search_attributes(request),
            )
        return link_id

    async def start_and_wait(
        self, request: LinkRequest, link_id: str | None = None
    ) -> tuple[str, LinkSnapshot]:
        """Start the link (or find the one with this id) and return its id and its first
        snapshot that asks the user or rests: the first challenge or the result, in one round
        trip (update-with-start), with no polling.
        """
        return await self.start_and_wait_once(request, link_id)

    async def start_and_wait_once(
        self, request: LinkRequest, link_id: str | None = None, *, update_id: str | None = None
    ) -> tuple[str, LinkSnapshot]:
        """`start_and_wait`, with the id of the update that waits: the same `link_id` and
        `update_id` again (a retried request) get the first answer back, not a newer one."""
        link_id = link_id or new_link_id()
        self._check_start(request, link_id)
        request = self._indexed(request)
        start = self._start_operation(request, link_id, WorkflowIDReusePolicy.REJECT_DUPLICATE)
        try:
            snapshot: LinkSnapshot = await self._client.execute_update_with_start_workflow(
                SETTLED_UPDATE,
                start_workflow_operation=start,
                id=update_id,
                result_type=LinkSnapshot,
            )
        except WorkflowAlreadyStartedError:
            # The link ran before and has ended: it is still that link. The start operation
            # holds the same error; reading it keeps asyncio from reporting it as never read.
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await start.workflow_handle()
            return link_id, await self.snapshot(link_id)
        return link_id, snapshot

    async def start_again_after_refused_login(
        self, request: LinkRequest, link_id: str, *, update_id: str | None = None
    ) -> LinkSnapshot:
        """Start a link whose last run ended because the provider refused its login (FAILED,
        INVALID_CREDENTIALS) again, with `request`'s credentials: a user who mistyped a password
        tries again on the same link. With `update_id`, a retried request that already started a
        run gets that run's answer instead of logging in once more (a bank may lock an account
        after a few refused logins). Whose link it is, the caller has checked; a link that did not
        end that way is refused (`LinkRefused`).
        """
        self._check_start(request, link_id)
        request = self._indexed(request)
        handle = self._handle(link_id)
        if update_id is not None:
            try:
                answered: LinkSnapshot = await handle.get_update_handle(
                    update_id, result_type=LinkSnapshot
                ).result()
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
            else:
                return answered
        last = await self.snapshot(link_id)
        if (last.status, last.reason) != (LinkStatus.FAILED, LinkReason.INVALID_CREDENTIALS):
            raise LinkRefused("Only a link whose login the provider refused can be started again.")
        start = self._start_operation(request, link_id, WorkflowIDReusePolicy.ALLOW_DUPLICATE)
        snapshot: LinkSnapshot = await self._client.execute_update_with_start_workflow(
            SETTLED_UPDATE, start_workflow_operation=start, id=update_id, result_type=LinkSnapshot
        )
        return snapshot

    def _start_operation(
        self, request: LinkRequest, link_id: str, reuse: WorkflowIDReusePolicy
    ) -> WithStartWorkflowOperation[Any, LinkSnapshot]:
        """Start the link's workflow, or join the run already going (`reuse`: whether an ended
        link's id may start a new run)."""
        return WithStartWorkflowOperation(
            WORKFLOW_TYPE,
            args=[request],
            id=link_id,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=reuse,
            static_summary=f"{request.provider.value} account link",
            search_attributes=starting_search_attributes(request),
        )

    def _indexed(self, request: LinkRequest) -> LinkRequest:
        if self._user_refs is None or request.user_ref_key is not None:
            return request
        return request.model_copy(
            update={"user_ref_key": self._user_refs.key_for(request.user_ref)}
        )

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

    async def run_update(
        self, link_id: str, name: str, arg: BaseModel | None = None, *, update_id: str | None = None
    ) -> LinkSnapshot:
        """Send the update `name` (one of `UPDATE_REFUSALS`) with `update_id`: within one run the
        link acts on an id once, and the same id again returns that first outcome."""
        refused = UPDATE_REFUSALS.get(name)
        if refused is None:
            raise ValueError(f"The link takes no update named {name!r}.")
        return await self._update(link_id, name, arg, refused, update_id=update_id)

    async def _update(
        self,
        link_id: str,
        name: str,
        arg: object,
        refused: type[LinkRefused],
        *,
        update_id: str | None = None,
    ) -> LinkSnapshot:
        handle = self._handle(link_id)
        args = [] if arg is None else [arg]
        try:
            snapshot: LinkSnapshot = await handle.execute_update(
                name, args=args, id=update_id, result_type=LinkSnapshot
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

    async def held_by_another(self, link_id: str, request: LinkRequest) -> bool:
        """Whether a link with this id exists for another provider or user than `request`'s: a
        start with this id would find that link rather than start this one. Users are told apart
        by their keyed user_ref hashes, so a link naming none, or a client with no lookup key,
        is judged by its provider alone."""
        try:
            description = await self._handle(link_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        attributes = description.typed_search_attributes
        if attributes.get(LINK_PROVIDER) not in (None, request.provider.value):
            return True
        published = attributes.get(LINK_USER_REF)
        if published is None or self._user_refs is None:
            return False
        return published not in self._user_refs.keys_for(request.user_ref)

    async def user_ref_key(self, link_id: str) -> str | None:
        """The keyed user_ref hash the link publishes (None before its first step, or never)."""
        try:
            description = await self._handle(link_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise LinkNotFound(link_id) from error
            raise
        return description.typed_search_attributes.get(LINK_USER_REF)

    async def list_links(
        self,
        *,
        user_ref_keys: Sequence[str] | None = None,
        status: LinkStatus | None = None,
        provider: Provider | None = None,
        limit: int = 50,
    ) -> list[LinkSummary]:
        """Links as visibility has them, newest first: by user_ref hash, status and provider.

        Each run of a link that continued as new is listed once, as its current run.
        """
        clauses = [f'WorkflowType = "{WORKFLOW_TYPE}"', 'ExecutionStatus != "ContinuedAsNew"']
        if user_ref_keys is not None:
            keys = [key for key in user_ref_keys if re.fullmatch(r"[0-9a-f]{16,64}", key)]
            if not keys:
                return []
            clauses.append(f"{LINK_USER_REF.name} IN ({', '.join(map(_quoted, keys))})")
        if status is not None:
            clauses.append(f"{LINK_STATUS.name} = {_quoted(status.value)}")
        if provider is not None:
            clauses.append(f"{LINK_PROVIDER.name} = {_quoted(provider.value)}")
        summaries: list[LinkSummary] = []
        async for execution in self._client.list_workflows(
            " AND ".join(clauses), limit=limit, page_size=min(limit, 1000)
        ):
            attributes = execution.typed_search_attributes
            raw_status, raw_provider = attributes.get(LINK_STATUS), attributes.get(LINK_PROVIDER)
            summaries.append(
                LinkSummary(
                    link_id=execution.id,
                    provider=Provider(raw_provider) if raw_provider in _PROVIDERS else None,
                    status=LinkStatus(raw_status) if raw_status in _STATUSES else None,
                    started_at=execution.start_time,
                    closed_at=execution.close_time,
                )
            )
        return summaries

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
    ) -> LinkSnapshot:
        """The snapshot once the link reaches one of `statuses` (or a final one).

        It is read when the link's history grows, and at least every `REREAD_SECONDS`.
        """
        async with asyncio.timeout(within.total_seconds()), self.watching(link_id) as changed:
            while True:
                changed.clear()
                snapshot = await self.snapshot(link_id)
                if snapshot.status in statuses or snapshot.status.is_final:
                    return snapshot
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), REREAD_SECONDS)

    @contextlib.asynccontextmanager
    async def watching(self, link_id: str) -> AsyncIterator[asyncio.Event]:
        """An event `watch` sets while the block runs; the watch stops when the block ends."""
        changed = asyncio.Event()
        watcher = asyncio.create_task(self.watch(link_id, changed))
        try:
            yield changed
        finally:
            watcher.cancel()

    async def watch(self, link_id: str, changed: asyncio.Event) -> None:
        """Set `changed` whenever the link may have changed, until its last run has closed.

        No poll loop: the server holds a request open until the link's history grows (see
        `linkflow.history_growth`). When Temporal cannot be reached, `changed` is set (the
        watcher's next read reports why) and the link is followed again after a pause.
        """
        while True:
            try:
                async for _ in history_growth(self._client, link_id):
                    changed.set()
                return
            except RPCError as error:
                changed.set()
                if error.status == RPCStatusCode.NOT_FOUND:
                    return
                await asyncio.sleep(REFOLLOW_SECONDS)


_PROVIDERS = {provider.value for provider in Provider}
_STATUSES = {status.value for status in LinkStatus}


def starting_search_attributes(request: LinkRequest) -> TypedSearchAttributes:
    """The link's search attributes as it starts, set with the start itself: the link writes
    them only when they change, so a start costs no upsert of its own."""
    attributes = link_search_attributes(
        LinkStatus.CONNECTING.value, request.provider.value, request.user_ref_key
    )
    return TypedSearchAttributes([SearchAttributePair(key, value) for key, value in attributes])


def _quoted(value: str) -> str:
    """A visibility query string literal; callers pass only enum values and hex hashes."""
    return '"' + value.replace("\\", "").replace('"', "") + '"'
