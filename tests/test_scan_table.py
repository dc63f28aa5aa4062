"""The scan as tables: `scan()` on small real trees against given old manifests.

Each table names what happened to a path since the old manifest was taken and what the
scan must make of it: reuse the old Entry object as it is (`item.entry is item.old`,
and the file is never opened, as the kernel sees it: tests/inotify.py), build a new
entry without reading the file (only metadata changed), or hash the file again. Then:
deleted and new paths, path order across directories, an unreadable directory (in a
child process that cannot bypass permissions) and files that change between the walk
and the hash.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The code under test: every baycat import of this file is here.
from baycat.entry import (
    DIR,
    FILE,
    FLAG_INCOMPLETE,
    FLAG_RACY,
    SYMLINK,
    Entry,
    entry_from_stat,
    kind_of_mode,
    path_key,
)
from baycat.progress import Notice
from baycat.scan.pipeline import ScanConfig, ScanItem, scan
from baycat.scan.walker import SkipFunc
from tests.cli_helpers import drop_dac_override, lock_out
from tests.inotify import OpenWatch
from tests.support.tables import row
from tests.trees import Spec, Symlink, make_tree, weird_tree, xxh

REPO = Path(__file__).resolve().parent.parent
# Small batches, so the merge with the old manifest crosses batch boundaries.
CONFIG = ScanConfig(pool_size=2, batch_entries=3, job_files=2)
# Coarse kernel timestamps advance once per tick (<= 10 ms): wait one out between
# taking the old manifest and changing the tree, or a change may keep its ctime.
TICK_S = 0.02


def recorded(root: Path) -> list[Entry]:
    """The old manifest a previous (settled, not racy) run would have left: every path
    below `root` with its lstat and, for files, the hash of its content."""
    base = os.fsencode(root)
    out: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            kind = kind_of_mode(st.st_mode)
            assert kind is not None
            entry = entry_from_stat(os.path.relpath(full, base), kind, st,
                                    os.readlink(full) if kind == SYMLINK else b"")
            if kind == FILE:
                with open(full, "rb") as f:
                    entry = entry._replace(xxh=xxh(f.read()))
            out.append(entry)
    return sorted(out, key=lambda e: path_key(e.path))


async def run_scan(root: Path, old: list[Entry], *, config: ScanConfig = CONFIG,
                   path_filter: Any = None) -> tuple[list[ScanItem], list[Notice]]:
    items: list[ScanItem] = []
    notices: list[Notice] = []

    async def on_batch(batch: list[ScanItem]) -> None:
        items.extend(batch)

    complete = await scan(os.fsencode(root), iter(old), config, on_batch,
                          warn=notices.append, path_filter=path_filter)
    assert complete
    return items, notices


async def watched_scan(root: Path, old: list[Entry]) -> tuple[dict[bytes, ScanItem],
                                                               set[bytes]]:
    """The scan's items by path, and the paths (relative) of the files it opened."""
    watch = OpenWatch(root)
    try:
        items, _ = await run_scan(root, old)
        opened = watch.opened_files()
    finally:
        watch.close()
    base = os.fsencode(root) + b"/"
    assert all(p.startswith(base) for p in opened)
    return {item.path: item for item in items}, {p[len(base):] for p in opened}


# What the scan makes of a path.
REUSED = "reused"  # the old Entry object itself; the file is not opened
REBUILT = "rebuilt"  # a new entry from the stat, the old hash kept; not opened
HASHED = "hashed"  # opened and hashed again


def check_outcome(item: ScanItem, opened: set[bytes], outcome: str, content: bytes) -> None:
    entry, old = item.entry, item.old
    assert entry is not None and old is not None
    assert (item.path in opened) == (outcome == HASHED), f"opened: {item.path in opened}"
    assert (entry is old) == (outcome == REUSED)
    assert not item.error
    if entry.kind == FILE:
        if outcome == HASHED:
            assert entry.xxh == xxh(content)
            assert entry.flags & FLAG_RACY  # just written: the next run hashes it again
        else:
            assert entry.xxh == old.xxh


# ---- the old entry differs from the disk in one field -----------------------------------

