"""Writing a restore into DST: directories, files, symlinks and their metadata.

Each download goes to a temporary file beside its target, is checked against the
manifest's xxh3-128, gets its mode, owner (as root) and mtime through its own fd, and is
then renamed into place. Directory metadata is set last, deepest first.

DST is not trusted: another process may swap a directory for a symlink while the restore
runs. So nothing below DST is ever written by path: every create, rename, chmod, chown
and utime goes through directory fds opened O_NOFOLLOW from DST down (dirfd.py), and
metadata is set through an fd of the file or directory itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from baycat import hooks
from baycat.dirfd import DirFds, open_node
from baycat.entry import DIR, FILE, SYMLINK, Entry, as_text
from baycat.errors import BaycatError, RemoteError
from baycat.manifest.keys import object_key, same_etag
from baycat.ops.summary import SyncSummary
from baycat.progress import ActionFunc, Notice, NoticeFunc, Progress
from baycat.store.base import NotModified, ObjectInfo, ObjectStore

SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID
# Objects up to this size are fetched whole (one GET, one write) rather than streamed.
SMALL_DOWNLOAD = 8 << 20


@dataclass(frozen=True, slots=True)
class RestoreOptions:
    transfers: int = 32
    pool_size: int | None = None
    dry_run: bool = False
    keep_setuid: bool = False  # restore setuid/setgid bits (off: a backup could plant them)
    include_deleted: bool = False  # also restore entries kept as deleted
    # --path: gitignore-style patterns (restore_select.py); () = all
    paths: tuple[str, ...] = field(default_factory=tuple)
    delete: bool = False  # remove from DST what the backup doesn't have
    at_ns: int | None = None  # restore the generation current at this time (ns)


class RestoreWriter:
    """Lays out one restore's entries below DST, in manifest order (`plan`), with
    downloads done by `worker`s; directory metadata last (`finish_dirs`)."""

    def __init__(self, store: ObjectStore, dest: Path, fds: DirFds, options: RestoreOptions,
                 progress: Progress, warn: NoticeFunc, on_action: ActionFunc | None) -> None:
        self.store = store
        self.dest = dest
        self.fds = fds  # every write below DST goes through these (see dirfd.py)
        self.options = options
        self.progress = progress
        self.warn = warn
        self.on_action = on_action
        self.summary = SyncSummary(source=store.url, destination=str(dest),
                                   dry_run=options.dry_run)
        self.as_root = os.geteuid() == 0
        self.queue: asyncio.Queue[Entry | None] = asyncio.Queue(options.transfers * 4)
        self.dirs: list[Entry] = []  # directory metadata, applied at the end
        self.local_changes: dict[bytes, Entry | None] = {}
        # --at without versions: the store's objects now, and the generation's time
        self.listing: dict[str, ObjectInfo] | None = None
        self.generation = ""
        self.gone_since = 0

    def fail(self, path: bytes, message: str, size: int = 0) -> None:
        self.summary.fail(as_text(path), message, size)
        self.warn(Notice(path, f"not restored: {message}"))

    def report(self, what: str, path: bytes, size: int) -> None:
        if self.on_action is not None:
            self.on_action(what, as_text(path), size)

    def wanted(self, remote: Entry) -> bool:
        """Is `remote` part of the tree restored (--path aside: restore_select.py)?"""
        return not remote.deleted_ns or self.options.include_deleted

    # ---- planning (in path order) -------------------------------------------------------

    async def plan(self, remote: Entry, local: Entry | None) -> None:
        path = remote.path
        if not self.options.dry_run:
            try:
                self.fds.check(path)
            except OSError as exc:
                self.fail(path, exc.strerror or str(exc))
                return
        if remote.kind == DIR:
            if local is not None and local.kind != DIR:
                self.fail(path, "exists locally and is not a directory")
                return
            if local is None and not self.options.dry_run:
                try:
                    with self.fds.parent(path) as (dir_fd, name):
                        os.mkdir(name, 0o700, dir_fd=dir_fd)
                except OSError as exc:
                    self.fail(path, f"cannot create directory: {exc.strerror}")
                    return
            self.dirs.append(remote)
            return
        if local is not None and local.kind == DIR:
            self.fail(path, "a directory is in the way")
            return
        if remote.kind == FILE and local is not None and local.kind == FILE \
                and local.xxh == remote.xxh and local.size == remote.size:
            if self._meta_differs(remote, local):
                self.refresh_meta(remote)
            else:
                self.summary.unchanged.add(remote.size)
            return
        if remote.kind == SYMLINK:
            if local is not None and local.kind == SYMLINK and local.target == remote.target:
                self.summary.unchanged.add(0)
                return
            self.make_symlink(remote)
            return
        if self.listing is not None and not remote.version_id and not self.still_there(remote):
            return
        self.progress.transfer.total_files += 1
        self.progress.transfer.total_bytes += remote.size
        await self.queue.put(remote)

    def still_there(self, remote: Entry) -> bool:
        """--at, no VersionId: is the object still the one that generation recorded?"""
        assert self.listing is not None
        info = self.listing.get(object_key(remote))
        if info is None:
            problem = "removed from the store"
        elif info.size != remote.size or same_etag(remote.etag, info.etag) is False:
            problem = "overwritten"
        else:
            return True
        self.gone_since += 1
        self.fail(remote.path, f"{problem} since {self.generation}, and no earlier version "
                               "of it is kept", remote.size)
        return False

    def _mode(self, remote: Entry) -> int:
        mode = stat.S_IMODE(remote.mode)
        return mode if self.options.keep_setuid else mode & ~SPECIAL_BITS

    def _meta_differs(self, remote: Entry, local: Entry) -> bool:
        return (stat.S_IMODE(local.mode) != self._mode(remote) or local.mtime_ns != remote.mtime_ns
                or (self.as_root and (local.uid, local.gid) != (remote.uid, remote.gid)))

    def set_meta(self, node: int | bytes, remote: Entry) -> None:
        """Owner (as root), mode and mtime of a file or directory, given an fd of it (or
        its /proc/self/fd link: dirfd.open_node): never through a path."""
        if self.as_root:  # before the mode: chown clears setuid/setgid bits
            os.chown(node, remote.uid, remote.gid)
        os.chmod(node, self._mode(remote))
        os.utime(node, ns=(remote.mtime_ns, remote.mtime_ns))

    def _set_meta_at(self, path: bytes, remote: Entry, directory: bool) -> None:
        with self.fds.parent(path) as (dir_fd, name):
            fd, node = open_node(name, dir_fd, directory)
            try:
                self.set_meta(node, remote)
            finally:
                os.close(fd)

    def refresh_meta(self, remote: Entry) -> None:
        """A file already restored whose owner, mode or mtime differ."""
        if not self.options.dry_run:
            try:
                self._set_meta_at(remote.path, remote, directory=False)
            except OSError as exc:
                self.fail(remote.path, f"cannot set metadata: {exc.strerror}")
                return
        self.summary.metadata.add(0)

    def make_symlink(self, remote: Entry) -> None:
        self.report("symlink", remote.path, 0)
        if self.options.dry_run:
            self.summary.downloaded.add(0)
            return
        hooks.fire("restore.before_write", remote.path)
        try:
            with self.fds.parent(remote.path) as (dir_fd, name):
                tmp = _tmp_name(name)
                try:
                    os.symlink(remote.target, tmp, dir_fd=dir_fd)
                    # A symlink has no mode of its own; owner and mtime are the link's.
                    if self.as_root:
                        os.chown(tmp, remote.uid, remote.gid, dir_fd=dir_fd,
                                 follow_symlinks=False)
                    os.utime(tmp, ns=(remote.mtime_ns, remote.mtime_ns), dir_fd=dir_fd,
                             follow_symlinks=False)
                    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                except BaseException:
                    _unlink(tmp, dir_fd)
                    raise
        except OSError as exc:
            self.fail(remote.path, f"cannot create symlink: {exc.strerror}")
            return
        self.summary.downloaded.add(0)
        self.local_changes[remote.path] = None  # rescanned next time

    # ---- downloads ----------------------------------------------------------------------

    async def worker(self) -> None:
        while (remote := await self.queue.get()) is not None:
            try:
                if not self.options.dry_run:
                    await self.download(remote)
                self.summary.downloaded.add(remote.size)
                self.report("download", remote.path, remote.size)
            except BaycatError as exc:
                self.fail(remote.path, str(exc), remote.size)
            except OSError as exc:
                self.fail(remote.path, exc.strerror or str(exc), remote.size)
            finally:
                self.progress.transfer.files += 1

    def _mismatch(self) -> RemoteError:
        if self.generation:
            return RemoteError(f"the object changed since {self.generation} "
                               "(overwritten, and no version of it to read)")
        return RemoteError("downloaded bytes do not match the manifest's hash")

    @staticmethod
    def _recorded(remote: Entry, st: os.stat_result) -> Entry:
        """DST's stat-cache entry for a file just restored (`st`: its fstat)."""
        return remote._replace(
            size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, ino=st.st_ino,
            dev=st.st_dev, mode=st.st_mode, uid=st.st_uid, gid=st.st_gid, etag="", key="",
            version_id="", deleted_ns=0, flags=0)

    def _finish_file(self, fd: int, remote: Entry, dir_fd: int, tmp: bytes,
                     name: bytes) -> Entry:
        """Dress the written temp file through its fd, rename it into place, and return
        its stat-cache entry (fstat after the rename, which changes its ctime)."""
        self.set_meta(fd, remote)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return self._recorded(remote, os.fstat(fd))

    def _write_small(self, remote: Entry, data: bytes) -> Entry:
        """Blocking: check, write, dress and rename a small file in one thread hop."""
        if len(data) != remote.size or xxhash.xxh3_128_digest(data) != remote.xxh:
            raise self._mismatch()
        hooks.fire("restore.before_write", remote.path)
        with self.fds.parent(remote.path) as (dir_fd, name):
            tmp = _tmp_name(name)
            fd = os.open(tmp, _TMP_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                _write_all(fd, data)
                return self._finish_file(fd, remote, dir_fd, tmp, name)
            except BaseException:
                _unlink(tmp, dir_fd)
                raise
            finally:
                os.close(fd)

    async def download(self, remote: Entry) -> None:
        if remote.size <= SMALL_DOWNLOAD:
            # One GET of the whole body and one thread hop: per-file overhead is what
            # limits a restore of many small files.
            got = await self.store.get(object_key(remote), version_id=remote.version_id)
            assert not isinstance(got, NotModified)
            entry = await asyncio.to_thread(self._write_small, remote, got.data)
            self.progress.transfer.bytes += len(got.data)
            self.local_changes[remote.path] = entry
            return
        hooks.fire("restore.before_write", remote.path)
        digest = xxhash.xxh3_128()
        size = 0
        # The directory's fd stays pinned for the whole download: the rename at the end
        # goes into the directory the temp file was created in, whatever its name is then.
        with self.fds.parent(remote.path) as (dir_fd, name):
            tmp = _tmp_name(name)
            fd = os.open(tmp, _TMP_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                async for chunk in self.store.stream(object_key(remote), remote.version_id):
                    digest.update(chunk)
                    size += len(chunk)
                    await asyncio.to_thread(_write_all, fd, chunk)
                    self.progress.transfer.bytes += len(chunk)
                if size != remote.size or digest.digest() != remote.xxh:
                    raise self._mismatch()
                self.local_changes[remote.path] = self._finish_file(fd, remote, dir_fd, tmp,
                                                                    name)
            except BaseException:
                _unlink(tmp, dir_fd)
                raise
            finally:
                os.close(fd)

    def finish_dirs(self) -> None:
        """Directory metadata, children before parents. Each directory is opened
        O_NOFOLLOW|O_DIRECTORY below its parent's fd and set through that fd: a directory
        swapped for a symlink since it was made fails here and the link's target is never
        touched."""
        for remote in reversed(self.dirs):
            hooks.fire("restore.before_dir_metadata", remote.path)
            try:
                self._set_meta_at(remote.path, remote, directory=True)
            except OSError as exc:
                self.fail(remote.path, f"cannot set directory metadata: {exc.strerror}")


_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW


def _tmp_name(name: bytes) -> bytes:
    """A temp file's name beside `name`, in the same directory."""
    return b"." + name[:200] + b".baycat-tmp-" + secrets.token_hex(4).encode()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _unlink(name: bytes, dir_fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
