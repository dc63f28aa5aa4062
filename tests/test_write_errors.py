"""Writing baycat's own state can fail: a full disk, a read-only `.baycat` (issue 12,
item 9). Each is one line, exit code 3 and the --json object, never a traceback, and no
temp file is left; what was committed to the store stays committed, the old local
manifest stays intact, and the next run is correct. Temp files a killed run left are
removed by the next run of the same tree.

Faults are real: a small tmpfs filled by a proxy hook at a chosen request (so the disk
is full exactly after the root PUT, or after the first download), and a `.baycat` made
read-only for a root that lost CAP_DAC_OVERRIDE."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import drop_dac_override, run_baycat
from tests.fatal import error_line, fatal_json
from tests.support._forwarding import Exchange, ForwardingProxy, Request
from tests.targets import Target
from tests.trees import make_tree, read_tree

_TEMP = re.compile(r"\..+\.tmp-[0-9]+|.+\.tmp")


def temps(tree: Path) -> list[str]:
    """Temp files in a tree's state directory and its caches' directory."""
    found = []
    for directory in (tree / ".baycat", tree / ".baycat" / "remote"):
        if directory.is_dir():
            found += [p.name for p in directory.iterdir() if _TEMP.fullmatch(p.name)]
    return found


def make_data(root: Path) -> Path:
    make_tree(root, {"a": {f"f{i:02d}": os.urandom(2000) for i in range(20)},
                     "b.txt": b"first version"})
    return root


# ---- a full disk ---------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 8 MiB tmpfs (the tests run as root in CI; elsewhere they are skipped)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(fs: Path) -> Path:
    """Take every free block of `fs` (to the last byte of the last page)."""
    filler = fs / "filler"
    with open(filler, "ab", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC
    return filler


class FillingProxy(ForwardingProxy):
    """Relays everything; fills `fs` just before relaying the answer to the first
    request `when` picks (the server has applied it; baycat has not heard back)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.when: Callable[[Request], bool] | None = None
        self.fs: Path | None = None
        self.filler: Path | None = None

    def arm(self, when: Callable[[Request], bool], fs: Path) -> None:
        self.when, self.fs, self.filler = when, fs, None

    def on_response(self, ex: Exchange, status: int) -> None:
        if self.when is not None and self.when(ex.request) and status < 300:
            assert self.fs is not None
            self.when = None
            self.filler = fill(self.fs)  # a few ms: the hook may block that long


@pytest.fixture
def filling_proxy(s3: Target) -> Iterator[FillingProxy]:
    assert s3.seaweed is not None
    with FillingProxy(s3.seaweed.endpoint_url) as proxy:
        yield proxy


