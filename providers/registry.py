"""The providers linkflow has an adapter for, each with its adapter class: one typed list.

The worker builds its adapters from it (`build_adapters`), the CLI offers its providers
(`IMPLEMENTED_PROVIDERS`), and the README's tables are rendered from its classes
(`providers/readme_tables.py`). Each entry is a class, not a module named by a string, so mypy
checks that a new adapter says what every adapter must (`AdapterClass`) and builds a
`ProviderAdapter`.
"""

from __future__ import annotations

from typing import Protocol

from linkflow.config import ProviderSettings
from linkflow.models import Provider
from providers.arcadia import ArcadiaAdapter
from providers.base import ProviderAdapter, ProviderTables
from providers.mx import MxAdapter
from providers.synapse import SynapseAdapter
from providers.teal import TealAdapter
from providers.unbill import UnbillAdapter


class AdapterClass(ProviderTables, Protocol):
    """An adapter's class: its provider's tables, and how it is built from the settings."""

    def from_settings(self, settings: ProviderSettings) -> ProviderAdapter: ...


# The providers with an adapter, in the README's order. A worker refuses links to any other.
ADAPTERS: dict[Provider, AdapterClass] = {
    Provider.MX: MxAdapter,
    Provider.SYNAPSE: SynapseAdapter,
    Provider.ARCADIA: ArcadiaAdapter,
    Provider.TEAL: TealAdapter,
    Provider.UNBILL: UnbillAdapter,
}
IMPLEMENTED_PROVIDERS = list(ADAPTERS)


def build_adapters(settings: ProviderSettings) -> dict[Provider, ProviderAdapter]:
    return {provider: adapter.from_settings(settings) for provider, adapter in ADAPTERS.items()}
