"""What the workflow sandbox imports anew for every run of a link, and what it reads as bytecode.

The sandbox imports a link's workflow module afresh for each run it starts or replays; every other
module the link uses is passed through from the worker. A module that slips through (`from
workflows import inbox` instead of `import workflows.inbox as inbox`) is compiled and executed
again for every link: with the missing bytecode, bench/speed.py measured that at about 6 ms of a
51 ms start. These tests keep both from coming back.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.conftest import TEST_DATA_CONVERTER
from worker import precompile_workflow_modules
from workflows.account_link import AccountLinkWorkflow

HISTORY = Path(__file__).parent / "histories" / "mx_two_rounds.json"
OUR_PACKAGES = ("workflows", "activities", "linkflow", "providers")


class ImportRecorder(importlib.abc.MetaPathFinder):
    """Notes every module of ours that some import looks for; finds nothing itself."""

    def __init__(self) -> None:
        self.looked_for: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in OUR_PACKAGES:
            self.looked_for.append(fullname)
        return None


@pytest.fixture
def import_recorder() -> Iterator[ImportRecorder]:
    recorder = ImportRecorder()
    sys.meta_path.insert(0, recorder)
    try:
        yield recorder
    finally:
        sys.meta_path.remove(recorder)


async def test_a_run_imports_only_the_link_module_anew(import_recorder: ImportRecorder) -> None:
    history = WorkflowHistory.from_json("link", json.loads(HISTORY.read_text()))
    replayer = Replayer(workflows=[AccountLinkWorkflow], data_converter=TEST_DATA_CONVERTER)
    await replayer.replay_workflow(history)  # the worker's own imports happen once, here
    import_recorder.looked_for.clear()

    await replayer.replay_workflow(history)

    assert sorted(set(import_recorder.looked_for)) == ["workflows", "workflows.account_link"]


def test_the_worker_writes_the_workflow_modules_bytecode() -> None:
    module_file = Path(inspect.getfile(AccountLinkWorkflow))
    bytecode = Path(importlib.util.cache_from_source(str(module_file)))
    bytecode.unlink(missing_ok=True)

    precompile_workflow_modules()

    assert bytecode.is_file()
    assert bytecode.stat().st_mtime >= module_file.stat().st_mtime
