"""Ordering a run's uploads and copies so that no copy reads a key the run overwrites.

A rename or duplicate is copied server-side from an object found by content hash. If
the same run also writes that object's key (log rotation: `app.log` moves to
`app.log.1` and a new `app.log` is written), the copy must read the key before the
write replaces it. So:

- copies go first, and a write to a key that some copy reads waits until every copy
  reading it has finished (`CopyReaders`);
- a copy whose destination is itself read by another copy (two files swapped: each is
  the other's source) would wait on a cycle, so it becomes an upload instead: a copy
  only ever writes keys no copy reads.

The copy request itself is also conditional (`if_match` the recorded ETag), so a source
changed by anyone else is refused rather than copied (see backup.py). Pure code plus
one asyncio primitive; no I/O.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from baycat.entry import Entry
from baycat.manifest.keys import object_key


class Job(NamedTuple):
    """One transfer: upload `local` to `key`, or copy it from `source`'s object."""

    local: Entry
    key: str
    source: Entry | None  # a remote entry holding the same content; None: upload


def order_jobs(jobs: Sequence[Job]) -> list[Job]:
    """Copies first (those that may copy), then uploads; a copy writing a key that
    another copy reads becomes an upload."""
    read_by_copies = {object_key(job.source) for job in jobs if job.source is not None}
    copies: list[Job] = []
    uploads: list[Job] = []
    for job in jobs:
        if job.source is not None and job.key not in read_by_copies:
            copies.append(job)
        else:
            uploads.append(job._replace(source=None) if job.source is not None else job)
    return copies + uploads


class CopyReaders:
    """Which keys copies still have to read; writers of those keys wait for them.

    Deadlock-free when jobs are queued in `order_jobs` order through one FIFO queue:
    by the time a worker takes a write that must wait, every copy was already taken by
    a worker, and copies never wait."""

    def __init__(self, jobs: Sequence[Job]) -> None:
        self._pending: Counter[str] = Counter(
            object_key(job.source) for job in jobs if job.source is not None)
        self._read: dict[str, asyncio.Event] = {}

    def done(self, source: Entry) -> None:
        """A copy from `source` finished (copied, refused or failed)."""
        key = object_key(source)
        self._pending[key] -= 1
        if self._pending[key] <= 0:
            del self._pending[key]
            event = self._read.pop(key, None)
            if event is not None:
                event.set()

    async def wait_until_read(self, key: str) -> None:
        """Return once no pending copy reads `key`."""
        if key in self._pending:
            await self._read.setdefault(key, asyncio.Event()).wait()
