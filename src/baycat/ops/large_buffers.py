"""Large buffers go back to the OS when they are freed (glibc's malloc).

glibc gives an allocation above its mmap threshold a mapping of its own, unmapped on
free. But each time such a block is freed it raises the threshold to that block's size
(up to 32 MiB), so once the first 8 MiB part of an upload has been freed, the parts
after it come from the heap arenas of the threads that read them, and what they free
stays resident there. Fixing the threshold stops that adjustment: four files of
128-256 MiB uploaded to a local SeaweedFS peaked at 115-126 MB RSS instead of 165-190 MB
(with 64 MiB of parts in flight), in the same time.
"""

from __future__ import annotations

import contextlib

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
# Above the hasher's 1 MiB read buffers (scan/hasher.py), which the heap reuses well.
THRESHOLD = 2 << 20

_fixed = False


def unmap_when_freed() -> None:
    """Fix malloc's mmap threshold at THRESHOLD, once per process (a no-op where the C
    library is not glibc: musl's malloc returns large blocks anyway)."""
    global _fixed
    if _fixed:
        return
    _fixed = True
    import ctypes  # here: 3 ms of import that a run without large files never pays

    with contextlib.suppress(AttributeError, OSError):  # no mallopt in this C library
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, THRESHOLD)
