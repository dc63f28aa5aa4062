"""Nightly snapshots at a new path (issue 14 §1): `--scenarios snapshot`.

A real snapshot, as ZFS, btrfs or LVM give one: an ext4 image, loop-mounted read-only,
at a new path each night. Night N+1 is a `cp --sparse=always` of night N's image with
1 % of the small files modified (benchmarks/mutate.py, through a read-write mount of the
copy), so it has night N's inodes, sizes and times (but the changes) under another device
number. Nights, each synced by every tool from the same mount to its own bucket:

- night 1 (`snapshot-initial`): the first snapshot, an initial sync (timed only);
- night 2 (`snapshot`): the next snapshot at a new path, 1 % changed; baycat keeps its
  state directory (`$XDG_STATE_HOME/baycat/`, keyed by the destination);
- night 3 (`snapshot-nostate`): the next one again, another 1 % changed; baycat starts
  with an empty state directory, so the destination's manifest is its stat cache.

Nights 2 and 3 run twice per tool, as the main passes do: timed (wall time, peak RSS,
then the bucket is checked against the snapshot) into one bucket, counted (counting
proxy; strace with the open calls: files opened, bytes read) into a twin bucket that
night 1 also filled. The previous night stays mounted while the next is synced, so
the two are on different loop devices (the run records both device numbers). Before a
night's runs the harness stats the whole snapshot once (`find`), so that no tool pays
for a cold inode cache that the tools after it don't.

Mounting needs root, mkfs.ext4 and loop devices; where the machine refuses, the scenario
reports itself skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dataset, fileio, mutate, procs, verify
from .dataset import KiB, MiB
from .proxy import CountingProxyProcess, ProxyError, requests_of
from .results import Measurement, parse_json_summary
from .tools import PREFIX, Tool

SETTLE_S = 2.1
TREE = "tree"  # the generated tree's directory in the image (beside lost+found)

# (scenario, title); the order is the nights'.
SCENARIOS: tuple[tuple[str, str], ...] = (
    ("snapshot-initial", "night 1: initial sync of the first snapshot"),
    ("snapshot", "night 2: the next snapshot at a new path, 1 % of small files modified; "
                 "baycat keeps its state directory"),
    ("snapshot-nostate", "night 3: the next snapshot at a new path, another 1 % modified; "
                         "baycat with an empty state directory (the destination's manifest "
                         "is the stat cache)"),
)
NAMES = tuple(name for name, _ in SCENARIOS)


class Refused(Exception):
    """The machine won't let us make or mount the images."""


@dataclass(slots=True)
class SnapshotContext:
    out: Path  # images, state directories, run logs
    repo_root: Path
    endpoint: str
    client: Any  # botocore S3 client on the real endpoint (for checks)
    create_bucket: Callable[[str], None]
    spec: dataset.DatasetSpec
    fraction: float
    timeout_s: float
    strace: bool
    log: Callable[[str], None]


@dataclass(slots=True)
class _Mounts:
    """Mount points under one temp directory, unmounted (newest first) on close."""

    base: Path
    active: list[Path] = field(default_factory=list)

    def mount(self, name: str, *options: str | Path) -> Path:
        target = self.base / name
        target.mkdir()
        proc = subprocess.run(["mount", *map(str, options), str(target)], capture_output=True,
                              text=True, check=False)
        if proc.returncode:
            target.rmdir()
            first = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[0]
            raise Refused(f"mount {' '.join(map(str, options))} refused: {first}")
        self.active.append(target)
        return target

    def umount(self, target: Path) -> None:
        subprocess.run(["umount", str(target)], capture_output=True, check=True)
        self.active.remove(target)
        target.rmdir()

    def close(self) -> None:
        for target in reversed(self.active[:]):
            try:
                self.umount(target)
            except subprocess.CalledProcessError:
                # Busy (a tool's straggler): detach it, it goes once the last user does.
                subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
                self.active.remove(target)
        with contextlib.suppress(OSError):
            self.base.rmdir()  # only empty mount points are ever removed


def refused() -> str | None:
    """Why this machine can't run the scenario, or None."""
    if os.geteuid() != 0:
        return "mounting loop images needs root"
    for exe in ("mkfs.ext4", "mount", "umount", "cp", "find"):
        if shutil.which(exe) is None:
            return f"{exe} is not installed"
    return None


