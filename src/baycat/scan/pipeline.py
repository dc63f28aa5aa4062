"""The scanning pipeline: walk ⋈ old local manifest → hash what changed → ordered batches.

    walker thread ──Q(batches)──► hash dispatch ──Q(batches + pending hashes)──► on_batch
     (sorted walk, merged            (jobs of bounded bytes                  (in path order)
      with the old manifest)          to the hasher pool)

A file whose (size, mtime, ctime, inode) equals its old manifest entry takes the old hash
and is never opened, and its old extended attributes (an xattr change moves the ctime):
they are read only for a path whose stat changed. The device number is not compared: a
snapshot of the tree, mounted at a new path each night, has the live tree's inodes and
times under another device number (restic doesn't compare it either). A path the old
manifest lacks may still be found in a `stat_cache` stream (the remote manifest, when
the run has no local manifest): the same four fields and a hash recorded with them, and
the file isn't opened either. A regular file with more than one name is recorded once
(FLAG_LINKED, at its first name in path order); its later names become HARDLINK entries
naming the first, and are not hashed. Output is in path_key order, one `ScanItem` per
path that is in the tree or in the old manifest, so a consumer can merge it with other
sorted streams.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import NamedTuple

from baycat import xattrs
from baycat.entry import (
    FILE,
    FLAG_INCOMPLETE,
    FLAG_LINKED,
    FLAG_SPARSE,
    HARDLINK,
    NO_HASH,
    Entry,
    entry_from_stat,
    kind_of_mode,
    same_stat,
)
from baycat.manifest.root import TopDir
from baycat.progress import Notice, NoticeFunc, Progress, ignore_notice
from baycat.scan.hasher import HashResult, hash_file
from baycat.scan.mounts import MountPolicy
from baycat.scan.walker import PathFilter, walk
from baycat.stop import StopRequest


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """Bounds of the scan. Peak memory is about
    (2 × queue_batches + 1) × batch_entries entries (~300 bytes each) plus
    pool_size × 1 MiB of read buffers: ~10 MB with the defaults.
    """

    pool_size: int
    batch_entries: int = 1000
    queue_batches: int = 4
    job_bytes: int = 32 << 20  # a hash job (one thread hop) reads at most this much...
    job_files: int = 128  # ...or this many files
    one_file_system: bool = False  # enter no mount point below the top (-x)
    xattrs: bool = True  # read extended attributes (of paths whose stat changed)
    # False: the old manifest's entries are from format 1 (no xattrs, hardlinks, sparse
    # flag): refresh every entry's metadata from the tree (contents still by stat).
    reuse_old: bool = True


class ScanItem(NamedTuple):
    """One path: its current entry (None: gone) and its old manifest entry (None: new).

    `error` is set when the file could not be read; `entry` is then the old entry carried
    over (or None), so nothing about it changes this run.
    """

    path: bytes
    entry: Entry | None
    old: Entry | None
    error: str = ""

    @property
    def changed(self) -> bool:
        return self.entry != self.old



# The stat fields an unchanged entry must have kept, fetched by C code in one call each
# (the hot loop). Not the device: see the module docstring.
_stat_of = attrgetter("st_mtime_ns", "st_ctime_ns", "st_ino", "st_mode", "st_uid", "st_gid")
_entry_stat = itemgetter(3, 4, 5, 7, 8, 9)  # Entry: mtime, ctime, ino, mode, uid, gid


_new_item = tuple.__new__
_IFMT = 0o170000
_IFREG = 0o100000


class _WalkMerge:
    """Blocking: the sorted walk merged with the old manifest (runs in a thread).

    The hot loop of a no-change run: an unchanged path reuses its old Entry object as it
    is (no new object, and `entry is old` tells every later stage it is unchanged).
    """

    def __init__(self, root: bytes, old: Iterator[Entry], cfg: ScanConfig,
                 warn: NoticeFunc, path_filter: PathFilter | None,
                 stat_cache: Iterator[Entry] | None = None) -> None:
        self._walk = walk(root, batch_entries=cfg.batch_entries, warn=warn,
                          path_filter=path_filter,
                          mounts=MountPolicy(cfg.one_file_system))
        self._root = root
        self._warn = warn
        self._xattrs = cfg.xattrs
        self._reuse = cfg.reuse_old
        # (dev, inode) -> first name, of regular files with more than one name.
        self._links: dict[tuple[int, int], bytes] = {}
        self._old = old
        self._old_next: Entry | None = next(old, None)  # the first old entry not yet merged
        self._incomplete: bytes | None = None  # "dir/" whose children are unknown
        self._cache = stat_cache
        self._cache_next: Entry | None = next(stat_cache, None) if stat_cache else None

    def _cached_hash(self, entry: Entry, key: bytes) -> bytes:
        """The hash the stat cache holds for this file when its stat matches; b"" else.
        The cache is a sorted stream, advanced past `key` (paths come in order)."""
        assert self._cache is not None
        nxt = self._cache_next
        while nxt is not None and nxt.path.replace(b"/", b"\0") < key:
            nxt = self._cache_next = next(self._cache, None)
        if nxt is None or nxt.path != entry.path:
            return NO_HASH
        # ino and ctime 0: recorded without them (an older baycat, a racy stat).
        if (nxt.kind == FILE and nxt.xxh and nxt.ino and nxt.ctime_ns and not nxt.deleted_ns
                and same_stat(entry, nxt)):
            return nxt.xxh
        return NO_HASH

    def _gone(self, old: Entry) -> ScanItem:
        if self._incomplete is not None and old.path.startswith(self._incomplete):
            return ScanItem(old.path, old, old)  # not seen, not deleted: carry over
        return ScanItem(old.path, None, old)

    def next_batch(self) -> list[ScanItem] | None:
        batch = next(self._walk, None)
        out: list[ScanItem] = []
        append = out.append
        olds = self._old
        nxt = self._old_next
        if batch is None:
            while nxt is not None and len(out) < 1000:
                append(self._gone(nxt))
                nxt = next(olds, None)
            self._old_next = nxt
            return out or None
        # Loop invariants of the reuse test, decided once a batch, not once a path.
        reuse, any_xattrs = self._reuse, self._xattrs
        for path, st, target, incomplete in batch:
            # The old stream is in step with the walk (the no-change case) unless paths
            # differ; only then are sort keys built to see which side is behind.
            old: Entry | None = nxt
            if nxt is None:
                pass
            elif nxt.path == path:
                nxt = next(olds, None)
            else:
                key = path.replace(b"/", b"\0")
                while nxt is not None and nxt.path.replace(b"/", b"\0") < key:
                    append(self._gone(nxt))
                    nxt = next(olds, None)
                old = nxt
                if nxt is not None and nxt.path == path:
                    nxt = next(olds, None)
                else:
                    old = None
            link, linked = b"", 0
            if st.st_nlink > 1 and st.st_mode & _IFMT == _IFREG:
                first = self._links.setdefault((st.st_dev, st.st_ino), path)
                if first == path:
                    linked = FLAG_LINKED
                else:
                    link = first
            if (old is not None and reuse and not incomplete
                    and _entry_stat(old) == _stat_of(st) and old.target == target
                    and old.link == link and old.flags & ~FLAG_SPARSE == linked
                    and (any_xattrs or not old.xattrs)
                    and (old.kind != FILE or (old.size == st.st_size and old.xxh))):
                append(_new_item(ScanItem, (path, old, old, "")))  # C-level construction
                continue
            append(self._changed(path, st, target, incomplete, link, linked, old))
        self._old_next = nxt
        return out

    def _changed(self, path: bytes, st: os.stat_result, target: bytes, incomplete: bool,
                 link: bytes, linked: int, old: Entry | None) -> ScanItem:
        """The item of a path whose stat differs from its old entry (or that has none)."""
        kind = HARDLINK if link else kind_of_mode(st.st_mode)
        assert kind is not None
        entry = entry_from_stat(path, kind, st, target, link, self._read_xattrs(path, kind),
                                linked)
        if incomplete:
            entry = entry._replace(flags=FLAG_INCOMPLETE)
            self._incomplete = path + b"/"
        elif (kind == FILE and old is not None and old.kind == FILE and old.xxh
                and same_stat(entry, old)):
            entry = entry._replace(xxh=old.xxh)  # e.g. only the owner changed
        elif kind == FILE and old is None and self._cache is not None:
            xxh = self._cached_hash(entry, path.replace(b"/", b"\0"))
            if xxh:
                entry = entry._replace(xxh=xxh)
        return ScanItem(path, entry, old)

    def _read_xattrs(self, path: bytes, kind: str) -> bytes:
        if not self._xattrs or kind == HARDLINK:  # a hardlink's are its first name's
            return b""
        try:
            return xattrs.read(self._root + b"/" + path)
        except FileNotFoundError:
            return b""  # gone since the walk: the next run sees it deleted
        except OSError as exc:
            self._warn(Notice(path, f"cannot read extended attributes: {exc.strerror}",
                              failure=False))
            return b""


def read_top(root: bytes, with_xattrs: bool) -> TopDir | None:
    """The tree's own directory facts, for the root's header (None: can't stat it; the
    scan reports that)."""
    try:
        st = os.lstat(root)
        blob = xattrs.read(root) if with_xattrs else b""
    except OSError:
        return None
    return TopDir.of(st, blob)


# Indexes of a batch being hashed, and the future of their results (in that order).
_Pending = tuple[list[int], "asyncio.Future[list[list[HashResult]]]"]


def _hash_job(root: bytes, items: list[ScanItem]) -> list[HashResult]:
    return [hash_file(root + b"/" + item.path, item.entry) for item in items
            if item.entry is not None]


async def scan(
    root: bytes,
    old: Iterator[Entry],
    cfg: ScanConfig,
    on_batch: Callable[[list[ScanItem]], Awaitable[None]],
    *,
    progress: Progress | None = None,
    warn: NoticeFunc = ignore_notice,
    path_filter: PathFilter | None = None,
    stop: StopRequest | None = None,
    stat_cache: Iterator[Entry] | None = None,
) -> bool:
    """Scan `root` against the `old` manifest stream, calling `on_batch` in path order.
    `stat_cache`: entries (sorted) whose hash a new path takes when its stat matches.

    Returns False when `stop` cut the scan short (the items seen were complete, but the
    rest of the tree was not seen: nothing may be concluded about it)."""
    progress = progress or Progress()
    loop = asyncio.get_running_loop()
    merger = _WalkMerge(root, old, cfg, warn, path_filter, stat_cache)
    ready: asyncio.Queue[tuple[list[ScanItem], _Pending] | None] = asyncio.Queue(
        cfg.queue_batches)

    with ThreadPoolExecutor(cfg.pool_size, thread_name_prefix="baycat-hash") as pool:

        def dispatch(batch: list[ScanItem]) -> _Pending:
            """Start hashing what needs it; returns the indexes and their results."""
            # `entry is old` first: the common, unchanged case decides in one comparison
            # (fields unpacked, not read by name: this runs for every path).
            todo = [i for i, (_, entry, old, _) in enumerate(batch)
                    if entry is not old and entry is not None and entry.kind == FILE
                    and not entry.xxh]
            jobs: list[asyncio.Future[list[HashResult]]] = []
            job: list[ScanItem] = []
            job_bytes = 0
            for i in todo:
                item = batch[i]
                job.append(item)
                job_bytes += item.entry.size  # type: ignore[union-attr]
                if job_bytes >= cfg.job_bytes or len(job) >= cfg.job_files:
                    jobs.append(loop.run_in_executor(pool, _hash_job, root, job))
                    job, job_bytes = [], 0
            if job:
                jobs.append(loop.run_in_executor(pool, _hash_job, root, job))
            return todo, asyncio.gather(*jobs)

        async def produce() -> None:
            try:
                while True:
                    if stop is not None and stop.requested:
                        break
                    batch = await asyncio.to_thread(merger.next_batch)
                    if batch is None:
                        break
                    progress.scan.files += len(batch)
                    await ready.put((batch, dispatch(batch)))
            finally:
                progress.scan_done = True
            await ready.put(None)

        async def consume() -> None:
            while (job := await ready.get()) is not None:
                batch, (todo, pending) = job
                results = [r for rs in await pending for r in rs]
                for i, result in zip(todo, results, strict=True):
                    item = batch[i]
                    progress.hash.files += 1
                    progress.hash.bytes += result.bytes_read
                    if result.entry is None:
                        warn(Notice(item.path, result.error))
                        batch[i] = ScanItem(item.path, item.old, item.old, result.error)
                    else:
                        batch[i] = item._replace(entry=result.entry)
                await on_batch(batch)

        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            group.create_task(consume())
    return not (stop is not None and stop.requested)
