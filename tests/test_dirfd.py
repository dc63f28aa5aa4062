"""dirfd.DirFds: directory fds below a root, never through a symlink, bounded, and
never closed under a user."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baycat.dirfd import PARENT_MISSING, DirFds, NotReal, UnsafeParent, open_node


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_parents_are_the_directories_checked_whatever_their_names_become(
        tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    fds = DirFds(os.fsencode(root))
    try:
        with fds.parent(b"a/b/f") as (dir_fd, name):
            os.rename(root / "a", root / "moved")
            os.symlink(outside, root / "a")
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=dir_fd))
        assert (root / "moved" / "b" / "f").exists()
        assert list(outside.iterdir()) == []
        fds.close()
        fds = DirFds(os.fsencode(root))  # a fresh lookup refuses the symlink
        with pytest.raises(UnsafeParent) as info, fds.parent(b"a/b/g"):
            pass
        assert info.value.strerror == PARENT_MISSING
        (root / "file").write_bytes(b"x")
        for path in (b"file/x", b"missing/x"):
            with pytest.raises(UnsafeParent):
                fds.check(path)
    finally:
        fds.close()


def test_the_cache_is_bounded_and_a_pinned_fd_outlives_close(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / f"d{i}").mkdir()
    before = len(os.listdir("/proc/self/fd"))
    fds = DirFds(os.fsencode(tmp_path), capacity=4)
    for i in range(20):
        fds.check(b"d%d/x" % i)
    assert len(os.listdir("/proc/self/fd")) <= before + 1 + 4
    with fds.parent(b"d0/x") as (dir_fd, _):
        fds.close()
        assert _is_open(dir_fd)  # its user still holds it: not closed, number not reused
    assert not _is_open(dir_fd)
    assert len(os.listdir("/proc/self/fd")) == before
    with pytest.raises(OSError), fds.parent(b"d1/x"):
        pass


def test_open_node_refuses_symlinks_and_the_wrong_kind(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_bytes(b"x")
    os.symlink(tmp_path / "d", tmp_path / "ld")
    os.symlink(tmp_path / "f", tmp_path / "lf")
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name, directory in ((b"ld", True), (b"lf", False), (b"f", True), (b"d", False)):
            with pytest.raises(NotReal):
                open_node(name, root, directory)
        fd, handle = open_node(b"d", root, directory=True)
        os.chmod(handle, 0o711)
        os.close(fd)
        assert (tmp_path / "d").stat().st_mode & 0o777 == 0o711
    finally:
        os.close(root)
