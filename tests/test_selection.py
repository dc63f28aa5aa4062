"""Choosing what to back up beyond patterns: mount points (-x, pseudo filesystems),
CACHEDIR.TAG and other markers, --files-from. Real mounts (the tests run as root; a
machine that refuses to mount skips them with the reason), real backups (local and S3)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from baycat.errors import UsageError
from baycat.scan.filters import FilterSpec, Rule
from baycat.scan.mounts import PSEUDO_FS, parse_mountinfo
from baycat.scan.selection import CACHEDIR_SIGNATURE, normalize_listed
from baycat.scan.walker import walk
from tests.cli_helpers import manifest_json, path_bytes, run_baycat
from tests.targets import Target
from tests.trees import Spec, make_tree


@contextlib.contextmanager
def mounted(where: Path, *args: str) -> Iterator[None]:
    """`mount ARGS where` for the block; skips the test when the machine refuses."""
    proc = subprocess.run(["mount", *args, str(where)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount {' '.join(args)}: {proc.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def walked(root: Path) -> list[bytes]:
    return [p for batch in walk(os.fsencode(root)) for p, _, _, _ in batch]


# ---- pure parts ---------------------------------------------------------------------------

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime shared:7 - sysfs sysfs rw
27 1 8:1 / / rw,relatime shared:1 master:2 - ext4 /dev/sda1 rw
40 27 0:35 / /mnt/with\\040space rw - tmpfs none rw
garbage line
"""


def test_mountinfo_maps_devices_to_filesystem_types() -> None:
    types = parse_mountinfo(MOUNTINFO)
    assert types == {os.makedev(0, 21): "proc", os.makedev(0, 22): "sysfs",
                     os.makedev(8, 1): "ext4", os.makedev(0, 35): "tmpfs"}
    assert {"proc", "sysfs", "devtmpfs", "cgroup2"} <= PSEUDO_FS and "tmpfs" not in PSEUDO_FS


def test_files_from_lines_are_normalized_and_checked() -> None:
    assert normalize_listed(["./a/b/", "a/b", "", "# note", "c//d\r"]) == (b"a/b", b"c/d")
    for bad in (["/etc/passwd"], ["a/../../x"], ["", "# nothing"]):
        with pytest.raises(UsageError):
            normalize_listed(bad)


def test_selection_round_trips_through_the_header() -> None:
    spec = FilterSpec((Rule(False, "*.o"),), one_file_system=True, exclude_caches=True,
                      exclude_if_present=(".nobackup",), files_from=(b"a", b"b/\xff c"))
    assert FilterSpec.from_header(spec.to_header()) == spec
    assert FilterSpec.from_header(FilterSpec().to_header()) == FilterSpec()


# ---- mount points -------------------------------------------------------------------------

@pytest.mark.parametrize("fstype", ["proc", "sysfs"])
def test_walk_never_enters_a_pseudo_filesystem(tmp_path: Path, fstype: str) -> None:
    """Without any option: `baycat sync /` must not read /proc/kcore."""
    make_tree(tmp_path, {"kernel": {}, "f": b"x"})
    with mounted(tmp_path / "kernel", "-t", fstype, fstype):
        assert (tmp_path / "kernel").stat().st_dev != tmp_path.stat().st_dev
        assert any((tmp_path / "kernel").iterdir())  # the mount has plenty in it
        assert walked(tmp_path) == [b"f", b"kernel"]


def test_walk_never_enters_a_bind_of_proc(tmp_path: Path) -> None:
    make_tree(tmp_path, {"d": {"p": {}}})
    with mounted(tmp_path / "d" / "p", "--bind", "/proc"):
        assert walked(tmp_path) == [b"d", b"d/p"]


def test_one_file_system_stops_at_a_tmpfs(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"a", "m": {}})
    with mounted(src / "m", "-t", "tmpfs", "none"):
        make_tree(src / "m", {"t.txt": b"on tmpfs", "deep": {"u": b"u"}})
        target.sync(src, "-x")
        assert set(target.objects()) == {"a.txt"}
        header, entries = manifest_json(src)
        assert "one-file-system" in header["filters"]
        assert sorted(path_bytes(e) for e in entries) == [b"a.txt", b"m"]
        out = tmp_path / "out"
        target.restore(out)
        assert (out / "m").is_dir() and list((out / "m").iterdir()) == []
        # `manifest update` without options uses the recorded -x: it agrees with sync.
        run_baycat("manifest", "update", src)
        assert sorted(path_bytes(e) for e in manifest_json(src)[1]) == [b"a.txt", b"m"]
        # Without -x the tmpfs is an ordinary directory: it is backed up.
        target.sync(src, "--clear-filters")
        assert set(target.objects()) == {"a.txt", "m/t.txt", "m/deep/u"}
        # ...and a later -x run, even with --delete, leaves what is below the mount
        # point alone in the backup (left out, not deleted locally), like an --exclude.
        summary = target.sync(src, "-x", "--delete")
        assert summary["operations"]["deleted"]["files"] == 0
        assert summary["operations"]["marked_deleted"]["files"] == 0
        assert set(target.objects()) == {"a.txt", "m/t.txt", "m/deep/u"}


# ---- markers ------------------------------------------------------------------------------