# (what the old manifest says differently, kind on disk, field changes, outcome)
OLD_ENTRY_ROWS: list[tuple[str, str, dict[str, Any], str]] = [
    ("file: nothing", FILE, {}, REUSED),
    ("file: size", FILE, {"size": 4}, HASHED),
    ("file: mtime", FILE, {"mtime_ns": 1}, HASHED),
    ("file: ctime", FILE, {"ctime_ns": 1}, HASHED),
    ("file: inode", FILE, {"ino": 1}, HASHED),
    ("file: racy", FILE, {"flags": FLAG_RACY}, HASHED),
    ("file: never hashed", FILE, {"xxh": b""}, HASHED),
    ("file: mode only", FILE, {"mode": 0o100600}, REBUILT),
    ("file: uid only", FILE, {"uid": 4321}, REBUILT),
    ("file: gid only", FILE, {"gid": 4321}, REBUILT),
    # A snapshot at a new path: another device, the same file (the old entry, old device
    # and all, is kept: a no-change night writes nothing).
    ("file: device only", FILE, {"dev": 1}, REUSED),
    ("dir: device only", DIR, {"dev": 1}, REUSED),
    # The stat is trusted: a hash that no longer matches the bytes is not noticed.
    ("file: other hash, same stat", FILE, {"xxh": xxh(b"other")}, REUSED),
    ("dir: nothing", DIR, {}, REUSED),
    ("dir: mode", DIR, {"mode": 0o040700}, REBUILT),
    ("dir: mtime", DIR, {"mtime_ns": 1}, REBUILT),
    ("symlink: nothing", SYMLINK, {}, REUSED),
    ("symlink: target", SYMLINK, {"target": b"elsewhere"}, REBUILT),
    ("symlink: ctime", SYMLINK, {"ctime_ns": 1}, REBUILT),
    ("a file, now a directory", DIR,
     {"kind": FILE, "mode": 0o100644, "size": 3, "xxh": xxh(b"abc")}, REBUILT),
    ("a directory, now a file", FILE, {"kind": DIR, "mode": 0o040755, "size": 0, "xxh": b""},
     HASHED),
]


def _content(i: int) -> bytes:
    return b"content of row %d" % i


async def test_what_the_scan_makes_of_an_old_entry(tmp_path: Path) -> None:
    spec: Spec = {}
    for i, (_, kind, _, _) in enumerate(OLD_ENTRY_ROWS):
        made: dict[str, bytes | Spec | Symlink] = {
            FILE: _content(i), DIR: {}, SYMLINK: Symlink(b"t%d" % i)}
        spec[f"r{i:02d}"] = made[kind]
    make_tree(tmp_path, spec)
    old = recorded(tmp_path)
    assert len(old) == len(OLD_ENTRY_ROWS)
    old = [entry._replace(**changes) for entry, (_, _, changes, _) in
           zip(old, OLD_ENTRY_ROWS, strict=True)]
    items, opened = await watched_scan(tmp_path, old)
    assert list(items) == [e.path for e in old]
    for i, (name, kind, _, outcome) in enumerate(OLD_ENTRY_ROWS):
        item = items[b"r%02d" % i]
        with row(f"{name} (expected {outcome})"):
            check_outcome(item, opened, outcome, _content(i))
            assert item.entry is not None and item.entry.kind == kind
            # Every recorded fact is the disk's now, whatever the old entry said (but the
            # device of a reused entry: see above).
            on_disk = as_on_disk(tmp_path, item.entry)
            if outcome == REUSED:
                on_disk = on_disk._replace(dev=item.entry.dev)
            assert item.entry == on_disk


def as_on_disk(root: Path, entry: Entry) -> Entry:
    """`entry` with its stat fields and link target as the disk has them now (its hash
    and flags kept)."""
    full = os.fsencode(root) + b"/" + entry.path
    st = os.lstat(full)
    kind = kind_of_mode(st.st_mode)
    assert kind is not None
    now = entry_from_stat(entry.path, kind, st, os.readlink(full) if kind == SYMLINK else b"")
    return now._replace(xxh=entry.xxh, flags=entry.flags)


# ---- what happened on disk since the old manifest was taken -----------------------------


