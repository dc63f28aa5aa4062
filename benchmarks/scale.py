"""Scale scenarios: millions of files (issue 8) and `manifest update` vs `find`
(issue 2). baycat only, but for the million-file initial sync, which the peers given
(`--tools`; rclone by default) make first, each of the same tree to its own bucket, so
the slowest and most expensive step has a baseline from the same run (issue 18).

`find DIR -printf '%s %T@\\n' >/dev/null` is the yardstick: it stats every entry and
prints two numbers, the least any tool must do to notice a change without reading
files. Each `find` and each baycat no-change run is done twice and the faster kept
(the tree is in the page cache either way).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dataset, fileio, mutate, procs, verify
from .proxy import CountingProxyProcess, requests_of
from .results import parse_json_summary
from .tools import PREFIX, Baycat, Tool

SETTLE_S = 2.1


def find_argv(root: Path) -> list[str]:
    return ["find", str(root), "-printf", "%s %T@\\n"]


def best_of(n: int, argv: list[str], env: dict[str, str], workdir: Path,
            timeout_s: float, *, discard: bool = False) -> procs.RunResult:
    """The fastest successful of `n` runs (or the last failure)."""
    best: procs.RunResult | None = None
    for i in range(n):
        r = procs.run(argv, env, timeout_s=timeout_s, workdir=workdir / str(i),
                      discard_stdout=discard)
        if not r.ok:
            return r
        if best is None or r.wall_s < best.wall_s:
            best = r
    assert best is not None
    return best


def manifest_update_vs_find(baycat: Baycat, tree: Path, workdir: Path,
                            timeout_s: float) -> dict[str, Any]:
    """`baycat manifest update TREE` on an unchanged tree (its manifest exists) vs find."""
    env = dict(os.environ)
    f = best_of(2, find_argv(tree), env, workdir / "find", timeout_s, discard=True)
    b = best_of(2, [str(baycat.exe), "manifest", "update", str(tree)], env,
                workdir / "update", timeout_s)
    out: dict[str, Any] = {
        "tree": str(tree), "entries": count_entries(tree),
        "find_s": f.wall_s if f.ok else None, "find_failure": f.failure(),
        "update_s": b.wall_s if b.ok else None, "update_failure": b.failure(),
        "update_peak_rss_kib": b.peak_rss_kib,
    }
    out["ratio"] = (b.wall_s / f.wall_s) if f.ok and b.ok and f.wall_s > 0 else None
    return out


def update_tree_benchmark(baycat: Baycat, files: int, seed: int, out: Path, timeout_s: float,
                          log: Callable[[str], None]) -> dict[str, Any]:
    """Issue 2: a dedicated tree of `files` small files (64 B–1 KiB: `find` and a
    no-change update never read content, so sizes don't matter), `manifest create`d
    once, then `manifest update` vs `find` on it."""
    spec = dataset.DatasetSpec(seed=seed, small_files=files, small_min=64,
                               small_max=1024, large_files=0)
    tree = out / "tree"
    dataset.generate(spec, tree)
    time.sleep(SETTLE_S)
    create = procs.run([str(baycat.exe), "manifest", "create", str(tree)], dict(os.environ),
                       timeout_s=timeout_s, workdir=out / "create")
    if not create.ok:
        return {"tree": str(tree), "entries": count_entries(tree), "find_s": None,
                "update_s": None, "ratio": None, "update_peak_rss_kib": 0,
                "update_failure": "manifest create: " + create.failure(), "find_failure": ""}
    time.sleep(SETTLE_S)
    res = manifest_update_vs_find(baycat, tree, out / "runs", timeout_s)
    res["create_s"] = create.wall_s
    res["create_peak_rss_kib"] = create.peak_rss_kib
    log(f"manifest update vs find: {res}")
    return res


def count_entries(root: Path) -> int:
    """Files + directories below `root`, not counting the top-level `.baycat`."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root) and ".baycat" in dirnames:
            dirnames.remove(".baycat")
        n += len(dirnames) + len(filenames)
    return n


@dataclass(slots=True)
class MillionResult:
    spec: str
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifest_bytes: int | None = None
    entries: int | None = None
    update_vs_find: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec, "steps": self.steps, "manifest_bytes": self.manifest_bytes,
                "entries": self.entries, "update_vs_find": self.update_vs_find}


