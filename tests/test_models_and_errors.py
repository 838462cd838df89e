"""Unit tests: secrets in the models, and the one map from provider failures to Temporal errors."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.errors import (
    LINK_FAILURE,
    PROVIDER_REJECTED_REQUEST,
    PROVIDER_TIMEOUT,
    PROVIDER_UNAVAILABLE,
    PROVIDER_UNREACHABLE,
    LinkFailureDetails,
    to_application_error,
)
from linkflow.models import Credentials, LinkReason, LinkRequest, MfaSubmission, Provider
from providers.base import LinkFailure, ProviderRejectedRequest, ProviderUnavailable
from providers.http import raise_for_provider_status, retry_after_seconds


def request_with(password: str) -> LinkRequest:
    return LinkRequest(
        provider=Provider.MX,
        user_ref="app-user-1",
        credentials=Credentials(username="user_otp", password=password, extra={"pin": "4321"}),
    )


def test_credentials_survive_the_data_converter() -> None:
    original = request_with("hunter2")
    payloads = pydantic_data_converter.payload_converter.to_payloads([original])
    [restored] = pydantic_data_converter.payload_converter.from_payloads(payloads, [LinkRequest])
    assert restored.credentials.password.get_secret_value() == "hunter2"
    assert restored.credentials.extra["pin"].get_secret_value() == "4321"
    assert restored.credentials.username == "user_otp"


def test_credentials_never_show_in_repr_str_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    request = request_with("hunter2")
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("starting %s / %r", request, request)
    for text in (repr(request), str(request), caplog.text, str(request.model_dump())):
        assert "hunter2" not in text
        assert "4321" not in text
    assert "user_otp" not in repr(request)


def test_answers_are_secret_too() -> None:
    submission = MfaSubmission.model_validate(
        {"answers": [{"challenge_id": "CRD-1", "value": "123456"}]}
    )
    assert "123456" not in repr(submission)
    assert "123456" in submission.model_dump_json()


def test_link_failure_is_non_retryable_with_its_reason() -> None:
    error = to_application_error(
        LinkFailure(LinkReason.INVALID_CREDENTIALS, "DENIED", "The bank refused the login.")
    )
    assert error is not None
    assert error.type == LINK_FAILURE
    assert error.non_retryable
    [details] = error.details
    assert isinstance(details, LinkFailureDetails)
    assert details.reason is LinkReason.INVALID_CREDENTIALS


def test_unavailable_carries_retry_after_as_the_next_delay() -> None:
    error = to_application_error(ProviderUnavailable("429", retry_after_seconds=7))
    assert error is not None
    assert error.type == PROVIDER_UNAVAILABLE
    assert not error.non_retryable
    assert error.next_retry_delay == timedelta(seconds=7)


@pytest.mark.parametrize(
    ("raised", "expected_type", "retryable"),
    [
        (ProviderRejectedRequest("bad key", 401), PROVIDER_REJECTED_REQUEST, False),
        (httpx.ReadTimeout("slow"), PROVIDER_TIMEOUT, True),
        (httpx.ConnectError("refused"), PROVIDER_UNREACHABLE, True),
        (httpx.RemoteProtocolError("dropped"), PROVIDER_UNREACHABLE, True),
    ],
)
def test_failures_are_classified(raised: Exception, expected_type: str, retryable: bool) -> None:
    error = to_application_error(raised)
    assert error is not None
    assert error.type == expected_type
    assert error.non_retryable is not retryable


def test_other_errors_are_left_alone() -> None:
    assert to_application_error(KeyError("bug")) is None


def response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", "http://p.test/x"))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_unavailable(status: int) -> None:
    with pytest.raises(ProviderUnavailable):
        raise_for_provider_status(response(status), "mx")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_are_rejected_requests(status: int) -> None:
    with pytest.raises(ProviderRejectedRequest):
        raise_for_provider_status(response(status), "mx")


def test_success_passes() -> None:
    raise_for_provider_status(response(202), "mx")


def test_retry_after_in_seconds_and_as_a_date() -> None:
    assert retry_after_seconds(response(429, {"Retry-After": "12"})) == 12
    assert retry_after_seconds(response(429)) is None
    assert retry_after_seconds(response(429, {"Retry-After": "soon"})) is None
    past = retry_after_seconds(response(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert past == 0
