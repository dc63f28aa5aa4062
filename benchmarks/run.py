"""`nox -s bench` entry point: `python -m benchmarks.run [options]`.

Default (about 10 minutes on 2 cores): the default dataset, every tool, both passes,
then the same for the real-data scenarios (a copy of the interpreter's standard library:
realdata.py; `--scenarios` picks one set), the hashing micro-benchmark and `manifest
update` vs `find`; writes docs/benchmarks.md and docs/benchmarks.json. `--scale 100k`
runs the same on 100k files (write docs/benchmarks-100k.*); `--scale 1m` runs baycat's
million-file set (issue 8) (docs/benchmarks-1m.*), with rclone's initial sync of the same
tree as the baseline of baycat's (other peers with `--tools`). `--scenarios snapshot` runs the
nightly-snapshot scenario only (issue 14; real read-only loop mounts, so it needs root;
`--snapshot-files N`, default 100k; docs/benchmarks-snapshot.*); it can join the other sets
in one report (`--scenarios synthetic,realdata,snapshot`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import (
    awsenv,
    dataset,
    deletions,
    encryption,
    hashbench,
    procs,
    realdata,
    report,
    scale,
    scenarios,
    snapshot,
    startup,
)
from .dataset import KiB, MiB
from .results import Measurement
from .tools import Aws, Baycat, Rclone, S5cmd, Tool

REPO = Path(__file__).resolve().parent.parent
ALL_TOOLS = ("baycat", "s5cmd", "rclone", "aws")


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nox -s bench --", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(dataset.PRESETS), default="default")
    p.add_argument("--tools", default=",".join(ALL_TOOLS),
                   help="comma-separated subset of " + ",".join(ALL_TOOLS))
    p.add_argument("--seed", type=int)
    p.add_argument("--small-files", type=int)
    p.add_argument("--small-min-kib", type=int)
    p.add_argument("--small-max-kib", type=int)
    p.add_argument("--large-files", type=int)
    p.add_argument("--large-min-mib", type=int)
    p.add_argument("--large-max-mib", type=int)
    p.add_argument("--scenarios", default=",".join(scenarios.SETS),
                   help="comma-separated scenario sets: synthetic (the seeded dataset), "
                        "realdata (a copy of this interpreter's standard library), "
                        "snapshot (nightly snapshots at a new path, loop-mounted ext4 "
                        "images: needs root; not in the default)")
    p.add_argument("--snapshot-files", type=int, default=100_000,
                   help="small files in the snapshot scenario's tree")
    p.add_argument("--fraction", type=float, default=0.01, help="share of files changed")
    p.add_argument("--count", choices=("all", "resync", "none"), default="all",
                   help="scenarios measured in the counted pass (proxy + strace)")
    p.add_argument("--no-strace", action="store_true", help="skip counting file reads")
    p.add_argument("--concurrency", type=int, default=32,
                   help="request parallelism for every tool that takes one")
    p.add_argument("--timeout", type=float, help="seconds per command (default by scale)")
    p.add_argument("--no-hash", action="store_true", help="skip the hashing micro-benchmark")
    p.add_argument("--no-encryption", action="store_true",
                   help="skip baycat encrypted beside plain (issue 17)")
    p.add_argument("--update-files", type=int, default=100_000,
                   help="files in the `manifest update` vs `find` tree (0: skip)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    p.add_argument("--docs", type=Path, default=REPO / "docs")
    p.add_argument("--baycat", type=Path, help="baycat executable (default: this venv's)")
    p.add_argument("--awscli", default="awscli", help="pip spec for the AWS CLI venv")
    p.add_argument("--awscli-venv", type=Path, default=REPO / ".nox" / "bench-awscli",
                   help="where the AWS CLI's own venv is made (beside nox's, not in "
                        "benchmarks/, so linters never walk into it)")
    return p.parse_args(argv)


def _spec(args: argparse.Namespace) -> dataset.DatasetSpec:
    def scaled(v: int | None, unit: int) -> int | None:
        return None if v is None else v * unit

    return dataset.with_overrides(
        dataset.PRESETS[args.scale], seed=args.seed, small_files=args.small_files,
        small_min=scaled(args.small_min_kib, KiB), small_max=scaled(args.small_max_kib, KiB),
        large_files=args.large_files, large_min=scaled(args.large_min_mib, MiB),
        large_max=scaled(args.large_max_mib, MiB))


def _cmd_out(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (r.stdout or r.stderr).strip() or "unknown"


def machine_info(out: Path) -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    fs = _cmd_out(["df", "--output=source,fstype", str(out)]).splitlines()[-1]
    return {
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
        "CPU": f"{os.cpu_count()} × {cpu}",
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "disk (work dir)": " ".join(fs.split()),
        "Python": platform.python_version(),
        "load average at start": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def make_tools(names: list[str], args: argparse.Namespace, out: Path) -> tuple[list[Tool],
                                                                              list[str]]:
    notes: list[str] = []
    tools: list[Tool] = []
    for name in names:
        tool: Tool
        if name == "baycat":
            tool = Baycat(args.concurrency, args.baycat)
        elif name == "s5cmd":
            tool = S5cmd(args.concurrency)
        elif name == "rclone":
            tool = Rclone(args.concurrency)
        elif name == "aws":
            exe, msg = awsenv.ensure_awscli(args.awscli_venv, args.awscli)
            _log(f"awscli: {msg}")
            aws = Aws(args.concurrency, exe, out / "aws-config")
            aws.write_config()
            tool = aws
        else:
            raise SystemExit(f"unknown tool {name!r}")
        why = tool.available()
        if why:
            notes.append(f"{name} skipped: {why}")
            _log(f"{name} skipped: {why}")
            continue
        tools.append(tool)
    return tools, notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.support.seaweed import SeaweedServer, find_weed, make_client

    started = time.perf_counter()
    spec = _spec(args)
    chosen = {n.strip() for n in args.scenarios.split(",") if n.strip()}
    if not chosen or chosen - set(scenarios.SETS) - {"snapshot"}:
        raise SystemExit(f"--scenarios: choose from {', '.join(scenarios.SETS)}, snapshot")
    sets = [scenarios.SETS[n] for n in scenarios.SETS if n in chosen]
    with_snapshot = "snapshot" in chosen
    snapshot_spec = dataset.with_overrides(spec, small_files=args.snapshot_files, large_files=0)
    names = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.scale == "1m":
        # baycat, plus the peers asked for that make only the initial sync (each adds
        # about as long as baycat's); rclone alone when --tools was not given.
        asked = [n for n in names if n != "baycat"]
        names = ["baycat", *(asked if args.tools != ",".join(ALL_TOOLS) else ["rclone"])]
    timeout = args.timeout or {"default": 900.0, "100k": 3600.0, "1m": 7200.0}[args.scale]
    # A snapshot-only run has its own report (and run directory), beside the others.
    suffix = ("" if args.scale == "default" else f"-{args.scale}") + (
        "" if sets else "-snapshot")
    run_dir = args.out / f"run{suffix or '-default'}"
    deletions.remove_tree(run_dir)
    run_dir.mkdir(parents=True)
    tools, notes = make_tools(names, args, run_dir)
    strace = not args.no_strace and procs.strace_available()
    if not args.no_strace and not strace:
        notes.append("strace not found: bytes read from local files were not measured")

    md_path = args.docs / f"benchmarks{suffix}.md"
    json_path = args.docs / f"benchmarks{suffix}.json"
    versions = {t.name: t.version() for t in tools}
    versions["SeaweedFS"] = _cmd_out([str(find_weed()), "version"]).splitlines()[0]
    versions["baycat commit"] = _cmd_out(["git", "-C", str(REPO), "describe", "--always",
                                          "--dirty"])
    count = {sc.name for sc in scenarios.ALL_SCENARIOS
             if args.count == "all" or (args.count == "resync" and sc.resync)}
    described = []
    if any(ss.name == "synthetic" for ss in sets):
        described.append(f"`--scale {args.scale}`: {spec.describe()}; changes touch "
                         f"{args.fraction:.0%} of the small files.")
    if any(ss.name == "realdata" for ss in sets):
        root = realdata.stdlib_root()
        described.append("Real data (`--scenarios realdata`): "
                         f"{realdata.stats(root).describe(root)}.")
    if with_snapshot:
        described.append(f"Snapshot scenario: {snapshot_spec.describe()}; each night "
                         f"modifies {args.fraction:.0%} of the small files.")
    meta: dict[str, Any] = {
        "command": "nox -s bench" + (" -- " + " ".join(argv or sys.argv[1:])
                                     if (argv or sys.argv[1:]) else ""),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "json_name": json_path.name,
        "machine": machine_info(run_dir),
        "versions": versions,
        "dataset": " ".join(described),
        "method": (_method(args, count, strace, timeout) if sets else []) + (
            _snapshot_method(strace) if with_snapshot else []),
        "scale": args.scale,
    }
    table: dict[tuple[str, str], Measurement] = {}
    rep = report.RunReport(meta, table, [t.name for t in tools],
                           {t.name: t.config() for t in tools}, notes=notes)
    with SeaweedServer(run_dir / "seaweed") as s3:
        _log(f"SeaweedFS at {s3.endpoint_url}; tools: {', '.join(rep.tools)}")
        client = make_client(s3.endpoint_url)
        try:
            if args.scale == "1m":
                baycat = next(t for t in tools if isinstance(t, Baycat))
                mil = scale.run_million(
                    baycat, spec, run_dir / "million", s3.endpoint_url, REPO, s3.create_bucket,
                    timeout_s=timeout, fraction=args.fraction, strace=strace, log=_log,
                    peers=[t for t in tools if t is not baycat], client=client)
                rep.million = mil.to_json()
                rep.update_vs_find = mil.update_vs_find
            else:
                for scenario_set in sets:
                    _run_passes(rep, tools, args, spec, run_dir, s3.endpoint_url, client,
                                s3.create_bucket, count, strace, timeout, scenario_set)
                baycat_tool = next((t for t in tools if isinstance(t, Baycat)), None)
                if sets and baycat_tool is not None and not args.no_encryption:
                    rep.encryption = encryption.run_encrypted_vs_plain(
                        baycat_tool, spec, run_dir / "encryption", s3.endpoint_url,
                        s3.create_bucket, timeout, _log)
                if sets and baycat_tool is not None:
                    rep.startup = startup.run_startup(baycat_tool, s3.endpoint_url,
                                                      s3.create_bucket, run_dir / "startup", _log)
            if with_snapshot:
                ctx = snapshot.SnapshotContext(
                    out=run_dir / "snapshot", repo_root=REPO, endpoint=s3.endpoint_url,
                    client=client, create_bucket=s3.create_bucket, spec=snapshot_spec,
                    fraction=args.fraction, timeout_s=timeout, strace=strace, log=_log)
                rep.snapshot = snapshot.run(ctx, tools, rep.table)
                if "skipped" in rep.snapshot:
                    notes.append(f"snapshot scenario skipped: {rep.snapshot['skipped']}")
        finally:
            client.close()
    baycat_tool = next((t for t in tools if isinstance(t, Baycat)), None)
    if sets and args.update_files and args.scale != "1m" and baycat_tool is not None:
        rep.update_vs_find = scale.update_tree_benchmark(
            baycat_tool, args.update_files, spec.seed, run_dir / "update-vs-find", timeout, _log)
        shutil.rmtree(run_dir / "update-vs-find", ignore_errors=True)
    if sets and not args.no_hash and args.scale != "1m":
        rep.hashbench = _hashbench(run_dir / "hash")
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    meta["method"].append(f"The whole run took {meta['elapsed_s'] / 60:.1f} minutes.")
    report.write(rep, md_path, json_path)
    _log(f"wrote {md_path} and {json_path} ({meta['elapsed_s']:.0f} s)")
    for t in (report.targets(rep) + report.snapshot_targets(rep) +
              (report.million_targets(rep.million) if rep.million else [])):
        _log(f"  {'MET ' if t.met else 'n/a ' if t.met is None else 'MISS'} {t.name}: "
             f"{t.measured} (goal {t.goal})")
    return 0


def _run_passes(rep: report.RunReport, tools: list[Tool], args: argparse.Namespace,
                spec: dataset.DatasetSpec, run_dir: Path, endpoint: str, client: Any,
                create_bucket: Any, count: set[str], strace: bool, timeout: float,
                scenario_set: scenarios.ScenarioSet) -> None:
    for counted in (False, True):
        if counted and args.count == "none":
            break
        label = "counted" if counted else "timed"
        ctx = scenarios.PassContext(
            out=run_dir / (label if scenario_set.name == "synthetic"
                           else f"{scenario_set.name}-{label}"), repo_root=REPO,
            endpoint=endpoint, client=client, create_bucket=create_bucket, spec=spec,
            fraction=args.fraction, timeout_s=timeout, log=_log)
        scenarios.run_pass(ctx, tools, rep.table, counted=counted, count=count, strace=strace,
                           scenario_set=scenario_set)
        # Trees of a finished pass are no longer needed; keep disk use bounded.
        deletions.remove_tree(ctx.out)


def _hashbench(directory: Path) -> dict[str, Any] | None:
    import json

    argv = [sys.executable, "-m", "benchmarks.hashbench", "--dir", str(directory)]
    r = procs.run(argv, dict(os.environ), timeout_s=600, workdir=directory / "run", cwd=REPO)
    shutil.rmtree(directory, ignore_errors=True)
    if not r.ok:
        _log(f"hash micro-benchmark failed: {r.failure()}")
        return None
    value: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    _log(f"hashbench: {value}")
    return value


def _method(args: argparse.Namespace, count: set[str], strace: bool,
            timeout: float) -> list[str]:
    _ = hashbench  # documented in its module; imported so `--help` users find it
    counted = ("every scenario" if args.count == "all" else
               "none" if args.count == "none" else "the re-sync scenarios only: " +
               ", ".join(sorted(count)))
    return [
        "SeaweedFS (`weed mini`, as the test fixture starts it) on 127.0.0.1; each tool "
        "syncs its own tree (generated from the same seed) into its own bucket under "
        "`data/`; every tool and the server talk only to loopback.",
        "Two passes on twin trees and buckets. Timed pass: plain runs (a scenario that "
        "changes nothing, no-change, runs 5 times round the tools and keeps each tool's "
        "fastest, and so does the large-files initial sync, 3 times, each a first sync "
        "into a prefix of its own; a failed run is kept whatever its time); wall time from "
        "spawn to reap; peak RSS = `ru_maxrss` of the tool as GNU `time -f %M` reports it "
        "from its `wait4` (the tool or the largest descendant it reaped; not the harness's "
        "own `wait4`, since Linux keeps the forking harness's high-water RSS across exec). "
        "Counted pass: the same sequence through the counting proxy "
        "(tests/support/counting_proxy.py; requests by method, `COPY` = PUT with "
        "x-amz-copy-source, `LIST` = bucket-level GETs)" +
        (" and under `strace -f -y`" if strace else "") + f"; counted scenarios: {counted}.",
        "Bytes read from local files: the sum of what read/pread64/readv/preadv/sendfile/"
        "copy_file_range returned for fds whose path (strace `-y`) lies in the tree being "
        "synced (or the restore target). Exact for syscall reads; socket reads and the "
        "tool's own libraries are excluded by path; mmap'd files are counted separately "
        "(none seen). rusage/`/proc/PID/io` were not used: `rchar` includes sockets and "
        "`read_bytes` only counts page-cache misses.",
        "Correctness after every timed run: the bucket holds every source file with the "
        "same size and MD5 (ETag, or a download for multipart objects), and — except after "
        "`rename`, which runs without the delete option — no other object; a restored "
        "tree must equal the source byte for byte. baycat's `.baycat/` state is skipped.",
        "The page cache is warm (trees were just written); before each scenario the "
        "harness waits until 2.1 s have passed since the last change to any tree (see "
        "benchmarks/scenarios.py). Tool order rotates by one per scenario. Restores go to "
        "new directories, and a timed restore starts at least 62 s after the harness last "
        "deleted a tree: this disk's ext4 (no journal) skips inodes freed within the last "
        "60 s, so files created right after a mass deletion cost more system time "
        "(benchmarks/deletions.py).",
        f"Per-command timeout {timeout:.0f} s (× 3 in the counted pass); a tool that fails "
        "or times out is reported as failed, never compared.",
    ]


def _snapshot_method(strace: bool) -> list[str]:
    return [
        "Snapshot scenario (benchmarks/snapshot.py): an ext4 image (`mkfs.ext4`, generated "
        "through a loop mount), mounted `-o loop,ro` at a new path each night; night N+1 is "
        "a `cp --sparse=always` of night N's image with the changes applied through a "
        "read-write loop mount of the copy: the same inodes, sizes and times but the "
        "changes, under another device number (the previous night stays mounted, so the "
        "loop devices differ). Every tool syncs the same mount to its own bucket (delete "
        "option on, as a nightly mirror runs); timed runs, each checked against the "
        "snapshot, and counted runs (proxy" + (", strace with open calls" if strace else "")
        + ") into a twin bucket. The whole snapshot is stat'ed once (`find`) before a "
        "night's runs, so no tool pays alone for a cold inode cache. baycat's state lives "
        "in `$XDG_STATE_HOME/baycat/` (a directory of the run); night 3 starts it empty.",
        "Files opened: regular files under the snapshot opened by a successful "
        "open/openat (not `O_PATH`), from the same strace log as the bytes read.",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