def run_million(baycat: Baycat, spec: dataset.DatasetSpec, out: Path, endpoint: str,
                repo_root: Path, create_bucket: Callable[[str], None], *, timeout_s: float,
                fraction: float, strace: bool, log: Callable[[str], None],
                peers: list[Tool] | None = None, client: Any = None) -> MillionResult:
    """Issue 8's figures for baycat on a large tree (the `--scale 1m` set), and the
    `peers`' initial syncs of the same tree (checked object by object with `client`)."""
    res = MillionResult(spec.describe())
    tree, bucket = out / "tree", "baycat-scale"
    t0 = time.perf_counter()
    files, size = dataset.generate(spec, tree)
    res.steps["generate"] = {"wall_s": time.perf_counter() - t0, "files": files, "bytes": size}
    log(f"[scale] generated {files:,} files, {size / 1e9:.2f} GB")
    create_bucket(bucket)
    time.sleep(SETTLE_S)
    if peers:
        _peer_initial_syncs(peers, tree, out, endpoint, create_bucket, client, timeout_s,
                            res, log)

    def timed(step: str, runs: int = 1) -> None:
        inv = baycat.sync(tree, bucket, endpoint, delete=False)
        r = best_of(runs, inv.argv, inv.env, out / "runs" / step, timeout_s)
        res.steps[step] = {"wall_s": r.wall_s, "peak_rss_kib": r.peak_rss_kib,
                           "failure": r.failure(), "summary": parse_json_summary(r.stdout)}
        log(f"[scale] {step}: {r.wall_s:.1f} s, {r.peak_rss_kib // 1024} MiB {r.failure()}")

    def counted(step: str) -> None:
        wd = out / "runs" / step
        slog = wd / "strace.log"
        with CountingProxyProcess(endpoint, wd / "proxy", repo_root) as proxy:
            inv = baycat.sync(tree, bucket, proxy.endpoint_url, delete=False)
            argv = procs.strace_argv(inv.argv, slog) if strace else inv.argv
            r = procs.run(argv, inv.env, timeout_s=timeout_s * 3, workdir=wd)
        summary = parse_json_summary(r.stdout) or {}
        step_out: dict[str, Any] = {
            "counted_wall_s": r.wall_s, "failure": r.failure(),
            "requests": requests_of(proxy.snapshot),
            "manifest_bytes_uploaded": summary.get("manifest_bytes_uploaded"),
            "manifest_bytes_downloaded": summary.get("manifest_bytes_downloaded"),
            "summary": summary,
        }
        if strace and slog.exists():
            reads = fileio.parse_strace(slog, tree)
            step_out["file_bytes_read"] = reads.bytes_read
            step_out["state_bytes_read"] = reads.state_bytes
            slog.unlink()
        res.steps[step] = step_out
        log(f"[scale] {step}: {step_out['requests']} read={step_out.get('file_bytes_read')}")

    timed("initial")
    if peers:
        res.steps["initial"]["peers"] = [p.name for p in peers]
    time.sleep(SETTLE_S)
    timed("no-change", runs=2)
    f = best_of(2, find_argv(tree), dict(os.environ), out / "runs" / "find", timeout_s,
                discard=True)
    res.steps["find"] = {"wall_s": f.wall_s, "failure": f.failure()}
    counted("no-change-counted")
    mutate.apply(tree, "modify", fraction, spec.seed)
    time.sleep(SETTLE_S)
    timed("one-percent-changed")
    mutate.apply(tree, "modify", 1e-12, spec.seed + 1)  # exactly one file
    time.sleep(SETTLE_S)
    counted("one-file-changed")
    manifest = tree / ".baycat" / "manifest"
    res.manifest_bytes = manifest.stat().st_size if manifest.exists() else None
    res.entries = count_entries(tree)
    res.update_vs_find = manifest_update_vs_find(baycat, tree, out / "runs" / "update",
                                                 timeout_s)
    return res


def _peer_initial_syncs(peers: list[Tool], tree: Path, out: Path, endpoint: str,
                        create_bucket: Callable[[str], None], client: Any, timeout_s: float,
                        res: MillionResult, log: Callable[[str], None]) -> None:
    """Each peer's initial sync of `tree` (before baycat's: the tree has no .baycat
    yet), timed once, then checked against the tree's contents (not timed). A wrong
    result is recorded as a failure: it is never the baseline."""
    source = verify.tree_digest(tree)
    for peer in peers:
        bucket = f"{peer.name}-scale"
        create_bucket(bucket)
        inv = peer.sync(tree, bucket, endpoint, delete=False)
        r = best_of(1, inv.argv, inv.env, out / "runs" / f"initial-{peer.name}", timeout_s)
        failure = r.failure()
        if not failure:
            v = verify.check_bucket(client, bucket, PREFIX, source, exact=True)
            failure = "" if v.ok else f"wrong result: {v.detail}"
        res.steps[f"initial ({peer.name})"] = {"wall_s": r.wall_s,
                                               "peak_rss_kib": r.peak_rss_kib,
                                               "failure": failure}
        log(f"[scale] initial ({peer.name}): {r.wall_s:.1f} s, "
            f"{r.peak_rss_kib // 1024} MiB {failure}")