def _rewrite_keeping_mtime(path: Path) -> None:
    st = path.stat()
    path.write_bytes(b"NEW!" + path.read_bytes()[4:])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _replace_by_rename(path: Path) -> None:
    st = path.stat()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(path.read_bytes())
    os.chmod(tmp, st.st_mode)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)


def _read(path: Path) -> None:
    path.read_bytes()  # atime is no reason to hash again


def _append(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"+")


def _hard_link(path: Path) -> None:
    os.link(path, path.with_name(path.name + ".link"))


# (what happened, the change, outcome); every row starts as b"original content"
DISK_ROWS: list[tuple[str, Callable[[Path], None], str]] = [
    ("untouched", lambda p: None, REUSED),
    ("read", _read, REUSED),
    ("appended", _append, HASHED),
    ("rewritten in place, mtime put back (ctime moves)", _rewrite_keeping_mtime, HASHED),
    ("mtime touched", lambda p: os.utime(p, ns=(0, 1)), HASHED),
    ("chmod (ctime moves)", lambda p: p.chmod(0o600), HASHED),
    ("replaced by rename: same bytes, mode and mtime", _replace_by_rename, HASHED),
    ("hard link added (ctime moves)", _hard_link, HASHED),
]


async def test_what_the_scan_makes_of_a_change_on_disk(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"r{i}": b"original content" for i in range(len(DISK_ROWS))})
    old = recorded(tmp_path)
    await asyncio.sleep(TICK_S)
    for i, (_, change, _) in enumerate(DISK_ROWS):
        change(tmp_path / f"r{i}")
    items, opened = await watched_scan(tmp_path, old)
    for i, (name, _, outcome) in enumerate(DISK_ROWS):
        with row(f"{name} (expected {outcome})"):
            item = items[b"r%d" % i]
            check_outcome(item, opened, outcome, (tmp_path / f"r{i}").read_bytes())
            assert item.entry is not None
            assert item.entry == as_on_disk(tmp_path, item.entry)


async def test_an_unchanged_tree_is_not_opened_at_all(tmp_path: Path) -> None:
    make_tree(tmp_path, weird_tree())
    make_tree(tmp_path, {"link": Symlink(b"plain.txt"), "big": b"0123456789" * 300_000})
    old = recorded(tmp_path)
    items, opened = await watched_scan(tmp_path, old)
    assert opened == set()
    assert [item.path for item in items.values()] == [e.path for e in old]
    assert all(item.entry is item.old for item in items.values())


# ---- deleted, new, and the order of the output ------------------------------------------

ORDER_TREE: Spec = {"a": {"b": b"b", "c": {}}, "a-c": b"a-c", "a0": b"a0"}
# Every path the scan yields, in order: on disk and in the old manifest (unchanged),
# only on disk (new), only in the old manifest (deleted).
ORDER = [
    (b"0gone", "deleted"),
    (b"a", "unchanged"),
    (b"a/a", "deleted"),
    (b"a/b", "new"),
    (b"a/b/x", "deleted"),  # below what is now a file
    (b"a/c", "unchanged"),
    (b"a/z", "deleted"),
    (b"a+", "deleted"),  # "+" < "-", but a/... < a+: components first
    (b"a-c", "unchanged"),
    (b"a0", "new"),
    (b"a0/x", "deleted"),
    (b"zz", "deleted"),
    (b"zz/deeper", "deleted"),
]


@pytest.mark.parametrize("batch_entries", [1, 2, 1000])
async def test_deleted_and_new_paths_in_path_order(tmp_path: Path, batch_entries: int) -> None:
    make_tree(tmp_path, ORDER_TREE)
    on_disk = {e.path: e for e in recorded(tmp_path)}
    old = [on_disk[p] if state == "unchanged"
           else Entry(p, FILE, 1, 1, 1, 1, 1, 0o100644, 0, 0, b"", xxh(b"x"), "", "", "", 0, 0)
           for p, state in ORDER if state != "new"]
    config = ScanConfig(pool_size=2, batch_entries=batch_entries)
    items, notices = await run_scan(tmp_path, old, config=config)
    assert [item.path for item in items] == [p for p, _ in ORDER]
    old_of = {e.path: e for e in old}
    for item, (path, state) in zip(items, ORDER, strict=True):
        assert not item.error, path
        if state == "deleted":
            assert item.entry is None and item.old is old_of[path], path
        elif state == "new":
            assert item.old is None and item.entry is not None, path
            assert item.entry.xxh == on_disk[path].xxh != b"", path
        else:
            assert item.entry is item.old is old_of[path], path
    assert notices == []


