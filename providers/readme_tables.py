"""The README's provider tables, rendered from the adapters' own tables.

Each generated table sits in the README between `<!-- name -->` and `<!-- /name -->`;
`readme_sections()` renders them all from the registry's adapter classes (their `STATUSES` and
`CHALLENGE_KINDS`) and Arcadia's pairing of `statusDetail` with `status`, and a test keeps the
README equal to it, so the documentation cannot drift from the code. After changing a table,
rewrite the README's generated sections with `python -m providers.readme_tables`.
"""

from __future__ import annotations

import re
from pathlib import Path

from providers.arcadia import (
    CONNECTION_FAILURE,
    CONNECTION_IN_PROGRESS,
    CONNECTION_SUCCESS,
    HIGH_LEVEL_STATUS,
    ArcadiaAdapter,
)
from providers.assumptions import assumptions_table
from providers.registry import ADAPTERS, AdapterClass
from providers.status import Handling, StatusMeaning
from sandbox.users_table import users_table

README = Path(__file__).resolve().parent.parent / "README.md"


# What linkflow makes of each kind of word, as the mapping table says it and as Arcadia's table
# does; `{reason}` is the meaning's `LinkReason`.
HANDLING_WORDS: dict[Handling, tuple[str, str]] = {
    Handling.LINKED: ("`CONNECTED`", "`CONNECTED`"),
    Handling.IN_PROGRESS: (
        "`CONNECTING`: followed until it changes",
        "in progress: `CONNECTING`, followed with durable polling",
    ),
    Handling.CHALLENGED: ("`MFA_REQUIRED`", "`MFA_REQUIRED`"),
    Handling.NEEDS_USER: (
        "`ACTION_REQUIRED` ({reason})",
        "needs the user: `ACTION_REQUIRED` ({reason})",
    ),
    Handling.TERMINAL: ("`FAILED` ({reason}), not retried", "terminal: `FAILED` ({reason})"),
    Handling.TRANSIENT: (
        "transient: retried",
        "transient: retried with backoff, `PROVIDER_ERROR` when retries run out",
    ),
}


def _words(meaning: StatusMeaning, column: int) -> str:
    reason = meaning.failure or meaning.reason
    return HANDLING_WORDS[meaning.handling][column].format(reason=reason.value if reason else "-")


def link_state(meaning: StatusMeaning) -> str:
    """A meaning as the mapping table says it: the link's state, or how trouble is handled."""
    return _words(meaning, 0)


def handling(meaning: StatusMeaning) -> str:
    """A meaning as Arcadia's table says it: its group, and what linkflow makes of it."""
    return _words(meaning, 1)


def provider_rows(adapter: AdapterClass) -> list[str]:
    name, statuses = adapter.provider.value, adapter.STATUSES
    rows = [
        f"| {name} | {statuses.field} `{word}` | {link_state(meaning)} |"
        for word, meaning in statuses.meanings.items()
    ]
    rows += [
        f"| {name} | challenge `{word}` | `{kind.value}` |"
        for word, kind in adapter.CHALLENGE_KINDS.items()
    ]
    return rows


def mapping_table() -> str:
    """Every provider's status words and challenge kinds, as Markdown."""
    rows = ["| provider | the provider's word | linkflow |", "|---|---|---|"]
    for adapter in ADAPTERS.values():
        rows += provider_rows(adapter)
    return "\n".join(rows)


def arcadia_status_table() -> str:
    """Arcadia's statuses grouped by high-level `status`, with who must act, as the README
    shows them."""
    meanings = ArcadiaAdapter.STATUSES.meanings
    rows = ["| `status` | `statusDetail` | who must act | linkflow |", "|---|---|---|---|"]
    for status in (CONNECTION_SUCCESS, CONNECTION_IN_PROGRESS, CONNECTION_FAILURE):
        rows += [
            f"| `{status}` | `{detail}` | {meaning.who_acts.value} | {handling(meaning)} |"
            for detail, meaning in meanings.items()
            if HIGH_LEVEL_STATUS[detail] == status
        ]
    return "\n".join(rows)


def readme_sections() -> dict[str, str]:
    """Each generated README table by the name of the HTML comments that fence it."""
    return {
        "provider-mapping-table": mapping_table(),
        "arcadia-status-table": arcadia_status_table(),
        "assumptions-table": assumptions_table(),
        "test-users-table": users_table(),
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
        fenced(text, name)  # raises when the README lacks the section
        opening, closing = f"<!-- {name} -->\n", f"<!-- /{name} -->"
        start = text.index(opening) + len(opening)
        text = text[:start] + table + "\n" + text[text.index(closing, start) :]
    path.write_text(text)


if __name__ == "__main__":
    rewrite_readme()
