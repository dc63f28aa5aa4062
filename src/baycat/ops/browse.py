"""Looking into a backup without restoring it: `ls` (a generation's entries under a
path) and `diff` (what changed between two generations, or between one and a tree).

    root (1 GET) ─► generation: the latest, or --at's root copy (1 ranged GET of its pack)
                 ─► its segments (ranged GETs of the packs) ─► entries, in path order
    ls:   the entries at and below PATH
    diff: merge join of two such streams (or one and a scan of the local tree) ─► changes

Only the manifest is read, never a data object: what `ls -l` shows (type, mode, owner,
size, mtime) is all in the entries. Each generation is loaded into a scratch cache of its
own (the tree's cache follows the latest and is not touched). The remote manifest is
untrusted input: its entries pass `validate.checked` before they are shown.

A diff classifies each path (`classify`, a pure function):
    added     only in the newer side (or deleted there before)
    removed   only in the older side
    modified  content changed: a file's hash or size, a symlink's target, or the type
    metadata  same content, other mode, owner or mtime
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from baycat.entry import (
    BLOCK_DEVICE,
    CHAR_DEVICE,
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    SYMLINK,
    Entry,
    as_text,
    path_key,
    same_metadata,
)
from baycat.errors import ManifestError, UsageError
from baycat.manifest.generations import format_time, pick, require_root
from baycat.manifest.remote import RemoteManifest
from baycat.manifest.root import Generation, Root
from baycat.manifest.validate import checked
from baycat.ops.prepare import check_source_dir, choose_pool_size, resolve_filters
from baycat.progress import NoticeFunc, Progress, ignore_notice
from baycat.scan.filters import read_ignore_files
from baycat.scan.local_manifest import default_manifest_path, entries_of, open_manifest
from baycat.scan.pipeline import ScanConfig, ScanItem, scan
from baycat.store.base import ObjectStore

ADDED, REMOVED, MODIFIED, METADATA = "added", "removed", "modified", "metadata"
CHANGE_KINDS = (ADDED, REMOVED, MODIFIED, METADATA)
TYPE_NAMES = {FILE: "file", DIR: "dir", SYMLINK: "symlink", HARDLINK: "hardlink",
              FIFO: "fifo", CHAR_DEVICE: "chardev", BLOCK_DEVICE: "blockdev"}


def entry_json(entry: Entry) -> dict[str, Any]:
    """An entry as `ls --json` and `diff --json` show it (no object key or ETag)."""
    doc: dict[str, Any] = {
        "path": as_text(entry.path), "type": TYPE_NAMES[entry.kind], "size": entry.size,
        "mode": entry.mode, "uid": entry.uid, "gid": entry.gid, "mtime_ns": entry.mtime_ns,
        "hash": entry.xxh.hex() if entry.kind == FILE and entry.xxh else None,
        "target": as_text(entry.target) if entry.kind == SYMLINK else None,
    }
    if entry.kind == HARDLINK:  # another name of the file at `link`
        doc["link"] = as_text(entry.link)
    elif entry.kind in (CHAR_DEVICE, BLOCK_DEVICE):
        doc["rdev"] = entry.rdev
    if entry.deleted_ns:
        doc["deleted_ns"] = entry.deleted_ns
    try:
        entry.path.decode()
    except UnicodeDecodeError:
        doc["path_hex"] = entry.path.hex()  # exact bytes of a name that isn't UTF-8
    return doc


# ---- ls ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """What `baycat ls` reports: the entries at PATH (a directory's children, with
    `recursive` everything below it), in path order."""

    source: str
    path: str
    generation: Generation
    recursive: bool
    entries: tuple[Entry, ...]
    requests: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "path": self.path, "recursive": self.recursive,
                "generation": format_time(self.generation.time_ns),
                "generation_ns": self.generation.time_ns,
                "entries": [entry_json(e) for e in self.entries], "requests": self.requests}


def normal_path(path: str) -> bytes:
    """PATH inside the backup: no leading or trailing slash; "" or "." is the top."""
    parts = [p for p in os.fsencode(path).split(b"/") if p and p != b"."]
    if b".." in parts:
        raise UsageError(f"{path!r}: a path inside the backup has no '..'")
    return b"/".join(parts)


def select(entries: Iterator[Entry], path: bytes, recursive: bool,
           include_deleted: bool) -> Iterator[Entry]:
    """The entries `ls PATH` shows: PATH itself when it is not a directory, else what
    lies in it (directly, or with `recursive` at any depth)."""
    prefix = path + b"/" if path else b""
    for entry in entries:
        if entry.deleted_ns and not include_deleted:
            continue
        itself = entry.path == path and entry.kind != DIR
        below = entry.path.startswith(prefix) and entry.path != path and (
            recursive or b"/" not in entry.path[len(prefix):])
        if itself or below:
            yield entry


@dataclass(slots=True)
class _Loaded:
    remote: RemoteManifest
    generation: Generation


async def _load(store: ObjectStore, root: Root | None, at_ns: int | None,
                scratch: Path, name: str) -> _Loaded:
    """The generation current at `at_ns` (None: the latest) in a cache under `scratch`.
    `root`: the current root when already read (its history picks the generation)."""
    await store.check()
    remote = RemoteManifest(store, scratch / name)
    try:
        if at_ns is None:
            await remote.load()
            if remote.root is None:
                raise ManifestError(f"no baycat backup at {store.url} (no .baycat/root)")
            # A backup written before generations were kept has none: its root is it.
            generation = remote.root.history[0] if remote.root.history else Generation(
                time_ns=remote.root.created_ns, pack="", offset=0, length=0, files=0,
                file_bytes=0)
        else:
            current = root or await require_root(store)
            generation = pick(current.history, at_ns)
            await remote.adopt_generation(generation)
    except BaseException:
        remote.close()
        raise
    return _Loaded(remote, generation)


async def list_backup(store: ObjectStore, path: str = "", *, at_ns: int | None = None,
                      recursive: bool = False, include_deleted: bool = False) -> Listing:
    """`baycat ls`: the entries of a generation at `path` (see `select`); UsageError
    when the generation has nothing there."""
    wanted = normal_path(path)
    with tempfile.TemporaryDirectory(prefix="baycat-ls-") as scratch:
        loaded = await _load(store, None, at_ns, Path(scratch), "generation")
        try:
            found = tuple(select(checked(loaded.remote.entries()), wanted, recursive,
                                 include_deleted))
            if not found and wanted and not any(
                    e.path == wanted and (include_deleted or not e.deleted_ns)
                    for e in loaded.remote.lookup([wanted]).values()):
                raise UsageError(f"{path}: not in the backup as of "
                                 f"{format_time(loaded.generation.time_ns)}")
        finally:
            loaded.remote.close()
    return Listing(store.url, as_text(wanted), loaded.generation, recursive, found,
                   dict(store.requests))


# ---- diff -------------------------------------------------------------------------------


class Change(NamedTuple):
    kind: str  # one of CHANGE_KINDS
    old: Entry | None
    new: Entry | None

    @property
    def path(self) -> bytes:
        entry = self.new or self.old
        assert entry is not None
        return entry.path

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"change": self.kind, "path": as_text(self.path)}
        doc["old"] = entry_json(self.old) if self.old is not None else None
        doc["new"] = entry_json(self.new) if self.new is not None else None
        return doc


def _live(entry: Entry | None) -> Entry | None:
    return entry if entry is not None and not entry.deleted_ns else None


def classify(old: Entry | None, new: Entry | None) -> str | None:
    """What happened to one path from `old` to `new` (None: nothing). Entries marked
    deleted count as absent."""
    old, new = _live(old), _live(new)
    if old is None:
        return ADDED if new is not None else None
    if new is None:
        return REMOVED
    if old.kind != new.kind or old.target != new.target or (
            new.kind == FILE and (old.size != new.size or old.xxh != new.xxh)):
        return MODIFIED
    return None if same_metadata(old, new) else METADATA


def diff_entries(old: Iterator[Entry], new: Iterator[Entry]) -> Iterator[Change]:
    """Merge join of two entry streams in path order: every path that changed."""
    a, b = next(old, None), next(new, None)
    pair: tuple[Entry | None, Entry | None]
    while a is not None or b is not None:
        if b is None or (a is not None and path_key(a.path) < path_key(b.path)):
            pair, a = (a, None), next(old, None)
        elif a is None or path_key(b.path) < path_key(a.path):
            pair, b = (None, b), next(new, None)
        else:
            pair, a, b = (a, b), next(old, None), next(new, None)
        kind = classify(*pair)
        if kind is not None:
            yield Change(kind, *pair)


@dataclass(slots=True)
class DiffSummary:
    """What `baycat diff` reports: the changes from `old` to `new`, in path order."""

    source: str
    old: str  # a generation's time (UTC)
    new: str  # a generation's time, or the local directory
    new_is_local: bool = False
    changes: list[Change] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counted = dict.fromkeys(CHANGE_KINDS, 0)
        for change in self.changes:
            counted[change.kind] += 1
        return counted

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "old": self.old, "new": self.new,
                "new_is_local": self.new_is_local, "counts": self.counts(),
                "changes": [c.to_json() for c in self.changes], "requests": self.requests}


async def diff_generations(store: ObjectStore, at: tuple[int, ...] = ()) -> DiffSummary:
    """What changed between two generations: `at` () the one before the latest and the
    latest; (T1,) T1's and the latest; (T1, T2) T1's and T2's."""
    if len(at) > 2:
        raise UsageError("diff compares two generations: give --at at most twice")
    with tempfile.TemporaryDirectory(prefix="baycat-diff-") as scratch:
        base = Path(scratch)
        # One GET of the root serves both sides (its history picks the generations).
        root = await require_root(store) if len(at) == 2 else None
        newer = await _load(store, root, at[1] if len(at) == 2 else None, base, "new")
        try:
            root = root or newer.remote.root
            if not at:
                assert root is not None
                if len(root.history) < 2:
                    raise UsageError(f"{store.url} keeps one generation only: nothing to "
                                     "compare it with (diff it with a directory instead)")
                older_at = root.history[1].time_ns
            else:
                older_at = at[0]
            older = await _load(store, root, older_at, base, "old")
            try:
                changes = list(diff_entries(checked(older.remote.entries()),
                                            checked(newer.remote.entries())))
            finally:
                older.remote.close()
        finally:
            newer.remote.close()
    return DiffSummary(store.url, format_time(older.generation.time_ns),
                       format_time(newer.generation.time_ns), changes=changes,
                       requests=dict(store.requests))


