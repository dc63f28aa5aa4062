"""What a backup run changes in the remote manifest, and committing it.

    differ actions ─┐
    transfers ──────┼─► ChangeSet (path → new entry or None, and its base) ─► commit
    deletes ────────┘        checkpoints every --checkpoint-interval / -bytes, then last

A change records the remote entry it was decided against (its *base*), so that a commit
after another writer's applies only this run's own changes (manifest/rebase.py). A
checkpoint commits what completed so far and starts the set afresh; what arrives while a
commit is in flight is kept for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from baycat.entry import FILE, Entry, as_text
from baycat.manifest.keys import object_key
from baycat.manifest.rebuild import sorted_changes
from baycat.manifest.remote import RemoteManifest
from baycat.manifest.root import Root
from baycat.ops.sync_context import SyncContext
from baycat.progress import Notice


class ChangeSet:
    """The run's pending manifest changes, committed through one RemoteManifest."""

    def __init__(self, ctx: SyncContext, remote: RemoteManifest, template: Root) -> None:
        self.ctx = ctx
        self.remote = remote
        self.template = template
        self.pending: dict[bytes, Entry | None] = {}
        # The remote entry each change was decided against (absent: none). Kept for the
        # whole run: a checkpoint's conflict needs the bases of earlier changes too.
        self.bases: dict[bytes, Entry | None] = {}
        self.bytes_since_commit = 0
        # No checkpoint while held: a --max-changes run commits nothing until the scan
        # has shown the limit holds.
        self.held = False

    def base(self, path: bytes, remote: Entry | None) -> None:
        self.bases[path] = remote

    def put(self, path: bytes, entry: Entry | None) -> None:
        self.pending[path] = entry

    def __contains__(self, path: bytes) -> bool:
        return path in self.pending

    async def commit(self) -> bool:
        """Commit what completed so far; the change set starts afresh."""
        pending, self.pending = self.pending, {}
        try:
            committed = await self.remote.commit(sorted_changes(pending), self.template,
                                                 self.bases)
        except BaseException:
            pending.update(self.pending)  # keep what arrived meanwhile, newest last
            self.pending = pending
            raise
        if committed:
            self.ctx.summary.checkpoints += 1
        self.bytes_since_commit = 0
        return committed

    async def checkpoints(self, done: asyncio.Event) -> None:
        """Commit every --checkpoint-interval seconds or --checkpoint-bytes uploaded,
        until `done`."""
        options = self.ctx.options
        last = time.monotonic()
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.2)
            due = (time.monotonic() - last >= options.checkpoint_seconds
                   or self.bytes_since_commit >= options.checkpoint_bytes)
            if due and self.pending and not done.is_set() and not self.held:
                await self.commit()
                last = time.monotonic()


async def apply_deletes(ctx: SyncContext, changes: ChangeSet, gone: list[Entry]) -> None:
    """Paths deleted locally: marked deleted (kept, restorable), or with --delete their
    objects removed — refused above --max-delete, and when any file failed this run."""
    if not gone:
        return
    options, summary = ctx.options, ctx.summary
    if not options.delete:
        now = time.time_ns()
        for remote in gone:
            changes.put(remote.path, remote._replace(deleted_ns=now))
            summary.marked_deleted.add(remote.size)
            ctx.report("mark-deleted", remote.path, remote.size)
        return
    limit = options.max_delete
    if limit is not None and len(gone) > limit:
        message = (f"not deleting: {len(gone)} paths would be deleted, more than "
                   f"--max-delete {limit}; the rest of the run is committed")
        summary.refuse(message)
        return
    if summary.errors:
        message = "not deleting anything because some files failed this run"
        summary.notices.append(message)
        ctx.warn(Notice(b"", message))
        return
    keys = {object_key(r): r for r in gone if r.kind == FILE}
    failed: dict[str, str] = {}
    if keys and not options.dry_run:
        failed = dict(await ctx.store.delete_many(list(keys)))
    for remote in gone:
        key = object_key(remote) if remote.kind == FILE else None
        if key is not None and key in failed:
            summary.fail(as_text(remote.path), f"delete failed: {failed[key]}")
            continue
        changes.put(remote.path, None)
        summary.deleted.add(remote.size)
        ctx.report("delete", remote.path, remote.size)
