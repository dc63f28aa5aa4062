"""`baycat ls` and `baycat diff` (ops/browse.py): what a generation holds and what
changed, from the manifest alone (the counting proxy sees manifest GETs only), on a
local directory and SeaweedFS."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from baycat.entry import DIR, FILE, SYMLINK, Entry
from baycat.ops.browse import ADDED, METADATA, MODIFIED, REMOVED, classify, diff_entries
from tests.cli_helpers import run_baycat
from tests.targets import Target
from tests.trees import Symlink, make_tree

TREE = {"top.txt": b"top", "docs": {"a.txt": b"alpha", "deep": {"b.txt": b"beta"}},
        "link": Symlink(b"top.txt"), "empty": {}}


def run_json(target: Target, *args: str | Path, check: int = 0) -> dict[str, Any]:
    if target.proxy is not None:
        target.proxy.reset()
    proc = run_baycat(*args, env=target.env, check=check)
    doc: dict[str, Any] = json.loads(proc.stdout)
    if target.proxy is not None:
        doc["server_requests"] = dict(target.proxy.counts())
    return doc


def only_manifest_gets(target: Target, doc: dict[str, Any], gets: int) -> None:
    """No data object was read: the requests are `gets` GETs, of the root (1), a
    generation's root copy (1 for --at) and its segments (1: one pack)."""
    if target.proxy is not None:
        assert doc["server_requests"] == doc["requests"], doc
    assert doc["requests"] == {"GET": gets}, doc["requests"]


def test_ls_lists_a_generation_from_the_manifest(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, TREE)  # type: ignore[arg-type]
    os.chmod(src / "top.txt", 0o640)
    target.sync(src)
    doc = run_json(target, "ls", "--json", target.url)
    only_manifest_gets(target, doc, 2)
    by_path = {e["path"]: e for e in doc["entries"]}
    assert set(by_path) == {"top.txt", "docs", "link", "empty"}
    assert by_path["top.txt"]["type"] == "file" and by_path["top.txt"]["size"] == 3
    assert stat.S_IMODE(by_path["top.txt"]["mode"]) == 0o640
    assert by_path["top.txt"]["uid"] == os.getuid()
    assert by_path["link"] == {**by_path["link"], "type": "symlink", "target": "top.txt"}
    assert by_path["docs"]["type"] == "dir"
    assert doc["generation"].endswith("Z") and doc["path"] == "" and not doc["recursive"]

    rec = run_json(target, "ls", "--json", "-R", target.url, "docs")
    only_manifest_gets(target, rec, 2)
    assert [e["path"] for e in rec["entries"]] == ["docs/a.txt", "docs/deep",
                                                   "docs/deep/b.txt"]
    one = run_json(target, "ls", "--json", target.url, "/docs/deep/b.txt")
    assert [e["path"] for e in one["entries"]] == ["docs/deep/b.txt"]

    text = run_baycat("ls", target.url, env=target.env).stdout.decode().splitlines()
    lines = {line.split("  ")[-1]: line for line in text}
    assert set(lines) == {"top.txt", "docs", "link -> top.txt", "empty"}
    assert lines["top.txt"].startswith("-rw-r----- ")
    assert lines["docs"].startswith("d")
    names = [line.split()[-1] for line in run_baycat(
        "ls", target.url, "docs", env=target.env).stdout.decode().splitlines()]
    assert names == ["a.txt", "deep"]


