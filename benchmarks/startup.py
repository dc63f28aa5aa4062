"""Start-up cost (issue 18): what every baycat command pays before it does anything.

Best of REPEATS wall times, each against a baseline measured in the same run:
`python -c pass` (the interpreter baycat runs on), `baycat --version`, and a no-change
sync of a 1-file tree to a local directory (the embedded default) and to the S3 server.
Goals: `--version` ≤ 5× `python -c pass`; a 1-file no-change sync ≤ 0.15 s. Run by
benchmarks/run.py beside the scenarios (same server).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.tools import Baycat

REPEATS = 15
VERSION_GOAL = 5.0  # × python -c pass
ONE_FILE_GOAL_S = 0.15


def _best_wall(argv: list[str], env: dict[str, str]) -> float:
    # Not procs.run: its GNU time wrapper adds a fork and an exec to every figure,
    # as much as the 15 ms baseline itself.
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        best = min(best, time.perf_counter() - started)
    return best


def run_startup(baycat: Baycat, endpoint: str, create_bucket: Callable[[str], None],
                workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    shutil.rmtree(workdir, ignore_errors=True)
    tree = workdir / "src"
    tree.mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"a\n")
    bucket = "startup"
    create_bucket(bucket)
    s3 = baycat.sync(tree, bucket, endpoint, delete=False)
    env = s3.env
    local = [str(baycat.exe), "sync", "--json", "--no-progress", str(tree),
             str(workdir / "dst")]
    for argv in (local, s3.argv):  # the first syncs: what follows changes nothing
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    interpreter = Path(baycat.exe).parent / "python"
    python = str(interpreter if interpreter.exists() else sys.executable)
    out: dict[str, Any] = {
        "repeats": REPEATS,
        "python_pass_s": _best_wall([python, "-c", "pass"], env),
        "version_s": _best_wall([str(baycat.exe), "--version"], env),
        "no_change_local_s": _best_wall(local, env),
        "no_change_s3_s": _best_wall(s3.argv, env),
        "version_goal": VERSION_GOAL, "one_file_goal_s": ONE_FILE_GOAL_S,
    }
    out["version_ratio"] = out["version_s"] / out["python_pass_s"]
    shutil.rmtree(workdir, ignore_errors=True)
    log(f"startup: {out}")
    return out
