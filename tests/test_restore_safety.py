"""The remote manifest is untrusted input: crafted manifests never make a restore write
outside DST (and, refused whole, write nothing in it either but its own state).

Each test writes a backup directory by hand — objects, a pack of segments encoded
without any of baycat's ordering checks, a root — then runs the real `baycat restore`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import xxhash

import baycat
from baycat import hooks
from baycat.entry import DIR, FILE, SYMLINK, Entry
from baycat.errors import ExitCode
from baycat.manifest.keys import escaped_key
from baycat.manifest.remote import MAX_SEGMENT_ENTRIES, fetch_spans
from baycat.manifest.root import Generation, Root, SegmentRef
from baycat.manifest.segment import MAX_DECODED_BYTES, encode, segment_hash
from baycat.ops.restore_writer import SMALL_DOWNLOAD
from tests.cli_helpers import run_baycat
from tests.trees import Symlink, make_tree, read_tree


def file_entry(path: bytes, data: bytes, *, key: str = "", mode: int = 0o644,
               deleted_ns: int = 0) -> Entry:
    return Entry(path, FILE, len(data), 1_600_000_000 * 10**9, 0, 0, 0, stat.S_IFREG | mode,
                 os.getuid(), os.getgid(), b"", xxhash.xxh3_128_digest(data),
                 f'"{hashlib.md5(data).hexdigest()}"', key, "", deleted_ns, 0)


def dir_entry(path: bytes) -> Entry:
    return Entry(path, DIR, 0, 1_600_000_000 * 10**9, 0, 0, 0, stat.S_IFDIR | 0o755,
                 os.getuid(), os.getgid(), b"", b"", "", "", "", 0, 0)


def link_entry(path: bytes, target: bytes) -> Entry:
    return Entry(path, SYMLINK, 0, 1_600_000_000 * 10**9, 0, 0, 0, stat.S_IFLNK | 0o777,
                 os.getuid(), os.getgid(), target, b"", "", "", "", 0, 0)


def write_backup(backup: Path, segments: list[bytes], counts: list[int],
                 objects: dict[str, bytes] | None = None,
                 root_edit: dict[str, object] | None = None) -> None:
    """A backup directory whose manifest is exactly the given encoded segments."""
    for key, data in (objects or {}).items():
        path = backup / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    pack = b"".join(segments)
    refs, offset = [], 0
    for blob, count in zip(segments, counts, strict=True):
        refs.append(SegmentRef(segment_hash(blob), count, b"a", "p1", offset, len(blob), 0, 0))
        offset += len(blob)
    root = Root(created_ns=1, source="crafted", baycat_version="0").with_segments(tuple(refs))
    root = replace(root, history=(Generation(1, "p1", 0, 1, 0, 0),))
    doc = json.loads(root.to_bytes())
    doc.update(root_edit or {})
    (backup / ".baycat" / "packs").mkdir(parents=True, exist_ok=True)
    (backup / ".baycat" / "packs" / "p1").write_bytes(pack)
    (backup / ".baycat" / "root").write_bytes(json.dumps(doc).encode())


def crafted(backup: Path, entries: list[Entry], objects: dict[str, bytes] | None = None
            ) -> None:
    write_backup(backup, [encode(entries)], [len(entries)], objects)


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(backup, dst, outside): `outside` is a sibling of DST that must stay empty."""
    outside = tmp_path / "outside"
    outside.mkdir()
    return tmp_path / "backup", tmp_path / "dst", outside


def restore_refused(backup: Path, dst: Path, outside: Path, *args: str) -> str:
    proc = run_baycat("restore", "--json", *args, backup, dst, check=3)
    summary = json.loads(proc.stdout)
    assert summary["exit_code"] == 3
    assert summary["downloaded"]["files"] == 0
    assert list(outside.iterdir()) == []
    if dst.exists():  # nothing but baycat's own state
        assert [p.name for p in dst.iterdir()] in ([], [".baycat"])
    return str(summary["fatal_error"])


