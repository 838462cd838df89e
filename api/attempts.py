"""How many answers one link token may send in a minute.

A link token sits in a browser, so whoever holds it could script guesses at a one-time code or
a password. Each token-authenticated action that sends the user's input (a start, an answer, new
credentials, a re-login or a resolved hold) counts as an attempt; past `max_attempts` within
`window_seconds` the API answers 429 with `Retry-After` until the oldest attempt leaves the window.

The count lives in this process's memory: it is lost on restart, and each API process counts on
its own, so N processes behind a load balancer allow up to N times the limit. The provider's own
lockouts and the link's MFA deadline still bound guessing; a shared store would make the limit
exact across processes.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_ATTEMPTS = 10
DEFAULT_WINDOW_SECONDS = 60.0
MAX_TRACKED_SESSIONS = 100_000


@dataclass(frozen=True)
class AttemptLimits:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    window_seconds: float = DEFAULT_WINDOW_SECONDS


class AttemptLimiter:
    """A sliding window of attempt times per session."""

    def __init__(
        self,
        limits: AttemptLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED_SESSIONS,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._max_tracked = max_tracked
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    def attempt(self, session_id: str) -> int | None:
        """Count an attempt: None if it may go ahead, else the seconds to wait (at least 1)."""
        now = self._clock()
        window = self.limits.window_seconds
        times = self._attempts.pop(session_id, None) or deque()
        while times and times[0] <= now - window:
            times.popleft()
        self._attempts[session_id] = times  # most recently used last
        if len(times) >= self.limits.max_attempts:
            return max(1, math.ceil(times[0] + window - now))
        times.append(now)
        self._forget_beyond(self._max_tracked)
        return None

    def _forget_beyond(self, limit: int) -> None:
        while len(self._attempts) > limit:
            self._attempts.popitem(last=False)
