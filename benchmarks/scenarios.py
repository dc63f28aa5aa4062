"""The scenario sequence, run as one pass over every tool.

A pass gives each tool its own trees (generated from the same seed) and its own bucket,
then walks the scenarios in order; the state each scenario leaves is the next one's
start. Two passes run on twin trees and buckets:

- the *timed* pass: plain runs (wall time, peak RSS), each followed by a correctness
  check (not timed);
- the *counted* pass: the same runs through the counting proxy and under strace
  (requests by type, wire bytes, bytes read from local files). Its timings are slowed
  by both and are kept only as `counted_wall_s`.

Before each scenario's runs, the harness waits until 2.1 s have passed since the last
change to any tree, as a real tree would between its last edit and a backup (a file
written within the 2 s before a scan is "racily clean" to baycat and rehashed next run).
Tools run in an order rotated by one per scenario, so none is always first or last.
A timed restore first waits out any recent deletion of a tree (deletions.py).

Two sets of scenarios (`--scenarios`): `synthetic`, the seeded dataset (dataset.py)
through the sequence below; `realdata`, a copy of the interpreter's standard library
(realdata.py) synced, re-synced after a realistic change and restored. Each set runs
its own passes on its own trees and buckets.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import dataset, deletions, fileio, mutate, procs, realdata, verify
from .proxy import CountingProxyProcess, ProxyError, requests_of
from .results import Measurement, parse_json_summary
from .tools import PREFIX, Tool

SETTLE_S = 2.1
LARGE_PREFIX = "large-only/"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    mutation: str | None = None
    delete: bool = False
    kind: Literal["sync", "restore"] = "sync"
    tree: Literal["main", "large"] = "main"
    # Timed runs per tool, the fastest kept. Only a run that leaves the tree and the
    # bucket as it found them can be repeated; a sub-second one needs it, or one busy
    # moment of the shared machine decides the ratio. The large tree's initial sync is
    # made a first sync again for each repeat (`_large_prefix`).
    runs: int = 1

    @property
    def resync(self) -> bool:
        """A sync of an already synced tree (the scenarios `--count resync` counts)."""
        return self.kind == "sync" and not self.name.startswith("initial")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("initial-large", "initial sync, large files only (separate tree and prefix)",
             tree="large", runs=3),
    Scenario("initial", "initial sync, whole tree (small-file mix + large files)"),
    Scenario("no-change", "re-sync, nothing changed", runs=5),
    Scenario("modify", "re-sync, 1 % of small files modified (same size, new bytes)",
             mutation="modify"),
    Scenario("touch", "re-sync, 1 % of small files touched (mtime only)", mutation="touch"),
    Scenario("rename", "re-sync, 1 % of small files renamed (no delete option)",
             mutation="rename"),
    Scenario("delete", "re-sync with the delete option, 1 % of small files deleted",
             mutation="delete", delete=True),
    Scenario("restore", "restore of the whole tree into an empty directory", kind="restore"),
)


REALDATA_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("stdlib-initial", "real data: initial sync of a copy of the standard library"),
    Scenario("stdlib-change", "real data: re-sync with the delete option after 1 % of the "
             ".py files were edited, 10 files added, 10 removed and a directory renamed",
             mutation="realistic", delete=True),
    Scenario("stdlib-restore", "real data: restore of the changed standard library into an "
             "empty directory", kind="restore"),
)
ALL_SCENARIOS = SCENARIOS + REALDATA_SCENARIOS


@dataclass(slots=True)
class PassContext:
    out: Path  # this pass's directory
    repo_root: Path
    endpoint: str
    client: Any  # botocore S3 client on the real endpoint (for checks)
    create_bucket: Callable[[str], None]
    spec: dataset.DatasetSpec
    fraction: float
    timeout_s: float
    log: Callable[[str], None]
    settle_until: float = 0.0

    def settle(self) -> None:
        wait = self.settle_until - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def changed(self) -> None:
        self.settle_until = time.monotonic() + SETTLE_S


@dataclass(slots=True)
class _ToolState:
    tool: Tool
    bucket: str
    main: Path
    large: Path
    restored: Path


@dataclass(frozen=True, slots=True)
class ScenarioSet:
    """Scenarios over trees of one kind: how a tool's trees are made and changed."""

    name: str
    scenarios: tuple[Scenario, ...]
    make_trees: Callable[[PassContext, Path, Path], None]  # (ctx, main, large)
    mutate: Callable[[PassContext, Path, str], None]  # (ctx, main, mutation)


