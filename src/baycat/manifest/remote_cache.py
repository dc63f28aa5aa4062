"""The local cache of a remote manifest: one local manifest file per destination.

    <state dir>/remote/<hash of the URL>     segments = the remote ones (same hashes);
                                             root.info = the remote root and its ETag

It is only a cache: its segments are checked against their hashes when it is opened,
and whatever is damaged (a segment, or the whole file) is left out, so the remote
manifest fetches it again from the store (with a notice). Each rewrite makes a new file
version (`CachedSegments`); a replaced version stays open until `close()`, because a
differ may still be streaming the root that was current when it began.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

from baycat import version
from baycat.entry import Entry
from baycat.errors import ManifestError, StateWriteError
from baycat.manifest.file import ManifestReader, ManifestWriter
from baycat.manifest.root import Root, SegmentRef
from baycat.private import mkdir_private


class CachedSegments:
    """One version of the cache file: its segments by hash."""

    def __init__(self, reader: ManifestReader) -> None:
        self.reader = reader
        self.refs: dict[str, SegmentRef] = {ref.hash: ref for ref in reader.root.segments}

    def __contains__(self, segment_hash: str) -> bool:
        return segment_hash in self.refs

    def blob(self, segment_hash: str) -> bytes:
        return self.reader.read_blob(self.refs[segment_hash])

    def segment(self, segment_hash: str) -> list[Entry]:
        ref = self.refs.get(segment_hash)
        if ref is None:
            raise ManifestError(f"segment {segment_hash} missing from the manifest cache")
        return self.reader.read_segment(ref)

    def decode(self, segment_hash: str, blob: bytes) -> list[Entry]:
        return self.reader.decode_segment(self.refs[segment_hash], blob)


class RemoteCache:
    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url
        self.current: CachedSegments | None = None
        self._retired: list[CachedSegments] = []
        self.notices: list[str] = []

    def open(self) -> tuple[Root | None, str | None]:
        """Blocking: the cached remote root and its ETag, (None, None) without a usable
        cache. Every cached segment is checked against its hash here (reads the file,
        decodes nothing: 3.5 ms per 100,000 entries, measured), so that no later read
        fails half-way through a run; damaged ones are left out, and loading fetches
        them again from the store."""
        try:
            reader = ManifestReader(self.path)
        except FileNotFoundError:
            return None, None
        except ManifestError as exc:
            self._damaged(f"{exc}; fetching the whole manifest again")
            return None, None
        try:
            remote_root = Root.from_bytes(json.dumps(reader.root.info["remote_root"]).encode())
            etag = str(reader.root.info["remote_etag"])
        except (KeyError, TypeError, ManifestError):
            reader.close()
            self._damaged("it holds no remote root; fetching the whole manifest again")
            return None, None
        cached = self._replace(reader)
        damaged = [ref for ref in reader.root.segments if not _intact(reader, ref)]
        for ref in damaged:
            cached.refs.pop(ref.hash, None)
        if damaged:
            self._damaged(f"{len(damaged)} of its {len(reader.root.segments)} segments "
                          "are damaged; fetching them again")
        return remote_root, etag

    def has(self, segment_hash: str) -> bool:
        return self.current is not None and segment_hash in self.current

    def write(self, root: Root, etag: str, fetched: Mapping[str, bytes | memoryview]) -> None:
        """Blocking: a new cache file for `root`, with the segments in `fetched` and the
        rest copied from the current version."""
        try:
            mkdir_private(self.path.parent, parents=True)
        except OSError as exc:
            raise StateWriteError.of("create", self.path.parent, exc) from None
        writer = ManifestWriter(self.path)
        try:
            for ref in root.segments:
                blob = fetched.get(ref.hash)
                if blob is None:
                    assert self.current is not None
                    blob = self.current.blob(ref.hash)
                writer.add_blob(blob, ref.count, ref.first, ref.files, ref.file_bytes)
            info = {"remote_root": json.loads(root.to_bytes()), "remote_etag": etag,
                    "url": self.url}
            writer.commit(Root(created_ns=time.time_ns(), source=self.url,
                               baycat_version=version.__version__, info=info))
        except BaseException:
            writer.abort()
            raise
        self._replace(ManifestReader(self.path))

    def _replace(self, reader: ManifestReader) -> CachedSegments:
        if self.current is not None:
            self._retired.append(self.current)
        self.current = CachedSegments(reader)
        return self.current

    def _damaged(self, detail: str) -> None:
        self.notices.append(f"the cache of the remote manifest ({self.path}) was "
                            f"damaged: {detail}")

    def close(self) -> None:
        for cached in (*self._retired, *([self.current] if self.current else [])):
            cached.reader.close()
        self.current, self._retired = None, []


def _intact(reader: ManifestReader, ref: SegmentRef) -> bool:
    try:
        reader.read_blob(ref)
    except ManifestError:
        return False
    return True
