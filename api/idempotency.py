"""`Idempotency-Key`: a retried request is answered with the first result and never acts twice.

The key is not stored anywhere. It is turned into the id Temporal dedupes by: a route that starts
a link makes it the link's workflow id (a second start with that id finds the first link), a route
that sends an update makes it the update's id (within a run, Temporal runs an update id once and
answers a repeat with its first outcome). Both ids are SHA-256 hashes of the route and the key,
so the key itself is never shown in Temporal Web, in history or in a log, the same key on two
routes never collides, and every API process derives the same ids with no shared store.

An update id is remembered by its run: after a link continues as new (every
`refreshes_per_run` refreshes), a replayed key acts again.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Header

HEADER = "Idempotency-Key"
PATTERN = r"^[A-Za-z0-9._:~+/=-]{1,255}$"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=HEADER,
        pattern=PATTERN,
        max_length=255,
        description="Up to 255 letters, digits and `._:~+/=-` (a UUID, say). The same key on"
        " a retry returns the first result and never acts twice.",
    ),
]


def _digest(purpose: str, route: str, key: str) -> str:
    return hashlib.sha256(f"linkflow {purpose} {route}\0{key}".encode()).hexdigest()[:32]


def start_id(route: str, key: str, *scope: str) -> str:
    """The link id a start with this key uses; `scope` (a user and a provider, say) makes the
    same key name a different link for a different scope."""
    return f"link-{_digest('start', route, chr(0).join((key, *scope)))}"


def update_id(route: str, key: str) -> str:
    """The update id a call with this key sends."""
    return f"{route}-{_digest('update', route, key)}"
