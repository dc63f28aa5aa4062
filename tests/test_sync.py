"""The sync contract, run against a local directory and against real S3 (SeaweedFS).

Request counts are what the server received (a counting proxy), compared with what
baycat's --json reports; file opens are what the kernel saw (inotify)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import drop_dac_override, lock_out, run_baycat
from tests.inotify import OpenWatch
from tests.targets import Target, counts, make_target, requests_total
from tests.trees import Symlink, make_tree, read_tree, weird_tree


def age_tree(root: Path, seconds: float = 30) -> None:
    """Push mtimes into the past and wait out ctime raciness, like a nightly tree."""
    for dirpath, dirnames, filenames in os.walk(root):
        if ".baycat" in dirnames:
            dirnames.remove(".baycat")
        for name in filenames + dirnames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            os.utime(full, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)),
                     follow_symlinks=False)
    time.sleep(2.1)


def small_tree(n_dirs: int = 4, n_files: int = 25) -> dict[str, object]:
    return {f"dir{d}": {f"file{f:03d}.txt": f"content {d}/{f}\n".encode() * (f + 1)
                        for f in range(n_files)} for d in range(n_dirs)}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_tree(root, small_tree())  # type: ignore[arg-type]
    make_tree(root, {"empty": {}, "link": Symlink(b"dir0/file000.txt")})
    return root


def assert_same_tree(a: Path, b: Path, check_mtime: bool = True) -> None:
    assert read_tree(a) == read_tree(b)
    for path in read_tree(a):
        sa, sb = os.lstat(os.fsencode(a) + b"/" + path), os.lstat(os.fsencode(b) + b"/" + path)
        assert stat.S_IFMT(sa.st_mode) == stat.S_IFMT(sb.st_mode), path
        if not stat.S_ISLNK(sa.st_mode):
            assert stat.S_IMODE(sa.st_mode) == stat.S_IMODE(sb.st_mode), path
        if check_mtime:
            assert sa.st_mtime_ns == sb.st_mtime_ns, path
        assert (sa.st_uid, sa.st_gid) == (sb.st_uid, sb.st_gid), path


def _needs_escape(path: bytes) -> bool:
    try:
        text = path.decode()
    except UnicodeDecodeError:
        return True
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in text)


def test_first_sync_uploads_everything_and_restore_round_trips(
        target: Target, tmp_path: Path) -> None:
    src = tmp_path / "weird"
    make_tree(src, weird_tree())
    make_tree(src, {"link": Symlink(b"plain.txt"), "dangling": Symlink(b"/nowhere")})
    os.chmod(src / "plain.txt", 0o640)
    os.chmod(src / "empty-dir", 0o701)
    summary = target.sync(src)
    files = {p: c for p, (k, c) in read_tree(src).items() if k == "f"}
    assert summary["uploaded"]["files"] == len(files)
    assert summary["committed"] is True
    objects = target.objects()
    # Plain names are stored under their own key; the others under an escaped key.
    assert objects["plain.txt"] == files[b"plain.txt"]
    assert objects["with space.txt"] == files[b"with space.txt"]
    assert sorted(objects.values()) == sorted(files.values())
    escaped = {k for k in objects if k.startswith(".baycat/escaped/")}
    assert len(escaped) == sum(1 for p in files if _needs_escape(p))
    assert len(escaped) == 11
    out = tmp_path / "restored"
    restored = target.restore(out)
    assert restored["downloaded"]["files"] >= len(files)
    assert_same_tree(src, out)


def test_no_change_resync_costs_at_most_two_requests_and_opens_nothing(
        target: Target, tree: Path) -> None:
    age_tree(tree)
    target.sync(tree)
    target.sync(tree)  # settles entries hashed while racy
    watch = OpenWatch(tree)
    try:
        summary = target.sync(tree)
        opened = watch.opened_files()
    finally:
        watch.close()
    assert opened == set()
    assert requests_total(summary) <= 2, summary["server_requests"]
    assert counts(summary)["PUT"] == 0 and counts(summary)["LIST"] == 0
    assert summary["uploaded"]["files"] == summary["copied"]["files"] == 0
    assert summary["metadata"]["files"] == 0 and summary["committed"] is False


def test_k_changed_files_cost_k_uploads_plus_three(target: Target, tree: Path) -> None:
    age_tree(tree)
    target.sync(tree)
    target.sync(tree)
    changed = [tree / "dir1" / "file003.txt", tree / "dir2" / "file010.txt",
               tree / "dir3" / "file024.txt"]
    for i, path in enumerate(changed):
        path.write_bytes(b"new content %d" % i)
    watch = OpenWatch(tree)
    try:
        summary = target.sync(tree)
        opened = watch.opened_files()
    finally:
        watch.close()
    assert opened == {os.fsencode(p) for p in changed}
    assert summary["uploaded"]["files"] == 3
    c = counts(summary)
    assert c["PUT"] - 3 + c["GET"] + c["HEAD"] + c["LIST"] + c["POST"] + c["COPY"] <= 3, c
    assert target.objects()["dir2/file010.txt"] == b"new content 1"
    again = target.sync(tree)
    assert again["uploaded"]["files"] == 0 and again["metadata"]["files"] == 0
    assert requests_total(again) <= 2


def test_touched_files_are_not_uploaded_and_renames_are_copied(
        target: Target, tree: Path, tmp_path: Path) -> None:
    age_tree(tree)
    target.sync(tree)
    os.utime(tree / "dir0" / "file001.txt")  # touched: same content, new mtime
    (tree / "dir1" / "file002.txt").rename(tree / "dir1" / "renamed.txt")
    os.makedirs(tree / "moved")
    (tree / "dir2" / "file005.txt").rename(tree / "moved" / "file005.txt")
    summary = target.sync(tree)
    assert summary["uploaded"]["files"] == 0
    assert summary["copied"]["files"] == 2
    assert counts(summary)["COPY"] == 2
    assert summary["metadata"]["files"] >= 1  # the touched file's mtime
    assert summary["marked_deleted"]["files"] == 2
    objects = target.objects()
    assert objects["dir1/renamed.txt"] == (tree / "dir1" / "renamed.txt").read_bytes()
    assert "dir1/file002.txt" in objects  # kept: still restorable
    out = tmp_path / "restored"
    target.restore(out)
    assert_same_tree(tree, out)  # the touched mtime came back too
    assert not (out / "dir1" / "file002.txt").exists()
    target.restore(tmp_path / "with-deleted", "--include-deleted")
    assert (tmp_path / "with-deleted" / "dir1" / "file002.txt").exists()


def test_deletes_are_kept_by_default_and_removed_with_delete(
        target: Target, tree: Path) -> None:
    target.sync(tree)
    for f in range(5):
        (tree / "dir3" / f"file{f:03d}.txt").unlink()
    summary = target.sync(tree, "--delete", "--max-delete", "3", check=5)
    assert "max-delete" in summary["notices"][0] and "max-delete" in summary["refused"][0]
    assert summary["exit_code"] == 5 and summary["failed"]["files"] == 0
    assert "dir3/file000.txt" in target.objects()
    summary = target.sync(tree)
    assert summary["marked_deleted"]["files"] == 5 and summary["deleted"]["files"] == 0
    assert "dir3/file000.txt" in target.objects()
    summary = target.sync(tree, "--delete")
    assert summary["deleted"]["files"] == 5
    assert "dir3/file000.txt" not in target.objects()
    again = target.sync(tree, "--delete")
    assert again["deleted"]["files"] == 0 and requests_total(again) <= 2


def test_dry_run_changes_nothing_anywhere(target: Target, tree: Path) -> None:
    proc = run_baycat("sync", "--dry-run", "-v", tree, target.url, env=target.env)
    assert b"upload" in proc.stdout and b"dir0/file000.txt" in proc.stdout
    assert target.objects(include_state=True) == {} or (target.kind == "local" and \
        set(target.objects(include_state=True)) <= set())
    assert not (tree / ".baycat" / "manifest").exists()
    target.sync(tree)
    state = target.objects(include_state=True)
    manifest = (tree / ".baycat" / "manifest").read_bytes()
    (tree / "dir0" / "file000.txt").write_bytes(b"changed")
    (tree / "dir1" / "file001.txt").unlink()
    summary = target.sync(tree, "--dry-run", "--delete")
    assert summary["uploaded"]["files"] == 1 and summary["deleted"]["files"] == 1
    assert target.objects(include_state=True) == state
    assert (tree / ".baycat" / "manifest").read_bytes() == manifest


def test_a_file_that_fails_is_not_recorded_and_is_retried(target: Target, tree: Path) -> None:
    secret = tree / "dir0" / "secret.txt"
    secret.write_bytes(b"top secret")
    lock_out(secret)
    proc = run_baycat("sync", "--json", tree, target.url, env=target.env, check=1,
                      preexec_fn=drop_dac_override)
    assert b"secret.txt" in proc.stderr
    assert "dir0/secret.txt" not in target.objects()
    secret.chmod(0o644)
    summary = target.sync(tree)
    assert summary["uploaded"]["files"] == 1
    assert target.objects()["dir0/secret.txt"] == b"top secret"


def test_restore_skips_identical_files_and_accepts_a_relative_destination(
        target: Target, tree: Path, tmp_path: Path) -> None:
    target.sync(tree)
    first = target.restore("out", cwd=tmp_path)
    assert first["downloaded"]["files"] == 101  # 100 files and a symlink
    (tmp_path / "out" / "dir0" / "file000.txt").unlink()
    (tmp_path / "out" / "dir1" / "file001.txt").write_bytes(b"damaged")
    second = target.restore("out", cwd=tmp_path)
    assert second["downloaded"]["files"] == 2
    assert_same_tree(tree, tmp_path / "out")
    third = target.restore("out", cwd=tmp_path)
    assert third["downloaded"]["files"] == 0


def test_restore_refuses_a_corrupted_object(target: Target, tree: Path, tmp_path: Path) -> None:
    target.sync(tree)
    target.put_raw("dir0/file001.txt", b"tampered")
    summary = target.restore(tmp_path / "out", check=1)
    assert summary["failed"]["files"] == 1
    assert "hash" in summary["errors"][0]["message"]
    assert not (tmp_path / "out" / "dir0" / "file001.txt").exists()
    assert (tmp_path / "out" / "dir0" / "file002.txt").exists()


def test_overlapping_source_and_destination_are_refused(tmp_path: Path) -> None:
    make_tree(tmp_path / "data", {"f": b"x"})
    for dst in (tmp_path / "data" / "backup", tmp_path, tmp_path / "data"):
        proc = run_baycat("sync", tmp_path / "data", dst, check=2)
        assert b"overlap" in proc.stderr
    assert not (tmp_path / "data" / "backup").exists()


@pytest.fixture
def big_file_tree(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "big"
    root.mkdir()
    (root / "large.bin").write_bytes(os.urandom(1 << 20) * 70)  # 70 MiB: multipart
    (root / "small").write_bytes(b"s")
    yield root


def test_large_files_go_multipart_and_round_trip(
        target: Target, big_file_tree: Path, tmp_path: Path) -> None:
    summary = target.sync(big_file_tree)
    c = counts(summary)
    assert c["POST"] >= 2  # create + complete multipart
    assert summary["uploaded"]["bytes"] == 70 * (1 << 20) + 1
    out = tmp_path / "restored"
    target.restore(out)
    assert (out / "large.bin").read_bytes() == (big_file_tree / "large.bin").read_bytes()


def test_manifest_update_between_syncs_does_not_hide_changes(
        target: Target, tree: Path) -> None:
    """The no-change shortcut trusts 'unchanged since the last clean sync' only while the
    local manifest is the one that sync wrote."""
    age_tree(tree)
    target.sync(tree)
    (tree / "dir0" / "file004.txt").write_bytes(b"edited before a manifest update")
    run_baycat("manifest", "update", tree)  # the stat cache now knows the new content
    summary = target.sync(tree)
    assert summary["uploaded"]["files"] == 1
    assert target.objects()["dir0/file004.txt"] == b"edited before a manifest update"


def test_an_upload_failure_is_retried_even_though_the_file_is_unchanged_locally(
        tmp_path: Path, tree: Path) -> None:
    target = make_target("local", tmp_path, None, None)
    age_tree(tree)
    target.sync(tree)
    (tree / "dir1" / "file001.txt").write_bytes(b"new")
    assert target.root is not None
    lock_out(target.root / "dir1", 0o555)  # the store refuses the write
    failed = run_baycat("sync", "--json", tree, target.url, env=target.env, check=1,
                        preexec_fn=drop_dac_override)
    (target.root / "dir1").chmod(0o755)
    assert b"file001" in failed.stdout and b"Traceback" not in failed.stderr
    summary = target.sync(tree)  # file001 is unchanged locally since the failed run
    assert summary["uploaded"]["files"] == 1
    assert target.objects()["dir1/file001.txt"] == b"new"
