"""Refreshing an entry from a stat (`entry.with_stat`) and the held-still check
(`entry.same_file_stat`): the one home of what the hasher and the uploads record."""

from __future__ import annotations

import os
from pathlib import Path

from baycat.entry import (
    FILE,
    FLAG_INCOMPLETE,
    FLAG_RACY,
    Entry,
    entry_from_stat,
    same_file_stat,
    with_stat,
)
from tests.support.tables import row


def test_with_stat_takes_the_stat_and_hash_and_keeps_the_rest(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"old")
    old = entry_from_stat(b"d/f", FILE, f.stat())._replace(
        etag='"e"', key="k", version_id="v", deleted_ns=5, flags=FLAG_INCOMPLETE)
    f.write_bytes(b"longer")
    st = f.stat()
    new = with_stat(old, st, b"h" * 16)
    assert new == Entry(b"d/f", FILE, 6, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev,
                        st.st_mode, st.st_uid, st.st_gid, b"", b"h" * 16, '"e"', "k", "v", 5,
                        FLAG_INCOMPLETE)


def test_with_stat_racy_sets_clears_or_keeps_the_flag(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    st = f.stat()
    base = entry_from_stat(b"f", FILE, st)
    for flags, racy, expected in [
        (0, None, 0), (FLAG_RACY, None, FLAG_RACY),
        (0, True, FLAG_RACY), (FLAG_INCOMPLETE, True, FLAG_INCOMPLETE | FLAG_RACY),
        (FLAG_RACY, False, 0), (FLAG_RACY | FLAG_INCOMPLETE, False, FLAG_INCOMPLETE),
    ]:
        with row(f"flags={flags} racy={racy}"):
            assert with_stat(base._replace(flags=flags), st, b"", racy=racy).flags == expected


def test_same_file_stat(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    with open(f, "ab") as fh:
        before = os.fstat(fh.fileno())
        assert same_file_stat(before, os.fstat(fh.fileno()))
        fh.write(b"y")
        fh.flush()
        assert not same_file_stat(before, os.fstat(fh.fileno()))  # size (and maybe times)
    os.replace(tmp_path / "f", tmp_path / "g")
    (tmp_path / "f").write_bytes(b"xy")
    os.utime(tmp_path / "f", ns=(before.st_atime_ns, os.stat(tmp_path / "g").st_mtime_ns))
    moved, fresh = os.stat(tmp_path / "g"), os.stat(tmp_path / "f")
    assert moved.st_size == fresh.st_size and moved.st_mtime_ns == fresh.st_mtime_ns
    assert not same_file_stat(moved, fresh)  # replaced by another inode
