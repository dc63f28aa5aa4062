"""Segments: the unit in which manifests are stored, cached and uploaded.

A segment is a run of consecutive entries (sorted by path) encoded column by column and
compressed. Columns make the encoding compact (similar values sit together, integers are
byte-shuffled so their constant high bytes compress away) and fast: every column is
encoded and decoded by C code (bytes.join/split, array, zlib), leaving one tuple
construction per entry as the only per-entry Python work.

Segments are content addressed (`segment_hash` of the encoded bytes) and immutable.
Where a segment ends is decided by the paths themselves (`Chunker`), so inserting or
changing one entry changes one segment, not every segment after it.

Layout of an encoded segment (before zlib):
    b"BCS2" | u32 count | for each column: u32 length | column bytes

Format 1 segments (b"BCS1") have the first 17 columns; BCS2 adds three (rdev, hardlink
path, extended attributes) that are zero-length when every entry has the default (0 or
b""), so a tree without devices, hardlinks or xattrs pays 12 bytes a segment for them
and decoding them is three `repeat`s. Both decode; only BCS2 is written.
"""

from __future__ import annotations

import hashlib
import struct
import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from itertools import repeat

import xxhash

from baycat.entry import Entry
from baycat.errors import ManifestError

MAGIC = b"BCS2"
MAGIC_V1 = b"BCS1"
_COLUMNS = {MAGIC_V1: 17, MAGIC: 20}
HASH_SIZE = 16
_ZERO_HASH = bytes(HASH_SIZE)

# Chunking: a segment ends after an entry whose path hash has its low bits all zero,
# once it holds MIN_ENTRIES; it is forced to end at MAX_ENTRIES.
MIN_ENTRIES = 512
BOUNDARY_MASK = 2047  # about one boundary every 2,048 entries past the minimum
MAX_ENTRIES = 8192

# Decoded size cap: segments come from untrusted stores; a "zip bomb" must not eat memory.
MAX_DECODED_BYTES = 64 << 20
# Our chunker never writes more than MAX_ENTRIES; leave room for other cut settings.
MAX_DECODED_ENTRIES = 8 * MAX_ENTRIES

# Integer columns: (Entry field index, array typecode).
_INT_COLUMNS = ((2, "q"), (3, "q"), (4, "q"), (5, "Q"), (6, "Q"), (7, "q"), (8, "q"),
                (9, "q"), (15, "q"), (16, "q"))
_NATIVE_LITTLE = sys.byteorder == "little"
_HASH_COLUMN = 13  # the content hashes (xxh3-128), HASH_SIZE bytes per entry
_HASH_STRUCT = struct.Struct(f"{HASH_SIZE}s")

# zlib level 1, not 6: measured on 1M-entry manifests, level 6 took 1.7-2x the time to
# encode (2.9 vs 1.7 us/entry local, 3.8 vs 1.9 remote) for segments 3-4 % smaller.
# A commit that touches every segment re-encodes the whole manifest, so time wins.
COMPRESS_LEVEL = 1


def _shuffle(raw: bytes, width: int) -> bytes:
    # Byte i of every value together: high bytes of timestamps/sizes are nearly constant.
    return b"".join(raw[i::width] for i in range(width))


def _unshuffle(data: bytes, width: int) -> bytearray:
    count = len(data) // width
    out = bytearray(len(data))
    view = memoryview(data)  # slices without copies: this runs for every column read
    for i in range(width):
        out[i::width] = view[i * count:(i + 1) * count]
    return out


def _int_column(values: list[int], typecode: str) -> bytes:
    col = array(typecode, values)
    if not _NATIVE_LITTLE:
        col.byteswap()
    return _shuffle(col.tobytes(), col.itemsize)


def _read_int_column(data: bytes, typecode: str) -> list[int]:
    col = array(typecode)
    col.frombytes(_unshuffle(data, col.itemsize))
    if not _NATIVE_LITTLE:
        col.byteswap()
    return col.tolist()


def _join(values: Iterable[bytes]) -> bytes:
    return b"\0".join(values)