# ---- an unreadable directory ------------------------------------------------------------


def scan_in_child() -> None:
    """Run in a child process that cannot bypass permissions: reads (root, old entries)
    pickled on stdin, writes (was the directory readable, items, notices) to stdout."""
    root, locked, old = pickle.loads(sys.stdin.buffer.read())
    try:
        os.listdir(locked)
        readable = True
    except PermissionError:
        readable = False
    items, notices = asyncio.run(run_scan(Path(os.fsdecode(root)), old))
    sys.stdout.buffer.write(pickle.dumps((readable, items, notices)))


UNREADABLE_TREE: Spec = {"d": {"x": b"x", "y": {"z": b"z"}}, "d-after": b"", "e": {}}


def test_an_unreadable_directory_carries_its_old_children_over(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root, UNREADABLE_TREE)
    old = recorded(root)
    # Also in the old manifest: a child of d that is gone by now (nobody can tell), and
    # a sibling that is gone (it is deleted: d's rule covers d's subtree only).
    ghost = old[1]._replace(path=b"d/w")
    sibling = old[-1]._replace(path=b"d0")
    old = sorted([*old, ghost, sibling], key=lambda e: path_key(e.path))
    lock_out(root / "d")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "from tests.test_scan_table import scan_in_child; "
             "scan_in_child()"],
            input=pickle.dumps((os.fsencode(root), os.fsencode(root / "d"), old)),
            capture_output=True, cwd=REPO, timeout=60, preexec_fn=drop_dac_override,
            check=False)
    finally:
        (root / "d").chmod(0o755)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    readable, items, notices = pickle.loads(proc.stdout)
    if readable:
        pytest.skip("cannot make a directory unreadable here (root without "
                    "CAP_SETPCAP, or a filesystem that ignores modes)")
    by_path = {item.path: item for item in items}
    old_of = {e.path: e for e in old}
    assert list(by_path) == [e.path for e in old]
    d = by_path[b"d"]
    assert d.entry is not None and d.entry.flags == FLAG_INCOMPLETE and d.old == old_of[b"d"]
    assert d.entry.mode & 0o777 == 0 and d.changed
    for path in (b"d/w", b"d/x", b"d/y", b"d/y/z"):  # not seen: neither gone nor changed
        item = by_path[path]
        assert item.entry is item.old and item.old == old_of[path], path
        assert not item.error, path
    assert by_path[b"d0"].entry is None  # gone
    for path in (b"d-after", b"e"):
        assert by_path[path].entry is by_path[path].old, path
    assert [(n.path, n.message) for n in notices] == [
        (b"d", "cannot read directory: Permission denied")]


# ---- files that change between the walk and the hash ------------------------------------


class Meddler:
    """A path filter that keeps every path but changes one right after the walk has
    taken its lstat (the filter is asked between the lstat and the hash)."""

    def __init__(self, root: Path, changes: dict[bytes, Callable[[Path], None]]) -> None:
        self.root = root
        self.changes = changes

    def for_dir(self, rel_dir: bytes, names: list[bytes]) -> SkipFunc | None:
        return self._skip

    def _skip(self, rel: bytes, is_dir: bool) -> bool:
        change = self.changes.pop(rel, None)
        if change is not None:
            change(self.root / os.fsdecode(rel))
        return False


def _to_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _to_symlink(path: Path) -> None:
    path.unlink()
    path.symlink_to("elsewhere")


# (what happens between the walk and the hash, error message)
RACES: list[tuple[str, Callable[[Path], None], str]] = [
    ("vanishes", lambda p: p.unlink(), "cannot open: No such file or directory"),
    ("becomes a FIFO", _to_fifo, "no longer a regular file"),
    ("becomes a symlink", _to_symlink, "cannot open: Too many levels of symbolic links"),
]


