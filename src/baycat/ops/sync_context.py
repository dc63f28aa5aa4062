"""What every part of a backup run shares: its options, and the facts of the run.

A run (ops/backup.py) is made of parts that each keep their own state — the differ
feed (sync_diff.py), the transfers (sync_transfers.py), the change set and its commits
(sync_changes.py) — and share one `SyncContext`: where from and to, the options, the
summary being filled in, the progress counters and the callbacks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from baycat.entry import DIR, FILE, Entry, as_text
from baycat.errors import BaycatError, BucketMissingError, CredentialsError
from baycat.manifest.remote import DEFAULT_HISTORY
from baycat.ops.summary import SyncSummary
from baycat.ops.transfer import TransferConfig
from baycat.progress import ActionFunc, Notice, NoticeFunc, Progress
from baycat.scan.filters import FilterSpec
from baycat.stop import StopRequest
from baycat.store.base import ObjectStore

# Errors that mean the whole run can't go on (not one file's problem).
FATAL = (CredentialsError, BucketMissingError)


@dataclass(frozen=True, slots=True)
class SyncOptions:
    delete: bool = False  # remove objects of files deleted locally (default: keep, mark)
    max_delete: int | None = None  # refuse the delete step when more would go
    dry_run: bool = False
    pool_size: int | None = None
    transfer: TransferConfig = field(default_factory=TransferConfig)
    history: int = DEFAULT_HISTORY
    # Commit the remote manifest during long runs, so a crash loses at most this much.
    checkpoint_seconds: float = 60.0
    checkpoint_bytes: int = 1 << 30
    # List the bucket once and adopt objects that already hold a file's content
    # (uploads that never reached the manifest; a lost or corrupt remote manifest).
    scan_remote: bool = False
    # Re-read the root after each commit: several writers on a server whose conditional
    # PUT is not atomic (see manifest/remote.py).
    verify_commits: bool = False
    stop: StopRequest | None = None
    # What to leave out (None: the filters recorded in the local manifest). Paths a
    # filter excludes are left alone in the backup unless delete_excluded.
    filters: FilterSpec | None = None
    delete_excluded: bool = False
    xattrs: bool = True  # record extended attributes (--no-xattrs: don't read them)
    # Where the local state lives (scan/statedir.py): below `state_dir` when given, else
    # in SRC/.baycat, else (a read-only source) below `user_state_dir` (None:
    # ~/.local/state/baycat). `manifest`: the local manifest's own path, when chosen.
    state_dir: Path | None = None
    user_state_dir: Path | None = None
    manifest: Path | None = None
    # Refuse to run against a bucket that keeps no old versions (ransomware protection).
    require_versioning: bool = False
    # Refuse the run (upload and commit nothing) when more files changed content than
    # this: a count, or a fraction of the files in the remote manifest (e.g. 0.1).
    max_changes: int | None = None
    max_changes_fraction: float | None = None
    # The Object Lock retention every object gets (S3Options carries it to the writes):
    # recorded in the root's info, so gc and prune know what they can't delete.
    object_lock_days: int | None = None
    object_lock_mode: str = "GOVERNANCE"


class SyncContext:
    """The facts of one run, shared by its parts. `warn` records a failure notice in the
    summary (exit code 1) before passing it on."""

    def __init__(self, source: Path, store: ObjectStore, options: SyncOptions,
                 progress: Progress, warn: NoticeFunc, on_action: ActionFunc | None) -> None:
        self.source = source
        self.root_bytes = os.fsencode(source)
        self.store = store
        self.options = options
        self.progress = progress
        self.summary = SyncSummary(source=str(source), destination=store.url,
                                   dry_run=options.dry_run)
        self._warn = warn
        self._on_action = on_action

    def warn(self, notice: Notice) -> None:
        if notice.failure:
            self.summary.fail(as_text(notice.path), notice.message)
        else:  # a remark (a socket skipped, ...): in the summary too, so --json has it
            self.summary.notices.append(f"{as_text(notice.path)}: {notice.message}")
        self._warn(notice)

    async def mirror_metadata(self, entry: Entry, key: str | None = None) -> None:
        """On a store that mirrors metadata (a local directory: store/local.py), give the
        object (`key`) or directory of `entry` its source's mode (and a file its mtime).
        A failure is a remark: the object stays private, the backup is whole."""
        apply = getattr(self.store, "apply_metadata", None)
        if apply is None or self.options.dry_run or entry.kind not in (FILE, DIR):
            return
        try:
            if key is None:
                key = entry.path.decode("utf-8")
            await apply(key, entry.mode, entry.mtime_ns if entry.kind == FILE else None,
                        entry.kind == DIR)
        except (UnicodeDecodeError, BaycatError) as exc:
            self.warn(Notice(entry.path, f"mode not mirrored in the backup: {exc}",
                             failure=False))

    def report(self, what: str, path: bytes, size: int) -> None:
        if self._on_action is not None:
            self._on_action(what, as_text(path), size)

    def stop_requested(self) -> bool:
        stop = self.options.stop
        return stop is not None and stop.requested
