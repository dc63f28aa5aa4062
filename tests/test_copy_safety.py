"""Server-side copies never record content their object doesn't hold (issue 12, item 1).

Renames and duplicates are copied from an object found by content hash. The copy must
read what the manifest says that object holds, whatever else the run writes: log
rotation (the source key is overwritten in the same run), swapped files, and an object
changed behind baycat's back. Every case ends with a restore that must be exact and a
deep verify that must be clean."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli_helpers import run_baycat
from tests.targets import Target, counts
from tests.trees import make_tree, read_tree


def _restore_is_exact(target: Target, src: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    target.restore(out)
    assert read_tree(out) == read_tree(src)
    run_baycat("verify", "--deep", target.url, env=target.env)


@pytest.mark.parametrize("transfers", ["1", "8"])
def test_log_rotation_keeps_the_rotated_content(target: Target, tmp_path: Path,
                                                 transfers: str) -> None:
    src = tmp_path / "src"
    logs = src / "logs"
    make_tree(src, {"logs": {"app.log": os.urandom(5000)}})
    target.sync(src, "--transfers", transfers)
    for night in range(3):
        if night:
            os.rename(logs / "app.log.1", logs / "app.log.2")
        os.rename(logs / "app.log", logs / "app.log.1")
        (logs / "app.log").write_bytes(os.urandom(6000 + night))
        summary = target.sync(src, "--transfers", transfers)
        assert summary["exit_code"] == 0
        _restore_is_exact(target, src, tmp_path, f"out{night}")


def test_swapped_files_both_keep_their_content(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    a, b = os.urandom(3000), os.urandom(4000)
    make_tree(src, {"a": a, "b": b, "c": os.urandom(10)})
    target.sync(src, "--transfers", "1")
    (src / "a").write_bytes(b)
    (src / "b").write_bytes(a)
    target.sync(src, "--transfers", "1")
    _restore_is_exact(target, src, tmp_path, "out")
    assert target.objects()["a"] == b and target.objects()["b"] == a


def test_a_copy_source_changed_behind_our_back_is_not_copied_and_is_repaired(
        target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    content = os.urandom(4000)
    make_tree(src, {"orig": content})
    target.sync(src)
    target.put_raw("orig", b"someone else's bytes")
    (src / "dup").write_bytes(content)  # a duplicate: would be copied from "orig"
    summary = target.sync(src)
    assert summary["copied"]["files"] == 0 and summary["uploaded"]["files"] == 1
    assert target.objects()["dup"] == content
    # The damaged entry is noticed and repaired (copied from the intact "dup" object).
    repair = target.sync(src)
    assert repair["uploaded"]["files"] + repair["copied"]["files"] == 1, repair
    assert target.objects()["orig"] == content
    _restore_is_exact(target, src, tmp_path, "out")
    again = target.sync(src)
    assert again["uploaded"]["files"] == 0 and counts(again)["PUT"] == 0