EVIL = b"evil content"


@pytest.mark.parametrize("path", [
    b"../outside/evil",
    b"a/../../outside/evil",
    b"/abs/evil",
    b"./evil",
    b"a//evil",
    b".baycat/manifest",
])
def test_unsafe_paths_are_refused_and_nothing_is_written(
        places: tuple[Path, Path, Path], path: bytes) -> None:
    backup, dst, outside = places
    good = file_entry(b"aaa-good", b"good")
    crafted(backup, [good, file_entry(path, EVIL, key=escaped_key(path))],
            {"aaa-good": b"good", escaped_key(path): EVIL})
    assert "unsafe path" in restore_refused(backup, dst, outside) or path.startswith(b".baycat")
    assert not (dst / "aaa-good").exists()  # refused whole, before anything was written


def test_absolute_path_to_an_outside_file(places: tuple[Path, Path, Path]) -> None:
    backup, dst, outside = places
    target = os.fsencode(outside / "evil")
    crafted(backup, [file_entry(target, EVIL, key=escaped_key(target))],
            {escaped_key(target): EVIL})
    restore_refused(backup, dst, outside)


def test_a_nul_byte_in_a_path_is_refused(places: tuple[Path, Path, Path]) -> None:
    backup, dst, outside = places
    # The path column is NUL-joined: a NUL in a name makes the segment inconsistent.
    crafted(backup, [file_entry(b"x\0../../outside/evil", EVIL), file_entry(b"y", b"y")],
            {"y": b"y"})
    restore_refused(backup, dst, outside)


def test_duplicate_and_out_of_order_paths_are_refused(
        places: tuple[Path, Path, Path]) -> None:
    backup, dst, outside = places
    crafted(backup, [file_entry(b"a", b"one"), file_entry(b"a", b"two")],
            {"a": b"one"})
    assert "duplicate" in restore_refused(backup, dst, outside)
    crafted(backup, [file_entry(b"b", b"b"), file_entry(b"a", b"a")], {"a": b"a", "b": b"b"})
    assert "order" in restore_refused(backup, dst, outside)


def test_a_duplicate_across_segments_is_refused(places: tuple[Path, Path, Path]) -> None:
    backup, dst, outside = places
    write_backup(backup, [encode([file_entry(b"a", b"one")]),
                          encode([file_entry(b"a", b"two")])], [1, 1], {"a": b"one"})
    assert "duplicate" in restore_refused(backup, dst, outside)


@pytest.mark.parametrize("via", ["symlink", "file"])
def test_a_path_through_a_symlink_or_file_of_the_restore_itself_is_refused(
        places: tuple[Path, Path, Path], via: str) -> None:
    backup, dst, outside = places
    first = link_entry(b"link", os.fsencode(outside)) if via == "symlink" \
        else file_entry(b"link", b"plain")
    key = escaped_key(b"link/evil")
    crafted(backup, [first, file_entry(b"link/evil", EVIL, key=key)],
            {"link": b"plain", key: EVIL})
    assert "below a symlink or file" in restore_refused(backup, dst, outside)
    assert not (dst / "link").exists() and not (dst / "link").is_symlink()


def test_a_symlink_already_in_dst_is_never_followed(places: tuple[Path, Path, Path]) -> None:
    backup, dst, outside = places
    crafted(backup, [dir_entry(b"d"), file_entry(b"d/evil", EVIL)], {"d/evil": EVIL})
    dst.mkdir()
    os.symlink(outside, dst / "d")  # planted before the restore: a valid manifest
    proc = run_baycat("restore", "--json", backup, dst, check=1)
    summary = json.loads(proc.stdout)
    assert summary["failed"]["files"] >= 1
    assert list(outside.iterdir()) == []


def test_object_keys_must_be_the_path_or_an_escaped_key(
        places: tuple[Path, Path, Path]) -> None:
    backup, dst, outside = places
    crafted(backup, [file_entry(b"a", b"x", key="../../outside/evil")], {"a": b"x"})
    assert "object key" in restore_refused(backup, dst, outside)
    crafted(backup, [file_entry(b"\xff", b"x")], {})
    assert "UTF-8" in restore_refused(backup, dst, outside)


