"""Trust but verify: does the backup hold what its manifest says, and does the tree?

Remote (`verify_store`):

- cheap (default): the prefix is listed once; every file entry of the manifest (those
  kept as deleted too: they are restorable) must have its object, with the recorded size
  and ETag. Objects nothing refers to are reported as unknown, and so are packs the
  manifest needs (for `--at`) but that are gone.
- deep (`deep_percent`, 100 for `--deep`, less for `--sample`): those objects are also
  downloaded and re-hashed (xxh3-128, the manifest's hash), by `transfers` workers, each
  holding one chunk at a time (~1 MiB from S3, 8 MiB from a local directory).
  An entry with a VersionId whose listed object differs or is absent is checked deep
  too: on a versioned bucket, its recorded version may well be intact.
- A plain HTTP(S) server can't list: there, only deep checks are possible.

Local (`verify_tree`): the tree is scanned against its local manifest, as `sync` would
(files whose stat changed are re-hashed), and what differs is reported; nothing is
written and the network is not used.

Both report through a `VerifySummary`; its exit code is 0 only when nothing was found.
The core functions `check_listed` and `compare` are pure.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from baycat.entry import DIR, FILE, Entry, as_text, same_metadata
from baycat.errors import BaycatError, ExitCode, ManifestError, UsageError
from baycat.manifest.keys import object_key, same_etag
from baycat.manifest.remote import PACK_PREFIX, RemoteManifest
from baycat.manifest.root import Generation, SegmentRef
from baycat.manifest.validate import check_entry, checked
from baycat.ops.prepare import check_source_dir, choose_pool_size, resolve_filters
from baycat.progress import NoticeFunc, Progress, ignore_notice
from baycat.scan.local_manifest import default_manifest_path, open_manifest
from baycat.scan.pipeline import ScanConfig, ScanItem, scan
from baycat.scan.statedir import find_manifest
from baycat.store.base import Corrupt, NotFound, ObjectInfo, ObjectStore
from baycat.store.layout import is_state_key

SCHEMA_VERSION = 1
BATCH = 1000  # entries taken from the manifest per thread hop


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """`deep_percent`: share of objects downloaded and re-hashed (100: all, `--deep`).
    Peak memory of deep checks: `transfers` × one download chunk."""

    deep_percent: float = 0.0
    transfers: int = 16
    seed: int | None = None  # for a reproducible --sample (tests); None: random


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding. kind: missing, corrupt, unknown, unreadable (remote);
    new, changed, metadata, deleted, unreadable (local)."""

    kind: str
    path: str
    message: str


@dataclass(slots=True)
class VerifySummary:
    """What `verify --json` prints."""

    source: str
    local: bool = False
    files: int = 0  # file entries checked (remote) / paths compared (local)
    bytes: int = 0
    ok: int = 0
    deep_files: int = 0  # downloaded and re-hashed
    deep_bytes: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # problems by kind
    problems: list[Problem] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    request_cost_usd: float = 0.0
    price_table: str = ""
    storage_class: str = "STANDARD"
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.problems else ExitCode.OK

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.counts[problem.kind] = self.counts.get(problem.kind, 0) + 1

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["schema_version"] = SCHEMA_VERSION
        doc["exit_code"] = int(self.exit_code)
        return doc


# ---- the pure core -------------------------------------------------------------------


def check_listed(entry: Entry, info: ObjectInfo | None) -> Problem | None:
    """Cheap check of one file entry against its listed object (None: not listed)."""
    path = as_text(entry.path)
    if info is None:
        return Problem("missing", path, f"no object {object_key(entry)!r}")
    if info.size != entry.size:
        return Problem("corrupt", path, f"object is {info.size} bytes, the manifest says "
                                        f"{entry.size}")
    if same_etag(entry.etag, info.etag) is False:
        return Problem("corrupt", path, f"ETag {info.etag} differs from the recorded "
                                        f"{entry.etag}")
    return None


def compare(item: ScanItem) -> str | None:
    """Local: how a scanned path differs from its manifest entry (None: it doesn't)."""
    if item.error:
        return "unreadable"
    new, old = item.entry, item.old
    if new is None:
        return "deleted" if old is not None else None
    if old is None:
        return "new"
    if new is old:
        return None
    if new.kind != old.kind or new.target != old.target or (
            new.kind == FILE and (new.xxh != old.xxh or new.size != old.size)):
        return "changed"
    return None if same_metadata(new, old) else "metadata"


