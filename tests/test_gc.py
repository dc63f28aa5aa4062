"""`baycat gc`: manifest packs no kept generation needs are deleted; everything a kept
generation needs stays (proved by restoring each one), young and foreign keys stay."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from baycat.errors import UsageError
from baycat.ops.gc import pack_time_ns, parse_duration
from tests.cli_helpers import run_baycat
from tests.targets import Target
from tests.test_point_in_time import files_of, history
from tests.trees import make_tree

PACKS = ".baycat/packs/"


def gc(target: Target, *args: str, check: int = 0) -> dict[str, Any]:
    if target.proxy is not None:
        target.proxy.reset()
    proc = run_baycat("gc", "--json", *args, target.url, env=target.env, check=check)
    summary: dict[str, Any] = json.loads(proc.stdout)
    if target.proxy is not None:
        assert dict(target.proxy.counts()) == summary["requests"], summary
    return summary


def packs(target: Target) -> set[str]:
    return {k for k in target.objects(include_state=True) if k.startswith(PACKS)}


def five_generations(target: Target, tree: Path) -> list[dict[str, bytes]]:
    """Five commits, each adding one file; the backup keeps the last two."""
    states: list[dict[str, bytes]] = []
    for n in range(5):
        make_tree(tree, {f"f{n}.txt": f"file {n}".encode()})
        target.sync(tree, "--keep-generations", "2")
        states.append(files_of(tree))
        time.sleep(1.1)  # a second apart: `restore --at` to the second picks each
    return states


def test_gc_deletes_what_no_kept_generation_needs(target: Target, tmp_path: Path) -> None:
    tree = tmp_path / "data"
    states = five_generations(target, tree)
    before = packs(target)
    assert len(before) == 5  # one pack per commit

    # The default grace period (24 h) protects packs this young.
    young = gc(target)
    assert young["deleted_packs"] == 0 and young["recent_packs"] == 3
    assert packs(target) == before

    dry = gc(target, "--grace", "0", "--dry-run")
    assert dry["deleted_packs"] == 3 and dry["dry_run"] and packs(target) == before

    done = gc(target, "--grace", "0")
    after = packs(target)
    # A one-segment tree: each kept generation needs just its own pack.
    assert done["deleted_packs"] == 3 and done["live_packs"] == 2 and len(after) == 2
    assert after < before
    assert done["deleted_bytes"] > 0 and done["exit_code"] == 0
    if target.kind == "s3":
        # GET root, one ranged GET per kept generation, one LIST of packs and one of
        # multipart uploads, one batch delete.
        assert done["requests"] == {"GET": 3, "LIST": 2, "POST": 1}

    # Both kept generations restore exactly, from a fresh cache.
    gens = history(target)
    assert len(gens) == 2
    for index, gen in enumerate(gens):
        out = tmp_path / f"at{index}"
        summary = target.restore(out, "--at", gen["time"])
        assert summary["exit_code"] == 0, summary
        assert files_of(out) == states[-1 - index]
    # Later syncs carry on, and a second collection finds nothing.
    make_tree(tree, {"f5.txt": b"file 5"})
    assert target.sync(tree, "--keep-generations", "2")["uploaded"]["files"] == 1
    again = gc(target, "--grace", "0")
    assert again["deleted_packs"] == 1 and again["live_packs"] == 2  # f4's gen let go
    latest = target.restore(tmp_path / "latest")
    assert latest["exit_code"] == 0 and files_of(tmp_path / "latest") == files_of(tree)


def test_gc_keeps_young_and_foreign_keys(target: Target, tmp_path: Path) -> None:
    tree = tmp_path / "data"
    make_tree(tree, {"a.txt": b"a"})
    target.sync(tree)
    live = packs(target)
    in_flight = f"{PACKS}{time.time_ns()}-0123456789abcdef"  # a commit not yet made
    ancient = f"{PACKS}1000-0123456789abcdef"
    foreign = f"{PACKS}notes.txt"
    for key in (in_flight, ancient, foreign):
        target.put_raw(key, b"not ours to judge")
    summary = gc(target, "--grace", "1h")
    assert summary["deleted_packs"] == 1 and summary["recent_packs"] == 1
    assert summary["foreign_keys"] == [foreign]
    assert packs(target) == live | {in_flight, foreign}
    assert target.restore(tmp_path / "out")["exit_code"] == 0


def test_gc_without_a_backup_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = run_baycat("gc", tmp_path / "empty", check=3)
    assert b"no baycat backup" in proc.stderr
    proc = run_baycat("gc", "--grace", "soon", tmp_path / "empty", check=2)
    assert b"not a duration" in proc.stderr


def test_durations_and_pack_names() -> None:
    assert parse_duration("90") == 90 and parse_duration("30m") == 1800
    assert parse_duration("2d") == 172800 and parse_duration("0") == 0
    for bad in ("", "-1h", "h", "nan", "1w"):
        with pytest.raises(UsageError):
            parse_duration(bad)
    assert pack_time_ns("1764000000000000000-abcdef") == 1764000000000000000
    assert pack_time_ns("notes.txt") is None and pack_time_ns("123-") is None


def test_gc_aborts_old_multipart_uploads_and_removes_old_temp_files(
        target: Target, tmp_path: Path) -> None:
    tree = tmp_path / "data"
    make_tree(tree, {"a.txt": b"a"})
    target.sync(tree)
    if target.seaweed is not None:
        client = target.seaweed.client()
        for name in ("old", "young"):
            client.create_multipart_upload(Bucket=target.bucket,
                                           Key=f"{target.prefix}big-{name}.bin")
        others = client.create_multipart_upload(Bucket=target.bucket, Key="elsewhere/x")

        def uploads() -> set[str]:
            listed = client.list_multipart_uploads(Bucket=target.bucket)
            return {u["Key"] for u in listed.get("Uploads", [])}
    else:
        assert target.root is not None
        old = target.root / "dir" / ".big.bin.baycat-tmp-0123abcd"
        old.parent.mkdir()
        old.write_bytes(b"x" * 100)
        os.utime(old, (1000, 1000))  # a write killed long ago
        young = target.root / ".b.txt.baycat-tmp-4567cdef"
        young.write_bytes(b"y")
        parts = target.root / ".baycat" / "multipart"
        for name in ("0123456789abcdef", "fedcba9876543210"):
            (parts / name).mkdir(parents=True)
            (parts / name / "1").write_bytes(b"part")
        os.utime(parts / "0123456789abcdef", (1000, 1000))

        def uploads() -> set[str]:
            return set(os.listdir(parts))
    if target.seaweed is not None:
        # All of them began just now: a grace period of an hour keeps them.
        kept = gc(target, "--grace", "1h")
        # (S3 uploads can't be backdated: old and young side by side are tested on
        # the local directory.)
        assert kept["aborted_uploads"] == 0 and kept["recent_uploads"] == 2
        dry = gc(target, "--grace", "0", "--dry-run")
        assert dry["aborted_uploads"] == 2 and len(uploads()) == 3
        done = gc(target, "--grace", "0")
        assert done["aborted_uploads"] == 2 and done["recent_uploads"] == 0
        # Only under the prefix: another prefix's upload is not ours to abort.
        assert uploads() == {"elsewhere/x"}
        client.abort_multipart_upload(Bucket=target.bucket, Key="elsewhere/x",
                                      UploadId=others["UploadId"])
    else:
        dry = gc(target, "--grace", "1h", "--dry-run")
        assert dry["aborted_uploads"] == 1 and dry["removed_temp_files"] == 1
        assert old.exists() and len(uploads()) == 2
        kept = gc(target, "--grace", "1h")
        assert kept["aborted_uploads"] == 1 and kept["recent_uploads"] == 1
        assert kept["removed_temp_files"] == 1
        assert kept["removed_temp_bytes"] == 100 and not old.exists() and young.exists()
        assert uploads() == {"fedcba9876543210"}
    assert target.restore(tmp_path / "out")["exit_code"] == 0
