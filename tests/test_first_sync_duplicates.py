"""Identical files in one run are uploaded once and copied server-side (issue 18).

A first sync has no object to copy from, so before this every duplicate was uploaded
again (a Linux kernel tree holds ~400). Now the first file of a content is uploaded and
the others are copied from the object it made, in the same run."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import baycat
from baycat import hooks
from baycat.entry import FILE, Entry
from baycat.ops.in_run_copies import InRunCopies, Made
from baycat.store.base import Stored
from tests.cli_helpers import run_baycat
from tests.targets import Target, counts
from tests.trees import make_tree, read_tree


def test_duplicates_in_a_first_sync_are_copied_not_uploaded(target: Target,
                                                            tmp_path: Path) -> None:
    a, b = os.urandom(20_000), os.urandom(7_000)
    src = tmp_path / "src"
    make_tree(src, {"a1": a, "d": {"a2": a, "e": {"a3": a}}, "b1": b, "b2": b,
                    "c": os.urandom(100), "empty1": b"", "empty2": b""})
    summary = target.sync(src, "--transfers", "4")
    assert summary["exit_code"] == 0
    # a, b and c uploaded once each (and the two empty files: nothing to copy).
    assert summary["uploaded"]["files"] == 5, summary
    assert summary["copied"] == {"files": 3, "bytes": 2 * 20_000 + 7_000}, summary
    assert summary["uploaded"]["bytes"] == 20_000 + 7_000 + 100
    if target.kind == "s3":
        assert counts(summary)["COPY"] == 3
    out = tmp_path / "out"
    target.restore(out)
    assert read_tree(out) == read_tree(src)
    run_baycat("verify", "--deep", target.url, env=target.env)
    assert target.objects()["d/e/a3"] == a


def test_a_dry_run_counts_the_duplicates_as_copies(target: Target, tmp_path: Path) -> None:
    a = os.urandom(5_000)
    src = tmp_path / "src"
    make_tree(src, {"x": a, "y": a})
    summary = target.sync(src, "--dry-run")
    assert summary["uploaded"]["files"] == 1 and summary["copied"]["files"] == 1, summary
    assert target.objects() == {}


def test_a_duplicate_is_not_copied_from_a_file_that_changed_while_uploaded(
        tmp_path: Path) -> None:
    """The first file of a content changes between the scan and its upload: its object
    no longer holds the duplicates' content, so they are uploaded themselves."""
    a = os.urandom(4_000)
    src, backup = tmp_path / "src", tmp_path / "backup"
    make_tree(src, {"x": a, "y": a})
    replaced = os.urandom(4_000)

    def rewrite(path: bytes) -> None:
        if path == b"x" and (src / "x").read_bytes() == a:
            (src / "x").write_bytes(replaced)

    with hooks.registered("upload.before_read", rewrite):
        summary = baycat.sync_blocking(src, str(backup))
    assert summary.copied.files == 0 and summary.uploaded.files == 2
    out = tmp_path / "out"
    baycat.restore_blocking(str(backup), out)
    assert (out / "x").read_bytes() == replaced and (out / "y").read_bytes() == a


def _file(path: bytes, content: bytes) -> Entry:
    return Entry(path, FILE, 1000, 0, 0, 0, 0, 0o100644, 0, 0, b"", content, "", "", "", 0, 0)


def test_the_remembered_contents_are_bounded_and_uploads_in_flight_kept() -> None:
    """With room for two contents, the oldest settled one is forgotten (its duplicate is
    uploaded again), while one whose upload is still in flight is never forgotten: its
    duplicate still gets the object it makes."""

    async def scenario() -> tuple[bool, bool, Made | None]:
        copies = InRunCopies(multipart_threshold=1 << 20, capacity=2)
        slow = _file(b"slow", b"S" * 16)
        copies.claim(slow)  # in flight throughout
        for i in range(4):  # four more contents, each uploaded and settled in turn
            first = _file(b"f%d" % i, bytes([i]) * 16)
            copies.claim(first)
            copies.uploaded(first, first, f"f{i}", Stored('"etag"'))
            copies.settle(first)
        forgotten = copies.is_duplicate(_file(b"dup0", bytes([0]) * 16))
        latest = copies.is_duplicate(_file(b"dup3", bytes([3]) * 16))
        waiter = asyncio.create_task(copies.source_for(_file(b"dup-slow", b"S" * 16)))
        await asyncio.sleep(0)
        copies.uploaded(slow, slow, "slow", Stored('"slowetag"'))
        copies.settle(slow)
        return forgotten, latest, await waiter

    forgotten, latest, made = asyncio.run(scenario())
    assert not forgotten  # uploaded again: one more PUT, never a wrong object
    assert latest
    assert made == ("slow", Stored('"slowetag"'))
