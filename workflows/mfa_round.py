"""One MFA round of a link: the challenges it shows, the answers it accepts, the rules it keeps.

A round is the set of challenges the provider asked at once. Answers arrive one by one or
together (the `submit_mfa` update, the `answer_mfa` signal); the round is complete once every
challenge that takes an answer has one, and then the link sends them all to the provider. An
answer, once accepted, cannot be changed, but sending the identical answer again (a retry of a
lost reply) is accepted and answered with the same outcome. Refusals are sentences a person
understands, and quote only ids the provider issued: an id the link does not know may be anything
a careless client put there, its user's password included.

This is plain state and rules, with no Temporal calls, so its rules are unit-tested directly.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from linkflow.models import (
    MAX_ANSWER_LENGTH,
    Challenge,
    ChallengeAnswer,
    ChallengeKind,
    MfaSubmission,
)
from linkflow.refusals import quote


class MfaRound:
    """The link's current round and the answers accepted in every round so far."""

    def __init__(self, salt: str) -> None:
        # The digests of accepted answers are salted with the link's id, so two links' identical
        # answers never share a digest.
        self._salt = salt
        self.number = 0
        self.pending: dict[str, Challenge] = {}
        self.answers: dict[str, ChallengeAnswer] = {}
        # challenge id -> (round, digest of its accepted answer), to recognise identical repeats.
        self._accepted: dict[str, tuple[int, str]] = {}
        self._just_answered: list[Challenge] = []

    def begin(self, challenges: list[Challenge], deadline: datetime) -> None:
        """Show a new round, every challenge with the round's deadline.

        A question asked again right after its answer went in means the provider rejected that
        answer (every provider here answers a wrong answer so); the challenge says so.
        """
        asked_again = {(c.kind, c.prompt) for c in self._just_answered}
        self._just_answered = []
        self.number += 1
        self.pending = {
            c.id: c.model_copy(
                update={
                    "deadline": deadline,
                    "after_rejected_answer": (c.kind, c.prompt) in asked_again,
                }
            )
            for c in challenges
        }
        self.answers = {}

    @property
    def follows_a_rejected_answer(self) -> bool:
        return any(c.after_rejected_answer for c in self.pending.values())

    @property
    def complete(self) -> bool:
        return bool(self.pending) and all(
            challenge_id in self.answers
            for challenge_id, challenge in self.pending.items()
            if challenge.kind.needs_answer
        )

    def unanswered(self) -> list[Challenge]:
        return [c for c in self.pending.values() if c.id not in self.answers]

    def take(self) -> tuple[list[Challenge], list[ChallengeAnswer]]:
        """The round's challenges and answers, to send to the provider; the round is closed."""
        challenges = list(self.pending.values())
        answers = [self.answers[c.id] for c in challenges if c.id in self.answers]
        self._just_answered = challenges
        self.close()
        return challenges, answers

    def close(self) -> None:
        self.pending = {}
        self.answers = {}

    def check(self, submission: MfaSubmission, status: str) -> None:
        """Refuse, with a reason, any answer this round cannot take (`status`: the link's)."""
        if not submission.answers:
            raise ValueError("The submission has no answers.")
        seen: set[str] = set()
        for answer in submission.answers:
            challenge_id = answer.challenge_id
            if challenge_id in seen:
                raise ValueError(
                    f"Challenge {self._named(challenge_id)} is answered twice in one submission."
                )
            seen.add(challenge_id)
            self._check_one(challenge_id, answer.value.get_secret_value().strip(), status)

    def _check_one(self, challenge_id: str, value: str, status: str) -> None:
        accepted = self._accepted.get(challenge_id)
        if accepted is not None:
            if accepted[1] == self._digest(challenge_id, value):
                return
            raise ValueError(
                f"Challenge {quote(challenge_id)} was already answered; its answer cannot be"
                " changed."
            )
        challenge = self.pending.get(challenge_id)
        if challenge is None:
            if not self.pending:
                raise ValueError(f"No MFA challenge is pending for this link (status {status}).")
            pending = ", ".join(quote(pending_id) for pending_id in self.pending)
            raise ValueError(
                f"Unknown challenge (an id of {len(challenge_id)} characters that is not"
                f" pending); pending: {pending}."
            )
        if not challenge.kind.needs_answer:
            where = (
                "at the provider's page it links to"
                if challenge.kind is ChallengeKind.REDIRECT
                else "on the user's device"
            )
            raise ValueError(
                f"Challenge {quote(challenge_id)} is completed {where}; it takes no answer."
            )
        if not value:
            raise ValueError(f"The answer to challenge {quote(challenge_id)} is empty.")
        if len(value) > MAX_ANSWER_LENGTH:
            raise ValueError(
                f"The answer to challenge {quote(challenge_id)} is longer than"
                f" {MAX_ANSWER_LENGTH} characters."
            )
        if challenge.kind.has_options and value not in challenge.option_values():
            raise ValueError(
                f"The answer to challenge {quote(challenge_id)} is not one of its options:"
                f" {', '.join(challenge.option_values())}."
            )

    def accept(self, submission: MfaSubmission) -> tuple[int, int]:
        """Record checked answers; returns the latest round they belong to and how many are new."""
        answered_round = new = 0
        for answer in submission.answers:
            value = answer.value.get_secret_value().strip()
            accepted = self._accepted.get(answer.challenge_id)
            if accepted is not None:
                answered_round = max(answered_round, accepted[0])
                continue
            self.answers[answer.challenge_id] = ChallengeAnswer(
                challenge_id=answer.challenge_id, value=value
            )
            self._accepted[answer.challenge_id] = (
                self.number,
                self._digest(answer.challenge_id, value),
            )
            new += 1
            answered_round = self.number
        return answered_round, new

    def _named(self, challenge_id: str) -> str:
        known = challenge_id in self.pending or challenge_id in self._accepted
        return (
            quote(challenge_id) if known else f"(an unknown id of {len(challenge_id)} characters)"
        )

    def _digest(self, challenge_id: str, value: str) -> str:
        return hashlib.sha256(f"{self._salt}\0{challenge_id}\0{value}".encode()).hexdigest()