def _split(data: bytes, count: int) -> list[bytes]:
    if count == 0:
        return []
    parts = data.split(b"\0")
    if len(parts) != count:
        raise ManifestError("corrupt manifest segment: column length mismatch")
    return parts


def encode(entries: list[Entry]) -> bytes:
    """Encode entries (already sorted) into compressed segment bytes."""
    columns: list[bytes] = [
        _join(e.path for e in entries),
        "".join(e.kind for e in entries).encode("ascii"),
    ]
    for index, typecode in _INT_COLUMNS:
        columns.append(_int_column([e[index] for e in entries], typecode))  # type: ignore[misc]
    columns.append(_join(e.target for e in entries))
    columns.append(b"".join(e.xxh or _ZERO_HASH for e in entries))
    columns.append(_join(e.etag.encode() for e in entries))
    columns.append(_join(e.key.encode() for e in entries))
    columns.append(_join(e.version_id.encode() for e in entries))
    # Format 2's columns, empty when all entries have the default (the common case).
    rdevs = [e.rdev for e in entries]
    columns.append(_int_column(rdevs, "q") if any(rdevs) else b"")
    links = [e.link for e in entries]
    columns.append(_join(links) if any(links) else b"")
    columns.append(_blob_column([e.xattrs for e in entries]))
    parts = [MAGIC, struct.pack("<I", len(entries))]
    for col in columns:
        parts.append(struct.pack("<I", len(col)))
        parts.append(col)
    return zlib.compress(b"".join(parts), COMPRESS_LEVEL)


def _columns(blob: bytes) -> tuple[int, list[bytes]]:
    """Inflate and split a segment into its entry count and raw columns."""
    try:
        return _split_columns(blob)
    except (zlib.error, struct.error) as exc:
        raise ManifestError(f"corrupt manifest segment: {exc}") from None


def _split_columns(blob: bytes) -> tuple[int, list[bytes]]:
    inflater = zlib.decompressobj()
    raw = inflater.decompress(blob, MAX_DECODED_BYTES)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ManifestError("corrupt manifest segment: truncated or too large")
    expected = _COLUMNS.get(bytes(raw[:4]))
    if expected is None:
        raise ManifestError("corrupt manifest segment: bad magic")
    (count,) = struct.unpack_from("<I", raw, 4)
    if count > MAX_DECODED_ENTRIES:  # untrusted input: refuse before building entries
        raise ManifestError(f"corrupt manifest segment: {count} entries claimed")
    columns: list[bytes] = []
    pos = 8
    while pos < len(raw):
        (length,) = struct.unpack_from("<I", raw, pos)
        columns.append(raw[pos + 4:pos + 4 + length])
        pos += 4 + length
    if len(columns) != expected or pos != len(raw):
        raise ManifestError("corrupt manifest segment: wrong column count")
    if len(columns[_HASH_COLUMN]) != count * HASH_SIZE:
        raise ManifestError("corrupt manifest segment: column length mismatch")
    return count, columns


def decode(blob: bytes) -> list[Entry]:
    """Decode segment bytes. Raises ManifestError on anything malformed."""
    count, columns = _columns(blob)
    try:
        paths = _split(columns[0], count)
        kinds = columns[1].decode("ascii")
        ints = [_read_int_column(columns[2 + i], tc) for i, (_, tc) in enumerate(_INT_COLUMNS)]
        targets = _split(columns[12], count)
        hashes = columns[_HASH_COLUMN]
        etags = _split_text(columns[14], count)
        keys = _split_text(columns[15], count)
        versions = _split_text(columns[16], count)
        rdevs, links, xattrs = _format2_columns(columns, count)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"corrupt manifest segment: {exc}") from None
    if len(kinds) != count or any(len(col) != count for col in ints):
        raise ManifestError("corrupt manifest segment: column length mismatch")
    # iter_unpack cuts the column in C; one pass maps the all-zero hash to "unknown".
    xxhs = [b"" if h == _ZERO_HASH else h for (h,) in _HASH_STRUCT.iter_unpack(hashes)]
    size, mtime, ctime, ino, dev, mode, uid, gid, deleted, flags = ints
    # tuple.__new__ over zip: every entry is built by C code (no Python-level __new__).
    rows = zip(paths, kinds, size, mtime, ctime, ino, dev, mode, uid, gid, targets, xxhs,
               etags, keys, versions, deleted, flags, rdevs, links, xattrs, strict=True)
    return list(map(tuple.__new__, repeat(Entry), rows))


