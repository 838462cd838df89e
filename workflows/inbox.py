"""Reading what callers send to a link, whatever they send: its start, its updates, its signals.

The SDK decodes a handler's typed arguments before any workflow code runs, and a start or signal
payload it cannot decode (none, two, `binary/null`, an unknown encoding, the wrong shape) fails the
workflow task, again on every retry: one careless message would wedge the link for good. So the
link takes raw payloads and reads them here, in workflow code, where every failure becomes a
`MalformedMessage` whose sentence names what was wrong and never repeats what was sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from linkflow.refusals import describe_validation_error, quote

ModelT = TypeVar("ModelT", bound=BaseModel)

# The default of a handler argument, so that a message with no payload reaches the handler.
NO_PAYLOAD = RawValue(Payload())


class MalformedMessage(ValueError):
    """A caller's message the link cannot read; the sentence is safe to store and show."""


def read_only_payload(payloads: Sequence[RawValue], model: type[ModelT], what: str) -> ModelT:
    """The one payload of a message that must carry exactly one."""
    if len(payloads) != 1:
        raise MalformedMessage(
            f"The {what} must carry exactly one payload; it carried {len(payloads)}."
        )
    return read_payload(payloads[0], model, what)


def read_payload(raw: RawValue, model: type[ModelT], what: str) -> ModelT:
    """`raw` read as `model`, or a `MalformedMessage` saying why it cannot be."""
    if raw is NO_PAYLOAD or not raw.payload.metadata:
        raise MalformedMessage(f"The {what} carries no payload.")
    encoding = raw.payload.metadata.get("encoding", b"").decode(errors="replace")
    try:
        value = workflow.payload_converter().from_payload(raw.payload, model)
    except Exception as error:
        invalid = _validation_error_in(error)
        if invalid is not None:
            raise MalformedMessage(
                f"The {what} is not valid: {describe_validation_error(invalid)}."
            ) from None
        raise MalformedMessage(
            f"The {what} could not be read as JSON (its encoding is {quote(encoding, 24)})."
        ) from None
    if not isinstance(value, model):
        raise MalformedMessage(f"The {what} is empty (encoding {quote(encoding, 24)}).")
    return value


def _validation_error_in(error: BaseException) -> ValidationError | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ValidationError):
            return seen
        seen = seen.__cause__
    return None
