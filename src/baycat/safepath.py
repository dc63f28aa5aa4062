"""Checks on paths from an untrusted manifest, so a restore never writes outside DST.

A manifest may come from a bucket someone else can write. Every path must be relative,
made of real names (no '', '.', '..', NUL), outside DST's own `.baycat/`, unique, and in
manifest order; and nothing is written through a symlink: a restore lays out a tree, it
never follows links it (or anyone) placed there.

`validate` checks a whole manifest before a restore writes anything, including what can
only be seen across entries: a live path below a live symlink or file (the restore would
create the link, then write through it). While writing, the restore reaches every path
through directory fds opened O_NOFOLLOW from DST down (dirfd.py), so a symlink swapped in
during the restore can't redirect a write either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .entry import DIR, FILE, SYMLINK, Entry, path_key
from .errors import ManifestError

MAX_PATH_BYTES = 4096
_STATE_DIR = b".baycat"
_ESCAPED_KEY = re.compile(r"\.baycat/escaped/[0-9a-f]{64}")


def _unsafe(what: str, path: bytes) -> ManifestError:
    return ManifestError(f"refusing the manifest: {what}: {path!r} (nothing was restored)")


def check_path(path: bytes) -> None:
    if not path or path.startswith(b"/") or b"\0" in path or len(path) > MAX_PATH_BYTES:
        raise _unsafe("unsafe path", path)
    parts = path.split(b"/")
    if any(part in (b"", b".", b"..") for part in parts):
        raise _unsafe("unsafe path", path)
    if parts[0] == _STATE_DIR:
        raise _unsafe("path inside baycat's state directory", path)


def check_entry(entry: Entry) -> None:
    """What an entry claims beyond its path: a known kind, and an object key that is the
    path itself or an escaped key (never another object of the bucket)."""
    if entry.kind not in (FILE, DIR, SYMLINK):
        raise _unsafe(f"unknown entry type {entry.kind!r}", entry.path)
    if entry.key:
        if not _ESCAPED_KEY.fullmatch(entry.key):
            raise _unsafe(f"unexpected object key {entry.key!r}", entry.path)
    elif entry.kind == FILE:
        try:
            entry.path.decode("utf-8")
        except UnicodeDecodeError:
            raise _unsafe("a name that is not UTF-8 without an escaped key",
                          entry.path) from None


def validate(entries: Iterable[Entry], max_entries: int) -> int:
    """Blocking: check a whole manifest; returns its entry count. Raises ManifestError
    at the first problem, so a restore that calls this first writes nothing."""
    count = 0
    leaf: bytes | None = None  # the last live non-directory: nothing live may be below it
    for entry in checked(entries):
        count += 1
        if count > max_entries:
            raise ManifestError(f"refusing the manifest: more than {max_entries} entries")
        check_entry(entry)
        if entry.deleted_ns:
            continue
        if leaf is not None and entry.path.startswith(leaf):
            raise _unsafe("a path below a symlink or file of the same backup", entry.path)
        # Descendants follow their ancestor directly in manifest order, so one is enough.
        leaf = entry.path + b"/" if entry.kind != DIR else None
    return count


def checked(entries: Iterable[Entry]) -> Iterator[Entry]:
    """The entries, each checked, and refused unless strictly increasing in path order
    (which also rules out duplicates)."""
    previous: bytes | None = None
    for entry in entries:
        check_path(entry.path)
        key = path_key(entry.path)
        if previous is not None and key <= previous:
            raise _unsafe("manifest not in order or duplicate path", entry.path)
        previous = key
        yield entry
