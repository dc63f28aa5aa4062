"""The manifest stored next to the data: a small root object over immutable packs.

    PREFIX/.baycat/root            the root (JSON): header, segment refs, history
    PREFIX/.baycat/packs/<name>    segments written by one commit, then a copy of that
                                   commit's root (for history / point-in-time restore)

Reading: one conditional GET of the root (If-None-Match the ETag cached locally); 304
means the local cache is current and nothing else is fetched. On 200, only segments the
cache does not hold are fetched, one ranged GET per pack.

Committing: the new root is built from the old one plus the run's changes (rebuild.py),
so only segments whose path range changed are encoded; they go up in one pack PUT, then
the root in one conditional PUT (If-Match the ETag read at the start, If-None-Match: *
for the first). A reader sees the old tree or the new one, never a mix. When another
writer committed in between (412), its root is fetched, our changes are applied on top of
it (per path, ours win), and the commit is retried.

The local cache of the segments (`remote_cache.py`) means a root seen before costs no
segment download; whatever of it is damaged is fetched again, with a notice.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from pathlib import Path
from typing import Any

from baycat.entry import Entry, path_key
from baycat.errors import ConflictError, ManifestError
from baycat.manifest import segment
from baycat.manifest.file import segment_stats
from baycat.manifest.keys import object_key
from baycat.manifest.rebase import Resolution, resolve, settle
from baycat.manifest.rebuild import Change, rebuild_with_changes
from baycat.manifest.remote_cache import RemoteCache
from baycat.manifest.root import MAX_ROOT_BYTES, Generation, Root, SegmentRef
from baycat.manifest.versioning import INFO_KEY as VERSIONING_INFO
from baycat.manifest.versioning import RECHECK_NS, VersioningCache
from baycat.store.base import (
    EncryptedBackupError,
    NotFound,
    NotModified,
    ObjectInfo,
    ObjectStore,
    PreconditionFailed,
)
from baycat.store.layout import ENCRYPTED_MAGIC

ROOT_KEY = ".baycat/root"
PACK_PREFIX = ".baycat/packs/"
# Written (at most twice, once per destination) to learn whether the store honours
# If-None-Match; the answer is then kept in the root's info.
PROBE_KEY = ".baycat/probe"
CONDITIONAL_INFO = "conditional_writes"
DEFAULT_HISTORY = 30
COMMIT_ATTEMPTS = 5

# Caps on a root read from the store (untrusted: anyone who can write the bucket, or the
# web server of an HTTP restore). A real segment holds at most segment.MAX_ENTRIES
# entries and compresses below its decoded size; a real tree is far below the totals.
MAX_SEGMENT_ENTRIES = 8 * segment.MAX_ENTRIES
MAX_SEGMENT_BYTES = segment.MAX_DECODED_BYTES + (1 << 20)
MAX_MANIFEST_ENTRIES = 1 << 28
MAX_MANIFEST_BYTES = 16 << 30  # compressed segments, all together
# One ranged GET spans at most this much of a pack (memory: 8 concurrent fetches).
MAX_FETCH_SPAN = 64 << 20


def _corrupt_remote(url: str, detail: str) -> ManifestError:
    return ManifestError(
        f"the remote manifest at {url} is unusable ({detail}); "
        "rebuild it with `baycat sync --scan-remote`")


def check_limits(root: Root, url: str) -> None:
    """Refuse a remote root whose segments or history exceed what baycat ever writes,
    before anything it references is fetched."""
    total_entries = total_bytes = 0
    for ref in root.segments:
        if ref.count > MAX_SEGMENT_ENTRIES or ref.length > MAX_SEGMENT_BYTES:
            raise _corrupt_remote(url, f"segment {ref.hash} is larger than any baycat writes")
        total_entries += ref.count
        total_bytes += ref.length
    if total_entries > MAX_MANIFEST_ENTRIES or total_bytes > MAX_MANIFEST_BYTES:
        raise _corrupt_remote(url, f"{total_entries} entries in {total_bytes} bytes of "
                              "segments exceed the manifest size limits")
    for gen in root.history:
        if gen.offset < 0 or not 0 < gen.length <= MAX_ROOT_BYTES:
            raise _corrupt_remote(url, "bad history entry")


def parse_remote_root(data: bytes, url: str) -> Root:
    """A root read from the store, checked against the size limits."""
    if data.startswith(ENCRYPTED_MAGIC):
        # Not "damaged": --scan-remote would replace a damaged root.
        raise EncryptedBackupError(f"{url} is an encrypted backup: give its password or "
                                   "key (--password-file, --key-file, "
                                   "BAYCAT_PASSWORD_FILE or BAYCAT_PASSWORD_COMMAND)")
    if len(data) > MAX_ROOT_BYTES:
        raise _corrupt_remote(url, f"the root is larger than {MAX_ROOT_BYTES} bytes")
    try:
        root = Root.from_bytes(data)
    except ManifestError as exc:
        if "newer" in str(exc):
            raise
        raise _corrupt_remote(url, str(exc)) from None
    check_limits(root, url)
    return root


def fetch_spans(refs: Sequence[SegmentRef]) -> list[list[SegmentRef]]:
    """Group one pack's refs into runs that one ranged GET of at most MAX_FETCH_SPAN
    bytes covers (a single ref is its own run whatever its length)."""
    runs: list[list[SegmentRef]] = []
    start = 0
    for ref in sorted(refs, key=lambda r: r.offset):
        if runs and ref.offset + ref.length - start <= MAX_FETCH_SPAN:
            runs[-1].append(ref)
        else:
            runs.append([ref])
            start = ref.offset
    return runs


async def read_generation_root(store: ObjectStore, generation: Generation
                               ) -> tuple[Root, int]:
    """The root copy a generation recorded, and its size: one ranged GET of its pack.
    Raises NotFound when the pack is gone."""
    end = generation.offset + generation.length
    got = await store.get(PACK_PREFIX + generation.pack, byte_range=(generation.offset, end))
    assert not isinstance(got, NotModified)
    return parse_remote_root(got.data, store.url), len(got.data)


class RemoteManifest:
    """The remote manifest of one backup location, with its local cache."""

    def __init__(self, store: ObjectStore, cache_path: Path,
                 history: int = DEFAULT_HISTORY, verify_commits: bool = False) -> None:
        self.store = store
        self.cache_path = cache_path
        self.history = history
        # Re-read the root after each commit (one GET): for servers whose conditional
        # PUT is not atomic (SeaweedFS 4.48 lets two racing If-Match PUTs both succeed).
        self.verify_commits = verify_commits
        self.commits_verified_lost = 0
        self.root: Root | None = None  # None: no manifest yet
        self.etag: str | None = None
        self._cache = RemoteCache(cache_path, store.url)
        self._damaged_etag: str | None = None
        self._own_generation: Generation | None = None  # what this run last committed
        self._conditional: bool | None = store.conditional_writes
        self.bytes_downloaded = 0
        self.bytes_uploaded = 0
        # Paths another writer had also changed when this run committed (see rebase.py):
        # while nonzero, the next run must not trust the no-change shortcut.
        self.contested_paths = 0
        self._notices: list[str] = []
        # Whether the bucket keeps old versions: recorded in each root (manifest/versioning.py).
        self.versioning = VersioningCache(store, cache_path.with_name(
            cache_path.name + ".versioning"))

    @property
    def notices(self) -> list[str]:
        """Remarks for the run's summary (a damaged cache, a store without conditional
        writes)."""
        return self._cache.notices + self._notices + self.versioning.notices

    # ---- reading -------------------------------------------------------------------

    async def load(self, ignore_damage: bool = False) -> None:
        """Read the remote root (and what the cache lacks). With `ignore_damage`, an
        unusable remote manifest counts as empty (its ETag is kept, so the commit that
        replaces it is still conditional): how --scan-remote rebuilds one."""
        try:
            await self._load()
        except ManifestError as exc:
            if not ignore_damage or "newer" in str(exc):
                raise
            self.root = None
            self.etag = self._damaged_etag

    async def _load(self) -> None:
        cached_root, cached_etag = await asyncio.to_thread(self._cache.open)
        try:
            fetched = await self.store.get(ROOT_KEY, if_none_match=cached_etag)
        except NotFound:
            self.root, self.etag = None, None
            return
        if isinstance(fetched, NotModified):
            if cached_root is not None and cached_etag is not None and not all(
                    self._cache.has(ref.hash) for ref in cached_root.segments):
                await self._adopt(cached_root, cached_etag)  # refetch what the cache lost
                return
            self.root, self.etag = cached_root, cached_etag
            return
        self.bytes_downloaded += len(fetched.data)
        self._damaged_etag = fetched.etag
        root = parse_remote_root(fetched.data, self.store.url)
        await self._adopt(root, fetched.etag)

    async def _adopt(self, root: Root, etag: str) -> None:
        """Make `root` current: fetch segments the cache lacks, rewrite the cache."""
        check_limits(root, self.store.url)
        missing = [ref for ref in root.segments if not self._cache.has(ref.hash)]
        fetched: dict[str, bytes] = {}
        by_pack: dict[str, list[SegmentRef]] = {}
        for ref in missing:
            by_pack.setdefault(ref.pack, []).append(ref)
        limit = asyncio.Semaphore(8)

        async def fetch_run(pack: str, refs: list[SegmentRef]) -> None:
            start = min(r.offset for r in refs)
            end = max(r.offset + r.length for r in refs)
            async with limit:
                try:
                    got = await self.store.get(PACK_PREFIX + pack, byte_range=(start, end))
                except NotFound:
                    raise _corrupt_remote(self.store.url, f"pack {pack} is missing") from None
            assert not isinstance(got, NotModified)
            self.bytes_downloaded += len(got.data)
            for ref in refs:
                blob = got.data[ref.offset - start:ref.offset - start + ref.length]
                if segment.segment_hash(blob) != ref.hash:
                    raise _corrupt_remote(self.store.url, f"segment {ref.hash} is damaged")
                fetched[ref.hash] = blob

        # gather, not a TaskGroup: the first error comes out as itself (a ManifestError
        # the caller may handle), not wrapped in an ExceptionGroup.
        await asyncio.gather(*(fetch_run(pack, run) for pack, refs in by_pack.items()
                               for run in fetch_spans(refs)))
        await asyncio.to_thread(self._cache.write, root, etag, fetched)
        self.root, self.etag = root, etag

    async def adopt_generation(self, generation: Generation) -> Root:
        """Make an earlier generation current (for a point-in-time restore): its root
        copy is read with one ranged GET of its pack, then the segments the cache lacks.
        Use a cache path of its own: the cache then holds that generation, not the
        latest, and must not be committed on top of."""
        try:
            root, size = await read_generation_root(self.store, generation)
        except NotFound:
            raise _corrupt_remote(self.store.url,
                                  f"pack {generation.pack} of that generation is missing"
                                  ) from None
        self.bytes_downloaded += size
        await self._adopt(root, f"generation:{generation.time_ns}")
        return root

    def load_segment(self, ref: SegmentRef) -> list[Entry]:
        """Blocking: one segment of the current root, from the cache."""
        cached = self._cache.current
        if cached is None:
            raise ManifestError(f"segment {ref.hash} missing from the manifest cache")
        return cached.segment(ref.hash)

    def lookup(self, paths: Sequence[bytes]) -> dict[bytes, Entry]:
        """Blocking: the current entries of `paths` (those that have one), decoding only
        the segments that cover them."""
        root = self.root
        if root is None or not paths:
            return {}
        firsts = [path_key(ref.first) for ref in root.segments]
        wanted: dict[int, set[bytes]] = {}
        for path in paths:
            index = max(bisect.bisect_right(firsts, path_key(path)) - 1, 0)
            wanted.setdefault(index, set()).add(path)
        found: dict[bytes, Entry] = {}
        for index, group in wanted.items():
            for entry in self.load_segment(root.segments[index]):
                if entry.path in group:
                    found[entry.path] = entry
        return found

    def entries(self) -> Iterator[Entry]:
        """Blocking: every entry of the current root, in path order. Keeps reading the
        root that was current when iteration began, even across a commit."""
        root, cached = self.root, self._cache.current
        if root is None:
            return
        assert cached is not None
        for ref in root.segments:
            yield from cached.segment(ref.hash)

    def entries_with_content(self, wanted: AbstractSet[bytes]) -> Iterator[Entry]:
        """Blocking: the entries of the current root whose content hash is in `wanted`.
        Only segments that hold such a hash are decoded (copy sources for new files:
        after a 1 % change in 1M files, none of the ~400 segments usually is)."""
        root, cached = self.root, self._cache.current
        if root is None or not wanted:
            return
        assert cached is not None
        for ref in root.segments:
            blob = cached.blob(ref.hash)
            if segment.has_content(blob, wanted):
                yield from (e for e in cached.decode(ref.hash, blob) if e.xxh in wanted)

    # ---- committing ----------------------------------------------------------------

    def _build(self, base: Root | None, changes: Sequence[Change], template: Root,
               now_ns: int, info: Mapping[str, Any], generation_ns: int | None = None
               ) -> tuple[str, bytearray, Root]:
        """Blocking: the pack and the new root for `changes` applied to `base`.

        Streams: each new run is encoded as soon as the rebuild hands it over and only
        its compressed bytes are kept, so memory is the pack's size (a few dozen bytes
        an entry at most), not decoded entries of every touched segment."""
        refs = base.segments if base is not None else ()
        body = bytearray()
        digest = hashlib.sha256()
        new_refs: list[SegmentRef] = []
        in_pack: list[int] = []  # indexes of the refs that point into this pack
        for out in rebuild_with_changes(refs, self.load_segment, changes):
            if isinstance(out, SegmentRef):
                new_refs.append(out)
                continue
            blob = segment.encode(out)
            files, size = segment_stats(out)
            in_pack.append(len(new_refs))
            new_refs.append(SegmentRef(segment.segment_hash(blob), len(out), out[0].path, "",
                                       len(body), len(blob), files, size))
            body += blob
            digest.update(blob)
        pack = f"{now_ns}-{digest.hexdigest()[:16]}"
        for index in in_pack:
            new_refs[index] = replace(new_refs[index], pack=pack)
        history = base.history if base is not None else ()
        if history and history[0] == self._own_generation:
            # A run's checkpoints make one generation: each replaces the one this run
            # committed before (unless another writer committed since), so a long run
            # does not push earlier nights out of --keep-generations.
            history = history[1:]
        root = replace(template, created_ns=now_ns, history=(),
                       info={**template.info, **info}).with_segments(tuple(new_refs))
        copy = root.to_bytes()
        generation = Generation(now_ns if generation_ns is None else generation_ns, pack,
                                len(body), len(copy), root.files, root.file_bytes)
        root = replace(root, history=(generation, *history)[:self.history])
        body += copy
        return pack, body, root  # not bytes(body): that would hold the pack twice

    async def commit(self, changes: Sequence[Change], template: Root,
                     bases: Mapping[bytes, Entry | None] | None = None,
                     amend: bool = False) -> bool:
        """Apply `changes` and commit; False when there was nothing to commit. With
        `amend`, the new generation replaces the current one instead of adding one (as a
        run's checkpoints do: `prune` dropping entries of long-deleted files).

        `bases` holds, per changed path, the remote entry the change was decided against
        (absent: none); when another writer committed first, only what this run changed
        is applied on top of its root (rebase.py)."""
        if not changes:
            return False
        bases = bases or {}
        amended_ns = None  # an amended generation keeps its time: `restore --at` it
        if amend and self.root is not None and self.root.history:
            self._own_generation = self.root.history[0]
            amended_ns = self._own_generation.time_ns
        conditional = await self._conditional_writes()
        versioning = await self.versioning.get(self.root, RECHECK_NS)
        refused_unchanged = 0  # 412s although the root had not changed
        seen: list[str] = []  # root ETags other writers committed meanwhile
        for _ in range(COMMIT_ATTEMPTS):
            now_ns = time.time_ns()
            pack, body, root = await asyncio.to_thread(
                self._build, self.root, changes, template, now_ns,
                {CONDITIONAL_INFO: conditional, VERSIONING_INFO: versioning.to_json()},
                amended_ns if self.root is not None and self.root.history
                and self.root.history[0] == self._own_generation else None)
            await self.store.put(PACK_PREFIX + pack, body, md5=hashlib.md5(body).digest())
            # Without conditional writes, look just before writing (the window left open
            # is this GET's round trip) and read back just after.
            if not conditional and not await self._still_current():
                raise self._unsafe_conflict("committed to it during this run")
            data = root.to_bytes()
            previous = self.etag
            try:
                stored = await self.store.put(
                    ROOT_KEY, data, md5=hashlib.md5(data).digest(),
                    if_match=self.etag if conditional else None,
                    if_none_match_any=conditional and self.etag is None)
            except (PreconditionFailed, NotFound):
                # AWS answers If-Match on a root deleted meanwhile with 404, not 412.
                await self._refresh_after_conflict()
                if self.etag == previous:
                    refused_unchanged += 1
                    if refused_unchanged >= 2:
                        raise ConflictError(
                            f"{self.store.url}: the store refused the conditional write of "
                            f"the manifest root {refused_unchanged} times (412 Precondition "
                            f"Failed) although the root had not changed (ETag {previous}); "
                            "the server or a proxy in between mishandles If-Match") from None
                else:
                    seen.append(str(self.etag))
                    changes = await self._rebase(changes, bases)
                continue
            self.bytes_uploaded += len(body) + len(data)
            # Some servers answer a PUT without an ETag; a single PUT's ETag is its MD5.
            etag = stored.etag or f'"{hashlib.md5(data).hexdigest()}"'
            view = memoryview(body)  # slices without copies
            fresh = {ref.hash: view[ref.offset:ref.offset + ref.length]
                     for ref in root.segments if ref.pack == pack}
            await asyncio.to_thread(self._cache.write, root, etag, fresh)
            # The new root is the base of the next commit (a checkpoint, then the last).
            self.root, self.etag = root, etag
            self._own_generation = root.history[0]
            if (self.verify_commits or not conditional) and not await self._still_ours(etag):
                if not conditional:
                    raise self._unsafe_conflict("replaced this run's commit")
                self.commits_verified_lost += 1
                seen.append(str(self.etag))
                changes = await self._rebase(changes, bases)
                continue  # someone overwrote it: our changes go again, on their root
            return True
        raise ConflictError(
            f"gave up committing to {self.store.url} after {COMMIT_ATTEMPTS} attempts: "
            f"another writer committed first each time (roots {', '.join(seen)})")

    def _unsafe_conflict(self, what: str) -> ConflictError:
        return ConflictError(
            f"another writer {what} at {self.store.url}, and this store ignores "
            "conditional writes (If-Match), so merging is not safe: nothing more was "
            "committed; run one writer at a time on this store")

    async def _conditional_writes(self) -> bool:
        """Whether the store honours If-Match / If-None-Match: known for some stores,
        recorded in the root once learnt, else probed (at most two PUTs, once)."""
        if self._conditional is None and self.root is not None:
            recorded = self.root.info.get(CONDITIONAL_INFO)
            if isinstance(recorded, bool):
                self._conditional = recorded
        if self._conditional is None:
            self._conditional = await self._probe_conditional()
        if not self._conditional:
            self._notices.append(
                f"{self.store.url} ignores conditional writes (If-Match/If-None-Match): "
                "baycat reads the manifest root before and after each commit to detect "
                "another writer, but cannot exclude a race; run one writer at a time")
        return self._conditional

    async def _probe_conditional(self) -> bool:
        data = b"baycat: does this store honour If-None-Match?\n"
        md5 = hashlib.md5(data).digest()
        for _ in range(2):
            try:
                await self.store.put(PROBE_KEY, data, md5=md5, if_none_match_any=True)
            except PreconditionFailed:
                return True  # the object exists and the store said so
        return False  # written twice over "If-None-Match: *": the condition is ignored

    async def _still_current(self) -> bool:
        """Before a commit without conditional writes: is the root still the one this
        run read? (One conditional GET.)"""
        try:
            fetched = await self.store.get(ROOT_KEY, if_none_match=self.etag)
        except NotFound:
            return self.etag is None
        return isinstance(fetched, NotModified)

    async def _rebase(self, changes: Sequence[Change],
                      bases: Mapping[bytes, Entry | None]) -> list[Change]:
        """Our changes, re-applied on the root another writer committed (rebase.py)."""
        theirs = await asyncio.to_thread(self.lookup, [path for _, path, _ in changes])
        out: list[Change] = []
        for key, path, ours in changes:
            current = theirs.get(path)
            resolution = resolve(ours, bases.get(path), current)
            if resolution is not Resolution.OURS:
                self.contested_paths += 1
            if resolution is Resolution.CHECK:
                entry = ours if ours is not None else current
                assert entry is not None
                try:
                    info: ObjectInfo | None = await self.store.head(object_key(entry))
                except NotFound:
                    info = None
                settled = settle(ours, current, info)
                if settled is Resolution.THEIRS:
                    continue
                assert not isinstance(settled, Resolution)
                out.append((key, path, settled))
            elif resolution is Resolution.OURS:
                out.append((key, path, ours))
        return out

    async def _still_ours(self, etag: str) -> bool:
        """After a commit: is the root still the one we wrote? If not, adopt the one
        that replaced it (the caller re-applies its changes on top)."""
        fetched = await self.store.get(ROOT_KEY, if_none_match=etag)
        if isinstance(fetched, NotModified):
            return True
        self.bytes_downloaded += len(fetched.data)
        await self._adopt(parse_remote_root(fetched.data, self.store.url), fetched.etag)
        return False

    async def _refresh_after_conflict(self) -> None:
        try:
            fetched = await self.store.get(ROOT_KEY)
        except NotFound:
            self.root, self.etag = None, None
            return
        assert not isinstance(fetched, NotModified)
        root = parse_remote_root(fetched.data, self.store.url)
        await self._adopt(root, fetched.etag)

    def close(self) -> None:
        self._cache.close()
