"""The local manifest file: segments inline, the root at the end.

    b"BAYCATM1" | segment | segment | ... | root JSON | u64 root offset | u32 root length
    | b"BAYCATE1"

Written to a temporary file in the same directory, fsynced, then renamed over the old
one: a crash at any point leaves either the old manifest or the new one. Every segment is
checked against the hash its root records, so corruption is reported, never used.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from baycat.entry import FILE, Entry
from baycat.errors import ManifestError, StateWriteError
from baycat.manifest import segment
from baycat.manifest.root import MAX_ROOT_BYTES, Root, SegmentRef
from baycat.private import open_private

MAGIC = b"BAYCATM1"
END_MAGIC = b"BAYCATE1"
_FOOTER = struct.Struct("<QI8s")

# baycat's state directory at the top of a tree (DIR/.baycat/): the local manifest's home,
# never walked, and no path a restore writes.
STATE_DIRNAME = b".baycat"
DEFAULT_FILENAME = "manifest"


def segment_stats(entries: list[Entry]) -> tuple[int, int]:
    """(live files, their bytes) of a run, as SegmentRef records them."""
    files = [e.size for e in entries if e.kind == FILE and not e.deleted_ns]
    return len(files), sum(files)


class ManifestReader:
    """An open manifest file. Segments are read on demand, so memory stays small."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise
        except IsADirectoryError:
            raise ManifestError(f"manifest {path} is a directory") from None
        except OSError as exc:
            raise ManifestError(f"cannot read manifest {path}: {exc.strerror}") from None
        try:
            self.root = self._read_root()
        except BaseException:
            self._file.close()
            raise

    def _read_root(self) -> Root:
        f = self._file
        if f.read(len(MAGIC)) != MAGIC:
            raise ManifestError(f"{self.path} is not a baycat manifest (bad magic)")
        size = f.seek(0, os.SEEK_END)
        if size < len(MAGIC) + _FOOTER.size:
            raise ManifestError(f"manifest {self.path} is truncated")
        f.seek(size - _FOOTER.size)
        offset, length, end = _FOOTER.unpack(f.read(_FOOTER.size))
        if end != END_MAGIC or offset + length + _FOOTER.size != size or length > MAX_ROOT_BYTES:
            raise ManifestError(f"manifest {self.path} is truncated or corrupt")
        f.seek(offset)
        try:
            return Root.from_bytes(f.read(length))
        except ManifestError as exc:
            raise type(exc)(f"{self.path}: {exc}") from None

    def read_blob(self, ref: SegmentRef) -> bytes:
        # pread: safe while another thread streams entries from the same file.
        blob = os.pread(self._file.fileno(), ref.length, ref.offset)
        if len(blob) != ref.length or segment.segment_hash(blob) != ref.hash:
            raise ManifestError(f"manifest {self.path} is corrupt (segment {ref.hash})")
        return blob

    def read_segment(self, ref: SegmentRef) -> list[Entry]:
        return self.decode_segment(ref, self.read_blob(ref))

    def decode_segment(self, ref: SegmentRef, blob: bytes) -> list[Entry]:
        """The entries of a blob `read_blob(ref)` returned."""
        entries = segment.decode(blob)
        if len(entries) != ref.count:
            raise ManifestError(f"manifest {self.path} is corrupt (segment {ref.hash})")
        return entries

    def verify(self) -> None:
        """Check every segment against its recorded hash (reads, doesn't decode)."""
        for ref in self.root.segments:
            self.read_blob(ref)

    def entries(self) -> Iterator[Entry]:
        # chain, not a generator: each next() of a no-change scan's merge is then C code.
        return chain.from_iterable(map(self.read_segment, self.root.segments))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ManifestReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def temp_path(path: Path) -> Path:
    """Where a new version of `path` is written before it replaces it."""
    return path.with_name(f"{temp_prefix(path.name)}{os.getpid()}")


def temp_prefix(name: str) -> str:
    """How the names of the temp files of the file `name` start (`temp_path` adds the
    pid of the run that writes it)."""
    return f".{name}{_TEMP_MARK}"


_TEMP_MARK = ".tmp-"
_TEMP_NAME = re.compile(r"\.(.+)\.tmp-[0-9]+")


def remove_stale_temps(directory: Path, name: str | None = None) -> None:
    """Blocking: delete what killed runs left in `directory`: temp files (`temp_path`) of
    `name`, or of any file. Only for a caller holding the lock that covers them (the
    tree's lock: one baycat per tree), so none belongs to a live run. Best effort."""
    try:
        names = os.listdir(directory)
    except OSError:
        return  # no directory yet, or unreadable: whatever the run does next reports it
    for entry in names:
        match = _TEMP_NAME.fullmatch(entry)
        if match is not None and name in (None, match.group(1)):
            with contextlib.suppress(OSError):
                os.unlink(directory / entry)


class ManifestWriter:
    """Writes a new manifest file next to `path`; `commit()` makes it replace the old one.

    Every OSError (disk full, read-only or unwritable directory) is a StateWriteError naming
    `path`; `abort()` removes the temp file and never raises."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = temp_path(path)
        with self._writing():
            # Mode 0600 whatever the umask: a manifest lists every name of the tree.
            fd = open_private(self._tmp, os.O_WRONLY | os.O_TRUNC)
            self._file: BinaryIO = os.fdopen(fd, "wb")  # closed by commit/abort
            self._file.write(MAGIC)
        self._offset = len(MAGIC)
        self.refs: list[SegmentRef] = []

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise StateWriteError.of("write", self.path, exc) from None

    def add_blob(self, blob: bytes | memoryview, count: int, first: bytes, files: int,
                 size: int) -> None:
        ref = SegmentRef(segment.segment_hash(blob), count, first, "", self._offset, len(blob),
                         files, size)
        with self._writing():
            self._file.write(blob)
        self._offset += len(blob)
        self.refs.append(ref)

    def copy_segment(self, source: ManifestReader, ref: SegmentRef) -> None:
        """Reuse a segment of another manifest file as it is (verified, not decoded)."""
        self.add_blob(source.read_blob(ref), ref.count, ref.first, ref.files, ref.file_bytes)

    def add_entries(self, entries: list[Entry]) -> None:
        files, size = segment_stats(entries)
        self.add_blob(segment.encode(entries), len(entries), entries[0].path, files, size)

    def commit(self, root: Root) -> Root:
        """Write `root` (with this file's segments) and atomically replace the manifest."""
        final = root.with_segments(tuple(self.refs))
        data = final.to_bytes()
        with self._writing():
            self._file.write(data)
            self._file.write(_FOOTER.pack(self._offset, len(data), END_MAGIC))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self.path)
            _fsync_dir(self.path.parent)
        return final

    def abort(self) -> None:
        """Drop the new file. Never raises: it runs while another error is on its way
        out, and closing flushes what is buffered, which fails again on a full disk."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
