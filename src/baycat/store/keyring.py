"""The keys object of an encrypted backup, `PREFIX/.baycat/keys`: one random master key,
wrapped once per password or key file.

    {"format": "baycat-keys", "version": 1, "cipher": "AES-256-GCM", "chunk": 65536,
     "slots": [{"id": "3f9c01aa", "kind": "password", "kdf": "scrypt",
                "n": 65536, "r": 8, "p": 1, "salt": "<b64>", "nonce": "<b64>",
                "wrapped": "<b64: AES-256-GCM(KEK, master), AAD = b'baycat-keys-v1 ' + id>",
                "created": "2026-12-01T21:00:00Z"}, ...]}

The object is not encrypted (it must be read before anything can be decrypted) and says
nothing but that the backup is encrypted and how the key-encryption keys are derived:
scrypt from a password (memory-hard; parameters and salt in the slot), HKDF-SHA256 from
a key file (which must itself be random). Adding or removing a slot rewrites only this
object; the master key, hence every object, stays as it is.

The master key never leaves memory. Subkeys are HKDF-SHA256 of it with distinct labels
(`subkey`), so a key for one purpose is never used for another.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from baycat.errors import CredentialsError, ManifestError
from baycat.store.encryption import Secret

KEYS_KEY = ".baycat/keys"
FORMAT = "baycat-keys"
VERSION = 1
CIPHER = "AES-256-GCM"
# scrypt N=2^16, r=8: 64 MiB and 0.15-0.34 s per derivation (measured on two machines),
# the cost of one guess to whoever holds the keys object. Stored per slot, so it can grow.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 16, 8, 1
MIN_KEY_FILE_BYTES = 16
_SLOT_AAD = b"baycat-keys-v1 "
# A keys object larger than this, or scrypt settings beyond these, are refused before
# any derivation: the object is read from a store baycat does not trust.
MAX_KEYS_BYTES = 1 << 20
MAX_SCRYPT_N, MAX_SCRYPT_R, MAX_SCRYPT_P = 1 << 22, 32, 16


class WrongKey(CredentialsError):
    """No slot of the keys object opens with the password or key file given."""


def subkey(master: bytes, label: str, length: int = 32) -> bytes:
    """The key for one purpose ("contents", "names"), derived from the master key."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=b"baycat-v1 " + label.encode()).derive(master)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ManifestError(f"keys object: {what} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ManifestError(f"keys object: {what} is not base64") from None


def _int(slot: dict[str, Any], name: str, top: int) -> int:
    value = slot.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
        raise ManifestError(f"keys object: slot {name} {value!r} out of range")
    return value


def _kek(secret: Secret, slot: dict[str, Any]) -> bytes:
    """The key-encryption key a slot's parameters derive from `secret`."""
    salt = _unb64(slot.get("salt"), "salt")
    if slot.get("kind") != secret.kind:
        raise WrongKey("not this kind")
    if slot.get("kdf") == "scrypt" and secret.kind == "password":
        n = _int(slot, "n", MAX_SCRYPT_N)
        if n & (n - 1):
            raise ManifestError("keys object: scrypt n is not a power of two")
        return Scrypt(salt=salt, length=32, n=n, r=_int(slot, "r", MAX_SCRYPT_R),
                      p=_int(slot, "p", MAX_SCRYPT_P)).derive(secret.value)
    if slot.get("kdf") == "hkdf" and secret.kind == "keyfile":
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                    info=b"baycat-v1 key file").derive(secret.value)
    raise ManifestError(f"keys object: unknown key derivation {slot.get('kdf')!r}")


