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

from baycat import xattrs
from baycat.entry import (
    DEVICES,
    DIR,
    FILE,
    FLAG_LINKED,
    HARDLINK,
    SYMLINK,
    TYPE_OF_KIND,
    Entry,
    path_key,
)
from baycat.errors import ManifestError
from baycat.manifest.file import STATE_DIRNAME
from baycat.manifest.segment import HASH_SIZE
from baycat.store.layout import ESCAPED_PREFIX

MAX_PATH_BYTES = 4096
MAX_MODE = 0o177777  # st_mode: file type and permission bits
MAX_ID = (1 << 32) - 2  # uid_t/gid_t; (uid_t)-1 tells chown "leave it unchanged"
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_S_IFMT = 0o170000  # stat.S_IFMT's mask: the C function raises on huge values
_ESCAPED_KEY = re.compile(re.escape(ESCAPED_PREFIX) + "[0-9a-f]{64}")  # keys.escaped_key


def _unsafe(what: str, path: bytes) -> ManifestError:
    return ManifestError(f"refusing the manifest: {what}: {path!r} (nothing was restored)")


def check_path(path: bytes) -> None:
    if not path or path.startswith(b"/") or b"\0" in path or len(path) > MAX_PATH_BYTES:
        raise _unsafe("unsafe path", path)
    parts = path.split(b"/")
    if any(part in (b"", b".", b"..") for part in parts):
        raise _unsafe("unsafe path", path)
    if parts[0] == STATE_DIRNAME:
        raise _unsafe("path inside baycat's state directory", path)


def check_entry(entry: Entry) -> None:
    """What an entry claims beyond its path: a known kind with a mode of that type,
    values in the ranges the system calls of a restore take (a uid beyond uid_t makes
    os.chown raise, a mode beyond mode_t makes stat.S_IMODE raise), and an object key
    that is the path itself or an escaped key (never another object of the bucket); a
    device number only on a device, a hardlink's path only on a HARDLINK (an earlier
    path; `validate` checks it names a file of the manifest), and extended attributes
    that parse and stay under xattrs.MAX_BLOB."""
    (path, kind, size, mtime_ns, _, _, _, mode, uid, gid, target, xxh, _, key, _, deleted_ns,
     _, rdev, link, blob) = entry  # one unpacking: this runs for every entry of a restore
    file_type = TYPE_OF_KIND.get(kind)
    if file_type is None:
        raise _unsafe(f"unknown entry type {kind!r}", path)
    if not (0 <= mode <= MAX_MODE and mode & _S_IFMT == file_type):
        raise _unsafe(f"mode {mode:#o} of an entry of type {kind!r}", path)
    if not (0 <= uid <= MAX_ID and 0 <= gid <= MAX_ID):
        raise _unsafe(f"owner {uid}:{gid} out of range", path)
    if not (0 <= size <= INT64_MAX and 0 <= deleted_ns <= INT64_MAX
            and INT64_MIN <= mtime_ns <= INT64_MAX):
        raise _unsafe("size or time out of range", path)
    if len(xxh) not in (0, HASH_SIZE):
        raise _unsafe("content hash of the wrong length", path)
    if kind == SYMLINK and not 0 < len(target) <= MAX_PATH_BYTES:
        raise _unsafe("symlink target empty or too long", path)
    if rdev and not (kind in DEVICES and 0 < rdev <= INT64_MAX):
        raise _unsafe("a device number out of range or not on a device", path)
    if link or kind == HARDLINK:
        if kind != HARDLINK:
            raise _unsafe("a hardlink path on an entry that is not a hardlink", path)
        check_path(link)
        if path_key(link) >= path_key(path):
            raise _unsafe("a hardlink to a path that does not come before it", path)
    if blob:
        if len(blob) > xattrs.MAX_BLOB:
            raise _unsafe("extended attributes too large", path)
        try:
            xattrs.decode(blob)
        except ValueError as exc:
            raise _unsafe(f"extended attributes malformed ({exc})", path) from None
    if key:
        if not _ESCAPED_KEY.fullmatch(key):
            raise _unsafe(f"unexpected object key {key!r}", path)
    elif kind == FILE:
        try:
            path.decode("utf-8")
        except UnicodeDecodeError:
            raise _unsafe("a name that is not UTF-8 without an escaped key", path) from None


def validate(entries: Iterable[Entry], max_entries: int) -> int:
    """Blocking: check a whole manifest; returns its entry count. Raises ManifestError
    at the first problem, so a restore that calls this first writes nothing."""
    count = 0
    leaf: bytes | None = None  # the last live non-directory: nothing live may be below it
    # Live files other names may link to (FLAG_LINKED): O(hardlinked files), not O(tree).
    linked: set[bytes] = set()
    for entry in checked(entries):
        count += 1
        if count > max_entries:
            raise ManifestError(f"refusing the manifest: more than {max_entries} entries")
        check_entry(entry)
        if entry.deleted_ns:
            continue
        if entry.kind == FILE and entry.flags & FLAG_LINKED:
            linked.add(entry.path)
        elif entry.kind == HARDLINK and entry.link not in linked:
            raise _unsafe("a hardlink to a path that is not a linked file of the backup",
                          entry.path)
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