def test_exclude_caches_needs_a_valid_tag(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, {
        "cache": {"CACHEDIR.TAG": CACHEDIR_SIGNATURE + b"\n# made by a tool\n",
                  "blob": b"cached", "sub": {"x": b"x"}},
        "fake": {"CACHEDIR.TAG": b"Signature: not the right one\n", "blob": b"kept"},
        "short": {"CACHEDIR.TAG": CACHEDIR_SIGNATURE[:-1], "blob": b"kept too"},
        "keep.txt": b"k",
    })
    target.sync(src, "--exclude-caches")
    assert set(target.objects()) == {"cache/CACHEDIR.TAG", "fake/CACHEDIR.TAG", "fake/blob",
                                     "short/CACHEDIR.TAG", "short/blob", "keep.txt"}
    # Recorded: the next run (no options) and `manifest update` choose the same.
    target.sync(src)
    run_baycat("manifest", "update", src)
    assert b"cache/blob" not in [path_bytes(e) for e in manifest_json(src)[1]]
    assert "cache/blob" not in target.objects()


def test_exclude_if_present_keeps_the_marker_only(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"scratch": {".nobackup": b"", "big": b"b", "d": {"e": b"e"}},
                    "work": {".nobackup-not": b"", "f": b"f"},
                    "tmp": {"NOSYNC": b"", "g": b"g"}})
    target.sync(src, "--exclude-if-present", ".nobackup", "--exclude-if-present", "NOSYNC")
    assert set(target.objects()) == {"scratch/.nobackup", "work/.nobackup-not", "work/f",
                                     "tmp/NOSYNC"}
    # A marker added later: the contents already backed up are left alone (not deleted).
    (src / "work" / "NOSYNC").write_bytes(b"")
    summary = target.sync(src, "--exclude-if-present", "NOSYNC", "--delete")
    assert summary["operations"]["deleted"]["files"] == 0
    assert "work/f" in target.objects()


def test_exclude_if_present_refuses_a_path(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"a": b"a"})
    proc = run_baycat("sync", "--exclude-if-present", "a/b", tmp_path / "src",
                      tmp_path / "bk", check=2)
    assert b"file name" in proc.stderr and b"Traceback" not in proc.stderr


# ---- --files-from -------------------------------------------------------------------------

FILES_TREE: Spec = {"a": {"b": {"c.txt": b"c", "d.txt": b"d"}, "x.txt": b"x"},
              "e": {"f": {"g.txt": b"g", "h": {"i.txt": b"i"}}}, "top.txt": b"t"}
LISTED = b"a/b/c.txt\n# a comment\n\ne/f/\n"


def _check_files_from(target: Target, tmp_path: Path) -> None:
    assert set(target.objects()) == {"a/b/c.txt", "e/f/g.txt", "e/f/h/i.txt"}
    out = tmp_path / "out"
    target.restore(out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if ".baycat" not in p.parts) == [
        "a", "a/b", "a/b/c.txt", "e", "e/f", "e/f/g.txt", "e/f/h", "e/f/h/i.txt"]


def test_files_from_a_file(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, FILES_TREE)
    (src / "a").chmod(0o750)
    listing = tmp_path / "list"
    listing.write_bytes(LISTED)
    target.sync(src, "--files-from", str(listing))
    _check_files_from(target, tmp_path)
    assert (tmp_path / "out" / "a").stat().st_mode & 0o777 == 0o750  # a parent, as it was
    # Recorded: a run without options backs up the same selection, deletes nothing.
    summary = target.sync(src, "--delete")
    assert summary["operations"]["uploaded"]["files"] == 0
    assert summary["operations"]["deleted"]["files"] == 0


def test_files_from_stdin(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, FILES_TREE)
    proc = run_baycat("sync", "--json", "--files-from", "-", src, target.url, env=target.env,
                      input=LISTED)
    assert json.loads(proc.stdout)["exit_code"] == 0
    _check_files_from(target, tmp_path)


def test_files_from_outside_the_source_is_a_usage_error(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"a": b"a"})
    proc = run_baycat("sync", "--json", "--files-from", "-", tmp_path / "src", tmp_path / "bk",
                      input=b"a\n../../etc/passwd\n", check=2)
    assert "leaves the source" in json.loads(proc.stdout)["fatal_error"]
    assert not (tmp_path / "bk").exists()


def test_files_from_leaves_the_rest_of_the_backup_alone(target: Target,
                                                         tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, FILES_TREE)
    target.sync(src)
    everything = set(target.objects())
    (tmp_path / "list").write_bytes(b"a/b/c.txt\n")
    (src / "a" / "b" / "c.txt").write_bytes(b"changed")
    summary = target.sync(src, "--files-from", str(tmp_path / "list"), "--delete")
    assert summary["operations"]["uploaded"]["files"] == 1
    assert summary["operations"]["deleted"]["files"] == 0
    assert set(target.objects()) == everything


def test_files_from_reports_listed_paths_that_are_not_backed_up(tmp_path: Path) -> None:
    """A listed path that doesn't exist, or exists only through a symlink (never
    followed), is a failed path (exit 1), not silence."""
    src, outside = tmp_path / "src", tmp_path / "outside"
    make_tree(src, {"here.txt": b"here"})
    make_tree(outside, {"secret": b"not in the tree"})
    (src / "lnk").symlink_to(outside)
    listing = tmp_path / "list"
    listing.write_bytes(b"here.txt\nnonexistent\nlnk/secret\n")
    proc = run_baycat("sync", "--json", "--files-from", str(listing), src, tmp_path / "bk",
                      check=1)
    summary = json.loads(proc.stdout)
    assert sorted(e["path"] for e in summary["errors"]) == ["lnk/secret", "nonexistent"]
    assert summary["uploaded"]["files"] == 1