@pytest.mark.parametrize("known", [True, False], ids=["changed file", "new file"])
async def test_a_file_that_changes_between_walk_and_hash_is_an_error(tmp_path: Path,
                                                                     known: bool) -> None:
    spec: Spec = {f"r{i}": b"before" for i in range(len(RACES))}
    make_tree(tmp_path, {**spec, "ok": b"ok"})
    old = recorded(tmp_path) if known else []
    await asyncio.sleep(TICK_S)
    for i in range(len(RACES)):
        (tmp_path / f"r{i}").write_bytes(b"after, longer")  # so the scan hashes it
    meddler = Meddler(tmp_path, {b"r%d" % i: change for i, (_, change, _) in enumerate(RACES)})
    items, notices = await run_scan(tmp_path, old, path_filter=meddler)
    assert meddler.changes == {}  # every race happened
    old_of = {e.path: e for e in old}
    by_path = {item.path: item for item in items}
    for i, (name, _, message) in enumerate(RACES):
        # Nothing about the path changes this run: its old entry (or none) carried over.
        path = b"r%d" % i
        item = by_path[path]
        assert item.error == message, name
        assert item.entry is item.old is old_of.get(path), name
        assert Notice(path, message) in notices, name
    assert by_path[b"ok"].entry is not None and not by_path[b"ok"].error
    assert len(notices) == len(RACES)



# ---- no old manifest: the stat cache (the remote manifest's entries) -------------------

# (what the cached entry says differently from the disk, is the file hashed)
STAT_CACHE_ROWS: list[tuple[str, dict[str, Any], bool]] = [
    ("nothing", {}, False),
    ("size", {"size": 4}, True),
    ("mtime", {"mtime_ns": 1}, True),
    ("ctime", {"ctime_ns": 1}, True),
    ("inode", {"ino": 1}, True),
    ("device only", {"dev": 1}, False),
    ("mode and owner only", {"mode": 0o100600, "uid": 4321}, False),
    ("recorded without ctime and inode (a racy stat, an older baycat)",
     {"ctime_ns": 0, "ino": 0}, True),
    ("kept as deleted", {"deleted_ns": 1}, True),
    ("no hash", {"xxh": b""}, True),
    ("racy", {"flags": FLAG_RACY}, True),
    ("a directory", {"kind": DIR, "size": 0, "xxh": b""}, True),
]


async def test_a_new_path_takes_the_stat_cache_hash_only_when_the_stat_matches(
        tmp_path: Path) -> None:
    make_tree(tmp_path, {f"r{i:02d}": _content(i) for i in range(len(STAT_CACHE_ROWS))})
    cache = [entry._replace(**{"dev": 0, "etag": "e", **changes}) for entry, (_, changes, _) in
             zip(recorded(tmp_path), STAT_CACHE_ROWS, strict=True)]
    # Paths the tree doesn't have, before, between and after: the cursor skips them.
    extra = [entry._replace(path=entry.path + suffix) for entry in cache[:2]
             for suffix in (b"-gone", b"/below")]
    cache = sorted(cache + extra + [cache[0]._replace(path=b"a")],
                   key=lambda e: path_key(e.path))
    items: list[ScanItem] = []

    async def on_batch(batch: list[ScanItem]) -> None:
        items.extend(batch)

    watch = OpenWatch(tmp_path)
    try:
        assert await scan(os.fsencode(tmp_path), iter(()), CONFIG, on_batch,
                          stat_cache=iter(cache))
        opened = {os.path.basename(p) for p in watch.opened_files()}
    finally:
        watch.close()
    assert [item.path for item in items] == [b"r%02d" % i for i in range(len(STAT_CACHE_ROWS))]
    for i, (name, _, hashed) in enumerate(STAT_CACHE_ROWS):
        item = items[i]
        with row(f"{name} (hashed: {hashed})"):
            assert item.old is None and item.entry is not None and not item.error
            assert (item.path in opened) == hashed
            assert item.entry.xxh == xxh(_content(i))
            assert item.entry.etag == ""  # the stat cache lends its hash, nothing else
