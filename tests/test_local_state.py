"""baycat's own state on disk (`DIR/.baycat/`) and a local backup's files: where they are
written and who may read them.

- A state directory that is a symlink, not a directory, or another user's is refused
  (exit code 3, one line, the --json object) before anything is written through it.
- Whatever the umask, state is 0600 in 0700 directories, and so are a local backup's
  objects and directories.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from baycat.ops.transfer import TransferConfig
from tests.cli_helpers import NOBODY, run_baycat
from tests.targets import Target
from tests.trees import Symlink, make_tree

COMMANDS = ["sync", "restore", "manifest update"]


def _tree(root: Path) -> Path:
    make_tree(root, {"a.txt": b"hello", "d": {"b.txt": b"world", "e": {"c": b"deep"}},
                     "link": Symlink(b"a.txt")})
    return root


def _run(command: str, src: Path, backup: Path, dst: Path,
         check: int) -> tuple[str, dict[str, object] | None]:
    """Run `command` the way a user would; returns (stderr, the --json object or None)."""
    if command == "sync":
        proc = run_baycat("sync", "--json", src, backup, check=check)
    elif command == "restore":
        proc = run_baycat("restore", "--json", backup, dst, check=check)
    else:  # no --json for manifest commands
        proc = run_baycat("manifest", "update", src, check=check)
        return proc.stderr.decode(), None
    return proc.stderr.decode(), json.loads(proc.stdout)


def _state_tree(command: str, tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """(src, backup, dst, the tree whose state directory `command` uses)."""
    src, backup, dst = _tree(tmp_path / "src"), tmp_path / "backup", tmp_path / "dst"
    if command == "restore":
        run_baycat("sync", src, backup)
        dst.mkdir()
        return src, backup, dst, dst
    return src, backup, dst, src


def _refused(command: str, src: Path, backup: Path, dst: Path) -> str:
    stderr, doc = _run(command, src, backup, dst, check=3)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("baycat: error:"), stderr
    if doc is not None:
        assert doc["exit_code"] == 3 and str(doc["fatal_error"]) in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_symlinked_state_dir_is_refused_and_nothing_is_written_there(
        tmp_path: Path, command: str) -> None:
    src, backup, dst, tree = _state_tree(command, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tree / ".baycat")
    assert "is a symlink" in _refused(command, src, backup, dst)
    assert os.listdir(elsewhere) == []
    if command == "restore":
        assert os.listdir(dst) == [".baycat"]  # nothing restored either
    if command == "sync":
        assert not backup.exists()  # refused before the backup was touched


@pytest.mark.parametrize("command", COMMANDS)
def test_a_state_dir_that_is_a_file_is_refused(tmp_path: Path, command: str) -> None:
    src, backup, dst, tree = _state_tree(command, tmp_path)
    (tree / ".baycat").write_bytes(b"not a directory")
    assert "not a directory" in _refused(command, src, backup, dst)
    assert (tree / ".baycat").read_bytes() == b"not a directory"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_state_dir_of_another_user_is_refused(tmp_path: Path, command: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: giving a directory to another user takes chown")
    src, backup, dst, tree = _state_tree(command, tmp_path)
    state = tree / ".baycat"
    state.mkdir(exist_ok=True)
    os.chown(state, NOBODY, NOBODY)
    before = sorted(os.listdir(state))
    assert f"belongs to uid {NOBODY}" in _refused(command, src, backup, dst)
    assert sorted(os.listdir(state)) == before


def test_an_old_state_dir_open_to_others_is_made_private(tmp_path: Path) -> None:
    """A state directory and lock an older baycat made under umask 022."""
    src = _tree(tmp_path / "src")
    (src / ".baycat").mkdir(mode=0o755)
    os.chmod(src / ".baycat", 0o755)
    (src / ".baycat" / "manifest.lock").write_bytes(b"")
    os.chmod(src / ".baycat" / "manifest.lock", 0o644)
    run_baycat("manifest", "update", src)
    assert stat.S_IMODE(os.stat(src / ".baycat").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(src / ".baycat" / "manifest.lock").st_mode) == 0o600


# ---- modes whatever the umask -------------------------------------------------------


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
    # Multipart: part files, their directory, the upload journal.
    (src / "big").write_bytes(os.urandom(TransferConfig().multipart_threshold + 1))
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
        # baycat's state is private; data objects and directories have their source's
        # modes (issue 14 §5), never more.
        _assert_private(target.root / ".baycat")
        assert (target.root / ".baycat" / "store.lock").exists()
        backup, source = _modes(target.root), _modes(src)
        assert {p: oct(m) for p, m in backup.items() if not p.startswith((".baycat", "."))
                and m != source[p]} == {}


def test_a_symlink_given_as_the_source_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "disk1"
    make_tree(real, {"f": b"data"})
    (tmp_path / "data").symlink_to(real)
    run_baycat("sync", tmp_path / "data", tmp_path / "backup")
    assert (tmp_path / "backup" / "f").read_bytes() == b"data"
    assert (real / ".baycat" / "manifest").exists()