def test_a_decompression_bomb_segment_is_refused(places: tuple[Path, Path, Path]) -> None:
    backup, dst, outside = places
    bomb = zlib.compress(b"BCS1" + bytes(MAX_DECODED_BYTES + 1024), 9)
    assert len(bomb) < 1 << 20
    write_backup(backup, [bomb], [1])
    assert "too large" in restore_refused(backup, dst, outside)


def test_entry_and_size_claims_beyond_the_caps_are_refused_before_any_fetch(
        places: tuple[Path, Path, Path]) -> None:
    backup, dst, outside = places
    blob = encode([file_entry(b"a", b"a")])
    huge = [segment_hash(blob), MAX_SEGMENT_ENTRIES + 1, "a", "p1", 0, len(blob), 1, 1]
    write_backup(backup, [blob], [1], {"a": b"a"}, {"segments": [huge]})
    assert "larger than any baycat writes" in restore_refused(backup, dst, outside)
    many = [[segment_hash(blob), MAX_SEGMENT_ENTRIES, "a", "p1", 0, len(blob), 1, 1]] * 5000
    write_backup(backup, [blob], [1], {"a": b"a"}, {"segments": many})
    assert "limits" in restore_refused(backup, dst, outside)
    far = [segment_hash(blob), 1, "a", "p1", 1 << 40, 1 << 30, 1, 1]
    write_backup(backup, [blob], [1], {"a": b"a"}, {"segments": [far]})
    restore_refused(backup, dst, outside)


