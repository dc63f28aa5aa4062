"""`baycat repair`: objects deleted or overwritten behind baycat's back are put back, from
the tree when the file still has the recorded content, else from another object with
that content; what neither can give is reported (exit 1). Afterwards verify is clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli_helpers import run_baycat
from tests.targets import Target
from tests.trees import make_tree, read_tree


def repair(target: Target, src: Path, *args: str, check: int = 0) -> dict[str, Any]:
    proc = run_baycat("repair", "--json", *args, src, target.url, env=target.env,
                      check=check)
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def verify(target: Target, *args: str, check: int | None = None) -> dict[str, Any]:
    proc = run_baycat("verify", "--json", *args, target.url, env=target.env, check=check)
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_repair_puts_back_deleted_and_overwritten_objects(target: Target,
                                                          tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"alpha", "b.txt": b"bravo content", "dup1.txt": b"shared",
                    "dup2.txt": b"shared", "c.txt": b"charlie", "empty.txt": b"",
                    "ok.txt": b"left alone"})
    target.sync(src)
    # Behind baycat's back:
    target.delete_raw("a.txt")  # gone; the file is unchanged: upload it again
    target.put_raw("b.txt", b"BRAVO CONTENT")  # overwritten, same size
    target.delete_raw("dup1.txt")  # gone, and the file changed since: copy dup2's object
    (src / "dup1.txt").write_bytes(b"edited after the sync")
    target.delete_raw("c.txt")  # gone, the file changed, no other copy: unrepairable
    (src / "c.txt").write_bytes(b"CHARLIE")
    target.delete_raw("empty.txt")  # an empty file's content is known anyway
    found = verify(target, check=1)
    assert found["counts"] == {"missing": 4, "corrupt": 1}, found["problems"]
    # `sync` says "unchanged" for the unchanged files and can't fix them.

    before = target.objects()
    dry = repair(target, src, "--dry-run", check=1)
    assert len(dry["repaired"]) == 4 and target.objects() == before

    done = repair(target, src, check=1)
    how = {r["path"]: (r["how"], r["problem"]) for r in done["repaired"]}
    assert how == {"a.txt": ("uploaded", "missing"), "b.txt": ("uploaded", "corrupt"),
                   "dup1.txt": ("copied", "missing"), "empty.txt": ("uploaded", "missing")}
    assert [p["path"] for p in done["unrepairable"]] == ["c.txt"]
    assert "no longer has the manifest's content" in done["unrepairable"][0]["message"]
    assert done["committed"] and done["damaged"] == 5 and done["exit_code"] == 1
    objects = target.objects()
    assert objects["a.txt"] == b"alpha" and objects["b.txt"] == b"bravo content"
    assert objects["dup1.txt"] == b"shared" and objects["empty.txt"] == b""
    assert "c.txt" not in objects
    after = verify(target, "--deep", check=1)
    assert [(p["kind"], p["path"]) for p in after["problems"]] == [("missing", "c.txt")]

    # Given the content back, the last one is repaired too; then all is clean.
    (src / "c.txt").write_bytes(b"charlie")
    last = repair(target, src, "--deep")
    assert [r["path"] for r in last["repaired"]] == ["c.txt"] and last["exit_code"] == 0
    assert verify(target, "--deep", check=0)["problems"] == []
    # The backup restores as it was synced (dup1's content then, not its edit).
    out = tmp_path / "out"
    target.restore(out)
    expected = read_tree(src)
    expected[b"dup1.txt"] = ("f", b"shared")
    assert read_tree(out) == expected


def test_repair_of_a_sound_backup_changes_nothing(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"alpha"})
    target.sync(src)
    done = repair(target, src)
    assert done["repaired"] == [] and done["committed"] is False and done["exit_code"] == 0
    assert target.sync(src)["committed"] is False
