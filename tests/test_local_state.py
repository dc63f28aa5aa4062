"""baycat's own state on disk (`DIR/.baycat/`) and a local backup's files: who may read
them. Whatever the umask, state is 0600 in 0700 directories, and so are a local backup's
objects and directories.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.cli_helpers import run_baycat
from tests.targets import Target
from tests.trees import Symlink, make_tree


def _tree(root: Path) -> Path:
    make_tree(root, {"a.txt": b"hello", "d": {"b.txt": b"world", "e": {"c": b"deep"}},
                     "link": Symlink(b"a.txt")})
    return root


def _umask_000() -> None:
    os.umask(0)


def _modes(root: Path) -> dict[str, int]:
    """Every directory (root included) and file below `root` -> its permission bits."""
    out = {".": stat.S_IMODE(os.lstat(root).st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = stat.S_IMODE(os.lstat(full).st_mode)
    return out


def _assert_private(root: Path) -> None:
    modes = _modes(root)
    dirs = {p for p in modes if os.path.isdir(root / p)}
    assert {p: oct(m) for p, m in modes.items() if p in dirs and m != 0o700} == {}, root
    assert {p: oct(m) for p, m in modes.items() if p not in dirs and m & 0o077} == {}, root
    assert len(modes) > len(dirs)  # there were files to check


def test_state_and_local_backup_files_are_private_under_umask_000(
        tmp_path: Path, target: Target) -> None:
    src, dst = _tree(tmp_path / "src"), tmp_path / "dst"
    run_baycat("sync", src, target.url, env=target.env, preexec_fn=_umask_000)
    (src / "d" / "b.txt").write_bytes(b"changed")
    (src / "new.txt").write_bytes(b"new")
    run_baycat("manifest", "update", src, preexec_fn=_umask_000)
    # Second sync: writes the synced marker of a clean run and rewrites the cache.
    run_baycat("sync", src, target.url, env=target.env, preexec_fn=_umask_000)
    run_baycat("restore", target.url, dst, env=target.env, preexec_fn=_umask_000)
    assert (dst / "d" / "b.txt").read_bytes() == b"changed"
    assert any(name.endswith(".synced") for name in os.listdir(src / ".baycat" / "remote"))
    _assert_private(src / ".baycat")
    _assert_private(dst / ".baycat")
    if target.root is not None:
        _assert_private(target.root)
        assert (target.root / ".baycat" / "store.lock").exists()
