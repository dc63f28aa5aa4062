"""The differ as tables (rclone's march_test): `decide` for every pair of local and
remote states, `Action.meta_entry`, and `Differ.feed/finish` from (scan items, remote
entries) to actions, including the rules for unreadable directories, purging entries
kept as deleted, and items the scan could not read.

Entries are built from two spellings of one path: `loc(...)` as the scan records it
(ctime, inode and device included) and `rem(...)` as the remote manifest records the
same state (no device, the object's ETag set for files). Keyword arguments
change single fields, so a row names exactly what differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from baycat.entry import DIR, FILE, FLAG_INCOMPLETE, FLAG_RACY, SYMLINK, Entry, path_key

# The code under test: every baycat import of this file is here.
from baycat.ops.differ import Action, Decision, Differ, decide
from baycat.scan.pipeline import ScanItem

T0 = 1_700_000_000_123_456_789
XXH_A, XXH_B = bytes(range(16)), bytes(range(1, 17))
ETAG_A = '"0cc175b9c0f1b6a831c399e269772661"'
MODES = {FILE: 0o100644, DIR: 0o040755, SYMLINK: 0o120777}

S, M, C, G = Decision.SAME, Decision.META, Decision.CONTENT, Decision.GONE


def loc(kind: str = FILE, path: bytes = b"p", **changes: Any) -> Entry:
    """What the scan records for `path` (a 5-byte file, a directory, or a symlink)."""
    entry = Entry(path, kind, 5 if kind == FILE else 0, T0, T0 + 7, 4242, 66, MODES[kind],
                  1000, 100, b"target" if kind == SYMLINK else b"",
                  XXH_A if kind == FILE else b"", "", "", "", 0, 0)
    return entry._replace(**changes)


def rem(kind: str = FILE, path: bytes = b"p", **changes: Any) -> Entry:
    """What the remote manifest records for the same state: no device (a snapshot has
    another; ctime and inode stay, for a run without local state: differ.as_remote), and
    for a file the ETag of its uploaded object."""
    entry = loc(kind, path)._replace(dev=0, etag=ETAG_A if kind == FILE else "")
    return entry._replace(**changes)


# ---- decide(local, remote) ----------------------------------------------------------------

LOCALS: dict[str, Entry | None] = {"none": None, "file": loc(FILE), "dir": loc(DIR),
                                   "symlink": loc(SYMLINK)}
REMOTES: dict[str, Entry | None] = {
    "none": None, "file": rem(FILE), "dir": rem(DIR), "symlink": rem(SYMLINK),
    "deleted file": rem(FILE, deleted_ns=T0), "deleted dir": rem(DIR, deleted_ns=T0),
    "deleted symlink": rem(SYMLINK, deleted_ns=T0),
}
# Same path, same content and metadata wherever the kinds agree.
KIND_MATRIX: dict[str, tuple[Decision, ...]] = {
    #  remote: none file dir symlink | deleted: file dir symlink
    "none":    (S,  G,   G,  G,                S,   S,  S),
    "file":    (C,  S,   C,  C,                M,   C,  C),
    "dir":     (M,  M,   S,  M,                M,   M,  M),
    "symlink": (M,  M,   M,  S,                M,   M,  M),
}
KIND_ROWS = [
    pytest.param(LOCALS[lk], REMOTES[rk], want, id=f"local {lk}, remote {rk}")
    for lk, row in KIND_MATRIX.items()
    for rk, want in zip(REMOTES, row, strict=True)
]


@pytest.mark.parametrize(("local", "remote", "want"), KIND_ROWS)
def test_decide_for_every_pair_of_kinds(local: Entry | None, remote: Entry | None,
                                        want: Decision) -> None:
    assert decide(local, remote) is want


# (what differs, local, remote, decision)
CHANGES = [
    # content: a new object (upload, or copy from one with the same hash)
    ("file: other hash, same size", loc(xxh=XXH_B), rem(), C),
    ("file: same hash, other size", loc(size=6), rem(), C),
    ("file: never uploaded (no etag)", loc(), rem(etag=""), C),
    ("file: other hash and mode", loc(xxh=XXH_B, mode=0o100600), rem(), C),
    ("file: other hash, remote deleted", loc(xxh=XXH_B), rem(deleted_ns=T0), C),
    ("file: no etag, remote deleted", loc(), rem(etag="", deleted_ns=T0), C),
    # metadata only: the manifest entry changes, the object stays
    ("file: mode", loc(mode=0o100600), rem(), M),
    ("file: uid", loc(uid=0), rem(), M),
    ("file: gid", loc(gid=0), rem(), M),
    ("file: mtime", loc(mtime_ns=T0 + 1), rem(), M),
    ("dir: mode", loc(DIR, mode=0o040700), rem(DIR), M),
    ("dir: uid", loc(DIR, uid=0), rem(DIR), M),
    ("dir: gid", loc(DIR, gid=0), rem(DIR), M),
    ("dir: mtime", loc(DIR, mtime_ns=T0 - 1), rem(DIR), M),
    ("symlink: target", loc(SYMLINK, target=b"elsewhere"), rem(SYMLINK), M),
    ("symlink: mtime", loc(SYMLINK, mtime_ns=T0 + 1), rem(SYMLINK), M),
    ("symlink: uid", loc(SYMLINK, uid=0), rem(SYMLINK), M),
    ("symlink: target, remote deleted", loc(SYMLINK, target=b"x"), rem(SYMLINK, deleted_ns=1),
     M),
    # what the remote does not record, or records only about the object: no change
    ("file: ctime, inode and device", loc(ctime_ns=1, ino=2, dev=3), rem(), S),
    ("file: racy flag", loc(flags=FLAG_RACY), rem(), S),
    ("file: object under an escaped key, versioned", loc(),
     rem(key=".baycat/escaped/ab", version_id="v1"), S),
    ("dir: ctime and inode", loc(DIR, ctime_ns=1, ino=2), rem(DIR), S),
    ("dir: incomplete flag", loc(DIR, flags=FLAG_INCOMPLETE), rem(DIR), S),
    ("symlink: ctime", loc(SYMLINK, ctime_ns=1), rem(SYMLINK), S),
]


@pytest.mark.parametrize(("local", "remote", "want"),
                         [pytest.param(lo, re, want, id=name) for name, lo, re, want in CHANGES])
def test_decide_content_and_metadata_changes(local: Entry, remote: Entry,
                                             want: Decision) -> None:
    assert decide(local, remote) is want


# ---- Action.meta_entry ----------------------------------------------------------------------

# (case, local, remote, the new remote entry)
META_ENTRIES = [
    ("file, mode changed: the object's etag, key and version stay",
     loc(mode=0o100600), rem(key="k", version_id="v1"),
     rem(mode=0o100600, key="k", version_id="v1")),
    ("racy stat: neither its ctime nor its inode is recorded, nor the flag",
     loc(mode=0o100600, flags=FLAG_RACY), rem(key="k", version_id="v1"),
     rem(mode=0o100600, key="k", version_id="v1", ctime_ns=0, ino=0)),
    ("file back after its deletion: not deleted any more",
     loc(), rem(deleted_ns=T0), rem()),
    ("new directory", loc(DIR), None, rem(DIR)),
    ("new symlink", loc(SYMLINK, target=b"t"), None, rem(SYMLINK, target=b"t")),
    ("directory in place of a file: no object facts", loc(DIR), rem(FILE, version_id="v1"),
     rem(DIR)),
    ("unreadable directory: the flag is not recorded", loc(DIR, flags=FLAG_INCOMPLETE),
     rem(DIR, mode=0o040700), rem(DIR)),
]


@pytest.mark.parametrize(("local", "remote", "want"),
                         [pytest.param(lo, re, want, id=name)
                          for name, lo, re, want in META_ENTRIES])
def test_meta_entry(local: Entry, remote: Entry | None, want: Entry) -> None:
    action = Action(Decision.META, local, remote)
    assert action.meta_entry() == want
    assert action.path == local.path


def test_action_path_of_a_gone_entry_is_the_remote_path() -> None:
    assert Action(Decision.GONE, None, rem(path=b"a/b")).path == b"a/b"


# ---- Differ.feed / finish ---------------------------------------------------------------


def unchanged(path: bytes, kind: str = FILE) -> ScanItem:
    entry = loc(kind, path)
    return ScanItem(path, entry, entry)


def new(path: bytes, kind: str = FILE, **changes: Any) -> ScanItem:
    return ScanItem(path, loc(kind, path, **changes), None)


def changed(path: bytes, kind: str = FILE, **changes: Any) -> ScanItem:
    return ScanItem(path, loc(kind, path, **changes), loc(kind, path))


def gone(path: bytes, kind: str = FILE) -> ScanItem:
    return ScanItem(path, None, loc(kind, path))


def unreadable_dir(path: bytes) -> ScanItem:
    """A directory the walk could not list (its children are unknown, not gone)."""
    return ScanItem(path, loc(DIR, path, flags=FLAG_INCOMPLETE), loc(DIR, path))


def failed(path: bytes, entry: Entry | None) -> ScanItem:
    """A file the scan could not read: its old entry (or None) carried over."""
    return ScanItem(path, entry, entry, "cannot open: Permission denied")


def deleted(path: bytes, kind: str = FILE) -> Entry:
    return rem(kind, path, deleted_ns=T0)


@dataclass(frozen=True)
class Merge:
    name: str
    items: list[ScanItem]  # the scan's output, in path order
    remote: list[Entry]  # the remote manifest, in path order
    actions: list[tuple[Decision, bytes]]  # feed's and finish's output together, in order
    same: int  # what `Differ.same` counts
    purge_deleted: bool = False


MERGES = [
    Merge("empty", [], [], [], 0),
    Merge("unchanged tree", [unchanged(b"a"), unchanged(b"d", DIR)],
          [rem(FILE, b"a"), rem(DIR, b"d")], [], 2),
    Merge("new file, directory and symlink",
          [new(b"a"), new(b"d", DIR), new(b"l", SYMLINK)], [],
          [(C, b"a"), (M, b"d"), (M, b"l")], 0),
    Merge("changed content and metadata", [changed(b"a", xxh=XXH_B), changed(b"b", uid=0)],
          [rem(FILE, b"a"), rem(FILE, b"b")], [(C, b"a"), (M, b"b")], 0),
    Merge("deleted since the last run", [gone(b"a"), gone(b"d", DIR)],
          [rem(FILE, b"a"), rem(DIR, b"d")], [(G, b"a"), (G, b"d")], 0),
    Merge("gone, and never backed up", [gone(b"a")], [], [], 1),
    Merge("remote only, before, between and after the scan's paths",
          [unchanged(b"b"), unchanged(b"d")],
          [rem(FILE, b"a"), rem(FILE, b"b"), rem(FILE, b"c"), rem(FILE, b"d"),
           rem(FILE, b"e")],
          [(G, b"a"), (G, b"c"), (G, b"e")], 2),
    Merge("path order across directories: a, a/b, a-c, a0",
          [new(b"a", DIR), unchanged(b"a/b"), new(b"a-c"), unchanged(b"a0")],
          [rem(FILE, b"a/a"), rem(FILE, b"a/b"), rem(FILE, b"a/b0"), rem(FILE, b"a-b"),
           rem(FILE, b"a0"), rem(FILE, b"a0/x")],
          [(M, b"a"), (G, b"a/a"), (G, b"a/b0"), (G, b"a-b"), (C, b"a-c"), (G, b"a0/x")], 2),
    Merge("kept as deleted: left alone without --delete",
          [unchanged(b"b")], [deleted(b"a"), rem(FILE, b"b"), deleted(b"c")], [], 1),
    Merge("kept as deleted: purged with --delete",
          [unchanged(b"b")], [deleted(b"a"), rem(FILE, b"b"), deleted(b"c", DIR)],
          [(G, b"a"), (G, b"c")], 1, purge_deleted=True),
    Merge("kept as deleted, and back with the same content",
          [unchanged(b"a")], [deleted(b"a")], [(M, b"a")], 0, purge_deleted=True),
    Merge("unreadable directory: remote children neither deleted nor changed",
          [unreadable_dir(b"d"), new(b"d-sibling")],
          [rem(DIR, b"d"), rem(FILE, b"d/x"), rem(DIR, b"d/y"), rem(FILE, b"d/y/z"),
           rem(FILE, b"d0")],
          [(C, b"d-sibling"), (G, b"d0")], 1),
    Merge("unreadable directory: children the scan saw gone are left alone",
          [unreadable_dir(b"d"), gone(b"d/x"), gone(b"d/y", DIR), gone(b"e")],
          [rem(DIR, b"d"), rem(FILE, b"d/x"), rem(DIR, b"d/y"), rem(FILE, b"e")],
          [(G, b"e")], 3),
    Merge("unreadable directory: children carried over unchanged",
          [unreadable_dir(b"d"), unchanged(b"d/x")], [rem(DIR, b"d"), rem(FILE, b"d/x")],
          [], 2),
    Merge("unreadable directory: children kept as deleted are not purged",
          [unreadable_dir(b"d")], [rem(DIR, b"d"), deleted(b"d/x"), deleted(b"e")],
          [(G, b"e")], 1, purge_deleted=True),
    Merge("unreadable directory, new: recorded, nothing below it deleted",
          [unreadable_dir(b"d")._replace(old=None)], [rem(FILE, b"d/x")], [(M, b"d")], 0),
    Merge("unreadable directory, nested: only its own subtree is spared",
          [unchanged(b"a", DIR), unreadable_dir(b"a/d"), unchanged(b"a/e")],
          [rem(DIR, b"a"), rem(DIR, b"a/d"), rem(FILE, b"a/d/x"), rem(FILE, b"a/e"),
           rem(FILE, b"a/f")],
          [(G, b"a/f")], 3),
    Merge("two unreadable directories in a row",
          [unreadable_dir(b"c"), unreadable_dir(b"d")],
          [rem(DIR, b"c"), rem(FILE, b"c/x"), rem(DIR, b"d"), rem(FILE, b"d/y")], [], 2),
    Merge("unreadable file: its remote entry stays as it is",
          [failed(b"a", loc(FILE, b"a"))], [rem(FILE, b"a", xxh=XXH_B)], [], 1),
    Merge("vanished while read: not deleted either",
          [failed(b"a", None)], [rem(FILE, b"a")], [], 1),
]


def run_differ(case: Merge, batch: int) -> tuple[list[tuple[Decision, bytes]], int]:
    differ = Differ(iter(case.remote), purge_deleted=case.purge_deleted)
    actions: list[Action] = []
    for start in range(0, len(case.items), batch):
        actions += differ.feed(case.items[start:start + batch])
        actions += differ.feed([])  # an empty batch changes nothing
    actions += differ.finish()
    return [(a.decision, a.path) for a in actions], differ.same


@pytest.mark.parametrize("case", MERGES, ids=[m.name for m in MERGES])
def test_differ_merges_scan_items_with_remote_entries(case: Merge) -> None:
    assert [path_key(i.path) for i in case.items] == sorted(path_key(i.path)
                                                            for i in case.items)
    assert [path_key(e.path) for e in case.remote] == sorted(path_key(e.path)
                                                             for e in case.remote)
    # However the scan cuts its output into batches, the answer is the same.
    for batch in (len(case.items) or 1, 1, 2):
        assert run_differ(case, batch) == (case.actions, case.same), f"batches of {batch}"


def test_each_action_carries_its_local_and_remote_entries() -> None:
    item = changed(b"a", xxh=XXH_B)
    differ = Differ(iter([deleted(b"0"), rem(FILE, b"a")]), purge_deleted=True)
    assert differ.feed([item]) == [Action(G, None, deleted(b"0")),
                                   Action(C, item.entry, rem(FILE, b"a"))]


def test_feed_reads_the_remote_stream_no_further_than_the_scan() -> None:
    # One pass over the remote manifest, in step with the scan: memory stays flat.
    taken: list[bytes] = []

    def remote() -> Iterator[Entry]:
        for path in (b"a", b"b", b"c", b"d", b"e"):
            taken.append(path)
            yield rem(FILE, path)

    differ = Differ(remote())
    assert [a.path for a in differ.feed([unchanged(b"b")])] == [b"a"]
    assert taken == [b"a", b"b", b"c"]  # c: the next one, to know that b is done
    assert differ.feed([unchanged(b"c")]) == []
    assert taken == [b"a", b"b", b"c", b"d"]
    assert [a.path for a in differ.finish()] == [b"d", b"e"]
