"""`baycat manifest create/update/show` on real trees, through the real command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baycat.entry import FILE, Entry
from baycat.manifest.file import ManifestReader, ManifestWriter, temp_path
from baycat.manifest.root import Root
from baycat.ops.prepare import skip_manifest
from baycat.scan.hasher import hash_file
from baycat.scan.local_manifest import lock_path
from tests.cli_helpers import (
    drop_dac_override,
    lock_out,
    manifest_json,
    path_bytes,
    run_baycat,
)
from tests.inotify import OpenWatch
from tests.trees import Symlink, make_tree, read_tree, weird_tree, xxh


def entries_by_path(directory: Path) -> dict[bytes, dict[str, object]]:
    _, docs = manifest_json(directory)
    return {path_bytes(d): d for d in docs}


def age(path: Path, seconds: float = 10) -> None:
    """Move mtime into the past so the entry is not 'racy' (see hasher.RACY_WINDOW_NS)."""
    st = os.lstat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)),
             follow_symlinks=False)


def settle(seconds: float = 2.1) -> None:
    """Let ctimes fall out of the racy window, as a nightly run's files would be."""
    time.sleep(seconds)


def test_weird_names_round_trip(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree, weird_tree())
    run_baycat("manifest", "create", tree)
    recorded = entries_by_path(tree)
    on_disk = read_tree(tree)
    assert set(recorded) == set(on_disk)
    for path, (kind, content) in on_disk.items():
        doc = recorded[path]
        assert doc["type"] == {"f": "file", "d": "dir", "l": "symlink"}[kind]
        if kind == "f":
            assert doc["hash"] == xxh(content).hex()
            assert doc["size"] == len(content)
    # NFC and NFD spellings are two different files, both recorded.
    assert "café".encode() in recorded and "café".encode() in recorded