def test_a_full_disk_after_the_root_put(s3: Target, small_fs: Path, tmp_path: Path,
                                        filling_proxy: FillingProxy) -> None:
    src = make_data(small_fs / "src")
    env = {**s3.env, "AWS_ENDPOINT_URL": filling_proxy.endpoint_url}
    run_baycat("sync", src, s3.url, env=env)
    manifest = src / ".baycat" / "manifest"
    before = manifest.read_bytes()
    (src / "b.txt").write_bytes(b"second version")
    filling_proxy.arm(lambda r: r.method == "PUT" and r.path.endswith("/.baycat/root"),
                      small_fs)
    proc = run_baycat("sync", "--json", src, s3.url, env=env, check=None)
    doc = fatal_json(proc, 3)
    assert filling_proxy.filler is not None  # the disk filled up after the root PUT
    # The remote cache was the first write to fail, then the local manifest's abort.
    assert re.fullmatch(rf"cannot write {re.escape(str(src))}/\.baycat/remote/[0-9a-f]+: "
                        r"No space left on device", doc["fatal_error"]), doc
    assert temps(src) == []
    assert s3.objects()["b.txt"] == b"second version"  # committed, and stays so
    assert manifest.read_bytes() == before  # the old local manifest, intact
    assert not list((src / ".baycat" / "remote").glob("*.synced"))  # no clean-sync claim
    filling_proxy.filler.unlink()
    again = run_baycat("sync", "--json", src, s3.url, env=env)
    assert b'"exit_code": 0' in again.stdout and b'"uploaded": {"bytes": 0, "files": 0}' \
        in again.stdout
    s3.restore(tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(src)


def test_a_full_disk_at_the_end_of_a_restore(s3: Target, small_fs: Path, tmp_path: Path,
                                             filling_proxy: FillingProxy) -> None:
    # Empty files take no blocks: once the disk is full, the files still restore, and
    # the first write that needs a block is DST's own manifest, at the end.
    src = tmp_path / "src"
    make_tree(src, {"d": {f"e{i:02d}": b"" for i in range(20)}, "z": b""})
    s3.sync(src)
    dst = small_fs / "dst"
    env = {**s3.env, "AWS_ENDPOINT_URL": filling_proxy.endpoint_url}
    filling_proxy.arm(lambda r: r.method == "GET" and "/.baycat/" not in r.path, small_fs)
    proc = run_baycat("restore", "--json", s3.url, dst, env=env, check=None)
    doc = fatal_json(proc, 3)
    assert doc["fatal_error"] == \
        f"cannot write {dst}/.baycat/manifest: No space left on device"
    assert temps(dst) == []
    assert read_tree(dst) == read_tree(src)  # every file was restored before that
    assert filling_proxy.filler is not None
    filling_proxy.filler.unlink()
    again = run_baycat("restore", "--json", s3.url, dst, env=env)
    assert b'"exit_code": 0' in again.stdout
    assert (dst / ".baycat" / "manifest").is_file() and temps(dst) == []


# ---- a read-only state directory --------------------------------------------------------


def denied(tree: Path, *args: str | Path, env: dict[str, str]) -> None:
    """Run baycat with `tree`'s state directory and caches' directory read-only (for a
    root without CAP_DAC_OVERRIDE): it must stop on the first write it can't make."""
    state = tree / ".baycat"
    for directory in (state, state / "remote"):
        directory.chmod(0o500)
    try:
        proc = run_baycat(*args, env=env, preexec_fn=drop_dac_override, check=None)
    finally:
        for directory in (state, state / "remote"):
            directory.chmod(0o700)
    doc = fatal_json(proc, 3)
    assert doc["fatal_error"].startswith(f"cannot write {state}/")
    assert doc["fatal_error"].endswith(": Permission denied")
    assert temps(tree) == []


def test_a_read_only_state_dir_stops_a_sync(target: Target, tmp_path: Path) -> None:
    src = make_data(tmp_path / "src")
    target.sync(src)
    (src / "b.txt").write_bytes(b"second version")
    denied(src, "sync", "--json", src, target.url, env=target.env)
    target.sync(src)  # whether the failed run committed first or not: all is there now
    assert target.objects()["b.txt"] == b"second version"
    target.restore(tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(src)


def test_a_local_manifest_that_cannot_be_written_after_the_commit(
        target: Target, tmp_path: Path) -> None:
    src = make_data(tmp_path / "src")
    target.sync(src)
    manifest = src / ".baycat" / "manifest"
    before = manifest.read_bytes()
    (src / "b.txt").write_bytes(b"second version")
    (src / ".baycat").chmod(0o500)  # the caches' directory stays writable
    try:
        proc = run_baycat("sync", "--json", src, target.url, env=target.env,
                          preexec_fn=drop_dac_override, check=None)
    finally:
        (src / ".baycat").chmod(0o700)
    doc = fatal_json(proc, 3)
    assert doc["fatal_error"] == f"cannot write {manifest}: Permission denied"
    assert target.objects()["b.txt"] == b"second version"  # committed before that
    assert manifest.read_bytes() == before and temps(src) == []
    assert not list((src / ".baycat" / "remote").glob("*.synced"))
    again = target.sync(src)  # re-hashes b.txt, finds it backed up already
    assert again["operations"]["uploaded"]["files"] == 0 and again["errors"] == []
    assert manifest.read_bytes() != before
    target.restore(tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(src)


def test_a_state_dir_without_a_lock_that_cannot_be_created(tmp_path: Path) -> None:
    src = make_data(tmp_path / "src")
    (src / ".baycat").mkdir(mode=0o500)
    proc = run_baycat("sync", "--json", src, tmp_path / "backup",
                      preexec_fn=drop_dac_override, check=None)
    doc = fatal_json(proc, 3)
    assert doc["fatal_error"] == \
        f"cannot open the lock {src}/.baycat/manifest.lock: Permission denied"


def test_a_read_only_state_dir_stops_a_restore(target: Target, tmp_path: Path) -> None:
    src = make_data(tmp_path / "src")
    target.sync(src)
    out = tmp_path / "out"
    target.restore(out)
    (src / "b.txt").write_bytes(b"second version")
    target.sync(src)
    denied(out, "restore", "--json", target.url, out, env=target.env)
    target.restore(out)
    assert read_tree(out) == read_tree(src)


# ---- what a killed run left -------------------------------------------------------------


def plant_stale_temps(tree: Path) -> list[Path]:
    """The temp files of a run killed (pid 9999999, above any pid_max) mid-write."""
    state = tree / ".baycat"
    cache = next(p for p in (state / "remote").iterdir() if "." not in p.name)
    stale = [state / ".manifest.tmp-9999999", cache.with_name(f".{cache.name}.tmp-9999999"),
             cache.with_name(f".{cache.name}.synced.tmp-9999999")]
    for path in stale:
        path.write_bytes(b"half written")
    return stale


def test_temp_files_of_a_killed_run_are_removed_by_the_next(target: Target,
                                                             tmp_path: Path) -> None:
    src = make_data(tmp_path / "src")
    target.sync(src)
    stale = plant_stale_temps(src)
    target.sync(src)
    assert [p for p in stale if p.exists()] == []
    out = tmp_path / "out"
    target.restore(out)
    stale = plant_stale_temps(out)
    target.restore(out)
    assert [p for p in stale if p.exists()] == []
    (src / ".baycat" / ".manifest.tmp-9999999").write_bytes(b"half written")
    run_baycat("manifest", "update", src)
    assert not (src / ".baycat" / ".manifest.tmp-9999999").exists()
    assert temps(src) == [] and temps(out) == []


def test_a_full_disk_under_manifest_create(small_fs: Path) -> None:
    src = make_data(small_fs / "src")
    filler = fill(small_fs)
    proc = run_baycat("manifest", "create", src, check=None)
    assert error_line(proc, 3) == \
        f"baycat: error: cannot write {src}/.baycat/manifest: No space left on device"
    assert temps(src) == [] and not (src / ".baycat" / "manifest").exists()
    filler.unlink()
    run_baycat("manifest", "create", src)


def test_an_unwritable_upload_journal_fails_the_large_file_not_the_run(
        s3: Target, tmp_path: Path) -> None:
    """The journal of started multipart uploads can't be written: the large file fails
    (one line, exit 1; its upload is aborted), the rest is backed up."""
    from baycat.scan.statedir import remote_cache_path as cache_path

    src = tmp_path / "data"
    make_tree(src, {"small": b"s", "big": os.urandom(17 << 20)})
    journal = cache_path(src / ".baycat", s3.url)
    journal = journal.with_name(journal.name + ".uploads")
    journal.parent.mkdir(parents=True)
    journal.write_bytes(b"not a directory")
    proc = run_baycat("sync", src, s3.url, env=s3.env, check=1)
    assert b"Traceback" not in proc.stderr
    assert re.search(rb"big: not backed up: cannot write .*uploads", proc.stderr), proc.stderr
    assert set(s3.objects()) == {"small"}
    journal.unlink()
    assert s3.sync(src)["uploaded"]["files"] == 1
