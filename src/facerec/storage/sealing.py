"""Encryption at rest of embeddings and person metadata (AES-256-GCM).

PostgreSQL cannot promise that a deleted row is gone from disk: VACUUM marks dead tuples
reusable without overwriting them, and WAL segments and backups keep copies. Values sealed here
are unreadable in all those copies once the key is rotated away or destroyed.

Format of a sealed value (version 1)::

    magic "FR\\xc0\\x7f" | version 0x01 | key id (4 bytes) | nonce (12 bytes) | ciphertext + tag

As a little-endian float32 the magic is a NaN, which no stored embedding holds, so a blob that
starts with it is sealed and any other blob is a plaintext embedding written before a key was set.
The associated data binds each ciphertext to its column and row id (a sealed value copied into
another row does not open) and covers the header. JSON values are sealed the same way and stored
as a JSON string ``"fr-sealed:" + base64(sealed)``; plaintext metadata is always a JSON object.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facerec.config import DatabaseSettings
from facerec.errors import FaceRecError

MAGIC = b"FR\xc0\x7f"
VERSION = 1
KEY_LEN = 32
_KEY_ID_LEN = 4
_NONCE_LEN = 12
_HEADER_LEN = len(MAGIC) + 1 + _KEY_ID_LEN
JSON_PREFIX = "fr-sealed:"
KEY_SETTING = "FACEREC_DB__ENCRYPTION_KEY"
# The sealed columns, as bound into each value's associated data.
EMBEDDING_COLUMN = "faces.embedding"
METADATA_COLUMN = "persons.metadata"
CHIP_COLUMN = "face_chips.chip"


class SealedDataError(FaceRecError):
    """A sealed value that cannot be opened: no key configured, another key, or altered (500:
    the operator's problem). Never answered with made-up data."""

    default_code = "sealed_data_unreadable"


def key_id(key: bytes) -> bytes:
    """A short public fingerprint of ``key``, stored with each value to name the key it needs."""
    return hashlib.sha256(b"facerec-sealing-key-id\0" + key).digest()[:_KEY_ID_LEN]


def is_sealed(blob: bytes) -> bool:
    return blob[: len(MAGIC)] == MAGIC


def is_sealed_json(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(JSON_PREFIX)


class Sealer:
    """Seals and opens values bound to (column, row id) with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_LEN:
            raise ValueError(f"an encryption key is {KEY_LEN} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self.key_id = key_id(key)

    @classmethod
    def from_text(cls, text: str) -> Sealer:
        """A key given as base64 of 32 bytes (what ``FACEREC_DB__ENCRYPTION_KEY`` holds)."""
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{KEY_SETTING} must be base64 of {KEY_LEN} bytes") from exc
        if len(key) != KEY_LEN:
            raise ValueError(f"{KEY_SETTING} must be base64 of {KEY_LEN} bytes, got {len(key)}")
        return cls(key)

    @classmethod
    def from_settings(cls, db: DatabaseSettings) -> Sealer | None:
        """The sealer of ``db.encryption_key``; None when no key is set."""
        secret = db.encryption_key
        return None if secret is None else cls.from_text(secret.get_secret_value())

    def seal(self, data: bytes, *, column: str, row_id: str) -> bytes:
        header = MAGIC + bytes([VERSION]) + self.key_id
        nonce = os.urandom(_NONCE_LEN)
        sealed = self._aead.encrypt(nonce, data, _associated(header, column, row_id))
        return header + nonce + sealed

    def open(self, blob: bytes, *, column: str, row_id: str) -> bytes:
        if not is_sealed(blob) or len(blob) < _HEADER_LEN + _NONCE_LEN + 16:
            raise _unreadable("is not a sealed value", column, row_id)
        header = blob[:_HEADER_LEN]
        if header[len(MAGIC)] != VERSION:
            raise _unreadable(f"has unknown format version {header[len(MAGIC)]}", column, row_id)
        stored_key = header[len(MAGIC) + 1 :]
        if stored_key != self.key_id:
            raise _unreadable(
                f"was sealed with another key (key id {stored_key.hex()}; the configured key "
                f"{KEY_SETTING} has key id {self.key_id.hex()})",
                column,
                row_id,
            )
        nonce = blob[_HEADER_LEN : _HEADER_LEN + _NONCE_LEN]
        try:
            return self._aead.decrypt(
                nonce, blob[_HEADER_LEN + _NONCE_LEN :], _associated(header, column, row_id)
            )
        except InvalidTag as exc:
            raise _unreadable(
                "failed authentication: it was altered or copied from another row", column, row_id
            ) from exc

    def seal_json(self, value: Any, *, column: str, row_id: str) -> str:
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        sealed = self.seal(data, column=column, row_id=row_id)
        return JSON_PREFIX + base64.b64encode(sealed).decode("ascii")

    def open_json(self, stored: str, *, column: str, row_id: str) -> Any:
        try:
            blob = base64.b64decode(stored[len(JSON_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _unreadable("is not valid base64", column, row_id) from exc
        return json.loads(self.open(blob, column=column, row_id=row_id))


def open_blob(sealer: Sealer | None, blob: bytes, *, column: str, row_id: str) -> bytes:
    """``blob`` opened when sealed; plaintext (written before a key was set) as it is."""
    if not is_sealed(blob):
        return blob
    if sealer is None:
        raise _no_key(column, row_id)
    return sealer.open(blob, column=column, row_id=row_id)


def open_json(sealer: Sealer | None, value: Any, *, column: str, row_id: str) -> Any:
    """A JSON column value opened when sealed; plaintext values as they are."""
    if not is_sealed_json(value):
        return value
    if sealer is None:
        raise _no_key(column, row_id)
    return sealer.open_json(value, column=column, row_id=row_id)


def seal_blob(sealer: Sealer | None, data: bytes, *, column: str, row_id: str) -> bytes:
    return data if sealer is None else sealer.seal(data, column=column, row_id=row_id)


def seal_json(sealer: Sealer | None, value: Any, *, column: str, row_id: str) -> Any:
    return value if sealer is None else sealer.seal_json(value, column=column, row_id=row_id)


def _associated(header: bytes, column: str, row_id: str) -> bytes:
    return header + b"\0" + column.encode() + b"\0" + row_id.encode()


def _unreadable(why: str, column: str, row_id: str) -> SealedDataError:
    return SealedDataError(f"{column} of row {row_id!r} {why}", column=column, row_id=row_id)


def _no_key(column: str, row_id: str) -> SealedDataError:
    return _unreadable(f"is encrypted but {KEY_SETTING} is not set", column, row_id)
