"""The differ: what to do about each path, from its local state and its remote entry.

Pure code, no I/O (rclone's march): `decide` is a table-tested function; `Differ` merges
the scan's ordered items with the ordered remote entries in one pass, so memory does not
grow with the tree. It only says what to do; the engine does it.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import NamedTuple

from baycat.entry import (
    FILE,
    FILE_FLAGS,
    FLAG_INCOMPLETE,
    FLAG_RACY,
    Entry,
    path_key,
    same_metadata,
)
from baycat.scan.pipeline import ScanItem


class Decision(Enum):
    SAME = "same"  # nothing to do
    META = "meta"  # only the manifest entry changes (mode, owner, mtime, dir, symlink)
    CONTENT = "content"  # new content: upload, or copy from an object with the same hash
    GONE = "gone"  # deleted locally: mark deleted (default) or delete (--delete)


def as_remote(local: Entry, etag: str = "", key: str = "", version_id: str = "") -> Entry:
    """The remote manifest's entry for a local one. Its ctime and inode stay: with size
    and mtime they let a run without a local manifest (a snapshot at a new path) know a
    file unchanged without reading it (scan/pipeline.py). Not the device (a snapshot has
    another), and none of them when the stat was racy (FLAG_RACY: not to be trusted).
    Only the flags that describe the file (sparse, linked) stay, not this machine's scan."""
    flags = local.flags & FILE_FLAGS
    if local.flags & FLAG_RACY:
        return local._replace(ctime_ns=0, ino=0, dev=0, flags=flags, etag=etag, key=key,
                              version_id=version_id, deleted_ns=0)
    return local._replace(dev=0, flags=flags, etag=etag, key=key, version_id=version_id,
                          deleted_ns=0)


def decide(local: Entry | None, remote: Entry | None) -> Decision:
    if local is None:
        return Decision.GONE if remote is not None and not remote.deleted_ns else Decision.SAME
    if remote is None:
        return Decision.CONTENT if local.kind == FILE else Decision.META
    if local.kind != remote.kind:
        return Decision.CONTENT if local.kind == FILE else Decision.META
    if local.kind == FILE and (remote.xxh != local.xxh or remote.size != local.size
                               or not remote.etag):
        return Decision.CONTENT
    if remote.deleted_ns:
        return Decision.META  # back again, same content: its object was kept
    return Decision.SAME if same_metadata(local, remote) else Decision.META


class Action(NamedTuple):
    decision: Decision
    local: Entry | None
    remote: Entry | None

    @property
    def path(self) -> bytes:
        entry = self.local or self.remote
        assert entry is not None
        return entry.path

    def meta_entry(self) -> Entry:
        """For META: the new remote entry (keeping the object facts when content is same)."""
        assert self.local is not None
        r = self.remote
        if self.local.kind == FILE and r is not None:
            return as_remote(self.local, r.etag, r.key, r.version_id)
        return as_remote(self.local)


class Differ:
    """Merge join of scan items with the remote manifest stream (both in path order)."""

    def __init__(self, remote: Iterator[Entry], purge_deleted: bool = False) -> None:
        self._remote = remote
        self._purge_deleted = purge_deleted  # --delete: also drop entries kept as deleted
        self._next: Entry | None = None
        self._next_key = b""
        self._advance()
        self._incomplete: bytes | None = None
        self.same = 0

    def _advance(self) -> Entry | None:
        current = self._next
        self._next = nxt = next(self._remote, None)
        if nxt is not None:
            self._next_key = path_key(nxt.path)
        return current

    def _remote_only(self, remote: Entry) -> Action | None:
        if self._incomplete is not None and remote.path.startswith(self._incomplete):
            return None  # below a directory we could not list: unknown, not deleted
        if remote.deleted_ns and self._purge_deleted:
            return Action(Decision.GONE, None, remote)
        decision = decide(None, remote)
        return Action(decision, None, remote) if decision is not Decision.SAME else None

    def feed(self, items: list[ScanItem]) -> list[Action]:
        """Blocking (decodes remote segments): actions for these items, in order."""
        out: list[Action] = []
        for item in items:
            key = path_key(item.path)
            while self._next is not None and self._next_key < key:
                action = self._remote_only(self._advance())  # type: ignore[arg-type]
                if action is not None:
                    out.append(action)
            remote = None
            if self._next is not None and self._next.path == item.path:
                remote = self._advance()
            local = item.entry
            if local is not None and local.flags & FLAG_INCOMPLETE:
                self._incomplete = item.path + b"/"
            if item.error or (local is None and self._incomplete is not None
                              and item.path.startswith(self._incomplete)):
                self.same += 1
                continue  # unreadable now: leave its remote entry as it is
            decision = decide(local, remote)
            if decision is Decision.SAME:
                self.same += 1
            else:
                out.append(Action(decision, local, remote))
        return out

    def finish(self) -> list[Action]:
        out: list[Action] = []
        while self._next is not None:
            action = self._remote_only(self._advance())  # type: ignore[arg-type]
            if action is not None:
                out.append(action)
        return out
