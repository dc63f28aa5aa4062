"""The guards against ransomware at the source (ops/safety.py): versioning learnt once and
warned about on every run, --require-versioning, and --max-changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from baycat.errors import ExitCode
from tests.cli_helpers import run_baycat
from tests.support.counting_proxy import CountingProxy
from tests.support.seaweed import SeaweedServer
from tests.targets import Target, make_target, requests_total
from tests.trees import Spec, make_tree


def files(n: int) -> Spec:
    return {f"f{i:02d}.txt": b"original %d" % i for i in range(n)}


@pytest.fixture
def versioned(seaweed: SeaweedServer, counting_proxy: CountingProxy, tmp_path: Path
              ) -> Target:
    target = make_target("s3", tmp_path, seaweed, counting_proxy)
    target.seaweed.client().put_bucket_versioning(  # type: ignore[union-attr]
        Bucket=target.bucket, VersioningConfiguration={"Status": "Enabled"})
    return target


def unversioned_notes(summary: dict[str, object]) -> list[str]:
    return [n for n in summary["notices"] if "is not versioned" in n]  # type: ignore[attr-defined]


def test_an_unversioned_bucket_is_warned_about_on_every_run_for_no_extra_request(
        s3: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, files(3))
    first = s3.sync(src)
    assert first["bucket_versioning"] == ""
    assert "overwrite their only good copy" in unversioned_notes(first)[0]
    assert first["server_requests"]["LIST"] == 1  # GetBucketVersioning, once
    again = s3.sync(src)  # no change: the root's record answers, one GET → 304
    assert again["server_requests"] == {"GET": 1}, again["server_requests"]
    assert unversioned_notes(again) and again["bucket_versioning"] == ""


def test_a_versioned_bucket_is_not_warned_about(versioned: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, files(2))
    first = versioned.sync(src, "--require-versioning")
    assert first["bucket_versioning"] == "Enabled" and not unversioned_notes(first)
    again = versioned.sync(src, "--require-versioning")
    assert requests_total(again) == 1 and not any("version" in n for n in again["notices"])


def test_require_versioning_refuses_an_unversioned_bucket(s3: Target, tmp_path: Path
                                                         ) -> None:
    src = tmp_path / "src"
    make_tree(src, files(2))
    proc = run_baycat("sync", "--json", "--require-versioning", src, s3.url, env=s3.env,
                      check=int(ExitCode.REMOTE))
    doc = json.loads(proc.stdout)
    assert "--require-versioning" in doc["fatal_error"] and "not versioned" in doc["fatal_error"]
    assert s3.objects(include_state=True) == {}  # nothing written, not even a root


def test_require_versioning_refuses_a_local_directory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, files(1))
    proc = run_baycat("sync", "--require-versioning", src, tmp_path / "backup",
                      check=int(ExitCode.REMOTE))
    assert b"a local directory keeps no old versions" in proc.stderr
    # ...and a plain sync to one is not nagged: versions are not a directory's to keep.
    summary = json.loads(run_baycat("sync", "--json", src, tmp_path / "backup").stdout)
    assert summary["bucket_versioning"] == "n/a" and summary["notices"] == []


def test_max_changes_refuses_mass_modification(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, files(10))
    target.sync(src)
    before = target.objects(include_state=True)
    for i in range(4):  # "encrypted": same names, new content
        (src / f"f{i:02d}.txt").write_bytes(os.urandom(40))
    (src / "new.txt").write_bytes(b"new files don't count")
    for limit in ("3", "30%"):
        summary = target.sync(src, "--max-changes", limit, check=int(ExitCode.REFUSED))
        assert summary["exit_code"] == 5 and summary["refused_changes"] == 4
        assert summary["refused_limit"] == 3 and "refused: 4 files changed" in summary["refused"][0]
        assert summary["committed"] is False
        assert target.objects(include_state=True) == before  # nothing uploaded
    ok = target.sync(src, "--max-changes", "40%")  # 4 of 10 is not more than 40 %
    assert ok["uploaded"]["files"] == 5 and ok["committed"] is True


def test_max_changes_is_a_usage_error_when_malformed(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", files(1))
    proc = run_baycat("sync", "--max-changes", "lots", tmp_path / "src", tmp_path / "b",
                      check=int(ExitCode.USAGE))
    assert b"--max-changes 'lots'" in proc.stderr