def _hash_mismatch(entry: Entry, size: int, digest: bytes) -> Problem | None:
    if size != entry.size or digest != entry.xxh:
        return Problem("corrupt", as_text(entry.path),
                       f"content differs from the manifest's hash ({size} bytes read)")
    return None


# ---- remote ----------------------------------------------------------------------------


class _RemoteCheck:
    def __init__(self, store: ObjectStore, options: VerifyOptions, progress: Progress,
                 summary: VerifySummary, damaged: list[tuple[Entry, Problem]] | None) -> None:
        self.store = store
        self.damaged = damaged
        self.options = options
        self.progress = progress
        self.summary = summary
        self.rng = random.Random(options.seed)
        self.queue: asyncio.Queue[Entry | None] = asyncio.Queue(options.transfers * 4)

    def wants_deep(self) -> bool:
        share = self.options.deep_percent
        return share >= 100 or (share > 0 and self.rng.random() * 100 < share)

    async def deep_worker(self) -> None:
        while (entry := await self.queue.get()) is not None:
            problem = await self.deep_check(entry)
            self.done(entry, problem)

    async def deep_check(self, entry: Entry) -> Problem | None:
        digest = xxhash.xxh3_128()
        size = 0
        try:
            async for chunk in self.store.stream(object_key(entry), entry.version_id):
                digest.update(chunk)
                size += len(chunk)
                self.progress.transfer.bytes += len(chunk)
        except NotFound:
            return Problem("missing", as_text(entry.path),
                           f"no object {object_key(entry)!r}"
                           + (f" (version {entry.version_id})" if entry.version_id else ""))
        except Corrupt as exc:  # an encrypted object that fails authentication
            return Problem("corrupt", as_text(entry.path), str(exc))
        except BaycatError as exc:
            return Problem("unreadable", as_text(entry.path), str(exc))
        finally:
            self.progress.transfer.files += 1
        self.summary.deep_files += 1
        self.summary.deep_bytes += size
        return _hash_mismatch(entry, size, digest.digest())

    def done(self, entry: Entry, problem: Problem | None) -> None:
        if problem is None:
            self.summary.ok += 1
        else:
            self.found(entry, problem)

    def found(self, entry: Entry, problem: Problem) -> None:
        self.summary.add(problem)
        if self.damaged is not None:
            self.damaged.append((entry, problem))

    async def check(self, entry: Entry, listing: dict[str, ObjectInfo] | None) -> None:
        self.summary.files += 1
        self.summary.bytes += entry.size
        if listing is not None:
            problem = check_listed(entry, listing.pop(object_key(entry), None))
            # A versioned entry may be fine though the latest object isn't: look deeper.
            if problem is not None and not entry.version_id:
                self.found(entry, problem)
                return
            if problem is None and not self.wants_deep():
                self.summary.ok += 1
                return
        elif not self.wants_deep():
            return
        self.progress.transfer.total_files += 1
        self.progress.transfer.total_bytes += entry.size
        await self.queue.put(entry)


async def _list_all(store: ObjectStore) -> dict[str, ObjectInfo] | None:
    try:
        return {info.key: info async for info in store.list()}
    except UsageError:
        return None  # a plain web server: nothing to list


def _take(entries: Iterator[Entry]) -> list[Entry]:
    batch: list[Entry] = []
    for entry in entries:
        check_entry(entry)
        batch.append(entry)
        if len(batch) >= BATCH:
            break
    return batch


async def verify_store(store: ObjectStore, options: VerifyOptions | None = None, *,
                       progress: Progress | None = None) -> VerifySummary:
    """Check the backup in `store` against its manifest (see the module docstring)."""
    started = time.perf_counter()
    summary = VerifySummary(source=store.url)
    await store.check()
    with tempfile.TemporaryDirectory(prefix="baycat-verify-") as scratch:
        remote = RemoteManifest(store, Path(scratch) / "cache")
        try:
            await check_store(remote, options or VerifyOptions(), progress or Progress(),
                              summary)
        finally:
            remote.close()
    summary.requests = dict(store.requests)
    summary.seconds["total"] = time.perf_counter() - started
    return summary


