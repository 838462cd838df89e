"""The record of a link: its snapshot, its status changes, and how people and apps see them.

The link's workflow decides; this module writes it down. A status change goes into the snapshot
and its short history, into the link's search attributes (what Temporal Web and `list_links`
filter on), into its Markdown details in Temporal Web, and becomes a numbered webhook event.

Search attributes are folded: only values that differ from what visibility already holds are
written, and (for links started since steps run in one call) a status the link passes through
within one workflow task is never written at all; the status is written where the link waits,
asks or rests. Every write is a history event, so a two-round link writes three, not seven.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RawValue, SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import WebhookBacklog
    from linkflow.models import (
        Account,
        CarriedLink,
        Challenge,
        Credentials,
        LinkReason,
        LinkRequest,
        LinkSnapshot,
        LinkStatus,
        Provider,
        StatusChange,
        WebhookEvent,
    )
    from linkflow.refusals import bounded
    from linkflow.temporal import link_search_attributes
    from providers.base import ProviderState
    from workflows import link_metrics
    from workflows.inbox import MalformedMessage, read_start
    from workflows.mfa_round import MfaRound
    from workflows.webhook_outbox import DeliveryPath, WebhookOutbox

STATUS_HISTORY_LENGTH = 20
# Steps follow their jobs in one (mostly local) activity; search attributes and webhooks fold.
ONE_CALL_PER_STEP_PATCH = "one-call-per-step"
# Webhook events go out through one activity that follows the link (see `webhook_outbox`). A run
# on this path takes the one before it too, and records this marker alone.
FOLLOWED_WEBHOOKS_PATCH = "webhooks-follow-the-link"

# Where a caller waiting for the link's next stop gets its answer.
ASKING_OR_RESTING = frozenset(
    {
        LinkStatus.MFA_REQUIRED,
        LinkStatus.CONNECTED,
        LinkStatus.ACTION_REQUIRED,
        LinkStatus.FAILED,
        LinkStatus.UNLINKED,
    }
)

NEXT_STEP = {
    LinkStatus.CONNECTING: "wait: the provider is working",
    LinkStatus.MFA_REQUIRED: "answer the pending challenges",
    LinkStatus.CONNECTED: "nothing: the link is live and refreshes on schedule",
    LinkStatus.ACTION_REQUIRED: "act as the message says, then resume this link",
    LinkStatus.FAILED: "start a new link, or nothing",
    LinkStatus.UNLINKED: "nothing",
}
NEXT_STEP_BY_REASON = {
    LinkReason.REAUTH_REQUIRED: "send the new password with the `update_credentials` update",
    LinkReason.MFA_REFRESH_REQUIRED: "send `reauthenticate`, then answer the new challenges",
    LinkReason.PROVIDER_HOLD: "act at the provider as the message says, then send `resolve_hold`",
    LinkReason.ACCOUNT_LOCKED: "unlock the account at the provider, then send `resolve_hold`",
}


class LinkRecord:
    """What the link knows and shows: its snapshot, its provider session, the current round,
    and the counters its update handlers wait on. Only the link's run writes it."""

    def __init__(
        self, link: LinkSnapshot, request: LinkRequest | None, mfa_round: MfaRound
    ) -> None:
        self.link = link
        self.request = request
        self.round = mfa_round
        self.session: dict[str, str] = {}
        self.continued = False
        self.events_sent = 0
        self.folded = False
        self.outbox = WebhookOutbox(None, DeliveryPath.FOLLOWER)
        # Bumped each time the run reaches a point where waiting handlers get their answer.
        self.settles = 0
        self.settled_round = 0

    @classmethod
    def from_start(cls, inputs: Sequence[RawValue]) -> LinkRecord:
        """The record of a new link, of a run the link continued, or of an unreadable start."""
        now, link_id = workflow.now(), workflow.info().workflow_id
        mfa_round = MfaRound(salt=link_id)
        try:
            request = read_start(inputs, LinkRequest)
        except MalformedMessage as refusal:
            return cls(refused_link(link_id, now, str(refusal)), None, mfa_round)
        carried = request.carried
        link = carried.snapshot.model_copy(deep=True) if carried else new_link(link_id, now)
        link.provider = request.provider
        record = cls(link, request.model_copy(update={"carried": None}), mfa_round)
        if carried is not None:
            record.continued = True
            link.attempts.runs += 1
            record.session = dict(carried.provider_session)
            record.events_sent = carried.events_sent
        return record

    def choose_paths(self) -> None:
        """Which of the link's newer paths this run takes: a new run records one marker."""
        followed = workflow.patched(FOLLOWED_WEBHOOKS_PATCH)
        self.folded = followed or workflow.patched(ONE_CALL_PER_STEP_PATCH)
        url = self.request.options.webhook_url if self.request is not None else None
        if followed:
            path = DeliveryPath.FOLLOWER
        else:
            path = DeliveryPath.BATCHES if self.folded else DeliveryPath.CHILD_PER_EVENT
        self.outbox = WebhookOutbox(url, path)

    def carried(self) -> CarriedLink:
        """What the next run of the link starts from."""
        return CarriedLink(
            snapshot=self.snapshot(), provider_session=self.session, events_sent=self.events_sent
        )

    def runs_code_since(self, patch_id: str) -> bool:
        """Whether this run takes the path `patch_id` introduced. A run that folds began after
        every earlier patch, so it takes them all without recording a marker for each (a marker
        costs two history events)."""
        return self.folded or workflow.patched(patch_id)

    @property
    def valid_request(self) -> LinkRequest:
        if self.request is None:  # only a readable start gets past the first lines of `run`
            raise RuntimeError("The link has no readable start request.")
        return self.request

    def snapshot(self) -> LinkSnapshot:
        pending = self.round.unanswered()
        return self.link.model_copy(update={"pending_challenges": pending}, deep=True)

    def webhook_backlog(self) -> WebhookBacklog:
        """The events a follower has yet to deliver; it stops once the link waits for no one."""
        busy = self.link.status in (LinkStatus.CONNECTING, LinkStatus.MFA_REQUIRED)
        return self.outbox.backlog(resting=not busy)

    def note_provider_state(self, state: ProviderState) -> None:
        self.session = state.session or self.session
        if state.raw_status != self.link.provider_status:
            self.link.provider_status = state.raw_status
            self.link.updated_at = workflow.now()
            self.publish()

    def set_status(
        self, status: LinkStatus, reason: LinkReason | None = None, message: str | None = None
    ) -> None:
        changed = record_status(self.link, status, reason, message, workflow.now())
        if changed:
            self.link.last_refusal = None  # a refused signal was about the round that ended
            self.events_sent += 1
            provider = self.valid_request.provider
            link_metrics.status_changed(provider.value, status.value)
            self.outbox.post(webhook_event(self.link, provider, self.events_sent))
        waits_here = not self.folded or status in ASKING_OR_RESTING
        self.publish(write_attributes=changed and waits_here)

    def publish(self, *, write_attributes: bool = False) -> None:
        """Keep Temporal Web's view current: the Markdown details always, the search attributes
        when asked (folded: only those that changed; links from before write them all)."""
        if write_attributes:
            updates = search_attribute_updates(self.link, self.request, folded=self.folded)
            if updates:
                workflow.upsert_search_attributes(updates)
        workflow.set_current_details(details_markdown(self.link, self.round.unanswered()))

    def settle(self, round_number: int | None = None) -> None:
        """Tell update handlers waiting on a round or a command that the provider has answered."""
        self.settled_round = self.round.number if round_number is None else round_number
        self.settles += 1

    def rest(self, status: LinkStatus, reason: LinkReason | None, message: str | None) -> None:
        self.set_status(status, reason, message)
        self.settle()

    def relink(self, credentials: Credentials) -> None:
        """The user's new credentials, for the next login (update mode)."""
        self.request = self.valid_request.model_copy(update={"credentials": credentials})

    def refused_signal(self, refusal: ValueError) -> None:
        """A signal the link could not take: say why in the snapshot, and in the worker's log."""
        self.link.last_refusal = bounded(str(refusal))
        self.link.attempts.answers_refused += 1
        workflow.logger.warning("Refused a signal: %s", self.link.last_refusal)

    def connected(self, accounts: list[Account]) -> None:
        """The provider shared the accounts: the link rests CONNECTED until its next refresh."""
        self.link.accounts = accounts
        connected_now(self.link, workflow.now(), self._refresh_interval)
        self.rest(LinkStatus.CONNECTED, None, f"{len(accounts)} account(s) linked.")

    def held(self, reason: LinkReason, message: str | None, *, rechecked: bool) -> None:
        """The provider holds the link for its user; a hold that may clear by itself is checked
        again on the refresh schedule."""
        now = workflow.now()
        self.link.next_refresh_at = now + self._refresh_interval if rechecked else None
        self.rest(LinkStatus.ACTION_REQUIRED, reason, message)

    def needs_fresh_mfa(self) -> None:
        """A scheduled refresh met a challenge, with no user there to answer it."""
        self.link.next_refresh_at = None  # before the status change publishes the details
        self.rest(
            LinkStatus.ACTION_REQUIRED,
            LinkReason.MFA_REFRESH_REQUIRED,
            "The provider asks you to verify your identity again before it shares new data."
            " Reauthenticate, then answer its questions.",
        )

    @property
    def _refresh_interval(self) -> timedelta:
        return timedelta(seconds=self.valid_request.options.refresh_interval_seconds)

    def end(self, status: LinkStatus, reason: LinkReason | None, message: str) -> None:
        self.round.close()
        self.rest(status, reason, message)


