"""S3 Object Lock: --object-lock-days puts a retention on every object baycat writes
(data, packs, roots), and gc/forget/prune report locked versions instead of deleting
them. Against a SeaweedFS bucket created with ObjectLockEnabledForBucket=True."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import run_baycat
from tests.support.counting_proxy import CountingProxy
from tests.support.seaweed import SeaweedServer
from tests.targets import Target, make_target
from tests.test_point_in_time import files_of
from tests.trees import make_tree


@pytest.fixture
def locked(seaweed: SeaweedServer, counting_proxy: CountingProxy, tmp_path: Path) -> Target:
    target = make_target("s3", tmp_path, seaweed, counting_proxy)
    target.bucket += "-lock"
    seaweed.client().create_bucket(Bucket=target.bucket, ObjectLockEnabledForBucket=True)
    target.url = f"s3://{target.bucket}/{target.prefix}"
    return target


def retention(target: Target, key: str) -> tuple[str, float]:
    assert target.seaweed is not None
    got = target.seaweed.client().get_object_retention(Bucket=target.bucket,
                                                       Key=target.prefix + key)
    until: datetime = got["Retention"]["RetainUntilDate"]
    return got["Retention"]["Mode"], (until - datetime.now(UTC)).total_seconds() / 86400


def cli(target: Target, *args: str, check: int = 0) -> dict[str, Any]:
    proc = run_baycat(*args[:1], "--json", *args[1:], target.url, env=target.env,
                      check=check)
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_every_object_written_is_locked_and_nothing_locked_is_deleted(
        locked: Target, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree, {"a.txt": b"first", "b.txt": b"same all along"})
    first = locked.sync(tree, "--object-lock-days", "2")
    assert first["bucket_versioning"] == "Enabled"
    objects = locked.objects(include_state=True)
    packs = [k for k in objects if k.startswith(".baycat/packs/")]
    for key in ("a.txt", "b.txt", ".baycat/root", *packs):
        mode, days = retention(locked, key)
        assert mode == "GOVERNANCE" and 1.9 < days <= 2.0, (key, mode, days)
    (tree / "a.txt").write_bytes(b"second")
    locked.sync(tree, "--object-lock-days", "2", "--object-lock-mode", "compliance")
    assert retention(locked, "a.txt")[0] == "COMPLIANCE"

    # The first generation goes; what only it needed is locked: reported, not deleted.
    done = cli(locked, "forget", "--keep-last", "1", "--prune", "--grace", "0")
    pruned = done["prune"]
    assert done["exit_code"] == 0 and pruned["failed"] == [] and pruned["gc"]["failed"] == []
    locked_keys = {item["key"] for item in pruned["locked"]}
    assert {"a.txt", ".baycat/root"} <= locked_keys, pruned["locked"]
    assert pruned["deleted_versions"] == 0 and pruned["gc"]["deleted_packs"] == 0
    assert pruned["gc"]["locked_packs"] == 1
    assert locked.seaweed is not None
    client = locked.seaweed.client()
    listed = client.list_object_versions(Bucket=locked.bucket, Prefix=locked.prefix + "a.txt")
    assert len(listed["Versions"]) == 2 and not listed.get("DeleteMarkers")
    # The lock is real: deleting that version is refused.
    old = next(v for v in listed["Versions"] if not v["IsLatest"])
    with pytest.raises(Exception, match=r"AccessDenied|locked|retention"):
        client.delete_object(Bucket=locked.bucket, Key=locked.prefix + "a.txt",
                             VersionId=old["VersionId"])
    gc = cli(locked, "gc", "--grace", "0")
    assert gc["deleted_packs"] == 0 and gc["locked_packs"] == 1 and gc["exit_code"] == 0
    # The forgotten generation's versions are all still there; the kept one restores.
    assert locked.restore(tmp_path / "out")["exit_code"] == 0
    assert files_of(tmp_path / "out") == {"a.txt": b"second", "b.txt": b"same all along"}


def test_object_lock_needs_an_s3_destination(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"a": b"a"})
    proc = run_baycat("sync", "--object-lock-days", "3", tmp_path / "src", tmp_path / "b",
                      check=2)
    assert b"needs an S3 destination" in proc.stderr
    proc = run_baycat("sync", "--object-lock-days", "3", "--object-lock-mode", "strict",
                      tmp_path / "src", tmp_path / "b", check=2)
    assert b"governance or compliance" in proc.stderr
