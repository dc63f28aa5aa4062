"""A plain directory as an object store: the embedded default that needs no server.

Objects are ordinary files (`DIR/a/b.txt` for key `a/b.txt`), so a backup is a browsable
mirror of the tree. Every write goes to a temporary file and is renamed into place, and
`put` verifies the MD5 it is given, like S3 does with Content-MD5. Conditional writes are
made atomic by an flock on `DIR/.baycat/store.lock`. ETags are quoted MD5 hex, as S3's.

Whatever the umask, objects are created 0600 and directories 0700 (private.py): a backup
never lets more users read a file than could before. Then, so that the backup is a real
mirror, a sync gives each data object and directory its source's permission bits and a
data object its mtime (`apply_metadata`): a file's bits without setuid, setgid and sticky;
a directory's plus the owner's rwx (so baycat can keep writing into a directory whose
source is read-only; the owner is the user running baycat, no one else gains access).
baycat's own state below `.baycat/` stays 0600/0700.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiofiles

from baycat.dirfd import open_node
from baycat.errors import BucketMissingError, RemoteError
from baycat.private import FILE_MODE, mkdir_private, open_private
from baycat.store.base import (
    NOT_MODIFIED,
    Fetched,
    NotFound,
    NotModified,
    ObjectInfo,
    PreconditionFailed,
    Stored,
    Upload,
    Version,
)

CHUNK = 1 << 20
_TMP_MARK = ".baycat-tmp-"


def _etag(md5: bytes) -> str:
    return f'"{md5.hex()}"'


class LocalStore:
    conditional_writes: bool | None = True
    content_etags = True
    uses_md5 = True

    def __init__(self, root: Path, create: bool = True) -> None:
        self.root = root
        self.create = create
        self.requests: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"file://{self.root}"

    @property
    def key_prefix(self) -> str:
        return ""

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise RemoteError(f"refusing unsafe object key {key!r}")
        return self.root.joinpath(*parts)

    async def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise BucketMissingError(f"{self.root} exists and is not a directory")
        if not self.root.exists():
            if not self.create:
                raise BucketMissingError(f"{self.root}: no such directory")
            try:
                mkdir_private(self.root, parents=True)  # another run may race us
            except OSError as exc:
                raise RemoteError(f"cannot create {self.root}: {exc.strerror}") from None

    async def get(self, key: str, *, if_none_match: str | None = None,
                  byte_range: tuple[int, int] | None = None,
                  version_id: str = "") -> Fetched | NotModified:
        self.requests["GET"] += 1
        return await asyncio.to_thread(self._get, key, if_none_match, byte_range)

    def _get(self, key: str, if_none_match: str | None,
             byte_range: tuple[int, int] | None) -> Fetched | NotModified:
        try:
            with open(self._path(key), "rb") as f:
                if byte_range is not None:
                    f.seek(byte_range[0])
                    data = f.read(byte_range[1] - byte_range[0])
                else:
                    data = f.read()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"{key}: not found") from None
        except IsADirectoryError:
            raise NotFound(f"{key}: is a directory") from None
        etag = _etag(hashlib.md5(data).digest()) if byte_range is None else ""
        if if_none_match is not None and etag == if_none_match:
            return NOT_MODIFIED
        return Fetched(data, etag)

    async def head(self, key: str) -> ObjectInfo:
        self.requests["HEAD"] += 1
        return await asyncio.to_thread(self._head, key)

    def _head(self, key: str) -> ObjectInfo:
        try:
            with open(self._path(key), "rb") as f:
                md5 = hashlib.file_digest(f, "md5").digest()
                size = os.fstat(f.fileno()).st_size
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"{key}: not found") from None
        return ObjectInfo(key, size, _etag(md5))

    async def stream(self, key: str, version_id: str = "") -> AsyncIterator[bytes]:
        self.requests["GET"] += 1
        # A stream is one call per chunk, the case aiofiles is made for (each read, and
        # the close, off the event loop).
        try:
            f = await aiofiles.open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"{key}: not found") from None
        try:
            while chunk := await f.read(8 * CHUNK):
                yield chunk
        finally:
            await f.close()

    def _write(self, path: Path, chunks: list[bytes] | bytes | bytearray,
               mode: int = FILE_MODE) -> None:
        tmp = path.with_name(f".{path.name[:200]}{_TMP_MARK}{secrets.token_hex(4)}")
        try:
            mkdir_private(path.parent, parents=True)
            with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_EXCL, mode), "wb") as f:
                if isinstance(chunks, (bytes, bytearray)):
                    f.write(chunks)
                else:
                    for chunk in chunks:
                        f.write(chunk)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            where = os.path.relpath(path, self.root)
            raise RemoteError(f"cannot write {where} in {self.root}: {exc.strerror}") from None
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise

    async def apply_metadata(self, key: str, mode: int, mtime_ns: int | None,
                             directory: bool) -> None:
        """The source's permission bits (and mtime) on the object or directory `key`
        (a directory is created if missing). Not a request; a no-op for baycat's own
        keys. Raises RemoteError when it can't be done (the object stays private)."""
        await asyncio.to_thread(self._apply_metadata, key, mode, mtime_ns, directory)

    def _apply_metadata(self, key: str, mode: int, mtime_ns: int | None,
                        directory: bool) -> None:
        if key.startswith(".baycat/") or key == ".baycat":
            return
        path = self._path(key)
        perm = (mode & 0o777) | 0o700 if directory else mode & 0o777
        try:
            if directory:
                mkdir_private(path, parents=True)
            fd, node = open_node(os.fsencode(path), None, directory)  # no link followed
            try:
                os.chmod(node, perm)
                if mtime_ns is not None:
                    os.utime(node, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)
        except OSError as exc:
            raise RemoteError(f"cannot set the mode of {key} in {self.root}: "
                              f"{exc.strerror}") from None

    def _lock(self) -> int:
        lock_path = self.root / ".baycat" / "store.lock"
        mkdir_private(lock_path.parent, parents=True)
        fd = open_private(lock_path, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _put(self, key: str, data: bytes | bytearray, md5: bytes, if_match: str | None,
             if_none_match_any: bool) -> Stored:
        actual = hashlib.md5(data).digest()
        if actual != md5:
            raise RemoteError(f"{key}: body does not match its MD5 (BadDigest)")
        path = self._path(key)
        if if_match is None and not if_none_match_any:
            self._write(path, data)
            return Stored(_etag(actual))
        fd = self._lock()
        try:
            try:
                current: str | None = _etag(hashlib.md5(path.read_bytes()).digest())
            except FileNotFoundError:
                current = None
            if (if_none_match_any and current is not None) or (
                    if_match is not None and current != if_match):
                raise PreconditionFailed(f"{key}: changed by another writer")
            self._write(path, data)
            # The commit point of a backup: make it and everything before it durable.
            os.sync()
        finally:
            os.close(fd)
        return Stored(_etag(actual))

    async def put(self, key: str, data: bytes | bytearray, *, md5: bytes,
                  if_match: str | None = None, if_none_match_any: bool = False) -> Stored:
        self.requests["PUT"] += 1
        return await asyncio.to_thread(self._put, key, data, md5, if_match, if_none_match_any)

    def _parts_dir(self, upload_id: str) -> Path:
        return self.root / ".baycat" / "multipart" / upload_id

    async def create_multipart(self, key: str) -> str:
        self.requests["POST"] += 1
        self._path(key)
        upload_id = secrets.token_hex(8)
        await asyncio.to_thread(mkdir_private, self._parts_dir(upload_id), parents=True)
        return upload_id

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes,
                          md5: bytes) -> str:
        self.requests["PUT"] += 1
        if hashlib.md5(data).digest() != md5:
            raise RemoteError(f"{key}: part {number} does not match its MD5 (BadDigest)")
        await asyncio.to_thread(self._write, self._parts_dir(upload_id) / str(number), data)
        return _etag(md5)

    async def complete_multipart(self, key: str, upload_id: str,
                                 parts: list[tuple[int, str]]) -> Stored:
        self.requests["POST"] += 1
        return await asyncio.to_thread(self._complete, key, upload_id, parts)

    def _complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> Stored:
        directory = self._parts_dir(upload_id)
        digests = b"".join(bytes.fromhex(etag.strip('"')) for _, etag in parts)
        path = self._path(key)
        mkdir_private(path.parent, parents=True)
        tmp = path.with_name(f".{path.name[:200]}{_TMP_MARK}{secrets.token_hex(4)}")
        with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_EXCL), "wb") as out:
            for number, _ in parts:
                with open(directory / str(number), "rb") as part:
                    shutil.copyfileobj(part, out, CHUNK)
        os.replace(tmp, path)
        shutil.rmtree(directory, ignore_errors=True)
        return Stored(f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"')

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        self.requests["DELETE"] += 1
        await asyncio.to_thread(shutil.rmtree, self._parts_dir(upload_id), True)

    async def copy(self, source_key: str, key: str, *, if_match: str | None = None,
                   source_version: str = "") -> Stored:
        self.requests["COPY"] += 1
        return await asyncio.to_thread(self._copy, source_key, key, if_match)

    def _copy(self, source_key: str, key: str, if_match: str | None) -> Stored:
        digest = hashlib.md5()
        chunks: list[bytes] = []
        try:
            with open(self._path(source_key), "rb") as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
                    chunks.append(chunk)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"{source_key}: not found") from None
        etag = _etag(digest.digest())
        if if_match is not None and etag != if_match:
            raise PreconditionFailed(f"{source_key}: changed since it was recorded")
        self._write(self._path(key), chunks)
        return Stored(etag)

    async def delete_many(self, keys: list[str]) -> list[tuple[str, str]]:
        self.requests["POST"] += 1 + (len(keys) - 1) // 1000 if keys else 0
        return await asyncio.to_thread(self._delete_many, keys)

    def _delete_many(self, keys: list[str]) -> list[tuple[str, str]]:
        failed: list[tuple[str, str]] = []
        for key in keys:
            try:
                self._path(key).unlink(missing_ok=True)
            except NotADirectoryError:
                pass  # below a file: no such key either
            except OSError as exc:
                failed.append((key, exc.strerror or str(exc)))
        return failed

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        self.requests["LIST"] += 1
        infos = await asyncio.to_thread(self._list, prefix)
        for info in infos:
            yield info

    def _list(self, prefix: str) -> builtins.list[ObjectInfo]:
        out: builtins.list[ObjectInfo] = []
        # Walk from the prefix's directory: listing .baycat/packs/ must not read (and
        # MD5) every backed-up file.
        start = os.path.join(self.root, prefix.rpartition("/")[0])
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            for name in sorted(filenames):
                if _TMP_MARK in name:
                    continue
                full = os.path.join(dirpath, name)
                key = os.path.relpath(full, self.root)
                if not key.startswith(prefix) or key.startswith(".baycat/store.lock"):
                    continue
                with open(full, "rb") as f:
                    md5 = hashlib.file_digest(f, "md5").digest()
                    st = os.fstat(f.fileno())
                out.append(ObjectInfo(key, st.st_size, _etag(md5), st.st_mtime_ns))
        return out

    async def list_versions(self, prefix: str = "") -> AsyncIterator[Version]:
        return  # one copy of each file: no versions to list
        yield  # pragma: no cover - makes this an async generator

    async def delete_versions(self, versions: builtins.list[tuple[str, str]]
                              ) -> builtins.list[tuple[str, str, str]]:
        return [(key, version, "a local directory keeps no versions")
                for key, version in versions]

    async def list_uploads(self) -> AsyncIterator[Upload]:
        self.requests["LIST"] += 1
        for upload in await asyncio.to_thread(self._uploads):
            yield upload

    def _uploads(self) -> builtins.list[Upload]:
        # The parts directory does not record the key (aborting needs only the id); its
        # mtime is when the last part arrived, which is what "older than" should mean.
        try:
            names = sorted(os.listdir(self.root / ".baycat" / "multipart"))
        except (FileNotFoundError, NotADirectoryError):
            return []
        out: builtins.list[Upload] = []
        for name in names:
            try:
                stat = os.stat(self._parts_dir(name), follow_symlinks=False)
            except OSError:
                continue
            out.append(Upload("", name, stat.st_mtime_ns))
        return out

    async def remove_temp_files(self, before_ns: int, *, dry_run: bool = False
                                ) -> builtins.list[tuple[str, int]]:
        self.requests["LIST"] += 1
        return await asyncio.to_thread(self._remove_temp_files, before_ns, dry_run)

    def _remove_temp_files(self, before_ns: int, dry_run: bool
                           ) -> builtins.list[tuple[str, int]]:
        """Temp files of writes that a killed process left (`_write` removes its own on
        any error it sees). A young one may be a running sync's write in progress."""
        removed: builtins.list[tuple[str, int]] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(filenames):
                if _TMP_MARK not in name:
                    continue
                full = os.path.join(dirpath, name)
                try:
                    stat = os.stat(full, follow_symlinks=False)
                    if stat.st_mtime_ns >= before_ns:
                        continue
                    if not dry_run:
                        os.unlink(full)
                except OSError:
                    continue
                removed.append((os.path.relpath(full, self.root), stat.st_size))
        return removed

    async def versioning(self) -> str | None:
        return None  # a directory keeps one copy of each file: nothing to turn on

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