def test_a_root_over_the_size_cap_is_refused(places: tuple[Path, Path, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from baycat.errors import ManifestError
    from baycat.manifest import remote as remote_manifest
    from baycat.store.local import LocalStore

    backup, dst, _ = places
    crafted(backup, [file_entry(b"a", b"a")], {"a": b"a"})
    monkeypatch.setattr(remote_manifest, "MAX_ROOT_BYTES", 100)
    remote = remote_manifest.RemoteManifest(LocalStore(backup), dst / "cache")
    with pytest.raises(ManifestError, match="larger than 100 bytes"):
        asyncio.run(remote.load())


def test_fetch_spans_bound_one_ranged_get() -> None:
    def ref(offset: int, length: int) -> SegmentRef:
        return SegmentRef("h", 1, b"a", "p", offset, length, 0, 0)

    refs = [ref(0, 10), ref(10, 10), ref(1 << 40, 10), ref(20, 70 << 20)]
    runs = fetch_spans(refs)
    assert [[r.offset for r in run] for run in runs] == [[0, 10], [20], [1 << 40]]


def test_owner_and_setuid_bits(places: tuple[Path, Path, Path]) -> None:
    backup, dst, _ = places
    entry = file_entry(b"tool", b"#!/bin/sh\n", mode=0o6755)
    entry = entry._replace(uid=12345, gid=12345)
    crafted(backup, [entry], {"tool": b"#!/bin/sh\n"})
    run_baycat("restore", backup, dst)
    st = os.lstat(dst / "tool")
    assert stat.S_IMODE(st.st_mode) == 0o755  # setuid/setgid stripped by default
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (12345, 12345)
    else:
        assert st.st_uid == os.getuid()
    run_baycat("restore", "--keep-setuid", backup, tmp := dst.with_name("dst2"))
    assert stat.S_IMODE(os.lstat(tmp / "tool").st_mode) == 0o6755 or os.geteuid() != 0


# ---- DST changing under the restore (TOCTOU) -------------------------------------------
# A racer who can write DST swaps a directory for a symlink to a directory outside, at
# the exact moment given by a hook (baycat.hooks) rather than by winning a timing race.

OLD_MTIME_NS = 1_500_000_000 * 10**9
OTHER_OWNER = 12345


@dataclass
class Racer:
    """Replaces DST/`victim` by a symlink to `outside` when the hook fires for `when`."""

    dst: Path
    outside: Path
    victim: str
    when: bytes
    fired: int = 0

    def __call__(self, path: bytes) -> None:
        if path == self.when:
            self.fired += 1
            moved = self.dst / (self.victim + ".moved")
            os.rename(self.dst / self.victim, moved)
            shutil.rmtree(moved)
            os.symlink(self.outside, self.dst / self.victim)


def outside_state(outside: Path) -> tuple[int, int, int, int, list[str]]:
    st = os.lstat(outside)
    return st.st_mode, st.st_mtime_ns, st.st_uid, st.st_gid, sorted(os.listdir(outside))


@pytest.fixture
def race(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(backup, dst, outside): a backup of d/ (mode 0777, owned by another user when
    root) holding a small file, a large one and a symlink; and a directory outside DST
    with a mode, mtime (and owner) to keep."""
    src = tmp_path / "src"
    make_tree(src, {"a": b"top", "d": {"x": b"small", "big": b"B" * (SMALL_DOWNLOAD + 1),
                                      "l": Symlink(b"x")}})
    os.chmod(src / "d", 0o777)
    if os.geteuid() == 0:
        os.chown(src / "d", OTHER_OWNER, OTHER_OWNER)
    backup = tmp_path / "backup"
    assert baycat.sync_blocking(src, str(backup)).exit_code is ExitCode.OK
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o750)
    os.chmod(outside, 0o750)
    os.utime(outside, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    return backup, tmp_path / "dst", outside


@pytest.mark.parametrize("victim_file", [b"d/x", b"d/big", b"d/l"])
def test_a_directory_swapped_for_a_symlink_before_a_write_redirects_nothing(
        race: tuple[Path, Path, Path], victim_file: bytes) -> None:
    backup, dst, outside = race
    before = outside_state(outside)
    racer = Racer(dst, outside, "d", victim_file)
    with hooks.registered("restore.before_write", racer):
        summary = baycat.restore_blocking(str(backup), dst, baycat.RestoreOptions(transfers=1))
    assert racer.fired == 1
    assert outside_state(outside) == before  # nothing written there, nothing changed
    failed = {e.path for e in summary.errors}
    assert victim_file.decode() in failed
    assert summary.exit_code is ExitCode.PARTIAL
    assert (dst / "a").read_bytes() == b"top"  # the rest of the restore went on


def test_a_directory_swapped_before_the_metadata_pass_is_not_chmodded(
        race: tuple[Path, Path, Path]) -> None:
    backup, dst, outside = race
    before = outside_state(outside)
    racer = Racer(dst, outside, "d", b"d")
    with hooks.registered("restore.before_dir_metadata", racer):
        summary = baycat.restore_blocking(str(backup), dst)
    assert racer.fired == 1
    assert outside_state(outside) == before  # mode, mtime and owner as they were
    assert [e.path for e in summary.errors] == ["d"]
    assert "not a real directory" in summary.errors[0].message
    assert summary.exit_code is ExitCode.PARTIAL


def test_restore_into_many_directories_stays_within_the_fd_cache(tmp_path: Path) -> None:
    """More directories than the cache holds: each file still lands in its own one."""
    src = tmp_path / "src"
    make_tree(src, {f"d{i:03}": {"sub": {"f": b"%d" % i}} for i in range(300)})
    backup, dst = tmp_path / "backup", tmp_path / "dst"
    baycat.sync_blocking(src, str(backup))
    open_fds: list[int] = []
    with hooks.registered("restore.before_write",
                          lambda path: open_fds.append(len(os.listdir("/proc/self/fd")))):
        summary = baycat.restore_blocking(str(backup), dst)
    assert summary.exit_code is ExitCode.OK
    assert read_tree(dst) == read_tree(src)
    assert len(open_fds) == 300 and max(open_fds) < min(open_fds) + 200  # bounded
