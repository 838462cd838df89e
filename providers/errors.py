"""What an adapter raises: the three ways a provider call can fail, in linkflow's words.

A final answer from the provider (`LinkFailure`), passing trouble worth retrying
(`ProviderUnavailable`) and a request the provider refused itself (`ProviderRejectedRequest`).
The activities in `activities/` turn each into the Temporal error it means. They live apart from
`providers/base.py` so that the status vocabulary (`providers/status.py`), which raises them, and
the adapter protocol, which names that vocabulary, import in one direction only.
"""

from __future__ import annotations

from linkflow.models import LinkReason


class LinkFailure(Exception):
    """The provider gave a final answer: this login cannot succeed as it is. Never retried."""

    def __init__(self, reason: LinkReason, raw_status: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.raw_status = raw_status
        self.message = message


class ProviderUnavailable(Exception):
    """A transient provider failure (5xx, 408, 429, a timeout): worth retrying, maybe later."""

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ProviderRejectedRequest(Exception):
    """The provider refused our request itself (4xx): a bug or a configuration error.

    `error_code` is the provider's structured code for the refusal, when its body has one; the
    message never quotes the body (it travels into Temporal history).
    """

    def __init__(self, message: str, status_code: int, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