def _synthetic_trees(ctx: PassContext, main: Path, large: Path) -> None:
    dataset.generate(ctx.spec, main)
    dataset.generate(dataset.with_overrides(ctx.spec, small_files=0), large)


def _synthetic_mutate(ctx: PassContext, main: Path, mutation: str) -> None:
    mutate.apply(main, mutation, ctx.fraction, ctx.spec.seed)


def _stdlib_trees(ctx: PassContext, main: Path, large: Path) -> None:
    realdata.copy_stdlib(main)


def _stdlib_mutate(ctx: PassContext, main: Path, mutation: str) -> None:
    realdata.change(main, ctx.spec.seed)


SETS: dict[str, ScenarioSet] = {
    "synthetic": ScenarioSet("synthetic", SCENARIOS, _synthetic_trees, _synthetic_mutate),
    "realdata": ScenarioSet("realdata", REALDATA_SCENARIOS, _stdlib_trees, _stdlib_mutate),
}


def run_pass(ctx: PassContext, tools: list[Tool], table: dict[tuple[str, str], Measurement],
             *, counted: bool, count: set[str], strace: bool,
             scenario_set: ScenarioSet = SETS["synthetic"]) -> None:
    """Run every scenario of the set for every tool, filling `table` (timed or counted
    fields)."""
    label = "counted" if counted else "timed"
    suffix = "" if scenario_set.name == "synthetic" else f"-{scenario_set.name}"
    states = []
    for tool in tools:
        base = ctx.out / tool.name
        deletions.remove_tree(base)
        st = _ToolState(tool, f"{tool.name}-{label[0]}{suffix}", base / "tree",
                        base / "large-tree", base / "restored")
        scenario_set.make_trees(ctx, st.main, st.large)
        ctx.create_bucket(st.bucket)
        states.append(st)
    ctx.changed()
    for i, sc in enumerate(scenario_set.scenarios):
        if sc.mutation:
            for st in states:
                scenario_set.mutate(ctx, st.main, sc.mutation)
            ctx.changed()
        ctx.settle()
        if sc.kind == "restore" and not counted:
            deletions.wait_out_deletions(ctx.log)
        order = states[i % len(states):] + states[:i % len(states)]
        # Repeats go round the tools, so a busy moment falls on all of them alike.
        runs = 1 if counted else sc.runs
        for run in range(runs):
            prefix = _large_prefix(run, runs)
            for st in order:
                m = table.setdefault((st.tool.name, sc.name),
                                     Measurement(st.tool.name, sc.name))
                workdir = ctx.out / "runs" / st.tool.name / sc.name
                if counted:
                    _counted_run(ctx, st, sc, m, workdir, prefix, measure=sc.name in count,
                                 strace=strace)
                    ctx.log(f"[{label}] {sc.name:13} {st.tool.name:7} "
                            f"reqs={m.total_requests} read={m.file_bytes_read} "
                            f"{m.counted_failure}")
                else:
                    wall = _timed_run(ctx, st, sc, m, workdir, prefix)
                    ctx.log(f"[{label}] {sc.name:13} {st.tool.name:7} {wall or 0:8.2f} s "
                            f"rss={(m.peak_rss_kib or 0) // 1024} MiB correct={m.correct} "
                            f"{m.failure or ''} {'' if m.correct else m.correct_detail}")


def _large_prefix(run: int, runs: int) -> str:
    """Where run `run` of `runs` of a large-tree scenario writes. A first sync repeated
    into the same prefix would find its objects there (and baycat its local state), so
    each run but the last goes to a prefix of its own; the last, the one the counted
    pass also makes, to LARGE_PREFIX. (One run per tool was noise: 0.53-1.22 s for
    rclone's three runs of the same 64 MiB on this machine.)"""
    return LARGE_PREFIX if run == runs - 1 else f"{LARGE_PREFIX.rstrip('/')}-{run}/"


