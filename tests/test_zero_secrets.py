"""Zero: no secret can be read from a link's history, by anyone, in any form.

The real dev stack (dev server on SQLite on disk, sandbox, worker and codec server as processes)
runs links of every provider with distinctive passwords and answers: a link through MFA with a
wrong answer before the right ones, a login with a wrong password, and new credentials sent to a
connected link. Then every history is read the three ways a person could: `temporal workflow
show` without the codec, the raw database file, and `temporal workflow show` through the codec
server, which decrypts for people but masks every secret. No secret may appear in any of them,
in plaintext or in base64, nor in any process's log.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from linkflow.client import LinkClient
from linkflow.config import TemporalSettings
from linkflow.devstack import DevStack, StackPorts, temporal_cli
from linkflow.models import Credentials, LinkRequest, LinkStatus, MfaSubmission, Provider
from linkflow.temporal import connect
from tests.fixtures.answers import right_answers
from tests.fixtures.leaks import found

pytestmark = pytest.mark.e2e

GOOD_PASSWORD = "pass_good"
MASK = "••••••"


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    state_dir = Path(tempfile.mkdtemp(prefix="linkflow-zero-"))
    dev_stack = DevStack(
        ports=StackPorts.free(),
        state_dir=state_dir,
        task_queue="linkflow-zero",
        sandbox_args=("--latency-seconds", "0"),
    )
    try:
        dev_stack.start()
        yield dev_stack
    finally:
        dev_stack.stop()


def show(stack: DevStack, link_id: str, *, codec: bool) -> str:
    environment = {key: value for key, value in os.environ.items() if "CODEC" not in key}
    if codec:
        environment |= stack.codec_cli_env()
    completed = subprocess.run(
        [
            temporal_cli(),
            "workflow",
            "show",
            "--address",
            stack.ports.temporal_address,
            "--workflow-id",
            link_id,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


async def run_links(links: LinkClient, provider: Provider, tag: str) -> tuple[list[str], list[str]]:
    """Three links at `provider`; returns their ids and the secrets they were given."""
    wrong_answer = f"zs-answer-{tag}"
    bad_password = f"zs-password-{tag}"
    new_password = f"zs-new-password-{tag}"

    def request(username: str, password: str) -> LinkRequest:
        return LinkRequest(
            provider=provider,
            user_ref=f"zero-{tag}",
            credentials=Credentials(username=username, password=password),
        )

    through_mfa = await links.start_link(request("user_otp", GOOD_PASSWORD))
    snapshot = await links.wait_for(
        through_mfa, {LinkStatus.MFA_REQUIRED}, within=timedelta(seconds=60)
    )
    answered_wrong = False
    while snapshot.status is LinkStatus.MFA_REQUIRED:
        submission = right_answers(snapshot)
        typed = [c.id for c in snapshot.pending_challenges if not c.kind.has_options]
        if typed and not answered_wrong:
            answered_wrong = True
            submission = MfaSubmission.model_validate(
                {"answers": [{"challenge_id": typed[0], "value": wrong_answer}]}
            )
        snapshot = await links.submit_mfa(through_mfa, submission)
        if not snapshot.pending_challenges and snapshot.status is LinkStatus.MFA_REQUIRED:
            snapshot = await links.settled(through_mfa)
    assert snapshot.status is LinkStatus.CONNECTED, snapshot
    assert answered_wrong

    bad_login = await links.start_link(request("user_bad", bad_password))
    assert (await links.result(bad_login)).status is LinkStatus.FAILED

    relinked = await links.start_link(request("user_good", GOOD_PASSWORD))
    assert (await links.settled(relinked)).status is LinkStatus.CONNECTED
    changed = await links.update_credentials(
        relinked, Credentials(username="user_good", password=new_password)
    )
    assert changed.status is LinkStatus.ACTION_REQUIRED
    return [through_mfa, bad_login, relinked], [wrong_answer, bad_password, new_password]


async def test_no_secret_can_be_read_from_any_history_log_or_database(stack: DevStack):
    settings = TemporalSettings(address=stack.ports.temporal_address, task_queue=stack.task_queue)
    links = LinkClient(await connect(settings, key_ring=stack.key_ring()), stack.task_queue)
    link_ids: list[str] = []
    secrets = [GOOD_PASSWORD]
    for provider in Provider:
        ids, given = await run_links(links, provider, f"{provider.value}-{uuid.uuid4().hex[:8]}")
        link_ids += ids
        secrets += given

    raw_histories = "".join(show(stack, link_id, codec=False) for link_id in link_ids)
    readable_histories = "".join(show(stack, link_id, codec=True) for link_id in link_ids)
    database = b"".join(path.read_bytes() for path in stack.state_dir.glob("temporal.db*"))
    logs = b"".join(path.read_bytes() for path in stack.log_dir.glob("*.log"))

    assert len(link_ids) == 15
    assert found(secrets, raw_histories) == []
    assert found(secrets, database.decode("latin-1")) == []
    assert found(secrets, logs.decode("latin-1")) == []
    assert found(secrets, readable_histories) == []
    # Read through the codec, the story is all there, with every secret masked (the CLI's JSON
    # output shows each decoded payload's bytes in base64, hence `found`).
    assert found(["user_otp", MASK], readable_histories) == ["user_otp", MASK]
    assert found(["user_otp"], raw_histories) == []
    assert found(["binary/encrypted"], raw_histories) == ["binary/encrypted"]
