"""Delivering a webhook over real HTTP(S) to local receivers: pinned, signed, and quiet on failure.

The receivers are real servers on 127.0.0.1; only the tests that need a public-looking name answer
its DNS lookups with a stand-in resolver (nothing here leaves the machine).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.webhooks import WebhookActivities, WebhookDelivery, WebhookReceipt
from linkflow.models import LinkStatus, Provider, WebhookEvent
from linkflow.webhook_policy import WebhookPolicy
from linkflow.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    WebhookSigning,
    verify_signature,
)
from workflows.webhook_delivery import WebhookDeliveryWorkflow

NEW_SECRET = "whsec-new-0123456789abcdef0123456789ab"
OLD_SECRET = "whsec-old-abcdefabcdefabcdefabcdefabcd"
SIGNING = WebhookSigning((NEW_SECRET, OLD_SECRET))
LOCAL = WebhookPolicy.allowing("127.0.0.1")
STRICT = WebhookPolicy()
INTERNAL_REPLY = "INTERNAL-ADMIN-PANEL root-password=hunter2 " * 20


def event(sequence: int = 1) -> WebhookEvent:
    return WebhookEvent(
        id=f"link-{uuid.uuid4()}:{sequence}",
        sequence=sequence,
        link_id="link-1",
        provider=Provider.MX,
        status=LinkStatus.CONNECTED,
        occurred_at=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint that records what reaches it and answers as a test tells it to."""

    status: int = 204
    reply_headers: dict[str, str] = field(default_factory=dict)
    reply_body: bytes = b""
    received: list[Received] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    port: int = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                self.send_response(receiver.status)
                for name, value in receiver.reply_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(receiver.reply_body)))
                self.end_headers()
                self.wfile.write(receiver.reply_body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


def serve(receiver: Receiver, tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver.handler())
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve(Receiver())


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    yield from serve(Receiver())


async def deliver(
    url: str,
    policy: WebhookPolicy = LOCAL,
    *,
    tls_context: ssl.SSLContext | None = None,
    delivered: WebhookEvent | None = None,
) -> WebhookReceipt:
    activities = WebhookActivities(SIGNING, policy, tls_context=tls_context)
    try:
        delivery = WebhookDelivery.model_validate({"url": url, "event": delivered or event()})
        return await ActivityEnvironment().run(activities.deliver_webhook, delivery)
    finally:
        await activities.aclose()


async def refused(url: str, policy: WebhookPolicy = LOCAL, **kwargs: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        await deliver(url, policy, **kwargs)
    return raised.value


# ---------------------------------------------------------------------------- delivered


async def test_an_allowlisted_local_receiver_gets_the_event_signed_with_every_secret(
    receiver: Receiver,
) -> None:
    sent = event()
    receipt = await deliver(f"http://127.0.0.1:{receiver.port}/hooks?app=1", delivered=sent)

    assert (receipt.status_code, receipt.attempt) == (204, 1)
    [request] = receiver.received
    assert request.path == "/hooks?app=1"
    assert request.headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers[EVENT_ID_HEADER] == sent.id
    assert json.loads(request.body)["id"] == sent.id
    for secret in (NEW_SECRET, OLD_SECRET):
        verify_signature(secret, request.headers[SIGNATURE_HEADER], request.body)


async def test_a_receiver_that_is_not_allowlisted_is_refused_and_sees_no_request(
    receiver: Receiver,
) -> None:
    for url in (
        f"http://127.0.0.1:{receiver.port}/hook",
        f"https://127.0.0.1:{receiver.port}/hook",
        f"https://2130706433:{receiver.port}/hook",
        f"https://localhost:{receiver.port}/hook",
    ):
        error = await refused(url, STRICT)
        assert error.type == "WebhookUrlRefused"
        assert error.non_retryable
    assert receiver.received == []


# ---------------------------------------------------------------------------- after DNS


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """Stand-in DNS for names ending in `.example.com`: each lookup takes the next answer.

    Literal addresses still go to the system resolver, which answers them without the network.
    """
    answers: dict[str, list[list[str]]] = {}
    system_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if not str(host).endswith(".example.com"):
            ipaddress.ip_address(host)  # anything else must be an address already
            return system_getaddrinfo(host, port, *args, **kwargs)
        queue = answers.get(host)
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in (queue.pop(0) if len(queue) > 1 else queue[0])
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


async def test_a_public_looking_name_resolving_to_loopback_is_refused_before_any_request(
    dns: dict[str, list[list[str]]], receiver: Receiver
) -> None:
    dns["hooks.example.com"] = [["127.0.0.1"]]
    error = await refused(f"https://hooks.example.com:{receiver.port}/hook", STRICT)
    assert error.type == "WebhookUrlRefused"
    assert error.non_retryable
    assert "resolves to a loopback address" in error.message
    assert receiver.received == []


async def test_the_request_goes_to_the_checked_address_with_the_real_host_name(
    dns: dict[str, list[list[str]]], receiver: Receiver
) -> None:
    # The first answer is checked and used; a later, different answer (rebinding) is never asked.
    dns["hooks.example.com"] = [["127.0.0.1"], ["10.255.255.1"]]
    policy = WebhookPolicy.allowing("hooks.example.com")
    receipt = await deliver(f"http://hooks.example.com:{receiver.port}/hook", policy)

    assert receipt.status_code == 204
    [request] = receiver.received
    assert request.headers["Host"] == f"hooks.example.com:{receiver.port}"
    assert dns["hooks.example.com"] == [["10.255.255.1"]], "resolved exactly once"


async def test_a_name_that_does_not_resolve_is_retried(dns: dict[str, list[list[str]]]) -> None:
    error = await refused("https://nowhere.example.com/hook", STRICT)
    assert error.type == "WebhookReceiverUnreachable"
    assert not error.non_retryable


# ---------------------------------------------------------------------------- receivers' answers


@pytest.mark.parametrize(
    ("status", "error_type", "retried"),
    [
        (500, "WebhookReceiverUnavailable", True),
        (503, "WebhookReceiverUnavailable", True),
        (408, "WebhookReceiverUnavailable", True),
        (429, "WebhookReceiverUnavailable", True),
        (400, "WebhookRefused", False),
        (401, "WebhookRefused", False),
        (404, "WebhookRefused", False),
    ],
)
async def test_a_failing_receivers_reply_body_never_reaches_the_error(
    receiver: Receiver, status: int, error_type: str, retried: bool
) -> None:
    receiver.status = status
    receiver.reply_body = INTERNAL_REPLY.encode()
    error = await refused(f"http://127.0.0.1:{receiver.port}/hook")

    assert error.type == error_type
    assert error.non_retryable is not retried
    assert f"HTTP {status}" in error.message
    for text in (error.message, str(error), repr(error.details), repr(error.__cause__)):
        assert "hunter2" not in text
        assert "INTERNAL-ADMIN" not in text


async def test_retry_after_is_honoured_up_to_ten_minutes(receiver: Receiver) -> None:
    receiver.status = 429
    receiver.reply_headers = {"Retry-After": "7"}
    error = await refused(f"http://127.0.0.1:{receiver.port}/hook")
    assert error.next_retry_delay == datetime.timedelta(seconds=7)

    receiver.reply_headers = {"Retry-After": "86400"}
    error = await refused(f"http://127.0.0.1:{receiver.port}/hook")
    assert error.next_retry_delay == datetime.timedelta(minutes=10)


async def test_a_redirect_is_a_refusal_and_is_not_followed(
    receiver: Receiver, other_receiver: Receiver
) -> None:
    receiver.status = 307
    receiver.reply_headers = {"Location": f"http://127.0.0.1:{other_receiver.port}/inside"}
    error = await refused(f"http://127.0.0.1:{receiver.port}/hook")

    assert (error.type, error.non_retryable) == ("WebhookRefused", True)
    assert "redirects are not followed" in error.message
    assert len(receiver.received) == 1
    assert other_receiver.received == []


async def test_a_receiver_that_is_not_listening_is_retried() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        closed_port = placeholder.getsockname()[1]
    error = await refused(f"http://127.0.0.1:{closed_port}/hook")
    assert error.type == "WebhookReceiverUnreachable"
    assert not error.non_retryable


# ---------------------------------------------------------------------------- https, pinned


@dataclass(frozen=True)
class Authority:
    """A throwaway certificate authority and one server certificate it issued."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def server_context(self, receiver: Receiver) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)

        def record_server_name(_: Any, server_name: str | None, __: Any) -> None:
            receiver.server_names.append(server_name)

        context.sni_callback = record_server_name
        return context


def issue(directory: Path, name: str) -> Authority:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "linkflow test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    authority = Authority(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    authority.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    authority.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    authority.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return authority


@pytest.fixture
def localhost_authority(tmp_path: Path) -> Authority:
    return issue(tmp_path, "localhost")


async def test_https_connects_to_the_checked_address_and_verifies_the_real_name(
    localhost_authority: Authority,
) -> None:
    tls_receiver = Receiver()
    for running in serve(tls_receiver, localhost_authority.server_context(tls_receiver)):
        receipt = await deliver(
            f"https://localhost:{running.port}/hook",
            WebhookPolicy.allowing("localhost"),
            tls_context=localhost_authority.client_context(),
        )
        assert receipt.status_code == 204
        [request] = running.received
        assert request.headers["Host"] == f"localhost:{running.port}"
        assert "localhost" in running.server_names


async def test_https_to_a_receiver_whose_certificate_names_another_host_is_not_delivered(
    tmp_path: Path,
) -> None:
    authority = issue(tmp_path, "someone-else.example")
    tls_receiver = Receiver()
    for running in serve(tls_receiver, authority.server_context(tls_receiver)):
        error = await refused(
            f"https://localhost:{running.port}/hook",
            WebhookPolicy.allowing("localhost"),
            tls_context=authority.client_context(),
        )
        assert error.type == "WebhookReceiverUnreachable"
        assert running.received == []


# ---------------------------------------------------------------------------- the workflow


async def test_a_refused_url_fails_the_delivery_workflow_after_one_attempt(
    dev_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    task_queue = f"webhooks-{uuid.uuid4()}"
    activities = WebhookActivities(SIGNING, STRICT)
    sent = event()
    delivery = WebhookDelivery.model_validate(
        {"url": f"https://127.0.0.1:{receiver.port}/hook", "event": sent}
    )
    try:
        async with Worker(
            dev_env.client,
            task_queue=task_queue,
            workflows=[WebhookDeliveryWorkflow],
            activities=[activities.deliver_webhook],
        ):
            with pytest.raises(WorkflowFailureError) as failed:
                await dev_env.client.execute_workflow(
                    WebhookDeliveryWorkflow.run,
                    delivery,
                    id=f"{sent.id}:webhook",
                    task_queue=task_queue,
                )
    finally:
        await activities.aclose()

    activity_error = failed.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "WebhookUrlRefused"
    assert activity_error.retry_state is not None
    assert activity_error.retry_state.name == "NON_RETRYABLE_FAILURE"
    assert receiver.received == []
