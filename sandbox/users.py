"""The test users every provider in the sandbox honours, each in its own provider's way.

One table of scenarios keeps the five provider sandboxes consistent: a test written for MX's
`user_otp` means the same story at Synapse or Teal, told in that provider's words.

| username | password | scenario |
|---|---|---|
| `user_good` | `pass_good` | links without MFA |
| `user_mfa` | `pass_good` | one round of questions (MX: "What city were you born in?") |
| `user_otp` | `pass_good` | choose where to send a one-time code, then enter the code |
| `user_bad` | anything | invalid credentials |
| `user_hold` | `pass_good` | the provider puts the login on hold until the user acts |
| `user_slow` | `pass_good` | the job stays in progress for `SLOW_JOB_SECONDS`, then links |
| `user_unsupported` | `pass_good` | an MFA kind or a captcha the provider cannot pass on |

A plus-tag is ignored (`user_good+run-42` is `user_good`), so tests can make unique logins.
Any other password, or an unknown username, is invalid credentials too. The answer `correct`
(MX's own test convention) is right for every text question and code; any offered option is a
right choice. A wrong answer gets a new challenge (a new id, the same question); the third wrong
answer in one login fails it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import NamedTuple

GOOD_PASSWORD = "pass_good"
# How long `user_slow`'s job stays in progress (long enough to be seen waiting, short for tests).
SLOW_JOB_SECONDS = 3.0
CORRECT_ANSWER = "correct"
MAX_WRONG_ANSWERS = 3


class Scenario(StrEnum):
    """What a login does; the value is the test username that asks for it."""

    NO_MFA = "user_good"
    QUESTION = "user_mfa"
    OTP = "user_otp"
    INVALID = "user_bad"
    HOLD = "user_hold"
    SLOW = "user_slow"
    UNSUPPORTED = "user_unsupported"


class Phone(NamedTuple):
    """A phone the OTP scenario offers for its one-time code."""

    label: str
    value: str


SECURITY_QUESTION = "What city were you born in?"
OTP_DESTINATION_QUESTION = "Where should we text your one-time code?"
OTP_PHONES = (
    Phone("(***) ***-4321", "phone-4321"),
    Phone("(***) ***-8765", "phone-8765"),
)


def scenario_for(username: str, password: str) -> Scenario:
    """What a login with these credentials does; anything unknown is invalid credentials."""
    try:
        scenario = Scenario(username.split("+", 1)[0])
    except ValueError:
        return Scenario.INVALID
    if password != GOOD_PASSWORD:
        return Scenario.INVALID
    return scenario


def is_correct(answer: str) -> bool:
    """Whether a text question's or a code's answer is right."""
    return answer.strip() == CORRECT_ANSWER


def is_offered(choice: str, offered: Iterable[str]) -> bool:
    """Whether a choice is one of the option values the question offered."""
    return choice in set(offered)


def otp_code_prompt(phone_value: str) -> str:
    """The code question that follows choosing `phone_value`."""
    label = next((phone.label for phone in OTP_PHONES if phone.value == phone_value), "your phone")
    return f"Enter the code we texted to {label}"
