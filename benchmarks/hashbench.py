"""Micro-benchmark: does hashing scale with `--pool-size`?

Target (issue 7): hashing with P threads reaches >= 0.8 x P x the single-thread xxh3
rate, for P up to the core count.

Measured in a separate interpreter (`python -m benchmarks.hashbench`), on files already
in the page cache (so the disk is not what is measured):

- `xxh3_1t`: one thread, `xxhash.xxh3_128().update()` over an in-memory buffer in 1 MiB
  blocks (the hasher's block size): the pure hash rate, the target's yardstick;
- `xxh3_threads[P]`: the same on P threads, each over its own buffer: what this machine
  (GIL, memory bandwidth, noisy neighbours) allows at best;
- `pool[P]`: baycat's own `hasher.hash_file` on P threads (the unit of work the engine
  gives its `--pool-size` pool), over `files` files of `file_mib` MiB: read + hash.

Each figure is the best of `repeats` runs. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MiB = 1 << 20


def _xxh3_buffer(data: bytes) -> None:
    import xxhash

    view = memoryview(data)
    h = xxhash.xxh3_128()
    for off in range(0, len(data), MiB):
        h.update(view[off:off + MiB])
    h.digest()


def xxh3_rate(buffer_mib: int, repeats: int, threads: int = 1) -> float:
    """Bytes per second of xxh3 over memory on `threads` threads (one buffer each)."""
    buffers = [random.Random(i).randbytes(buffer_mib * MiB) for i in range(threads)]
    best = float("inf")
    with ThreadPoolExecutor(threads) as ex:
        for _ in range(repeats):
            start = time.perf_counter()
            list(ex.map(_xxh3_buffer, buffers))
            best = min(best, time.perf_counter() - start)
    return buffer_mib * MiB * threads / best


def make_files(directory: Path, files: int, file_mib: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        p = directory / f"h{i:03d}.bin"
        if not p.exists() or p.stat().st_size != file_mib * MiB:
            p.write_bytes(random.Random(i).randbytes(file_mib * MiB))
        paths.append(p)
    return paths


def pool_rate(paths: list[Path], pool: int, repeats: int) -> float:
    from baycat.entry import FILE, entry_from_stat
    from baycat.scan.hasher import hash_file

    jobs = [(os.fsencode(p), entry_from_stat(os.fsencode(p.name), FILE, p.stat()))
            for p in paths]
    total = sum(p.stat().st_size for p in paths)
    best = float("inf")
    with ThreadPoolExecutor(pool) as ex:
        for _ in range(repeats + 1):  # the first round warms the page cache
            start = time.perf_counter()
            results = list(ex.map(lambda job: hash_file(*job), jobs))
            elapsed = time.perf_counter() - start
            if any(r.entry is None for r in results):
                raise RuntimeError("hash_file failed: " + results[0].error)
            best = min(best, elapsed)
    return total / best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hashbench")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--file-mib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pools", default="", help="comma-separated; default 1..cores")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    pools = [int(p) for p in args.pools.split(",") if p] or list(range(1, cores + 1))
    rate1 = xxh3_rate(args.file_mib, args.repeats)
    paths = make_files(args.dir, args.files, args.file_mib)
    out: dict[str, Any] = {
        "cores": cores, "files": args.files, "file_mib": args.file_mib,
        "xxh3_1t_bytes_per_s": rate1, "pool": {}, "loadavg_before": os.getloadavg(),
    }
    for p in pools:
        rate = pool_rate(paths, p, args.repeats)
        pure = rate1 if p == 1 else xxh3_rate(args.file_mib, args.repeats, p)
        out["pool"][str(p)] = {
            "bytes_per_s": rate,
            "xxh3_threads_bytes_per_s": pure,
            "vs_xxh3_1t": rate / rate1,
            "target": 0.8 * min(p, cores),
            "met": rate / rate1 >= 0.8 * min(p, cores),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
