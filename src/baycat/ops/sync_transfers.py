"""The transfers of a backup run: new content is uploaded, or copied server-side from an
object that already holds it, by `--transfers` workers.

    add(local) ─► (first sync) queue ─────────────────────────────► workers
               └► (else) deferred ─► resolve_deferred: copy sources ─┘  │
                                     found in the remote manifest       ▼
                                                                    ChangeSet

On a first sync uploads stream at once. Otherwise new content waits until the scan ends
(O(changes) memory), then one pass over the cached remote manifest's hash columns finds
objects with the same content: those become copies, ordered before any write to their
source keys (transfer_plan.py) and conditional on the source's recorded ETag. A file
that fails is reported and not recorded, so the next run tries it again.

Files of one run with the same content and no object to copy from yet (duplicates in a
first sync: a kernel tree has ~400) are uploaded once: the first is uploaded, the others
wait for it and are copied server-side from the object it made (`InRunCopies`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from baycat.entry import FILE, Entry, as_text
from baycat.errors import BaycatError
from baycat.manifest.keys import key_for_path, object_key, stored_key
from baycat.manifest.remote import RemoteManifest
from baycat.ops.differ import as_remote
from baycat.ops.in_run_copies import InRunCopies
from baycat.ops.sync_changes import ChangeSet
from baycat.ops.sync_context import FATAL, SyncContext
from baycat.ops.transfer import Uploader, file_etag
from baycat.ops.transfer_plan import CopyReaders, Job, order_jobs
from baycat.progress import Notice
from baycat.store.base import NotFound, ObjectInfo, PreconditionFailed, Stored
from baycat.store.layout import is_state_key

# Uploads at least this big get their own line in the live display.
LARGE_FILE = 32 << 20

_DAMAGED = ("its object no longer holds the content the manifest records; "
            "it is uploaded again by the next sync")


class Transfers:
    def __init__(self, ctx: SyncContext, changes: ChangeSet, uploader: Uploader) -> None:
        self.ctx = ctx
        self.changes = changes
        self.uploader = uploader
        self.queue: asyncio.Queue[Job | None] = asyncio.Queue(
            ctx.options.transfer.transfers * 4)
        self.deferred: list[Entry] = []  # new content, waiting for copy sources
        self.readers = CopyReaders(())  # keys that queued copies still have to read
        # Remote entries whose object no longer holds their content (a conditional copy
        # from them was refused): marked for re-upload, and the next run merges in full.
        self.damaged: dict[bytes, Entry] = {}
        self.listing: dict[str, ObjectInfo] = {}  # --scan-remote: the bucket's objects
        self.prefix = ctx.store.key_prefix
        self.in_run = InRunCopies(ctx.options.transfer.multipart_threshold)

    # ---- what to transfer --------------------------------------------------------------

    async def add(self, local: Entry, stream: bool) -> None:
        """New content for `local.path`: queued at once with `stream` (nothing to copy
        from yet), else kept until `resolve_deferred`."""
        self.ctx.progress.transfer.total_files += 1
        self.ctx.progress.transfer.total_bytes += local.size
        if stream:
            self.in_run.claim(local)
            await self.queue.put(Job(local, key_for_path(local.path, self.prefix), None))
        else:
            self.deferred.append(local)

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
        for job in ordered:
            if job.source is None:  # in queue order: the first of a content is uploaded
                self.in_run.claim(job.local)
        self.readers = CopyReaders(ordered)
        for job in ordered:
            await self.queue.put(job)

    async def close(self, workers: int) -> None:
        """No more jobs: each worker stops once the queue is drained."""
        for _ in range(workers):
            await self.queue.put(None)

    # ---- the workers -------------------------------------------------------------------

    async def worker(self) -> None:
        ctx = self.ctx
        while (job := await self.queue.get()) is not None:
            local, key, source = job
            if ctx.stop_requested() or ctx.options.dry_run:
                if source is not None:
                    self.readers.done(source)
                self.in_run.settle(local)
                if not ctx.stop_requested():  # a dry run counts what it would do
                    copy = source is not None or self.in_run.is_duplicate(local)
                    (ctx.summary.copied if copy else ctx.summary.uploaded).add(local.size)
                    ctx.report("copy" if copy else "upload", local.path, local.size)
                continue  # after a stop request: drain, no new work
            try:
                stored = await self._copy(job) if source is not None else None
                if stored is None and source is None:
                    stored = await self._copy_in_run(job)
                entry = local
                if stored is None:
                    await self.readers.wait_until_read(key)
                    adopted = await self._adopt(local, key) if key in self.listing else None
                    if adopted is not None:
                        stored, entry = adopted
                    else:
                        done = await self.uploader.upload(local, key, self._bytes_of(local))
                        stored, entry = done.stored, done.entry
                        ctx.summary.uploaded.add(done.bytes_sent)
                        self.changes.bytes_since_commit += done.bytes_sent
                        ctx.report("upload", local.path, done.bytes_sent)
                self.in_run.uploaded(local, entry, key, stored)
            except BaycatError as exc:
                if isinstance(exc, FATAL):
                    raise
                ctx.warn(Notice(local.path, f"not backed up: {exc}"))
                continue
            finally:
                self.in_run.settle(local)  # duplicates waiting on it go on (or upload)
                ctx.progress.transfer.files += 1
                if local.size >= LARGE_FILE:
                    ctx.progress.active.pop(as_text(local.path), None)
            self.changes.put(local.path, as_remote(entry, stored.etag,
                                                   stored_key(local.path, self.prefix),
                                                   stored.version_id))
            await ctx.mirror_metadata(entry, key)

    async def _copy(self, job: Job) -> Stored | None:
        """Copy `job.local`'s content from `job.source`'s object; None when the copy
        could not be made safely (the caller uploads instead).

        The copy is conditional on the source's recorded ETag (and reads the recorded
        version where there is one): an object changed since it was recorded is
        refused, not copied, and its entry is marked for repair."""
        source = job.source
        assert source is not None
        store = self.ctx.store
        try:
            stored = await store.copy(object_key(source), job.key, if_match=source.etag,
                                      source_version=source.version_id)
        except NotFound:
            return None  # the object went away: upload after all
        except PreconditionFailed:
            self.damaged[source.path] = source
            self.ctx.warn(Notice(source.path, _DAMAGED, failure=False))
            return None
        finally:
            self.readers.done(source)
        return self._accepted_copy(job, stored, source.etag)

    def _accepted_copy(self, job: Job, stored: Stored, expected_etag: str) -> Stored | None:
        """A copy counts when its object has the source's ETag; None: what was copied is
        not the recorded content (the caller uploads over it)."""
        if (self.ctx.store.content_etags
                and stored.etag.strip('"') != expected_etag.strip('"')):
            return None
        self.ctx.summary.copied.add(job.local.size)
        self.ctx.report("copy", job.local.path, job.local.size)
        return stored

    async def _copy_in_run(self, job: Job) -> Stored | None:
        """A duplicate of content this run uploads: wait for that upload, then copy its
        object (conditional on the ETag it got). None: upload this file itself."""
        made = await self.in_run.source_for(job.local)
        if made is None:
            return None
        source_key, source = made
        await self.readers.wait_until_read(job.key)  # a write like any other
        try:
            stored = await self.ctx.store.copy(source_key, job.key, if_match=source.etag,
                                               source_version=source.version_id)
        except (NotFound, PreconditionFailed):
            return None  # replaced behind our back since: upload after all
        return self._accepted_copy(job, stored, source.etag)

    def record_damaged(self) -> None:
        """Entries found damaged get no ETag: the next run's differ re-uploads them
        (unless this run already replaced them)."""
        for path, source in self.damaged.items():
            if path not in self.changes:
                self.changes.put(path, source._replace(etag=""))
                self.changes.base(path, source)

    def _on_bytes(self, n: int) -> None:
        self.ctx.progress.transfer.bytes += n

    def _bytes_of(self, local: Entry) -> Callable[[int], None]:
        """Progress callback of one upload; a large file also gets its own display line."""
        if local.size < LARGE_FILE:
            return self._on_bytes
        progress = self.ctx.progress
        name, active, done = as_text(local.path), progress.active, [0]
        active[name] = (0, local.size)

        def on_bytes(n: int) -> None:
            progress.transfer.bytes += n
            done[0] += n
            active[name] = (done[0], local.size)

        return on_bytes

    # ---- --scan-remote -----------------------------------------------------------------

    async def load_listing(self) -> None:
        async for info in self.ctx.store.list():
            if not is_state_key(info.key):
                self.listing[info.key] = info

    async def _adopt(self, local: Entry, key: str) -> tuple[Stored, Entry] | None:
        """--scan-remote: the object at `key` already holds this file (same size and
        ETag) — record it instead of uploading again."""
        info = self.listing[key]
        if info.size != local.size:
            return None
        part = self.ctx.options.transfer.upload_part_size(local.size)
        etag = await asyncio.to_thread(file_etag, self.ctx.root_bytes + b"/" + local.path,
                                       part)
        if etag is None or etag != info.etag.strip('"'):
            return None
        self.ctx.summary.adopted.add(local.size)
        self.ctx.report("adopt", local.path, local.size)
        return Stored(info.etag), local

    def report_unknown(self, remote: RemoteManifest) -> None:
        """--scan-remote: objects no manifest entry points at."""
        known = {object_key(e) for e in remote.entries() if e.kind == FILE}
        unknown = [k for k in self.listing if k not in known]
        if unknown:
            self.ctx.summary.notices.append(
                f"{len(unknown)} objects under {self.ctx.store.url} are not in the manifest "
                f"(e.g. {unknown[0]!r})")
