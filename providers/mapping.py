"""How each provider's own words map onto the link's vocabulary, in one comparable form.

Every adapter module describes its provider with the same three pieces of data:

- `STATUS_FIELD`: where the provider puts its status word (for the README's table),
- `STATUS_MEANINGS`: each status word it documents, as a `StatusMeaning`,
- `CHALLENGE_KINDS`: each kind of MFA question it sends, as linkflow's `ChallengeKind`.

`readme_table()` renders all of them as the one table in the README, and a test keeps the two
equal, so the documentation cannot drift from the code. After changing a mapping, rewrite the
README's generated tables with `python -m providers.mapping`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from linkflow.models import ChallengeKind, LinkReason, Provider
from providers.base import Outcome

# The providers with an adapter, in the README's order. A worker refuses links to any other.
ADAPTER_MODULES: dict[Provider, str] = {
    Provider.MX: "providers.mx",
    Provider.SYNAPSE: "providers.synapse",
    Provider.ARCADIA: "providers.arcadia",
    Provider.TEAL: "providers.teal",
    Provider.UNBILL: "providers.unbill",
}
IMPLEMENTED_PROVIDERS = list(ADAPTER_MODULES)


class StatusMeaning(NamedTuple):
    """What one provider status word means for a link.

    Exactly one of three holds: `outcome` is set (the link goes on in that state), `failure` is
    set (the provider's final answer, raised as `LinkFailure`), or neither (transient trouble,
    raised as `ProviderUnavailable` so that it is retried). `reason` qualifies an
    ACTION_REQUIRED outcome. `message` is a sentence for the end user.
    """

    outcome: Outcome | None = None
    failure: LinkReason | None = None
    reason: LinkReason | None = None
    message: str = ""

    @property
    def transient(self) -> bool:
        return self.outcome is None and self.failure is None

    def describe(self) -> str:
        """The meaning in the link's vocabulary, as the README's table shows it."""
        if self.failure is not None:
            return f"`FAILED` ({self.failure.value}), not retried"
        if self.outcome is None:
            return "transient: retried"
        if self.outcome is Outcome.LINKED:
            return "`CONNECTED`"
        if self.outcome is Outcome.CHALLENGED:
            return "`MFA_REQUIRED`"
        if self.outcome is Outcome.ACTION_REQUIRED:
            return f"`ACTION_REQUIRED` ({self.reason.value if self.reason else '-'})"
        return "`CONNECTING`: followed until it changes"


def transient(message: str) -> StatusMeaning:
    return StatusMeaning(message=message)


def final(reason: LinkReason, message: str) -> StatusMeaning:
    return StatusMeaning(failure=reason, message=message)


def adapter_module(provider: Provider) -> ModuleType:
    return importlib.import_module(ADAPTER_MODULES[provider])


def provider_rows(provider: Provider, module: ModuleType) -> list[str]:
    field: str = module.STATUS_FIELD
    meanings: Mapping[str, StatusMeaning] = module.STATUS_MEANINGS
    kinds: Mapping[str, ChallengeKind] = module.CHALLENGE_KINDS
    name = provider.value
    rows = [f"| {name} | {field} `{word}` | {m.describe()} |" for word, m in meanings.items()]
    rows += [f"| {name} | challenge `{word}` | `{kind.value}` |" for word, kind in kinds.items()]
    return rows


def readme_table(providers: list[Provider] | None = None) -> str:
    """The whole mapping, every provider's statuses and challenge kinds, as Markdown."""
    rows = ["| provider | the provider's word | linkflow |", "|---|---|---|"]
    for provider in providers or list(ADAPTER_MODULES):
        rows += provider_rows(provider, adapter_module(provider))
    return "\n".join(rows)


README = Path(__file__).resolve().parent.parent / "README.md"


def readme_sections() -> dict[str, str]:
    """Each generated README table by the name of the HTML comments that fence it."""
    arcadia = importlib.import_module("providers.arcadia")
    return {
        "provider-mapping-table": readme_table(),
        "arcadia-status-table": arcadia.status_table(),
    }


def fenced(text: str, name: str) -> str:
    """What the README holds between `<!-- name -->` and `<!-- /name -->`, stripped."""
    match = re.search(rf"<!-- {name} -->\n(.*?)<!-- /{name} -->", text, re.DOTALL)
    if match is None:
        raise ValueError(f"README has no <!-- {name} --> section")
    return match.group(1).strip()


def rewrite_readme(path: Path = README) -> None:
    text = path.read_text()
    for name, table in readme_sections().items():
        text = text.replace(fenced(text, name), table, 1)
    path.write_text(text)


if __name__ == "__main__":
    rewrite_readme()
