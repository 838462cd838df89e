"""The README's generated tables are the code's tables, provider by provider."""

from __future__ import annotations

import pytest

from linkflow.config import ProviderSettings
from linkflow.models import Provider
from providers.arcadia import HIGH_LEVEL_STATUS, ArcadiaAdapter
from providers.readme_tables import README, fenced, readme_sections
from providers.registry import ADAPTERS, IMPLEMENTED_PROVIDERS, build_adapters
from sandbox.arcadia import STATUS_OF_DETAIL
from sandbox.users import Scenario
from sandbox.users_table import SANDBOX_CLASSES


@pytest.mark.parametrize("section", list(readme_sections()))
def test_readme_tables_are_the_code(section: str) -> None:
    assert fenced(README.read_text(), section) == readme_sections()[section], (
        "README is stale: run `.venv/bin/python -m providers.readme_tables`"
    )


def test_arcadia_sandbox_and_adapter_pair_every_detail_alike() -> None:
    assert HIGH_LEVEL_STATUS == STATUS_OF_DETAIL
    assert set(HIGH_LEVEL_STATUS) == set(ArcadiaAdapter.STATUSES.meanings)


async def test_the_worker_builds_an_adapter_for_every_implemented_provider() -> None:
    adapters = build_adapters(ProviderSettings(sandbox_url="http://127.0.0.1:1"))
    try:
        assert list(adapters) == IMPLEMENTED_PROVIDERS == list(ADAPTERS)
        assert all(adapter.provider is provider for provider, adapter in adapters.items())
    finally:
        for adapter in adapters.values():
            await adapter.aclose()


@pytest.mark.parametrize("provider", list(ADAPTERS), ids=[p.value for p in ADAPTERS])
def test_every_meaning_is_exactly_one_thing(provider: Provider) -> None:
    adapter = ADAPTERS[provider]
    assert adapter.provider is provider
    assert adapter.STATUSES.meanings, provider
    assert adapter.CHALLENGE_KINDS, provider
    for word, meaning in adapter.STATUSES.meanings.items():
        kinds = [meaning.outcome is not None, meaning.failure is not None, meaning.transient]
        assert kinds.count(True) == 1, word
        assert meaning.message, word


def test_every_sandbox_tells_every_shared_test_users_story() -> None:
    for provider, sandbox in SANDBOX_CLASSES.items():
        missing = {scenario.value for scenario in Scenario} - set(sandbox.TEST_USERS)
        assert not missing, f"{provider.value} has no story for {sorted(missing)}"
        assert all(story.strip() for story in sandbox.TEST_USERS.values())