async def check_store(remote: RemoteManifest, options: VerifyOptions, progress: Progress,
                      summary: VerifySummary,
                      damaged: list[tuple[Entry, Problem]] | None = None) -> None:
    """Load `remote` and check its store against it into `summary`; each file entry
    found missing, corrupt or unreadable also goes to `damaged` (what `repair` fixes)."""
    store = remote.store
    run = _RemoteCheck(store, options, progress, summary, damaged)
    load = asyncio.ensure_future(remote.load())
    listing = await _list_all(store)
    await load
    root = remote.root
    if root is None:
        raise ManifestError(f"no baycat backup at {store.url} (no .baycat/root)")
    if listing is None and options.deep_percent <= 0:
        raise UsageError(f"{store.url}: a plain HTTP(S) server can't list objects; "
                         "verify it with --deep or --sample")
    entries = checked(remote.entries())
    async with asyncio.TaskGroup() as group:
        workers = [group.create_task(run.deep_worker())
                   for _ in range(options.transfers)]
        while batch := await asyncio.to_thread(_take, entries):
            progress.scan.files += len(batch)
            for entry in batch:
                if entry.kind == FILE:
                    await run.check(entry, listing)
        progress.scan_done = True
        for _ in workers:
            await run.queue.put(None)
    if listing is not None:
        _report_leftovers(summary, listing, root.segments, root.history)


def _report_leftovers(summary: VerifySummary, listing: dict[str, ObjectInfo],
                      segments: tuple[SegmentRef, ...], history: tuple[Generation, ...]
                      ) -> None:
    """Unknown data objects, and packs the manifest refers to that are gone."""
    needed: dict[str, int] = {}
    for ref in segments:
        needed[ref.pack] = max(needed.get(ref.pack, 0), ref.offset + ref.length)
    for gen in history:
        needed[gen.pack] = max(needed.get(gen.pack, 0), gen.offset + gen.length)
    for pack, end in sorted(needed.items()):
        info = listing.get(PACK_PREFIX + pack)
        if info is None or info.size < end:
            summary.add(Problem("missing", PACK_PREFIX + pack,
                                "manifest pack missing or truncated"))
    for key in sorted(listing):
        if is_state_key(key):
            continue
        summary.add(Problem("unknown", key, "object not in the manifest"))


# ---- local -----------------------------------------------------------------------------


async def verify_tree(directory: Path, *, pool_size: int | None = None,
                      progress: Progress | None = None,
                      warn: NoticeFunc = ignore_notice, manifest: Path | None = None,
                      state_dir: Path | None = None,
                      user_state_dir: Path | None = None) -> VerifySummary:
    """Compare the tree at `directory` with its local manifest (what changed since the
    last sync or manifest update), reading only files whose stat changed. The manifest:
    `manifest`, else the one found for the tree (statedir.find_manifest)."""
    progress = progress or Progress()
    started = time.perf_counter()
    root = check_source_dir(directory)
    if manifest is None:
        manifest = find_manifest(root, state_dir, user_state_dir) or default_manifest_path(root)
    old = open_manifest(manifest)
    if old is None:
        raise UsageError(f"no manifest at {manifest} (run `baycat sync` or "
                         f"`baycat manifest create {directory}` first)")
    summary = VerifySummary(source=str(root), local=True)

    async def on_batch(items: list[ScanItem]) -> None:
        for item in items:
            entry = item.entry or item.old
            assert entry is not None
            summary.files += 1
            summary.bytes += entry.size if entry.kind == FILE else 0
            kind = compare(item)
            if kind is None:
                summary.ok += 1
            else:
                detail = item.error or ("directory" if entry.kind == DIR else "")
                summary.add(Problem(kind, as_text(item.path), detail))

    with old:
        filters = resolve_filters(None, old.root)
        pool = choose_pool_size(pool_size, old.root)
        config = ScanConfig(pool_size=pool, one_file_system=filters.one_file_system)
        await scan(os.fsencode(root), old.entries(), config, on_batch,
                   progress=progress, warn=warn, path_filter=filters.path_filter(root))
    summary.seconds["total"] = time.perf_counter() - started
    return summary
