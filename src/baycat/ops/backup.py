"""Wiring of a backup run: local tree → object store, the manifest committed last.

    scan (walk ⋈ local manifest → hashes)  ─┐
    remote manifest load (concurrently)  ───┴► differ ─► transfer workers ─► changes
                                                   └──► META / GONE ─────────► changes
    ... then deletes (only when nothing failed), then one remote commit, then the local
    manifest.

A file that fails is reported and left out of the changes, so the remote manifest never
claims an object that isn't there, and the next run tries it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from baycat.entry import FILE, Entry, as_text, path_key
from baycat.errors import BaycatError, BucketMissingError, CredentialsError
from baycat.manifest.file import remove_stale_temps
from baycat.manifest.keys import key_for_path, object_key, stored_key
from baycat.manifest.rebuild import sorted_changes
from baycat.manifest.remote import DEFAULT_HISTORY, RemoteManifest
from baycat.manifest.root import Root
from baycat.manifest.synced import (
    SyncedState,
    forget_synced,
    read_synced,
    root_digest,
    write_synced,
)
from baycat.ops.differ import Action, Decision, Differ, as_remote
from baycat.ops.prepare import check_source_dir, choose_pool_size, resolve_filters
from baycat.ops.summary import SyncSummary
from baycat.ops.transfer import TransferConfig, Uploader, abort_leftover_uploads, file_etag
from baycat.ops.transfer_plan import CopyReaders, Job, order_jobs
from baycat.ops.upload_journal import UploadJournal
from baycat.progress import Notice, NoticeFunc, Progress, ignore_notice
from baycat.scan.filters import FilterSpec, read_ignore_files
from baycat.scan.local_manifest import (
    LocalManifestSink,
    default_manifest_path,
    entries_of,
    lock_path,
    open_manifest,
)
from baycat.scan.lock import TreeLock
from baycat.scan.pipeline import ScanConfig, ScanItem, scan
from baycat.scan.statedir import ensure_state_dir
from baycat.stop import StopRequest
from baycat.store.base import NotFound, ObjectInfo, ObjectStore, PreconditionFailed, Stored
from baycat.store.layout import is_state_key
from baycat.version import __version__

# Uploads at least this big get their own line in the live display.
LARGE_FILE = 32 << 20

# Errors that mean the whole run can't go on (not one file's problem).
FATAL = (CredentialsError, BucketMissingError)


@dataclass(frozen=True, slots=True)
class SyncOptions:
    delete: bool = False  # remove objects of files deleted locally (default: keep, mark)
    max_delete: int | None = None  # refuse the delete step when more would go
    dry_run: bool = False
    pool_size: int | None = None
    transfer: TransferConfig = field(default_factory=TransferConfig)
    history: int = DEFAULT_HISTORY
    # Commit the remote manifest during long runs, so a crash loses at most this much.
    checkpoint_seconds: float = 60.0
    checkpoint_bytes: int = 1 << 30
    # List the bucket once and adopt objects that already hold a file's content
    # (uploads that never reached the manifest; a lost or corrupt remote manifest).
    scan_remote: bool = False
    # Re-read the root after each commit: several writers on a server whose conditional
    # PUT is not atomic (see remote_manifest.RemoteManifest).
    verify_commits: bool = False
    stop: StopRequest | None = None
    # What to leave out (None: the filters recorded in the local manifest). Paths a
    # filter excludes are left alone in the backup unless delete_excluded.
    filters: FilterSpec | None = None
    delete_excluded: bool = False


# on_action(kind, path, bytes): one call per operation, for `-v` output.
ActionFunc = Callable[[str, str, int], None]


def cache_path(state_dir: Path, url: str) -> Path:
    return state_dir / "remote" / hashlib.sha256(url.encode()).hexdigest()[:24]


def remove_stale_state(state_dir: Path) -> None:
    """Blocking: the temp files killed runs left in a tree's state directory and in its
    caches' directory. Only under the tree's lock (no other baycat writes there)."""
    remove_stale_temps(state_dir)
    remove_stale_temps(cache_path(state_dir, "").parent)


def _fatal(exc: BaseException) -> bool:
    return isinstance(exc, FATAL)


class _Run:
    """The mutable state of one backup run (one instance per run)."""

    def __init__(self, source: Path, store: ObjectStore, options: SyncOptions,
                 progress: Progress, warn: NoticeFunc,
                 on_action: ActionFunc | None) -> None:
        self.source = source
        self.root_bytes = os.fsencode(source)
        self.store = store
        self.options = options
        self.progress = progress
        self.warn = warn
        self.on_action = on_action
        self.summary = SyncSummary(source=str(source), destination=store.url,
                                   dry_run=options.dry_run)
        self.changes: dict[bytes, Entry | None] = {}
        # The remote entry each change was decided against (absent: none): what a
        # commit after another writer's needs to apply only this run's own changes.
        self.bases: dict[bytes, Entry | None] = {}
        self.deferred: list[Entry] = []  # new content, waiting for copy sources
        self.gone: list[Entry] = []
        self.queue: asyncio.Queue[Job | None] = asyncio.Queue(options.transfer.transfers * 4)
        self.readers = CopyReaders(())  # keys that queued copies still have to read
        # Remote entries whose object no longer holds their content (a conditional copy
        # from them was refused): marked for re-upload, and the next run merges in full.
        self.damaged: dict[bytes, Entry] = {}
        self.uploader = Uploader(store, options.transfer, self.root_bytes, options.stop)
        self.prefix = store.key_prefix
        self.listing: dict[str, ObjectInfo] = {}  # --scan-remote: the bucket's objects
        self.bytes_since_checkpoint = 0
        self.stopped = False

    def stop_requested(self) -> bool:
        stop = self.options.stop
        return stop is not None and stop.requested

    def report(self, what: str, path: bytes, size: int) -> None:
        if self.on_action is not None:
            self.on_action(what, as_text(path), size)

    # ---- differ output ---------------------------------------------------------------

    async def take(self, actions: list[Action], remote_empty: bool) -> None:
        for action in actions:
            self.bases[action.path] = action.remote
            if action.decision is Decision.META:
                entry = action.meta_entry()
                self.changes[entry.path] = entry
                self.summary.metadata.add(0)
                self.report("metadata", entry.path, 0)
            elif action.decision is Decision.CONTENT:
                local = action.local
                assert local is not None
                self.progress.transfer.total_files += 1
                self.progress.transfer.total_bytes += local.size
                if remote_empty:
                    await self.queue.put(Job(local, key_for_path(local.path, self.prefix),
                                             None))
                else:
                    self.deferred.append(local)
            else:
                assert action.remote is not None
                self.gone.append(action.remote)

    async def resolve_deferred(self, remote: RemoteManifest) -> None:
        """Find, in one pass over the remote manifest, objects that already hold the
        content of new files (renames, moves, duplicates): those become copies."""
        if not self.deferred:
            return
        wanted = {e.xxh for e in self.deferred if e.size > 0}

        def find_sources() -> dict[bytes, Entry]:
            found: dict[bytes, Entry] = {}
            for entry in remote.entries_with_content(wanted):
                if entry.kind == FILE and entry.etag:
                    found.setdefault(entry.xxh, entry)
            return found

        sources = await asyncio.to_thread(find_sources) if wanted else {}
        jobs = []
        for local in self.deferred:
            source = sources.get(local.xxh)
            if source is None or source.size != local.size or "-" in source.etag:
                source = None  # a multipart object's copy would not keep its ETag
            jobs.append(Job(local, key_for_path(local.path, self.prefix), source))
        self.deferred = []
        ordered = order_jobs(jobs)
        self.readers = CopyReaders(ordered)
        for job in ordered:
            await self.queue.put(job)

    # ---- transfers ---------------------------------------------------------------------

    async def worker(self) -> None:
        while (job := await self.queue.get()) is not None:
            local, key, source = job
            if self.stop_requested() or self.options.dry_run:
                if source is not None:
                    self.readers.done(source)
                if not self.stop_requested():  # a dry run counts what it would do
                    (self.summary.copied if source else self.summary.uploaded).add(local.size)
                    self.report("copy" if source else "upload", local.path, local.size)
                continue  # after a stop request: drain, no new work
            try:
                stored = await self._copy(job) if source is not None else None
                entry = local
                if stored is None:
                    await self.readers.wait_until_read(key)
                    adopted = await self._adopt(local, key) if key in self.listing else None
                    if adopted is not None:
                        stored, entry = adopted
                    else:
                        done = await self.uploader.upload(local, key, self._bytes_of(local))
                        stored, entry = done.stored, done.entry
                        self.summary.uploaded.add(done.bytes_sent)
                        self.bytes_since_checkpoint += done.bytes_sent
                        self.report("upload", local.path, done.bytes_sent)
            except BaycatError as exc:
                if _fatal(exc):
                    raise
                self.warn(Notice(local.path, f"not backed up: {exc}"))
                continue
            finally:
                self.progress.transfer.files += 1
                if local.size >= LARGE_FILE:
                    self.progress.active.pop(as_text(local.path), None)
            self.changes[local.path] = as_remote(entry, stored.etag,
                                                 stored_key(local.path, self.prefix),
                                                 stored.version_id)

    async def _copy(self, job: Job) -> Stored | None:
        """Copy `job.local`'s content from `job.source`'s object; None when the copy
        could not be made safely (the caller uploads instead).

        The copy is conditional on the source's recorded ETag (and reads the recorded
        version where there is one): an object changed since it was recorded is
        refused, not copied, and its entry is marked for repair."""
        source = job.source
        assert source is not None
        try:
            stored = await self.store.copy(object_key(source), job.key, if_match=source.etag,
                                           source_version=source.version_id)
        except NotFound:
            return None  # the object went away: upload after all
        except PreconditionFailed:
            self._mark_damaged(source)
            return None
        finally:
            self.readers.done(source)
        if self.store.content_etags and stored.etag.strip('"') != source.etag.strip('"'):
            return None  # what was copied is not the recorded content: upload over it
        self.summary.copied.add(job.local.size)
        self.report("copy", job.local.path, job.local.size)
        return stored

    def _mark_damaged(self, source: Entry) -> None:
        message = ("its object no longer holds the content the manifest records; "
                   "it is uploaded again by the next sync")
        self.damaged[source.path] = source
        self.summary.notices.append(f"{as_text(source.path)}: {message}")
        self.warn(Notice(source.path, message, failure=False))

    def record_damaged(self) -> None:
        """Entries found damaged get no ETag: the next run's differ re-uploads them
        (unless this run already replaced them)."""
        for path, source in self.damaged.items():
            if path not in self.changes:
                self.changes[path] = source._replace(etag="")
                self.bases[path] = source

    def _on_bytes(self, n: int) -> None:
        self.progress.transfer.bytes += n

    def _bytes_of(self, local: Entry) -> Callable[[int], None]:
        """Progress callback of one upload; a large file also gets its own display line."""
        if local.size < LARGE_FILE:
            return self._on_bytes
        name, active, done = as_text(local.path), self.progress.active, [0]
        active[name] = (0, local.size)

        def on_bytes(n: int) -> None:
            self.progress.transfer.bytes += n
            done[0] += n
            active[name] = (done[0], local.size)

        return on_bytes

    async def _adopt(self, local: Entry, key: str) -> tuple[Stored, Entry] | None:
        """--scan-remote: the object at `key` already holds this file (same size and
        ETag) — record it instead of uploading again."""
        info = self.listing[key]
        if info.size != local.size:
            return None
        part = self.options.transfer.upload_part_size(local.size)
        etag = await asyncio.to_thread(file_etag, self.root_bytes + b"/" + local.path, part)
        if etag is None or etag != info.etag.strip('"'):
            return None
        self.summary.adopted.add(local.size)
        self.report("adopt", local.path, local.size)
        return Stored(info.etag), local

    async def load_listing(self) -> None:
        async for info in self.store.list():
            if is_state_key(info.key):
                continue
            self.listing[info.key] = info

    def report_unknown(self, remote: RemoteManifest) -> None:
        """--scan-remote: objects no manifest entry points at."""
        known = {object_key(e) for e in remote.entries() if e.kind == FILE}
        unknown = [k for k in self.listing if k not in known]
        if unknown:
            self.summary.notices.append(
                f"{len(unknown)} objects under {self.store.url} are not in the manifest "
                f"(e.g. {unknown[0]!r})")

    # ---- checkpoints -------------------------------------------------------------------

    async def commit(self, remote: RemoteManifest, template: Root) -> bool:
        """Commit what completed so far; the change set starts afresh."""
        pending, self.changes = self.changes, {}
        changes = sorted_changes(pending)
        try:
            committed = await remote.commit(changes, template, self.bases)
        except BaseException:
            pending.update(self.changes)  # keep what arrived meanwhile, newest last
            self.changes = pending
            raise
        if committed:
            self.summary.checkpoints += 1
        self.bytes_since_checkpoint = 0
        return committed

    async def checkpointer(self, remote: RemoteManifest, template: Root,
                           done: asyncio.Event) -> None:
        last = time.monotonic()
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.2)
            due = (time.monotonic() - last >= self.options.checkpoint_seconds
                   or self.bytes_since_checkpoint >= self.options.checkpoint_bytes)
            if due and self.changes and not done.is_set():
                await self.commit(remote, template)
                last = time.monotonic()

    # ---- deletes -----------------------------------------------------------------------

    async def handle_gone(self) -> None:
        if not self.gone:
            return
        now = time.time_ns()
        if not self.options.delete:
            for remote in self.gone:
                self.changes[remote.path] = remote._replace(deleted_ns=now)
                self.summary.marked_deleted.add(remote.size)
                self.report("mark-deleted", remote.path, remote.size)
            return
        limit = self.options.max_delete
        if limit is not None and len(self.gone) > limit:
            message = (f"not deleting: {len(self.gone)} paths would be deleted, more than "
                       f"--max-delete {limit}")
            self.summary.notices.append(message)
            self.summary.fail("", message)
            return
        if self.summary.errors:
            message = "not deleting anything because some files failed this run"
            self.summary.notices.append(message)
            self.warn(Notice(b"", message))
            return
        keys = {object_key(r): r for r in self.gone if r.kind == FILE}
        failed: dict[str, str] = {}
        if keys and not self.options.dry_run:
            failed = dict(await self.store.delete_many(list(keys)))
        for remote in self.gone:
            key = object_key(remote) if remote.kind == FILE else None
            if key is not None and key in failed:
                self.summary.fail(as_text(remote.path), f"delete failed: {failed[key]}")
                continue
            self.changes[remote.path] = None
            self.summary.deleted.add(remote.size)
            self.report("delete", remote.path, remote.size)


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
    options = options or SyncOptions()
    progress = progress or Progress()
    started = time.perf_counter()
    source = check_source_dir(source)
    state_dir = ensure_state_dir(source)
    manifest_path = default_manifest_path(source)
    summary_box: list[SyncSummary] = []

    def note(notice: Notice) -> None:
        if notice.failure:
            summary_box[0].fail(as_text(notice.path), notice.message)
        warn(notice)

    run = _Run(source, store, options, progress, note, on_action)
    summary = run.summary
    summary_box.append(summary)
    template = Root(created_ns=0, source=f"{socket.gethostname()}:{source}",
                    baycat_version=__version__)
    with TreeLock(lock_path(manifest_path), str(source)), \
            tempfile.TemporaryDirectory(prefix="baycat-dry-") as scratch:
        if not options.dry_run:
            remove_stale_state(state_dir)
        await store.check()
        cache = cache_path(Path(scratch) if options.dry_run else state_dir, store.url)
        synced_path = cache.with_name(cache.name + ".synced")
        remote = RemoteManifest(store, cache, options.history, options.verify_commits)
        if not options.dry_run:
            journal = UploadJournal(cache.with_name(cache.name + ".uploads"))
            run.uploader.journal = journal
            aborted = await abort_leftover_uploads(store, journal)
            if aborted:
                summary.notices.append(f"aborted {aborted} incomplete multipart uploads "
                                       "that an interrupted run had left")
        old = open_manifest(manifest_path)
        sink = LocalManifestSink(manifest_path, old)
        filters = resolve_filters(options.filters, old.root if old else None)
        template = replace(template, filters=filters.to_header())
        load_task = asyncio.ensure_future(
            remote.load(ignore_damage=options.scan_remote))
        try:
            if options.scan_remote:
                await run.load_listing()
            differ: Differ | None = None
            remote_empty = True
            pool = choose_pool_size(options.pool_size, old.root if old else None)

            synced = None if options.scan_remote else read_synced(synced_path)
            # Fast path (see synced.py): only changed paths meet the remote manifest.
            fast_changed: list[ScanItem] | None = None
            fast_same = 0

            async def start_differ() -> Differ:
                nonlocal remote_empty, fast_changed
                await load_task
                remote_empty = remote.root is None or remote.root.entries == 0
                if (synced is not None and old is not None and remote.etag is not None
                        and synced == SyncedState(remote.etag, root_digest(old.root),
                                                  options.delete)):
                    fast_changed = []
                entries = remote.entries()
                if not options.delete_excluded:  # excluded: not ours, not deleted
                    entries = filters.matcher(read_ignore_files(source)).keep_remote(entries)
                return Differ(entries, purge_deleted=options.delete)

            async def on_batch(items: list[ScanItem]) -> None:
                nonlocal differ
                if differ is None:
                    differ = await start_differ()
                sink.add_items(items)
                if fast_changed is not None:
                    nonlocal fast_same
                    for item in items:
                        if item.entry is item.old or item.error:
                            fast_same += 1
                        else:
                            fast_changed.append(item)
                    return
                actions = await asyncio.to_thread(differ.feed, items)
                await run.take(actions, remote_empty)

            async def fast_differ(changed: list[ScanItem]) -> Differ:
                """A differ over just the remote entries of the changed paths."""
                found = await asyncio.to_thread(remote.lookup, [i.path for i in changed])
                entries: Iterator[Entry] = iter(sorted(found.values(),
                                                       key=lambda e: path_key(e.path)))
                if not options.delete_excluded:
                    entries = filters.matcher(read_ignore_files(source)).keep_remote(entries)
                return Differ(entries, purge_deleted=options.delete)

            transfers_done = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                workers = [group.create_task(run.worker())
                           for _ in range(options.transfer.transfers)]
                if not options.dry_run:
                    group.create_task(run.checkpointer(remote, template, transfers_done))
                scan_started = time.perf_counter()
                complete = await scan(run.root_bytes, entries_of(old),
                                      ScanConfig(pool_size=pool), on_batch,
                                      progress=progress, warn=note, stop=options.stop,
                                      path_filter=filters.matcher(read_ignore_files(source)))
                if differ is None:  # empty tree
                    differ = await start_differ()
                if fast_changed is not None:
                    differ = await fast_differ(fast_changed)
                    await run.take(await asyncio.to_thread(differ.feed, fast_changed),
                                   remote_empty)
                    differ.same += fast_same
                if complete:
                    # Remote entries past the last local path: deleted locally.
                    await run.take(await asyncio.to_thread(differ.finish), remote_empty)
                summary.unchanged.files = differ.same
                summary.seconds["scan"] = time.perf_counter() - scan_started
                await run.resolve_deferred(remote)
                for _ in workers:
                    await run.queue.put(None)
                await asyncio.gather(*workers)
                transfers_done.set()
            summary.seconds["transfer"] = time.perf_counter() - scan_started
            interrupted = not complete or run.stop_requested()
            run.record_damaged()
            if not interrupted:
                await run.handle_gone()
            commit_started = time.perf_counter()
            if not options.dry_run:
                await run.commit(remote, template)
                summary.committed = summary.checkpoints > 0
                if options.scan_remote:
                    run.report_unknown(remote)
                written = None
                if interrupted:
                    sink.abort()  # a partial walk: keep the old local manifest
                else:
                    written = sink.finish(Root(
                        created_ns=time.time_ns(), source=str(source),
                        baycat_version=__version__, filters=filters.to_header(),
                        pool_size=old.root.pool_size if old else None))
                local_root = written or (old.root if old is not None else None)
                if (interrupted or summary.errors or remote.etag is None
                        or local_root is None or run.damaged or remote.contested_paths):
                    forget_synced(synced_path)
                else:
                    write_synced(synced_path, SyncedState(remote.etag, root_digest(local_root),
                                                          options.delete))
            else:
                sink.abort()
            summary.interrupted = interrupted
            summary.seconds["commit"] = time.perf_counter() - commit_started
        except BaseException:
            sink.abort()
            # After a commit, the marker no longer matches the remote root anyway; after a
            # failure, say plainly that the last sync was not clean.
            forget_synced(synced_path)
            raise
        finally:
            if not load_task.done():
                load_task.cancel()
            remote.close()
            if old is not None:
                old.close()
            summary.requests = dict(store.requests)
            summary.notices.extend(remote.notices)
            summary.manifest_bytes_uploaded = remote.bytes_uploaded
            summary.manifest_bytes_downloaded = remote.bytes_downloaded
            summary.seconds["total"] = time.perf_counter() - started
    return summary
