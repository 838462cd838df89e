"""The server's limits on what a caller can put in a link's history, as the dev stack sets them.

The tests' dev server starts with `dev_server_limit_args()`, as the dev stack's does, and compose
sets the same values in deploy/dynamicconfig.yaml. No worker runs here: the server alone refuses.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from linkflow.temporal import (
    BLOB_SIZE_ERROR_BYTES,
    MAX_SIGNALS_PER_RUN,
    SERVER_LIMITS,
    dev_server_limit_args,
)

COMPOSE_DYNAMIC_CONFIG = Path(__file__).parent.parent / "deploy" / "dynamicconfig.yaml"


async def start_probe(
    dev_env: WorkflowEnvironment, argument: object = "small"
) -> WorkflowHandle[Any, Any]:
    return await dev_env.client.start_workflow(
        "LimitProbe",
        argument,
        id=f"limit-probe-{uuid.uuid4()}",
        task_queue=f"no-worker-{uuid.uuid4()}",
    )


async def test_an_oversized_signal_is_refused_and_the_run_goes_on(
    dev_env: WorkflowEnvironment,
) -> None:
    handle = await start_probe(dev_env)
    with pytest.raises(RPCError, match="Blob data size exceeds limit"):
        await handle.signal("answer_mfa", "x" * (BLOB_SIZE_ERROR_BYTES + 1))
    await handle.signal("answer_mfa", "x" * (BLOB_SIZE_ERROR_BYTES // 2))
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING


async def test_an_oversized_start_is_refused(dev_env: WorkflowEnvironment) -> None:
    with pytest.raises(RPCError, match="Blob data size exceeds limit"):
        await start_probe(dev_env, "x" * (BLOB_SIZE_ERROR_BYTES + 1))


async def test_a_run_takes_a_bounded_number_of_signals(dev_env: WorkflowEnvironment) -> None:
    handle = await start_probe(dev_env)
    for _ in range(MAX_SIGNALS_PER_RUN):
        await handle.signal("answer_mfa", "junk")
    with pytest.raises(RPCError, match="limit for signal events"):
        await handle.signal("answer_mfa", "one too many")
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING


def test_the_dev_server_flags_and_the_compose_file_set_the_same_limits() -> None:
    args = dev_server_limit_args()
    assert args[::2] == ["--dynamic-config-value"] * len(SERVER_LIMITS)
    assert dict(arg.split("=") for arg in args[1::2]) == {
        key: str(value) for key, value in SERVER_LIMITS.items()
    }
    compose = COMPOSE_DYNAMIC_CONFIG.read_text()
    for key, value in SERVER_LIMITS.items():
        assert f"{key}:\n  - value: {value}\n" in compose
