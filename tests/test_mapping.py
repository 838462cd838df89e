"""The README's mapping table is the code's mapping, provider by provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from linkflow.config import ProviderSettings
from linkflow.models import Provider
from providers.mapping import ADAPTER_MODULES, adapter_module, readme_table
from providers.registry import build_adapters

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- provider-mapping-table -->\n", "<!-- /provider-mapping-table -->"


def test_readme_table_is_the_code() -> None:
    shown = README.read_text().split(START)[1].split(END)[0]
    assert shown.strip() == readme_table()


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
