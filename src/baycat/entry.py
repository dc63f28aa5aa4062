"""One manifest entry: what baycat knows about one path below the root.

Paths are raw bytes (any byte string Linux allows in a name), relative, '/'-separated,
never empty and never containing NUL. All streams in baycat (the walk, the local
manifest, the remote manifest) are sorted by `path_key`, which orders paths component
by component: `a/b` < `a/b/c` < `a-c` < `a0`. Replacing '/' with NUL (which can't occur in
a name) makes a plain bytes comparison do exactly that.

`Entry` is a NamedTuple rather than a frozen dataclass on purpose: millions are built per
run from decoded manifest columns, and tuple construction is several times cheaper than a
frozen dataclass `__init__` (see docs/design.md).
"""

from __future__ import annotations

import os
import stat
from typing import NamedTuple

FILE = "f"
DIR = "d"
SYMLINK = "l"
# Format 2 (manifest/segment.py BCS2):
HARDLINK = "h"  # a later name of a regular file already recorded at `link`: no object
FIFO = "p"
CHAR_DEVICE = "c"  # device kinds carry `rdev`; recreated only by a restore run as root
BLOCK_DEVICE = "b"

# Entry.flags bits.
FLAG_RACY = 1  # stat taken within the timestamp granularity of a write: don't trust it next run
FLAG_INCOMPLETE = 2  # a directory that could not be listed: its children are unknown, not gone
FLAG_SPARSE = 4  # fewer blocks allocated than its size: restored with holes
FLAG_LINKED = 8  # a regular file with more names: later HARDLINK entries may name it
# The flags that describe the file itself (kept in the remote manifest); the others are
# about this machine's scan.
FILE_FLAGS = FLAG_SPARSE | FLAG_LINKED

NO_HASH = b""


class Entry(NamedTuple):
    path: bytes
    kind: str  # FILE, DIR or SYMLINK
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int
    mode: int  # full st_mode, type bits included
    uid: int
    gid: int
    target: bytes  # symlink target; b"" otherwise
    xxh: bytes  # xxh3-128 digest of the content (16 bytes) for files; b"" when unknown
    etag: str  # the object's ETag once uploaded ("" when not uploaded)
    key: str  # object key when it is not the path itself (escaped names); "" otherwise
    version_id: str  # S3 VersionId on versioned buckets; "" otherwise
    deleted_ns: int  # when the local file was seen deleted (kept remote entries); 0 if live
    flags: int
    # Format 2. Defaults, so that the common entry shares three singletons (no memory):
    rdev: int = 0  # device number of CHAR_DEVICE/BLOCK_DEVICE entries
    link: bytes = b""  # HARDLINK: the path (earlier in path order) of the file it names
    xattrs: bytes = b""  # extended attributes, xattrs.encode()'s blob; b"" when none


def path_key(path: bytes) -> bytes:
    """Sort key giving component-wise order (see module docstring)."""
    return path.replace(b"/", b"\0")


# The kind of each file type baycat records (a HARDLINK is a FILE seen a second time);
# sockets are not recorded (nothing can be restored of one).
KIND_OF_TYPE = {stat.S_IFREG: FILE, stat.S_IFDIR: DIR, stat.S_IFLNK: SYMLINK,
                stat.S_IFIFO: FIFO, stat.S_IFCHR: CHAR_DEVICE, stat.S_IFBLK: BLOCK_DEVICE}
# The file type each kind's mode must have (manifest/validate.py).
TYPE_OF_KIND = {kind: file_type for file_type, kind in KIND_OF_TYPE.items()}
TYPE_OF_KIND[HARDLINK] = stat.S_IFREG
DEVICES = (CHAR_DEVICE, BLOCK_DEVICE)


def kind_of_mode(mode: int) -> str | None:
    """The kind of a file type baycat records; None for sockets."""
    return KIND_OF_TYPE.get(stat.S_IFMT(mode))


def stat_flags(kind: str, st: os.stat_result) -> int:
    """FLAG_SPARSE for a regular file with fewer blocks than its size (st_blocks is in
    512-byte units whatever the filesystem's block size)."""
    return FLAG_SPARSE if kind == FILE and st.st_blocks * 512 < st.st_size else 0


def entry_from_stat(path: bytes, kind: str, st: os.stat_result, target: bytes = b"",
                    link: bytes = b"", xattrs: bytes = b"", flags: int = 0) -> Entry:
    """`flags`: besides what `stat_flags` finds (FLAG_LINKED, FLAG_INCOMPLETE)."""
    size = st.st_size if kind == FILE else 0
    rdev = st.st_rdev if kind in DEVICES else 0
    return Entry(
        path, kind, size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev,
        st.st_mode, st.st_uid, st.st_gid, target, NO_HASH, "", "", "", 0,
        flags | stat_flags(kind, st), rdev, link, xattrs,
    )


def same_stat(a: Entry, b: Entry) -> bool:
    """True when the file metadata says the content cannot have changed.

    The promise behind "an unchanged file is never re-read": size, mtime, ctime and the
    inode number all equal. ctime catches writes that restore mtime; the inode catches
    replace-by-rename. A racy entry (see FLAG_RACY) is never trusted.
    """
    return (
        a.size == b.size
        and a.mtime_ns == b.mtime_ns
        and a.ctime_ns == b.ctime_ns
        and a.ino == b.ino
        and not (a.flags | b.flags) & FLAG_RACY
    )


def same_file_stat(a: os.stat_result, b: os.stat_result) -> bool:
    """True when two stats of one open file show it held still between them: size,
    mtime, ctime and inode equal (the fields of `same_stat`). A file read between two
    such fstats is what the bytes read say it is."""
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns, a.st_ino) == (
        b.st_size, b.st_mtime_ns, b.st_ctime_ns, b.st_ino)


def with_stat(entry: Entry, st: os.stat_result, xxh: bytes, racy: bool | None = None) -> Entry:
    """`entry` refreshed from `st`, the fstat taken after reading the file whose content
    hashes to `xxh`: size, times, inode, device, mode and owner from `st`, the rest
    (path, kind, target, ETag, key, VersionId, deleted-at) kept. `racy` sets (True) or
    clears (False) FLAG_RACY; None keeps the entry's flags as they are.

    Once per file read (hash or upload): built positionally, not with `_replace`, which
    goes through a dict of keywords and costs twice the time."""
    flags = entry.flags & ~FLAG_SPARSE | stat_flags(entry.kind, st)
    if racy is not None:
        flags = flags | FLAG_RACY if racy else flags & ~FLAG_RACY
    return Entry(entry.path, entry.kind, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                 st.st_dev, st.st_mode, st.st_uid, st.st_gid, entry.target, xxh, entry.etag,
                 entry.key, entry.version_id, entry.deleted_ns, flags, entry.rdev, entry.link,
                 entry.xattrs)


def same_metadata(a: Entry, b: Entry) -> bool:
    """Equal in what a restore reproduces besides content (mode, owner, mtime, target,
    device number, hardlink, extended attributes, sparseness)."""
    return (
        a.kind == b.kind
        and a.mode == b.mode
        and a.uid == b.uid
        and a.gid == b.gid
        and a.target == b.target
        and a.mtime_ns == b.mtime_ns
        and a.rdev == b.rdev
        and a.link == b.link
        and a.xattrs == b.xattrs
        and (a.flags ^ b.flags) & FILE_FLAGS == 0
    )


def as_text(path: bytes) -> str:
    """Path for messages and JSON: bytes decoded with surrogateescape (round-trips)."""
    return os.fsdecode(path)
