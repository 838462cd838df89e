"""The README's generated tables are the code's mapping, provider by provider."""

from __future__ import annotations

import pytest

from linkflow.config import ProviderSettings
from linkflow.models import Provider
from providers import arcadia
from providers.mapping import ADAPTER_MODULES, README, adapter_module, fenced, readme_sections
from providers.registry import build_adapters
from sandbox import arcadia as arcadia_sandbox


@pytest.mark.parametrize("section", list(readme_sections()))
def test_readme_tables_are_the_code(section: str) -> None:
    assert fenced(README.read_text(), section) == readme_sections()[section], (
        "README is stale: run `.venv/bin/python -m providers.mapping`"
    )


def test_arcadia_sandbox_and_adapter_pair_every_detail_alike() -> None:
    assert arcadia.HIGH_LEVEL_STATUS == arcadia_sandbox.STATUS_OF_DETAIL
    assert set(arcadia.HIGH_LEVEL_STATUS) == set(arcadia.STATUS_MEANINGS)


async def test_the_worker_builds_an_adapter_for_every_implemented_provider() -> None:
    adapters = build_adapters(ProviderSettings(sandbox_url="http://127.0.0.1:1"))
    try:
        assert set(adapters) == set(ADAPTER_MODULES)
        assert all(adapter.provider is provider for provider, adapter in adapters.items())
    finally:
        for adapter in adapters.values():
            await adapter.aclose()


@pytest.mark.parametrize("provider", list(ADAPTER_MODULES))
def test_every_meaning_is_exactly_one_thing(provider: Provider) -> None:
    module = adapter_module(provider)
    assert module.STATUS_MEANINGS, provider
    assert module.CHALLENGE_KINDS, provider
    for word, meaning in module.STATUS_MEANINGS.items():
        kinds = [meaning.outcome is not None, meaning.failure is not None, meaning.transient]
        assert kinds.count(True) == 1, word
        assert meaning.message, word
