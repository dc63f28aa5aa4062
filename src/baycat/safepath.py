"""Checks on paths from an untrusted manifest, so a restore never writes outside DST.

A manifest may come from a bucket someone else can write. Every path must be relative,
made of real names (no '', '.', '..', NUL), unique, and in manifest order; and nothing is
written through a symlink: a restore lays out a tree, it never follows links it (or
anyone) placed there.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator

from .entry import Entry, path_key
from .errors import ManifestError

MAX_PATH_BYTES = 4096


def check_path(path: bytes) -> None:
    if not path or path.startswith(b"/") or b"\0" in path or len(path) > MAX_PATH_BYTES:
        raise ManifestError(f"unsafe path in manifest: {path!r}")
    for part in path.split(b"/"):
        if part in (b"", b".", b".."):
            raise ManifestError(f"unsafe path in manifest: {path!r}")


def checked(entries: Iterable[Entry]) -> Iterator[Entry]:
    """The entries, each checked, and refused unless strictly increasing in path order
    (which also rules out duplicates)."""
    previous: bytes | None = None
    for entry in entries:
        check_path(entry.path)
        key = path_key(entry.path)
        if previous is not None and key <= previous:
            raise ManifestError(f"manifest not in order or duplicate path: {entry.path!r}")
        previous = key
        yield entry


class ParentGuard:
    """Knows which directories below DST are real (not symlinks), checking each once."""

    def __init__(self, root: bytes) -> None:
        self.root = root
        self._verified: set[bytes] = {b""}

    def parent_is_safe(self, path: bytes) -> bool:
        """True when every directory above `path` (below root) is a real directory."""
        parent = path.rpartition(b"/")[0]
        if parent in self._verified:
            return True
        if not self.parent_is_safe(parent):
            return False
        try:
            st = os.lstat(self.root + b"/" + parent)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False
        self._verified.add(parent)
        return True