def _blob_column(values: list[bytes]) -> bytes:
    """Values that may hold any byte (xattrs): u32 lengths (shuffled), then the values
    concatenated; b"" when all are empty."""
    if not any(values):
        return b""
    return _int_column([len(v) for v in values], "I") + b"".join(values)


def _read_blob_column(data: bytes, count: int) -> list[bytes]:
    head = 4 * count
    if len(data) < head:
        raise ManifestError("corrupt manifest segment: column length mismatch")
    lengths = _read_int_column(data[:head], "I")
    if head + sum(lengths) != len(data):
        raise ManifestError("corrupt manifest segment: column length mismatch")
    out, pos = [], head
    for length in lengths:
        out.append(data[pos:pos + length])
        pos += length
    return out


_Format2 = tuple[Iterable[int], Iterable[bytes], Iterable[bytes]]


def _format2_columns(columns: list[bytes], count: int) -> _Format2:
    """rdev, link and xattrs of each entry: the defaults for a BCS1 segment or an empty
    column (shared objects: no memory per entry)."""
    if len(columns) == 17:
        return repeat(0, count), repeat(b"", count), repeat(b"", count)
    rdev, link, blob = columns[17:20]
    rdevs: Iterable[int] = repeat(0, count)
    if rdev:
        rdevs = numbers = _read_int_column(rdev, "q")
        if len(numbers) != count:
            raise ManifestError("corrupt manifest segment: column length mismatch")
    links: Iterable[bytes] = _split(link, count) if link else repeat(b"", count)
    xattrs: Iterable[bytes] = _read_blob_column(blob, count) if blob else repeat(b"", count)
    return rdevs, links, xattrs


def has_content(blob: bytes, wanted: AbstractSet[bytes]) -> bool:
    """Does the segment hold an entry whose content hash is in `wanted`? Reads only the
    hash column: no entries are built (finding copy sources scans whole manifests)."""
    _, columns = _columns(blob)
    hashes = columns[_HASH_COLUMN]
    return not wanted.isdisjoint(
        hashes[i:i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE))


def _split_text(data: bytes, count: int) -> list[str]:
    if count == 0:
        return []
    if len(data) == count - 1 and data == b"\0" * (count - 1):
        return [""] * count  # the common case: the column is all empty
    parts = data.decode().split("\0")
    if len(parts) != count:
        raise ManifestError("corrupt manifest segment: column length mismatch")
    return parts


def segment_hash(blob: bytes | memoryview) -> str:
    """Content address of an encoded segment (hex)."""
    return hashlib.sha256(blob).hexdigest()[:32]


def is_boundary_path(path: bytes) -> bool:
    return xxhash.xxh64_intdigest(path) & BOUNDARY_MASK == 0


class Chunker:
    """Cuts a sorted entry stream into segment-sized runs at content-defined points.

    Deterministic from a fresh start: the same entries always give the same cuts, which
    is what lets an unchanged segment be reused as it is (see rebuild.py).
    """

    def __init__(self) -> None:
        self._pending: list[Entry] = []

    @property
    def empty(self) -> bool:
        return not self._pending

    def add(self, entry: Entry) -> list[Entry] | None:
        """Add one entry; returns a finished run when this entry ends one."""
        pending = self._pending
        pending.append(entry)
        n = len(pending)
        if n >= MAX_ENTRIES or (n >= MIN_ENTRIES and is_boundary_path(entry.path)):
            self._pending = []
            return pending
        return None

    def flush(self) -> list[Entry] | None:
        pending, self._pending = self._pending, []
        return pending or None


def chunk(entries: Iterable[Entry]) -> Iterator[list[Entry]]:
    """Cut a whole sorted stream into runs."""
    chunker = Chunker()
    for entry in entries:
        run = chunker.add(entry)
        if run is not None:
            yield run
    last = chunker.flush()
    if last is not None:
        yield last
