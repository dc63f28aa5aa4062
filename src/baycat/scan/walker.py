"""The walker: a sorted, depth-first walk of a tree, yielding raw stat results.

Blocking code: the engine runs `next()` of `walk()` in a thread. Each directory's names
are sorted (bytes) and a directory's children come right after it, which is exactly the
`entry.path_key` order. Symlinks are recorded as symlinks and never followed; FIFOs and
devices are recorded (never opened); sockets are skipped with a remark (nothing of one can
be restored); unreadable directories are reported and
the walk goes on: such a directory is yielded with `incomplete=True`, which tells the
differ that its children were not seen (not that they were deleted).

Mount points: a directory whose `st_dev` differs from its parent's is the root of another
filesystem; `MountPolicy` (mounts.py) says whether to enter it (never for pseudo
filesystems such as /proc, nor for any with --one-file-system). One not entered is
yielded as an empty directory.

Speed matters here more than anywhere (a no-change run is this walk and little else), so
it stats names relative to an open directory descriptor (`fstatat`, cheaper than a full
path lookup) and yields plain tuples; the scan turns them into entries only when they
differ from the manifest. Memory: one directory listing per level of the current path.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from typing import Protocol

from baycat.manifest.file import STATE_DIRNAME
from baycat.progress import Notice, NoticeFunc, ignore_notice
from baycat.scan.mounts import MountPolicy

# (relative path, lstat result, symlink target or b"", incomplete directory)
Walked = tuple[bytes, os.stat_result, bytes, bool]


# skip(relative path, is_dir) -> True to leave the path (and everything below it) out.
SkipFunc = Callable[[bytes, bool], bool]


class PathFilter(Protocol):
    """What to leave out of the walk, asked per directory first, then per path.

    `for_dir(dir, names)` is called once for every directory listed, in walk order, with
    its names (so ignore files are found without extra system calls). It returns the
    skip function for that directory's children, or None when nothing in it can be left
    out — then no per-file call is made at all, so a filter that has nothing to say
    about most directories costs nothing per file.
    """

    def for_dir(self, rel_dir: bytes, names: list[bytes]) -> SkipFunc | None: ...

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RECORDED = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO, stat.S_IFCHR,
             stat.S_IFBLK)
_IFMT = 0o170000  # stat.S_IFMT as a mask: no function call in the hot loop
_IFREG = stat.S_IFREG


class _Dir:
    """One open directory level of the walk."""

    __slots__ = ("dev", "fd", "names", "prefix", "skip")

    def __init__(self, fd: int, prefix: bytes, names: list[bytes],
                 path_filter: PathFilter | None, dev: int) -> None:
        self.fd = fd
        self.dev = dev  # its filesystem: a child on another one is a mount point
        self.prefix = prefix
        self.names: Iterator[bytes] = iter(names)
        self.skip = path_filter.for_dir(prefix[:-1], names) if path_filter else None


def _open_dir(parent_fd: int | None, name: bytes, rel: bytes,
              warn: NoticeFunc) -> tuple[int, list[bytes]] | None:
    """Open and list a directory; None (warned) when it can't be read."""
    fd = -1
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        # Listing through /proc/self/fd names the directory we hold open (no path race)
        # and, given as bytes, returns bytes names: no per-name fsencode.
        encoded = os.listdir(b"/proc/self/fd/%d" % fd)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        if isinstance(exc, FileNotFoundError):
            return None if parent_fd is None else (-1, [])
        warn(Notice(rel, f"cannot read directory: {exc.strerror}"))
        return None
    encoded.sort()
    return fd, encoded


def walk(
    root: bytes,
    *,
    batch_entries: int = 1000,
    warn: NoticeFunc = ignore_notice,
    path_filter: PathFilter | None = None,
    mounts: MountPolicy | None = None,
) -> Iterator[list[Walked]]:
    """Yield batches of (path, lstat, target, incomplete) below `root`, in path_key order.
    `mounts`: which mount points to enter (default: all but pseudo filesystems)."""
    mounts = mounts or MountPolicy()
    opened = _open_dir(None, root, b"", warn)
    if opened is None:
        raise OSError(f"cannot read directory {os.fsdecode(root)}")
    fd, names = opened
    # The top's .baycat/ is baycat's own state: never walked.
    stack = [_Dir(fd, b"", [n for n in names if n != STATE_DIRNAME], path_filter,
                  os.fstat(fd).st_dev)]
    batch: list[Walked] = []
    lstat = os.lstat
    try:
        while stack:
            level = stack[-1]
            dir_fd, prefix, skip, dev = level.fd, level.prefix, level.skip, level.dev
            for name in level.names:
                rel = prefix + name
                try:
                    st = lstat(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    continue  # vanished since the listing: not an error
                except OSError as exc:
                    warn(Notice(rel, f"cannot stat: {exc.strerror}"))
                    continue
                fmt = st.st_mode & _IFMT
                if fmt == _IFREG:  # the common case first, with the fewest steps
                    if skip is None or not skip(rel, False):
                        batch.append((rel, st, b"", False))
                        if len(batch) >= batch_entries:
                            yield batch
                            batch = []
                    continue
                if fmt not in _RECORDED:
                    warn(Notice(rel, "skipped socket (a socket can't be backed up)",
                                failure=False))
                    continue
                is_dir = fmt == stat.S_IFDIR
                if skip is not None and skip(rel, is_dir):
                    continue
                target = b""
                if fmt == stat.S_IFLNK:
                    try:
                        target = os.readlink(name, dir_fd=dir_fd)
                    except OSError as exc:
                        warn(Notice(rel, f"cannot read symlink: {exc.strerror}"))
                        continue
                if is_dir and st.st_dev != dev and not mounts.enters(st.st_dev):
                    batch.append((rel, st, b"", False))  # a mount point left out: empty
                elif is_dir:
                    child = _open_dir(dir_fd, name, rel, warn)
                    batch.append((rel, st, b"", child is None))
                    if child is not None and child[0] >= 0:
                        stack.append(_Dir(child[0], rel + b"/", child[1], path_filter,
                                          st.st_dev))
                        break  # descend now: children sort right after their directory
                else:
                    batch.append((rel, st, target, False))
                if len(batch) >= batch_entries:
                    yield batch
                    batch = []
            else:
                os.close(stack.pop().fd)
        if batch:
            yield batch
    finally:
        for level in stack:
            os.close(level.fd)
