"""A backup run: local tree → object store, the manifest committed last.

    scan (walk ⋈ local manifest → hashes) ──► DiffFeed ──► actions ─┬► Transfers ─┐
    remote manifest load (concurrently) ───┘    (sync_diff.py)      ├► metadata ──┼► ChangeSet
                                                                    └► gone ──────┘
    ... then deletes (only when nothing failed), then the last remote commit (earlier
    ones are checkpoints), then the local manifest and the no-change marker.

`BackupRun` wires the parts (each keeps its own state) and runs the phases in order;
the parts share one SyncContext (sync_context.py). A file that fails is reported and
left out of the changes, so the remote manifest never claims an object that isn't there,
and the next run tries it again.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from pathlib import Path

from baycat import version
from baycat.entry import DIR, FILE, Entry
from baycat.manifest.file import ManifestReader
from baycat.manifest.keys import object_key
from baycat.manifest.remote import RemoteManifest
from baycat.manifest.root import Root
from baycat.manifest.synced import (
    SyncedState,
    forget_synced,
    read_synced,
    root_digest,
    write_synced,
)
from baycat.ops.differ import Action, Decision
from baycat.ops.prepare import check_source_dir, choose_pool_size, resolve_filters, skip_manifest
from baycat.ops.safety import (
    ChangeLimit,
    check_versioning,
    object_lock_info,
    warn_versioning,
)
from baycat.ops.summary import SyncSummary
from baycat.ops.sync_changes import ChangeSet, apply_deletes
from baycat.ops.sync_context import SyncContext, SyncOptions
from baycat.ops.sync_diff import DiffFeed
from baycat.ops.sync_transfers import Transfers
from baycat.ops.transfer import Uploader, abort_leftover_uploads
from baycat.ops.upload_journal import UploadJournal
from baycat.progress import ActionFunc, Notice, NoticeFunc, Progress, ignore_notice
from baycat.scan.filters import combine
from baycat.scan.local_manifest import (
    LocalManifestSink,
    entries_of,
    lock_path,
    open_manifest,
)
from baycat.scan.lock import TreeLock
from baycat.scan.pipeline import ScanConfig, ScanItem, read_top, scan
from baycat.scan.selection import missing_listed
from baycat.scan.statedir import (
    choose_state_dir,
    remote_cache_path,
    remove_stale_state,
    sync_job,
)
from baycat.store.base import ObjectStore

__all__ = ["BackupRun", "SyncOptions", "sync_to_store"]


class BackupRun:
    """One backup of the tree at `source` to `store`: `await BackupRun(...).run()`.

    Takes the tree's lock, cleans up after killed runs, aborts their multipart
    leftovers, then runs the phases (`_Phases`) with the remote manifest and the old
    local manifest open."""

    def __init__(self, source: Path, store: ObjectStore, options: SyncOptions,
                 progress: Progress, warn: NoticeFunc, on_action: ActionFunc | None) -> None:
        self.source = check_source_dir(source)
        self.store = store
        self.options = options
        self.state_dir = choose_state_dir(self.source, sync_job(store.url), options.state_dir,
                                          options.user_state_dir)
        self.manifest_path = options.manifest or self.state_dir / "manifest"
        self.ctx = SyncContext(self.source, store, options, progress, warn, on_action)
        self.uploader = Uploader(store, options.transfer, self.ctx.root_bytes, options.stop)

    async def run(self) -> SyncSummary:
        started = time.perf_counter()
        summary = self.ctx.summary
        with TreeLock(lock_path(self.manifest_path), str(self.source)), \
                tempfile.TemporaryDirectory(prefix="baycat-dry-") as scratch:
            cache = await self._prepare(Path(scratch))
            remote = RemoteManifest(self.store, cache, self.options.history,
                                    self.options.verify_commits)
            old = open_manifest(self.manifest_path)
            try:
                phases = _Phases(self.ctx, self.uploader, remote, old, self.manifest_path,
                                 cache.with_name(cache.name + ".synced"))
                await phases.run()
            finally:
                remote.close()
                if old is not None:
                    old.close()
                summary.requests = dict(self.store.requests)
                summary.notices.extend(remote.notices)
                summary.manifest_bytes_uploaded = remote.bytes_uploaded
                summary.manifest_bytes_downloaded = remote.bytes_downloaded
                summary.seconds["total"] = time.perf_counter() - started
        return summary

    async def _prepare(self, scratch: Path) -> Path:
        """Clean up after killed runs and check the store; returns the remote cache's
        path (a throwaway one for a dry run)."""
        dry_run = self.options.dry_run
        if not dry_run:
            remove_stale_state(self.state_dir)
        await self.store.check()
        cache = remote_cache_path(scratch if dry_run else self.state_dir, self.store.url)
        if not dry_run:
            journal = UploadJournal(cache.with_name(cache.name + ".uploads"))
            self.uploader.journal = journal
            aborted = await abort_leftover_uploads(self.store, journal)
            if aborted:
                self.ctx.summary.notices.append(
                    f"aborted {aborted} incomplete multipart uploads that an interrupted "
                    "run had left")
        return cache


class _Phases:
    """The phases of a run, in order: scan ⋈ differ ⋈ transfers (together), deletes,
    the last commit, the local manifest and the no-change marker."""

    def __init__(self, ctx: SyncContext, uploader: Uploader, remote: RemoteManifest,
                 old: ManifestReader | None, manifest_path: Path, synced_path: Path) -> None:
        options = ctx.options
        self.ctx = ctx
        self.summary = ctx.summary
        self.remote = remote
        self.old = old
        self.synced_path = synced_path
        self.filters = resolve_filters(options.filters, old.root if old else None)
        template = Root(created_ns=0, source=f"{socket.gethostname()}:{ctx.source}",
                        baycat_version=version.__version__, filters=self.filters.to_header(),
                        top=read_top(ctx.root_bytes, options.xattrs),
                        info=object_lock_info(options.object_lock_days,
                                              options.object_lock_mode))
        self.manifest_path = manifest_path
        self.sink = LocalManifestSink(manifest_path, old)
        self.changes = ChangeSet(ctx, remote, template)
        self.transfers = Transfers(ctx, self.changes, uploader)
        self.limit = ChangeLimit(ctx)
        self.changes.held = (options.max_changes is not None
                             or options.max_changes_fraction is not None)
        self.gone: list[Entry] = []  # remote entries of paths deleted locally
        # The remote manifest loads while the scan starts; the differ waits for it.
        self.loaded = asyncio.ensure_future(remote.load(ignore_damage=options.scan_remote))
        synced = None if options.scan_remote else read_synced(synced_path)
        self.feed = DiffFeed(ctx, remote, self.loaded, self.filters, synced,
                             old.root if old else None)

    async def run(self) -> None:
        try:
            await self._run()
        except BaseException:
            self.sink.abort()
            # After a commit, the marker no longer matches the remote root anyway; after
            # a failure, say plainly that the last sync was not clean.
            forget_synced(self.synced_path)
            raise
        finally:
            if not self.loaded.done():
                self.loaded.cancel()

    async def _run(self) -> None:
        options, summary = self.ctx.options, self.summary
        if options.require_versioning:  # before anything is read or written
            await self.loaded
            await check_versioning(self.ctx, self.remote)
        if options.scan_remote:
            await self.transfers.load_listing()
        complete = await self._scan_and_transfer()
        interrupted = not complete or self.ctx.stop_requested()
        self.transfers.record_damaged()
        refused = bool(summary.refused)
        if not interrupted and not refused:
            await apply_deletes(self.ctx, self.changes, self.gone)
        commit_started = time.perf_counter()
        if options.dry_run or refused:
            self.sink.abort()
            forget_synced(self.synced_path)
        else:
            await self._commit(interrupted)
        summary.interrupted = interrupted
        summary.seconds["commit"] = time.perf_counter() - commit_started
        await check_versioning(self.ctx, self.remote)
        warn_versioning(self.ctx)

    async def _scan_and_transfer(self) -> bool:
        """The scan, the differ and the transfers, running together; False when a stop
        request cut the scan short."""
        ctx, options, summary = self.ctx, self.ctx.options, self.summary
        transfers_done = asyncio.Event()
        workers = options.transfer.transfers
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.transfers.worker()) for _ in range(workers)]
            if not options.dry_run:
                group.create_task(self.changes.checkpoints(transfers_done))
            scan_started = time.perf_counter()
            pool = choose_pool_size(options.pool_size, self.old.root if self.old else None)
            await self._report_missing_listed()
            stat_cache = None
            if self.old is None:
                # No local manifest for this job (a snapshot at a new path with fresh
                # state, lost state): the remote manifest's stat fields stand in for it,
                # so unchanged files are not read (pipeline.py; docs/design.md says why
                # this can't take a changed file for an unchanged one).
                await self.loaded
                stat_cache = self.remote.entries()
            complete = await scan(ctx.root_bytes, entries_of(self.old),
                                  ScanConfig(pool_size=pool, xattrs=options.xattrs,
                                             reuse_old=_reusable(self.old),
                                             one_file_system=self.filters.one_file_system),
                                  self._on_batch,
                                  progress=ctx.progress, warn=ctx.warn, stop=options.stop,
                                  stat_cache=stat_cache,
                                  path_filter=combine(
                                      skip_manifest(ctx.source, self.manifest_path),
                                      self.filters.path_filter(ctx.source)))
            await self._take(await self.feed.finish(complete))
            summary.unchanged.files = self.feed.same
            self._check_limit()
            summary.seconds["scan"] = time.perf_counter() - scan_started
            await self.transfers.resolve_deferred(self.remote)
            await self.transfers.close(workers)
            await asyncio.gather(*tasks)
            transfers_done.set()
        summary.seconds["transfer"] = time.perf_counter() - scan_started
        return complete

    async def _report_missing_listed(self) -> None:
        """--files-from paths the tree doesn't have (or has only behind a symlink, which
        the walk doesn't follow) are not backed up: each is a failed path (exit 1), as
        rsync reports them, not silence."""
        listed = self.filters.files_from
        if not listed:
            return
        for path in await asyncio.to_thread(missing_listed, self.ctx.root_bytes, listed):
            self.ctx.warn(Notice(path, "listed in --files-from but not in the tree (or only "
                                       "through a symlink): not backed up"))

    def _check_limit(self) -> None:
        """--max-changes, once the scan has counted the changed files: above the limit
        nothing is uploaded (new content was still waiting: the remote manifest is not
        empty) and nothing is committed."""
        self.limit.start(self.remote)
        if self.limit.exceeded:
            self.limit.refuse()
            self.transfers.deferred = []
            self.changes.pending = {}
            self.gone = []
        else:
            self.changes.held = False

    async def _on_batch(self, items: list[ScanItem]) -> None:
        self.sink.add_items(items)
        await self._take(await self.feed.feed(items))

    async def _take(self, actions: list[Action]) -> None:
        """Route the differ's actions: metadata into the change set, new content to the
        transfers, deleted paths to the delete step."""
        for action in actions:
            self.changes.base(action.path, action.remote)
            if action.decision is Decision.META:
                entry = action.meta_entry()
                self.changes.put(entry.path, entry)
                if entry.kind == DIR or entry.etag:  # the object is there already
                    await self.ctx.mirror_metadata(entry, object_key(entry)
                                                   if entry.kind == FILE else None)
                self.summary.metadata.add(0)
                self.ctx.report("metadata", entry.path, 0)
            elif action.decision is Decision.CONTENT:
                assert action.local is not None
                self.limit.count(action.remote)
                await self.transfers.add(action.local, stream=self.feed.remote_empty)
            else:
                assert action.remote is not None
                self.gone.append(action.remote)

    async def _commit(self, interrupted: bool) -> None:
        """The last remote commit, then the local manifest (kept as it was after a
        partial walk), then the no-change marker (only after a clean run)."""
        summary, remote, old = self.summary, self.remote, self.old
        await self.changes.commit()
        summary.committed = summary.checkpoints > 0
        if self.ctx.options.scan_remote:
            self.transfers.report_unknown(remote)
        written = None
        if interrupted:
            self.sink.abort()
        else:
            written = self.sink.finish(Root(
                created_ns=time.time_ns(), source=str(self.ctx.source),
                baycat_version=version.__version__, filters=self.filters.to_header(),
                pool_size=old.root.pool_size if old else None, top=self.changes.template.top))
        local_root = written or (old.root if old is not None else None)
        if (interrupted or summary.errors or summary.refused or remote.etag is None
                or local_root is None or self.transfers.damaged or remote.contested_paths):
            forget_synced(self.synced_path)
        else:
            write_synced(self.synced_path, SyncedState(remote.etag, root_digest(local_root),
                                                       self.ctx.options.delete))


def _reusable(old: ManifestReader | None) -> bool:
    """Can the scan reuse the old local manifest's entries as they are? Not format 1's:
    they lack extended attributes, hardlinks and the sparse flag."""
    return old is None or old.root.format_version >= 2


async def sync_to_store(
    source: Path,
    store: ObjectStore,
    options: SyncOptions | None = None,
    *,
    progress: Progress | None = None,
    warn: NoticeFunc = ignore_notice,
    on_action: ActionFunc | None = None,
) -> SyncSummary:
    """Back up the tree at `source` to `store`."""
    run = BackupRun(source, store, options or SyncOptions(), progress or Progress(), warn,
                    on_action)
    return await run.run()
