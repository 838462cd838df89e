"""What an adapter may let out of a link: into a provider's URLs, and into linkflow's history.

A URL's path and query end up in access logs (the provider's, every proxy's on the way), so an
adapter never puts the app's `user_ref`, a username or any other personal data there: where a
provider's route needs an id linkflow chooses, it is `opaque_id`, derived from the link's id and
meaningless outside linkflow. Every other id in a URL is one the provider made itself.

Error messages and raw statuses travel into Temporal history (activity failures, the link's
failure details), so whatever part of a provider's answer they quote goes through `provider_word`:
a status word or an error code survives, free text (which may name the user, echo a username or
carry a token) does not.
"""

from __future__ import annotations

import re
import uuid

# The namespace of linkflow's name-based ids (a UUID of its own; any fixed UUID would do).
LINKFLOW_NAMESPACE = uuid.UUID("6f1c2a59-3d0e-4b8a-9a51-2f6c1d7e8b40")
# A provider's status word or error code: letters, digits and a few separators, not a sentence.
PROVIDER_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
UNREADABLE_WORD = "?"


def opaque_id(purpose: str, link_id: str) -> str:
    """A stable UUID for `link_id` in `purpose` (one provider's user id, say), revealing neither.

    The same link always gets the same id, so a retried or repeated login names the same object at
    the provider; different purposes get unrelated ids.
    """
    return str(uuid.uuid5(LINKFLOW_NAMESPACE, f"{purpose}:{link_id}"))


def provider_word(value: object) -> str:
    """`value` if it reads as a status word or an error code, else `?`: never free text."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return UNREADABLE_WORD
    text = str(value)
    return text if PROVIDER_WORD.fullmatch(text) else UNREADABLE_WORD
