"""Whether the bucket keeps old versions of the objects a sync replaces, learnt once.

On an unversioned bucket a sync of files that ransomware encrypted overwrites their good
copies in place; on a versioned one each old version stays, and the manifest's
generations (restore --at) read it by VersionId. baycat asks the store
(GetBucketVersioning: one request) rarely, and keeps the answer in two places:

    root.info["bucket_versioning"]   {"status": "Enabled", "checked_ns": ...}: every
                                     commit writes it; asked again by the first commit
                                     more than RECHECK_NS after the last check
    <remote cache>.versioning        the same record, for runs that commit nothing (a
                                     backup made before baycat recorded it)

so a no-change sync stays one request (GET root → 304). Statuses are S3's ("Enabled",
"Suspended", "" for never enabled) plus NOT_APPLICABLE (a local directory: one copy of
each file by design) and UNKNOWN (the store refused to say, e.g. credentials without
s3:GetBucketVersioning).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baycat.errors import RemoteError
from baycat.manifest.file import temp_path
from baycat.manifest.root import Root
from baycat.private import write_private
from baycat.store.base import ObjectStore

INFO_KEY = "bucket_versioning"
ENABLED = "Enabled"
SUSPENDED = "Suspended"
NOT_APPLICABLE = "n/a"
UNKNOWN = "unknown"
RECHECK_NS = 24 * 3600 * 1_000_000_000  # at most one GetBucketVersioning a day


@dataclass(frozen=True, slots=True)
class VersioningRecord:
    status: str
    checked_ns: int

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "checked_ns": self.checked_ns}

    @classmethod
    def parse(cls, doc: object) -> VersioningRecord | None:
        """A record read from a root or the side file (untrusted: None unless well formed).

        >>> VersioningRecord.parse({"status": "Enabled", "checked_ns": 5})
        VersioningRecord(status='Enabled', checked_ns=5)
        >>> VersioningRecord.parse({"status": 3}) is None
        True
        """
        if not isinstance(doc, dict):
            return None
        status, checked = doc.get("status"), doc.get("checked_ns")
        if not isinstance(status, str) or len(status) > 32 or not isinstance(checked, int) \
                or isinstance(checked, bool):
            return None
        return cls(status, checked)


def describe(status: str) -> str:
    """What a status means for a backup, in words."""
    return {ENABLED: "versioned", SUSPENDED: "versioning suspended",
            "": "not versioned", NOT_APPLICABLE: "a local directory (no versions)",
            UNKNOWN: "versioning unknown"}.get(status, f"versioning {status!r}")


class VersioningCache:
    """The record of one destination: from its root, its side file, or the store."""

    def __init__(self, store: ObjectStore, side_path: Path) -> None:
        self.store = store
        self.side_path = side_path
        self.record: VersioningRecord | None = None  # what this run learnt or read
        self.notices: list[str] = []

    async def get(self, root: Root | None, max_age_ns: int | None = None,
                  now_ns: int | None = None) -> VersioningRecord:
        """The record, asking the store only when neither the root nor the side file has
        one (younger than `max_age_ns`, when given)."""
        now = time.time_ns() if now_ns is None else now_ns

        def usable(record: VersioningRecord | None) -> bool:
            return record is not None and (max_age_ns is None
                                           or now - record.checked_ns < max_age_ns)

        if usable(self.record):
            assert self.record is not None
            return self.record
        for record in (VersioningRecord.parse(root.info.get(INFO_KEY)) if root else None,
                       self._read_side()):
            if record is not None and usable(record):
                self.record = record
                return record
        self.record = VersioningRecord(await self._ask(), now)
        self._write_side(self.record)
        return self.record

    async def _ask(self) -> str:
        try:
            status = await self.store.versioning()
        except RemoteError as exc:
            self.notices.append(f"could not learn whether {self.store.url} is versioned "
                                f"({exc})")
            return UNKNOWN
        return NOT_APPLICABLE if status is None else status

    def _read_side(self) -> VersioningRecord | None:
        try:
            return VersioningRecord.parse(json.loads(self.side_path.read_bytes()))
        except (OSError, ValueError):
            return None

    def _write_side(self, record: VersioningRecord) -> None:
        # Best effort: without it, a run that commits nothing asks the store again.
        tmp = temp_path(self.side_path)
        try:
            write_private(tmp, json.dumps(record.to_json()).encode())
            os.replace(tmp, self.side_path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
