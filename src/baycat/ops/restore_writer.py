"""Writing a restore into DST: every kind of file, and its metadata.

Each download goes to a temporary file beside its target, is checked against the
manifest's xxh3-128, gets its owner (as root), mode, extended attributes and mtime
through its own fd, and is then renamed into place; a sparse file is written with holes
(all-zero blocks are skipped). Symlinks, FIFOs and device nodes (as root) are made under
a temporary name and renamed the same way. Hardlinks are made after all downloads (a
link names its first path's restored file), then directory metadata, deepest first (so
every directory's mtime is set after its children), then DST's own (the root's `top`).

DST is not trusted: another process may swap a directory for a symlink while the restore
runs. So nothing below DST is ever written by path: every create, rename, chmod, chown
and utime goes through directory fds opened O_NOFOLLOW from DST down (dirfd.py), and
metadata is set through an fd of the file or directory itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from baycat import hooks, xattrs
from baycat.dirfd import DirFds, open_node
from baycat.entry import (
    DEVICES,
    DIR,
    FIFO,
    FILE,
    FLAG_LINKED,
    FLAG_SPARSE,
    HARDLINK,
    SYMLINK,
    TYPE_OF_KIND,
    Entry,
    as_text,
)
from baycat.errors import BaycatError, RemoteError
from baycat.manifest.keys import object_key, same_etag
from baycat.manifest.root import TopDir
from baycat.ops.summary import SyncSummary
from baycat.progress import ActionFunc, Notice, NoticeFunc, Progress
from baycat.store.base import NotModified, ObjectInfo, ObjectStore

SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID
# Objects up to this size are fetched whole (one GET, one write) rather than streamed.
SMALL_DOWNLOAD = 8 << 20
# A sparse file's holes are found in blocks of this size (the usual filesystem block).
HOLE_BLOCK = 4096
_ZERO_BLOCK = bytes(HOLE_BLOCK)


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
    xattrs: bool = True  # restore extended attributes (--no-xattrs: leave them)


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
        self.links: list[tuple[Entry, Entry | None]] = []  # hardlinks, made after downloads
        self.relinked: set[bytes] = set()  # linked files written anew: relink their names
        self.top: TopDir | None = None  # DST's own metadata, applied last
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
                self.refresh_meta(remote, local)
            else:
                self.summary.unchanged.add(remote.size)
            return
        if remote.kind == SYMLINK:
            if local is not None and local.kind == SYMLINK and local.target == remote.target:
                self.summary.unchanged.add(0)
                return
            self.make_symlink(remote)
            return
        if remote.kind == HARDLINK:
            self.links.append((remote, local))
            return
        if remote.kind != FILE:
            self.make_special(remote, local)
            return
        if remote.flags & FLAG_LINKED:
            self.relinked.add(remote.path)
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
                or (self.as_root and (local.uid, local.gid) != (remote.uid, remote.gid))
                or (self.options.xattrs and local.xattrs != remote.xattrs))

    def set_meta(self, node: int | bytes, remote: Entry, current_xattrs: bytes = b"") -> None:
        """Owner (as root), mode, extended attributes and mtime of a file or directory,
        given an fd of it (or its /proc/self/fd link: dirfd.open_node): never through a
        path. `current_xattrs`: what it has now (a file just written has none)."""
        if self.as_root:  # before the mode: chown clears setuid/setgid bits
            os.chown(node, remote.uid, remote.gid)
        os.chmod(node, self._mode(remote))
        # After chown (which drops security.capability) and chmod (an ACL's entries for
        # owner, group and other are the mode bits: they agree with the recorded mode).
        self.set_xattrs(node, remote.path, remote.xattrs, current_xattrs)
        os.utime(node, ns=(remote.mtime_ns, remote.mtime_ns))

    def set_xattrs(self, node: int | bytes, path: bytes, blob: bytes, current: bytes,
                   follow_symlinks: bool = True) -> None:
        """Set them; what the filesystem or the kernel refuses is reported for this path
        (in the summary's notices), and the rest of the restore goes on."""
        if not self.options.xattrs or blob == current:
            return
        refused = xattrs.apply(node, blob, current, follow_symlinks)
        if refused:
            message = "extended attributes not restored: " + "; ".join(refused)
            self.summary.notices.append(f"{as_text(path)}: {message}")
            self.warn(Notice(path, message, failure=False))

    def _set_meta_at(self, path: bytes, remote: Entry, directory: bool,
                     current_xattrs: bytes = b"") -> None:
        with self.fds.parent(path) as (dir_fd, name):
            fd, node = open_node(name, dir_fd, directory)
            try:
                self.set_meta(node, remote, current_xattrs)
            finally:
                os.close(fd)

    def refresh_meta(self, remote: Entry, local: Entry | None = None) -> None:
        """A file already restored whose owner, mode, xattrs or mtime differ."""
        if not self.options.dry_run:
            try:
                self._set_meta_at(remote.path, remote, directory=False,
                                  current_xattrs=local.xattrs if local is not None else b"")
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
                    if remote.xattrs:  # the link's own: through its directory's fd
                        self.set_xattrs(b"/proc/self/fd/%d/%s" % (dir_fd, tmp), remote.path,
                                        remote.xattrs, b"", follow_symlinks=False)
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

    def make_special(self, remote: Entry, local: Entry | None) -> None:
        """A FIFO or a device node (devices only as root: mknod needs it)."""
        if local is not None and local.kind == remote.kind and local.rdev == remote.rdev:
            if self._meta_differs(remote, local):
                self._special(remote, local)
            else:
                self.summary.unchanged.add(0)
            return
        if remote.kind in DEVICES and not self.as_root:
            message = "device node not restored: only root can create one"
            self.summary.notices.append(f"{as_text(remote.path)}: {message}")
            self.warn(Notice(remote.path, message, failure=False))
            return
        self._special(remote, None)

    def _special(self, remote: Entry, local: Entry | None) -> None:
        """Make the node under a temporary name (or, `local`: dress the one there)."""
        self.report("special" if local is None else "metadata", remote.path, 0)
        if not self.options.dry_run:
            hooks.fire("restore.before_write", remote.path)
            try:
                with self.fds.parent(remote.path) as (dir_fd, name):
                    self._make_node(remote, local, dir_fd, name)
            except OSError as exc:
                self.fail(remote.path, f"cannot create {_KIND_NAMES[remote.kind]}: "
                                       f"{exc.strerror}")
                return
        (self.summary.downloaded if local is None else self.summary.metadata).add(0)
        self.local_changes[remote.path] = None  # rescanned next time

    def _make_node(self, remote: Entry, local: Entry | None, dir_fd: int,
                   name: bytes) -> None:
        target = name if local is not None else _tmp_name(name)
        file_type = TYPE_OF_KIND[remote.kind]
        if local is None:
            if remote.kind == FIFO:
                os.mkfifo(target, 0o600, dir_fd=dir_fd)
            else:
                os.mknod(target, 0o600 | file_type, remote.rdev, dir_fd=dir_fd)
        try:
            # Dressed through an O_PATH fd of the node itself (checked to be of its kind):
            # never through a name that could have been swapped for a symlink.
            fd = os.open(target, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                if stat.S_IFMT(os.fstat(fd).st_mode) != file_type:
                    raise OSError(errno.EINVAL, "another kind of file is in its place")
                self.set_meta(b"/proc/self/fd/%d" % fd, remote,
                              local.xattrs if local is not None else b"")
            finally:
                os.close(fd)
            if local is None:
                os.replace(target, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            if local is None:
                _unlink(target, dir_fd)
            raise

    def finish_links(self) -> None:
        """Hardlinks, once every file they name is written: each is a new name of its
        first path's file (both reached through DST's directory fds, the link never
        followed), renamed over whatever is at its own path."""
        for remote, local in self.links:
            if (local is not None and local.kind == HARDLINK and local.link == remote.link
                    and remote.link not in self.relinked):
                self.summary.unchanged.add(0)
                continue
            self.report("hardlink", remote.path, 0)
            if not self.options.dry_run:
                try:
                    self._link(remote)
                except OSError as exc:
                    self.fail(remote.path, f"cannot create hardlink to "
                                           f"{as_text(remote.link)}: {exc.strerror}")
                    continue
            self.summary.downloaded.add(0)
            self.local_changes[remote.path] = None  # rescanned next time
        self.links = []

    def _link(self, remote: Entry) -> None:
        with self.fds.parent(remote.link) as (src_fd, src_name), \
                self.fds.parent(remote.path) as (dir_fd, name):
            tmp = _tmp_name(name)
            os.link(src_name, tmp, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            try:
                if not stat.S_ISREG(os.stat(tmp, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    raise OSError(errno.EINVAL, f"{as_text(remote.link)} is not a regular file")
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                _unlink(tmp, dir_fd)
                raise

    def finish_top(self) -> None:
        """DST's own owner, mode, xattrs and mtime (format 2 roots), after everything
        below it was written."""
        top = self.top
        if top is None or self.options.dry_run:
            return
        remote = Entry(b".", DIR, 0, top.mtime_ns, 0, 0, 0, top.mode, top.uid, top.gid, b"",
                       b"", "", "", "", 0, 0, 0, b"", top.xattrs)
        try:
            with self.fds.parent(b".") as (dir_fd, name):
                fd, node = open_node(name, dir_fd, directory=True)
                try:
                    current = xattrs.read(fd) if self.options.xattrs else b""
                    self.set_meta(node, remote, current)
                finally:
                    os.close(fd)
        except OSError as exc:
            self.fail(b".", f"cannot set the metadata of {self.dest}: {exc.strerror}")

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
                if remote.flags & FLAG_SPARSE:
                    _write_sparse(fd, data)
                    os.ftruncate(fd, remote.size)  # a hole at the end
                else:
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
            write = _write_sparse if remote.flags & FLAG_SPARSE else _write_all
            try:
                async for chunk in self.store.stream(object_key(remote), remote.version_id):
                    digest.update(chunk)
                    size += len(chunk)
                    await asyncio.to_thread(write, fd, chunk)
                    self.progress.transfer.bytes += len(chunk)
                if size != remote.size or digest.digest() != remote.xxh:
                    raise self._mismatch()
                if write is _write_sparse:
                    os.ftruncate(fd, size)  # a hole at the end
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


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_sparse(fd: int, data: bytes) -> None:
    """Write `data` at the fd's offset, skipping (seeking over) every all-zero block, so
    the filesystem leaves holes there. Callers ftruncate to the size at the end: a
    trailing hole is not written at all."""
    view = memoryview(data)
    start = 0  # of the run of non-zero blocks not yet written
    for pos in range(0, len(view), HOLE_BLOCK):
        if view[pos:pos + HOLE_BLOCK] == _ZERO_BLOCK[:len(view) - pos]:
            if start < pos:
                _write_all(fd, view[start:pos])
            os.lseek(fd, min(HOLE_BLOCK, len(view) - pos), os.SEEK_CUR)
            start = pos + HOLE_BLOCK
    if start < len(view):
        _write_all(fd, view[start:])


_KIND_NAMES = {FIFO: "FIFO", "c": "character device", "b": "block device"}


def _unlink(name: bytes, dir_fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
