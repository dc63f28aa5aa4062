"""`baycat prune`: delete what no kept generation and no current entry needs.

    current root + each kept generation's root copy ─► needed: keys of live files,
                                                       their VersionIds (or ETags)
    1. files deleted locally whose key no kept generation has live: entries dropped
       from the current root (one commit that amends the current generation) and
       their objects deleted
    2. packs no kept generation needs (ops/gc.py, with its multipart/temp clean-up)
    3. versioned buckets: noncurrent versions nothing needs (old data versions, old
       roots, deleted packs), DeleteObjects with VersionIds, 1,000 a request

A kept generation needs only its live files (what `restore --at` restores). Every
deletion is of something older than `--grace` (by LastModified), because a sync in
flight uploads objects and versions before its commit references them; the latest
version of a key is never deleted unless its entry was dropped. A version under Object
Lock retention is refused by the store: it is reported as locked, not as a failure.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baycat import hooks
from baycat.entry import FILE, Entry
from baycat.errors import ExitCode, ManifestError
from baycat.manifest.generations import format_time
from baycat.manifest.keys import object_key
from baycat.manifest.rebuild import sorted_changes
from baycat.manifest.remote import RemoteManifest
from baycat.manifest.root import Generation
from baycat.manifest.versioning import ENABLED, SUSPENDED
from baycat.ops.gc import DEFAULT_GRACE_S, GcSummary, collect
from baycat.ops.safety import locked_until_ns
from baycat.store.base import ObjectInfo, ObjectStore
from baycat.store.layout import is_state_key

# What a store answers for a delete that Object Lock retention (or a legal hold) refuses.
LOCKED_CODES = ("AccessDenied", "ObjectLocked", "InvalidRequest")


@dataclass(slots=True)
class PruneSummary:
    """What `prune --json` prints."""

    destination: str
    dry_run: bool
    versioned: bool = False  # deletes add delete markers; space frees as versions go
    generations: int = 0  # kept generations whose needs were read
    entries_dropped: int = 0  # deleted-file entries no kept generation has live
    deleted_objects: int = 0
    deleted_bytes: int = 0
    deleted_versions: int = 0  # noncurrent versions (versioned buckets)
    deleted_version_bytes: int = 0
    young: int = 0  # unneeded but younger than --grace: kept
    locked: list[dict[str, str]] = field(default_factory=list)  # refused by Object Lock
    failed: list[dict[str, str]] = field(default_factory=list)
    gc: GcSummary | None = None
    committed: bool = False
    requests: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def freed_objects(self) -> int:
        """Objects (versions) gone for good: on a versioned bucket, deleting a key only
        adds a delete marker, and its versions are what `deleted_versions` counts."""
        if self.versioned:
            return self.deleted_versions
        packs = self.gc.deleted_packs if self.gc is not None else 0
        return self.deleted_objects + self.deleted_versions + packs

    @property
    def freed_bytes(self) -> int:
        if self.versioned:
            return self.deleted_version_bytes
        packs = self.gc.deleted_bytes if self.gc is not None else 0
        return self.deleted_bytes + self.deleted_version_bytes + packs

    @property
    def exit_code(self) -> ExitCode:
        failed = self.failed or (self.gc is not None and self.gc.failed)
        return ExitCode.PARTIAL if failed else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "dry_run": self.dry_run,
                "versioned": self.versioned, "generations": self.generations,
                "entries_dropped": self.entries_dropped,
                "deleted_objects": self.deleted_objects, "deleted_bytes": self.deleted_bytes,
                "deleted_versions": self.deleted_versions,
                "deleted_version_bytes": self.deleted_version_bytes,
                "freed_objects": self.freed_objects, "freed_bytes": self.freed_bytes,
                "young": self.young, "locked": self.locked, "failed": self.failed,
                "gc": self.gc.to_json() if self.gc is not None else None,
                "committed": self.committed, "requests": self.requests,
                "seconds": self.seconds, "exit_code": int(self.exit_code)}


class _Needs:
    """What the current root and the kept generations need: keys of live files, and
    per key the VersionIds (or, for entries recorded without one, the ETags) they read."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.versions: set[tuple[str, str]] = set()
        self.etags: set[tuple[str, str]] = set()

    def add(self, entry: Entry) -> None:
        if entry.kind != FILE or entry.deleted_ns:
            return
        key = object_key(entry)
        self.keys.add(key)
        if entry.version_id:
            self.versions.add((key, entry.version_id))
        else:
            self.etags.add((key, entry.etag.strip('"')))


