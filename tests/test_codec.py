"""The payload codec and its keys: sealed payloads, rotation, and decoding that never raises."""

from __future__ import annotations

import asyncio
import base64
import logging
import stat
from pathlib import Path

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from linkflow.codec import (
    ENCRYPTED_ENCODING,
    KEY_ID_METADATA,
    CodecKey,
    EncryptionCodec,
    KeyRing,
    data_converter,
    require_key_ring,
    write_new_key_file,
)
from linkflow.config import ConfigurationError, TemporalSettings
from linkflow.models import Credentials, LinkRequest, Provider
from linkflow.temporal import connect
from workflows.account_link import AccountLinkWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

PASSWORD = "Codec-Pa55word-7f3a"
PIN = "pin-93817"
HISTORIES_DIR = Path(__file__).parent / "histories"


def link_request() -> LinkRequest:
    return LinkRequest(
        provider=Provider.MX,
        user_ref="codec-user",
        credentials=Credentials(username="user_mfa", password=PASSWORD, extra={"pin": PIN}),
    )


def base64_forms(secret: str) -> set[str]:
    """How `secret` looks inside base64 text at each of the three byte alignments."""
    data = secret.encode()
    forms = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode()
        # Only the characters made of the secret's bits alone, whatever surrounds it.
        inner = encoded[-(-8 * shift // 6) : 8 * (shift + len(data)) // 6]
        forms |= {inner, inner.replace("+", "-").replace("/", "_")}
    return forms


def shows(secret: str, text: str) -> bool:
    return secret in text or any(form in text for form in base64_forms(secret))


async def encode(ring: KeyRing, value: object) -> Payload:
    [payload] = await data_converter(ring).encode([value])
    return payload


async def test_a_request_survives_the_codec_and_its_bytes_show_no_secret() -> None:
    ring = KeyRing.generate("k1")
    payload = await encode(ring, link_request())

    assert payload.metadata["encoding"] == ENCRYPTED_ENCODING
    assert payload.metadata[KEY_ID_METADATA] == b"k1"
    as_the_server_stores_it = payload.SerializeToString()
    as_the_cli_shows_it = json_format.MessageToJson(payload)
    for secret in (PASSWORD, PIN, "user_mfa", "codec-user"):
        assert secret.encode() not in as_the_server_stores_it
        assert not shows(secret, as_the_cli_shows_it)
        assert not shows(secret, as_the_server_stores_it.decode("latin-1"))

    [restored] = await data_converter(ring).decode([payload], [LinkRequest])
    assert restored.credentials.password.get_secret_value() == PASSWORD
    assert restored.credentials.extra["pin"].get_secret_value() == PIN


def test_the_base64_probe_finds_a_secret_at_every_alignment() -> None:
    for prefix in ("", "x", "xy", "xyz"):
        text = base64.b64encode(f'{prefix}"password":"{PASSWORD}"'.encode()).decode()
        assert shows(PASSWORD, text)


async def test_each_payload_gets_its_own_nonce() -> None:
    ring = KeyRing.generate()
    first, second = await data_converter(ring).encode([link_request(), link_request()])
    assert first.data[:12] != second.data[:12]
    assert first.data != second.data


async def test_after_rotation_the_new_key_encrypts_and_the_old_one_still_decrypts() -> None:
    old = CodecKey.generate("2025-old")
    new = CodecKey.generate("2026-new")
    written_before = await encode(KeyRing([old]), link_request())

    rotated = KeyRing([new, old])
    written_after = await encode(rotated, link_request())
    assert written_after.metadata[KEY_ID_METADATA] == b"2026-new"

    for payload in (written_before, written_after):
        [restored] = await data_converter(rotated).decode([payload], [LinkRequest])
        assert restored.credentials.password.get_secret_value() == PASSWORD


def tampered(payload: Payload, **changes: bytes) -> Payload:
    copy = Payload()
    copy.CopyFrom(payload)
    for name, value in changes.items():
        if name == "data":
            copy.data = value
        else:
            copy.metadata[name.replace("_", "-")] = value
    return copy


async def test_a_payload_it_cannot_open_comes_back_unchanged_and_is_logged_by_key_id_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ring = KeyRing([CodecKey.generate("k-a"), CodecKey.generate("k-b")])
    good = await encode(ring, link_request())
    flipped = bytes([good.data[20] ^ 1])
    cannot_open = [
        tampered(good, data=good.data[:20] + flipped + good.data[21:]),
        tampered(good, encryption_key_id=b"no-such-key"),
        tampered(good, encryption_key_id=b"k-b"),  # relabelled: the id is authenticated too
        tampered(good, encryption_key_id=b"\xff\xfe"),
        tampered(good, data=b""),
        tampered(good, data=b"short"),
        tampered(good, data=b"\0" * 12 + b"not a ciphertext at all"),
        Payload(metadata={"encoding": ENCRYPTED_ENCODING}, data=b"x" * 64),
    ]
    codec = EncryptionCodec(ring)
    with caplog.at_level(logging.WARNING, logger="linkflow.codec"):
        decoded = await codec.decode(cannot_open)

    assert decoded == cannot_open
    assert len(caplog.records) == len(cannot_open)
    assert "no-such-key" in caplog.text
    assert "not a ciphertext" not in caplog.text
    assert not shows(PASSWORD, caplog.text)


async def test_the_data_converter_refuses_a_payload_the_codec_could_not_open() -> None:
    ring = KeyRing.generate("k1")
    payload = await encode(KeyRing.generate("k1"), link_request())  # another key, same id
    with pytest.raises(KeyError, match="Unknown payload encoding binary/encrypted") as refused:
        await data_converter(ring).decode([payload], [LinkRequest])
    assert not shows(PASSWORD, str(refused.value))


async def test_payloads_written_before_the_codec_pass_through_unchanged() -> None:
    [plain] = await pydantic_data_converter.encode([link_request()])
    assert plain.metadata["encoding"] == b"json/plain"
    assert await EncryptionCodec(KeyRing.generate()).decode([plain]) == [plain]
    [restored] = await data_converter(KeyRing.generate()).decode([plain], [LinkRequest])
    assert restored.credentials.password.get_secret_value() == PASSWORD


@pytest.mark.parametrize(
    "name",
    [
        "before-one-call-per-step/mx_one_round.json",
        "before-one-call-per-step/mx_refresh_continued_as_new.json",
        "before-living-link/mx_hold.json",
    ],
)
async def test_committed_plain_histories_still_replay_through_the_codec(name: str) -> None:
    path = HISTORIES_DIR / name
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
    replayer = Replayer(
        workflows=[AccountLinkWorkflow, WebhookDeliveryWorkflow],
        data_converter=data_converter(KeyRing.generate()),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure}"


# ------------------------------------------------------------------ keys from configuration


def entry(key_id: str, secret: bytes, *, urlsafe: bool = False, padded: bool = True) -> str:
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(secret).decode()
    return f"{key_id}={encoded if padded else encoded.rstrip('=')}"


SECRET_A = bytes(range(32))
SECRET_B = bytes(range(100, 132))


def test_keys_come_from_the_environment_newest_first() -> None:
    keys = f"{entry('new', SECRET_B, urlsafe=True, padded=False)}, {entry('old', SECRET_A)}"
    ring = KeyRing.from_env({"LINKFLOW_CODEC_KEYS": keys})
    assert ring is not None
    assert [key.id for key in ring.keys] == ["new", "old"]
    assert ring.newest.secret == SECRET_B
    assert ring.get("old") == CodecKey("old", SECRET_A)
    assert SECRET_A.hex() not in repr(ring)
    assert base64.b64encode(SECRET_A).decode() not in repr(ring) + repr(ring.newest)


def test_keys_come_from_a_key_file_with_comments_and_blank_lines(tmp_path: Path) -> None:
    key_file = tmp_path / "codec.keys"
    key_file.write_text(f"# rotated in May\n\n{entry('b', SECRET_B)}\n  {entry('a', SECRET_A)}\n")
    ring = KeyRing.from_env({"LINKFLOW_CODEC_KEY_FILE": str(key_file)})
    assert ring is not None
    assert [key.id for key in ring.keys] == ["b", "a"]


def test_no_key_configured_is_none_and_requiring_one_says_how_to_set_it() -> None:
    assert KeyRing.from_env({}) is None
    assert KeyRing.from_env({"LINKFLOW_CODEC_KEYS": "  "}) is None
    with pytest.raises(ConfigurationError) as missing:
        require_key_ring({})
    message = str(missing.value)
    assert "LINKFLOW_CODEC_KEYS" in message
    assert "LINKFLOW_CODEC_KEY_FILE" in message
    assert ".linkflow/keys/codec.keys" in message


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        (base64.b64encode(SECRET_A).decode(), "is not `id=base64key`"),
        (f"k1={base64.b64encode(SECRET_A).decode()[:-8]}!!!!!!!!", "not base64"),
        (entry("k1", SECRET_A[:16]), "16 bytes"),
        (f"{entry('k1', SECRET_A)},{entry('k1', SECRET_B)}", "repeats"),
        (f"bad id={base64.b64encode(SECRET_A).decode()}", "is not `id=base64key`"),
    ],
)
def test_a_malformed_key_is_refused_without_repeating_it(keys: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        KeyRing.from_env({"LINKFLOW_CODEC_KEYS": keys})
    message = str(refused.value)
    assert says in message
    for secret in (SECRET_A, SECRET_B):
        assert base64.b64encode(secret).decode()[:12] not in message
        assert base64.b64encode(secret[:16]).decode()[:12] not in message


def test_setting_both_the_keys_and_a_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="only one"):
        KeyRing.from_env(
            {"LINKFLOW_CODEC_KEYS": entry("a", SECRET_A), "LINKFLOW_CODEC_KEY_FILE": "x"}
        )


def test_an_unreadable_key_file_is_named_in_the_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.keys"
    with pytest.raises(ConfigurationError, match=r"absent\.keys"):
        KeyRing.from_env({"LINKFLOW_CODEC_KEY_FILE": str(missing)})


def test_a_new_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "codec.keys"
    written = write_new_key_file(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    read_back = KeyRing.from_file(key_file)
    assert read_back.newest == written.newest
    with pytest.raises(FileExistsError):
        write_new_key_file(key_file)
    assert KeyRing.from_file(key_file).newest == written.newest


async def test_connecting_without_a_key_is_refused_before_any_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LINKFLOW_CODEC_KEYS", raising=False)
    monkeypatch.delenv("LINKFLOW_CODEC_KEY_FILE", raising=False)
    with pytest.raises(ConfigurationError, match="LINKFLOW_CODEC_KEYS"):
        # Port 9 (discard) has nothing listening: reaching it would fail differently.
        await connect(TemporalSettings(address="127.0.0.1:9"))
