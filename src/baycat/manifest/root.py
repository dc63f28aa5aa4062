"""The manifest root: header, ordered segment references, and history.

The root is the only mutable part of a manifest. Locally it closes the manifest file;
remotely it is the object `PREFIX/.baycat/root`, replaced by one conditional PUT per
commit. Everything else (segments, packs) is immutable and content addressed.

It is JSON (small, readable, and parseable by anything that can GET a file over HTTP).

Format versions: 1 (segments BCS1, no `top`); 2 (segments BCS2 with device numbers,
hardlinks and extended attributes; `top`, the source directory's own metadata). A
format-2 reader reads both; a root may list segments of either encoding (segments a
commit did not touch are kept as they are). Later additions fit without a new version
when an older baycat can safely ignore them: header facts go to `info` (e.g.
"encryption"), kept across commits; anything an older reader must not ignore raises
FORMAT_VERSION.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

from baycat import xattrs
from baycat.errors import ManifestError, ManifestFormatError

FORMAT_VERSION = 2
HASH_ALGORITHM = "xxh3-128"
# Cap on a root's size when read from an untrusted place.
MAX_ROOT_BYTES = 256 << 20


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_POOL_SIZE = 1024
# What a pack name may be: one path component (baycat writes `<ns>-<16 hex>`).
_PACK_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}")


def _corrupt(detail: str) -> ManifestError:
    return ManifestError(f"corrupt manifest root: {detail}")


def _int(value: Any, what: str, low: int = 0, high: int = INT64_MAX) -> int:
    """`value` if it is an integer (not a bool, a float or a string) in [low, high]."""
    if type(value) is not int:
        raise _corrupt(f"{what} is not an integer")
    if not low <= value <= high:
        raise _corrupt(f"{what} out of range")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _corrupt(f"{what} is not a string")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _corrupt(f"{what} is not a list")
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _corrupt(f"{what} is not an object")
    return value


def _pack_name(value: Any, what: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or not (
            _PACK_NAME.fullmatch(value) or (allow_empty and value == "")):
        raise _corrupt(f"bad pack name in a {what} reference")
    return value


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
            raise _corrupt("bad segment reference") from None
        if not (isinstance(hash_, str) and isinstance(first, str)):
            raise _corrupt("bad segment reference")
        return cls(hash_, _int(count, "segment entry count", low=1), os.fsencode(first),
                   _pack_name(pack, "segment", allow_empty=True),
                   _int(offset, "segment offset"), _int(length, "segment length"),
                   _int(files, "segment file count"), _int(size, "segment byte count"))


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
        if not isinstance(raw, dict):
            raise _corrupt("bad history entry")
        try:
            return cls(_int(raw["time_ns"], "history time", low=INT64_MIN),
                       _pack_name(raw["pack"], "history"), _int(raw["offset"], "history offset"),
                       _int(raw["length"], "history length"),
                       _int(raw["files"], "history file count"),
                       _int(raw["bytes"], "history byte count"))
        except KeyError:
            raise _corrupt("bad history entry") from None


@dataclass(frozen=True, slots=True)
class TopDir:
    """The source directory's own mode, owner, mtime and extended attributes (the
    entries only describe what is below it). Format 2; None in a format-1 root."""

    mode: int
    uid: int
    gid: int
    mtime_ns: int
    xattrs: bytes = b""

    @classmethod
    def of(cls, st: os.stat_result, xattrs: bytes = b"") -> TopDir:
        return cls(st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, xattrs)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "uid": self.uid, "gid": self.gid,
                "mtime_ns": self.mtime_ns, "xattrs": self.xattrs.hex()}

    @classmethod
    def from_json(cls, raw: Any) -> TopDir:
        doc = _dict(raw, "top")
        try:
            mode = _int(doc["mode"], "top mode", high=0o177777)
            if mode & 0o170000 != 0o040000:
                raise _corrupt("top mode is not a directory's")
            blob = bytes.fromhex(_str(doc.get("xattrs", ""), "top xattrs"))
            if len(blob) > xattrs.MAX_BLOB:
                raise _corrupt("top xattrs too large")
            xattrs.decode(blob)
            return cls(mode, _int(doc["uid"], "top owner", high=(1 << 32) - 2),
                       _int(doc["gid"], "top group", high=(1 << 32) - 2),
                       _int(doc["mtime_ns"], "top mtime", low=INT64_MIN), blob)
        except KeyError as exc:
            raise _corrupt(f"no {exc.args[0]!r} in top") from None
        except ValueError:
            raise _corrupt("top xattrs malformed") from None


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
    top: TopDir | None = None

    def header_json(self) -> dict[str, Any]:
        """The header as `manifest show --json` prints it."""
        doc: dict[str, Any] = {
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
        if self.top is not None:
            doc["top"] = self.top.to_json()
        return doc

    def to_bytes(self) -> bytes:
        doc = self.header_json()
        doc["segments"] = [ref.to_json() for ref in self.segments]
        doc["history"] = [gen.to_json() for gen in self.history]
        doc["info"] = self.info
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Root:
        """Parse a root, refusing anything baycat would not have written: every field of
        its type and in its range (roots come from untrusted stores)."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise _corrupt("not valid JSON") from None
        except RecursionError:
            raise _corrupt("nested too deeply") from None
        if not isinstance(doc, dict):
            raise _corrupt("not an object")
        version = doc.get("format_version")
        if type(version) is not int or version < 1:
            raise _corrupt("no format version")
        if version > FORMAT_VERSION:
            raise ManifestFormatError(
                f"manifest format {version} is newer than this baycat understands "
                f"({FORMAT_VERSION}); upgrade baycat"
            )
        try:
            pool = doc.get("pool_size")
            return cls(
                created_ns=_int(doc["created_ns"], "creation time", low=INT64_MIN),
                source=_str(doc["source"], "source"),
                baycat_version=_str(doc["baycat_version"], "baycat version"),
                pool_size=None if pool is None else _int(pool, "pool size", low=1,
                                                          high=MAX_POOL_SIZE),
                filters=tuple(_str(f, "filter") for f in _list(doc.get("filters", []),
                                                               "filters")),
                segments=tuple(SegmentRef.from_json(r) for r in _list(doc["segments"],
                                                                      "segments")),
                files=_int(doc["files"], "file count"),
                file_bytes=_int(doc["bytes"], "byte count"),
                entries=_int(doc["entries"], "entry count"),
                history=tuple(Generation.from_json(g) for g in _list(doc.get("history", []),
                                                                     "history")),
                format_version=version,
                hash_algorithm=_str(doc["hash_algorithm"], "hash algorithm"),
                info=_dict(doc.get("info", {}), "info"),
                top=None if doc.get("top") is None else TopDir.from_json(doc["top"]),
            )
        except KeyError as exc:
            raise _corrupt(f"no {exc.args[0]!r}") from None

    def with_segments(self, segments: tuple[SegmentRef, ...]) -> Root:
        """A copy listing `segments`, with the totals recomputed from them."""
        return replace(
            self,
            segments=segments,
            entries=sum(ref.count for ref in segments),
            files=sum(ref.files for ref in segments),
            file_bytes=sum(ref.file_bytes for ref in segments),
        )
