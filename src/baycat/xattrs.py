"""Extended attributes (POSIX ACLs, file capabilities, user.*) as one bytes value.

An entry holds all of a file's extended attributes as one blob, so that the manifest
keeps one column for them that costs nothing when no file has any (manifest/segment.py)
and comparing two entries compares one value:

    for each attribute, sorted by name:  name | NUL | u32 little-endian length | value

Names can't hold NUL (they are C strings); values are any bytes. Linux caps a value at
64 KiB and a file's list of names at 64 KiB, so `MAX_BLOB` bounds what a manifest (an
untrusted input) may claim for one entry.
"""

from __future__ import annotations

import errno
import os
import struct

MAX_NAME = 255  # XATTR_NAME_MAX
MAX_VALUE = 65536  # XATTR_SIZE_MAX
MAX_BLOB = 1 << 20
# The errors that say "this filesystem (or this kind of file) has none": not a problem.
_NONE = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA)


def encode(attrs: dict[bytes, bytes]) -> bytes:
    return b"".join(name + b"\0" + struct.pack("<I", len(value)) + value
                    for name, value in sorted(attrs.items()))


def decode(blob: bytes) -> dict[bytes, bytes]:
    """The attributes of a blob; ValueError when it is not one `encode` could write."""
    out: dict[bytes, bytes] = {}
    pos, previous = 0, None
    while pos < len(blob):
        end = blob.find(b"\0", pos)
        if end < 0 or end + 5 > len(blob):
            raise ValueError("truncated extended attribute")
        name = blob[pos:end]
        (length,) = struct.unpack_from("<I", blob, end + 1)
        start = end + 5
        if not 0 < len(name) <= MAX_NAME or length > MAX_VALUE or start + length > len(blob):
            raise ValueError("extended attribute name or value out of range")
        if previous is not None and name <= previous:
            raise ValueError("extended attributes not sorted")
        out[name] = blob[start:start + length]
        previous, pos = name, start + length
    return out


def read(path: bytes | int) -> bytes:
    """The blob of the file at `path` (not following a symlink) or of an open fd; b""
    when it has none or its filesystem has none. Raises OSError otherwise."""
    follow = isinstance(path, int)  # the fd itself (follow_symlinks=False needs a path)
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in _NONE:
            return b""
        raise
    if not names:
        return b""
    attrs: dict[bytes, bytes] = {}
    for name in names:
        try:
            attrs[os.fsencode(name)] = os.getxattr(path, name, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno not in _NONE:  # removed since the listing: not an error
                raise
    return encode(attrs)


def apply(node: bytes | int, blob: bytes, current: bytes = b"",
          follow_symlinks: bool = True) -> list[str]:
    """Give the file at `node` (an fd or a path) exactly the attributes of `blob`: set
    what differs and remove what it lacks (`current`: what it has now). Returns one
    "name: reason" for each attribute the filesystem or the kernel refused; the others
    are still set. `follow_symlinks=False` for a symlink itself; a /proc/self/fd link
    must be followed (to the inode it names)."""
    follow = follow_symlinks
    wanted, have = decode(blob), decode(current) if current else {}
    refused: list[str] = []
    for name in have.keys() - wanted.keys():
        try:
            os.removexattr(node, name, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                refused.append(f"{os.fsdecode(name)}: {exc.strerror}")
    for name, value in wanted.items():
        if have.get(name) == value:
            continue
        try:
            os.setxattr(node, name, value, follow_symlinks=follow)
        except OSError as exc:
            refused.append(f"{os.fsdecode(name)}: {exc.strerror}")
    return refused
