"""Garbage collection: manifest packs no kept generation needs, and what interrupted
writes left behind (incomplete multipart uploads, a local directory's temp files).

Every commit uploads one pack (remote_manifest.py); a root references segments in many
packs, and its history (`--keep-generations`) keeps older roots' copies, which reference
more. A pack that neither the current root nor any generation it keeps refers to can no
longer be read by anything baycat does: it is garbage. On a nightly backup of a big tree
they pile up (1 % changed in 1M files: a ~50 MB pack a night).

Safety against a concurrent writer: a writer uploads its pack, then commits a root that
references it (conditionally on the root it started from). Between the two, the pack is
referenced by nothing; so a pack is only deleted once it is older than a grace period
(by the time in its name, which its writer set). A commit can only reference packs of
the root it is based on, which is the current root or newer, so every other pack it
needs is live here too.

Leftovers: an interrupted large upload leaves an incomplete multipart upload that S3
bills until it is aborted (a sync aborts its own host's from its journal,
ops/upload_journal.py; gc aborts any under the prefix), and a process killed while
writing to a local directory leaves a `.baycat-tmp-*` file. Both are removed once older
than the same grace period: a younger one may be a running sync's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from baycat.errors import RemoteError, UsageError
from baycat.manifest.generations import require_root
from baycat.manifest.remote import PACK_PREFIX, read_generation_root
from baycat.manifest.root import Root
from baycat.ops.safety import locked_until_ns
from baycat.store.base import NotFound, ObjectStore

DEFAULT_GRACE_S = 24 * 3600


@dataclass(slots=True)
class GcSummary:
    """What a collection found and did (`baycat gc --json` prints this)."""

    destination: str
    dry_run: bool
    live_packs: int = 0
    deleted_packs: int = 0
    deleted_bytes: int = 0
    recent_packs: int = 0  # unreferenced but within the grace period: kept
    locked_packs: int = 0  # unreferenced but under the Object Lock retention written: kept
    foreign_keys: list[str] = field(default_factory=list)  # not named like a pack: kept
    failed: list[tuple[str, str]] = field(default_factory=list)
    missing_generations: int = 0  # kept generations whose root copy is already gone
    aborted_uploads: int = 0  # incomplete multipart uploads older than the grace period
    recent_uploads: int = 0  # ...younger: kept (a running sync's, maybe)
    removed_temp_files: int = 0  # a local directory's leftover temp files
    removed_temp_bytes: int = 0
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "dry_run": self.dry_run,
                "live_packs": self.live_packs, "deleted_packs": self.deleted_packs,
                "deleted_bytes": self.deleted_bytes, "recent_packs": self.recent_packs,
                "locked_packs": self.locked_packs,
                "foreign_keys": self.foreign_keys,
                "failed": [{"key": k, "message": m} for k, m in self.failed],
                "missing_generations": self.missing_generations,
                "aborted_uploads": self.aborted_uploads,
                "recent_uploads": self.recent_uploads,
                "removed_temp_files": self.removed_temp_files,
                "removed_temp_bytes": self.removed_temp_bytes,
                "requests": self.requests, "exit_code": self.exit_code}


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `6h`, `7d` (or plain seconds) → seconds.

    >>> parse_duration("1.5h")
    5400.0
    """
    value, unit = text.strip().lower(), "s"
    if value[-1:] in _UNITS:
        value, unit = value[:-1], value[-1]
    try:
        seconds = float(value) * _UNITS[unit]
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise UsageError(f"{text!r} is not a duration (expected e.g. 90s, 30m, 6h, 7d)")
    return seconds


def pack_time_ns(name: str) -> int | None:
    """The creation time a pack's name carries (`<time_ns>-<hash>`), or None."""
    stamp, dash, digest = name.partition("-")
    if not dash or not stamp.isdigit() or not digest:
        return None
    return int(stamp)


async def live_packs(store: ObjectStore, root: Root, summary: GcSummary) -> set[str]:
    """Packs the current root or any generation it keeps refers to (one ranged GET
    per generation: its root copy)."""
    live = {ref.pack for ref in root.segments}
    for generation in root.history:
        live.add(generation.pack)
        try:
            copy, _ = await read_generation_root(store, generation)
        except NotFound:
            summary.missing_generations += 1
            continue
        live.update(ref.pack for ref in copy.segments)
    return live


async def collect(store: ObjectStore, *, grace_s: float = DEFAULT_GRACE_S,
                  dry_run: bool = False, now_ns: int | None = None) -> GcSummary:
    """Delete the packs of `store`'s backup that no kept generation needs."""
    summary = GcSummary(store.url, dry_run)
    # Without a root nothing says what is live (a first commit may be in flight).
    root = await require_root(store)
    live = await live_packs(store, root, summary)
    now = now_ns if now_ns is not None else time.time_ns()
    cutoff = now - int(grace_s * 1e9)
    garbage: dict[str, int] = {}
    async for info in store.list(PACK_PREFIX):
        name = info.key[len(PACK_PREFIX):]
        made = pack_time_ns(name)
        if made is None or "/" in name:
            summary.foreign_keys.append(info.key)
        elif name in live:
            summary.live_packs += 1
        elif made > cutoff:
            summary.recent_packs += 1
        elif locked_until_ns(root.info, made) > now:
            summary.locked_packs += 1  # the store would refuse: don't even try
        else:
            garbage[info.key] = info.size
    failed: dict[str, str] = {}
    if garbage and not dry_run:
        failed = dict(await store.delete_many(list(garbage)))
    summary.failed = sorted(failed.items())
    for key, size in garbage.items():
        if key not in failed:
            summary.deleted_packs += 1
            summary.deleted_bytes += size
    await collect_leftovers(store, cutoff, dry_run, summary)
    summary.requests = dict(store.requests)
    return summary


async def collect_leftovers(store: ObjectStore, cutoff_ns: int, dry_run: bool,
                            summary: GcSummary) -> None:
    """Abort incomplete multipart uploads and remove temp files older than `cutoff_ns`."""
    async for upload in store.list_uploads():
        if upload.initiated_ns >= cutoff_ns:
            summary.recent_uploads += 1
            continue
        if not dry_run:
            try:
                await store.abort_multipart(upload.key, upload.upload_id)
            except NotFound:
                pass  # completed or aborted meanwhile: gone either way
            except RemoteError as exc:
                summary.failed.append((upload.key, f"abort upload {upload.upload_id}: {exc}"))
                continue
        summary.aborted_uploads += 1
    removed = await store.remove_temp_files(cutoff_ns, dry_run=dry_run)
    summary.removed_temp_files = len(removed)
    summary.removed_temp_bytes = sum(size for _, size in removed)
