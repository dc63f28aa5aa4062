"""What opening an encrypted backup takes (a value importable without `cryptography`,
which loads only when a backup is encrypted)."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from baycat.store.unlock_ahead import Unlocked


@dataclass(frozen=True, slots=True)
class Secret:
    """A password or the bytes of a key file. Its repr never shows the value."""

    kind: Literal["password", "keyfile"]
    value: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Secret({self.kind!r}, ***)"


def encrypted_url(url: str) -> str:
    """The `url` of an EncryptedStore over a store at `url`: also what the local state
    is keyed by, so a plain run never takes an encrypted backup's caches for its own."""
    return url + " (encrypted)"


def password_line(data: bytes) -> bytes:
    """The password in a password file's (or command's output's) bytes: its first line,
    without the line end."""
    line = data.split(b"\n", 1)[0]
    return line[:-1] if line.endswith(b"\r") else line


@dataclass(frozen=True, slots=True)
class Encryption:
    """How to open (or, with `create`, make) an encrypted backup: the secret, and where
    to cache the keys object and the newest root's sequence number (a private file),
    so that a no-change sync stays one request.

    >>> Encryption(Secret("password", b"hunter2")).secret
    Secret('password', ***)
    """

    secret: Secret
    create: bool = False
    cache: Path | None = None
    scrypt_n: int | None = None  # None: keyring.SCRYPT_N (tests use less)
    dry_run: bool = False  # `create` makes the keys in memory only, writes nothing
    # The derivation already running (store/unlock_ahead.py), or None.
    ahead: Future[Unlocked] | None = field(default=None, repr=False, compare=False)
