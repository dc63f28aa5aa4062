"""The bad night: faults on the wire, kill -9, signals, overlapping writers, bad input."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baycat.entry import FILE, Entry
from baycat.scan.lock import TreeLock
from tests.cli_helpers import run_baycat
from tests.remote_check import deep_check, manifest_entries
from tests.support.counting_proxy import CountingProxy
from tests.support.fault_proxy import FaultProxy, FaultRates
from tests.support.seaweed import SeaweedServer
from tests.targets import Target
from tests.trees import make_tree, read_tree

SOAK_RUNS = int(os.environ.get("BAYCAT_SOAK_RUNS", "4"))


def s3_env(seaweed: SeaweedServer, endpoint: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": seaweed.access_key,
            "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}


@pytest.fixture
def faults(seaweed: SeaweedServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(seaweed.endpoint_url, seed=1234)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def files_of(entries: list[Entry]) -> dict[bytes, Entry]:
    return {e.path: e for e in entries if e.kind == FILE and not e.deleted_ns}


def test_random_faults_never_lose_or_corrupt_anything(
        s3: Target, faults: FaultProxy, tmp_path: Path, seaweed: SeaweedServer) -> None:
    rng = random.Random(99)
    src = tmp_path / "data"
    make_tree(src, {f"d{d}": {f"f{f}": rng.randbytes(rng.randrange(1, 20_000))
                              for f in range(30)} for d in range(4)})
    env = s3_env(seaweed, faults.endpoint_url)
    faults.set_rates(FaultRates(slowdown=0.04, internal_error=0.04, drop_before=0.02,
                                drop_mid_request=0.02, drop_mid_response=0.02, delay=0.03,
                                delay_s=0.3))
    checked = 0
    for run in range(SOAK_RUNS):
        for _ in range(10):  # change the tree between runs
            d, f = rng.randrange(4), rng.randrange(40)
            path = src / f"d{d}" / f"f{f}"
            if path.exists() and rng.random() < 0.2:
                path.unlink()
            else:
                path.write_bytes(rng.randbytes(rng.randrange(1, 20_000)))
        proc = run_baycat("sync", "--json", "--retries", "3", src, s3.url, env=env, check=None)
        assert proc.returncode in (0, 1, 3), proc.stderr  # never a crash
        assert b"Traceback" not in proc.stderr, proc.stderr
        count, problems = deep_check(seaweed, s3.bucket, s3.prefix)
        assert problems == [], f"run {run}: {problems}"
        checked += count
    injected = sum(faults.injected().values())
    assert injected > 0
    faults.disable()
    summary = json.loads(run_baycat("sync", "--json", src, s3.url, env=env).stdout)
    assert summary["exit_code"] == 0
    live = files_of(manifest_entries(seaweed, s3.bucket, s3.prefix))
    on_disk = {p: c for p, (k, c) in read_tree(src).items() if k == "f"}
    assert set(live) == set(on_disk)
    count, problems = deep_check(seaweed, s3.bucket, s3.prefix)
    assert problems == [] and count == len(on_disk)
    print(f"fault run: {SOAK_RUNS} runs, {injected} faults injected "
          f"({dict(faults.injected())}), {checked + count} files checked, 0 lost")


def test_kill_9_then_resync_reuploads_only_what_was_not_recorded(
        s3: Target, seaweed: SeaweedServer, counting_proxy: CountingProxy,
        tmp_path: Path) -> None:
    rng = random.Random(7)
    src = tmp_path / "data"
    make_tree(src, {f"d{d}": {f"f{f:03d}": rng.randbytes(64 << 10) for f in range(60)}
                    for d in range(5)})  # 300 files, ~19 MiB
    env = s3_env(seaweed, counting_proxy.endpoint_url)
    for delay in (0.6, 1.0, 1.6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "baycat", "sync", "--checkpoint-interval", "0.2",
             "--transfers", "4", src, s3.url], env={**os.environ, **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        recorded = files_of(manifest_entries(seaweed, s3.bucket, s3.prefix))
        _, problems = deep_check(seaweed, s3.bucket, s3.prefix)
        assert problems == []
        if len(recorded) == 300:
            break
    summary = s3.sync(src)
    # Exactly the files the last checkpoint did not record go up again.
    assert summary["uploaded"]["files"] == 300 - len(recorded)
    assert set(files_of(manifest_entries(seaweed, s3.bucket, s3.prefix))) == {
        f"d{d}/f{f:03d}".encode() for d in range(5) for f in range(60)}
    print(f"kill -9: recorded before resync {len(recorded)}/300, "
          f"re-uploaded {summary['uploaded']['files']}")


def test_sigint_commits_what_completed_and_exits_130(
        s3: Target, seaweed: SeaweedServer, tmp_path: Path) -> None:
    src = tmp_path / "data"
    make_tree(src, {f"f{i:03d}": os.urandom(4096) for i in range(200)})
    slow = FaultProxy(seaweed.endpoint_url, seed=5,
                      rates=FaultRates(delay=1.0, delay_s=0.05), only_methods=["PUT"])
    slow.start()
    try:
        env = s3_env(seaweed, slow.endpoint_url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "baycat", "sync", "--json", "--transfers", "4",
             src, s3.url], env={**os.environ, **env}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        # Signal once some uploads went through (start-up time varies with load).
        deadline = time.monotonic() + 30
        while len(slow.history()) < 20:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        slow.stop()
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] is True and summary["committed"] is True
    recorded = files_of(manifest_entries(seaweed, s3.bucket, s3.prefix))
    assert 0 < len(recorded) < 200
    assert len(recorded) == summary["uploaded"]["files"]
    _, problems = deep_check(seaweed, s3.bucket, s3.prefix)
    assert problems == []
    rest = s3.sync(src)
    assert rest["uploaded"]["files"] == 200 - len(recorded)


def test_two_trees_syncing_to_one_backup_keep_both(tmp_path: Path) -> None:
    """Real concurrent writers on a store whose conditional write is atomic (a local
    directory: flock + compare + rename). On SeaweedFS 4.48 two racing If-Match PUTs can
    both succeed, so there the guarantee needs --verify-commit and is still only
    best-effort; the conditional-commit merge itself is tested deterministically against
    SeaweedFS below."""
    backup = tmp_path / "backup"
    backup.mkdir()  # the rounds' backups go below it (a missing parent is refused)
    for round_ in range(4):
        trees = []
        for name in ("a", "b"):
            root = tmp_path / f"{name}{round_}"
            make_tree(root, {f"{name}{round_}": {f"f{i}": b"%s %d" % (name.encode(), i)
                                                  for i in range(150)}})
            trees.append(root)
        dest = backup / f"round{round_}"  # each round: a fresh backup location
        procs = [subprocess.Popen([sys.executable, "-m", "baycat", "sync", "--json", t, dest],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for t in trees]
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], results
        # A sync that starts after the other committed sees the other tree's files as
        # deleted from its own tree: they stay in the manifest, marked deleted, and come
        # back with --include-deleted. Either way nothing is lost.
        restored = tmp_path / f"restored{round_}"
        run_baycat("restore", "--include-deleted", dest, restored)
        on_disk = {p for p, (k, _) in read_tree(restored).items() if k == "f"}
        assert on_disk == {f"{name}{round_}/f{i}".encode() for name in ("a", "b")
                           for i in range(150)}


def test_commit_conflict_merges_instead_of_dropping(
        seaweed: SeaweedServer, tmp_path: Path) -> None:
    """Deterministic: writer B commits between A's read and A's commit."""
    import asyncio

    from baycat.entry import path_key
    from baycat.manifest.remote import RemoteManifest
    from baycat.manifest.root import Root
    from baycat.ops.differ import as_remote
    from baycat.store.s3 import S3Store
    from baycat.store.s3_options import S3Options

    bucket = "conflict"
    seaweed.create_bucket(bucket)

    def entry(path: bytes) -> Entry:
        return as_remote(Entry(path, FILE, 1, 1, 0, 0, 0, 0o100644, 0, 0, b"", b"x" * 16,
                               '"e"', "", "", 0, 0))

    async def scenario() -> list[bytes]:
        options = S3Options(endpoint_url=seaweed.endpoint_url, region="us-east-1",
                            access_key_id=seaweed.access_key,
                            secret_access_key=seaweed.secret_key)
        stores = [S3Store(bucket, "p/", options) for _ in range(2)]
        for s in stores:
            await s.open()
        a = RemoteManifest(stores[0], tmp_path / "ca")
        b = RemoteManifest(stores[1], tmp_path / "cb")
        await a.load()
        await b.load()
        template = Root(created_ns=0, source="t", baycat_version="t")
        await b.commit([(path_key(b"b"), b"b", entry(b"b"))], template)
        await a.commit([(path_key(b"a"), b"a", entry(b"a"))], template)
        # the conditional-write probe (412: B's probe is there), pack, root (412
        # Precondition Failed), then pack and root rebuilt on B's root
        assert stores[0].requests["PUT"] == 5
        reader = RemoteManifest(stores[0], tmp_path / "cr")
        await reader.load()
        paths = [e.path for e in reader.entries()]
        for m in (a, b, reader):
            m.close()
        for s in stores:
            await s.close()
        return paths

    assert asyncio.run(scenario()) == [b"a", b"b"]


def test_second_sync_of_the_same_tree_refuses(tmp_path: Path) -> None:
    make_tree(tmp_path / "data", {"f": b"x"})
    (tmp_path / "data" / ".baycat").mkdir()
    with TreeLock(tmp_path / "data" / ".baycat" / "manifest.lock", "test"):
        proc = run_baycat("sync", tmp_path / "data", tmp_path / "backup", check=4)
        as_json = run_baycat("sync", "--json", tmp_path / "data", tmp_path / "backup", check=4)
    assert b"another baycat is already working" in proc.stderr
    assert b"nothing was done" in proc.stderr
    assert json.loads(as_json.stdout)["exit_code"] == 4  # a scheduler can tell: skip it
    assert not (tmp_path / "backup").exists()


def one_line_error(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("baycat: error: "), lines
    assert "Traceback" not in proc.stderr.decode()
    return lines[0]


def test_bad_remote_input_is_one_line_and_exit_3(
        s3: Target, seaweed: SeaweedServer, tmp_path: Path) -> None:
    src = tmp_path / "data"
    make_tree(src, {"f": b"x"})
    env = s3.env
    line = one_line_error(run_baycat("sync", src, "s3://no-such-bucket-here/x/", env=env,
                                     check=3))
    assert "does not exist" in line
    bad_keys = {**env, "AWS_SECRET_ACCESS_KEY": "wrong"}
    line = one_line_error(run_baycat("sync", src, s3.url, env=bad_keys, check=3))
    assert "credentials" in line and "wrong" not in line
    closed = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    line = one_line_error(run_baycat("sync", "--retries", "1", src, s3.url, env=closed,
                                     check=3))
    assert "cannot reach" in line
    line = one_line_error(run_baycat("sync", tmp_path / "missing", s3.url, env=env, check=2))
    line = one_line_error(run_baycat("sync", src / "f", s3.url, env=env, check=2))
    assert s3.objects(include_state=True) == {}  # nothing written remotely


@pytest.mark.parametrize("damage", ["garbage", "newer", "missing-pack"])
def test_damaged_remote_manifest_is_refused_then_rebuilt_by_scan_remote(
        s3: Target, tmp_path: Path, damage: str) -> None:
    src = tmp_path / "data"
    make_tree(src, {f"d{i}": {f"f{j}": os.urandom(100 + j) for j in range(20)}
                    for i in range(3)})
    s3.sync(src)
    root_doc = s3.objects(include_state=True)[".baycat/root"]
    if damage == "garbage":
        s3.put_raw(".baycat/root", b"{not json")
    elif damage == "newer":
        doc: dict[str, Any] = json.loads(root_doc)
        doc["format_version"] = 99
        s3.put_raw(".baycat/root", json.dumps(doc).encode())
    else:
        for key in s3.objects(include_state=True):
            if key.startswith(".baycat/packs/"):
                s3.delete_raw(key)
    # A fresh machine: no local cache that could hide the damage.
    import shutil
    shutil.rmtree(src / ".baycat")
    (src / "d0" / "f0").write_bytes(b"changed")
    proc = run_baycat("sync", src, s3.url, env=s3.env, check=3)
    line = one_line_error(proc)
    if damage == "newer":
        assert "newer" in line
        return
    assert "--scan-remote" in line
    summary = s3.sync(src, "--scan-remote")
    assert summary["uploaded"]["files"] == 1  # only the changed file
    assert summary["adopted"]["files"] == 59
    again = s3.sync(src)
    assert again["uploaded"]["files"] == 0 and again["committed"] is False
    out = tmp_path / "restored"
    s3.restore(out)
    assert read_tree(out) == read_tree(src)


def test_scan_remote_adopts_uploads_that_never_reached_the_manifest(
        s3: Target, tmp_path: Path) -> None:
    src = tmp_path / "data"
    make_tree(src, {f"f{i}": os.urandom(1000) for i in range(10)})
    for i in range(4):  # uploaded by a run that died before its commit
        s3.put_raw(f"f{i}", (src / f"f{i}").read_bytes())
    s3.put_raw("stray-object", b"nobody knows me")
    summary = s3.sync(src, "--scan-remote")
    assert summary["adopted"]["files"] == 4 and summary["uploaded"]["files"] == 6
    assert any("not in the manifest" in n for n in summary["notices"])


def test_file_changing_during_multipart_upload_is_not_recorded(tmp_path: Path) -> None:
    import asyncio

    from baycat.ops.transfer import FileChanged, TransferConfig, Uploader
    from baycat.store.local import LocalStore

    path = tmp_path / "src" / "big"
    path.parent.mkdir()
    path.write_bytes(os.urandom(24 << 20))
    store = LocalStore(tmp_path / "dst")
    config = TransferConfig(multipart_threshold=5 << 20, part_size=5 << 20, transfers=1)
    stop = threading.Event()

    def writer() -> None:
        with open(path, "r+b") as f:
            while not stop.is_set():
                f.seek(0)
                f.write(os.urandom(16))
                f.flush()
                time.sleep(0.001)

    entry = Entry(b"big", FILE, 24 << 20, 0, 0, 0, 0, 0o100644, 0, 0, b"", b"", "", "", "",
                  0, 0)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with pytest.raises(FileChanged):
            asyncio.run(Uploader(store, config, os.fsencode(path.parent)).upload(entry, "big"))
    finally:
        stop.set()
        thread.join()
    assert not (tmp_path / "dst" / "big").exists()
    assert store.requests["DELETE"] == 1  # the multipart upload was aborted


def test_an_object_that_fails_to_upload_is_retried_next_run(
        s3: Target, seaweed: SeaweedServer, tmp_path: Path) -> None:
    src = tmp_path / "data"
    make_tree(src, {f"f{i}": b"v1 %d" % i for i in range(20)})
    s3.sync(src)
    (src / "f7").write_bytes(b"v2")
    (src / "f8").write_bytes(b"v2 of f8")
    failing = FaultProxy(seaweed.endpoint_url, rates=FaultRates(internal_error=1.0),
                         predicate=lambda req: req.method == "PUT" and req.path.endswith("/f7"))
    failing.start()
    try:
        proc = run_baycat("sync", "--json", "--retries", "2", src, s3.url,
                          env=s3_env(seaweed, failing.endpoint_url), check=1)
    finally:
        failing.stop()
    summary = json.loads(proc.stdout)
    assert summary["uploaded"]["files"] == 1 and summary["failed"]["files"] == 1
    assert summary["errors"][0]["path"] == "f7"
    assert s3.objects()["f7"] == b"v1 7"  # the old version is still what the manifest says
    again = s3.sync(src)
    assert again["uploaded"]["files"] == 1
    assert s3.objects()["f7"] == b"v2"
    _, problems = deep_check(seaweed, s3.bucket, s3.prefix)
    assert problems == []


def test_checkpoints_commit_without_conflicting_with_themselves(
        s3: Target, seaweed: SeaweedServer, tmp_path: Path) -> None:
    """Each checkpoint builds on the previous one: no 412 round trips, no refetch."""
    src = tmp_path / "data"
    make_tree(src, {f"f{i:03d}": os.urandom(2048) for i in range(120)})
    slow = FaultProxy(seaweed.endpoint_url, seed=3, rates=FaultRates(delay=1.0, delay_s=0.02),
                      predicate=lambda req: req.method == "PUT" and "/.baycat/" not in req.path)
    slow.start()
    try:
        proc = run_baycat("sync", "--json", "--transfers", "2", "--checkpoint-interval", "0.3",
                          src, s3.url, env=s3_env(seaweed, slow.endpoint_url))
    finally:
        slow.stop()
    summary = json.loads(proc.stdout)
    assert summary["checkpoints"] >= 3
    # Per commit: one pack PUT and one root PUT; the root is never fetched again. A new
    # backup on S3 also probes once whether the store honours If-None-Match (2 PUTs).
    assert summary["requests"]["PUT"] == 120 + 2 * summary["checkpoints"] + 2
    assert summary["requests"]["GET"] == 1
    again = s3.sync(src)
    assert again["uploaded"]["files"] == 0 and sum(again["requests"].values()) == 1
    # The run's checkpoints are one generation (they must not push earlier runs out of
    # --keep-generations), and that generation is the run's complete tree.
    gens = json.loads(run_baycat("history", "--json", s3.url, env=s3.env).stdout)
    assert [g["files"] for g in gens["generations"]] == [120]
    # `restore --at` takes a time to the second, inclusive: the next night must commit
    # in a later second than this one did, or --at this night's time picks it too
    # (the fast runs left a second's room no longer: failed in CI 2 runs of 3).
    time.sleep(1.01 - time.time() % 1.0)
    make_tree(src, {"late.txt": b"next night"})
    s3.sync(src)
    gens = json.loads(run_baycat("history", "--json", s3.url, env=s3.env).stdout)
    assert [g["files"] for g in gens["generations"]] == [121, 120]
    out = tmp_path / "first-night"
    restored = s3.restore(out, "--at", gens["generations"][1]["time"])
    assert restored["exit_code"] == 0 and restored["downloaded"]["files"] == 120
