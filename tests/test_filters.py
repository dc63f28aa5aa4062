"""Filters: the pure matcher as tables, then real runs (walker pruning, .baycatignore
nesting, filters recorded in the manifest, excluded paths left alone in the backup)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baycat.errors import UsageError
from baycat.scan.filters import FilterSpec, Rule, rules_from_file
from baycat.scan.walker import SkipFunc, walk
from tests.cli_helpers import manifest_json, run_baycat
from tests.trees import make_tree


def ex(p: str) -> Rule:
    return Rule(False, p)


def inc(p: str) -> Rule:
    return Rule(True, p)


def matcher(rules: tuple[Rule, ...] = (), ignore: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    files = {k.encode(): v.encode() for k, v in (ignore or {}).items()}
    return FilterSpec(rules).matcher(lambda rel_dir: files.get(rel_dir))


CASES: list[tuple[str, tuple[Rule, ...], dict[str, str], str, bool, bool]] = [
    # name, rules, ignore files {dir: text}, path, is_dir, skipped
    ("no rules", (), {}, "a/b.txt", False, False),
    ("glob any depth", (ex("*.log"),), {}, "a/b/c.log", False, True),
    ("glob no match", (ex("*.log"),), {}, "a/b/c.txt", False, False),
    ("anchored", (ex("/build"),), {}, "build", True, True),
    ("anchored not deeper", (ex("/build"),), {}, "src/build", True, False),
    ("dir-only pattern skips dir", (ex("cache/"),), {}, "x/cache", True, True),
    ("dir-only pattern spares a file", (ex("cache/"),), {}, "x/cache", False, False),
    ("last match wins: include", (ex("*.log"), inc("keep.log")), {}, "keep.log", False, False),
    ("last match wins: exclude", (inc("keep.log"), ex("*.log")), {}, "keep.log", False, True),
    ("double star", (ex("a/**/z"),), {}, "a/b/c/z", False, True),
    ("literal leading !", (ex("!weird"),), {}, "!weird", False, True),
    ("ignore file at top", (), {"": "*.tmp\n"}, "d/x.tmp", False, True),
    ("ignore file negation", (), {"": "*.tmp\n!keep.tmp\n"}, "keep.tmp", False, False),
    ("ignore file relative to its dir", (), {"sub": "/only-here\n"}, "sub/only-here", False,
     True),
    ("anchored in sub does not hit top", (), {"sub": "/only-here\n"}, "only-here", False,
     False),
    ("ignore file applies to its subtree only", (), {"sub": "*.bin\n"}, "other/x.bin", False,
     False),
    ("deeper file overrides", (), {"": "*.bin\n", "sub": "!*.bin\n"}, "sub/x.bin", False,
     False),
    ("deeper file overrides, not siblings", (), {"": "*.bin\n", "sub": "!*.bin\n"},
     "x.bin", False, True),
    ("cli rule overrides ignore file", (inc("x.bin"),), {"": "*.bin\n"}, "x.bin", False,
     False),
    ("comment and blank lines", (), {"": "# *.txt\n\n"}, "a.txt", False, False),
]


@pytest.mark.parametrize(("rules", "ignore", "path", "is_dir", "skipped"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_matcher_table(rules: tuple[Rule, ...], ignore: dict[str, str], path: str,
                       is_dir: bool, skipped: bool) -> None:
    assert matcher(rules, ignore).skip(path.encode(), is_dir) is skipped


def test_excluded_covers_everything_below_an_excluded_directory() -> None:
    m = matcher((ex("cache/"), inc("cache/keep")))
    assert m.excluded(b"cache/keep", False)  # below an excluded dir: never re-included
    assert m.excluded(b"a/cache/deep/x", False)
    assert not m.excluded(b"a/other/x", False)


def test_header_round_trip_and_bad_rules(tmp_path: Path) -> None:
    spec = FilterSpec((ex("*.log"), inc("keep.log")), ignore_files=False)
    assert spec.to_header() == ("- *.log", "+ keep.log", "no-ignore-files")
    assert FilterSpec.from_header(spec.to_header()) == spec
    with pytest.raises(UsageError):
        Rule.parse("*.log")
    with pytest.raises(UsageError):
        FilterSpec((ex(""),))
    rules_file = tmp_path / "excludes"
    rules_file.write_text("# comment\n*.tmp\n\n/build/\n")
    assert rules_from_file(rules_file, include=False) == [ex("*.tmp"), ex("/build/")]


def test_walker_never_enters_an_excluded_directory(tmp_path: Path) -> None:
    make_tree(tmp_path, {"keep": {"a": b"1"}, "skip": {"deep": {"b": b"2"}}})
    seen: list[bytes] = []
    m = FilterSpec((ex("skip/"),)).matcher(None)

    class Spy:
        def for_dir(self, rel_dir: bytes, names: list[bytes]) -> SkipFunc | None:
            seen.append(rel_dir)
            inner = m.for_dir(rel_dir, names)
            assert inner is not None
            return inner

    paths = [p for batch in walk(bytes(tmp_path), path_filter=Spy()) for p, *_ in batch]
    assert paths == [b"keep", b"keep/a"]
    assert seen == [b"", b"keep"]  # "skip" was never listed


# ---- real runs through the CLI ----------------------------------------------------------


def _tree(root: Path) -> None:
    make_tree(root, {
        ".baycatignore": b"*.tmp\nbuild/\n",
        "a.txt": b"a", "a.tmp": b"t", "app.log": b"l", "keep.log": b"k",
        "build": {"out.o": b"o"},
        "sub": {".baycatignore": b"!*.tmp\n/private\n", "s.tmp": b"s", "private": b"p",
                "deeper": {"private": b"q", "x.tmp": b"x"}},
    })


def _paths(directory: Path) -> set[str]:
    _, entries = manifest_json(directory)
    return {e["path"] for e in entries}


def test_manifest_filters_nesting_and_recording(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _tree(root)
    run_baycat("manifest", "create", "--exclude", "*.log", "--include", "keep.log", root)
    assert _paths(root) == {".baycatignore", "a.txt", "keep.log", "sub", "sub/.baycatignore",
                            "sub/s.tmp", "sub/deeper", "sub/deeper/private",
                            "sub/deeper/x.tmp"}
    header, _ = manifest_json(root)
    assert header["filters"] == ["- *.log", "+ keep.log"]
    # `update` without filter options applies the recorded ones (app.log stays out).
    (root / "new.log").write_bytes(b"n")
    run_baycat("manifest", "update", root)
    assert "new.log" not in _paths(root) and "keep.log" in _paths(root)
    # Order matters: the same two rules the other way round exclude keep.log too.
    run_baycat("manifest", "update", "--include", "keep.log", "--exclude", "*.log", root)
    assert "keep.log" not in _paths(root)
    run_baycat("manifest", "update", "--clear-filters", root)
    header, _ = manifest_json(root)
    assert header["filters"] == [] and "app.log" in _paths(root)


def test_sync_leaves_newly_excluded_paths_alone_unless_delete_excluded(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_tree(root, {"a.txt": b"a", "b.log": b"b", "logs": {"c": b"c"}})
    backup = tmp_path / "backup"

    def sync(*args: str) -> dict[str, object]:
        out = run_baycat("sync", "--json", *args, root, backup).stdout
        doc: dict[str, object] = json.loads(out)
        return doc

    sync()
    assert (backup / "b.log").exists()
    first = sync("--exclude", "*.log", "--exclude", "logs/")
    assert first["marked_deleted"] == {"files": 0, "bytes": 0}
    assert first["deleted"] == {"files": 0, "bytes": 0}
    restored = tmp_path / "restored"
    run_baycat("restore", backup, restored)
    assert (restored / "b.log").read_bytes() == b"b"  # still in the backup, live
    # Excluded new files are never uploaded; the filters are remembered.
    (root / "new.log").write_bytes(b"n")
    sync()
    assert not (backup / "new.log").exists()
    gone = sync("--delete", "--delete-excluded")
    assert gone["deleted"]["files"] == 3  # type: ignore[index]  # b.log, logs/, logs/c
    assert not (backup / "b.log").exists() and not (backup / "logs" / "c").exists()
    assert (backup / "a.txt").exists()


def test_exclude_from_file(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_tree(root, {"a.txt": b"a", "b.bak": b"b"})
    rules = tmp_path / "rules"
    rules.write_text("*.bak\n")
    run_baycat("manifest", "create", "--exclude-from", rules, root)
    assert _paths(root) == {"a.txt"}
    proc = run_baycat("manifest", "create", "--exclude-from", tmp_path / "nope", root, check=2)
    assert b"cannot read" in proc.stderr