def new_link(link_id: str, now: datetime) -> LinkSnapshot:
    return LinkSnapshot(
        link_id=link_id,
        status=LinkStatus.CONNECTING,
        started_at=now,
        updated_at=now,
        history=[StatusChange(at=now, status=LinkStatus.CONNECTING)],
    )


def refused_link(link_id: str, now: datetime, why: str) -> LinkSnapshot:
    """The record of a start the link could not read."""
    return LinkSnapshot(
        link_id=link_id,
        status=LinkStatus.FAILED,
        reason=LinkReason.INVALID_REQUEST,
        message=why,
        started_at=now,
        updated_at=now,
        history=[StatusChange(at=now, status=LinkStatus.FAILED, reason=LinkReason.INVALID_REQUEST)],
    )


def record_status(
    link: LinkSnapshot,
    status: LinkStatus,
    reason: LinkReason | None,
    message: str | None,
    now: datetime,
) -> bool:
    """Write a status into the snapshot; returns whether it changed (status or reason)."""
    changed = (status, reason) != (link.status, link.reason)
    link.status = status
    link.reason = reason
    link.message = message
    link.updated_at = now
    if changed:
        link.history = [*link.history, StatusChange(at=now, status=status, reason=reason)][
            -STATUS_HISTORY_LENGTH:
        ]
    return changed


