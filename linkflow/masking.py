"""What a person may see of a decoded payload: everything but the secrets.

The codec server decrypts payloads for Temporal Web and the `temporal` CLI, whose users need the
whole story of a link (its provider, statuses, challenges, ids) and must never read a password,
an MFA answer or a provider token. `mask_secrets` walks a payload's JSON and replaces:

- every field whose name says it holds a secret: passwords, tokens, API and OAuth keys, client
  secrets, PINs and one-time codes, fingerprints, signatures, session ids (Synapse's `oauth_key`,
  `access_token` and `fingerprint` in provider sessions, for instance), while ids such as
  `member_guid`, `credential_id` or `key_id` stay readable;
- every value of the `extra` login fields beside a `password` (a utility account number, ...);
- the `value` of an MFA answer: an object with `challenge_id` (or MX's `guid`) and `value`, or
  any element of an `answers` list.
"""

from __future__ import annotations

import json
import re
from itertools import pairwise
from typing import Any

from temporalio.api.common.v1 import Payload

MASK = "••••••"
JSON_ENCODING = b"json/plain"

# Matched anywhere in the name with its separators removed ("oauthKey", "refresh_token").
_SECRET_STEMS = (
    "password",
    "passwd",
    "passcode",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "oauth",
    "fingerprint",
    "cookie",
    "authorization",
    "signature",
    "privatekey",
)
# Matched as whole words of the name only: as stems they would hit "shipping" or "spinner".
_SECRET_WORDS = frozenset({"pw", "pwd", "pin", "otp", "totp", "cvv", "bearer"})
_SECRET_NAMES = frozenset({"answer", "mfa_answer"})
_ANSWER_ID_FIELDS = ("challenge_id", "guid")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SEPARATOR = re.compile(r"[^a-z0-9]+")


def name_words(name: str) -> list[str]:
    """`oauthKey` and `oauth-key` are both ["oauth", "key"]."""
    return [word for word in _WORD_SEPARATOR.split(_CAMEL_BOUNDARY.sub("_", name).lower()) if word]


def is_secret_name(name: str) -> bool:
    words = name_words(name)
    if not words:
        return False
    joined = "".join(words)
    return (
        any(stem in joined for stem in _SECRET_STEMS)
        or any(word in _SECRET_WORDS for word in words)
        or words[-1] in ("key", "keys")
        or "_".join(words) in _SECRET_NAMES
        or _has_pair(words, "session", "id")
    )


def _has_pair(words: list[str], first: str, second: str) -> bool:
    return any(a == first and b == second for a, b in pairwise(words))


def mask_secrets(value: Any, *, in_answers: bool = False) -> Any:
    """A copy of a decoded JSON value with every secret replaced by `MASK`."""
    if isinstance(value, list):
        return [mask_secrets(item, in_answers=in_answers) for item in value]
    if not isinstance(value, dict):
        return value
    is_answer = "value" in value and (
        in_answers or any(field in value for field in _ANSWER_ID_FIELDS)
    )
    beside_password = "password" in value
    masked: dict[str, Any] = {}
    for name, item in value.items():
        if item is None:
            masked[name] = None
        elif is_secret_name(name) or (is_answer and name == "value"):
            masked[name] = MASK
        elif name == "extra" and beside_password:
            masked[name] = {field: MASK for field in item} if isinstance(item, dict) else MASK
        else:
            masked[name] = mask_secrets(item, in_answers=name == "answers")
    return masked


def mask_payload(payload: Payload) -> Payload:
    """The payload with its secrets masked if it is JSON; any other payload as it is.

    A payload labelled JSON that cannot be read (malformed, or nested too deep to walk) is
    shown as `MASK` whole: what it holds cannot be checked for secrets.
    """
    if payload.metadata.get("encoding") != JSON_ENCODING:
        return payload
    try:
        masked = mask_secrets(json.loads(payload.data))
        data = json.dumps(masked, ensure_ascii=False, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        data = json.dumps(MASK, ensure_ascii=False).encode()
    return Payload(metadata=payload.metadata, data=data)