async def diff_tree(store: ObjectStore, directory: Path, *, at_ns: int | None = None,
                    pool_size: int | None = None, progress: Progress | None = None,
                    warn: NoticeFunc = ignore_notice) -> DiffSummary:
    """What differs between a generation (the latest, or `at_ns`'s) and the tree at
    `directory` now; nothing is written. Files whose stat matches the tree's own
    manifest are not read (as in a sync); the others are hashed. The tree's recorded
    filters apply (else the backup's)."""
    tree = check_source_dir(directory)
    with tempfile.TemporaryDirectory(prefix="baycat-diff-") as scratch:
        loaded = await _load(store, None, at_ns, Path(scratch), "generation")
        local = open_manifest(default_manifest_path(tree))
        try:
            changes: list[Change] = []
            remote = checked(loaded.remote.entries())
            pending: list[Entry] = []

            def older_than(key: bytes | None) -> Iterator[Entry]:
                # The backup's entries before `key` (None: all that are left); the first
                # one at or after it stays in `pending`.
                while True:
                    entry = pending.pop() if pending else next(remote, None)
                    if entry is None:
                        return
                    if key is not None and path_key(entry.path) >= key:
                        pending.append(entry)
                        return
                    yield entry

            async def on_batch(items: list[ScanItem]) -> None:
                for item in items:
                    if item.error:
                        continue  # unreadable now: a warning says so; no verdict
                    for gone in older_than(path_key(item.path)):
                        kind = classify(gone, None)
                        if kind is not None:
                            changes.append(Change(kind, gone, None))
                    old = pending.pop() if pending and pending[-1].path == item.path \
                        else None
                    kind = classify(old, item.entry)
                    if kind is not None:
                        changes.append(Change(kind, old, item.entry))

            saved = local.root if local is not None else loaded.remote.root
            filters = resolve_filters(None, saved)
            pool = choose_pool_size(pool_size, local.root if local is not None else None)
            await scan(os.fsencode(tree), entries_of(local), ScanConfig(pool_size=pool),
                       on_batch, progress=progress or Progress(), warn=warn,
                       path_filter=filters.matcher(read_ignore_files(tree)))
            for gone in older_than(None):
                kind = classify(gone, None)
                if kind is not None:
                    changes.append(Change(kind, gone, None))
        finally:
            loaded.remote.close()
            if local is not None:
                local.close()
    return DiffSummary(store.url, format_time(loaded.generation.time_ns), str(tree),
                       new_is_local=True, changes=changes, requests=dict(store.requests))
