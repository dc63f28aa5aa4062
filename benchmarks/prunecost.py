"""Issue 16's figure: what `forget --prune` costs and frees on a 10,000-file backup with
10 generations, on a versioned SeaweedFS bucket (and an unversioned one).

Each of the 10 syncs changes 5 % of the files and deletes 1 % (kept, marked deleted);
then `forget --keep-last 3 --prune --grace 0`. Prints the requests (LIST pages, batched
deletes) and the objects and bytes freed, as baycat reports them.

    python -m benchmarks.prunecost        (from the repository root, baycat installed)
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.seaweed import SeaweedServer

FILES = 10_000
GENERATIONS = 10


def _baycat(env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "baycat", *args], env=env,
                          capture_output=True, check=False)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"baycat {args} exited {proc.returncode}: {proc.stderr.decode()}")
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def _bucket_bytes(client: Any, bucket: str) -> tuple[int, int]:
    """(versions, bytes) of every version in the bucket."""
    count = size = 0
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            count += 1
            size += version["Size"]
    return count, size


def run(s3: SeaweedServer, tmp: Path, bucket: str, versioned: bool) -> dict[str, Any]:
    rng = random.Random(16)
    s3.create_bucket(bucket, versioning=versioned)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": s3.access_key,
           "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": s3.endpoint_url}
    tree = tmp / f"tree-{bucket}"
    paths = []
    for i in range(FILES):
        path = tree / f"d{i // 100}" / f"f{i}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randrange(512, 4096)))
        paths.append(path)
    url = f"s3://{bucket}/host/"
    for n in range(GENERATIONS):
        if n:
            live = [p for p in paths if p.exists()]
            for path in rng.sample(live, FILES // 20):
                path.write_bytes(rng.randbytes(rng.randrange(512, 4096)))
            for path in rng.sample(live, FILES // 100):
                path.unlink(missing_ok=True)
        _baycat(env, "sync", "--json", str(tree), url)
    before = _bucket_bytes(s3.client(), bucket)
    started = time.perf_counter()
    done = _baycat(env, "forget", "--json", "--keep-last", "3", "--prune", "--grace", "0",
                   url)
    wall = time.perf_counter() - started
    after = _bucket_bytes(s3.client(), bucket)
    prune = done["prune"]
    return {"versioned": versioned, "wall_s": round(wall, 2), "requests": done["requests"],
            "generations_forgotten": len(done["forgotten"]),
            "entries_dropped": prune["entries_dropped"],
            "deleted_objects": prune["deleted_objects"],
            "deleted_versions": prune["deleted_versions"],
            "deleted_packs": prune["gc"]["deleted_packs"],
            "freed_objects": prune["freed_objects"], "freed_bytes": prune["freed_bytes"],
            "bucket_versions_before": before[0], "bucket_bytes_before": before[1],
            "bucket_versions_after": after[0], "bucket_bytes_after": after[1]}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, SeaweedServer(Path(tmp) / "seaweed") as s3:
        for bucket, versioned in (("prune-versioned", True), ("prune-plain", False)):
            print(json.dumps(run(s3, Path(tmp), bucket, versioned)), flush=True)


if __name__ == "__main__":
    main()