def test_paths_are_sorted_component_wise(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", {"a": {"b": b"1"}, "a-c": b"2", "a0": b"3", "a.b": b"4"})
    run_baycat("manifest", "create", tmp_path / "t")
    _, docs = manifest_json(tmp_path / "t")
    assert [d["path"] for d in docs] == ["a", "a/b", "a-c", "a.b", "a0"]


def test_symlinks_are_recorded_not_followed(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    make_tree(tree, {
        "dir": {"inside": b"x"},
        "to-dir": Symlink(b"dir"),
        "dangling": Symlink(b"/nonexistent/target"),
        "loop1": Symlink(b"loop2"),
        "loop2": Symlink(b"loop1"),
        "empty": {},
    })
    run_baycat("manifest", "create", tree)
    rec = entries_by_path(tree)
    assert rec[b"to-dir"]["type"] == "symlink" and rec[b"to-dir"]["target"] == "dir"
    assert rec[b"dangling"]["target"] == "/nonexistent/target"
    assert rec[b"loop1"]["target"] == "loop2"
    assert b"to-dir/inside" not in rec  # not followed
    assert rec[b"empty"]["type"] == "dir"
    assert set(rec) == {b"dir", b"dir/inside", b"to-dir", b"dangling", b"loop1", b"loop2",
                        b"empty"}


def test_sockets_are_skipped_with_a_warning_and_fifos_recorded(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    make_tree(tree, {"f": b"x"})
    os.mkfifo(tree / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tree / "sock"))
        proc = run_baycat("manifest", "create", tree)
    assert b"sock: skipped socket" in proc.stderr and b"fifo" not in proc.stderr
    assert set(entries_by_path(tree)) == {b"f", b"fifo"}


@pytest.fixture
def shared_tmp(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, made removable again after tests locked parts of it."""
    yield tmp_path
    for dirpath, dirnames, _ in os.walk(tmp_path):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)


def test_unreadable_files_and_dirs_are_reported_and_skipped(shared_tmp: Path) -> None:
    tree = shared_tmp / "t"
    make_tree(tree, {"ok": b"fine", "secret": b"no", "locked": {"inner": b"x"}, "sub": {}})
    lock_out(tree / "secret")
    lock_out(tree / "locked")
    proc = run_baycat("manifest", "create", tree, check=1, preexec_fn=drop_dac_override)
    err = proc.stderr.decode()
    assert "secret: cannot open: Permission denied" in err
    assert "locked: cannot read directory: Permission denied" in err
    rec = entries_by_path(tree)
    assert rec[b"ok"]["hash"] == xxh(b"fine").hex()
    assert b"secret" not in rec  # never recorded without a hash
    assert rec[b"locked"]["type"] == "dir"


def test_same_size_and_mtime_but_new_ctime_is_rehashed(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    make_tree(tree, {"f": b"aaaa", "g": b"gggg"})
    age(tree / "f")
    settle()
    run_baycat("manifest", "create", tree)
    before = os.stat(tree / "f")
    (tree / "f").write_bytes(b"bbbb")  # same size
    os.utime(tree / "f", ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime
    after = os.stat(tree / "f")
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns
    run_baycat("manifest", "update", tree)
    assert entries_by_path(tree)[b"f"]["hash"] == xxh(b"bbbb").hex()


def test_unchanged_files_are_never_opened(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    make_tree(tree, {f"d{i}": {f"f{j}": b"x" * j for j in range(20)} for i in range(5)})
    make_tree(tree, {"top": b"top"})
    settle()
    run_baycat("manifest", "create", tree)
    run_baycat("manifest", "update", tree)  # racy entries from create are settled now
    watch = OpenWatch(tree)
    try:
        run_baycat("manifest", "update", tree)
        assert watch.opened_files() == set()
        # The watch does see opens: a changed file is opened, and only that one.
        (tree / "d3" / "f7").write_bytes(b"changed")
        age(tree / "d3" / "f7")
        watch.opened_files()  # drain our own write's open
        run_baycat("manifest", "update", tree)
        assert watch.opened_files() == {os.fsencode(tree / "d3" / "f7")}
    finally:
        watch.close()
    assert entries_by_path(tree)[b"d3/f7"]["hash"] == xxh(b"changed").hex()


def test_file_changing_while_hashed_is_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "busy"
    path.write_bytes(os.urandom(1 << 20) * 128)  # 128 MiB: hashing outlasts a clock tick
    entry = Entry(os.fsencode(path), FILE, 0, 0, 0, 0, 0, 0, 0, 0, b"", b"", "", "", "", 0, 0)
    stop = threading.Event()

    def writer() -> None:
        with open(path, "r+b") as f:
            n = 0
            while not stop.is_set():
                f.seek((n * 7919 * 4096) % (128 << 20))
                f.write(os.urandom(64))
                f.flush()
                n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = hash_file(os.fsencode(path), entry)
    finally:
        stop.set()
        thread.join()
    assert result.entry is None
    assert "kept changing" in result.error
    # Once it holds still, it is hashed, and the hash matches the bytes.
    result = hash_file(os.fsencode(path), entry)
    assert result.entry is not None and result.entry.xxh == xxh(path.read_bytes())


def test_pool_size_saved_by_create_and_kept_by_update(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", {"f": b"x"})
    run_baycat("manifest", "create", "--pool-size", "3", tmp_path / "t")
    header, _ = manifest_json(tmp_path / "t")
    assert header["pool_size"] == 3 and header["format_version"] == 2
    (tmp_path / "t" / "g").write_bytes(b"new")
    out = run_baycat("manifest", "update", "--pool-size", "1", tmp_path / "t").stdout
    assert b"pool size 1" in out
    header, docs = manifest_json(tmp_path / "t")
    assert header["pool_size"] == 3
    assert {d["path"] for d in docs} == {"f", "g"}
    out = run_baycat("manifest", "update", tmp_path / "t").stdout
    assert b"pool size 3" in out


def test_custom_output_inside_the_tree_is_not_scanned(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", {"f": b"x"})
    out = tmp_path / "t" / "my.manifest"
    run_baycat("manifest", "create", "-o", out, tmp_path / "t")
    run_baycat("manifest", "update", "-m", out, tmp_path / "t")
    _, docs = manifest_json(tmp_path / "t", out)
    assert [d["path"] for d in docs] == ["f"]


def test_a_manifest_inside_the_tree_keeps_its_lock_and_temp_files_out_of_the_walk(
        tmp_path: Path) -> None:
    manifest = tmp_path / "d" / "my.manifest"
    path_filter = skip_manifest(tmp_path, manifest)
    assert path_filter is not None
    assert path_filter.for_dir(b"", [b"d"]) is None
    skip = path_filter.for_dir(b"d", [])
    assert skip is not None

    def rel(p: Path) -> bytes:
        return os.fsencode(p.relative_to(tmp_path))

    for own in (manifest, lock_path(manifest), temp_path(manifest)):
        assert skip(rel(own), False), own
    for other in (b"d/my.manifest2", b"d/.my.manifest", b"d/other.lock"):
        assert not skip(other, False), other
    assert skip_manifest(tmp_path, tmp_path.parent / "elsewhere") is None


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
def test_corrupt_manifest_is_refused_and_left_alone(tmp_path: Path, damage: str) -> None:
    tree = tmp_path / "t"
    make_tree(tree, {f"f{i}": b"%d" % i for i in range(2000)})
    run_baycat("manifest", "create", tree)
    path = tree / ".baycat" / "manifest"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 3] ^= 0x55
    elif damage == "truncate":
        del data[-30:]
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"hello, I am not a manifest" * 10)
    path.write_bytes(bytes(data))
    for command in ("update", "show"):
        proc = run_baycat("manifest", command, tree, check=3)
        lines = proc.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("baycat: error: ")
        assert "Traceback" not in proc.stderr.decode()
    assert path.read_bytes() == bytes(data)  # never silently rebuilt


def test_newer_format_manifest_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    make_tree(tree, {"f": b"x"})
    (tree / ".baycat").mkdir()
    writer = ManifestWriter(tree / ".baycat" / "manifest")
    writer.commit(Root(created_ns=0, source=str(tree), baycat_version="99.0",
                       format_version=99))
    proc = run_baycat("manifest", "update", tree, check=3)
    assert b"newer" in proc.stderr and b"upgrade baycat" in proc.stderr


def test_bad_directories_and_unwritable_output(shared_tmp: Path, tmp_path: Path) -> None:
    proc = run_baycat("manifest", "create", tmp_path / "missing", check=2)
    missing = tmp_path / "missing"
    assert proc.stderr.decode().strip() == f"baycat: error: {missing}: no such directory"
    (tmp_path / "file").write_bytes(b"x")
    run_baycat("manifest", "update", tmp_path / "file", check=2)
    make_tree(shared_tmp / "t", {"f": b"x"})
    (shared_tmp / "ro").mkdir()
    lock_out(shared_tmp / "ro", 0o555)
    proc = run_baycat("manifest", "create", "-o", shared_tmp / "ro" / "m", shared_tmp / "t",
                      check=2, preexec_fn=drop_dac_override)
    assert b"permission denied" in proc.stderr.lower()
    assert len(proc.stderr.decode().strip().splitlines()) == 1


def test_kill_during_update_leaves_a_valid_manifest(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    make_tree(tree, {f"d{i}": {f"f{j}": b"%d" % j for j in range(1000)} for i in range(20)})
    settle()
    run_baycat("manifest", "create", tree)
    path = tree / ".baycat" / "manifest"
    with ManifestReader(path) as r:
        before = list(r.entries())
    for i in range(0, 20, 2):
        for j in range(0, 1000, 7):
            (tree / f"d{i}" / f"f{j}").write_bytes(b"changed %d" % j)
    for delay in (0.05, 0.15, 0.3, 0.6):
        proc = subprocess.Popen([sys.executable, "-m", "baycat", "manifest", "update", tree],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with ManifestReader(path) as r:  # loads: old or new, never half-written
            after = list(r.entries())
        assert {e.path for e in after} == {e.path for e in before}
    leftovers = [p.name for p in path.parent.iterdir() if ".tmp-" in p.name]
    run_baycat("manifest", "update", tree)
    assert entries_by_path(tree)[b"d0/f7"]["hash"] == xxh(b"changed 7").hex()
    del leftovers  # temp files of killed runs may remain; they are never read


def test_second_update_of_the_same_tree_is_refused_while_one_runs(tmp_path: Path) -> None:
    from baycat.scan.lock import TreeLock
    make_tree(tmp_path / "t", {"f": b"x"})
    run_baycat("manifest", "create", tmp_path / "t")
    with TreeLock(tmp_path / "t" / ".baycat" / "manifest.lock", "test"):
        proc = run_baycat("manifest", "update", tmp_path / "t", check=4)
    assert b"another baycat" in proc.stderr
