"""Repair: put back the objects that `verify` finds missing or damaged.

    verify (check_store) ─► damaged entries ─┬─ the file in SRC still has the manifest's
                                             │  content (hashed) ──► upload it again
                                             ├─ another object holds that content ───► copy
                                             │  (server-side, conditional on its ETag)
                                             └─ neither ─────────────► unrepairable (exit 1)
    then one commit: the repaired entries with their new ETag and VersionId.

`sync` can't do this: it compares the tree with the manifest, not the manifest with the
bucket, so a deleted or overwritten object stays broken while the file is unchanged.
The manifest's entry is kept as it is (metadata, hash); only where its object lives
changes. The local tree, its manifest and the no-change marker are not written: the
commit moves the remote root, so the next sync merges in full.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from baycat.entry import FILE, Entry, as_text, entry_from_stat
from baycat.errors import BaycatError, ExitCode, first_of
from baycat.manifest.keys import object_key
from baycat.manifest.rebuild import sorted_changes
from baycat.manifest.remote import PACK_PREFIX, RemoteManifest
from baycat.ops.prepare import check_source_dir
from baycat.ops.transfer import TransferConfig, Uploader
from baycat.ops.verify import Problem, VerifyOptions, VerifySummary, check_store
from baycat.progress import Progress
from baycat.scan.hasher import hash_file
from baycat.store.base import NotFound, ObjectStore, PreconditionFailed, Stored

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class RepairOptions:
    deep: bool = False  # find damage by re-hashing every object, not only size and ETag
    dry_run: bool = False
    transfers: int = 16


@dataclass(frozen=True, slots=True)
class Repaired:
    path: str
    how: str  # "uploaded" (from SRC) or "copied" (from another object)
    source: str  # the local path or the object key it came from
    problem: str  # what verify found


@dataclass(slots=True)
class RepairSummary:
    """What `repair --json` prints."""

    source: str
    destination: str
    deep: bool = False
    dry_run: bool = False
    checked: int = 0  # file entries verified
    damaged: int = 0  # of those, missing, corrupt or unreadable
    uploaded: int = 0
    uploaded_bytes: int = 0
    copied: int = 0
    repaired: list[Repaired] = field(default_factory=list)
    unrepairable: list[Problem] = field(default_factory=list)
    committed: bool = False
    requests: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.unrepairable else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "source": self.source,
                "destination": self.destination, "deep": self.deep,
                "dry_run": self.dry_run, "checked": self.checked, "damaged": self.damaged,
                "uploaded": {"files": self.uploaded, "bytes": self.uploaded_bytes},
                "copied": {"files": self.copied},
                "repaired": [{"path": r.path, "how": r.how, "source": r.source,
                              "problem": r.problem} for r in self.repaired],
                "unrepairable": [{"kind": p.kind, "path": p.path, "message": p.message}
                                 for p in self.unrepairable],
                "committed": self.committed, "requests": self.requests,
                "seconds": self.seconds, "exit_code": int(self.exit_code)}


class RepairRun:
    """`await RepairRun(source, store, options).run()`: verify, fix, commit."""

    def __init__(self, source: Path, store: ObjectStore, options: RepairOptions,
                 progress: Progress) -> None:
        self.source = check_source_dir(source)
        self.root_bytes = os.fsencode(self.source)
        self.store = store
        self.options = options
        self.progress = progress
        self.summary = RepairSummary(str(self.source), store.url, options.deep,
                                     options.dry_run)
        self.uploader = Uploader(store, TransferConfig(transfers=options.transfers),
                                 self.root_bytes)
        self.fixed: dict[bytes, Entry | None] = {}

    async def run(self) -> RepairSummary:
        started = time.perf_counter()
        await self.store.check()
        with tempfile.TemporaryDirectory(prefix="baycat-repair-") as scratch:
            remote = RemoteManifest(self.store, Path(scratch) / "cache")
            try:
                damaged = await self._verify(remote)
                assert remote.root is not None
                # The repair's commit is one more generation: it must not push the
                # oldest out (the next sync keeps its own --keep-generations).
                remote.history = max(remote.history, len(remote.root.history) + 1)
                await self._repair_all(remote, damaged)
                if self.fixed and not self.options.dry_run:
                    template = replace(remote.root, history=())
                    self.summary.committed = await remote.commit(
                        sorted_changes(self.fixed), template)
            finally:
                remote.close()
        self.summary.requests = dict(self.store.requests)
        self.summary.seconds["total"] = time.perf_counter() - started
        return self.summary

    async def _verify(self, remote: RemoteManifest) -> list[tuple[Entry, Problem]]:
        found = VerifySummary(source=self.store.url)
        damaged: list[tuple[Entry, Problem]] = []
        await check_store(remote, VerifyOptions(deep_percent=100.0 if self.options.deep
                                                else 0.0, transfers=self.options.transfers),
                          self.progress, found, damaged)
        self.summary.checked = found.files
        self.summary.damaged = len(damaged)
        for problem in found.problems:  # what is not a file's object: not ours to fix
            if problem.kind == "missing" and problem.path.startswith(PACK_PREFIX):
                self.summary.unrepairable.append(problem)
        return damaged

    async def _repair_all(self, remote: RemoteManifest,
                          damaged: list[tuple[Entry, Problem]]) -> None:
        bad = {entry.path for entry, _ in damaged}
        wanted = {entry.xxh for entry, _ in damaged if entry.xxh}
        sources: dict[bytes, list[Entry]] = {}

        def find_sources() -> None:
            for entry in remote.entries_with_content(wanted):
                if entry.kind == FILE and entry.etag and entry.path not in bad:
                    sources.setdefault(entry.xxh, []).append(entry)

        if wanted:
            await asyncio.to_thread(find_sources)
        limit = asyncio.Semaphore(self.options.transfers)

        async def one(entry: Entry, problem: Problem) -> None:
            async with limit:
                await self._repair(entry, problem, sources.get(entry.xxh, []))

        try:
            async with asyncio.TaskGroup() as group:
                for entry, problem in damaged:
                    group.create_task(one(entry, problem))
        except BaseExceptionGroup as group_error:
            raise first_of(group_error, (BaseException,)) or group_error from None

    async def _repair(self, entry: Entry, problem: Problem, sources: list[Entry]) -> None:
        path = as_text(entry.path)
        try:
            if await self._from_local(entry, problem):
                return
            for source in sources:
                if await self._from_copy(entry, problem, source):
                    return
        except BaycatError as exc:
            self.summary.unrepairable.append(Problem(problem.kind, path,
                                                     f"{problem.message}; repair failed: {exc}"))
            return
        why = (f"{problem.message}; the file in {self.source} no longer has the manifest's "
               "content and no other object holds it")
        self.summary.unrepairable.append(Problem(problem.kind, path, why))

    def _local_matches(self, entry: Entry) -> Entry | None:
        """Blocking: the local file's fresh entry when it still has `entry`'s content."""
        full = self.root_bytes + b"/" + entry.path
        try:
            st = os.lstat(full)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
            return None
        hashed = hash_file(full, entry_from_stat(entry.path, FILE, st))
        if hashed.entry is None or hashed.entry.xxh != entry.xxh:
            return None
        return hashed.entry

    async def _from_local(self, entry: Entry, problem: Problem) -> bool:
        key = object_key(entry)
        if entry.size == 0:  # the content is known without the file
            stored = None if self.options.dry_run else await self.store.put(
                key, b"", md5=hashlib.md5(b"").digest())
            self._done(entry, problem, stored, "uploaded", as_text(entry.path), 0)
            return True
        local = await asyncio.to_thread(self._local_matches, entry)
        if local is None:
            return False
        if self.options.dry_run:
            self._done(entry, problem, None, "uploaded", as_text(entry.path), entry.size)
            return True
        done = await self.uploader.upload(local, key)
        if done.entry.xxh != entry.xxh:  # changed between the hash and the upload
            raise BaycatError("the file changed while it was uploaded; run repair again")
        self._done(entry, problem, done.stored, "uploaded", as_text(entry.path),
                   done.bytes_sent)
        return True

    async def _from_copy(self, entry: Entry, problem: Problem, source: Entry) -> bool:
        source_key = object_key(source)
        stored = None
        if not self.options.dry_run:
            try:
                stored = await self.store.copy(source_key, object_key(entry),
                                               if_match=source.etag,
                                               source_version=source.version_id)
            except (NotFound, PreconditionFailed):
                return False  # that one is gone or changed too: try the next
        self._done(entry, problem, stored, "copied", source_key, 0)
        return True

    def _done(self, entry: Entry, problem: Problem, stored: Stored | None, how: str,
              source: str, size: int) -> None:
        summary = self.summary
        if how == "uploaded":
            summary.uploaded += 1
            summary.uploaded_bytes += size
        else:
            summary.copied += 1
        summary.repaired.append(Repaired(as_text(entry.path), how, source, problem.kind))
        if stored is not None:
            self.fixed[entry.path] = entry._replace(etag=stored.etag,
                                                    version_id=stored.version_id)


async def repair_store(source: Path, store: ObjectStore, options: RepairOptions | None = None,
                       *, progress: Progress | None = None) -> RepairSummary:
    """Re-upload or re-copy what `verify` finds missing or damaged in `store`."""
    return await RepairRun(source, store, options or RepairOptions(),
                           progress or Progress()).run()
