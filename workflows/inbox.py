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
from temporalio.exceptions import ApplicationError

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


def refuse_other_workflow_types(workflow_type: str) -> None:
    """A dynamic workflow is handed every type a caller names; it runs only its own."""
    if workflow.info().workflow_type != workflow_type:
        raise ApplicationError(
            f"This worker runs no workflow type {quote(workflow.info().workflow_type)}.",
            type="UnknownWorkflowType",
            non_retryable=True,
        )


def read_start(inputs: Sequence[RawValue], request_type: type[ModelT]) -> ModelT:
    """The start's one request; state carried across runs only from the link itself."""
    request = read_only_payload(inputs, request_type, "start request")
    if getattr(request, "carried", None) is not None and workflow.info().continued_run_id is None:
        raise MalformedMessage(
            "The start request carries a previous run's state (`carried`), which only the link"
            " itself may hand to its next run; leave it out."
        )
    return request


def read_signal(
    name: str, payloads: Sequence[RawValue], expected: str, model: type[ModelT]
) -> ModelT:
    """The one `model` a signal named `expected` carries; any other signal is refused."""
    if name != expected:
        raise MalformedMessage(
            f"The link takes no signal by that name ({len(name)} characters); it takes"
            f" {expected!r}."
        )
    return read_only_payload(payloads, model, f"{expected} signal")
