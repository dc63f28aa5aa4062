"""Duplicates within one run: the first file of a content is uploaded, the others wait
for it and are copied server-side from the object it made (sync_transfers.py)."""

from __future__ import annotations

import asyncio

from baycat.entry import Entry
from baycat.store.base import Stored


class InRunCopies:
    """Content uploaded by this run, for copying to its duplicates in the same run.

    `claim` is called in queue order: the first file of a content is its uploader, the
    later ones wait for it. Workers take jobs from one FIFO queue, so by the time a
    duplicate is taken its uploader was taken before it and never waits on a duplicate:
    no cycle. Multipart-sized files are left out (a copy would not keep the multipart
    ETag the manifest records), as are empty files (nothing to save)."""

    def __init__(self, multipart_threshold: int) -> None:
        self._limit = multipart_threshold
        self._uploader: dict[bytes, bytes] = {}  # content hash -> path of its uploader
        self._made: dict[bytes, asyncio.Future[tuple[str, Stored] | None]] = {}

    def _tracked(self, local: Entry) -> bool:
        return 0 < local.size < self._limit and bool(local.xxh)

    def claim(self, local: Entry) -> None:
        if self._tracked(local) and local.xxh not in self._uploader:
            self._uploader[local.xxh] = local.path
            self._made[local.xxh] = asyncio.get_running_loop().create_future()

    def is_duplicate(self, local: Entry) -> bool:
        uploader = self._uploader.get(local.xxh) if self._tracked(local) else None
        return uploader is not None and uploader != local.path

    async def source_for(self, local: Entry) -> tuple[str, Stored] | None:
        """The key and Stored of the object holding `local`'s content, once uploaded;
        None when `local` is its content's uploader, or that upload failed."""
        if not self.is_duplicate(local):
            return None
        return await asyncio.shield(self._made[local.xxh])

    def uploaded(self, local: Entry, entry: Entry, key: str, stored: Stored) -> None:
        """`local`'s content is now in the object at `key`: unless the file changed
        while it was read (`entry`, what was sent, has another hash), or the object
        was made in parts."""
        made = self._made.get(local.xxh) if self._tracked(local) else None
        if (made is not None and not made.done() and self._uploader[local.xxh] == local.path
                and entry.xxh == local.xxh and "-" not in stored.etag):
            made.set_result((key, stored))

    def settle(self, local: Entry) -> None:
        """The uploader is done either way: a failed or skipped upload leaves the
        duplicates to upload themselves."""
        if self._tracked(local) and self._uploader.get(local.xxh) == local.path:
            made = self._made[local.xxh]
            if not made.done():
                made.set_result(None)
