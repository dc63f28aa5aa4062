"""`baycat verify`: a backup against its manifest (cheap: one LIST; deep: re-hash), and a
tree against its local manifest (`--local`), on a local directory and on SeaweedFS."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from baycat.entry import FILE, Entry
from baycat.ops.verify import check_listed, compare
from baycat.scan.pipeline import ScanItem
from baycat.store.base import ObjectInfo
from tests.cli_helpers import run_baycat
from tests.targets import Target
from tests.trees import make_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_tree(root, {f"d{d}": {f"f{f}.txt": f"file {d}/{f}\n".encode() * (f + 1)
                               for f in range(10)} for d in range(3)})
    make_tree(root, {"new\nline": b"escaped key", "empty": {}})
    return root


def verify(target: Target, *args: str, check: int | None = 0) -> dict[str, Any]:
    if target.proxy is not None:
        target.proxy.reset()
    proc = run_baycat("verify", "--json", *args, target.url, env=target.env, check=check)
    doc: dict[str, Any] = json.loads(proc.stdout)
    if target.proxy is not None:
        assert dict(target.proxy.counts()) == doc["requests"]
    return doc


def kinds(doc: dict[str, Any]) -> dict[str, str]:
    return {p["path"]: p["kind"] for p in doc["problems"]}


def test_a_clean_backup_verifies_with_one_listing(target: Target, tree: Path) -> None:
    target.sync(tree)
    doc = verify(target)
    assert doc["exit_code"] == 0 and doc["problems"] == []
    assert doc["files"] == doc["ok"] == 31
    assert doc["deep_files"] == 0
    assert doc["requests"]["LIST"] == 1
    deep = verify(target, "--deep")
    assert deep["deep_files"] == 31 and deep["deep_bytes"] == deep["bytes"]


def test_missing_corrupt_and_unknown_objects_are_reported(target: Target, tree: Path) -> None:
    target.sync(tree)
    target.delete_raw("d0/f1.txt")
    target.put_raw("d1/f2.txt", b"tampered")  # another size and ETag
    target.put_raw("stray/object", b"nobody's")
    doc = verify(target, check=1)
    assert kinds(doc) == {"d0/f1.txt": "missing", "d1/f2.txt": "corrupt",
                          "stray/object": "unknown"}
    assert doc["counts"] == {"missing": 1, "corrupt": 1, "unknown": 1}
    assert doc["ok"] == 29


def test_same_size_tampering_is_seen_by_the_etag(target: Target, tree: Path) -> None:
    target.sync(tree)
    original = (tree / "d2" / "f3.txt").read_bytes()
    target.put_raw("d2/f3.txt", bytes([original[0] ^ 1]) + original[1:])
    cheap = verify(target, check=1)
    assert kinds(cheap) == {"d2/f3.txt": "corrupt"}
    assert "ETag" in cheap["problems"][0]["message"]
    sampled = verify(target, "--sample", "100", check=1)
    assert sampled["deep_files"] == 30  # the corrupt one failed the cheap check already


def _flip_a_byte_on_disk(target: Target, marker: bytes) -> None:
    """Bit rot behind the store's back: the object's bytes change where they are stored,
    its recorded size and ETag don't."""
    if target.root is not None:
        places = [p for p in target.root.rglob("*") if p.is_file()]
    else:
        assert target.seaweed is not None and target.seaweed.log_path is not None
        places = [p for p in (target.seaweed.log_path.parent / "weed").rglob("*.dat")]
    for place in places:
        data = bytearray(place.read_bytes())
        at = data.find(marker)
        if at >= 0:
            data[at + len(marker) // 2] ^= 0x55
            place.write_bytes(bytes(data))
            return
    raise AssertionError("the object's bytes were not found on disk")


def test_deep_verify_catches_corruption_behind_baycats_back(target: Target, tree: Path
                                                            ) -> None:
    payload = os.urandom(200_000)
    (tree / "rotting.bin").write_bytes(payload)
    target.sync(tree)
    _flip_a_byte_on_disk(target, payload[100_000:100_064])
    cheap = verify(target, check=None)
    if target.kind == "s3":
        assert cheap["exit_code"] == 0  # the listing still shows the stored ETag
    else:
        assert kinds(cheap) == {"rotting.bin": "corrupt"}  # a directory's "ETag" is re-read
    # SeaweedFS notices the flipped byte itself (its needle CRC) and answers 500, after
    # retrying internally for a while: one attempt is enough to see it.
    deep = verify(target, "--deep", "--retries", "1", check=1)
    assert set(kinds(deep)) == {"rotting.bin"}
    assert kinds(deep)["rotting.bin"] in ("corrupt", "unreadable")
    assert deep["files"] == 32 and deep["ok"] == 31


def test_sample_checks_a_share_deeply(target: Target, tree: Path) -> None:
    target.sync(tree)
    doc = verify(target, "--sample", "50")
    assert 0 < doc["deep_files"] < 31 or doc["deep_files"] in (0, 31)  # random, usually
    assert doc["ok"] == 31


def test_verify_errors_and_usage(tmp_path: Path) -> None:
    proc = run_baycat("verify", "--json", tmp_path / "nothing", check=3)
    assert json.loads(proc.stdout)["exit_code"] == 3
    run_baycat("verify", check=2)
    run_baycat("verify", "--local", tmp_path, str(tmp_path), check=2)


def test_verify_local_reports_what_changed_since_the_last_sync(tree: Path,
                                                                tmp_path: Path) -> None:
    run_baycat("sync", tree, tmp_path / "backup")
    manifest = tree / ".baycat" / "manifest"
    before = manifest.read_bytes()
    clean = json.loads(run_baycat("verify", "--json", "--local", tree).stdout)
    assert clean["exit_code"] == 0 and clean["ok"] == clean["files"]
    (tree / "d0" / "f1.txt").write_bytes(b"changed")
    (tree / "d0" / "new.txt").write_bytes(b"new")
    (tree / "d1" / "f1.txt").unlink()
    os.chmod(tree / "d2" / "f2.txt", 0o600)
    doc = json.loads(run_baycat("verify", "--json", "--local", tree, check=1).stdout)
    assert kinds(doc) == {"d0/f1.txt": "changed", "d0/new.txt": "new",
                          "d1/f1.txt": "deleted", "d2/f2.txt": "metadata",
                          "d0": "metadata", "d1": "metadata"}  # directory mtimes
    assert manifest.read_bytes() == before  # nothing written
    run_baycat("verify", "--local", tmp_path / "nope", check=2)


def entry(path: bytes = b"a", size: int = 3, etag: str = '"abc"') -> Entry:
    return Entry(path, FILE, size, 0, 0, 0, 0, 0o100644, 0, 0, b"", b"h" * 16, etag, "",
                 "", 0, 0)


@pytest.mark.parametrize(("listed", "expected"), [
    (None, "missing"),
    (ObjectInfo("a", 4, '"abc"'), "corrupt"),
    (ObjectInfo("a", 3, '"abd"'), "corrupt"),
    (ObjectInfo("a", 3, "abc"), None),  # some servers list ETags without quotes
    (ObjectInfo("a", 3, '"0123-2"'), None),  # multipart vs plain: not comparable
])
def test_check_listed(listed: ObjectInfo | None, expected: str | None) -> None:
    problem = check_listed(entry(), listed)
    assert (problem.kind if problem else None) == expected


def test_compare() -> None:
    old = entry()
    assert compare(ScanItem(b"a", old, old)) is None
    assert compare(ScanItem(b"a", None, old)) == "deleted"
    assert compare(ScanItem(b"a", old, None)) == "new"
    assert compare(ScanItem(b"a", old._replace(xxh=b"x" * 16), old)) == "changed"
    assert compare(ScanItem(b"a", old._replace(mode=0o100600), old)) == "metadata"
    assert compare(ScanItem(b"a", old._replace(ctime_ns=5, ino=9), old)) is None
    assert compare(ScanItem(b"a", old, old, "unreadable: EACCES")) == "unreadable"