def _invocation(ctx: PassContext, st: _ToolState, sc: Scenario, endpoint: str,
                large_prefix: str = LARGE_PREFIX) -> tuple[list[str], dict[str, str], Path]:
    """argv, env and the local tree whose reads count, for one scenario."""
    if sc.kind == "restore":
        shutil.rmtree(st.restored, ignore_errors=True)
        st.restored.mkdir(parents=True)
        inv = st.tool.restore(st.bucket, st.restored, endpoint)
        return inv.argv, inv.env, st.restored
    if sc.tree == "large":
        # A first sync: baycat's local state from an earlier run goes (others keep none).
        shutil.rmtree(st.large / ".baycat", ignore_errors=True)
        inv = st.tool.sync(st.large, st.bucket, endpoint, delete=False, prefix=large_prefix)
        return inv.argv, inv.env, st.large
    inv = st.tool.sync(st.main, st.bucket, endpoint, delete=sc.delete, prefix=PREFIX)
    return inv.argv, inv.env, st.main


def _timed_run(ctx: PassContext, st: _ToolState, sc: Scenario, m: Measurement,
               workdir: Path, large_prefix: str) -> float:
    """One timed run; `m` keeps it unless an earlier run of the same scenario was
    faster. A failed or wrong run is kept whatever its time: it is the result. Returns
    this run's wall time."""
    argv, env, _ = _invocation(ctx, st, sc, ctx.endpoint, large_prefix)
    r = procs.run(argv, env, timeout_s=ctx.timeout_s, workdir=workdir)
    try:
        correct, detail = _check(ctx, st, sc, large_prefix)
    except Exception as exc:  # a check that crashes is a wrong result, not a harness crash
        correct, detail = False, f"check failed: {exc!r}"
    first = m.wall_s is None
    earlier_ok = not first and bool(m.correct) and not m.failure
    ok = not r.failure() and correct
    # An earlier failure stays; else the first run, a failure, or a faster run is kept.
    if first or (earlier_ok and (not ok or r.wall_s < (m.wall_s or 0.0))):
        m.wall_s, m.peak_rss_kib, m.exit_code, m.failure = (
            r.wall_s, r.peak_rss_kib, r.exit_code, r.failure())
        m.tool_summary = parse_json_summary(r.stdout)
        m.correct, m.correct_detail = correct, detail
    return r.wall_s


def _check(ctx: PassContext, st: _ToolState, sc: Scenario,
           large_prefix: str) -> tuple[bool, str]:
    if sc.kind == "restore":
        v = verify.check_tree(verify.tree_digest(st.main), st.restored)
    elif sc.tree == "large":
        v = verify.check_bucket(ctx.client, st.bucket, large_prefix,
                                verify.tree_digest(st.large), exact=True)
    else:
        # Only the rename scenario may leave extra objects (no delete option).
        v = verify.check_bucket(ctx.client, st.bucket, PREFIX, verify.tree_digest(st.main),
                                exact=sc.name != "rename")
    return v.ok, v.detail


def _counted_run(ctx: PassContext, st: _ToolState, sc: Scenario, m: Measurement,
                 workdir: Path, large_prefix: str, *, measure: bool, strace: bool) -> None:
    if not measure:  # only advance the state
        argv, env, _ = _invocation(ctx, st, sc, ctx.endpoint, large_prefix)
        r = procs.run(argv, env, timeout_s=ctx.timeout_s, workdir=workdir)
        m.counted_failure = r.failure()
        return
    log = workdir / "strace.log"
    try:
        with CountingProxyProcess(ctx.endpoint, workdir / "proxy", ctx.repo_root) as proxy:
            argv, env, root = _invocation(ctx, st, sc, proxy.endpoint_url, large_prefix)
            if strace:
                argv = procs.strace_argv(argv, log)
            # strace and the proxy slow a tool: allow more time than a timed run.
            r = procs.run(argv, env, timeout_s=ctx.timeout_s * 3, workdir=workdir)
    except ProxyError as exc:
        m.counted_failure = str(exc)
        return
    m.counted_wall_s, m.counted_failure = r.wall_s, r.failure()
    m.counted_summary = parse_json_summary(r.stdout)
    snap = proxy.snapshot
    if snap:
        m.requests = requests_of(snap)
        m.bytes_up = sum(snap.get("bytes_up", {}).values())
        m.bytes_down = sum(snap.get("bytes_down", {}).values())
    if strace and log.exists():
        reads = fileio.parse_strace(log, root)
        m.file_bytes_read, m.files_read, m.file_bytes_mapped, m.state_bytes_read = (
            reads.bytes_read, reads.files_read, reads.bytes_mapped, reads.state_bytes)
        log.unlink()
