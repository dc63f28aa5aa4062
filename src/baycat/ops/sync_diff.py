"""Feeding the scan to the differ, once the remote manifest has loaded.

The scan starts before the remote manifest is known (its root is fetched concurrently);
the first batch waits for it. Then one of two ways:

- the full merge: every batch goes through `Differ.feed` against the whole remote
  manifest stream;
- the no-change shortcut (manifest/synced.py): when the last sync was clean and neither
  side moved since, only the paths whose local entry changed are kept, and at the end
  they alone meet the remote manifest (decoding just the segments that cover them).

Remote entries a filter excludes are left out of the differ unless --delete-excluded
(excluded paths are not ours to delete).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from baycat.entry import Entry, path_key
from baycat.manifest.remote import RemoteManifest
from baycat.manifest.root import Root
from baycat.manifest.synced import SyncedState, root_digest
from baycat.ops.differ import Action, Differ
from baycat.ops.sync_context import SyncContext
from baycat.scan.filters import FilterSpec
from baycat.scan.pipeline import ScanItem


class DiffFeed:
    def __init__(self, ctx: SyncContext, remote: RemoteManifest,
                 loaded: asyncio.Future[None], filters: FilterSpec,
                 synced: SyncedState | None, old_root: Root | None) -> None:
        self.ctx = ctx
        self.remote = remote
        self._loaded = loaded
        self._filters = filters
        self._synced = synced
        self._old_root = old_root
        self._differ: Differ | None = None
        # The shortcut's changed items (None: the full merge runs), and how many it
        # found unchanged.
        self._changed: list[ScanItem] | None = None
        self._same = 0
        self.remote_empty = True  # known once the remote manifest has loaded

    @property
    def same(self) -> int:
        """Paths found in sync (unchanged or unreadable now)."""
        assert self._differ is not None
        return self._differ.same + self._same

    async def _start(self) -> Differ:
        await self._loaded
        remote, options = self.remote, self.ctx.options
        self.remote_empty = remote.root is None or remote.root.entries == 0
        if (self._synced is not None and self._old_root is not None
                and remote.etag is not None
                and self._synced == SyncedState(remote.etag, root_digest(self._old_root),
                                                options.delete)):
            self._changed = []
        return self._differ_over(remote.entries())

    def _differ_over(self, entries: Iterator[Entry]) -> Differ:
        if not self.ctx.options.delete_excluded:  # excluded: not ours, not deleted
            entries = self._filters.keep_remote(self.ctx.source, entries)
        return Differ(entries, purge_deleted=self.ctx.options.delete)

    async def feed(self, items: list[ScanItem]) -> list[Action]:
        """The actions for a batch of scan items (none yet on the shortcut)."""
        if self._differ is None:
            self._differ = await self._start()
        if self._changed is None:
            return await asyncio.to_thread(self._differ.feed, items)
        for item in items:
            if item.entry is item.old or item.error:
                self._same += 1
            else:
                self._changed.append(item)
        return []

    async def finish(self, complete: bool) -> list[Action]:
        """The actions left once the scan ended. Only a `complete` scan concludes that
        the remote entries past its last path were deleted locally."""
        if self._differ is None:  # an empty tree: no batch came
            self._differ = await self._start()
        actions: list[Action] = []
        if self._changed is not None:
            found = await asyncio.to_thread(self.remote.lookup,
                                            [i.path for i in self._changed])
            self._differ = self._differ_over(
                iter(sorted(found.values(), key=lambda e: path_key(e.path))))
            actions += await asyncio.to_thread(self._differ.feed, self._changed)
        if complete:
            actions += await asyncio.to_thread(self._differ.finish)
        return actions
