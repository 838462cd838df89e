"""Builds one adapter per configured provider, for the worker to hand to the activities."""

from __future__ import annotations

from linkflow.config import ProviderSettings
from linkflow.models import Provider
from providers.base import ProviderAdapter
from providers.mx import MxAdapter


def build_adapters(settings: ProviderSettings) -> dict[Provider, ProviderAdapter]:
    return {
        Provider.MX: MxAdapter(settings.mx.base_url, settings.mx.client_id, settings.mx.api_key),
    }
