"""`EncryptedStore`: any store, encrypted on the client. The engine above is unchanged.

    engine ── plain keys, plain bytes ──► EncryptedStore ── opaque keys, sealed bytes ──► inner
                                            (keys object: store/keyring.py,
                                             object format: store/envelope.py)

Keys (names). A data key `a/b.txt` is stored as `d/<base32 AES-SIV(names key, key)>`
(split into 200-character components, for file systems' 255-byte names); a key below a
state folder, `.baycat/packs/<name>`, as `.baycat/packs/<base32 AES-SIV(…)>`. AES-SIV is
deterministic (the same key maps to the same name: overwrites and deletes find it) and
reversible (a listing maps back, so LIST-based checks — verify, --scan-remote, gc, a
point-in-time restore — work as they do on a plain backup). The single state objects
(`.baycat/root`, `.baycat/keys`, the probe) keep their names: the root must be found
before anything is known. The bucket shows no file name, only the number of objects,
their sizes (to 16 bytes per 64 KiB) and the length of each name (to 5 bits per byte).

Contents: every object is sealed (store/envelope.py); ETags are those of the ciphertext,
which the manifest records and verify compares, so `content_etags` is False here (the
engine's checks of an ETag against the MD5 of the plaintext can't hold) and this store
checks the inner store's ETag against the MD5 of what it sent instead.

Replay: the root carries a sequence number (in its authenticated header) one higher than
the root it replaced; the highest one seen is kept in the local cache file, and a root
older than that is refused. Without a cache (a first restore on a new machine) an old but
authentic root can't be told from the current one (docs/encryption.md).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import dataclasses
import hashlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from baycat.errors import CredentialsError, ManifestError, RemoteError
from baycat.private import mkdir_private, write_private
from baycat.store import envelope
from baycat.store.base import (
    NOT_MODIFIED,
    Corrupt,
    EncryptedBackupError,
    Fetched,
    NotFound,
    NotModified,
    ObjectInfo,
    ObjectStore,
    PreconditionFailed,
    Stored,
    Upload,
    Version,
)
from baycat.store.encryption import Encryption, encrypted_url
from baycat.store.keyring import KEY_CACHE_ERRORS, KEYS_KEY, Keyring, load_key_cache, subkey
from baycat.store.layout import ENCRYPTED_MAGIC, STATE_PREFIX

log = logging.getLogger(__name__)

ROOT_KEY = STATE_PREFIX + "root"  # manifest/remote.py's ROOT_KEY (a store can't import it)
DATA_PREFIX = "d/"
_PART = 200  # characters per key component of an encrypted name
_MAX_KEY_BYTES = 1024  # S3's limit (manifest/keys.py)
_THREAD_BYTES = 256 * 1024  # seal/open bodies larger than this in a thread
_HEADER_CACHE = 4096


def _name_length(plain_bytes: int) -> int:
    chars = -(-(plain_bytes + 16) * 8 // 5)
    return len(DATA_PREFIX) + chars + (chars - 1) // _PART


def max_plain_key_bytes(prefix_bytes: int) -> int:
    """The longest key (bytes) whose encrypted name fits S3's limit after `prefix_bytes`
    (longer ones are escaped by the engine to a short key first)."""
    n = _MAX_KEY_BYTES
    while n > 0 and prefix_bytes + _name_length(n) > _MAX_KEY_BYTES:
        n -= 1
    return n


# S3 refuses a part below 5 MiB unless it is the last one (ops/transfer.py MIN_PART).
_MIN_PART = 5 * 1024 * 1024
_DEFERRED = '"deferred"'


@dataclass(slots=True)
class _Upload:
    header: envelope.Header
    sizes: dict[int, int] = field(default_factory=dict)
    # A part smaller than S3's minimum can only be the last: it is held back (sealed)
    # and sent with the end chunk appended when the upload completes.
    deferred: tuple[int, bytes] | None = None


def _check_etag(inner: ObjectStore, etag: str, md5: bytes, what: str) -> None:
    got = etag.strip('"')
    if inner.content_etags and got and got != md5.hex():
        raise RemoteError(f"{what}: the store answered ETag {etag} for a body whose MD5 "
                          f"is {md5.hex()}; not recorded")


class EncryptedStore:
    """An ObjectStore over `inner` that encrypts keys and contents. `open()` reads the
    keys object (or its cached copy) and starts unlocking it; a wrong secret fails the
    first call that needs the keys (before anything is written) or, at the latest,
    `close()`."""

    content_etags = False
    uses_md5 = False  # the ciphertext's MD5 is computed here, after sealing

    def __init__(self, inner: ObjectStore, encryption: Encryption) -> None:
        self.inner = inner
        self.encryption = encryption
        self.requests: Counter[str] = inner.requests
        self.keyring: Keyring | None = None
        self.keyring_etag: str | None = None
        self.slot_id = ""
        self._contents = b""
        self._names: AESSIV | None = None
        self._seq = 0  # the newest root's seq this process has seen or written
        self._seen = 0  # the highest seq the cache file recorded
        self._uploads: dict[str, _Upload] = {}
        self._headers: dict[str, envelope.Header] = {}
        self._from_cache = False
        self._unlocking: asyncio.Task[None] | None = None
        self._created: bytes | None = None

    # ---- the protocol's attributes --------------------------------------------------

    @property
    def conditional_writes(self) -> bool | None:
        return self.inner.conditional_writes

    @conditional_writes.setter
    def conditional_writes(self, value: bool | None) -> None:
        self.inner.conditional_writes = value

    @property
    def url(self) -> str:
        return encrypted_url(self.inner.url)

    @property
    def key_prefix(self) -> str:
        # The engine escapes a key when len(key_prefix) + len(key) > 1024 (keys.py). An
        # encrypted name is longer than its key; a prefix of this length makes the
        # engine escape exactly the keys whose encrypted name would not fit.
        inner = self.inner.key_prefix
        keep = max_plain_key_bytes(len(inner.encode()))
        return inner + "~" * max(_MAX_KEY_BYTES - keep - len(inner.encode()), 0)

    # ---- keys -----------------------------------------------------------------------

    def _name_cipher(self) -> AESSIV:
        assert self._names is not None, "EncryptedStore used before open()"
        return self._names

    def _encode(self, key: str) -> str:
        sealed = self._name_cipher().encrypt(key.encode("utf-8", "surrogateescape"), None)
        text = base64.b32encode(sealed).decode().rstrip("=").lower()
        return "/".join(text[i:i + _PART] for i in range(0, len(text), _PART))

    def _decode(self, name: str) -> str | None:
        text = name.replace("/", "").upper()
        try:
            sealed = base64.b32decode(text + "=" * (-len(text) % 8))
            return self._name_cipher().decrypt(sealed, None).decode("utf-8",
                                                                   "surrogateescape")
        except (binascii.Error, ValueError, InvalidTag):
            return None

    def _stored(self, key: str) -> str:
        if key.startswith(STATE_PREFIX):
            folder, slash, _ = key[len(STATE_PREFIX):].partition("/")
            if not slash:
                return key  # root, keys, probe: found by name
            return STATE_PREFIX + folder + "/" + self._encode(key)
        return DATA_PREFIX + self._encode(key)

    def _plain(self, stored: str) -> str | None:
        """The engine's key of an inner key; None for one this store did not write."""
        if stored.startswith(DATA_PREFIX):
            return self._decode(stored[len(DATA_PREFIX):])
        if stored.startswith(STATE_PREFIX):
            folder, slash, rest = stored[len(STATE_PREFIX):].partition("/")
            if not slash:
                return stored
            key = self._decode(rest)
            return key if key is not None and key.startswith(
                STATE_PREFIX + folder + "/") else None
        return None

    # ---- opening --------------------------------------------------------------------

    def _read_cache(self) -> tuple[Keyring | None, int]:
        path = self.encryption.cache
        if path is None:
            return None, 0
        try:
            return load_key_cache(path)
        except FileNotFoundError:
            return None, 0
        except KEY_CACHE_ERRORS:
            log.warning("ignoring an unreadable key cache %s", path)
            return None, 0

    def _write_cache(self) -> None:
        path = self.encryption.cache
        if path is None or self.keyring is None or self.encryption.dry_run:
            return
        self._seen = max(self._seen, self._seq)
        try:
            mkdir_private(path.parent, parents=True)
            write_private(path, json.dumps({"keys": self.keyring.to_bytes().decode(),
                                            "root_seq": self._seen}).encode())
        except OSError as exc:
            log.warning("could not write the key cache %s: %s", path, exc.strerror)

    async def _fetch_keyring(self) -> Keyring | None:
        try:
            got = await self.inner.get(KEYS_KEY)
        except NotFound:
            return None
        assert not isinstance(got, NotModified)
        self.keyring_etag = got.etag
        return Keyring.from_bytes(got.data)

    async def _create_keyring(self) -> Keyring:
        try:
            await self.inner.head(ROOT_KEY)
        except NotFound:
            pass
        else:
            raise EncryptedBackupError(
                f"{self.inner.url} holds a plain (unencrypted) backup: --encrypt only makes a "
                "new backup encrypted (sync to a new destination to encrypt)")
        n = self.encryption.scrypt_n
        keyring, master = (Keyring.create(self.encryption.secret) if n is None
                           else Keyring.create(self.encryption.secret, n))
        self._created = master  # no second derivation to open what was just made
        if self.encryption.dry_run:
            return keyring
        body = keyring.to_bytes()
        try:
            stored = await self.inner.put(KEYS_KEY, body, md5=hashlib.md5(body).digest(),
                                          if_none_match_any=True)
        except PreconditionFailed:  # another first sync made one: use theirs
            self._created = None
            theirs = await self._fetch_keyring()
            if theirs is None:
                raise
            return theirs
        self.keyring_etag = stored.etag
        return keyring

    async def open(self) -> None:
        await self.inner.open()
        try:
            await self._open_keys()
        except BaseException:
            await self.inner.close()  # the caller closes only a store that opened
            raise

    async def _open_keys(self) -> None:
        keyring, self._seen = self._read_cache()
        self._from_cache = keyring is not None
        if keyring is None:
            keyring = await self._fetch_keyring()
        if keyring is None:
            if not self.encryption.create:
                raise EncryptedBackupError(
                    f"{self.inner.url} is not an encrypted backup (no {KEYS_KEY}); give "
                    "--encrypt on the first sync to make one, or no password to use a "
                    "plain backup")
            keyring = await self._create_keyring()
        # The key derivation (scrypt: 0.15-0.34 s of CPU) runs in a thread beside whatever
        # the caller does next (a sync scans its tree meanwhile; scrypt releases the GIL).
        # Every method awaits it first, except the root GET that is answered 304: a
        # no-change sync then waits for it only in close(), which still fails on a wrong
        # secret (exit 3) — after the one request, a read.
        self._unlocking = asyncio.create_task(self._unlock_soon(keyring))
        if not self._from_cache and not self.encryption.dry_run:
            await self.ready()
            self._write_cache()

    async def ready(self) -> None:
        """Wait for the keys to be unlocked (raises WrongKey)."""
        if self._unlocking is not None:
            await self._unlocking

    async def _unlock_soon(self, keyring: Keyring) -> None:
        ahead = self.encryption.ahead
        if ahead is not None and self._from_cache:
            try:
                got = await asyncio.wrap_future(ahead)
            except Exception:  # derive again below, raising what that raises
                pass
            else:
                # Only a key derived from the very keys object this store reads.
                if got.keyring is not None and got.keyring.slots == keyring.slots:
                    self._use(keyring, got.master, got.slot_id)
                    return
        await asyncio.to_thread(self._unlock, keyring)

    def _unlock(self, keyring: Keyring) -> None:
        if self._created is not None and keyring.slots:
            master, slot_id = self._created, str(keyring.slots[0]["id"])
            self._created = None
        else:
            master, slot_id = keyring.unlock(self.encryption.secret)
        self._use(keyring, master, slot_id)

    def _use(self, keyring: Keyring, master: bytes, slot_id: str) -> None:
        self.slot_id = slot_id
        self.keyring = keyring
        self._contents = subkey(master, "contents")
        self._names = AESSIV(subkey(master, "names", 64))

    async def save_keyring(self, keyring: Keyring) -> None:
        """Replace the keys object (key add/remove), conditionally on the one read."""
        await self.ready()
        body = keyring.to_bytes()
        md5 = hashlib.md5(body).digest()
        if self.keyring_etag is None:
            await self._fetch_keyring()
        if self.keyring_etag is None:
            raise CredentialsError(f"{self.inner.url}: the keys object is gone")
        stored = await self.inner.put(KEYS_KEY, body, md5=md5, if_match=self.keyring_etag)
        self.keyring, self.keyring_etag = keyring, stored.etag
        self._write_cache()

    async def check(self) -> None:
        await self.inner.check()

    async def close(self) -> None:
        try:
            await self.ready()
        finally:
            await self.inner.close()

    # ---- reading --------------------------------------------------------------------

    def _kind(self, key: str) -> int:
        return envelope.KIND_ROOT if key == ROOT_KEY else envelope.KIND_DATA

    async def _open_whole(self, key: str, data: bytes) -> bytes:
        if not data.startswith(ENCRYPTED_MAGIC):
            if key == ROOT_KEY:
                raise EncryptedBackupError(
                    f"{self.inner.url} holds a plain (unencrypted) backup: run without a "
                    "password or key file")
            raise Corrupt(f"{key}: corrupt (not an encrypted object)")
        what, kind = key, self._kind(key)
        if len(data) > _THREAD_BYTES:
            plain, header = await asyncio.to_thread(envelope.open_whole, self._contents,
                                                    data, what, kind)
        else:
            plain, header = envelope.open_whole(self._contents, data, what, kind)
        if key == ROOT_KEY:
            self._check_seq(header.seq)
        return plain

    def _check_seq(self, seq: int) -> None:
        if seq < self._seen:
            raise ManifestError(
                f"{self.inner.url}: the backup's root is older than one this machine has seen "
                f"(sequence {seq} < {self._seen}): an old root was put back (replayed) "
                "or the backup was rolled back; refusing it. If the rollback is wanted, "
                f"delete {self.encryption.cache}")
        self._seq = seq
        if seq > self._seen:
            self._write_cache()

    async def get(self, key: str, *, if_none_match: str | None = None,
                  byte_range: tuple[int, int] | None = None,
                  version_id: str = "") -> Fetched | NotModified:
        if key != ROOT_KEY:
            await self.ready()
        stored = self._stored(key)
        if byte_range is not None:
            return Fetched(await self._get_range(key, stored, *byte_range, version_id), "")
        got = await self.inner.get(stored, if_none_match=if_none_match,
                                   version_id=version_id)
        if isinstance(got, NotModified):
            return NOT_MODIFIED
        await self.ready()
        try:
            return Fetched(await self._open_whole(key, got.data), got.etag)
        except Corrupt:
            if key != ROOT_KEY or not self._from_cache:
                raise
        # The backup may have been made anew at this URL since the keys were cached.
        keyring = await self._fetch_keyring()
        if keyring is None:
            raise EncryptedBackupError(f"{self.inner.url}: the keys object is gone")
        self._from_cache = False
        self._unlock(keyring)
        self._write_cache()
        return Fetched(await self._open_whole(key, got.data), got.etag)

    async def _header(self, key: str, stored: str, version_id: str
                      ) -> envelope.Header:
        header = self._headers.get(stored)
        if header is None:
            got = await self.inner.get(stored, byte_range=(0, envelope.HEADER_BYTES),
                                       version_id=version_id)
            assert not isinstance(got, NotModified)
            header = envelope.Header.parse(self._contents, got.data, key)
            if len(self._headers) >= _HEADER_CACHE:
                self._headers.clear()
            self._headers[stored] = header
        return header

    async def _get_range(self, key: str, stored: str, start: int, end: int,
                         version_id: str) -> bytes:
        header = await self._header(key, stored, version_id)
        if header.size == envelope.UNKNOWN_SIZE:
            raise RemoteError(f"{key}: ranged reads of a multipart encrypted object are "
                              "not supported")
        if header.kind != self._kind(key):
            raise Corrupt(f"{key}: corrupt (an object of another kind)")
        end = min(end, header.size)
        if start >= end:
            return b""
        first, cstart, cend = envelope.chunk_span(header.size, start, end)
        got = await self.inner.get(stored, byte_range=(cstart, cend), version_id=version_id)
        assert not isinstance(got, NotModified)
        if len(got.data) != cend - cstart:
            raise Corrupt(f"{key}: truncated")
        plain = envelope.open_span(header, first, got.data, key)
        return plain[start - first * envelope.CHUNK:end - first * envelope.CHUNK]

    async def head(self, key: str) -> ObjectInfo:
        await self.ready()
        info = await self.inner.head(self._stored(key))
        return ObjectInfo(key, envelope.plaintext_size(info.size), info.etag)

    async def stream(self, key: str, version_id: str = "") -> AsyncIterator[bytes]:
        await self.ready()
        opener = envelope.Opener(self._contents, key, self._kind(key))
        async for piece in self.inner.stream(self._stored(key), version_id):
            for plain in opener.feed(piece):
                yield plain
        for plain in opener.finish():
            yield plain

    # ---- writing --------------------------------------------------------------------

    async def _seal(self, data: bytes | bytearray, kind: int, seq: int
                    ) -> tuple[bytes, bytes]:
        """The sealed body and its MD5 (in a thread when large: the loop stays free)."""

        def seal() -> tuple[bytes, bytes]:
            body = envelope.seal(self._contents, data, kind, seq)
            return body, hashlib.md5(body).digest()

        return await asyncio.to_thread(seal) if len(data) > _THREAD_BYTES else seal()

    async def put(self, key: str, data: bytes | bytearray, *, md5: bytes,
                  if_match: str | None = None, if_none_match_any: bool = False) -> Stored:
        await self.ready()
        # `md5` is the plaintext's: the engine computed it from these very bytes. What
        # goes to the server is checked by the ciphertext's own MD5.
        kind = self._kind(key)
        # After a 304 the root's seq was never read here: the highest one seen is its.
        seq = max(self._seq, self._seen) + 1 if kind == envelope.KIND_ROOT else 0
        body, body_md5 = await self._seal(data, kind, seq)
        stored = await self.inner.put(self._stored(key), body, md5=body_md5,
                                      if_match=if_match, if_none_match_any=if_none_match_any)
        _check_etag(self.inner, stored.etag, body_md5, key)
        if kind == envelope.KIND_ROOT:
            self._seq = seq
            self._write_cache()
        return stored

    async def create_multipart(self, key: str) -> str:
        await self.ready()
        upload_id = await self.inner.create_multipart(self._stored(key))
        self._uploads[upload_id] = _Upload(envelope.Header.new(self._contents))
        return upload_id

    def _upload(self, key: str, upload_id: str) -> _Upload:
        try:
            return self._uploads[upload_id]
        except KeyError:
            raise RemoteError(f"{key}: multipart upload {upload_id} was not started by "
                              "this process (its encryption state is gone)") from None

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes,
                          md5: bytes) -> str:
        upload = self._upload(key, upload_id)
        await self.ready()
        header = upload.header

        def sealed() -> tuple[bytes, bytes]:
            first = [header.encode(len(data), envelope.UNKNOWN_SIZE)] if number == 1 else []
            body = b"".join([*first, *header.sealed_chunks(number, data)])
            return body, hashlib.md5(body).digest()

        body, body_md5 = await asyncio.to_thread(sealed)
        upload.sizes[number] = len(data)
        if len(data) < _MIN_PART:
            upload.deferred = (number, body)
            return _DEFERRED
        return await self._send_part(key, upload_id, number, body, body_md5)

    async def _send_part(self, key: str, upload_id: str, number: int, body: bytes,
                         body_md5: bytes | None = None) -> str:
        if body_md5 is None:
            body_md5 = hashlib.md5(body).digest()
        etag = await self.inner.upload_part(self._stored(key), upload_id, number, body,
                                            body_md5)
        _check_etag(self.inner, etag, body_md5, f"{key} part {number}")
        return etag

    async def complete_multipart(self, key: str, upload_id: str,
                                 parts: list[tuple[int, str]]) -> Stored:
        upload = self._upload(key, upload_id)
        numbers = [n for n, _ in parts]
        if numbers != list(range(1, len(parts) + 1)) or any(
                n not in upload.sizes for n in numbers):
            raise RemoteError(f"{key}: parts {numbers} are not 1..N as uploaded")
        part_size = upload.sizes[1]
        if len(parts) > 1 and (part_size % envelope.CHUNK or any(
                upload.sizes[n] != part_size for n in numbers[:-1])):
            raise RemoteError(f"{key}: encrypted multipart parts must be equal multiples "
                              "of 64 KiB (all but the last)")
        size = sum(upload.sizes[n] for n in numbers)
        end = upload.header.seal_end(part_size, size)
        last = len(parts)
        if upload.deferred is not None:
            if upload.deferred[0] != last:
                raise RemoteError(f"{key}: a part below 5 MiB that is not the last one")
            # The held-back last part goes up now, the end chunk appended to it.
            parts = [*parts[:-1], (last, await self._send_part(
                key, upload_id, last, upload.deferred[1] + end))]
        else:
            # The end chunk is one more part: the last one may be that small.
            parts = [*parts, (last + 1, await self._send_part(key, upload_id, last + 1,
                                                              end))]
        result = await self.inner.complete_multipart(self._stored(key), upload_id, parts)
        del self._uploads[upload_id]
        return result

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await self.ready()
        self._uploads.pop(upload_id, None)
        await self.inner.abort_multipart(self._stored(key), upload_id)

    async def copy(self, source_key: str, key: str, *, if_match: str | None = None,
                   source_version: str = "") -> Stored:
        await self.ready()
        return await self.inner.copy(self._stored(source_key), self._stored(key),
                                     if_match=if_match, source_version=source_version)

    async def delete_many(self, keys: list[str]) -> list[tuple[str, str]]:
        await self.ready()
        plain = {self._stored(k): k for k in keys}
        failed = await self.inner.delete_many(list(plain))
        return [(plain.get(k, k), message) for k, message in failed]

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        await self.ready()
        if prefix.startswith(STATE_PREFIX):
            folder, slash, _ = prefix[len(STATE_PREFIX):].partition("/")
            inner_prefix = STATE_PREFIX + folder + "/" if slash else STATE_PREFIX
        else:
            inner_prefix = DATA_PREFIX if prefix else ""
        async for info in self.inner.list(inner_prefix):
            key = self._plain(info.key)
            if key is None:
                # Not ours (or damaged): shown under its own name, so verify reports it
                # as an unknown object.
                if not prefix:
                    yield info
                continue
            if not key.startswith(prefix):
                continue
            size = info.size if key == KEYS_KEY else envelope.plaintext_size(info.size)
            yield ObjectInfo(key, size, info.etag)

    # ---- retention and leftovers (gc, prune): inner names mapped back ----------------
    # Sizes stay the stored (ciphertext) sizes: they are what a deletion frees.

    async def list_versions(self, prefix: str = "") -> AsyncIterator[Version]:
        await self.ready()
        async for version in self.inner.list_versions(""):
            key = self._plain(version.key)
            if key is not None and key.startswith(prefix):
                yield dataclasses.replace(version, key=key)

    async def delete_versions(self, versions: builtins.list[tuple[str, str]]
                              ) -> builtins.list[tuple[str, str, str]]:
        await self.ready()
        plain = {self._stored(k): k for k, _ in versions}
        failed = await self.inner.delete_versions([(self._stored(k), v) for k, v in versions])
        return [(plain.get(k, k), v, message) for k, v, message in failed]

    async def list_uploads(self) -> AsyncIterator[Upload]:
        await self.ready()
        async for upload in self.inner.list_uploads():
            key = self._plain(upload.key)
            if key is not None:
                yield dataclasses.replace(upload, key=key)

    async def remove_temp_files(self, before_ns: int, *, dry_run: bool = False
                                ) -> builtins.list[tuple[str, int]]:
        return await self.inner.remove_temp_files(before_ns, dry_run=dry_run)

    async def versioning(self) -> str | None:
        return await self.inner.versioning()