def webhook_event(link: LinkSnapshot, provider: Provider, sequence: int) -> WebhookEvent:
    """The webhook event announcing the link's current status."""
    return WebhookEvent(
        id=f"{link.link_id}:{sequence}",
        sequence=sequence,
        link_id=link.link_id,
        provider=provider,
        status=link.status,
        reason=link.reason,
        message=link.message,
        occurred_at=link.updated_at,
    )


def search_attribute_updates(
    link: LinkSnapshot, request: LinkRequest | None, *, folded: bool
) -> list[SearchAttributeUpdate[str]]:
    """The link's search attributes; folded, only those that differ from what visibility holds."""
    provider = link.provider.value if link.provider is not None else None
    user_ref_key = request.user_ref_key if request is not None else None
    wanted = link_search_attributes(link.status.value, provider, user_ref_key)
    current = workflow.info().typed_search_attributes
    return [
        key.value_set(value) for key, value in wanted if not folded or current.get(key) != value
    ]


def details_markdown(link: LinkSnapshot, pending: list[Challenge]) -> str:
    """The link's story so far for Temporal Web: status, next step, challenges, next refresh."""
    lines = [f"**{link.status.value}**" + (f" ({link.reason.value})" if link.reason else "")]
    provider = link.provider.value if link.provider else "-"
    lines.append(f"Provider: {provider}, raw status `{link.provider_status or '-'}`.")
    next_step = NEXT_STEP[link.status]
    if link.status is LinkStatus.ACTION_REQUIRED and link.reason in NEXT_STEP_BY_REASON:
        next_step = NEXT_STEP_BY_REASON[link.reason]
    lines.append(f"Next: {next_step}.")
    if link.message:
        lines.append(f"> {link.message}")
    for challenge in pending:
        deadline = challenge.deadline.strftime("%H:%M:%S UTC") if challenge.deadline else "-"
        lines.append(
            f"- `{challenge.id}` ({challenge.kind.value}, answer by {deadline}): {challenge.prompt}"
        )
    if link.accounts:
        lines.append(f"{len(link.accounts)} account(s) linked.")
    if link.next_refresh_at:
        lines.append(f"Next refresh: {link.next_refresh_at:%Y-%m-%d %H:%M:%S} UTC.")
    return "\n\n".join(lines)


def duration_words(seconds: float) -> str:
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.0f} days"
    if seconds >= 2 * 3_600:
        return f"{seconds / 3_600:.0f} hours"
    return f"{seconds / 60:.0f} minutes"


def connected_now(link: LinkSnapshot, now: datetime, refresh_interval: timedelta) -> None:
    """Note a fresh read of the provider: no trouble, no rejected answer, the next refresh."""
    link.provider_trouble = None
    link.last_answer_rejected = False
    link.last_refreshed_at = now
    link.next_refresh_at = now + refresh_interval
