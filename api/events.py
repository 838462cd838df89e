"""`GET /v1/links/{link_id}/events`: the link's snapshot on each change, as server-sent events.

The page opens one stream and never polls, and neither does the API: it follows the link's history
with the server's long-poll (`LinkClient.watching`) and reads the `snapshot` query when the history
grows, so a change reaches the page as soon as Temporal records it, and a link that waits costs no
reads. A `snapshot` event goes out only when the snapshot differs from the last one sent (its `id`
is the snapshot's `updated_at`). The stream

- starts with `retry: 2000` and the current snapshot, so a reconnect (after a reload, a worker
  restart or the API's own restart) picks up where the link stands;
- sends `: keep-alive` comments while nothing changes, so proxies keep it open (the snapshot is
  read again then too, in case a change was missed);
- sends one `error` event (the API's error shape) when the link cannot be read, and carries on
  once it can (trying again every `RETRY_READ_SECONDS`);
- ends after a link's final snapshot (FAILED, UNLINKED), when the link token expires (an
  `expired` event first), or after `stream_seconds` (LINKFLOW_EVENTS_STREAM_SECONDS, 5 minutes by
  default), when the client reconnects.

Each open stream follows the link on its own; for many watchers of one link a shared follower
would do less.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from starlette.responses import StreamingResponse

from api.auth import link_token_expired
from api.backend import LinkBackend
from api.errors import ApiError
from linkflow.client import LinkClient
from linkflow.models import LinkSnapshot

RETRY_MILLISECONDS = 2000
KEEPALIVE_SECONDS = 15.0
READ_WAIT_SECONDS = 10.0
RETRY_READ_SECONDS = 1.0


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


def event(name: str, data: str, event_id: str | None = None) -> str:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


def snapshot_event(snapshot: LinkSnapshot) -> str:
    return event("snapshot", snapshot.model_dump_json(), snapshot.updated_at.isoformat())


async def snapshot_events(
    backend: LinkBackend,
    link_id: str,
    first: LinkSnapshot,
    *,
    expires_at: datetime | None = None,
    stream_seconds: float,
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    yield snapshot_event(first)
    if first.status.is_final:
        return
    client = await backend.client()
    async with client.watching(link_id) as changed:
        async for item in _changes(backend, link_id, first, changed, expires_at, stream_seconds):
            yield item


async def _changes(
    backend: LinkBackend,
    link_id: str,
    first: LinkSnapshot,
    changed: asyncio.Event,
    expires_at: datetime | None,
    stream_seconds: float,
) -> AsyncIterator[str]:
    last_sent = first.model_dump_json()
    started = last_write = time.monotonic()
    failing = False

    async def read(client: LinkClient) -> LinkSnapshot:
        return await client.snapshot(link_id)

    while True:
        pause = RETRY_READ_SECONDS if failing else KEEPALIVE_SECONDS
        if expires_at is not None:
            pause = min(pause, (expires_at - datetime.now(UTC)).total_seconds())
        pause = min(pause, stream_seconds - (time.monotonic() - started))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), max(pause, 0.0))
        changed.clear()
        now = time.monotonic()
        if expires_at is not None and datetime.now(UTC) >= expires_at:
            expired = link_token_expired("The link token is past its expiry; the stream ends.")
            yield event("expired", expired.body.model_dump_json())
            return
        if now - started >= stream_seconds:
            return
        try:
            snapshot = await backend.run(read, link_id=link_id, wait_seconds=READ_WAIT_SECONDS)
        except ApiError as error:
            if not failing:
                yield event("error", error.body.model_dump_json())
                last_write = now
            failing = True
            if error.status == 404:
                return
            continue
        failing = False
        current = snapshot.model_dump_json()
        if current != last_sent:
            yield snapshot_event(snapshot)
            last_sent, last_write = current, now
            if snapshot.status.is_final:
                return
        elif now - last_write >= KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_write = now
