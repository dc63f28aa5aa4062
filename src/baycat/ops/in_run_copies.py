"""Duplicates within one run: the first file of a content is uploaded, the others wait
for it and are copied server-side from the object it made (sync_transfers.py).

Memory is bounded: at most `CAPACITY` contents are remembered, the oldest claimed
forgotten first once its upload is settled. A duplicate further from its first copy
than that is uploaded again: one more PUT, never a wrong object. Remembering every
content (a path, a future, a key and a Stored each) took a 1M-file first sync to
814 MiB peak RSS, against 192 MiB before duplicates were detected.
"""

from __future__ import annotations

import asyncio

from baycat.entry import Entry
from baycat.store.base import Stored

# ~360 B each (tracemalloc: the record, its path, the object's key and Stored, the
# dict's slot): about 18 MB at most. A kernel tree (~80,000 files) fits almost whole.
CAPACITY = 50_000

Made = tuple[str, Stored]  # the key of the object holding a content, and its Stored


class _Content:
    """One content's first file and, once its upload is settled, what it made."""

    __slots__ = ("made", "settled", "uploader")

    def __init__(self, uploader: bytes) -> None:
        self.uploader = uploader  # the path of the file that uploads it
        self.settled = False
        self.made: Made | None = None  # None: no object (failed, skipped or multipart)


class InRunCopies:
    """Content uploaded by this run, for copying to its duplicates in the same run.

    `claim` is called in queue order: the first file of a content is its uploader, the
    later ones wait for it. Workers take jobs from one FIFO queue, so by the time a
    duplicate is taken its uploader was taken before it and never waits on a duplicate:
    no cycle. Multipart-sized files are left out (a copy would not keep the multipart
    ETag the manifest records), as are empty files (nothing to save)."""

    def __init__(self, multipart_threshold: int, capacity: int = CAPACITY) -> None:
        self._limit = multipart_threshold
        self._capacity = capacity
        # Content hash -> its record, in claim order (the oldest is forgotten first).
        self._contents: dict[bytes, _Content] = {}
        # Duplicates waiting for an upload in flight (only while one waits).
        self._waiting: dict[bytes, asyncio.Future[Made | None]] = {}

    def _tracked(self, local: Entry) -> bool:
        return 0 < local.size < self._limit and bool(local.xxh)

    def claim(self, local: Entry) -> None:
        if self._tracked(local) and local.xxh not in self._contents:
            self._contents[local.xxh] = _Content(local.path)
            if len(self._contents) > self._capacity:
                self._forget_oldest()

    def _forget_oldest(self) -> None:
        # Only settled ones: a duplicate may be waiting on an upload in flight, which
        # goes to the back of the line instead. Two steps a claim forget settled ones
        # faster than claims add them, so the table holds `capacity` plus the uploads in
        # flight (few: the queue is bounded), except while resolve_deferred claims its
        # whole list (O(changes), like the list itself).
        for _ in range(2):
            if len(self._contents) <= self._capacity:
                return
            oldest = next(iter(self._contents))
            content = self._contents.pop(oldest)
            if not content.settled:
                self._contents[oldest] = content

    def is_duplicate(self, local: Entry) -> bool:
        content = self._contents.get(local.xxh) if self._tracked(local) else None
        return content is not None and content.uploader != local.path

    async def source_for(self, local: Entry) -> Made | None:
        """The key and Stored of the object holding `local`'s content, once uploaded;
        None when `local` is its content's uploader, or that upload failed."""
        if not self.is_duplicate(local):
            return None
        content = self._contents[local.xxh]
        if content.settled:
            return content.made
        waiting = self._waiting.get(local.xxh)
        if waiting is None:
            waiting = self._waiting[local.xxh] = asyncio.get_running_loop().create_future()
        return await asyncio.shield(waiting)

    def uploaded(self, local: Entry, entry: Entry, key: str, stored: Stored) -> None:
        """`local`'s content is now in the object at `key`: unless the file changed
        while it was read (`entry`, what was sent, has another hash), or the object
        was made in parts."""
        if entry.xxh == local.xxh and "-" not in stored.etag:
            self._settle(local, (key, stored))

    def settle(self, local: Entry) -> None:
        """The uploader is done either way: a failed or skipped upload leaves the
        duplicates to upload themselves."""
        self._settle(local, None)

    def _settle(self, local: Entry, made: Made | None) -> None:
        content = self._contents.get(local.xxh) if self._tracked(local) else None
        if content is None or content.uploader != local.path or content.settled:
            return
        content.settled, content.made = True, made
        waiting = self._waiting.pop(local.xxh, None)
        if waiting is not None:
            waiting.set_result(made)
