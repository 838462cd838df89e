"""Builds one adapter per provider, for the worker to hand to the activities."""

from __future__ import annotations

from linkflow.config import ProviderSettings
from linkflow.models import Provider
from providers.base import ProviderAdapter
from providers.mapping import IMPLEMENTED_PROVIDERS, adapter_module


def build_adapters(settings: ProviderSettings) -> dict[Provider, ProviderAdapter]:
    return {
        provider: adapter_module(provider).create_adapter(settings)
        for provider in IMPLEMENTED_PROVIDERS
    }
