"""What a provider's status word means for a link: the one vocabulary every adapter's table uses.

Each adapter describes its provider's status words in one `StatusTable` (the provider, the field
the word arrives in, and a `StatusMeaning` per word). Its state readers consult the table through
`StatusTable.meaning_of` and `StatusTable.outcome_of`, the README's tables are rendered from it
(`providers/readme_tables.py`), and the tests read it, so a word means one thing everywhere.

A meaning says how the link goes on (`Handling`: linked, in progress, challenged, needing the
user, terminal, or transient trouble), the `LinkReason` when the user must act or the link ends,
and who must act before anything changes (`Actor`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from linkflow.models import LinkReason
from providers.errors import LinkFailure, ProviderUnavailable
from providers.privacy import provider_word


class Outcome(StrEnum):
    """Where a login stands, in linkflow's words."""

    LINKED = "LINKED"
    """Logged in; accounts can be fetched."""
    PENDING = "PENDING"
    """The provider is still working; poll again."""
    CHALLENGED = "CHALLENGED"
    """The provider asks the end user one or more questions."""
    ACTION_REQUIRED = "ACTION_REQUIRED"
    """The user must act outside linkflow (a hold, an enrollment) before the link can go on."""


class Handling(StrEnum):
    """What linkflow does with a status word: the groups the README's tables show."""

    LINKED = "linked"
    IN_PROGRESS = "in progress"
    CHALLENGED = "challenged"
    NEEDS_USER = "needs the user"
    TERMINAL = "terminal"
    TRANSIENT = "transient"


class Actor(StrEnum):
    """Who must act before the login can move on."""

    NOBODY = "nobody"
    """Linked: nothing is waiting."""
    PROVIDER = "provider"
    """The provider is working, or in trouble; linkflow waits or retries."""
    USER = "user"
    """The end user must answer, act at the provider, or start again."""


HANDLING_OF_OUTCOME = {
    Outcome.LINKED: Handling.LINKED,
    Outcome.PENDING: Handling.IN_PROGRESS,
    Outcome.CHALLENGED: Handling.CHALLENGED,
    Outcome.ACTION_REQUIRED: Handling.NEEDS_USER,
}
USUAL_ACTOR = {
    Handling.LINKED: Actor.NOBODY,
    Handling.IN_PROGRESS: Actor.PROVIDER,
    Handling.CHALLENGED: Actor.USER,
    Handling.NEEDS_USER: Actor.USER,
    Handling.TERMINAL: Actor.USER,
    Handling.TRANSIENT: Actor.PROVIDER,
}


@dataclass(frozen=True)
class StatusMeaning:
    """What one provider status word means for a link.

    Exactly one of three holds: `outcome` is set (the link goes on in that state), `failure` is
    set (the provider's final answer, raised as `LinkFailure`), or neither (transient trouble,
    raised as `ProviderUnavailable` so that it is retried). `reason` qualifies an
    ACTION_REQUIRED outcome, and only that. `message` is a sentence for the end user. `actor`
    names who must act when it is not the usual one for the handling (`USUAL_ACTOR`).
    """

    outcome: Outcome | None = None
    failure: LinkReason | None = None
    reason: LinkReason | None = None
    message: str = ""
    actor: Actor | None = None

    def __post_init__(self) -> None:
        if self.outcome is not None and self.failure is not None:
            raise ValueError("A status word either lets the link go on or ends it, not both.")
        if (self.reason is not None) != (self.outcome is Outcome.ACTION_REQUIRED):
            raise ValueError("A reason qualifies ACTION_REQUIRED, and ACTION_REQUIRED needs one.")

    @property
    def handling(self) -> Handling:
        if self.failure is not None:
            return Handling.TERMINAL
        if self.outcome is None:
            return Handling.TRANSIENT
        return HANDLING_OF_OUTCOME[self.outcome]

    @property
    def transient(self) -> bool:
        return self.handling is Handling.TRANSIENT

    @property
    def who_acts(self) -> Actor:
        return self.actor or USUAL_ACTOR[self.handling]


def linked(message: str) -> StatusMeaning:
    return StatusMeaning(Outcome.LINKED, message=message)


def in_progress(message: str) -> StatusMeaning:
    return StatusMeaning(Outcome.PENDING, message=message)


def challenged(message: str) -> StatusMeaning:
    return StatusMeaning(Outcome.CHALLENGED, message=message)


def needs_user(reason: LinkReason, message: str) -> StatusMeaning:
    return StatusMeaning(Outcome.ACTION_REQUIRED, reason=reason, message=message)


def final(reason: LinkReason, message: str) -> StatusMeaning:
    return StatusMeaning(failure=reason, message=message)


def transient(message: str) -> StatusMeaning:
    return StatusMeaning(message=message)


@dataclass(frozen=True)
class StatusTable:
    """One provider's status words: who says them, where, and what each means.

    `provider_name` is the provider as linkflow's messages name it ("MX"); `field` is where its
    body carries the word, as the README names it (`status.type` for a nested field).
    """

    provider_name: str
    field: str
    meanings: Mapping[str, StatusMeaning]

    def meaning_of(self, word: object) -> tuple[str, StatusMeaning]:
        """The word and what it means; a word the table lacks, or none, is passing trouble."""
        meaning = self.meanings.get(word) if isinstance(word, str) else None
        if not isinstance(word, str) or meaning is None:
            raise ProviderUnavailable(
                f"{self.provider_name}'s {self.field} is {provider_word(word)},"
                " a word linkflow does not know."
            )
        return word, meaning

    def outcome_of(self, word: str, meaning: StatusMeaning) -> Outcome:
        """How the link goes on with this word (as the link records it).

        A final word raises `LinkFailure` and a transient one `ProviderUnavailable`.
        """
        if meaning.failure is not None:
            raise LinkFailure(meaning.failure, word, meaning.message)
        if meaning.outcome is None:
            raise ProviderUnavailable(
                f"{self.provider_name}'s {self.field} is {word}: {meaning.message}"
            )
        return meaning.outcome
