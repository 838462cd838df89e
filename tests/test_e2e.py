"""End to end, as a user runs it: separate processes, driven through starter.py.

The dev server, the sandbox and the worker each run as their own process (the same `DevStack`
the demo uses, on free ports), and every step goes through the CLI in a subprocess, with the
password and answers typed on its standard input as a person would.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from linkflow.devstack import PROJECT_ROOT, DevStack, StackPorts, port_is_open
from linkflow.models import Provider
from providers.registry import IMPLEMENTED_PROVIDERS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    stack = DevStack(ports=StackPorts.free(), state_dir=tmp_path_factory.mktemp("stack"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


# Where starter.py reads secrets from besides its prompt; each test sets them explicitly.
SECRET_VARIABLES = ("LINKFLOW_PASSWORD", "LINKFLOW_ANSWERS")


def starter_env(stack: DevStack, **variables: str) -> dict[str, str]:
    env = {name: value for name, value in stack.env().items() if name not in SECRET_VARIABLES}
    return env | variables


def starter(
    stack: DevStack,
    *args: str,
    stdin: str = "",
    timeout: float = 90,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run starter.py to the end; `stdin` is what a person would type, password first."""
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "starter.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=starter_env(stack) | (env or {}),
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )


def test_interactive_link_through_phone_and_code(stack: DevStack) -> None:
    run = starter(
        stack,
        "link",
        "--provider",
        "mx",
        "--username",
        "user_otp",
        stdin="pass_good\n1\ncorrect\n",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Where should we text your one-time code?" in run.stdout
    assert "Enter the code we texted to" in run.stdout
    assert ": CONNECTED" in run.stdout
    assert run.stdout.count("account ") == 2
    assert "Traceback" not in run.stderr


# What a person types at each provider's `user_otp` prompts: a choice by number, then the code,
# except where the phone is asked as text (Synapse), a date comes first (Teal) or the code is
# sent unasked (Unbill).
OTP_TYPING = {
    Provider.MX: "1\ncorrect\n",
    Provider.SYNAPSE: "correct\ncorrect\n",
    Provider.ARCADIA: "1\ncorrect\n",
    Provider.TEAL: "correct\ncorrect\n",
    Provider.UNBILL: "correct\n",
}


@pytest.mark.parametrize("provider", IMPLEMENTED_PROVIDERS, ids=lambda p: p.value)
def test_every_provider_links_interactively(stack: DevStack, provider: Provider) -> None:
    run = starter(
        stack,
        "link",
        "--provider",
        provider.value,
        "--username",
        "user_otp",
        stdin="pass_good\n" + OTP_TYPING[provider],
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert ": CONNECTED" in run.stdout
    assert "Refused" not in run.stdout
    assert "account " in run.stdout
    assert "Traceback" not in run.stderr


def test_push_approval_waits_for_the_device(stack: DevStack) -> None:
    run = starter(
        stack,
        "link",
        "--provider",
        "unbill",
        "--username",
        "mfa-required-prompt",
        stdin="pass_good\n",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Approve the sign-in request" in run.stdout
    assert "Waiting for your approval on the device" in run.stdout
    assert ": CONNECTED" in run.stdout


def test_hold_resolved_then_unlinked_from_the_cli(stack: DevStack) -> None:
    link_id = f"cli-hold-{uuid.uuid4().hex[:8]}"
    held = starter(
        stack, "link", "--username", "user_hold", "--link-id", link_id, stdin="pass_good\n"
    )
    assert held.returncode == 0, held.stdout + held.stderr
    assert "ACTION_REQUIRED" in held.stdout

    resolved = starter(stack, "resolve-hold", link_id, "--json")
    assert resolved.returncode == 0, resolved.stderr
    assert json.loads(resolved.stdout)["status"] == "CONNECTED"

    again = starter(stack, "resolve-hold", link_id)
    assert again.returncode == 2
    assert again.stderr.startswith("refused: The link is not held")

    unlinked = starter(stack, "unlink", link_id, "--json")
    assert unlinked.returncode == 0, unlinked.stderr
    assert json.loads(unlinked.stdout)["status"] == "UNLINKED"

    ended = starter(stack, "unlink", link_id)
    assert ended.returncode == 2
    assert "has ended" in ended.stderr
    assert "Traceback" not in ended.stderr


def test_scripted_link_with_status_and_answer(stack: DevStack) -> None:
    password = {"LINKFLOW_PASSWORD": "pass_good"}
    started = starter(
        stack,
        "link",
        "--username",
        "user_mfa",
        "--link-id",
        "link-e2e-scripted",
        "--no-wait",
        "--json",
        env=password,
    )
    assert started.returncode == 0, started.stderr
    link_id = json.loads(started.stdout)["link_id"]
    assert link_id == "link-e2e-scripted"

    snapshot = {}
    for _ in range(100):
        status = starter(stack, "status", link_id, "--json")
        assert status.returncode == 0, status.stderr
        snapshot = json.loads(status.stdout)
        if snapshot["status"] == "MFA_REQUIRED":
            break
    assert snapshot["status"] == "MFA_REQUIRED"
    assert snapshot["pending_challenges"][0]["kind"] == "text"

    refused = starter(
        stack, "answer", link_id, "--challenge", "CRD-not-a-challenge", stdin="correct\n"
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("refused: Unknown challenge")
    assert "Traceback" not in refused.stderr

    answered = starter(stack, "answer", link_id, "--json", stdin="correct\n")
    assert answered.returncode == 0, answered.stderr
    result = json.loads(answered.stdout)
    assert result["status"] == "CONNECTED"
    assert len(result["accounts"]) == 2

    again = starter(
        stack, "link", "--username", "user_mfa", "--link-id", link_id, "--no-wait", "--json",
        env=password,
    )  # fmt: skip
    assert json.loads(again.stdout)["link_id"] == link_id


def test_bad_credentials_exit_non_zero_with_the_reason(stack: DevStack) -> None:
    run = starter(stack, "link", "--username", "user_bad", "--json", stdin="pass_good\n")
    assert run.returncode == 3
    assert json.loads(run.stdout)["reason"] == "INVALID_CREDENTIALS"


def test_unknown_link_is_one_clear_line(stack: DevStack) -> None:
    run = starter(stack, "status", "link-does-not-exist")
    assert run.returncode == 1
    assert run.stderr.strip() == "error: No link with id 'link-does-not-exist'."


def test_unreachable_temporal_is_one_clear_line(tmp_path: Path) -> None:
    idle = DevStack(ports=StackPorts.free(), state_dir=tmp_path)
    idle.ensure_keys()
    run = starter(idle, "status", "link-x", timeout=60)
    assert run.returncode == 1
    assert "cannot reach Temporal" in run.stderr
    assert "Traceback" not in run.stderr


def demo_command(ports: StackPorts, state_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(PROJECT_ROOT / "starter.py"),
        "demo",
        "--temporal-port",
        str(ports.temporal),
        "--ui-port",
        str(ports.ui),
        "--sandbox-port",
        str(ports.sandbox),
        "--api-port",
        str(ports.api),
        "--state-dir",
        str(state_dir),
        *extra,
    ]


def test_demo_runs_and_leaves_nothing_listening(tmp_path: Path) -> None:
    ports = StackPorts.free()
    run = subprocess.run(
        demo_command(ports, tmp_path, "--exit-when-done"),
        input="2\ncorrect\n",
        capture_output=True,
        text=True,
        timeout=180,
        cwd=PROJECT_ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Temporal Web: http://localhost:{ports.ui}" in run.stdout
    assert ": CONNECTED" in run.stdout
    assert (tmp_path / "temporal.db").exists()
    for port in ports.all():
        assert not port_is_open(port), f"port {port} still listening after the demo"


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path: Path) -> None:
    ports = StackPorts.free()
    demo = subprocess.Popen(
        demo_command(ports, tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert demo.stdout is not None
    seen = ""
    while "Choose a number" not in seen:
        chunk = demo.stdout.read(1)
        assert chunk, f"the demo ended early: {seen}{demo.communicate()[1]}"
        seen += chunk
    assert all(port_is_open(port) for port in ports.all())

    demo.send_signal(signal.SIGINT)
    _, stderr = demo.communicate(timeout=60)

    assert demo.returncode == 130
    assert "Traceback" not in stderr
    for port in ports.all():
        assert not port_is_open(port), f"port {port} still listening after Ctrl-C"
