"""mypy rejects a provider call whose input model is not its activity's own.

Each step in `workflows/provider_calls.py` passes the activity method and its input through one
generic, so a mismatch is a type error at the call, not a decoding failure at run time. This runs
mypy (strict, the project's settings) on a call with the wrong model and on the right one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent

CALLS = """
from activities.provider import AnswerInput, ProviderActivities, SessionStep
from linkflow.models import Provider
from workflows.provider_calls import ProviderCalls


async def call(calls: ProviderCalls) -> None:
    data = {model}
    await calls._step(ProviderActivities.provider_answer, data, "send answers")
"""
RIGHT = "AnswerInput(provider=Provider.MX, session={}, challenges=[], answers=[])"
WRONG = "SessionStep(provider=Provider.MX, session={})"


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Shared by both checks: the second reuses what the first learned about the project.
    return tmp_path_factory.mktemp("mypy-cache")


def check(tmp_path: Path, cache: Path, model: str) -> tuple[str, int]:
    module = tmp_path / "provider_call_check.py"
    module.write_text(CALLS.format(model=model))
    config = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache)]
    stdout, _, status = api.run([*config, str(module)])
    return stdout, status


def test_the_right_input_model_type_checks(
    tmp_path: Path, mypy_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYPYPATH", str(ROOT))
    output, status = check(tmp_path, mypy_cache, RIGHT)
    assert status == 0, output


def test_a_wrong_input_model_is_a_type_error(
    tmp_path: Path, mypy_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYPYPATH", str(ROOT))
    output, status = check(tmp_path, mypy_cache, WRONG)
    assert status == 1
    assert 'incompatible type "Callable[[ProviderActivities, AnswerInput]' in output
    assert 'expected "Callable[[ProviderActivities, SessionStep]' in output