class PruneRun:
    def __init__(self, store: ObjectStore, grace_s: float, dry_run: bool,
                 now_ns: int | None) -> None:
        self.store = store
        self.dry_run = dry_run
        self.grace_s = grace_s
        self.now_ns = time.time_ns() if now_ns is None else now_ns
        self.cutoff = self.now_ns - int(grace_s * 1e9)
        self.summary = PruneSummary(store.url, dry_run)
        self.needs = _Needs()
        self.info: dict[str, Any] = {}  # the current root's (what Object Lock it records)

    async def run(self) -> PruneSummary:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="baycat-prune-") as scratch:
            current = RemoteManifest(self.store, Path(scratch) / "current")
            past = RemoteManifest(self.store, Path(scratch) / "past")
            try:
                await current.load()
                if current.root is None:
                    raise ManifestError(f"no baycat backup at {self.store.url} "
                                        "(no .baycat/root)")
                self.info = current.root.info
                versioning = await current.versioning.get(current.root)
                self.summary.versioned = versioning.status in (ENABLED, SUSPENDED)
                deleted = self._read_current(current)
                for generation in current.root.history:
                    if generation.time_ns != current.root.created_ns:  # not the current
                        await self._read_generation(past, generation)
                dropped = await self._delete_files(deleted)
                # Killed here, the entries stay with their objects gone (verify says
                # missing); the next prune finds them again and drops them.
                hooks.fire("prune.before_commit", b"")
                if dropped and not self.dry_run:
                    # One more generation would be nothing new: amend the current one.
                    current.history = max(current.history, len(current.root.history))
                    template = current.root
                    self.summary.committed = await current.commit(
                        sorted_changes(dict.fromkeys(dropped)), template, amend=True)
            finally:
                current.close()
                past.close()
        self.summary.gc = await collect(self.store, grace_s=self.grace_s,
                                        dry_run=self.dry_run, now_ns=self.now_ns)
        if self.summary.versioned:  # else there are no noncurrent versions: no LIST
            await self._delete_versions()
        self.summary.requests = dict(self.store.requests)
        self.summary.seconds["total"] = time.perf_counter() - started
        return self.summary

    def _read_current(self, current: RemoteManifest) -> list[Entry]:
        deleted: list[Entry] = []
        for entry in current.entries():
            self.needs.add(entry)
            if entry.kind == FILE and entry.deleted_ns:
                deleted.append(entry)
        return deleted

    async def _read_generation(self, past: RemoteManifest, generation: Generation) -> None:
        try:
            await past.adopt_generation(generation)
        except ManifestError as exc:
            # Its root copy is gone: nothing here knows what it needs, so nothing that
            # it might need may go. Refuse rather than guess.
            raise ManifestError(f"cannot read a kept generation ({exc}); nothing was "
                                "pruned") from None
        self.summary.generations += 1
        for entry in past.entries():
            self.needs.add(entry)

    async def _delete_files(self, deleted: list[Entry]) -> list[bytes]:
        """Objects of deleted files no kept generation has live; returns the paths
        whose entries go (those whose object is gone, or goes now)."""
        candidates = [e for e in deleted if object_key(e) not in self.needs.keys]
        if not candidates:
            return []
        listing: dict[str, ObjectInfo] = {info.key: info async for info in self.store.list()}
        doomed: dict[str, int] = {}
        dropped: list[bytes] = []
        for entry in candidates:
            info = listing.get(object_key(entry))
            if info is not None and info.modified_ns > self.cutoff:
                self.summary.young += 1  # written lately: maybe a sync in flight's
                continue
            if info is not None and self._locked(info.key, "", info.modified_ns):
                continue
            if info is not None:
                doomed[info.key] = info.size
            dropped.append(entry.path)
        failed: dict[str, str] = {}
        if doomed and not self.dry_run:
            failed = dict(await self.store.delete_many(list(doomed)))
        for key, size in doomed.items():
            if key in failed:
                self._refused(key, "", failed[key])
            else:
                self.summary.deleted_objects += 1
                self.summary.deleted_bytes += size
        gone = {k for k in doomed if k in failed}
        kept_paths = {e.path for e in candidates if object_key(e) in gone}
        dropped = [p for p in dropped if p not in kept_paths]
        self.summary.entries_dropped = len(dropped)
        return dropped

    async def _delete_versions(self) -> None:
        """Noncurrent versions nothing needs (a store without versions lists none)."""
        doomed: dict[tuple[str, str], int] = {}
        async for version in self.store.list_versions():
            if version.latest or version.modified_ns > self.cutoff:
                if not version.latest:
                    self.summary.young += 1
                continue
            key = version.key
            if not is_state_key(key) and (
                    (key, version.version_id) in self.needs.versions
                    or (key, version.etag.strip('"')) in self.needs.etags):
                continue
            if not self._locked(key, version.version_id, version.modified_ns):
                doomed[(key, version.version_id)] = version.size
        failed: dict[tuple[str, str], str] = {}
        if doomed and not self.dry_run:
            failed = {(k, v): why for k, v, why in
                      await self.store.delete_versions(list(doomed))}
        for (key, version_id), size in doomed.items():
            why = failed.get((key, version_id))
            if why is not None:
                self._refused(key, version_id, why)
            else:
                self.summary.deleted_versions += 1
                self.summary.deleted_version_bytes += size

    def _locked(self, key: str, version_id: str, written_ns: int) -> bool:
        """Under the retention the backup records: reported, and not even tried."""
        until = locked_until_ns(self.info, written_ns)
        if until <= self.now_ns:
            return False
        self.summary.locked.append({"key": key, "version_id": version_id,
                                    "message": f"Object Lock retention until "
                                    f"{format_time(until)}"})
        return True

    def _refused(self, key: str, version_id: str, why: str) -> None:
        item = {"key": key, "version_id": version_id, "message": why}
        if any(code in why for code in LOCKED_CODES):
            self.summary.locked.append(item)
        else:
            self.summary.failed.append(item)


async def prune(store: ObjectStore, *, grace_s: float = DEFAULT_GRACE_S,
                dry_run: bool = False, now_ns: int | None = None) -> PruneSummary:
    """Delete what no kept generation and no current entry needs (module docstring)."""
    return await PruneRun(store, grace_s, dry_run, now_ns).run()
