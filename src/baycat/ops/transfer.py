"""Transfers: uploading a local file (whole or multipart), copying an object server-side.

Blocking reads run in threads; requests are awaited. A file is read once for its upload:
the bytes sent are hashed (xxh3-128 for the manifest, MD5 for Content-MD5) as they are
read, and the file's stat is taken before and after, so what is recorded always matches
what was sent. Memory: at most `TransferConfig.max_memory` bytes of file content are held
at once, across all transfers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import xxhash

from baycat import hooks
from baycat.entry import Entry, same_file_stat, with_stat
from baycat.errors import BaycatError, Interrupted, first_of
from baycat.ops import large_buffers
from baycat.ops.ratelimit import TokenBucket
from baycat.ops.upload_journal import UploadJournal
from baycat.scan.hasher import is_racy
from baycat.stop import StopRequest
from baycat.store.base import NotFound, ObjectStore, Stored

MiB = 1 << 20
MAX_PARTS = 10_000
MIN_PART = 5 * MiB


@dataclass(frozen=True, slots=True)
class TransferConfig:
    """Transfer bounds. Peak memory of file content in flight is `max_memory`
    (default 64 MiB); a single part never exceeds it.

    64 MiB is eight 8 MiB parts in flight, about what the AWS CLI holds (ten). More
    was slower, not faster: four files of 128-256 MiB (736 MiB) to a local SeaweedFS,
    three runs each, took 5.6-8.2 s with 256 MiB (peak RSS 375-398 MB) and 5.2-5.6 s
    with 64 MiB (165-182 MB). Parts beyond what the link drains only wait in buffers,
    and the server spent more CPU on them (7.8-11.9 s against 7.0-7.7 s)."""

    transfers: int = 32  # concurrent requests
    multipart_threshold: int = 16 * MiB
    part_size: int = 8 * MiB
    max_memory: int = 64 * MiB
    bwlimit: int | None = None  # upload bytes per second, all transfers together

    def part_size_for(self, size: int) -> int:
        """Part size for a file of `size` bytes: the configured one, grown so that the file
        fits in S3's 10,000 parts, rounded up to a MiB."""
        part = max(self.part_size, MIN_PART, -(-size // MAX_PARTS))
        return -(-part // MiB) * MiB

    def upload_part_size(self, size: int) -> int | None:
        """How a file of `size` bytes is uploaded: in parts of this size, or (None) in one
        PUT. The upload, the ETag an adopted object must have (`--scan-remote`) and the
        request estimate all follow this, so they agree.

        >>> TransferConfig().upload_part_size(1 << 20), TransferConfig().upload_part_size(1 << 30)
        (None, 8388608)
        """
        return self.part_size_for(size) if size >= self.multipart_threshold else None


class FileChanged(BaycatError):
    """The file changed while it was being read; it is retried next run."""


class WrongETag(BaycatError):
    """The store answered a write with an ETag that is not the MD5 of what was sent
    (a broken proxy or server); the file is not recorded and is retried next run."""


def multipart_etag(part_md5s: list[bytes]) -> str:
    """S3's ETag of an object completed from parts with these MD5s: the MD5 of the
    concatenated part MD5s, then "-" and the part count (unquoted)."""
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY


@dataclass(frozen=True, slots=True)
class ReadFile:
    """A whole small file as read for upload."""

    data: bytes
    md5: bytes  # b"" when not asked for
    entry: Entry  # the entry with the stat and hash of exactly these bytes


def read_whole(full_path: bytes, entry: Entry, attempts: int = 3, *,
               md5: bool = True) -> ReadFile:
    """Blocking: read a file whole, hashing it (xxh3-128, and MD5 unless `md5` is
    False), retrying while it changes under us."""
    try:
        fd = os.open(full_path, _OPEN_FLAGS)
    except OSError as exc:
        raise FileChanged(f"cannot open: {exc.strerror}") from None
    try:
        for _ in range(attempts):
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise FileChanged("no longer a regular file")
            data = os.pread(fd, before.st_size + 1, 0)
            after = os.fstat(fd)
            if same_file_stat(before, after) and len(data) == after.st_size:
                return ReadFile(data, hashlib.md5(data).digest() if md5 else b"",
                                with_stat(entry, after, xxhash.xxh3_128_digest(data),
                                          racy=is_racy(after)))
        raise FileChanged("file kept changing while being read")
    except OSError as exc:
        raise FileChanged(f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)


def file_etag(full_path: bytes, part_size: int | None) -> str | None:
    """Blocking: the ETag S3 gives this file's content when uploaded whole
    (`part_size` None: MD5 hex) or in parts of `part_size` (MD5 of the part MD5s, "-N").
    None when the file can't be read."""
    try:
        with open(full_path, "rb") as f:
            if part_size is None:
                return hashlib.file_digest(f, "md5").hexdigest()
            digests = []
            while chunk := f.read(part_size):
                digests.append(hashlib.md5(chunk).digest())
    except OSError:
        return None
    return multipart_etag(digests)


class ByteBudget:
    """A semaphore counted in bytes: bounds the file content held in memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = limit
        self._cond = asyncio.Condition()

    async def acquire(self, n: int) -> int:
        n = min(n, self.limit)
        async with self._cond:
            await self._cond.wait_for(lambda: self._free >= n)
            self._free -= n
        return n

    async def release(self, n: int) -> None:
        async with self._cond:
            self._free += n
            self._cond.notify_all()


@dataclass(frozen=True, slots=True)
class Uploaded:
    entry: Entry  # local entry with the stat and hash of what was sent
    stored: Stored
    bytes_sent: int


ProgressFunc = Callable[[int], None]


class Uploader:
    """Uploads files to one store within the byte budget and the request limit."""

    def __init__(self, store: ObjectStore, config: TransferConfig, root: bytes,
                 stop: StopRequest | None = None,
                 journal: UploadJournal | None = None) -> None:
        self.store = store
        self.journal = journal  # where started multipart uploads are written down
        self.stop = stop
        self.config = config
        self.root = root
        self.budget = ByteBudget(config.max_memory)
        self.requests = asyncio.Semaphore(config.transfers)
        self.bwlimit = TokenBucket(config.bwlimit) if config.bwlimit else None

    def _full(self, entry: Entry) -> bytes:
        return self.root + b"/" + entry.path

    async def upload(self, entry: Entry, key: str,
                     on_bytes: ProgressFunc | None = None) -> Uploaded:
        if entry.size >= large_buffers.THRESHOLD:
            large_buffers.unmap_when_freed()
        part_size = self.config.upload_part_size(entry.size)
        if part_size is not None:
            return await self._multipart(entry, key, part_size, on_bytes)
        held = await self.budget.acquire(entry.size + 1)
        try:
            hooks.fire("upload.before_read", entry.path)
            read = await asyncio.to_thread(partial(read_whole, md5=self.store.uses_md5),
                                           self._full(entry), entry)
            if self.bwlimit is not None:
                await self.bwlimit.take(len(read.data))
            stored = await self._put_checked(key, read.data, read.md5)
        finally:
            await self.budget.release(held)
        if on_bytes is not None:
            on_bytes(len(read.data))
        return Uploaded(read.entry, stored, len(read.data))

    def _confirmed(self, etag: str, expected: str) -> str | None:
        """The ETag to record for a write whose content's ETag must be `expected`
        (unquoted); None when the store's answer contradicts it. A store that answers
        without an ETag gets the one S3 computes for that content. A store that checks
        what it sends itself (`uses_md5` False: no MD5 was computed here) is taken at
        its word."""
        if not self.store.content_etags or not self.store.uses_md5:
            return etag
        got = etag.strip('"')
        if not got:
            return f'"{expected}"'
        return etag if got == expected else None

    async def _put_checked(self, key: str, data: bytes, md5: bytes) -> Stored:
        """PUT with the answer's ETag checked against the MD5 sent: a wrong one is
        tried once more, then the file fails (what is recorded must be true)."""
        for _ in range(2):
            async with self.requests:
                stored = await self.store.put(key, data, md5=md5)
            etag = self._confirmed(stored.etag, md5.hex())
            if etag is not None:
                return replace(stored, etag=etag)
        raise WrongETag(f"the store answered ETag {stored.etag} for a body whose MD5 is "
                        f"{md5.hex()} (twice); not recorded")

    async def _part_checked(self, key: str, upload_id: str, number: int, data: bytes,
                            md5: bytes) -> str:
        for _ in range(2):
            async with self.requests:
                etag = await self.store.upload_part(key, upload_id, number, data, md5)
            confirmed = self._confirmed(etag, md5.hex())
            if confirmed is not None:
                return confirmed
        raise WrongETag(f"the store answered ETag {etag} for part {number} whose MD5 is "
                        f"{md5.hex()} (twice); not recorded")

    async def _multipart(self, entry: Entry, key: str, part_size: int,
                         on_bytes: ProgressFunc | None) -> Uploaded:
        fd = await asyncio.to_thread(os.open, self._full(entry), _OPEN_FLAGS)
        try:
            before = os.fstat(fd)
            async with self.requests:
                upload_id = await self.store.create_multipart(key)
            try:
                if self.journal is not None:
                    await asyncio.to_thread(self.journal.add, key, upload_id)
                digest = xxhash.xxh3_128()
                parts: dict[int, str] = {}
                part_md5s: dict[int, bytes] = {}
                sent = 0

                async def send(number: int, data: bytes, held: int) -> None:
                    nonlocal sent
                    try:
                        md5 = b""
                        if self.store.uses_md5:
                            md5 = await asyncio.to_thread(lambda: hashlib.md5(data).digest())
                        part_md5s[number] = md5
                        if self.bwlimit is not None:
                            await self.bwlimit.take(len(data))
                        parts[number] = await self._part_checked(key, upload_id, number,
                                                                 data, md5)
                        sent += len(data)
                        if on_bytes is not None:
                            on_bytes(len(data))
                    finally:
                        await self.budget.release(held)

                try:
                    async with asyncio.TaskGroup() as group:
                        offset, number = 0, 1
                        while True:
                            if self.stop is not None and self.stop.requested:
                                raise Interrupted("stopped during a multipart upload")
                            held = await self.budget.acquire(part_size)
                            data = await asyncio.to_thread(os.pread, fd, part_size, offset)
                            if not data and number > 1:
                                await self.budget.release(held)
                                break
                            digest.update(data)
                            group.create_task(send(number, data, held))
                            offset += len(data)
                            number += 1
                            if len(data) < part_size:
                                break
                except BaseExceptionGroup as group:
                    # One part's failure is this file's failure, not the run's.
                    error = first_of(group, (BaycatError,))
                    if error is None:
                        raise
                    raise error from None
                after = os.fstat(fd)
                if not same_file_stat(before, after) or offset != after.st_size:
                    raise FileChanged("file changed while being uploaded")
                async with self.requests:
                    stored = await self.store.complete_multipart(
                        key, upload_id, sorted(parts.items()))
                expected = multipart_etag([md5 for _, md5 in sorted(part_md5s.items())]) \
                    if self.store.uses_md5 else ""  # unread then (`_confirmed`)
                etag = self._confirmed(stored.etag, expected)
                if etag is None:
                    raise WrongETag(f"the store answered ETag {stored.etag} for a multipart "
                                    f"upload whose ETag must be {expected}; not recorded")
                stored = replace(stored, etag=etag)
            except BaseException:
                async with self.requests:
                    await asyncio.shield(self._abort(key, upload_id))
                raise
            else:
                self._forget(upload_id)
        finally:
            os.close(fd)
        # racy: the remote entry keeps this stat's ctime and inode only when it can be
        # trusted later (differ.as_remote), as a hash's stat is (scan/hasher.py).
        return Uploaded(with_stat(entry, after, digest.digest(), racy=is_racy(after)), stored,
                        sent)

    async def _abort(self, key: str, upload_id: str) -> None:
        # Best effort: what could not be aborted now stays in the journal, and the next
        # run aborts it (or a lifecycle rule expires it).
        with contextlib.suppress(BaycatError):
            await self.store.abort_multipart(key, upload_id)
            self._forget(upload_id)

    def _forget(self, upload_id: str) -> None:
        if self.journal is not None:
            self.journal.remove(upload_id)


async def abort_leftover_uploads(store: ObjectStore, journal: UploadJournal) -> int:
    """Abort the multipart uploads an interrupted run left (those its journal still
    lists); returns how many were aborted. One that can't be aborted now is kept for
    the next run; one the store no longer knows is struck out."""
    aborted = 0
    for pending in await asyncio.to_thread(journal.pending):
        try:
            await store.abort_multipart(pending.key, pending.upload_id)
        except NotFound:
            pass  # completed, aborted or expired meanwhile
        except BaycatError:
            continue
        else:
            aborted += 1
        journal.remove(pending.upload_id)
    return aborted
