"""Sentences that refuse a caller's input without repeating it.

A refusal travels far: to the caller, into worker logs, into a link's `last_refusal` and so into its
history. Whatever the caller sent may be a password, an answer or a megabyte of junk, so refusals
name the field and the rule that failed, and quote a caller's identifiers only truncated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

QUOTE_LIMIT = 40
MAX_REFUSAL_LENGTH = 500
MAX_ERRORS_DESCRIBED = 5


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` in quotes, cut to `limit` characters, with control characters made visible."""
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(shown)


def bounded(sentence: str, limit: int = MAX_REFUSAL_LENGTH) -> str:
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def describe_validation_error(error: ValidationError) -> str:
    """Which fields are wrong and why, in pydantic's words, never with the values sent."""
    return describe_errors(error.errors(include_url=False, include_input=False))


def describe_errors(errors: Sequence[Mapping[str, Any]], *, nowhere: str = "the payload") -> str:
    """`credentials.password: Field required; ...` for pydantic's error entries: where and which
    rule, never the value; `nowhere` names an error that has no location."""
    problems: list[str] = []
    for detail in errors[:MAX_ERRORS_DESCRIBED]:
        location = ".".join(_location_part(part) for part in detail.get("loc", ())) or nowhere
        problems.append(f"{location}: {rule_broken(detail)}")
    if len(errors) > MAX_ERRORS_DESCRIBED:
        problems.append(f"and {len(errors) - MAX_ERRORS_DESCRIBED} more")
    return bounded("; ".join(problems))


def rule_broken(detail: Mapping[str, Any]) -> str:
    """Pydantic's sentence for one error, except for a secret's length: pydantic counts a
    `SecretStr`'s "items" and says how many were sent, which a refusal must not tell."""
    context = detail.get("ctx") or {}
    if detail.get("type") in ("too_short", "too_long") and context.get("field_type") == "Value":
        short = detail["type"] == "too_short"
        bound = context.get("min_length" if short else "max_length")
        characters = "character" if bound == 1 else "characters"
        return f"Value should have at {'least' if short else 'most'} {bound} {characters}"
    return str(detail.get("msg", "invalid"))


def _location_part(part: object) -> str:
    # Dict keys a caller chose appear in locations; keep them short.
    return str(part) if isinstance(part, int) else quote(str(part), 24).strip("'\"")
