"""Removing a benchmark's trees without slowing the next timed run that creates files.

ext4 without a journal (the machine's root file system is one) does not reuse an inode
freed within the last 60 s, or 360 s while its inode-table block is still dirty
(`recently_deleted` in fs/ext4/ialloc.c): the allocator looks each candidate up in the
buffer cache and skips it. Creating thousands of files right after thousands were
deleted walks over all of them. Profiled with `perf record -g`, a 5,000-file restore
right after the previous restored tree was removed spent ~21 % of its samples there,
and its system time grew run after run (2.0 s, then up to 5.6 s); the same restores
into new directories, nothing deleted, took 1.0 s of system time each and varied by a
tenth as much. A restore onto a real machine's disk does not follow a mass deletion, so
a timed run must not either.

`remove_tree` deletes, writes the freed inodes out (so the shorter window applies) and
remembers when; `wait_out_deletions` sleeps the rest of the window before a timed run
that creates files. Within a step, restores go to new directories instead of deleting
the last one.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

# RECENTCY_MIN in fs/ext4/ialloc.c, plus a margin for the clock's granularity.
WINDOW_S = 62.0
_last_deletion: float | None = None


def remove_tree(path: Path) -> None:
    """rmtree `path` (if it exists), then sync so the freed inodes are written out."""
    global _last_deletion
    if not path.exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    os.sync()
    _last_deletion = time.monotonic()


def wait_out_deletions(log: Callable[[str], None] | None = None) -> float:
    """Sleep until the last `remove_tree` is WINDOW_S old; returns the seconds slept."""
    if _last_deletion is None:
        return 0.0
    wait = _last_deletion + WINDOW_S - time.monotonic()
    if wait <= 0:
        return 0.0
    if log is not None:
        log(f"waiting {wait:.0f} s: files were deleted less than {WINDOW_S:.0f} s ago "
            "(benchmarks/deletions.py)")
    time.sleep(wait)
    return wait