def image_bytes(spec: dataset.DatasetSpec) -> tuple[int, int]:
    """(size, inodes) of an image with room for `spec`'s tree: every small file at its
    largest, in 4 KiB blocks, a block per directory, and room for the journal and
    metadata. The image is sparse, so room that stays unused costs no disk."""
    block = 4 * KiB
    per_small = -(-spec.small_max // block) * block
    dirs = spec.small_files // dataset.SMALL_PER_DIR + 200
    data = spec.small_files * per_small + sum(spec.large_sizes()) + dirs * block
    inodes = spec.small_files + spec.large_files + dirs + 1024
    return int(data * 1.15) + inodes * 256 + 256 * MiB, inodes


def _make_image(path: Path, spec: dataset.DatasetSpec) -> None:
    size, inodes = image_bytes(spec)
    with path.open("wb") as f:
        f.truncate(size)
    proc = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-N", str(inodes), str(path)],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        first = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[0]
        raise Refused(f"mkfs.ext4 failed: {first}")


def _settle(since: float) -> None:
    """Wait until SETTLE_S after the last change (a file changed within the 2 s before
    a scan is "racily clean" to baycat and rehashed next run, scenarios.py)."""
    wait = since + SETTLE_S - time.monotonic()
    if wait > 0:
        time.sleep(wait)


def run(ctx: SnapshotContext, tools: list[Tool],
        table: dict[tuple[str, str], Measurement]) -> dict[str, Any]:
    """Every night for every tool; fills `table`, returns what the report says about the
    snapshots (or why the scenario was skipped)."""
    files = ctx.spec.small_files + ctx.spec.large_files
    info: dict[str, Any] = {"spec": ctx.spec.describe(), "files": files,
                            "fraction": ctx.fraction, "nights": {}}
    why = refused()
    if why:
        info["skipped"] = why
        ctx.log(f"[snapshot] skipped: {why}")
        return info
    shutil.rmtree(ctx.out, ignore_errors=True)
    ctx.out.mkdir(parents=True)
    mounts = _Mounts(Path(tempfile.mkdtemp(prefix="baycat-bench-snap-")))
    try:
        _nights(ctx, tools, table, info, mounts)
    except Refused as exc:
        info["skipped"] = str(exc)
        ctx.log(f"[snapshot] skipped: {exc}")
    finally:
        mounts.close()
        for image in ctx.out.glob("*.img"):
            image.unlink()
    return info


def _nights(ctx: SnapshotContext, tools: list[Tool], table: dict[tuple[str, str], Measurement],
            info: dict[str, Any], mounts: _Mounts) -> None:
    image = ctx.out / "night1.img"
    _make_image(image, ctx.spec)
    t0 = time.perf_counter()
    rw = mounts.mount("rw", "-o", "loop", image)
    dataset.generate(ctx.spec, rw / TREE)
    mounts.umount(rw)
    changed_at = time.monotonic()
    ctx.log(f"[snapshot] night 1: {info['files']:,} files generated in "
            f"{time.perf_counter() - t0:.0f} s ({image.stat().st_blocks * 512 / MiB:.0f} MiB "
            "of image)")
    buckets: dict[tuple[str, str], str] = {}
    for tool in tools:
        for label in ("t", "c"):
            buckets[(tool.name, label)] = f"{tool.name}-snap-{label}"
            ctx.create_bucket(buckets[(tool.name, label)])
    previous: Path | None = None
    for night, (scenario, _) in enumerate(SCENARIOS, start=1):
        changed: list[str] = []
        changed_bytes = 0
        if night > 1:
            nxt = ctx.out / f"night{night}.img"
            subprocess.run(["cp", "--sparse=always", str(image), str(nxt)], check=True)
            rw = mounts.mount("rw", "-o", "loop", nxt)
            changed = mutate.apply(rw / TREE, "modify", ctx.fraction, ctx.spec.seed + night)
            changed_bytes = sum((rw / TREE / rel).stat().st_size for rel in changed)
            mounts.umount(rw)
            changed_at = time.monotonic()
            image = nxt
        snap = mounts.mount(f"snap-night{night}", "-o", "loop,ro", image)
        night_info: dict[str, Any] = {"path": str(snap), "st_dev": os.stat(snap).st_dev}
        if night > 1:
            assert previous is not None
            night_info.update(changed_files=len(changed), changed_bytes=changed_bytes,
                              previous_st_dev=os.stat(previous).st_dev)
        info["nights"][scenario] = night_info
        digest = verify.tree_digest(snap)
        _settle(changed_at)
        subprocess.run(["find", str(snap), "-printf", "%s %T@\\n"], stdout=subprocess.DEVNULL,
                       check=False)
        order = tools[night % len(tools):] + tools[:night % len(tools)]
        for tool in order:
            m = table.setdefault((tool.name, scenario), Measurement(tool.name, scenario))
            _timed(ctx, tool, scenario, snap, buckets[(tool.name, "t")], digest, m)
        for tool in order:
            m = table[(tool.name, scenario)]
            _counted(ctx, tool, scenario, snap, buckets[(tool.name, "c")], m,
                     measure=night > 1)
        if previous is not None:
            mounts.umount(previous)
            (ctx.out / f"night{night - 1}.img").unlink()
        previous = snap


def _env(ctx: SnapshotContext, scenario: str, label: str, env: dict[str, str]) -> dict[str, str]:
    """The tool's environment with baycat's per-user state directory in the run's own
    directory (never root's home); night 3 gives baycat an empty one."""
    state = ctx.out / ("state-fresh" if scenario == "snapshot-nostate" else "state") / label
    return {**env, "XDG_STATE_HOME": str(state)}


def _timed(ctx: SnapshotContext, tool: Tool, scenario: str, snap: Path, bucket: str,
           digest: dict[str, tuple[int, str]], m: Measurement) -> None:
    inv = tool.sync(snap, bucket, ctx.endpoint, delete=True)
    r = procs.run(inv.argv, _env(ctx, scenario, "t", inv.env), timeout_s=ctx.timeout_s,
                  workdir=ctx.out / "runs" / tool.name / scenario / "timed")
    m.wall_s, m.peak_rss_kib, m.exit_code, m.failure = (
        r.wall_s, r.peak_rss_kib, r.exit_code, r.failure())
    m.tool_summary = parse_json_summary(r.stdout)
    try:
        v = verify.check_bucket(ctx.client, bucket, PREFIX, digest, exact=True)
        m.correct, m.correct_detail = v.ok, v.detail
    except Exception as exc:  # a check that crashes is a wrong result, not a harness crash
        m.correct, m.correct_detail = False, f"check failed: {exc!r}"
    ctx.log(f"[snapshot timed] {scenario:16} {tool.name:7} {m.wall_s:8.2f} s "
            f"rss={m.peak_rss_kib // 1024} MiB correct={m.correct} {m.failure} "
            f"{'' if m.correct else m.correct_detail}")


def _counted(ctx: SnapshotContext, tool: Tool, scenario: str, snap: Path, bucket: str,
             m: Measurement, *, measure: bool) -> None:
    workdir = ctx.out / "runs" / tool.name / scenario / "counted"
    if not measure:  # night 1: only fill the twin bucket
        inv = tool.sync(snap, bucket, ctx.endpoint, delete=True)
        r = procs.run(inv.argv, _env(ctx, scenario, "c", inv.env), timeout_s=ctx.timeout_s,
                      workdir=workdir)
        m.counted_failure = r.failure()
        return
    log = workdir / "strace.log"
    try:
        with CountingProxyProcess(ctx.endpoint, workdir / "proxy", ctx.repo_root) as proxy:
            inv = tool.sync(snap, bucket, proxy.endpoint_url, delete=True)
            argv = procs.strace_argv(inv.argv, log, opens=True) if ctx.strace else inv.argv
            r = procs.run(argv, _env(ctx, scenario, "c", inv.env), timeout_s=ctx.timeout_s * 3,
                          workdir=workdir)
    except ProxyError as exc:
        m.counted_failure = str(exc)
        return
    m.counted_wall_s, m.counted_failure = r.wall_s, r.failure()
    m.counted_summary = parse_json_summary(r.stdout)
    if proxy.snapshot:
        m.requests = requests_of(proxy.snapshot)
        m.bytes_up = sum(proxy.snapshot.get("bytes_up", {}).values())
        m.bytes_down = sum(proxy.snapshot.get("bytes_down", {}).values())
    if ctx.strace and log.exists():
        reads = fileio.parse_strace(log, snap)  # while the snapshot is still mounted
        m.file_bytes_read, m.files_read, m.file_bytes_mapped, m.state_bytes_read = (
            reads.bytes_read, reads.files_read, reads.bytes_mapped, reads.state_bytes)
        m.files_opened = reads.files_opened
        log.unlink()
    ctx.log(f"[snapshot counted] {scenario:16} {tool.name:7} reqs={m.total_requests} "
            f"opened={m.files_opened} read={m.file_bytes_read} up={m.bytes_up} "
            f"{m.counted_failure}")
