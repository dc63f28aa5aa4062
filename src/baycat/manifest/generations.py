"""Point in time: the generations a remote root remembers, and choosing one.

Every commit records a `root.Generation` (time, files, bytes, and where in its pack a
copy of that commit's root lies); the root keeps the last K of them (`--keep-generations`,
newest first, the current commit included). A run's checkpoint commits replace each
other's generation (remote_manifest.RemoteManifest._build): one generation per run.
`baycat history` lists them from the root alone (one GET); `restore --at TIME` picks
the newest generation at or before TIME and reads its root copy with one ranged GET of
its pack (`RemoteManifest.adopt_generation`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from baycat.errors import ManifestError, UsageError
from baycat.manifest.remote import ROOT_KEY, RemoteManifest, parse_remote_root
from baycat.manifest.root import Generation, Root
from baycat.store.base import NotFound, NotModified, ObjectStore

_PRECISION = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?)?"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?")


def parse_time(text: str) -> int:
    """ISO 8601 date or date-time → ns since the epoch, inclusive to the precision given
    (`03:00` means up to 03:00:59.999999999, so a time `history` printed to the second
    picks that generation); without a zone, local time.

    >>> parse_time("1970-01-01T00:00:01Z")
    1999999999
    """
    text = text.strip().replace("z", "Z")
    match = _PRECISION.fullmatch(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        match = None
    if match is None:
        raise UsageError(f"{text!r} is not a time (expected e.g. 2026-11-20T03:00, "
                         "2026-11-20 or 2026-11-20T03:00:00Z)")
    if when.tzinfo is None:
        when = when.astimezone()  # the local zone, as a person typing a time means it
    hour, minute, second, fraction = match.groups()
    span = (10 ** (9 - min(len(fraction), 9)) if fraction else 1_000_000_000 if second
            else 60_000_000_000 if minute else 3_600_000_000_000 if hour
            else 86_400_000_000_000)
    start = int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000
    return start + span - 1


def format_time(time_ns: int) -> str:
    """UTC, ISO 8601, to the second (what `history` prints and --at accepts)."""
    return datetime.fromtimestamp(time_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class History:
    """What `baycat history` reports: the backup's generations, newest first."""

    source: str
    generations: tuple[Generation, ...]
    requests: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "requests": self.requests,
                "generations": [generation_json(g) for g in self.generations]}


def generation_json(gen: Generation) -> dict[str, Any]:
    return {"time": format_time(gen.time_ns), "time_ns": gen.time_ns, "files": gen.files,
            "bytes": gen.file_bytes, "pack": gen.pack}


async def read_root(store: ObjectStore) -> Root | None:
    """The current remote root (one GET), or None when there is no backup."""
    try:
        fetched = await store.get(ROOT_KEY)
    except NotFound:
        return None
    assert not isinstance(fetched, NotModified)
    return parse_remote_root(fetched.data, store.url)


async def require_root(store: ObjectStore) -> Root:
    """The current remote root; ManifestError when there is no backup."""
    root = await read_root(store)
    if root is None:
        raise ManifestError(f"no baycat backup at {store.url} (no .baycat/root)")
    return root


async def history(store: ObjectStore) -> History:
    root = await require_root(store)
    return History(store.url, root.history, dict(store.requests))


def pick(generations: tuple[Generation, ...], at_ns: int) -> Generation:
    """The newest generation committed at or before `at_ns`."""
    eligible = [g for g in generations if g.time_ns <= at_ns]
    if not eligible:
        oldest = min((g.time_ns for g in generations), default=None)
        kept = f"the oldest kept is {format_time(oldest)}" if oldest is not None \
            else "this backup keeps no generations"
        raise UsageError(f"no backup generation at or before {format_time(at_ns)} "
                         f"({kept}; see `baycat history`)")
    return max(eligible, key=lambda g: g.time_ns)


async def load_generation(remote: RemoteManifest, at_ns: int) -> Generation:
    """Make the generation current at `at_ns` the one `remote` reads (its cache path
    must be its own: see RemoteManifest.adopt_generation)."""
    root = await require_root(remote.store)
    generation = pick(root.history, at_ns)
    await remote.adopt_generation(generation)
    return generation
