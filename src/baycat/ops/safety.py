"""The guards of a backup run against what ransomware looks like from the source side.

- Versioning: every run says when the bucket keeps no old versions (a sync of encrypted
  files would overwrite the good copies); `--require-versioning` refuses such a bucket
  before anything is read or written. What the bucket is, is learnt rarely
  (manifest/versioning.py), so this costs no request on a no-change run.
- `--max-changes`: mass modification of existing files is the other sign. The change
  limit counts files whose content changed since the backup (new files and deletions
  don't count: `--max-delete` guards those); above the limit the run uploads nothing and
  commits nothing (exit 5, ExitCode.REFUSED).
"""

from __future__ import annotations

from typing import Any

from baycat.entry import FILE, Entry
from baycat.errors import UnversionedError, UsageError
from baycat.manifest.remote import RemoteManifest
from baycat.manifest.versioning import ENABLED, NOT_APPLICABLE, UNKNOWN, describe
from baycat.ops.sync_context import SyncContext

RANSOMWARE_HINT = "see README, \"Protecting against ransomware\""


def versioning_warning(url: str, status: str) -> str | None:
    """The notice every run prints for a bucket in this state (None: nothing to say).

    >>> versioning_warning("s3://b/p/", "Enabled") is None
    True
    """
    if status in (ENABLED, NOT_APPLICABLE):
        return None
    what = ("baycat could not learn whether it keeps old versions; if it does not, "
            if status == UNKNOWN else "")
    return (f"{url} is {describe(status)}: {what}each sync replaces the object of a "
            "changed file in place, so files encrypted or damaged at the source "
            "overwrite their only good copy and `restore --at` cannot bring it back; "
            f"turn versioning on for the bucket ({RANSOMWARE_HINT}), or run with "
            "--require-versioning to refuse such a bucket")


async def check_versioning(ctx: SyncContext, remote: RemoteManifest) -> None:
    """After the remote manifest loaded: refuse (--require-versioning) or warn."""
    record = await remote.versioning.get(remote.root)
    ctx.summary.bucket_versioning = record.status
    if ctx.options.require_versioning and record.status != ENABLED:
        why = ("a local directory keeps no old versions" if record.status == NOT_APPLICABLE
               else f"the bucket is {describe(record.status)}")
        raise UnversionedError(f"--require-versioning: {ctx.store.url}: {why}; nothing "
                               f"was backed up ({RANSOMWARE_HINT})")


def warn_versioning(ctx: SyncContext) -> None:
    """The run's notice about versioning (check_versioning ran)."""
    warning = versioning_warning(ctx.store.url, ctx.summary.bucket_versioning)
    if warning is not None:
        ctx.summary.notices.append(warning)


OBJECT_LOCK_INFO = "object_lock"  # root.info: {"mode": "GOVERNANCE", "days": N}
NS_PER_DAY = 86_400 * 1_000_000_000


def object_lock_info(days: int | None, mode: str) -> dict[str, Any]:
    """What a commit records in the root's info about the retention it wrote with."""
    return {OBJECT_LOCK_INFO: {"mode": mode, "days": days}} if days else {}


def locked_until_ns(info: dict[str, Any], written_ns: int) -> int:
    """Until when an object written at `written_ns` is under the retention the root
    records (0: none recorded). Untrusted input: anything odd counts as none."""
    lock = info.get(OBJECT_LOCK_INFO)
    days = lock.get("days") if isinstance(lock, dict) else None
    if not isinstance(days, int) or isinstance(days, bool) or not 0 < days < 100_000:
        return 0
    return written_ns + days * NS_PER_DAY


def parse_max_changes(text: str) -> tuple[int | None, float | None]:
    """`--max-changes N` or `N%` → (count, None) or (None, fraction).

    >>> parse_max_changes("100"), parse_max_changes("2.5%")
    ((100, None), (None, 0.025))
    """
    value = text.strip()
    try:
        if value.endswith("%"):
            percent = float(value[:-1])
            if 0 <= percent <= 100:
                return None, percent / 100
        elif value.isdigit():
            return int(value), None
    except ValueError:
        pass
    raise UsageError(f"--max-changes {text!r}: expected a number of files or a percentage "
                     "of the files in the backup (e.g. 500 or 10%)")


class ChangeLimit:
    """Counts files whose content changed (an existing, live remote file); `exceeded`
    once more than --max-changes did."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self.changed = 0
        self.limit: int | None = None  # set once the remote manifest is known

    def start(self, remote: RemoteManifest) -> None:
        options = self.ctx.options
        files = remote.root.files if remote.root is not None else 0
        if options.max_changes is not None:
            self.limit = options.max_changes
        elif options.max_changes_fraction is not None:
            self.limit = int(files * options.max_changes_fraction)

    def count(self, remote: Entry | None) -> None:
        if remote is not None and remote.kind == FILE and not remote.deleted_ns:
            self.changed += 1

    @property
    def exceeded(self) -> bool:
        return self.limit is not None and self.changed > self.limit

    def refuse(self) -> str:
        """Record the refusal in the summary; returns its message."""
        options = self.ctx.options
        given = (f"{options.max_changes}" if options.max_changes is not None
                 else f"{(options.max_changes_fraction or 0) * 100:g}% = {self.limit}")
        message = (f"refused: {self.changed} files changed content, more than "
                   f"--max-changes {given}; nothing was uploaded or committed (mass "
                   "modification is what ransomware looks like: check the source, then "
                   "run again with a higher --max-changes if the changes are wanted)")
        summary = self.ctx.summary
        summary.refuse(message)
        summary.refused_changes = self.changed
        summary.refused_limit = self.limit
        return message
