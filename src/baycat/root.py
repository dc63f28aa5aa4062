"""The manifest root: header, ordered segment references, and history.

The root is the only mutable part of a manifest. Locally it closes the manifest file;
remotely it is the object `PREFIX/.baycat/root`, replaced by one conditional PUT per
commit. Everything else (segments, packs) is immutable and content addressed.

It is JSON (small, readable, and parseable by anything that can GET a file over HTTP).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ManifestError, ManifestFormatError

FORMAT_VERSION = 1
HASH_ALGORITHM = "xxh3-128"
# Cap on a root's size when read from an untrusted place.
MAX_ROOT_BYTES = 256 << 20


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """Where one segment lives and what it covers."""

    hash: str  # segment_hash of the encoded bytes
    count: int  # number of entries
    first: bytes  # path of its first entry (segments cover [first, next.first))
    pack: str  # remote pack object name; "" when inline in a local manifest file
    offset: int  # byte offset in the pack or file
    length: int  # encoded length
    files: int  # live regular files in it
    file_bytes: int  # their total size

    def to_json(self) -> list[Any]:
        return [self.hash, self.count, os.fsdecode(self.first), self.pack, self.offset,
                self.length, self.files, self.file_bytes]

    @classmethod
    def from_json(cls, raw: Any) -> SegmentRef:
        try:
            hash_, count, first, pack, offset, length, files, size = raw
        except (TypeError, ValueError):
            raise ManifestError("corrupt manifest root: bad segment reference") from None
        ints = (count, offset, length, files, size)
        if not (isinstance(hash_, str) and isinstance(first, str) and isinstance(pack, str)
                and all(isinstance(v, int) and v >= 0 for v in ints)) or count == 0:
            raise ManifestError("corrupt manifest root: bad segment reference")
        return cls(hash_, count, os.fsencode(first), pack, offset, length, files, size)


@dataclass(frozen=True, slots=True)
class Generation:
    """One earlier commit, kept for history and point-in-time restore."""

    time_ns: int
    pack: str  # pack holding a copy of that generation's root
    offset: int
    length: int
    files: int
    file_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"time_ns": self.time_ns, "pack": self.pack, "offset": self.offset,
                "length": self.length, "files": self.files, "bytes": self.file_bytes}

    @classmethod
    def from_json(cls, raw: Any) -> Generation:
        try:
            return cls(int(raw["time_ns"]), str(raw["pack"]), int(raw["offset"]),
                       int(raw["length"]), int(raw["files"]), int(raw["bytes"]))
        except (KeyError, TypeError, ValueError):
            raise ManifestError("corrupt manifest root: bad history entry") from None


@dataclass(frozen=True, slots=True)
class Root:
    """A whole manifest's description. `info` holds free-form header facts."""

    created_ns: int
    source: str  # the directory the manifest describes (as given)
    baycat_version: str
    pool_size: int | None = None
    filters: tuple[str, ...] = ()
    segments: tuple[SegmentRef, ...] = ()
    files: int = 0  # live regular files
    file_bytes: int = 0  # their total size
    entries: int = 0
    history: tuple[Generation, ...] = ()
    format_version: int = FORMAT_VERSION
    hash_algorithm: str = HASH_ALGORITHM
    info: dict[str, Any] = field(default_factory=dict)

    def header_json(self) -> dict[str, Any]:
        """The header as `manifest show --json` prints it."""
        return {
            "format_version": self.format_version,
            "baycat_version": self.baycat_version,
            "hash_algorithm": self.hash_algorithm,
            "created_ns": self.created_ns,
            "source": self.source,
            "pool_size": self.pool_size,
            "filters": list(self.filters),
            "entries": self.entries,
            "files": self.files,
            "bytes": self.file_bytes,
        }

    def to_bytes(self) -> bytes:
        doc = self.header_json()
        doc["segments"] = [ref.to_json() for ref in self.segments]
        doc["history"] = [gen.to_json() for gen in self.history]
        doc["info"] = self.info
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Root:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ManifestError("corrupt manifest root: not valid JSON") from None
        if not isinstance(doc, dict):
            raise ManifestError("corrupt manifest root: not an object")
        version = doc.get("format_version")
        if not isinstance(version, int):
            raise ManifestError("corrupt manifest root: no format version")
        if version > FORMAT_VERSION:
            raise ManifestFormatError(
                f"manifest format {version} is newer than this baycat understands "
                f"({FORMAT_VERSION}); upgrade baycat"
            )
        try:
            pool = doc.get("pool_size")
            return cls(
                created_ns=int(doc["created_ns"]),
                source=str(doc["source"]),
                baycat_version=str(doc["baycat_version"]),
                pool_size=None if pool is None else int(pool),
                filters=tuple(str(f) for f in doc.get("filters", [])),
                segments=tuple(SegmentRef.from_json(r) for r in doc["segments"]),
                files=int(doc["files"]),
                file_bytes=int(doc["bytes"]),
                entries=int(doc["entries"]),
                history=tuple(Generation.from_json(g) for g in doc.get("history", [])),
                format_version=version,
                hash_algorithm=str(doc["hash_algorithm"]),
                info=dict(doc.get("info", {})),
            )
        except (KeyError, TypeError, ValueError):
            raise ManifestError("corrupt manifest root: missing or invalid fields") from None

    def with_segments(self, segments: tuple[SegmentRef, ...]) -> Root:
        """A copy listing `segments`, with the totals recomputed from them."""
        return replace(
            self,
            segments=segments,
            entries=sum(ref.count for ref in segments),
            files=sum(ref.files for ref in segments),
            file_bytes=sum(ref.file_bytes for ref in segments),
        )
