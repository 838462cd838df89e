"""starter.py keeps secrets out of argv and never shows a traceback, whatever it is given.

Passwords and answers reach it by prompt, by standard input or by LINKFLOW_PASSWORD and
LINKFLOW_ANSWERS; the process list never holds them and no error line repeats them. Each bad
input (EOF, Ctrl-C, a Temporal that cannot be reached, an unknown link, an invalid value, a
secret on the command line) ends as one line on stderr with a documented exit status. The tests
run starter.py as a subprocess against the same dev stack the demo runs.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

import starter as starter_module
from linkflow.devstack import PROJECT_ROOT, DevStack, StackPorts, temporal_cli
from linkflow.models import Challenge, ChallengeKind
from starter import scripted_answers
from tests.test_e2e import starter, starter_env

pytestmark = pytest.mark.e2e

NEVER_FROM_ARGV = (
    "passwords and answers are read from a prompt, stdin or LINKFLOW_PASSWORD/LINKFLOW_ANSWERS,"
    " never from the command line"
)
# A value that must never come back in any output.
SECRET = "s3cret-Value-9f2c"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    stack = DevStack(ports=StackPorts.free(), state_dir=tmp_path_factory.mktemp("stack"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def no_stack(tmp_path: Path) -> DevStack:
    """An environment whose Temporal address nothing listens on (with a codec key of its own)."""
    stack = DevStack(ports=StackPorts.free(), state_dir=tmp_path)
    stack.ensure_keys()
    return stack


def assert_one_clean_line(run: subprocess.CompletedProcess[str], status: int) -> str:
    assert run.returncode == status, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


def started_in_mfa(stack: DevStack, username: str, provider: str = "mx") -> dict[str, Any]:
    """Start a link with the password from the environment; its snapshot once MFA is asked."""
    link_id = f"cli-{uuid.uuid4().hex[:10]}"
    started = starter(
        stack,
        "link",
        "--provider",
        provider,
        "--username",
        username,
        "--link-id",
        link_id,
        "--no-wait",
        "--json",
        env={"LINKFLOW_PASSWORD": "pass_good"},
    )
    assert started.returncode == 0, started.stderr
    for _ in range(100):
        status = starter(stack, "status", link_id, "--json")
        assert status.returncode == 0, status.stderr
        snapshot: dict[str, Any] = json.loads(status.stdout)
        if snapshot["status"] == "MFA_REQUIRED":
            return snapshot
        time.sleep(0.2)
    raise AssertionError(f"link {link_id} never asked for MFA: {snapshot}")


# ------------------------------------------------------------------ where secrets come from


def test_a_password_from_linkflow_password_links_without_a_prompt(stack: DevStack) -> None:
    run = starter(stack, "link", "--username", "user_good", env={"LINKFLOW_PASSWORD": "pass_good"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Password for" not in run.stdout
    assert ": CONNECTED" in run.stdout


def test_a_password_piped_on_stdin_is_read_from_its_first_line(stack: DevStack) -> None:
    run = starter(stack, "link", "--username", "user_good", stdin="pass_good\n")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Password for user_good:" in run.stdout
    assert ": CONNECTED" in run.stdout
    assert "pass_good" not in run.stdout + run.stderr


def test_answer_reads_the_pending_challenges_answer_from_stdin(stack: DevStack) -> None:
    snapshot = started_in_mfa(stack, "user_mfa")

    run = starter(stack, "answer", snapshot["link_id"], "--json", stdin="correct\n")

    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)  # the prompts went to stderr: stdout is one JSON document
    assert result["status"] == "CONNECTED"
    assert snapshot["pending_challenges"][0]["prompt"] in run.stderr


def test_answer_takes_challenge_id_value_lines_from_linkflow_answers(stack: DevStack) -> None:
    snapshot = started_in_mfa(stack, "user_mfa", provider="unbill")  # two questions at once
    challenge_ids = [challenge["id"] for challenge in snapshot["pending_challenges"]]
    assert len(challenge_ids) == 2

    run = starter(
        stack,
        "answer",
        snapshot["link_id"],
        "--json",
        env={"LINKFLOW_ANSWERS": "\n".join(f"{cid}=correct" for cid in challenge_ids)},
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["status"] == "CONNECTED"


def test_a_signalled_single_value_from_linkflow_answers_connects_the_link(
    stack: DevStack,
) -> None:
    snapshot = started_in_mfa(stack, "user_mfa")
    link_id = snapshot["link_id"]

    run = starter(stack, "answer", link_id, "--signal", env={"LINKFLOW_ANSWERS": "correct"})

    assert run.returncode == 0, run.stdout + run.stderr
    for _ in range(100):
        status = json.loads(starter(stack, "status", link_id, "--json").stdout)["status"]
        if status == "CONNECTED":
            break
        time.sleep(0.2)
    assert status == "CONNECTED"


def test_update_credentials_and_reauthenticate_read_password_and_answers_from_stdin(
    stack: DevStack,
) -> None:
    link_id = f"cli-{uuid.uuid4().hex[:10]}"
    linked = starter(
        stack, "link", "--username", "user_mfa", "--link-id", link_id, stdin="pass_good\ncorrect\n"
    )
    assert linked.returncode == 0, linked.stdout + linked.stderr

    updated = starter(
        stack,
        "update-credentials",
        link_id,
        "--username",
        "user_mfa",
        stdin="pass_good\ncorrect\n",
    )
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "New password for user_mfa:" in updated.stdout
    assert ": CONNECTED" in updated.stdout

    again = starter(stack, "reauthenticate", link_id, stdin="correct\n")
    assert again.returncode == 0, again.stdout + again.stderr
    assert ": CONNECTED" in again.stdout

    # New credentials the provider turns down: the update did not take, and the status says so.
    refused = starter(
        stack, "update-credentials", link_id, "--username", "user_bad", stdin="pass_good\n"
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert ": ACTION_REQUIRED" in refused.stdout


def test_a_choice_out_of_range_is_refused_by_its_numbers(stack: DevStack) -> None:
    run = starter(stack, "link", "--username", "user_otp", stdin="pass_good\n3\n")
    line = assert_one_clean_line(run, 1)
    assert line == "error: choose a number from 1 to 2, not 3.", line


def test_an_answer_holding_an_equals_sign_stays_one_value() -> None:
    pending = [Challenge(id="CRD-1", kind=ChallengeKind.TEXT, prompt="Your pet's name?")]

    [answer] = scripted_answers(["rex=good"], pending, None)

    assert answer.challenge_id == "CRD-1"
    assert answer.value.get_secret_value() == "rex=good"


# ------------------------------------------------------------------ never from argv


@pytest.mark.parametrize(
    "args",
    [
        ("link", "--username", "user_good", "--password", SECRET),
        ("link", "--username", "user_good", f"--password={SECRET}"),
        ("update-credentials", "link-x", "--username", "user_good", "--password", SECRET),
    ],
    ids=["link", "link-equals", "update-credentials"],
)
def test_a_password_on_the_command_line_is_refused_without_repeating_it(
    no_stack: DevStack, args: tuple[str, ...]
) -> None:
    run = starter(no_stack, *args)

    line = assert_one_clean_line(run, 1)
    assert line == f"error: --password is not taken: {NEVER_FROM_ARGV}."
    assert SECRET not in run.stdout + run.stderr


def test_an_answer_on_the_command_line_is_refused_without_repeating_it(
    no_stack: DevStack,
) -> None:
    run = starter(no_stack, "answer", "link-x", f"CRD-1={SECRET}")

    line = assert_one_clean_line(run, 1)
    assert NEVER_FROM_ARGV in line
    assert SECRET not in run.stdout + run.stderr


def read_until(stream: IO[bytes], marker: bytes, timeout: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"never saw {marker!r}; saw {seen!r}"
        ready, _, _ = select.select([stream], [], [], remaining)
        if ready:
            chunk = os.read(stream.fileno(), 4096)
            assert chunk, f"output ended before {marker!r}; saw {seen!r}"
            seen += chunk
    return seen


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree = [root]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def test_the_process_list_of_a_running_link_never_holds_the_password(stack: DevStack) -> None:
    link = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "starter.py"), "link", "--username", "user_mfa"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=starter_env(stack),
        cwd=PROJECT_ROOT,
    )
    assert link.stdin is not None
    assert link.stdout is not None
    try:
        read_until(link.stdout, b"Password for user_mfa: ")
        link.stdin.write(b"pass_good\n")
        link.stdin.flush()
        read_until(link.stdout, b"> ")  # logged in, waiting at the MFA prompt

        arguments = {
            pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in process_tree(link.pid)
        }
        assert arguments[link.pid].startswith(sys.executable.encode())
        assert not [pid for pid, argv in arguments.items() if b"pass_good" in argv]

        stdout, stderr = link.communicate(b"correct\n", timeout=90)
    finally:
        if link.poll() is None:
            link.kill()
            link.wait()
    assert link.returncode == 0, stdout + stderr
    assert b": CONNECTED" in stdout


def test_a_password_typed_at_a_terminal_is_not_echoed(no_stack: DevStack) -> None:
    controller, terminal = pty.openpty()
    link = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "starter.py"), "link", "--username", "user_good"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=starter_env(no_stack),
        cwd=PROJECT_ROOT,
        start_new_session=True,  # no controlling terminal but this one: getpass uses stdin's
    )
    os.close(terminal)
    with os.fdopen(controller, "r+b", buffering=0) as screen:
        shown = read_until(screen, b"Password for user_good: ")
        screen.write(SECRET.encode() + b"\r")
        while link.poll() is None or select.select([screen], [], [], 0)[0]:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed with the process
                break
            shown += chunk
            if not chunk:
                break
    link.wait(timeout=30)

    assert link.returncode == 1
    assert SECRET.encode() not in shown
    assert b"cannot reach Temporal" in shown
    assert b"Traceback" not in shown


# ------------------------------------------------------------------ no traceback, any input


def test_eof_at_the_password_prompt_is_one_line_and_exit_1(no_stack: DevStack) -> None:
    run = starter(no_stack, "link", "--username", "user_good", stdin="")

    assert assert_one_clean_line(run, 1) == "error: No input: no password given."


def test_eof_at_an_mfa_prompt_says_how_to_answer_later(stack: DevStack) -> None:
    run = starter(stack, "link", "--username", "user_mfa", stdin="pass_good\n")

    line = assert_one_clean_line(run, 1)
    assert line.startswith("error: No input: no answer given.")
    assert "python starter.py answer link-" in line


def test_ctrl_c_at_the_password_prompt_stops_with_130(no_stack: DevStack) -> None:
    link = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "starter.py"), "link", "--username", "user_good"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=starter_env(no_stack),
        cwd=PROJECT_ROOT,
    )
    assert link.stdout is not None
    read_until(link.stdout, b"Password for user_good: ")

    link.send_signal(signal.SIGINT)
    _, stderr = link.communicate(timeout=30)

    assert link.returncode == 130
    assert stderr.decode().strip() == "Stopped."


@pytest.mark.parametrize(
    ("args", "variables"),
    [
        (("status", "link-x"), {}),
        (("link", "--username", "user_good"), {"LINKFLOW_PASSWORD": SECRET}),
        (("answer", "link-x"), {"LINKFLOW_ANSWERS": SECRET}),
    ],
    ids=["status", "link", "answer"],
)
def test_an_unreachable_temporal_is_one_line_and_exit_1(
    no_stack: DevStack, args: tuple[str, ...], variables: dict[str, str]
) -> None:
    run = starter(no_stack, *args, env={"TEMPORAL_ADDRESS": "127.0.0.1:1", **variables})

    line = assert_one_clean_line(run, 1)
    assert line.startswith("error: cannot reach Temporal at 127.0.0.1:1.")
    assert SECRET not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("args", "variables"),
    [
        (("status",), {}),
        (("answer",), {"LINKFLOW_ANSWERS": "correct"}),
        (("answer", "--challenge", "CRD-1"), {"LINKFLOW_ANSWERS": "correct"}),
        (("unlink",), {}),
        (("update-credentials", "--username", "user_good"), {"LINKFLOW_PASSWORD": "pass_good"}),
    ],
    ids=["status", "answer", "answer-challenge", "unlink", "update-credentials"],
)
def test_a_link_that_does_not_exist_is_one_line_and_exit_1(
    stack: DevStack, args: tuple[str, ...], variables: dict[str, str]
) -> None:
    command, *options = args
    run = starter(stack, command, "link-does-not-exist", *options, env=variables)

    assert assert_one_clean_line(run, 1) == "error: No link with id 'link-does-not-exist'."


def test_a_link_id_another_user_or_provider_holds_is_refused_before_anything_starts(
    stack: DevStack,
) -> None:
    link_id = f"cli-taken-{uuid.uuid4().hex[:10]}"
    password = {"LINKFLOW_PASSWORD": "pass_good"}
    mine = ("link", "--link-id", link_id, "--provider", "mx", "--username", "user_good")
    first = starter(stack, *mine, "--user-ref", "the-owner", "--json", env=password)
    assert first.returncode == 0, first.stderr
    owned = json.loads(first.stdout)
    assert owned["status"] == "CONNECTED"

    for other in (
        ("--provider", "teal", "--username", "user_bad", "--user-ref", "the-owner"),
        ("--provider", "mx", "--username", "user_good", "--user-ref", "someone-else"),
    ):
        run = starter(stack, "link", "--link-id", link_id, *other, "--json", env=password)
        line = assert_one_clean_line(run, 1)
        assert line.startswith(f"error: link id {link_id} is taken by another user's"), line
        assert run.stdout == "", "nothing of the other user's link is shown"

    # The owner starting it again is handed their own link, as before.
    again = starter(stack, *mine, "--user-ref", "the-owner", "--json", env=password)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["accounts"] == owned["accounts"]


def test_with_no_keys_of_its_own_it_uses_the_dev_stacks_codec_and_lookup_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codec, lookup = tmp_path / "codec.keys", tmp_path / "lookup.key"
    codec.write_text("k")
    lookup.write_text("k")
    monkeypatch.setattr(
        starter_module,
        "DEV_STACK_KEY_FILES",
        {
            "LINKFLOW_CODEC_KEY_FILE": (codec, "LINKFLOW_CODEC_KEYS"),
            "LINKFLOW_LOOKUP_KEY_FILE": (lookup, "LINKFLOW_LOOKUP_KEY"),
        },
    )
    for name in (
        "LINKFLOW_CODEC_KEYS",
        "LINKFLOW_CODEC_KEY_FILE",
        "LINKFLOW_LOOKUP_KEY_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LINKFLOW_LOOKUP_KEY", "configured-lookup-key-0123456789abcdef")

    starter_module.use_the_dev_stack_keys()

    assert os.environ["LINKFLOW_CODEC_KEY_FILE"] == str(codec)
    # A key configured by the caller wins over the dev stack's file.
    assert "LINKFLOW_LOOKUP_KEY_FILE" not in os.environ
    monkeypatch.delenv("LINKFLOW_LOOKUP_KEY")
    starter_module.use_the_dev_stack_keys()
    assert os.environ["LINKFLOW_LOOKUP_KEY_FILE"] == str(lookup)


def test_the_waiting_demo_names_a_process_that_stopped_and_ends(tmp_path: Path) -> None:
    stack = DevStack(ports=StackPorts.free(), state_dir=tmp_path)
    log = (tmp_path / "worker.log").open("wb")
    stack.processes.append(("sandbox", subprocess.Popen(["sleep", "30"]), log))
    stack.processes.append(("worker", subprocess.Popen(["true"]), log))
    said = io.StringIO()
    try:
        waiting = starter_module.until_a_process_ends(stack, starter_module.Terminal(out=said))
        status = asyncio.run(asyncio.wait_for(waiting, 10))
    finally:
        stack.stop()
    assert status == starter_module.EXIT_ERROR
    assert "The worker process stopped by itself" in said.getvalue()
    assert str(stack.log_path("worker")) in said.getvalue()


def test_a_link_no_worker_runs_is_one_line_and_not_a_hang(stack: DevStack) -> None:
    link_id = f"cli-unpolled-{uuid.uuid4().hex[:10]}"
    subprocess.run(
        [
            temporal_cli(),
            "workflow",
            "start",
            "--address",
            stack.ports.temporal_address,
            "--type",
            "AccountLinkWorkflow",
            "--task-queue",
            "no-worker-polls-this",
            "--workflow-id",
            link_id,
        ],
        check=True,
        capture_output=True,
    )

    run = starter(stack, "unlink", link_id, timeout=120)

    line = assert_one_clean_line(run, 1)
    assert line.startswith(f"error: link {link_id} did not answer in time; is a worker running?")


def test_answering_a_link_with_nothing_pending_is_one_line(stack: DevStack) -> None:
    link_id = f"cli-{uuid.uuid4().hex[:10]}"
    linked = starter(
        stack,
        "link",
        "--username",
        "user_good",
        "--link-id",
        link_id,
        env={"LINKFLOW_PASSWORD": "pass_good"},
    )
    assert linked.returncode == 0, linked.stdout + linked.stderr

    run = starter(stack, "answer", link_id, stdin="correct\n")

    line = assert_one_clean_line(run, 1)
    assert line == f"error: Link {link_id} has no pending challenge (CONNECTED)."


def test_an_invalid_password_names_the_field_and_not_the_value(no_stack: DevStack) -> None:
    too_long = SECRET * 100
    run = starter(no_stack, "link", "--username", "user_good", env={"LINKFLOW_PASSWORD": too_long})

    line = assert_one_clean_line(run, 1)
    assert line.startswith("error: invalid input: password:")
    assert SECRET not in run.stdout + run.stderr


def test_an_invalid_answer_names_the_field_and_not_the_value(stack: DevStack) -> None:
    snapshot = started_in_mfa(stack, "user_mfa")

    run = starter(stack, "answer", snapshot["link_id"], env={"LINKFLOW_ANSWERS": SECRET * 100})

    line = assert_one_clean_line(run, 1)
    assert line.startswith("error: invalid input: value:")
    assert SECRET not in run.stdout + run.stderr


def test_a_missing_argument_is_one_line_and_exit_1(no_stack: DevStack) -> None:
    run = starter(no_stack, "status")

    line = assert_one_clean_line(run, 1)
    assert "the following arguments are required: link_id" in line


def test_a_rejected_answer_is_said_plainly_in_the_snapshot_description() -> None:
    from datetime import UTC, datetime

    from linkflow.models import LinkSnapshot, LinkStatus
    from starter import describe

    now = datetime.now(UTC)
    rejected = LinkSnapshot(
        link_id="link-1",
        status=LinkStatus.MFA_REQUIRED,
        started_at=now,
        updated_at=now,
        last_answer_rejected=True,
    )
    assert "did not accept the last answer" in describe(rejected)
    assert "did not accept" not in describe(
        rejected.model_copy(update={"last_answer_rejected": False})
    )
