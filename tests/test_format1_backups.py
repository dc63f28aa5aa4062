"""Backups written in manifest format 1 (before the format step) still restore.

tests/fixtures/backup-format1/ is a local-directory backup written by baycat 0.1.0
(format 1) of this tree, synced twice (`old.txt` deleted and `docs/new.txt` added in
between). It is kept as it was written: never regenerate it with newer code."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.cli_helpers import run_baycat
from tests.trees import read_tree

FIXTURE = Path(__file__).parent / "fixtures" / "backup-format1"
NOVEMBER_1 = 1793527200 * 10**9  # 2026-11-01T10:00:00Z: mtime of a.txt and b.txt

LATEST = {
    b"b.txt": ("f", b"second file\n"),
    b"caf\xe9": ("f", b"not utf8\n"),
    b"docs": ("d", b""),
    b"docs/a.txt": ("f", b"hello\n"),
    b"docs/new.txt": ("f", b"new\n"),
    b"empty": ("d", b""),
    b"link": ("l", b"docs/a.txt"),
}


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    """A copy: restoring takes the store's lock, which writes into it."""
    copy = tmp_path / "backup"
    shutil.copytree(FIXTURE, copy, symlinks=True)
    return copy


def test_the_latest_generation_restores_exactly(backup: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_baycat("restore", backup, out)
    assert read_tree(out) == LATEST
    b = os.lstat(out / "b.txt")
    assert stat.S_IMODE(b.st_mode) == 0o640 and b.st_mtime_ns == NOVEMBER_1
    assert os.lstat(out / "docs" / "a.txt").st_mtime_ns == NOVEMBER_1
    run_baycat("verify", "--deep", backup)


def test_an_earlier_generation_restores_with_at(backup: Path, tmp_path: Path) -> None:
    out = tmp_path / "first"
    run_baycat("restore", "--at", "2026-12-01T17:49:06Z", backup, out)
    first = {p: v for p, v in LATEST.items() if p != b"docs/new.txt"}
    assert read_tree(out) == first | {b"old.txt": ("f", b"gone soon\n")}
