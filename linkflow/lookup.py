"""Finding one user's links without putting the user in Temporal's visibility store.

An app names its end user with its own `user_ref` (an email, an account number, ...). Visibility
(search attributes, `temporal workflow list`) is read by operators and copied into backups, so it
must not hold that value. A link publishes instead `LinkUserRef`: an HMAC-SHA256 of the user_ref
under a lookup key only the app's linkflow processes know (`LINKFLOW_LOOKUP_KEY`, or
`LINKFLOW_LOOKUP_KEY_FILE`). The same key gives the same hash, so the API can list a user's links;
without the key the hash says nothing, and it cannot be reversed by trying likely user_refs.

Several keys may be configured, newest first: new links are indexed under the newest, and a
listing searches the hashes under every key, so the key can be rotated while older links are
still found.

This module also holds `secrets_from_env`, the one reader for lists of secrets that come from an
environment variable or a file, which the API's keys and link-token secrets use too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from linkflow.config import ConfigurationError

KEY_VARIABLE = "LINKFLOW_LOOKUP_KEY"
KEY_FILE_VARIABLE = "LINKFLOW_LOOKUP_KEY_FILE"
MIN_KEY_LENGTH = 32
MAX_ACTIVE_KEYS = 8


def secrets_from_env(
    environ: Mapping[str, str],
    variable: str,
    file_variable: str,
    *,
    what: str,
    min_length: int,
) -> tuple[str, ...]:
    """Secrets from `variable` (comma-separated) or the file `file_variable` names (one a line,
    `#` comments), newest first; empty when neither is set. Errors name the setting and the
    position of a bad entry, never its value."""
    inline = environ.get(variable, "").strip()
    path = environ.get(file_variable, "").strip()
    if inline and path:
        raise ConfigurationError(f"Both {variable} and {file_variable} are set: set only one.")
    if inline:
        source, entries = variable, [part.strip() for part in inline.split(",")]
    elif path:
        source, entries = file_variable, _file_lines(Path(path), file_variable, what)
    else:
        return ()
    found = tuple(entry for entry in entries if entry)
    for position, entry in enumerate(found, start=1):
        if len(entry) < min_length:
            raise ConfigurationError(
                f"{what} {position} in {source} is shorter than {min_length} characters."
            )
    if len(found) > MAX_ACTIVE_KEYS:
        raise ConfigurationError(f"{source} holds more than {MAX_ACTIVE_KEYS} {what}s.")
    return found


def _file_lines(path: Path, variable: str, what: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ConfigurationError(f"The {what} file {path} ({variable}) cannot be read.") from None
    return [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]


@dataclass(frozen=True)
class UserRefLookup:
    """Keyed hashes of user_refs: the newest key indexes, every key finds."""

    keys: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigurationError("A user_ref lookup needs at least one key.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UserRefLookup | None:
        """The configured lookup, or None when no lookup key is set."""
        environ = os.environ if environ is None else environ
        keys = secrets_from_env(
            environ, KEY_VARIABLE, KEY_FILE_VARIABLE, what="lookup key", min_length=MIN_KEY_LENGTH
        )
        return cls(keys) if keys else None

    def key_for(self, user_ref: str) -> str:
        """The hash a new link publishes as `LinkUserRef`."""
        return _keyed_hash(self.keys[0], user_ref)

    def keys_for(self, user_ref: str) -> tuple[str, ...]:
        """Every hash a link of this user may carry, one per configured key."""
        return tuple(dict.fromkeys(_keyed_hash(key, user_ref) for key in self.keys))


def _keyed_hash(key: str, user_ref: str) -> str:
    return hmac.new(key.encode(), user_ref.strip().encode(), hashlib.sha256).hexdigest()