def _new_slot(master: bytes, secret: Secret, scrypt_n: int) -> dict[str, Any]:
    if secret.kind == "keyfile" and len(secret.value) < MIN_KEY_FILE_BYTES:
        raise CredentialsError(f"a key file must hold at least {MIN_KEY_FILE_BYTES} "
                               "random bytes")
    if secret.kind == "password" and not secret.value:
        raise CredentialsError("the password is empty")
    slot: dict[str, Any] = {"id": secrets.token_hex(4), "kind": secret.kind,
                            "salt": _b64(secrets.token_bytes(16))}
    if secret.kind == "password":
        slot.update(kdf="scrypt", n=scrypt_n, r=SCRYPT_R, p=SCRYPT_P)
    else:
        slot.update(kdf="hkdf")
    nonce = secrets.token_bytes(12)
    wrapped = AESGCM(_kek(secret, slot)).encrypt(nonce, master, _SLOT_AAD + slot["id"].encode())
    slot.update(nonce=_b64(nonce), wrapped=_b64(wrapped),
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return slot


@dataclass(frozen=True, slots=True)
class Keyring:
    """The parsed keys object (a value: `add` and `remove` return a new one)."""

    slots: tuple[dict[str, Any], ...]

    @staticmethod
    def create(secret: Secret, scrypt_n: int = SCRYPT_N) -> tuple[Keyring, bytes]:
        """A new keyring with one slot for `secret`, and the new random master key."""
        master = secrets.token_bytes(32)
        return Keyring((_new_slot(master, secret, scrypt_n),)), master

    def unlock(self, secret: Secret) -> tuple[bytes, str]:
        """The master key and the id of the slot `secret` opens. Raises WrongKey."""
        for slot in self.slots:
            if slot.get("kind") != secret.kind:
                continue
            try:
                kek = _kek(secret, slot)
                master = AESGCM(kek).decrypt(_unb64(slot.get("nonce"), "nonce"),
                                             _unb64(slot.get("wrapped"), "wrapped key"),
                                             _SLOT_AAD + str(slot.get("id")).encode())
            except InvalidTag:
                continue
            if len(master) == 32:
                return master, str(slot["id"])
        what = "password" if secret.kind == "password" else "key file"
        raise WrongKey(f"wrong {what}: it opens none of this backup's "
                       f"{len(self.slots)} key slot(s)")

    def add(self, master: bytes, secret: Secret, scrypt_n: int = SCRYPT_N) -> Keyring:
        return Keyring((*self.slots, _new_slot(master, secret, scrypt_n)))

    def remove(self, slot_id: str) -> Keyring:
        kept = tuple(s for s in self.slots if s.get("id") != slot_id)
        if len(kept) == len(self.slots):
            raise CredentialsError(f"no key slot {slot_id!r} (see `baycat key list`)")
        if not kept:
            raise CredentialsError("refusing to remove the last key slot: the backup "
                                   "could never be decrypted again")
        return Keyring(kept)

    def to_bytes(self) -> bytes:
        return json.dumps({"format": FORMAT, "version": VERSION, "cipher": CIPHER,
                           "chunk": 65536, "slots": list(self.slots)}, indent=1).encode()

    @staticmethod
    def from_bytes(data: bytes) -> Keyring:
        """Parse a keys object read from a store (untrusted). Raises ManifestError."""
        if len(data) > MAX_KEYS_BYTES:
            raise ManifestError("keys object: too large")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ManifestError("keys object: not JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ManifestError("keys object: not a baycat keys object")
        if doc.get("version") != VERSION or doc.get("cipher") != CIPHER \
                or doc.get("chunk") != 65536:
            raise ManifestError(f"keys object: version {doc.get('version')!r} / cipher "
                                f"{doc.get('cipher')!r} not supported by this baycat")
        slots = doc.get("slots")
        if not isinstance(slots, list) or not slots or not all(
                isinstance(s, dict) and isinstance(s.get("id"), str) for s in slots):
            raise ManifestError("keys object: no valid key slots")
        return Keyring(tuple(slots))

    def describe(self) -> list[dict[str, str]]:
        """What `baycat key list` shows: never a salt or a wrapped key."""
        return [{"id": str(s["id"]), "kind": str(s.get("kind")),
                 "kdf": str(s.get("kdf")), "created": str(s.get("created", ""))}
                for s in self.slots]


# What reading a damaged or unreadable key cache raises.
KEY_CACHE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, ManifestError, OSError)


def load_key_cache(path: Path) -> tuple[Keyring, int]:
    """The keys object cached at `path` (EncryptedStore writes it) and the newest root
    seq seen (raises one of KEY_CACHE_ERRORS; FileNotFoundError: nothing cached)."""
    doc = json.loads(path.read_bytes())
    return Keyring.from_bytes(doc["keys"].encode()), int(doc.get("root_seq", 0))
