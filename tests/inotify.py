"""Which files a process opens, seen by the kernel (inotify IN_OPEN), not by baycat itself.

Used to prove the central promise: an unchanged file is never opened.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
from pathlib import Path

IN_OPEN = 0x00000020
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class OpenWatch:
    """Watch every directory below `root` for files being opened."""

    def __init__(self, root: Path, skip_dirs: tuple[str, ...] = (".baycat",)) -> None:
        self.fd = _libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs: dict[int, bytes] = {}
        for dirpath, dirnames, _ in os.walk(os.fsencode(root)):
            dirnames[:] = [d for d in dirnames if os.fsdecode(d) not in skip_dirs]
            wd = _libc.inotify_add_watch(self.fd, dirpath, IN_OPEN)
            if wd < 0:
                raise OSError(ctypes.get_errno(), "inotify_add_watch")
            self.dirs[wd] = dirpath

    def opened_files(self) -> set[bytes]:
        """Full paths of regular files opened since the watch began."""
        out: set[bytes] = set()
        while select.select([self.fd], [], [], 0.2)[0]:
            data = os.read(self.fd, 1 << 20)
            pos = 0
            while pos < len(data):
                wd, mask, _, length = struct.unpack_from("iIII", data, pos)
                name = data[pos + 16:pos + 16 + length].rstrip(b"\0")
                pos += 16 + length
                if not mask & IN_ISDIR and name:
                    out.add(self.dirs[wd] + b"/" + name)
        return out

    def close(self) -> None:
        os.close(self.fd)
