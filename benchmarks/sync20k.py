"""Issue 3's figures: one run on a 20,000-file tree against SeaweedFS on loopback —
first sync, no-change re-sync, 1 % changed re-sync, restore — with wall times and the
requests baycat reports (the test suite checks those equal what the server receives).

    python -m benchmarks.sync20k        (from the repository root, baycat installed)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.seaweed import SeaweedServer

FILES_PER_DIR = 100
DIRS = 200


def _make_tree(root: Path, rng: random.Random) -> list[Path]:
    paths = []
    for d in range(DIRS):
        directory = root / f"d{d // 20}" / f"e{d}"
        directory.mkdir(parents=True)
        for f in range(FILES_PER_DIR):
            path = directory / f"f{f}.dat"
            path.write_bytes(rng.randbytes(rng.randrange(1024, 8192)))
            paths.append(path)
    return paths


def _run(env: dict[str, str], *args: str) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(["baycat", *args, "--json"], env=env, capture_output=True)
    wall = time.perf_counter() - started
    summary = json.loads(proc.stdout)
    return {"wall_s": round(wall, 2), "exit": proc.returncode, "requests": summary["requests"],
            "uploaded": summary["uploaded"]["files"],
            "downloaded": summary["downloaded"]["files"],
            "manifest_up": summary["manifest_bytes_uploaded"],
            "manifest_down": summary["manifest_bytes_downloaded"]}


def main() -> None:
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as tmp, SeaweedServer(Path(tmp) / "seaweed") as s3:
        s3.create_bucket("bench")
        env = {**os.environ, "AWS_ACCESS_KEY_ID": s3.access_key,
               "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": s3.endpoint_url}
        tree = Path(tmp) / "tree"
        paths = _make_tree(tree, rng)
        time.sleep(2.2)  # past the racy window, as a nightly tree would be
        url = "s3://bench/t20k/"
        out: dict[str, Any] = {"first sync": _run(env, "sync", str(tree), url),
                               "no-change re-sync": _run(env, "sync", str(tree), url)}
        for path in rng.sample(paths, len(paths) // 100):
            path.write_bytes(rng.randbytes(3000))
        out["1% changed re-sync"] = _run(env, "sync", str(tree), url)
        restored = Path(tmp) / "restored"
        out["restore"] = _run(env, "restore", url, str(restored))
        same = subprocess.run(["diff", "-r", "-x", ".baycat", str(tree), str(restored)],
                              capture_output=True).returncode == 0
        out["restore identical"] = same
        shutil.rmtree(restored)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
