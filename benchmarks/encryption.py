"""baycat encrypted beside baycat plain (issue 17): initial sync, no-change re-sync and
restore of the run's dataset, in the same run against the same server.

Two twin trees from the same seed (each sync keeps its own SRC/.baycat, so neither
inherits the other's hashes), two buckets; the steps alternate plain, encrypted, so both
see the same load. The encrypted runs take the password from a file (`--password-file`),
so each pays the scrypt derivation (~0.15 s) as a cron job would. Goal: ≤ 1.3× plain.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import dataset, procs
from .results import parse_json_summary
from .tools import Baycat

GOAL = 1.3
STEPS = ("initial sync", "no-change re-sync", "restore")


def run_encrypted_vs_plain(baycat: Baycat, spec: dataset.DatasetSpec, workdir: Path,
                           endpoint: str, create_bucket: Callable[[str], None],
                           timeout_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    password = workdir / "password"
    password.write_text("correct horse battery staple\n")
    password.chmod(0o600)
    modes: dict[str, list[str]] = {"plain": [], "encrypted": ["--password-file",
                                                               str(password)]}
    trees: dict[str, Path] = {}
    for mode in modes:
        trees[mode] = workdir / f"src-{mode}"
        dataset.generate(spec, trees[mode])
        create_bucket(f"enc-{mode}")
    out: dict[str, Any] = {"spec": spec.describe(), "goal": GOAL, "steps": {}}

    def step(name: str, mode: str, argv: list[str], env: dict[str, str]) -> None:
        r = procs.run(argv, env, timeout_s=timeout_s, workdir=workdir / "runs" / mode / name)
        summary = parse_json_summary(r.stdout) or {}
        got = out["steps"].setdefault(name, {})
        got[mode] = {"wall_s": r.wall_s if r.ok else None, "failure": r.failure(),
                     "peak_rss_kib": r.peak_rss_kib, "requests": summary.get("requests")}
        log(f"encryption: {name} {mode}: {r.wall_s:.2f} s {r.failure()}")

    for name in STEPS:
        for mode, extra in modes.items():
            bucket = f"enc-{mode}"
            if name == "restore":
                inv = baycat.restore(bucket, workdir / f"restored-{mode}", endpoint)
            else:
                inv = baycat.sync(trees[mode], bucket, endpoint, delete=False)
                if name == "initial sync" and extra:
                    extra = ["--encrypt", *extra]
            # Options before SRC DST (the last two arguments).
            argv = [*inv.argv[:-2], *extra, *inv.argv[-2:]]
            step(name, mode, argv, inv.env)
    for mode in modes:
        same = subprocess.run(["diff", "-rq", "--exclude=.baycat", str(trees[mode]),
                               str(workdir / f"restored-{mode}")], capture_output=True,
                              check=False)
        out[f"{mode}_restore_identical"] = same.returncode == 0
    for got in out["steps"].values():
        p, e = got["plain"]["wall_s"], got["encrypted"]["wall_s"]
        got["ratio"] = e / p if p and e else None
    shutil.rmtree(workdir, ignore_errors=True)
    return out
