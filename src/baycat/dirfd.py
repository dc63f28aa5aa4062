"""Directory descriptors below a root, so that no write can be redirected by a symlink.

A path (`DST/d/x`) is looked up anew by every system call: a directory swapped for a
symlink between a check and a write sends the write wherever the link points (TOCTOU).
`DirFds` opens the root once and every directory below it relative to its parent's fd,
with O_NOFOLLOW|O_DIRECTORY, so an fd is the directory that was checked whatever later
happens to its name. Writes are then *at() calls on a parent fd with one name
(`os.open(name, ..., dir_fd=fd)`, `os.mkdir(name, dir_fd=fd)`, `os.replace(a, b,
src_dir_fd=fd, dst_dir_fd=fd)`), and metadata is set through an fd of the node itself
(`open_node`, then fchmod/fchown/futimens).

    DirFds(DST) ── fd(DST) ─"d"─► fd(d) ─"e"─► fd(d/e)        cache: LRU of `capacity`

Bound: at most `capacity` cached fds, plus the ones callers hold pinned at that moment
(one per write in flight). A restore works in path order, so the same few parents are
reused and one file costs one openat (its temp file) plus a dict lookup. Thread-safe:
restore writes small files from worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator

# O_PATH: no read permission needed to use a directory as dir_fd (only search).
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOT_REAL = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)

PARENT_MISSING = "a parent directory is missing or is not a real directory"


class UnsafeParent(OSError):
    """A directory on the way to a path is gone, a symlink, or not a directory."""

    def __init__(self, code: int) -> None:
        super().__init__(code, PARENT_MISSING)


class NotReal(OSError):
    """The node at a name is not of the kind expected (a symlink or other file is there)."""


def open_node(name: bytes, dir_fd: int | None, directory: bool) -> tuple[int, int | bytes]:
    """Open the directory or regular file `name` itself (never through a symlink) to set
    its metadata. Returns (fd, handle): pass `handle` to os.chmod, os.chown and os.utime,
    and close `fd`. The handle is the fd; or, when `name` can't be opened for reading (a
    directory without read permission), the /proc/self/fd link of an O_PATH fd, which
    names exactly the inode opened (an O_PATH fd can't be fchmod'ed).
    Raises NotReal when `name` is a symlink or not of the expected kind."""
    # O_NONBLOCK: a FIFO swapped in for a file must not block the open.
    flags = os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if directory else os.O_NONBLOCK)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | flags, dir_fd=dir_fd)
            handle: int | bytes = fd
        except PermissionError:
            fd = os.open(name, os.O_PATH | flags, dir_fd=dir_fd)
            handle = b"/proc/self/fd/%d" % fd
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _not_real(directory) from None
        raise
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)):
        os.close(fd)
        raise _not_real(directory)
    return fd, handle


def _not_real(directory: bool) -> NotReal:
    what = "a real directory" if directory else "a regular file"
    return NotReal(errno.ENOTDIR if directory else errno.EINVAL,
                   f"is not {what} (a symlink or another kind of file is in its place)")


class DirFds:
    """Open fds of the directories below `root`, each opened relative to its parent.

    `parent(path)` pins the fd of `path`'s directory for the `with` block; a pinned fd is
    never closed by the cache. `close()` closes them all (call it also on error).
    """

    def __init__(self, root: bytes, capacity: int = 128) -> None:
        self._root = [os.open(root, _DIR_FLAGS), 0]  # [fd, pins]; never evicted
        self._capacity = capacity
        self._open: OrderedDict[bytes, list[int]] = OrderedDict()  # rel -> [fd, pins]
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def parent(self, path: bytes) -> Iterator[tuple[int, bytes]]:
        """(fd of the directory holding `path`, the last name of `path`). Raises
        UnsafeParent when a directory on the way is not a real one."""
        head, _, name = path.rpartition(b"/")
        with self._lock:
            fd = self._acquire(head)
        try:
            yield fd, name
        finally:
            with self._lock:
                self._release(head)

    def check(self, path: bytes) -> None:
        """Raise UnsafeParent unless every directory above `path` is a real one."""
        with self.parent(path):
            pass

    def _acquire(self, rel: bytes) -> int:
        if self._closed:
            raise OSError(errno.EBADF, "the restore's directory fds are closed")
        slot = self._open.get(rel) if rel else self._root
        if slot is not None:
            if rel:
                self._open.move_to_end(rel)
            slot[1] += 1
            return slot[0]
        head, _, name = rel.rpartition(b"/")
        parent = self._acquire(head)
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno in _NOT_REAL:
                raise UnsafeParent(exc.errno) from None
            raise
        finally:
            self._release(head)
        self._open[rel] = [fd, 1]
        self._evict()
        return fd

    def _release(self, rel: bytes) -> None:
        slot = self._open[rel] if rel else self._root  # pinned, so never evicted
        slot[1] -= 1
        if self._closed and slot[1] == 0:  # close() left it open for this last user
            os.close(slot[0])
            if rel:
                del self._open[rel]

    def _evict(self) -> None:
        # Least recently used first; pinned ones stay (the cache may then run over).
        while len(self._open) > self._capacity:
            unpinned = next((rel for rel, slot in self._open.items() if slot[1] == 0), None)
            if unpinned is None:
                return
            os.close(self._open.pop(unpinned)[0])

    def close(self) -> None:
        """Close every fd. One still pinned (by a worker thread that a cancelled restore
        could not stop) is closed by its last release instead: closing it now would let
        the next open reuse its number under that thread's write."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for rel in [rel for rel, slot in self._open.items() if slot[1] == 0]:
                os.close(self._open.pop(rel)[0])
            if self._root[1] == 0:
                os.close(self._root[0])
