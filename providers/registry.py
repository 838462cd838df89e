"""Builds one adapter per provider, for the worker to hand to the activities."""

from __future__ import annotations

from linkflow.config import ProviderSettings
from linkflow.models import Provider
from providers.base import ProviderAdapter
from providers.mapping import adapter_module


def build_adapters(settings: ProviderSettings) -> dict[Provider, ProviderAdapter]:
    adapters: dict[Provider, ProviderAdapter] = {}
    for provider in Provider:
        try:
            module = adapter_module(provider)
        except ModuleNotFoundError:  # TEMPORARY while providers are being written
            continue
        adapters[provider] = module.create_adapter(settings)
    return adapters
