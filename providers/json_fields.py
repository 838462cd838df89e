"""Reading single fields of a provider's JSON, one meaning per helper.

Every adapter reads optional fields out of bodies it cannot fully trust. Each of these helpers
says one thing: `text` is a non-empty string or nothing, `object_or_empty` treats anything but an
object as an empty one (an optional part of a body), and `required_object` is a part the provider
must send, so its absence is the provider's passing trouble.
"""

from __future__ import annotations

from typing import Any

from providers.errors import ProviderUnavailable


def text(value: object) -> str | None:
    """`value` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def object_or_empty(value: object) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: for optional parts of a body."""
    return value if isinstance(value, dict) else {}


def required_object(value: object, provider: str, what: str) -> dict[str, Any]:
    """`value`, which the provider must send as an object; anything else is passing trouble."""
    if not isinstance(value, dict):
        raise ProviderUnavailable(f"{provider} sent a {what} that is not an object.")
    return value