def test_ls_at_an_older_generation_and_errors(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"old.txt": b"old"})
    target.sync(src)
    (src / "old.txt").unlink()
    make_tree(src, {"new.txt": b"new"})
    target.sync(src, "--delete")
    history = json.loads(run_baycat("history", "--json", target.url,
                                    env=target.env).stdout)["generations"]
    older = history[1]["time_ns"]
    at = datetime.fromtimestamp(older // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S") + \
        f".{older % 10**9 // 1000:06d}Z"
    doc = run_json(target, "ls", "--json", "--at", at, target.url)
    only_manifest_gets(target, doc, 3)
    assert [e["path"] for e in doc["entries"]] == ["old.txt"]
    assert doc["generation_ns"] == older
    assert [e["path"] for e in run_json(target, "ls", "--json", target.url)["entries"]] \
        == ["new.txt"]

    proc = run_baycat("ls", target.url, "nothing/here", env=target.env, check=2)
    assert b"nothing/here: not in the backup" in proc.stderr
    fatal = run_json(target, "ls", "--json", target.url, "nothing", check=2)
    assert fatal["exit_code"] == 2 and fatal["entries"] == []
    empty = tmp_path / "no-backup"
    empty.mkdir()
    proc = run_baycat("ls", empty, check=3)
    assert b"no baycat backup" in proc.stderr


def test_diff_between_generations(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"same.txt": b"same", "edit.txt": b"one", "gone.txt": b"bye",
                    "mode.txt": b"m"})
    target.sync(src)
    (src / "edit.txt").write_bytes(b"two, longer")
    (src / "gone.txt").unlink()
    os.chmod(src / "mode.txt", 0o600)
    make_tree(src, {"new.txt": b"hello"})
    target.sync(src, "--delete")
    doc = run_json(target, "diff", "--json", target.url)
    only_manifest_gets(target, doc, 4)
    changes = {c["path"]: c["change"] for c in doc["changes"]}
    assert changes == {"edit.txt": MODIFIED, "gone.txt": REMOVED, "mode.txt": METADATA,
                       "new.txt": ADDED}
    assert doc["counts"][ADDED] == 1 and doc["counts"][REMOVED] == 1
    edit = next(c for c in doc["changes"] if c["path"] == "edit.txt")
    assert edit["old"]["size"] == 3 and edit["new"]["size"] == len(b"two, longer")
    # Generation times have one-second resolution: two syncs may share one.
    assert not doc["new_is_local"] and doc["old"] <= doc["new"]

    history = json.loads(run_baycat("history", "--json", target.url,
                                    env=target.env).stdout)["generations"]
    times = [g["time_ns"] for g in history]

    def iso(ns: int) -> str:
        return datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S") + \
            f".{ns % 10**9 // 1000:06d}Z"

    both = run_json(target, "diff", "--json", "--at", iso(times[1]), "--at", iso(times[0]),
                    target.url)
    only_manifest_gets(target, both, 5)
    assert both["changes"] == doc["changes"]
    backwards = run_json(target, "diff", "--json", "--at", iso(times[0]), "--at",
                         iso(times[1]), target.url)
    assert {c["path"]: c["change"] for c in backwards["changes"]}["new.txt"] == REMOVED

    text = run_baycat("diff", target.url, env=target.env).stdout.decode().splitlines()
    assert "added     new.txt" in text and "removed   gone.txt" in text
    assert text[-1].endswith("1 added, 1 removed, 1 modified, " +
                             f"{doc['counts'][METADATA]} metadata")


def test_diff_with_the_local_tree(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"a", "b.txt": b"b", "sub": {"c.txt": b"c"}})
    target.sync(src)
    proc = run_baycat("diff", target.url, env=target.env, check=2)
    assert b"one generation only" in proc.stderr
    (src / "a.txt").write_bytes(b"changed")
    (src / "sub" / "c.txt").unlink()
    make_tree(src, {"d.txt": b"d"})
    manifest_before = (src / ".baycat" / "manifest").read_bytes()
    doc = run_json(target, "diff", "--json", target.url, src)
    only_manifest_gets(target, doc, 2)
    changes = {c["path"]: c["change"] for c in doc["changes"] if c["path"] != "sub"}
    assert changes == {"a.txt": MODIFIED, "sub/c.txt": REMOVED, "d.txt": ADDED}
    assert doc["new_is_local"] and doc["new"] == str(src)
    assert (src / ".baycat" / "manifest").read_bytes() == manifest_before  # nothing written
    assert run_json(target, "diff", "--json", target.url, src)["changes"] == doc["changes"]


def _entry(path: str, kind: str = FILE, size: int = 1, xxh: bytes = b"h", mode: int = 0o644,
           mtime: int = 1, target: bytes = b"", deleted: int = 0) -> Entry:
    return Entry(path.encode(), kind, size, mtime, 0, 0, 0, mode, 0, 0, target, xxh, "e", "",
                 "", deleted, 0)


@pytest.mark.parametrize(("old", "new", "expected"), [
    (None, _entry("f"), ADDED),
    (_entry("f"), None, REMOVED),
    (_entry("f"), _entry("f"), None),
    (_entry("f"), _entry("f", xxh=b"other"), MODIFIED),
    (_entry("f"), _entry("f", size=2), MODIFIED),
    (_entry("f"), _entry("f", mode=0o600), METADATA),
    (_entry("f"), _entry("f", mtime=2), METADATA),
    (_entry("f"), _entry("f", kind=DIR, xxh=b"", size=0), MODIFIED),
    (_entry("l", SYMLINK, target=b"a"), _entry("l", SYMLINK, target=b"b"), MODIFIED),
    (_entry("f", deleted=5), _entry("f"), ADDED),
    (_entry("f"), _entry("f", deleted=5), REMOVED),
    (_entry("f", deleted=5), None, None),
])
def test_classify(old: Entry | None, new: Entry | None, expected: str | None) -> None:
    assert classify(old, new) == expected


def test_diff_entries_merges_in_path_order() -> None:
    old = [_entry("a"), _entry("a/x"), _entry("a.b"), _entry("c")]
    new = [_entry("a"), _entry("a/y"), _entry("a.b", mode=0o600), _entry("d")]
    got = [(c.kind, c.path) for c in diff_entries(iter(old), iter(new))]
    assert got == [(REMOVED, b"a/x"), (ADDED, b"a/y"), (METADATA, b"a.b"), (REMOVED, b"c"),
                   (ADDED, b"d")]


def test_ls_shows_every_kind_of_file(tmp_path: Path) -> None:
    """Format 2's kinds: a hardlink's later name (naming the first), a FIFO. `ls --json`
    used to end in a KeyError traceback on them."""
    src, backup = tmp_path / "src", tmp_path / "backup"
    make_tree(src, {"a": b"linked"})
    os.link(src / "a", src / "b")
    os.mkfifo(src / "f")
    run_baycat("sync", src, backup)
    doc = json.loads(run_baycat("ls", "--json", backup).stdout)
    kinds = {e["path"]: (e["type"], e.get("link")) for e in doc["entries"]}
    assert kinds == {"a": ("file", None), "b": ("hardlink", "a"), "f": ("fifo", None)}
    text = run_baycat("ls", backup).stdout.decode()
    assert "b => a" in text
