"""Building a new manifest from an old one while re-encoding only what changed.

Segment `i` of a manifest covers the paths in [refs[i].first, refs[i+1].first). When no
path in that range changed, and the chunker is at a cut point where the range starts, the
new manifest would contain exactly the same segment, so the old one is reused as it is:
no decode, no encode, and (remotely) no upload. This is what makes a commit cost
proportional to the change and not to the tree.

Two ways in:
- `rebuild_with_changes`: the old manifest plus a sorted change list (the remote commit).
- `StreamRebuilder`: the complete new stream, entry by entry, each flagged changed or not
  (the local manifest, fed by the walk).
Both yield `SegmentRef` (reuse) or `list[Entry]` (a new run to encode).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from baycat.entry import Entry, path_key
from baycat.manifest.root import SegmentRef
from baycat.manifest.segment import Chunker

Output = SegmentRef | list[Entry]
# A change: (path_key(path), path, new entry or None to remove it).
Change = tuple[bytes, bytes, Entry | None]


def sorted_changes(changes: Mapping[bytes, Entry | None]) -> list[Change]:
    """A path -> new entry (None: remove) map as the sorted list the rebuild takes."""
    return sorted(((path_key(p), p, e) for p, e in changes.items()), key=lambda c: c[0])


def _merge(old: list[Entry], changes: Sequence[Change]) -> Iterator[Entry]:
    i = 0
    for key, path, new in changes:
        while i < len(old) and path_key(old[i].path) < key:
            yield old[i]
            i += 1
        if i < len(old) and old[i].path == path:
            i += 1  # replaced or removed
        if new is not None:
            yield new
    yield from old[i:]


def rebuild_with_changes(
    refs: Sequence[SegmentRef],
    load: Callable[[SegmentRef], list[Entry]],
    changes: Sequence[Change],
) -> Iterator[Output]:
    """Apply `changes` (sorted by key, one per path) to the manifest made of `refs`."""
    chunker = Chunker()
    next_change = 0
    for i, ref in enumerate(refs):
        end_key = path_key(refs[i + 1].first) if i + 1 < len(refs) else None
        stop = next_change
        while stop < len(changes) and (end_key is None or changes[stop][0] < end_key):
            stop += 1
        if stop == next_change and chunker.empty:
            yield ref
            continue
        for entry in _merge(load(ref), changes[next_change:stop]):
            run = chunker.add(entry)
            if run is not None:
                yield run
        next_change = stop
    if not refs:
        for _, _, new in changes:
            if new is not None:
                run = chunker.add(new)
                if run is not None:
                    yield run
    last = chunker.flush()
    if last is not None:
        yield last


class StreamRebuilder:
    """Feed the complete new stream in order; get back reused refs and new runs."""

    def __init__(self, old_refs: Sequence[SegmentRef]) -> None:
        self._refs = old_refs
        self._index = -1  # old segment whose range we are in (-1: before the first)
        self._end_key: bytes | None = path_key(old_refs[0].first) if old_refs else None
        self._buffer: list[Entry] = []
        self._dirty = False
        self._chunker = Chunker()

    def _advance(self, key: bytes | None) -> list[Output]:
        """Close ranges until `key` (None: all) falls in the current one."""
        out: list[Output] = []
        while self._end_key is not None and (key is None or key >= self._end_key):
            out.extend(self._close_range())
            self._index += 1
            nxt = self._index + 1
            self._end_key = path_key(self._refs[nxt].first) if nxt < len(self._refs) else None
        return out

    def _close_range(self) -> list[Output]:
        ref = self._refs[self._index] if self._index >= 0 else None
        out: list[Output]
        if (ref is not None and not self._dirty and self._chunker.empty
                and len(self._buffer) == ref.count):
            out = [ref]
        else:
            out = self._feed(self._buffer)
        self._buffer = []
        self._dirty = False
        return out

    def _feed(self, entries: list[Entry]) -> list[Output]:
        out: list[Output] = []
        for entry in entries:
            run = self._chunker.add(entry)
            if run is not None:
                out.append(run)
        return out

    def _mark_dirty(self) -> list[Output]:
        # Once a range can't be reused, stop buffering it: memory stays at one segment.
        self._dirty = True
        out = self._feed(self._buffer)
        self._buffer = []
        return out

    def add(self, entry: Entry, changed: bool) -> list[Output]:
        key = path_key(entry.path)
        if (not changed and not self._dirty and self._index >= 0
                and (self._end_key is None or key < self._end_key)
                and len(self._buffer) < self._refs[self._index].count):
            self._buffer.append(entry)  # the common case, kept short
            return []
        out = self._advance(key)
        if not self._dirty and (changed or self._index < 0
                                or len(self._buffer) >= self._refs[self._index].count):
            out.extend(self._mark_dirty())
        if self._dirty:
            out.extend(self._feed([entry]))
        else:
            self._buffer.append(entry)
        return out

    def add_unchanged(self, entries: list[Entry]) -> list[Output]:
        """A run of entries that are consecutive entries of the old manifest, unchanged:
        the common case, taken a range at a time instead of an entry at a time.

        While the current range is clean, its remaining old entries are exactly the next
        ones of such a run, so they go into the buffer by count (one C-level slice)."""
        out: list[Output] = []
        i, n = 0, len(entries)
        while i < n:
            if not self._dirty and self._index >= 0:
                room = self._refs[self._index].count - len(self._buffer)
                if room > 0 and (self._end_key is None
                                 or path_key(entries[i].path) < self._end_key):
                    take = min(room, n - i)
                    self._buffer.extend(entries[i:i + take])
                    i += take
                    continue
            out.extend(self.add(entries[i], False))
            i += 1
        return out

    def removed(self, path: bytes) -> list[Output]:
        out = self._advance(path_key(path))
        if not self._dirty:
            out.extend(self._mark_dirty())
        return out

    def finish(self) -> list[Output]:
        out = self._advance(None)
        out.extend(self._close_range())
        last = self._chunker.flush()
        if last is not None:
            out.append(last)
        return out
