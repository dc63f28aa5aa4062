"""Files and directories only their owner may read: 0600 and 0700, whatever the umask.

baycat's state (manifests, caches, locks, markers, temp files) says what a tree holds and
where its backup is; a local backup's objects are the data itself. Both are created with
an explicit mode and then given exactly that mode with fchmod, because the process umask
(000 in some cron and container setups) would otherwise widen them, and a umask like 0277
would narrow them below what baycat needs. The process umask is never changed: baycat is
also a library, and the umask belongs to the program that imports it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from baycat.dirfd import open_node

FILE_MODE = 0o600
DIR_MODE = 0o700

_CREATE = os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


def open_private(path: str | bytes | Path, flags: int, mode: int = FILE_MODE,
                 dir_fd: int | None = None) -> int:
    """os.open with O_CREAT and O_NOFOLLOW; the file then has exactly `mode`, also one
    that existed with another (a lock an older baycat made under umask 022). A file of
    another user is left as it is (only root could have made it; chmod would fail)."""
    fd = os.open(path, flags | _CREATE, mode, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if stat.S_IMODE(st.st_mode) != mode and st.st_uid == os.geteuid():
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def mkdir_private(path: Path, mode: int = DIR_MODE, parents: bool = False) -> None:
    """`path.mkdir(exist_ok=True)`, and every directory this creates (with `parents`, the
    missing parents too) gets exactly `mode`; directories that exist are left alone."""
    try:
        os.mkdir(path, mode)  # one system call when it exists: the common case
    except FileExistsError:
        return
    except FileNotFoundError:
        if not parents or path.parent == path:
            raise
        mkdir_private(path.parent, mode, parents=True)
        try:
            os.mkdir(path, mode)
        except FileExistsError:  # another run made it in between
            return
    # The umask may have taken bits away (0o700 & ~umask 0o277 is 0o500): set `mode`.
    fd, handle = open_node(os.fsencode(path), None, directory=True)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.chmod(handle, mode)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Write a small file whole (O_TRUNC), mode 0600."""
    fd = open_private(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
