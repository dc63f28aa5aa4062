"""The hasher: content hash (xxh3-128) of one regular file, consistent with its stat.

Blocking code, run in the engine's hasher thread pool. xxhash releases the GIL on large
buffers, so `--pool-size` threads hash in parallel.

A file is hashed between two `fstat`s of the open descriptor. If size, mtime or ctime moved
while reading (someone is writing it), it is hashed again, a few times; if it never holds
still, the result is an error and nothing is recorded. So a recorded hash always belongs to
the recorded stat.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass

import xxhash

from baycat.entry import Entry, same_file_stat, with_stat

READ_BLOCK = 1 << 20
ATTEMPTS = 3
# A stat within this long of "now" may be followed by a write that leaves mtime as it is
# (timestamps advance in coarse ticks): such an entry is marked racy and re-hashed next run.
RACY_WINDOW_NS = 2_000_000_000


def is_racy(st: os.stat_result) -> bool:
    """The stat `st`, taken now, is within RACY_WINDOW_NS of the file's last change."""
    return time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_WINDOW_NS

# O_NONBLOCK: a path swapped for a FIFO since the walk must not hang us (no effect on files).
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY


@dataclass(frozen=True, slots=True)
class HashResult:
    entry: Entry | None  # the entry with hash and fresh stat; None on error
    error: str = ""
    bytes_read: int = 0


def _read_buffer(size: int) -> memoryview:
    """A read buffer for a file the walk saw at `size` bytes: just big enough for a
    small file (zeroing a whole MiB cost more than reading a 1 KiB file), READ_BLOCK
    for the rest. A fresh buffer per file, not one kept per thread: on this machine's
    kernel and CPU, reading into a long-lived 1 MiB buffer hashed at half the speed
    (5.1 vs 9.9 GB/s, benchmarks/hashbench.py), and a 512 KiB one still lost 10 %."""
    return memoryview(bytearray(min(READ_BLOCK, max(size, 0) + 4096)))


def hash_file(full_path: bytes, entry: Entry) -> HashResult:
    """Hash the file at `full_path`; `entry` is what the walk saw."""
    total = 0
    try:
        fd = os.open(full_path, _OPEN_FLAGS)
    except OSError as exc:
        return HashResult(None, f"cannot open: {exc.strerror}")
    try:
        view = _read_buffer(entry.size)
        for _ in range(ATTEMPTS):
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                return HashResult(None, "no longer a regular file")
            os.lseek(fd, 0, os.SEEK_SET)
            digest = xxhash.xxh3_128()
            size = 0
            while True:
                n = os.readv(fd, [view])
                if not n:
                    break
                digest.update(view[:n])
                size += n
            total += size
            after = os.fstat(fd)
            if same_file_stat(before, after) and size == after.st_size:
                return HashResult(with_stat(entry, after, digest.digest(), racy=is_racy(after)),
                                  bytes_read=total)
        return HashResult(None, "file kept changing while being read", total)
    except OSError as exc:
        return HashResult(None, f"cannot read: {exc.strerror}", total)
    finally:
        os.close(fd)
