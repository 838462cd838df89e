"""The MFA round's rules, unit-tested without a server: what a round shows, takes and refuses.

`workflows/mfa_round.py` is plain state, so every refusal sentence, the answer bookkeeping and the
"asked again right after its answer" rule are checked here directly, in milliseconds. A property
test throws arbitrary ids and values at `check` (it may only refuse with a `ValueError`) and makes
sure whatever it lets through can be recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from linkflow.models import (
    MAX_ANSWER_LENGTH,
    Challenge,
    ChallengeAnswer,
    ChallengeKind,
    ChallengeOption,
    MfaSubmission,
)
from workflows.mfa_round import MfaRound

DEADLINE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
# What a careless client might put where a challenge id goes: it must never be quoted back.
PASSWORD_AS_ID = "hunter2-the-users-password"


def challenge(
    challenge_id: str,
    kind: ChallengeKind = ChallengeKind.CODE,
    prompt: str = "Enter the code we texted you.",
    options: tuple[str, ...] = (),
) -> Challenge:
    return Challenge(
        id=challenge_id,
        kind=kind,
        prompt=prompt,
        options=[ChallengeOption(value=value, label=value.title()) for value in options],
    )


def submission(*answers: tuple[str, str]) -> MfaSubmission:
    return MfaSubmission(
        answers=[ChallengeAnswer(challenge_id=cid, value=value) for cid, value in answers]
    )


def round_of(*challenges: Challenge) -> MfaRound:
    mfa = MfaRound(salt="link-1")
    mfa.begin(list(challenges), DEADLINE)
    return mfa


def refusal(mfa: MfaRound, sent: MfaSubmission, status: str = "MFA_REQUIRED") -> str:
    with pytest.raises(ValueError) as refused:  # noqa: PT011 - the message is checked by callers
        mfa.check(sent, status)
    return str(refused.value)


# ---------------------------------------------------------------- begin


def test_begin_shows_every_challenge_with_the_rounds_deadline_and_counts_rounds():
    mfa = MfaRound(salt="link-1")
    assert mfa.number == 0
    mfa.begin([challenge("C-1"), challenge("C-2", ChallengeKind.SECRET)], DEADLINE)
    assert mfa.number == 1
    assert list(mfa.pending) == ["C-1", "C-2"]
    assert all(c.deadline == DEADLINE for c in mfa.pending.values())
    assert [c.id for c in mfa.unanswered()] == ["C-1", "C-2"]
    assert not mfa.follows_a_rejected_answer
    mfa.begin([challenge("C-3")], DEADLINE + timedelta(minutes=5))
    assert mfa.number == 2
    assert list(mfa.pending) == ["C-3"]
    assert mfa.pending["C-3"].deadline == DEADLINE + timedelta(minutes=5)


def test_begin_leaves_the_providers_challenge_untouched():
    asked = challenge("C-1")
    round_of(asked)
    assert asked.deadline is None


# ---------------------------------------------------------------- check: refusals


def test_an_empty_submission_is_refused():
    mfa = round_of(challenge("C-1"))
    assert refusal(mfa, MfaSubmission(answers=[])) == "The submission has no answers."


def test_a_challenge_answered_twice_in_one_submission_is_refused():
    mfa = round_of(challenge("C-1"))
    sent = submission(("C-1", "123456"), ("C-1", "654321"))
    assert refusal(mfa, sent) == "Challenge 'C-1' is answered twice in one submission."


def test_an_unknown_id_answered_twice_is_refused_without_quoting_it():
    mfa = round_of(challenge("C-1"))
    sent = submission((PASSWORD_AS_ID, "a"), (PASSWORD_AS_ID, "b"))
    # Its first answer is refused as unknown before the repeat is seen.
    message = refusal(mfa, sent)
    assert message.startswith(f"Unknown challenge (an id of {len(PASSWORD_AS_ID)} characters")
    assert PASSWORD_AS_ID not in message


def test_an_unknown_id_is_refused_naming_the_pending_ones_but_never_itself():
    mfa = round_of(challenge("C-1"), challenge("C-2"))
    message = refusal(mfa, submission((PASSWORD_AS_ID, "123456")))
    assert message == (
        f"Unknown challenge (an id of {len(PASSWORD_AS_ID)} characters that is not pending);"
        " pending: 'C-1', 'C-2'."
    )
    assert PASSWORD_AS_ID not in message


def test_an_answer_with_nothing_pending_is_refused_with_the_links_status():
    mfa = MfaRound(salt="link-1")
    message = refusal(mfa, submission((PASSWORD_AS_ID, "123456")), status="CONNECTED")
    assert message == "No MFA challenge is pending for this link (status CONNECTED)."
    assert PASSWORD_AS_ID not in message


def test_a_closed_round_takes_no_new_answer():
    mfa = round_of(challenge("C-1"))
    mfa.close()
    message = refusal(mfa, submission(("C-1", "123456")), status="CONNECTING")
    assert message == "No MFA challenge is pending for this link (status CONNECTING)."


@pytest.mark.parametrize(
    ("kind", "where"),
    [
        (ChallengeKind.PUSH_APPROVAL, "on the user's device"),
        (ChallengeKind.REDIRECT, "at the provider's page it links to"),
    ],
)
def test_a_challenge_completed_elsewhere_takes_no_answer(kind: ChallengeKind, where: str):
    mfa = round_of(challenge("C-1", kind, "Approve the sign-in."))
    assert refusal(mfa, submission(("C-1", "yes"))) == (
        f"Challenge 'C-1' is completed {where}; it takes no answer."
    )


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_an_empty_answer_is_refused(value: str):
    mfa = round_of(challenge("C-1"))
    assert refusal(mfa, submission(("C-1", value))) == "The answer to challenge 'C-1' is empty."


def test_an_answer_too_long_is_refused():
    mfa = round_of(challenge("C-1"))
    # The model refuses it first; the round does too, for a payload that skipped validation.
    too_long = ChallengeAnswer.model_construct(
        challenge_id="C-1", value=SecretStr("9" * (MAX_ANSWER_LENGTH + 1))
    )
    message = refusal(mfa, MfaSubmission.model_construct(answers=[too_long]))
    assert message == (
        f"The answer to challenge 'C-1' is longer than {MAX_ANSWER_LENGTH} characters."
    )
    assert "999" not in message


def test_an_answer_of_the_longest_length_after_trimming_is_taken():
    mfa = round_of(challenge("C-1"))
    padded = ChallengeAnswer.model_construct(
        challenge_id="C-1", value=SecretStr(" " + "9" * MAX_ANSWER_LENGTH + " ")
    )
    mfa.check(MfaSubmission.model_construct(answers=[padded]), "MFA_REQUIRED")


@pytest.mark.parametrize(
    "kind", [ChallengeKind.OPTIONS, ChallengeKind.IMAGE_OPTIONS, ChallengeKind.DEVICE_CHOICE]
)
def test_an_answer_that_is_not_one_of_the_options_is_refused(kind: ChallengeKind):
    mfa = round_of(challenge("C-1", kind, "Where shall we send the code?", ("phone", "email")))
    assert refusal(mfa, submission(("C-1", "pigeon"))) == (
        "The answer to challenge 'C-1' is not one of its options: phone, email."
    )
    mfa.check(submission(("C-1", " email ")), "MFA_REQUIRED")


def test_a_refusal_quotes_a_long_known_id_only_truncated():
    long_id = "C-" + "x" * 100
    mfa = round_of(challenge(long_id))
    message = refusal(mfa, submission((long_id, " ")))
    assert long_id not in message
    assert "…" in message


def test_one_bad_answer_refuses_the_whole_submission():
    mfa = round_of(challenge("C-1"), challenge("C-2"))
    assert "is empty" in refusal(mfa, submission(("C-1", "123456"), ("C-2", "")))
    assert mfa.answers == {}


# ---------------------------------------------------------------- already answered


def test_an_accepted_answer_cannot_be_changed_but_an_identical_repeat_is_accepted():
    mfa = round_of(challenge("C-1"), challenge("C-2"))
    first = submission(("C-1", "123456"))
    mfa.check(first, "MFA_REQUIRED")
    assert mfa.accept(first) == (1, 1)

    assert refusal(mfa, submission(("C-1", "000000"))) == (
        "Challenge 'C-1' was already answered; its answer cannot be changed."
    )
    # A retry of a lost reply, even padded differently, is the same answer.
    repeat = submission(("C-1", " 123456 "))
    mfa.check(repeat, "MFA_REQUIRED")
    assert mfa.accept(repeat) == (1, 0)
    assert mfa.answers["C-1"].value.get_secret_value() == "123456"


def test_an_identical_repeat_of_an_earlier_rounds_answer_names_that_round():
    mfa = round_of(challenge("C-1"))
    mfa.accept(submission(("C-1", "123456")))
    mfa.take()
    mfa.begin([challenge("C-2", prompt="Enter the second code.")], DEADLINE)

    repeat = submission(("C-1", "123456"))
    mfa.check(repeat, "MFA_REQUIRED")
    assert mfa.accept(repeat) == (1, 0)
    assert refusal(mfa, submission(("C-1", "999999"))) == (
        "Challenge 'C-1' was already answered; its answer cannot be changed."
    )


def test_a_repeat_together_with_a_new_answer_counts_only_the_new_one():
    mfa = round_of(challenge("C-1"), challenge("C-2"))
    mfa.accept(submission(("C-1", "123456")))
    both = submission(("C-1", "123456"), ("C-2", "secret"))
    mfa.check(both, "MFA_REQUIRED")
    assert mfa.accept(both) == (1, 1)


def test_identical_answers_of_two_links_do_not_share_a_digest():
    one, other = MfaRound(salt="link-1"), MfaRound(salt="link-2")
    for mfa in (one, other):
        mfa.begin([challenge("C-1")], DEADLINE)
        mfa.accept(submission(("C-1", "123456")))
    assert one._accepted["C-1"][1] != other._accepted["C-1"][1]


# ---------------------------------------------------------------- accept, complete, take


def test_accept_returns_the_round_and_how_many_answers_are_new():
    mfa = round_of(challenge("C-1"), challenge("C-2"))
    assert mfa.accept(submission(("C-1", "123456"))) == (1, 1)
    assert not mfa.complete
    assert [c.id for c in mfa.unanswered()] == ["C-2"]
    assert mfa.accept(submission(("C-2", "blue"))) == (1, 1)
    assert mfa.complete
    assert mfa.unanswered() == []


def test_accept_trims_the_answers_it_records():
    mfa = round_of(challenge("C-1"))
    mfa.accept(submission(("C-1", "  123456\n")))
    assert mfa.answers["C-1"].value.get_secret_value() == "123456"


def test_a_round_is_complete_once_every_challenge_that_takes_an_answer_has_one():
    mfa = round_of(
        challenge("C-1"), challenge("P-1", ChallengeKind.PUSH_APPROVAL, "Approve on your phone.")
    )
    assert not mfa.complete
    mfa.accept(submission(("C-1", "123456")))
    assert mfa.complete
    assert [c.id for c in mfa.unanswered()] == ["P-1"]


def test_an_empty_round_is_never_complete():
    assert not MfaRound(salt="link-1").complete
    assert not round_of().complete


def test_take_hands_over_the_round_in_order_and_closes_it():
    mfa = round_of(challenge("C-1"), challenge("C-2", ChallengeKind.SECRET))
    mfa.accept(submission(("C-2", "blue"), ("C-1", "123456")))
    challenges, answers = mfa.take()
    assert [c.id for c in challenges] == ["C-1", "C-2"]
    assert all(c.deadline == DEADLINE for c in challenges)
    assert [(a.challenge_id, a.value.get_secret_value()) for a in answers] == [
        ("C-1", "123456"),
        ("C-2", "blue"),
    ]
    assert mfa.pending == {}
    assert mfa.answers == {}
    assert mfa.unanswered() == []
    assert not mfa.complete


def test_take_leaves_out_challenges_that_take_no_answer():
    mfa = round_of(challenge("C-1"), challenge("R-1", ChallengeKind.REDIRECT, "Sign in there."))
    mfa.accept(submission(("C-1", "123456")))
    challenges, answers = mfa.take()
    assert [c.id for c in challenges] == ["C-1", "R-1"]
    assert [a.challenge_id for a in answers] == ["C-1"]


# ---------------------------------------------------------------- after a rejected answer


def test_the_same_question_asked_right_after_its_answer_follows_a_rejected_answer():
    mfa = round_of(challenge("C-1"), challenge("C-2", prompt="Your favourite colour?"))
    mfa.accept(submission(("C-1", "111111"), ("C-2", "blue")))
    mfa.take()
    # The provider asks the code again (a new id, the same question), and something new.
    mfa.begin([challenge("C-3"), challenge("C-4", prompt="Your first pet?")], DEADLINE)
    assert mfa.pending["C-3"].after_rejected_answer
    assert not mfa.pending["C-4"].after_rejected_answer
    assert mfa.follows_a_rejected_answer


def test_a_question_of_another_kind_with_the_same_prompt_is_a_new_question():
    mfa = round_of(challenge("C-1"))
    mfa.accept(submission(("C-1", "111111")))
    mfa.take()
    mfa.begin([challenge("C-2", ChallengeKind.SECRET)], DEADLINE)
    assert not mfa.follows_a_rejected_answer


def test_a_question_asked_again_later_does_not_follow_a_rejected_answer():
    mfa = round_of(challenge("C-1"))
    mfa.accept(submission(("C-1", "111111")))
    mfa.take()
    mfa.begin([challenge("C-2", prompt="Something else?")], DEADLINE)
    mfa.accept(submission(("C-2", "x")))
    mfa.take()
    mfa.begin([challenge("C-3")], DEADLINE)
    assert not mfa.follows_a_rejected_answer


def test_a_round_shown_again_without_answers_sent_does_not_follow_a_rejected_answer():
    mfa = round_of(challenge("C-1"))
    mfa.close()  # the round timed out or was abandoned: nothing was sent to the provider
    mfa.begin([challenge("C-2")], DEADLINE)
    assert not mfa.follows_a_rejected_answer


# ---------------------------------------------------------------- property


KINDS = list(ChallengeKind)
OPTION_VALUES = ["phone", "email", "1", "2"]


@st.composite
def rounds(draw: st.DrawFn) -> MfaRound:
    mfa = MfaRound(salt=draw(st.text(max_size=20)))
    for number in range(draw(st.integers(min_value=0, max_value=3))):
        kinds = draw(st.lists(st.sampled_from(KINDS), max_size=4))
        challenges = [
            challenge(
                f"R{number}-C{index}",
                kind,
                prompt=draw(st.sampled_from(["Code?", "Colour?"])),
                options=tuple(OPTION_VALUES) if kind.has_options else (),
            )
            for index, kind in enumerate(kinds)
        ]
        mfa.begin(challenges, DEADLINE)
        for known in challenges:
            if known.kind.needs_answer and draw(st.booleans()):
                value = OPTION_VALUES[0] if known.kind.has_options else draw(st.text(min_size=1))
                answer = MfaSubmission(
                    answers=[ChallengeAnswer(challenge_id=known.id, value=value)]
                )
                try:
                    mfa.check(answer, "MFA_REQUIRED")
                except ValueError:
                    continue
                mfa.accept(answer)
        if draw(st.booleans()):
            mfa.take()
    return mfa


@st.composite
def submissions(draw: st.DrawFn, mfa: MfaRound) -> MfaSubmission:
    """Answers that skip the model's validation: ids and values of any text at all."""
    known_ids = [*mfa.pending, *mfa._accepted]
    ids = st.sampled_from(known_ids) | st.text() if known_ids else st.text()
    values = st.sampled_from(OPTION_VALUES) | st.text(max_size=MAX_ANSWER_LENGTH + 2)
    answers = draw(
        st.lists(
            st.builds(
                lambda cid, value: ChallengeAnswer.model_construct(
                    challenge_id=cid, value=SecretStr(value)
                ),
                ids,
                values,
            ),
            max_size=5,
        )
    )
    return MfaSubmission.model_construct(answers=answers)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_whatever_check_lets_through_can_be_accepted_and_repeated(data: st.DataObject):
    mfa = data.draw(rounds())
    sent = data.draw(submissions(mfa))
    try:
        mfa.check(sent, "MFA_REQUIRED")
    except ValueError:
        return  # refused: the only way check may say no
    ids = [answer.challenge_id for answer in sent.answers]
    fresh = {cid for cid in ids if cid not in mfa._accepted}
    answered_round, new = mfa.accept(sent)
    assert new == len(fresh)
    assert 0 < answered_round <= mfa.number
    assert all(cid in mfa._accepted for cid in ids)
    # Sending the very same submission again (a lost reply's retry) is accepted and adds nothing.
    mfa.check(sent, "MFA_REQUIRED")
    assert mfa.accept(sent) == (answered_round, 0)
