"""Named points in the engine where a test can act at an exact moment.

    with hooks.registered("restore.before_write", swap):   # in a test
        baycat.restore_blocking(...)
    hooks.fire("restore.before_write", path)               # in the engine: a no-op

A race (someone swapping a directory for a symlink between a check and a write) is then
a deterministic test instead of a timing lottery. The engine calls `fire` at each point;
with nothing registered it costs one truthiness test, so it may sit on per-file paths.
Callbacks run in whatever thread fires them and must not block for long.

Points:
    restore.before_write         path of a file or symlink, just before it is written
    restore.before_dir_metadata  path of a directory, just before its mode, owner and
                                 mtime are set (the last pass of a restore)
    upload.before_read           path of a file about to be read for a whole-file upload
    prune.before_commit          b"", after prune deleted the objects of the entries
                                 it drops, before the commit that drops them
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

HookFunc = Callable[[bytes], None]

_registered: dict[str, HookFunc] = {}


def fire(point: str, path: bytes) -> None:
    """Call the callback registered for `point`, if any."""
    if _registered:
        callback = _registered.get(point)
        if callback is not None:
            callback(path)


@contextlib.contextmanager
def registered(point: str, callback: HookFunc) -> Iterator[None]:
    """Register `callback` for `point` for the duration of the block (one per point)."""
    if point in _registered:
        raise RuntimeError(f"a hook is already registered for {point!r}")
    _registered[point] = callback
    try:
        yield
    finally:
        del _registered[point]
