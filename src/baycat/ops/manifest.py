"""`manifest create` / `manifest update`: the scan of a tree written to its local manifest."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

from baycat import version
from baycat.entry import DIR, FILE, SYMLINK
from baycat.errors import UsageError
from baycat.manifest.file import DEFAULT_FILENAME, remove_stale_temps
from baycat.manifest.root import Root
from baycat.ops.prepare import (
    check_source_dir,
    choose_pool_size,
    default_pool_size,
    resolve_filters,
    skip_manifest,
)
from baycat.private import mkdir_private
from baycat.progress import Notice, NoticeFunc, Progress, ignore_notice
from baycat.scan.filters import FilterSpec, combine
from baycat.scan.local_manifest import (
    LocalManifestSink,
    entries_of,
    lock_path,
    open_manifest,
)
from baycat.scan.lock import TreeLock
from baycat.scan.pipeline import ScanConfig, ScanItem, read_top, scan
from baycat.scan.statedir import choose_state_dir, ensure_state_dir, state_dir_of, tree_job


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """What `manifest create/update` did."""

    manifest: Path
    entries: int
    files: int
    dirs: int
    symlinks: int
    bytes: int
    hashed_files: int
    hashed_bytes: int
    changed_entries: int
    errors: int
    written: bool
    pool_size: int
    seconds: float


async def build_manifest(
    root: Path,
    *,
    manifest: Path | None = None,
    create: bool,
    pool_size: int | None = None,
    progress: Progress | None = None,
    warn: NoticeFunc = ignore_notice,
    filters: FilterSpec | None = None,
    state_dir: Path | None = None,
    user_state_dir: Path | None = None,
) -> ManifestSummary:
    """Create (hash everything) or update (hash only what changed) the local manifest.

    `filters` None: those recorded in the manifest (none for a new one); they are recorded
    in the new manifest's header either way, so `sync` and `manifest update` agree.
    Without `manifest`, it is DIR/.baycat/manifest, or in the per-user state directory
    (scan/statedir.py: below `state_dir` when given; `user_state_dir` for a read-only DIR).
    """
    started = time.perf_counter()
    root = check_source_dir(root)
    progress = progress or Progress()
    if manifest is None:
        manifest = choose_state_dir(root, tree_job(root), state_dir,
                                    user_state_dir) / DEFAULT_FILENAME
    elif manifest.absolute().parent == state_dir_of(root):
        ensure_state_dir(root)
    else:  # a place the user chose (-o/-m)
        try:
            mkdir_private(manifest.parent, parents=True)
        except OSError as exc:
            raise UsageError(f"cannot create {manifest.parent}: {exc.strerror}") from None
    if not os.access(manifest.parent, os.W_OK):
        raise UsageError(f"cannot write manifest in {manifest.parent}: permission denied")
    with TreeLock(lock_path(manifest), str(root)):
        remove_stale_temps(manifest.parent, manifest.name)
        old = None if create else open_manifest(manifest)
        try:
            saved_pool = old.root.pool_size if old is not None else None
            filters = resolve_filters(filters, old.root if old is not None else None)
            run_pool = choose_pool_size(pool_size, old.root if old is not None else None)
            sink = LocalManifestSink(manifest, old)
            tally = _Tally(sink, warn)
            try:
                reuse = old is None or old.root.format_version >= 2  # format 1: refresh
                config = ScanConfig(pool_size=run_pool, reuse_old=reuse,
                                    one_file_system=filters.one_file_system)
                await scan(os.fsencode(root), entries_of(old), config,
                           tally.on_batch, progress=progress, warn=tally.note,
                           path_filter=combine(skip_manifest(root, manifest),
                                               filters.path_filter(root)))
                template = Root(
                    created_ns=time.time_ns(),
                    source=str(root),
                    baycat_version=version.__version__,
                    pool_size=(pool_size or default_pool_size()) if create else saved_pool,
                    filters=filters.to_header(),
                    top=read_top(os.fsencode(root), with_xattrs=True),
                )
                written = sink.finish(template, force=create or old is None)
            except BaseException:
                sink.abort()
                raise
        finally:
            if old is not None:
                old.close()
    return ManifestSummary(
        manifest=manifest,
        entries=sum(tally.kinds.values()),
        files=tally.kinds[FILE],
        dirs=tally.kinds[DIR],
        symlinks=tally.kinds[SYMLINK],
        bytes=tally.bytes,
        hashed_files=progress.hash.files,
        hashed_bytes=progress.hash.bytes,
        changed_entries=sink.changed_entries,
        errors=tally.errors,
        written=written is not None,
        pool_size=run_pool,
        seconds=time.perf_counter() - started,
    )


_kind_of = itemgetter(1)  # Entry.kind


class _Tally:
    """Counts what the scan saw (by kind, file bytes, failures) on its way to the
    manifest sink."""

    def __init__(self, sink: LocalManifestSink, warn: NoticeFunc) -> None:
        self._sink = sink
        self._warn = warn
        self.kinds: Counter[str] = Counter()  # every kind (FIFOs, hardlinks, ...)
        self.bytes = 0
        self.errors = 0

    def note(self, notice: Notice) -> None:
        self.errors += notice.failure
        self._warn(notice)

    async def on_batch(self, items: list[ScanItem]) -> None:
        # Once per path of every run: counted by C code (Counter.update over a map), not
        # by a loop of `+=` (a no-change run is little more than this and the walk).
        entries = [entry for _, entry, _, _ in items if entry is not None]
        self.kinds.update(map(_kind_of, entries))
        self.bytes += sum([entry.size for entry in entries if entry.kind == FILE])
        self._sink.add_items(items)
