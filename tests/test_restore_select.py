"""`restore --path` (gitignore patterns, parents made with their backed-up metadata) and
`restore --delete` (DST becomes the backup; nothing outside DST is touched), against a
local backup and S3."""

from __future__ import annotations

import os
from pathlib import Path

from tests.targets import Target
from tests.trees import Symlink, make_tree

T2020, T2021 = 1_577_836_800_000_000_000, 1_609_459_200_000_000_000


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".baycat" not in p.parts)


def photos(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    make_tree(src, {"photos": {"2024": {"a.jpg": b"a", "sub": {"b.jpg": b"b"}},
                               "2023": {"c.jpg": b"c"}, "top.jpg": b"t"},
                    "docs": {"d.txt": b"d"}})
    (src / "photos" / "2024").chmod(0o710)
    os.utime(src / "photos" / "2024", ns=(T2021, T2021))
    (src / "photos").chmod(0o750)
    os.utime(src / "photos", ns=(T2020, T2020))
    return src


def test_path_makes_the_parents_with_their_metadata(target: Target, tmp_path: Path) -> None:
    """The README's own example: it used to restore nothing ("a parent directory is
    missing")."""
    target.sync(photos(tmp_path))
    out = tmp_path / "out"
    summary = target.restore(out, "--path", "photos/2024/*")
    assert summary["errors"] == []
    assert listing(out) == ["photos", "photos/2024", "photos/2024/a.jpg", "photos/2024/sub",
                            "photos/2024/sub/b.jpg"]
    for rel, mode, mtime in (("photos", 0o750, T2020), ("photos/2024", 0o710, T2021)):
        st = (out / rel).stat()
        assert (st.st_mode & 0o7777, st.st_mtime_ns) == (mode, mtime), rel


def test_path_star_stays_within_one_name(target: Target, tmp_path: Path) -> None:
    target.sync(photos(tmp_path))
    out = tmp_path / "out"
    target.restore(out, "--path", "photos/*.jpg")
    assert listing(out) == ["photos", "photos/top.jpg"]
    out2 = tmp_path / "out2"
    target.restore(out2, "--path", "2023/", "--path", "docs")  # a dir pattern at any depth
    assert listing(out2) == ["docs", "docs/d.txt", "photos", "photos/2023", "photos/2023/c.jpg"]


def _extras(out: Path, outside: Path) -> None:
    make_tree(out, {"extra.txt": b"e", "extra_dir": {"f": b"f", "g": {"h": b"h"}},
                    "photos": {"2023": {"new.jpg": b"n"}},
                    "to_outside_dir": Symlink(os.fsencode(outside)),
                    "to_outside_file": Symlink(os.fsencode(outside / "victim"))})


def test_without_delete_extras_stay_and_are_counted(target: Target, tmp_path: Path) -> None:
    target.sync(photos(tmp_path))
    out, outside = tmp_path / "out", tmp_path / "outside"
    make_tree(outside, {"victim": b"keep me"})
    target.restore(out)
    _extras(out, outside)
    summary = target.restore(out)
    # extra.txt, extra_dir, extra_dir/f, extra_dir/g, extra_dir/g/h, new.jpg, 2 links
    assert summary["operations"]["extra"] == {"files": 8, "bytes": 4}
    assert (out / "extra_dir" / "g" / "h").exists()


def test_delete_makes_dst_the_backup_and_nothing_outside(target: Target,
                                                         tmp_path: Path) -> None:
    src = photos(tmp_path)
    target.sync(src)
    out, outside = tmp_path / "out", tmp_path / "outside"
    make_tree(outside, {"victim": b"keep me", "d": {"x": b"x"}})
    target.restore(out)
    _extras(out, outside)
    before = listing(outside)
    dry = target.restore(out, "--delete", "--dry-run")
    assert dry["operations"]["deleted"]["files"] == 8 and (out / "extra.txt").exists()
    summary = target.restore(out, "--delete")
    assert summary["errors"] == [] and summary["operations"]["deleted"]["files"] == 8
    assert summary["operations"]["extra"]["files"] == 0
    assert listing(out) == listing(src)
    assert listing(outside) == before and (outside / "victim").read_bytes() == b"keep me"
    # The directories' times are set after the removals changed them.
    assert (out / "photos").stat().st_mtime_ns == T2020


def test_delete_with_path_removes_only_within_it(target: Target, tmp_path: Path) -> None:
    target.sync(photos(tmp_path))
    out = tmp_path / "out"
    make_tree(out, {"photos": {"2024": {"stray.jpg": b"s"}, "2023": {"other.jpg": b"o"}},
                    "mine.txt": b"m"})
    summary = target.restore(out, "--delete", "--path", "photos/2024/*")
    assert summary["operations"]["deleted"]["files"] == 1
    assert not (out / "photos" / "2024" / "stray.jpg").exists()
    assert (out / "photos" / "2023" / "other.jpg").exists() and (out / "mine.txt").exists()


def test_path_restores_later_names_of_a_hardlinked_file_without_the_first(
        target: Target, tmp_path: Path) -> None:
    """A file's first name (the one holding its object) left out by --path: the selected
    names still get its content, and stay one file between them."""
    src = tmp_path / "src"
    make_tree(src, {"a": {"first": b"linked content"}, "b": {}, "c": {}})
    os.link(src / "a" / "first", src / "b" / "second")
    os.link(src / "a" / "first", src / "c" / "third")
    target.sync(src)
    out = tmp_path / "out"
    summary = target.restore(out, "--path", "b/", "--path", "c/")
    assert summary["errors"] == [] and summary["exit_code"] == 0, summary
    assert listing(out) == ["b", "b/second", "c", "c/third"]
    second, third = out / "b" / "second", out / "c" / "third"
    assert second.read_bytes() == third.read_bytes() == b"linked content"
    assert second.stat().st_ino == third.stat().st_ino
    one = tmp_path / "one"
    assert target.restore(one, "--path", "c/third")["exit_code"] == 0
    assert (one / "c" / "third").read_bytes() == b"linked content"


def test_a_path_that_matches_nothing_says_so(target: Target, tmp_path: Path) -> None:
    """A typo'd --path used to look like a successful restore of nothing."""
    target.sync(photos(tmp_path))
    out = tmp_path / "out"
    summary = target.restore(out, "--path", "phtoos/")
    assert any("no path in the backup matches" in n for n in summary["notices"]), summary
    assert listing(out) == []
