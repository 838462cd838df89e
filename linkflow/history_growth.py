"""Tells a watcher when a link may have changed, without a poll loop.

A link's snapshot is the state its workflow tasks leave, and every workflow task that completes
appends to the run's history. So a watcher follows the history with the server's long-poll
(`wait_new_event`) and reads the snapshot only when new events arrive: a link that waits costs its
watchers one open request each and no reads, and a change is seen as soon as it is recorded. The
follower moves on to the next run when the link continues as new, and stops once the last run has
closed. It never decodes the events (their payloads stay encrypted); their arrival is all it uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from temporalio.client import Client


async def history_growth(client: Client, workflow_id: str) -> AsyncIterator[None]:
    """Yields once for the events a run already has, then each time new events are recorded.

    A long-poll that finds nothing new (the server gives up after about 20 s) yields nothing.
    Raises what the client raises: `RPCError` (NOT_FOUND for a workflow that does not exist).
    """
    followed: str | None = None
    while True:
        current = await client.get_workflow_handle(workflow_id).describe()
        if current.run_id == followed:
            return
        followed = current.run_id
        async for _ in run_growth(client, workflow_id, followed):
            yield


async def run_growth(client: Client, workflow_id: str, run_id: str | None) -> AsyncIterator[None]:
    """`history_growth` for one run of the workflow: stops once that run has closed."""
    events = client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history_events(
        wait_new_event=True
    )
    while True:
        await events.fetch_next_page()
        if events.current_page:
            yield
        if events.next_page_token is None:
            return
