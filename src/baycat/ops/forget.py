"""`baycat forget`: which generations a retention policy keeps, and dropping the rest.

The policy is restic's (`restic forget`): generations are taken newest first; each
`--keep-*` rule keeps the newest generation of each of its last N periods (hours, days,
ISO weeks, months, years, in UTC) that have one, `--keep-last N` the N newest, and
`--keep-within D` every generation within D of the newest. A generation is kept when any
rule keeps it (each reason is reported); the newest is always kept, because it is the
current tree. Forgetting rewrites only the root's history (one conditional PUT: a sync
committing meanwhile makes it retry on the new root); what only the forgotten
generations needed is deleted by `prune` (ops/prune.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from baycat.errors import ConflictError, ManifestError, UsageError
from baycat.manifest.generations import format_time
from baycat.manifest.remote import ROOT_KEY, parse_remote_root
from baycat.manifest.root import Generation
from baycat.store.base import Fetched, NotFound, NotModified, ObjectStore, PreconditionFailed

ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class KeepPolicy:
    """How many periods each rule keeps (0: the rule is off)."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: str = ""  # restic duration: 1y2m3d4h (years, months, days, hours)

    def empty(self) -> bool:
        return not (self.last or self.hourly or self.daily or self.weekly or self.monthly
                    or self.yearly or self.within)


_WITHIN = re.compile(r"(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?")


def within_cutoff(latest_ns: int, duration: str) -> int:
    """The time `duration` (restic's `1y2m3d4h`) before `latest_ns`: calendar years and
    months, then days and hours.

    >>> format_time(within_cutoff(1_772_323_200_000_000_000, "1m1d"))  # 2026-03-01
    '2026-01-31T00:00:00Z'
    """
    match = _WITHIN.fullmatch(duration.strip())
    if not duration.strip() or match is None:
        raise UsageError(f"--keep-within {duration!r}: expected a duration like 7d, 2m, "
                         "1y6m or 36h (y years, m months, d days, h hours)")
    years, months, days, hours = (int(g or 0) for g in match.groups())
    when = datetime.fromtimestamp(latest_ns // 1_000_000_000, UTC)
    month_index = when.year * 12 + when.month - 1 - years * 12 - months
    year, month = divmod(month_index, 12)
    month += 1
    # Day clamped to the month's length, as Go's AddDate would normalise it forwards:
    # keep it simple and inclusive, the last day of a shorter month.
    last_day = (datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
                - timedelta(days=1)).day
    moved = when.replace(year=year, month=month, day=min(when.day, last_day))
    moved -= timedelta(days=days, hours=hours)
    return int(moved.timestamp()) * 1_000_000_000 + latest_ns % 1_000_000_000


def _utc(time_ns: int) -> datetime:
    return datetime.fromtimestamp(time_ns / 1e9, UTC)


_BUCKETS: tuple[tuple[str, str, Callable[[datetime], tuple[int, ...]]], ...] = (
    ("hourly", "hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", "daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", "weekly", lambda t: tuple(t.isocalendar())[:2]),
    ("monthly", "monthly", lambda t: (t.year, t.month)),
    ("yearly", "yearly", lambda t: (t.year,)),
)


@dataclass(frozen=True, slots=True)
class Decision:
    generation: Generation
    reasons: tuple[str, ...]  # empty: forgotten

    @property
    def kept(self) -> bool:
        return bool(self.reasons)


def apply_policy(history: Sequence[Generation], policy: KeepPolicy) -> list[Decision]:
    """restic's forget over `history` (any order): a decision per generation, newest
    first."""
    gens = sorted(history, key=lambda g: g.time_ns, reverse=True)
    if not gens:
        return []
    counts = {name: getattr(policy, name) for name, _, _ in _BUCKETS}
    last_seen: dict[str, tuple[int, ...] | None] = {name: None for name in counts}
    left_last = policy.last
    cutoff = within_cutoff(gens[0].time_ns, policy.within) if policy.within else None
    out: list[Decision] = []
    for index, gen in enumerate(gens):
        reasons: list[str] = []
        if index == 0:
            reasons.append("current")
        if left_last > 0:
            reasons.append("last")
            left_last -= 1
        if cutoff is not None and gen.time_ns >= cutoff:
            reasons.append(f"within {policy.within}")
        when = _utc(gen.time_ns)
        for name, reason, bucket in _BUCKETS:
            if counts[name] <= 0:
                continue
            value = bucket(when)
            if value != last_seen[name]:
                last_seen[name] = value
                counts[name] -= 1
                reasons.append(reason)
        out.append(Decision(gen, tuple(reasons)))
    return out


@dataclass(slots=True)
class ForgetSummary:
    """What `forget --json` prints (with --prune, `prune` too)."""

    destination: str
    dry_run: bool
    kept: list[Decision] = field(default_factory=list)
    forgotten: list[Decision] = field(default_factory=list)
    committed: bool = False
    prune: Any = None  # a PruneSummary with --prune
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return int(self.prune.exit_code) if self.prune is not None else 0

    def to_json(self) -> dict[str, Any]:
        def gen(d: Decision) -> dict[str, Any]:
            return {"time": format_time(d.generation.time_ns),
                    "time_ns": d.generation.time_ns, "files": d.generation.files,
                    "bytes": d.generation.file_bytes, "reasons": list(d.reasons)}

        return {"destination": self.destination, "dry_run": self.dry_run,
                "kept": [gen(d) for d in self.kept],
                "forgotten": [gen(d) for d in self.forgotten],
                "committed": self.committed,
                "prune": self.prune.to_json() if self.prune is not None else None,
                "requests": self.requests, "exit_code": self.exit_code}


async def forget(store: ObjectStore, policy: KeepPolicy, *, dry_run: bool = False
                 ) -> ForgetSummary:
    """Drop the generations `policy` does not keep from the root's history."""
    if policy.empty():
        raise UsageError("no --keep-* option given: forget would keep nothing but the "
                         "current generation (say --keep-last 1 to mean that)")
    summary = ForgetSummary(store.url, dry_run)
    got = await _get_root(store)
    for _ in range(ATTEMPTS):
        root = parse_remote_root(got.data, store.url)
        decisions = apply_policy(root.history, policy)
        summary.kept = [d for d in decisions if d.kept]
        summary.forgotten = [d for d in decisions if not d.kept]
        if dry_run or not summary.forgotten:
            break
        new = replace(root, history=tuple(d.generation for d in summary.kept))
        data = new.to_bytes()
        try:
            await store.put(ROOT_KEY, data, md5=hashlib.md5(data).digest(),
                            if_match=got.etag)
        except PreconditionFailed:
            got = await _get_root(store)  # a sync committed: apply the policy again
            continue
        summary.committed = True
        break
    else:
        raise ConflictError(f"gave up rewriting the history of {store.url} after "
                            f"{ATTEMPTS} attempts: another writer committed each time")
    summary.requests = dict(store.requests)
    return summary


async def _get_root(store: ObjectStore) -> Fetched:
    try:
        got = await store.get(ROOT_KEY)
    except NotFound:
        raise ManifestError(f"no baycat backup at {store.url} (no .baycat/root)") from None
    assert not isinstance(got, NotModified)
    return got
