"""An exclusive, advisory lock on a file: one baycat at a time per tree.

flock(2) locks vanish with the process, so a crash or `kill -9` never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from baycat.errors import LockedError, StateWriteError
from baycat.private import open_private


class TreeLock:
    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> TreeLock:
        try:
            fd = open_private(self.path, os.O_RDWR)
        except OSError as exc:
            raise StateWriteError.of("open the lock", self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(
                f"another baycat is already working on {self.what} (lock {self.path}); "
                "nothing was done"
            ) from None
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
