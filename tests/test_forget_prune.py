"""Retention that frees space: `forget` (restic's policies) and `prune`. The proof: after
forget + prune, `restore --at` of every kept generation is exact, nothing a kept
generation needs is gone, and what only forgotten generations needed is."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from baycat import api, hooks
from baycat.errors import UsageError
from baycat.manifest.root import Generation
from baycat.ops.forget import KeepPolicy, apply_policy, within_cutoff
from baycat.ops.verify import VerifyOptions
from tests.cli_helpers import run_baycat
from tests.support.counting_proxy import CountingProxy
from tests.support.seaweed import SeaweedServer
from tests.targets import Target, make_target
from tests.test_point_in_time import files_of
from tests.trees import make_tree

H = 3600 * 10**9


def gen(when: str) -> Generation:
    t = datetime.fromisoformat(when).replace(tzinfo=UTC)
    return Generation(int(t.timestamp()) * 10**9, f"{when}-p", 0, 1, 0, 0)


HISTORY = [gen(t) for t in (
    "2026-01-01T10:00", "2026-01-01T11:00", "2026-01-01T11:30", "2026-01-02T09:00",
    "2026-01-08T09:00", "2026-02-01T09:00", "2026-02-03T09:00", "2025-12-31T23:00")]


def kept(policy: KeepPolicy) -> dict[str, tuple[str, ...]]:
    return {d.generation.pack[:-2]: d.reasons for d in apply_policy(HISTORY, policy)
            if d.kept}


@pytest.mark.parametrize(("policy", "expected"), [
    (KeepPolicy(last=2), {"2026-02-03T09:00": ("current", "last"),
                          "2026-02-01T09:00": ("last",)}),
    # The newest of each of the last 3 days that have one.
    (KeepPolicy(daily=3), {"2026-02-03T09:00": ("current", "daily"),
                           "2026-02-01T09:00": ("daily",), "2026-01-08T09:00": ("daily",)}),
    # Hours: 11:30 is the newest of 11:00-11:59, 11:00 is not kept.
    (KeepPolicy(hourly=6), {"2026-02-03T09:00": ("current", "hourly"),
                            "2026-02-01T09:00": ("hourly",), "2026-01-08T09:00": ("hourly",),
                            "2026-01-02T09:00": ("hourly",), "2026-01-01T11:30": ("hourly",),
                            "2026-01-01T10:00": ("hourly",)}),
    # ISO weeks: 2026-02-01 is a Sunday (week 5), 02-03 week 6; 01-08 week 2; 12-31 is
    # in week 1 of 2026 like 01-01 and 01-02.
    (KeepPolicy(weekly=4), {"2026-02-03T09:00": ("current", "weekly"),
                            "2026-02-01T09:00": ("weekly",), "2026-01-08T09:00": ("weekly",),
                            "2026-01-02T09:00": ("weekly",)}),
    (KeepPolicy(monthly=2, yearly=2), {"2026-02-03T09:00": ("current", "monthly", "yearly"),
                                       "2026-01-08T09:00": ("monthly",),
                                       "2025-12-31T23:00": ("yearly",)}),
    (KeepPolicy(within="2d"), {"2026-02-03T09:00": ("current", "within 2d"),
                               "2026-02-01T09:00": ("within 2d",)}),
    # A month before 02-03 09:00 is 01-03 09:00; 26 days before, 01-08 09:00 (inclusive).
    (KeepPolicy(within="1m"), {"2026-02-03T09:00": ("current", "within 1m"),
                               "2026-02-01T09:00": ("within 1m",),
                               "2026-01-08T09:00": ("within 1m",)}),
    (KeepPolicy(within="26d"), {"2026-02-03T09:00": ("current", "within 26d"),
                                "2026-02-01T09:00": ("within 26d",),
                                "2026-01-08T09:00": ("within 26d",)}),
    (KeepPolicy(within="25d23h"), {"2026-02-03T09:00": ("current", "within 25d23h"),
                                   "2026-02-01T09:00": ("within 25d23h",)}),
])
def test_restic_policies(policy: KeepPolicy, expected: dict[str, tuple[str, ...]]) -> None:
    assert kept(policy) == expected


def test_within_durations() -> None:
    march_31 = int(datetime(2026, 3, 31, tzinfo=UTC).timestamp()) * 10**9
    feb_28 = int(datetime(2026, 2, 28, tzinfo=UTC).timestamp()) * 10**9
    assert within_cutoff(march_31, "1m") == feb_28  # clamped to February's last day
    assert within_cutoff(march_31, "36h") == march_31 - 36 * H
    for bad in ("", "7w", "d", "-1d"):
        with pytest.raises(UsageError):
            within_cutoff(march_31, bad)


# ---- against a real store -------------------------------------------------------------


@pytest.fixture(params=["local", "s3", "s3-versioned"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "local":
        return make_target("local", tmp_path, None, None)
    seaweed: SeaweedServer = request.getfixturevalue("seaweed")
    proxy: CountingProxy = request.getfixturevalue("counting_proxy")
    target = make_target("s3", tmp_path, seaweed, proxy)
    if request.param == "s3-versioned":
        seaweed.client().put_bucket_versioning(
            Bucket=target.bucket, VersioningConfiguration={"Status": "Enabled"})
    return target


def baycat_json(target: Target, *args: str, check: int = 0) -> dict[str, Any]:
    if target.proxy is not None:
        target.proxy.reset()
    proc = run_baycat(*args[:1], "--json", *args[1:], target.url, env=target.env,
                      check=check)
    doc: dict[str, Any] = json.loads(proc.stdout)
    if target.proxy is not None:
        assert dict(target.proxy.counts()) == doc["requests"], doc
    return doc


def at(time_ns: int) -> str:
    """A --at time that picks exactly the generation made at `time_ns`."""
    return datetime.fromtimestamp(time_ns // 10**9, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S") + f".{time_ns % 10**9 // 1000:06d}Z"


def versions(target: Target, key: str) -> list[str]:
    assert target.seaweed is not None
    listed = target.seaweed.client().list_object_versions(Bucket=target.bucket,
                                                          Prefix=target.prefix + key)
    return [v["VersionId"] for v in listed.get("Versions", [])
            if v["Key"] == target.prefix + key]


def is_versioned(target: Target) -> bool:
    if target.seaweed is None:
        return False
    status = target.seaweed.client().get_bucket_versioning(Bucket=target.bucket)
    return bool(status.get("Status") == "Enabled")


def test_forget_and_prune_keep_exactly_what_kept_generations_need(
        store: Target, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    versioned = is_versioned(store)
    states: list[dict[str, bytes]] = [
        {"keep.txt": b"kept all along", "edit.txt": b"edit one", "gone.txt": b"gone",
         "old.txt": b"old file"},
        {"keep.txt": b"kept all along", "edit.txt": b"edit two!", "gone.txt": b"gone"},
        {"keep.txt": b"kept all along", "edit.txt": b"edit three", "late.txt": b"late"},
        # late.txt is deleted now: the kept generation 3 still needs its object.
        {"keep.txt": b"kept all along", "edit.txt": b"edit three", "new.txt": b"new"}]
    if versioned:  # ...and edit.txt's third version (an unversioned bucket loses it)
        states[3]["edit.txt"] = b"edit four"
    tree.mkdir()
    for state in states:
        for path in tree.iterdir():
            if path.is_file():
                path.unlink()
        make_tree(tree, state)  # type: ignore[arg-type]
        store.sync(tree)  # deleted files are kept, marked deleted
    gens = json.loads(run_baycat("history", "--json", store.url,
                                 env=store.env).stdout)["generations"]
    assert len(gens) == 4

    dry = baycat_json(store, "forget", "--keep-last", "2", "--dry-run")
    assert [g["reasons"] for g in dry["kept"]] == [["current", "last"], ["last"]]
    assert [g["time_ns"] for g in dry["forgotten"]] == [gens[2]["time_ns"], gens[3]["time_ns"]]
    assert not dry["committed"]
    assert len(json.loads(run_baycat("history", "--json", store.url,
                                     env=store.env).stdout)["generations"]) == 4

    done = baycat_json(store, "forget", "--keep-last", "2", "--prune", "--grace", "0")
    assert done["committed"] and len(done["forgotten"]) == 2
    pruned = done["prune"]
    # old.txt was live only in generation 1, gone.txt last in generation 2: both go.
    assert pruned["entries_dropped"] == 2 and pruned["deleted_objects"] == 2
    assert pruned["freed_bytes"] > 0 and pruned["locked"] == [] and pruned["failed"] == []
    objects = store.objects()
    assert set(objects) == {"keep.txt", "edit.txt", "new.txt", "late.txt"}
    if is_versioned(store):
        # edit.txt's first two versions were needed by forgotten generations only.
        assert len(versions(store, "edit.txt")) == 2  # v3 (kept generation 3) and v4
        assert versions(store, "old.txt") == [] and versions(store, "gone.txt") == []
        assert pruned["deleted_versions"] >= 4 and pruned["versioned"]
        assert pruned["freed_objects"] == pruned["deleted_versions"]

    # Every kept generation restores exactly (from a fresh cache each).
    for index, state in ((0, states[3]), (1, states[2])):
        out = tmp_path / f"at{index}"
        summary = store.restore(out, "--at", at(gens[index]["time_ns"]))
        assert summary["exit_code"] == 0, summary
        assert files_of(out) == state
    assert run_baycat("verify", "--deep", store.url, env=store.env).returncode == 0
    # The tree carries on: a sync changes nothing, a second prune finds nothing.
    assert store.sync(tree)["committed"] is False
    again = baycat_json(store, "prune", "--grace", "0")
    assert again["entries_dropped"] == 0 and again["deleted_versions"] == 0


def test_forget_needs_a_policy_and_a_backup(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    proc = run_baycat("forget", tmp_path / "b", check=2)
    assert b"no --keep-* option given" in proc.stderr
    proc = run_baycat("forget", "--keep-within", "7w", tmp_path / "b", check=2)
    assert b"--keep-within '7w'" in proc.stderr
    proc = run_baycat("prune", tmp_path / "b", check=3)
    assert b"no baycat backup" in proc.stderr


def test_an_interrupted_prune_is_finished_by_the_next(tmp_path: Path) -> None:
    target = make_target("local", tmp_path, None, None)
    tree = tmp_path / "tree"
    make_tree(tree, {"keep.txt": b"keep", "gone.txt": b"to be deleted"})
    target.sync(tree)
    (tree / "gone.txt").unlink()
    target.sync(tree)  # gone.txt kept, marked deleted
    api.forget_blocking(target.url, KeepPolicy(last=1))

    def killed(_: bytes) -> None:
        raise KeyboardInterrupt  # stands in for kill -9: nothing after this point runs

    with hooks.registered("prune.before_commit", killed), pytest.raises(KeyboardInterrupt):
        api.prune_blocking(target.url, grace_s=0)
    assert "gone.txt" not in target.objects()  # deleted, but the commit never came
    half = api.verify_blocking(target.url)
    assert [(p.kind, p.path) for p in half.problems] == [("missing", "gone.txt")]
    again = api.prune_blocking(target.url, grace_s=0)
    assert again.entries_dropped == 1 and again.deleted_objects == 0 and again.committed
    assert api.verify_blocking(target.url, VerifyOptions(deep_percent=100)).problems == []
    out = tmp_path / "out"
    summary = target.restore(out, "--include-deleted")
    assert summary["exit_code"] == 0 and files_of(out) == {"keep.txt": b"keep"}
