"""Payloads sealed at rest: the AES-GCM payload codec and the key ring it encrypts with.

Every payload a linkflow process hands to Temporal (workflow inputs, activity inputs and results,
signals, updates, queries, memos, failure details) passes through `EncryptionCodec` on its way out,
so Temporal's database, its gRPC traffic and `temporal workflow show` without a codec see only
ciphertext. The key id travels in each payload's metadata; the ring's first (newest) key encrypts
and every key decrypts, so a key can be rotated by putting a new one first while running links and
replays still read what the old one wrote. Payloads written before the codec (`json/plain`) pass
through untouched, which is what keeps the committed test histories replaying.

Keys come from `LINKFLOW_CODEC_KEYS` (`id=base64key,id=base64key`) or `LINKFLOW_CODEC_KEY_FILE`
(one `id=base64key` per line); the dev stack writes one to `.linkflow/keys/codec.keys`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from linkflow.config import ConfigurationError

ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEYS_VARIABLE = "LINKFLOW_CODEC_KEYS"
KEY_FILE_VARIABLE = "LINKFLOW_CODEC_KEY_FILE"
KEY_BYTES = 32
NONCE_BYTES = 12
# Key ids are written in clear into every payload's metadata: short, plain and never secret.
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodecKey:
    id: str
    secret: bytes = field(repr=False)

    @classmethod
    def generate(cls, key_id: str) -> CodecKey:
        return cls(id=key_id, secret=AESGCM.generate_key(bit_length=KEY_BYTES * 8))

    def entry(self) -> str:
        """The `id=base64key` line a key file or `LINKFLOW_CODEC_KEYS` holds for this key."""
        return f"{self.id}={base64.b64encode(self.secret).decode()}"


class KeyRing:
    """The codec's keys, newest first: the first encrypts, every one decrypts."""

    def __init__(self, keys: Sequence[CodecKey]) -> None:
        if not keys:
            raise ConfigurationError("A codec key ring needs at least one key.")
        by_id: dict[str, CodecKey] = {}
        for position, key in enumerate(keys, start=1):
            if not KEY_ID_PATTERN.fullmatch(key.id):
                raise ConfigurationError(
                    f"Codec key {position}'s id must be 1-64 letters, digits, '.', '_' or '-'."
                )
            if len(key.secret) != KEY_BYTES:
                raise ConfigurationError(f"Codec key {position} is not {KEY_BYTES} bytes long.")
            if key.id in by_id:
                raise ConfigurationError(f"Codec key {position} repeats an earlier key's id.")
            by_id[key.id] = key
        self.keys: tuple[CodecKey, ...] = tuple(keys)
        self._by_id = by_id

    def __repr__(self) -> str:
        return f"KeyRing(ids={[key.id for key in self.keys]!r})"

    @property
    def newest(self) -> CodecKey:
        return self.keys[0]

    def get(self, key_id: str) -> CodecKey | None:
        return self._by_id.get(key_id)

    @classmethod
    def generate(cls, key_id: str = "k1") -> KeyRing:
        return cls([CodecKey.generate(key_id)])

    @classmethod
    def parse(cls, entries: Sequence[str], *, where: str) -> KeyRing:
        """Read `id=base64key` entries; `where` names their source in errors.

        Errors say which entry is wrong and why, and never repeat any part of it: an entry
        without its `id=` could be nothing but key material.
        """
        keys = [_parse_entry(entry, f"Key {n} of {where}") for n, entry in enumerate(entries, 1)]
        if not keys:
            raise ConfigurationError(f"{where} holds no codec key.")
        return cls(keys)

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
            raise ConfigurationError(
                f"The codec key file {path} ({KEY_FILE_VARIABLE}) cannot be read: {reason}."
            ) from None
        lines = [line.strip() for line in text.splitlines()]
        entries = [line for line in lines if line and not line.startswith("#")]
        return cls.parse(entries, where=f"the codec key file {path}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyRing | None:
        """The ring LINKFLOW_CODEC_KEYS or LINKFLOW_CODEC_KEY_FILE configures; None if neither."""
        environ = os.environ if environ is None else environ
        inline = environ.get(KEYS_VARIABLE, "").strip()
        key_file = environ.get(KEY_FILE_VARIABLE, "").strip()
        if inline and key_file:
            raise ConfigurationError(
                f"Both {KEYS_VARIABLE} and {KEY_FILE_VARIABLE} are set: set only one of them."
            )
        if inline:
            entries = [entry.strip() for entry in inline.split(",") if entry.strip()]
            return cls.parse(entries, where=KEYS_VARIABLE)
        if key_file:
            return cls.from_file(Path(key_file))
        return None


def _parse_entry(entry: str, where: str) -> CodecKey:
    key_id, separator, encoded = entry.partition("=")
    key_id, encoded = key_id.strip(), encoded.strip()
    if not separator or not encoded or not KEY_ID_PATTERN.fullmatch(key_id):
        raise ConfigurationError(
            f"{where} is not `id=base64key` (an id of letters, digits, '.', '_' or '-')."
        )
    secret = _decode_base64(encoded)
    if secret is None:
        raise ConfigurationError(f"{where}: the key is not base64.")
    if len(secret) != KEY_BYTES:
        raise ConfigurationError(
            f"{where}: the key is {len(secret)} bytes; codec keys are {KEY_BYTES} bytes (AES-256)."
        )
    return CodecKey(id=key_id, secret=secret)


def _decode_base64(text: str) -> bytes | None:
    """Standard or URL-safe base64, padded or not."""
    standard = text.replace("-", "+").replace("_", "/")
    standard += "=" * (-len(standard) % 4)
    try:
        return base64.b64decode(standard, validate=True)
    except (binascii.Error, ValueError):
        return None


def require_key_ring(environ: Mapping[str, str] | None = None) -> KeyRing:
    """The configured ring, or a `ConfigurationError` that says how to configure one."""
    ring = KeyRing.from_env(environ)
    if ring is None:
        raise ConfigurationError(
            f"No payload encryption key is configured: set {KEYS_VARIABLE} to"
            f" `id=base64key[,id=base64key...]` (32-byte keys, newest first) or"
            f" {KEY_FILE_VARIABLE} to a file with one `id=base64key` per line. The dev stack"
            " (`python3 dev.py demo`) writes one to .linkflow/keys/codec.keys."
        )
    return ring


def new_key_id(prefix: str = "key") -> str:
    return f"{prefix}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


def write_new_key_file(path: Path, key_id: str | None = None) -> KeyRing:
    """Create a key file holding one fresh key, readable by its owner only (0600, folder 0700)."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    key = CodecKey.generate(key_id or new_key_id("dev"))
    text = (
        "# linkflow payload codec keys: one `id=base64key` per line, newest (encrypting) first.\n"
        f"{key.entry()}\n"
    )
    write_private_file(path, text)
    return KeyRing([key])


def write_private_file(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (0600); an existing file is never overwritten."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each serialized payload, with a fresh 96-bit nonce per payload.

    The key id is bound to the ciphertext as associated data, so a payload relabelled with
    another key's id fails authentication instead of decrypting under the wrong key.
    """

    def __init__(self, key_ring: KeyRing) -> None:
        self._ring = key_ring
        self._ciphers = {key.id: AESGCM(key.secret) for key in key_ring.keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._ring.newest.id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload; anything it cannot open comes back unchanged, never an error.

        A caller can send a payload labelled `binary/encrypted` with any bytes in it. Raising here
        would fail the worker's workflow task on every attempt; returned as it is, the payload
        stays labelled `binary/encrypted`, which no payload converter reads, so the code that
        wanted its value refuses it as malformed.
        """
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID_METADATA, b"")
        key_id = raw_id.decode("utf-8", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            _warn_undecryptable(key_id, "no configured key has this id")
            return payload
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            return Payload.FromString(cipher.decrypt(nonce, sealed, raw_id))
        except (InvalidTag, ValueError, DecodeError):
            _warn_undecryptable(key_id, "it does not authenticate under that key")
            return payload


def _warn_undecryptable(key_id: str, reason: str) -> None:
    logger.warning("An encrypted payload was left undecrypted (key id %r): %s", key_id[:64], reason)


def data_converter(key_ring: KeyRing) -> DataConverter:
    """linkflow's one data converter: pydantic JSON, sealed by the codec."""
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(key_ring))
