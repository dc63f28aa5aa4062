"""Point in time: `baycat history`, `restore --at`, `--keep-generations`, on a versioned
SeaweedFS bucket (every past version restorable), an unversioned one and a local
directory (what was overwritten since is reported, the rest restored)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from baycat.errors import UsageError
from baycat.manifest.generations import format_time, parse_time, pick
from baycat.manifest.root import Generation
from tests.cli_helpers import run_baycat
from tests.remote_check import manifest_entries
from tests.support.counting_proxy import CountingProxy
from tests.support.seaweed import SeaweedServer
from tests.targets import Target, make_target
from tests.trees import make_tree, read_tree


def history(target: Target) -> list[dict[str, Any]]:
    proc = run_baycat("history", "--json", target.url, env=target.env)
    return list(json.loads(proc.stdout)["generations"])


def three_generations(target: Target, tree: Path) -> list[dict[str, bytes]]:
    """Sync three states of a tree; returns each state (path -> content)."""
    states = [{"keep.txt": b"kept all along", "edit.txt": b"version one",
               "gone.txt": b"deleted later"},
              {"keep.txt": b"kept all along", "edit.txt": b"version two, longer",
               "gone.txt": b"deleted later", "added.txt": b"added in two"},
              {"keep.txt": b"kept all along", "edit.txt": b"version three",
               "added.txt": b"added in two"}]
    tree.mkdir(exist_ok=True)
    for state in states:
        for path in tree.iterdir():
            if path.is_file():
                path.unlink()
        make_tree(tree, state)  # type: ignore[arg-type]
        target.sync(tree, "--delete")
        time.sleep(1.1)  # generations a second apart: --at to the second picks each
    return [{k: v for k, v in s.items()} for s in states]


def files_of(root: Path) -> dict[str, bytes]:
    return {p.decode(): c for p, (k, c) in read_tree(root).items() if k == "f"}


@pytest.fixture
def versioned(seaweed: SeaweedServer, counting_proxy: CountingProxy, tmp_path: Path
              ) -> Target:
    target = make_target("s3", tmp_path, seaweed, counting_proxy)
    target.seaweed.client().put_bucket_versioning(  # type: ignore[union-attr]
        Bucket=target.bucket, VersioningConfiguration={"Status": "Enabled"})
    return target


def test_versioned_bucket_restores_every_generation_exactly(versioned: Target,
                                                            tmp_path: Path) -> None:
    tree = tmp_path / "data"
    states = three_generations(versioned, tree)
    entries = manifest_entries(versioned.seaweed, versioned.bucket,  # type: ignore[arg-type]
                               versioned.prefix)
    assert all(e.version_id for e in entries if e.kind == "f")  # VersionIds recorded
    gens = history(versioned)
    assert [g["files"] for g in gens] == [3, 4, 3]  # newest first
    assert gens[0]["time_ns"] > gens[1]["time_ns"] > gens[2]["time_ns"]
    for index, state in enumerate(states):
        out = tmp_path / f"at{index}"
        summary = versioned.restore(out, "--at", gens[2 - index]["time"])
        assert summary["exit_code"] == 0, summary
        assert files_of(out) == state
        assert summary["notices"][0].startswith("restoring the backup as of")
    # Before the first sync: nothing to restore.
    early = format_time(gens[-1]["time_ns"] - 10**10)
    proc = run_baycat("restore", "--at", early, versioned.url, tmp_path / "none",
                      env=versioned.env, check=2)
    assert b"no backup generation" in proc.stderr


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_without_versioning_at_restores_what_still_exists_and_reports_the_rest(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if kind == "s3":
        target = make_target("s3", tmp_path, request.getfixturevalue("seaweed"),
                             request.getfixturevalue("counting_proxy"))
    else:
        target = make_target("local", tmp_path, None, None)
    tree = tmp_path / "data"
    three_generations(target, tree)
    gens = history(target)
    out = tmp_path / "at0"
    summary = target.restore(out, "--at", gens[2]["time"], check=1)
    # edit.txt was overwritten twice, gone.txt deleted (--delete): both reported.
    assert {e["path"]: e["message"].split(" since")[0] for e in summary["errors"]} == {
        "edit.txt": "overwritten", "gone.txt": "removed from the store"}
    assert files_of(out) == {"keep.txt": b"kept all along"}
    assert any("2 files were overwritten or removed" in n for n in summary["notices"])
    assert summary["downloaded"]["files"] == 1  # nothing fetched just to fail its hash
    if kind == "s3":
        assert summary["server_requests"].get("LIST") == 1


def test_keep_generations_bounds_the_history(tmp_path: Path) -> None:
    target = make_target("local", tmp_path, None, None)
    tree = tmp_path / "data"
    for n in range(4):
        make_tree(tree, {f"f{n}": b"x" * n})
        target.sync(tree, "--keep-generations", "2")
    gens = history(target)
    assert [g["files"] for g in gens] == [4, 3]
    text = run_baycat("history", target.url).stdout.decode()
    assert text.count("\n") == 3 and format_time(gens[0]["time_ns"]) in text


def test_pick_and_parse_time() -> None:
    gens = (Generation(3 * 10**9, "c", 0, 1, 0, 0), Generation(10**9, "a", 0, 1, 0, 0))
    assert pick(gens, 2 * 10**9).pack == "a"
    assert pick(gens, 10**12).pack == "c"
    with pytest.raises(UsageError, match="oldest kept"):
        pick(gens, 0)
    assert parse_time("1970-01-01T00:00:03Z") == 4 * 10**9 - 1  # the whole second
    assert parse_time(format_time(3 * 10**9)) >= 3 * 10**9
    assert parse_time("1970-01-01T00:00:03.5+00:00") == 3_599_999_999
    with pytest.raises(UsageError):
        parse_time("last tuesday")
