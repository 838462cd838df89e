"""Generated and mutated payloads for the fuzz run: what careless clients and attackers send.

Each payload starts from a valid message of linkflow's (a start request, an MFA submission, new
credentials) or from nothing, and is mutated the ways callers really go wrong: fields dropped,
renamed or retyped, strings far too long, deep nesting, nulls, other encodings, the wrong number of
payloads. Every secret-looking value it writes holds SECRET_MARKER, so the run can search logs and
the database for any that leaked. Seeded, so a run can be repeated exactly.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue

SECRET_MARKER = "FZSECRET"

ENCODINGS: tuple[bytes, ...] = (
    b"binary/null",
    b"binary/plain",
    b"json/protobuf",
    b"binary/encrypted",
    b"text/x-nonsense",
    b"",
)


@dataclass(frozen=True)
class FuzzMessage:
    """One message to send: its channel, name and payloads (and their JSON text, for the CLI)."""

    channel: str  # "update", "signal", "cli-signal" or "start"
    name: str
    payloads: list[RawValue]
    cli_inputs: list[str]


class PayloadFuzzer:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._secrets = 0

    def secret(self) -> str:
        self._secrets += 1
        return f"{SECRET_MARKER}-{self._secrets}-{self._rng.getrandbits(32):08x}"

    # ------------------------------------------------------------------ valid starting points

    def start_request(self) -> dict[str, Any]:
        return {
            "provider": self._rng.choice(["mx", "synapse", "arcadia", "teal", "unbill"]),
            "user_ref": f"fuzz-user-{self._rng.getrandbits(24):x}",
            "credentials": {
                "username": f"fuzz-{self._rng.getrandbits(24):x}",
                "password": self.secret(),
                "extra": {"account_number": self.secret()},
            },
            "options": {"mfa_timeout_seconds": self._rng.choice([5, 300, 3600])},
        }

    def submission(self) -> dict[str, Any]:
        return {
            "answers": [
                {"challenge_id": f"CRD-{self._rng.getrandbits(40):x}", "value": self.secret()}
                for _ in range(self._rng.choice([1, 1, 2, 3]))
            ]
        }

    def relink(self) -> dict[str, Any]:
        return {"credentials": {"username": "user_good", "password": self.secret()}}

    # ------------------------------------------------------------------ mutations

    def junk(self, depth: int = 0) -> Any:
        roll = self._rng.random()
        if depth > 3 or roll < 0.15:
            return None
        if roll < 0.3:
            return self._rng.choice([0, -1, 2**63, 1e308, float("nan"), True])
        if roll < 0.45:
            return self._rng.choice(["", " ", "\x00", "é" * 40, "\u202e", self.secret()])
        if roll < 0.55:
            return self.secret() * self._rng.choice([10, 1_000, 20_000])
        if roll < 0.75:
            return [self.junk(depth + 1) for _ in range(self._rng.randint(0, 4))]
        return {self._key(): self.junk(depth + 1) for _ in range(self._rng.randint(0, 4))}

    def _key(self) -> str:
        return self._rng.choice(
            ["answers", "challenge_id", "value", "credentials", "password", "carried", "", "x"]
        )

    def mutate(self, value: Any, depth: int = 0) -> Any:
        if not isinstance(value, dict) or not value or depth > 4:
            return self.junk() if self._rng.random() < 0.5 else value
        mutated = dict(value)
        key = self._rng.choice(list(mutated))
        action = self._rng.random()
        if action < 0.25:
            del mutated[key]
        elif action < 0.5:
            mutated[key] = self.junk()
        elif action < 0.6:
            mutated[key + "_"] = mutated.pop(key)
        elif action < 0.7:
            mutated[key] = [mutated[key]]
        elif action < 0.8 and isinstance(mutated[key], list) and mutated[key]:
            mutated[key] = [self.mutate(item, depth + 1) for item in mutated[key]]
        else:
            mutated[key] = self.mutate(mutated[key], depth + 1)
        return mutated

    def nested(self, depth: int) -> Any:
        value: Any = self.secret()
        for _ in range(depth):
            value = {"answers": [value]}
        return value

    # ------------------------------------------------------------------ payloads

    def payload_for(self, value: Any) -> tuple[RawValue, str]:
        """One payload for `value`, usually its JSON, sometimes another encoding or bad bytes."""
        roll = self._rng.random()
        text = json.dumps(value, allow_nan=True)
        if roll < 0.8:
            return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=text.encode())), text
        if roll < 0.85:
            cut = text[: self._rng.randint(0, max(0, len(text) - 1))]
            return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=cut.encode())), cut
        encoding = self._rng.choice(ENCODINGS)
        metadata = {"encoding": encoding} if encoding else {}
        data = b"" if encoding == b"binary/null" else self._rng.randbytes(self._rng.randint(0, 64))
        return RawValue(Payload(metadata=metadata, data=data)), text

    def payloads_for(self, base: Any) -> tuple[list[RawValue], list[str]]:
        count = self._rng.choices([1, 0, 2, 3], weights=[85, 6, 6, 3])[0]
        pairs = [self.payload_for(self.variant(base)) for _ in range(count)]
        return [pair[0] for pair in pairs], [pair[1] for pair in pairs]

    def variant(self, base: Any) -> Any:
        roll = self._rng.random()
        if roll < 0.08:
            return self.junk()
        if roll < 0.1:
            return self.nested(self._rng.choice([50, 200, 400]))
        value = base
        for _ in range(self._rng.choice([1, 1, 2, 3])):
            value = self.mutate(value)
        return value

    def message(self) -> FuzzMessage:
        roll = self._rng.random()
        if roll < 0.42:
            name = self._rng.choices(
                ["submit_mfa", "update_credentials", "reauthenticate", "resolve_hold", "nope"],
                weights=[60, 25, 5, 5, 5],
            )[0]
            base = self.relink() if name == "update_credentials" else self.submission()
            payloads, texts = self.payloads_for(base)
            if name in {"reauthenticate", "resolve_hold"} and not payloads:
                # With no payload these are valid requests; the run is about malformed ones.
                payloads, texts = [self.payload_for(base)[0]], [json.dumps(base)]
            return FuzzMessage("update", name, payloads, texts)
        if roll < 0.84:
            name = "answer_mfa" if self._rng.random() < 0.9 else self._rng.choice(["", "answer"])
            payloads, texts = self.payloads_for(self.submission())
            return FuzzMessage("signal", name, payloads, texts)
        if roll < 0.86:
            payloads, texts = self.payloads_for(self.submission())
            return FuzzMessage("cli-signal", "answer_mfa", payloads, texts)
        payloads, texts = self.payloads_for(self.start_request())
        return FuzzMessage("start", "AccountLinkWorkflow", payloads, texts)
