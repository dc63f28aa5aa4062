"""A restore: object store → local tree, verified byte for byte.

    remote manifest (latest, or --at a generation) ─► validate whole ─┐
    scan of DST (its own stat cache in DST/.baycat) ──────────────────┴► RemoteMerge
        ─► RestoreWriter.plan (dirs, symlinks, metadata) ─► download workers
    ... then directory metadata (deepest first), then DST's local manifest.

The backup's manifest says what the tree was. DST is scanned like a source (files
already restored are not even read again), merged with the remote manifest, and only
what differs is fetched (restore_writer.py writes it). The manifest is untrusted input:
it is checked whole (manifest/validate.py) before anything is written, and again while
writing.

`--path` restores part of the backup with the directories above it; what DST holds and
the backup doesn't is counted, and removed with `--delete` (restore_select.py).

`--at TIME` restores an earlier generation (manifest/generations.py). Entries carry the
VersionId of their object when the bucket is versioned, and those versions are read.
Entries without one (no versioning) are checked against one LIST of the store first: an
object overwritten or removed since that generation is reported, not downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from baycat import version
from baycat.dirfd import DirFds
from baycat.entry import DIR, FILE, FLAG_LINKED, HARDLINK, Entry, path_key
from baycat.errors import ManifestError, UsageError
from baycat.manifest.file import ManifestReader
from baycat.manifest.generations import format_time, load_generation
from baycat.manifest.keys import object_key
from baycat.manifest.remote import MAX_MANIFEST_ENTRIES, RemoteManifest
from baycat.manifest.root import Root
from baycat.manifest.validate import checked, validate
from baycat.ops.prepare import choose_pool_size
from baycat.ops.restore_select import Extras, Parents, PathSelection
from baycat.ops.restore_writer import RestoreOptions, RestoreWriter
from baycat.ops.summary import SyncSummary
from baycat.progress import ActionFunc, NoticeFunc, Progress, ignore_notice
from baycat.scan.local_manifest import (
    default_manifest_path,
    entries_of,
    lock_path,
    open_manifest,
    record_changes,
)
from baycat.scan.lock import TreeLock
from baycat.scan.pipeline import ScanConfig, ScanItem, scan
from baycat.scan.statedir import ensure_state_dir, remote_cache_path, remove_stale_state
from baycat.store.base import ObjectInfo, ObjectStore
from baycat.store.layout import is_state_key

__all__ = ["RestoreOptions", "RestoreRun", "restore_from_store"]


class RemoteMerge:
    """The remote manifest's entries, merged in path order with DST's scan items: each
    selected entry is handed to `plan` with the local entry at its path (or None), after
    the directories above it (`Parents`); a local path the backup doesn't have is an
    extra."""

    def __init__(self, entries: Iterator[Entry], writer: RestoreWriter) -> None:
        self._entries = entries
        self._writer = writer
        self._next: Entry | None = None  # read from the manifest, not yet planned
        self._selection = PathSelection(writer.options.paths)
        self._parents = Parents() if writer.options.paths else None
        self.extras = Extras()
        self._read: deque[Entry] = deque()  # read ahead, after _next
        self._done = False  # the manifest is read to its end
        # --path: a file with more names whose first name is not selected (its later
        # names come after it in path order), and the selected name that stands in for it.
        self._unselected_firsts: dict[bytes, Entry] = {}
        self._stand_in: dict[bytes, bytes] = {}

    async def on_batch(self, items: list[ScanItem]) -> None:
        for item in items:
            if item.changed and item.error == "":
                self._writer.local_changes[item.path] = item.entry
            in_backup = await self.until(path_key(item.path), item)
            local = item.entry
            if (not in_backup and local is not None and not item.error
                    and self._selection.matches(item.path, local.kind == DIR)):
                self.extras.add(local)

    async def until(self, key: bytes | None, item: ScanItem | None) -> bool:
        """Plan every remote entry up to `key` (None: all that are left); the one at
        `key` itself with `item`'s local entry. True: the backup has `key`'s path."""
        writer = self._writer
        while True:
            if self._next is None:
                if not self._read and not self._done:
                    # One thread hop per batch, not per entry: a hop each cost ~0.1 ms of
                    # CPU and woke a thread to contend for the GIL with the downloads.
                    batch = await asyncio.to_thread(_read_batch, self._entries)
                    self._read.extend(batch)
                    self._done = len(batch) < _MERGE_BATCH
                if not self._read:
                    return False
                self._next = self._read.popleft()
            current = self._next
            current_key = path_key(current.path)
            if key is not None and current_key > key:
                return False
            self._next = None
            local = item.entry if item is not None and current.path == item.path else None
            wanted = writer.wanted(current)
            if wanted:
                await self._offer(current, local)
            if key is not None and current_key == key:
                return wanted

    async def _offer(self, remote: Entry, local: Entry | None) -> None:
        """Plan `remote` if --path selects it, and first the directories above it."""
        parents = self._parents
        if parents is None:
            await self._writer.plan(remote, local)
        elif self._selection.matches(remote.path, remote.kind == DIR):
            for parent, parent_local in parents.above(remote.path):
                await self._writer.plan(parent, parent_local)
            await self._writer.plan(self._linked_within_selection(remote), local)
            parents.selected_dir(remote, local)
        else:
            if remote.kind == FILE and remote.flags & FLAG_LINKED:
                self._unselected_firsts[remote.path] = remote
            parents.hold(remote, local)

    @property
    def selected_any(self) -> bool:
        return self._selection.matched

    def _linked_within_selection(self, remote: Entry) -> Entry:
        """A hardlink whose first name --path leaves out: the first such name selected
        gets the file's content (from the first name's object), later ones link to it."""
        if remote.kind != HARDLINK:
            return remote
        stand_in = self._stand_in.get(remote.link)
        if stand_in is not None:
            return remote._replace(link=stand_in)
        first = self._unselected_firsts.get(remote.link)
        if first is None:
            return remote  # the first name is restored too
        self._stand_in[remote.link] = remote.path
        return first._replace(path=remote.path, key=object_key(first))


_MERGE_BATCH = 256  # manifest entries read per thread hop (a few tens of KB)


def _read_batch(entries: Iterator[Entry]) -> list[Entry]:
    """Blocking: the next _MERGE_BATCH entries (fewer at the end)."""
    return list(itertools.islice(entries, _MERGE_BATCH))


class RestoreRun:
    """One restore of the backup in `store` into `dest`: `await RestoreRun(...).run()`."""

    def __init__(self, store: ObjectStore, dest: Path, options: RestoreOptions,
                 progress: Progress, warn: NoticeFunc, on_action: ActionFunc | None) -> None:
        self.store = store
        self.dest = dest.absolute()
        self.options = options
        self.progress = progress
        self.warn = warn
        self.manifest_path = default_manifest_path(self.dest)
        self.fds, self.state_dir = _prepare_dest(self.dest)
        self.writer = RestoreWriter(store, self.dest, self.fds, options, progress, warn,
                                    on_action)
        self.summary = self.writer.summary

    async def run(self) -> SyncSummary:
        started = time.perf_counter()
        with contextlib.closing(self.fds), \
                TreeLock(lock_path(self.manifest_path), str(self.dest)), \
                tempfile.TemporaryDirectory(prefix="baycat-at-") as scratch:
            if not self.options.dry_run:
                remove_stale_state(self.state_dir)
            await self.store.check()
            # An earlier generation gets a cache of its own: DST's follows the latest.
            cache = Path(scratch) / "generation" if self.options.at_ns is not None else \
                remote_cache_path(self.state_dir, self.store.url)
            remote = RemoteManifest(self.store, cache)
            old = open_manifest(self.manifest_path)
            try:
                await self._load(remote)
                await self._restore(remote, old)
            finally:
                remote.close()
                if old is not None:
                    old.close()
                self.summary.notices.extend(remote.notices)
                self.summary.requests = dict(self.store.requests)
                self.summary.manifest_bytes_downloaded = remote.bytes_downloaded
                self.summary.seconds["total"] = time.perf_counter() - started
        return self.summary

    async def _load(self, remote: RemoteManifest) -> None:
        """The generation to restore, checked whole before anything is written."""
        writer = self.writer
        if self.options.at_ns is not None:
            generation = await load_generation(remote, self.options.at_ns)
            writer.generation = format_time(generation.time_ns)
            self.summary.notices.append(f"restoring the backup as of {writer.generation}")
        else:
            await remote.load()
        if remote.root is None:
            raise ManifestError(f"no baycat backup at {self.store.url} (no .baycat/root)")
        if not self.options.paths:  # DST is the backup's top only in a whole restore
            writer.top = remote.root.top
        unversioned = await asyncio.to_thread(_validate, remote.entries())
        if self.options.at_ns is not None and unversioned:
            writer.listing = await _listing(self.store)

    async def _restore(self, remote: RemoteManifest, old: ManifestReader | None) -> None:
        options, writer = self.options, self.writer
        merge = RemoteMerge(checked(remote.entries()), writer)
        pool = choose_pool_size(options.pool_size, old.root if old is not None else None)
        async with asyncio.TaskGroup() as group:
            workers = [group.create_task(writer.worker()) for _ in range(options.transfers)]
            await scan(os.fsencode(self.dest), entries_of(old),
                       ScanConfig(pool_size=pool, xattrs=options.xattrs,
                                  reuse_old=old is None or old.root.format_version >= 2),
                       merge.on_batch, progress=self.progress, warn=self.warn)
            await merge.until(None, None)
            for _ in workers:
                await writer.queue.put(None)
        self._extras(merge.extras)
        if options.paths and not merge.selected_any:
            message = (f"--path {' '.join(options.paths)}: no path in the backup matches; "
                       "nothing was restored")
            self.summary.notices.append(message)
        if writer.gone_since:
            self.summary.notices.append(
                f"{writer.gone_since} files were overwritten or removed since "
                f"{writer.generation} and could not be restored (no bucket versioning)")
        writer.finish_links()
        if not options.dry_run:
            writer.finish_dirs()
            writer.finish_top()
            root = Root(created_ns=time.time_ns(), source=str(self.dest),
                        baycat_version=version.__version__,
                        pool_size=old.root.pool_size if old else None)
            await asyncio.to_thread(record_changes, self.manifest_path, old,
                                    writer.local_changes, root)


    def _extras(self, extras: Extras) -> None:
        """Count what DST holds beyond the backup, and with --delete remove it (only
        after a run without failures, as sync's delete step)."""
        summary, writer = self.summary, self.writer
        if not extras.found:
            return
        if not self.options.delete:
            for _, _, size in extras.found:
                summary.extra.add(size)
            summary.notices.append(
                f"{len(extras.found)} paths in {self.dest} are not in the backup and were "
                "left there (--delete removes them)")
            return
        if summary.errors:
            for _, _, size in extras.found:
                summary.extra.add(size)
            summary.notices.append("not deleting anything because some files failed")
            return
        failed = dict(extras.remove(self.fds)) if not self.options.dry_run else {}
        for path, _, size in extras.found:
            if path in failed:
                writer.fail(path, f"cannot delete: {failed[path]}")
                summary.extra.add(size)
            else:
                summary.deleted.add(size)
                writer.report("delete", path, size)
                writer.local_changes[path] = None


class _Unversioned:
    """The entries, counting the live files among them that have no VersionId."""

    def __init__(self, entries: Iterator[Entry]) -> None:
        self._entries = entries
        self.count = 0

    def __iter__(self) -> Iterator[Entry]:
        for entry in self._entries:
            if entry.kind == FILE and not entry.version_id:
                self.count += 1
            yield entry


def _validate(entries: Iterator[Entry]) -> int:
    """Blocking: check the whole manifest (nothing is written before this passes);
    returns how many live files have no VersionId."""
    counted = _Unversioned(entries)
    validate(counted, MAX_MANIFEST_ENTRIES)
    return counted.count


async def _listing(store: ObjectStore) -> dict[str, ObjectInfo] | None:
    """The data objects in the store now (one LIST); None when it can't list (HTTP)."""
    found: dict[str, ObjectInfo] = {}
    try:
        async for info in store.list():
            if not is_state_key(info.key):
                found[info.key] = info
    except UsageError:
        return None  # a plain web server: downloads are still checked against the hash
    return found


def _prepare_dest(dest: Path) -> tuple[DirFds, Path]:
    """Create DST if needed and open it (never through a symlink), and its state
    directory (statedir.py)."""
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest}: exists and is not a directory")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {dest}: {exc.strerror}") from None
    try:
        fds = DirFds(os.fsencode(dest))
    except NotADirectoryError:  # O_NOFOLLOW: DST itself is a symlink
        raise UsageError(f"{dest} is a symlink: restore into the directory it points "
                         "to (a restore never writes through a link)") from None
    except OSError as exc:
        raise UsageError(f"cannot open {dest}: {exc.strerror}") from None
    try:
        return fds, ensure_state_dir(dest)
    except BaseException:
        fds.close()
        raise


async def restore_from_store(
    store: ObjectStore,
    dest: Path,
    options: RestoreOptions | None = None,
    *,
    progress: Progress | None = None,
    warn: NoticeFunc = ignore_notice,
    on_action: ActionFunc | None = None,
) -> SyncSummary:
    """Restore the backup in `store` into the directory `dest`."""
    run = RestoreRun(store, dest, options or RestoreOptions(), progress or Progress(), warn,
                     on_action)
    return await run.run()
