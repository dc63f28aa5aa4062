"""Small-object request rate: bare aiobotocore vs S3Store on botocore vs S3Store's fast path.

Standalone: starts its own SeaweedFS, PUTs then GETs N objects of SIZE bytes at each
concurrency with each client, and reports requests/s and client CPU seconds
(`time.process_time`, this process only: the server is another process) per 1,000
requests. The clients alternate within a round, and rounds repeat, because the machine
is shared: compare numbers of the same round.

    /work/venv/bin/python benchmarks/reqrate.py [--objects 3000] [--size 4096]
        [--concurrency 32 64] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from baycat.store.base import Fetched
from baycat.store.s3 import S3Store
from baycat.store.s3_options import S3Options
from tests.support.seaweed import SeaweedServer

Op = Callable[[int], Awaitable[None]]
Timings = dict[str, tuple[float, float]]  # op → (wall s, CPU s)
# (server, bucket, prefix, objects, concurrency, body) → timings
Client = Callable[[SeaweedServer, str, str, int, int, bytes], Coroutine[Any, Any, Timings]]


async def _drive(n: int, concurrency: int, op: Op) -> tuple[float, float]:
    """Run op(0..n-1) on `concurrency` workers; (wall s, CPU s)."""
    items = iter(range(n))

    async def worker() -> None:
        for i in items:
            await op(i)

    cpu, wall = time.process_time(), time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return time.perf_counter() - wall, time.process_time() - cpu


async def bare(s3: SeaweedServer, bucket: str, prefix: str, n: int, concurrency: int,
               body: bytes) -> Timings:
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    config = AioConfig(max_pool_connections=concurrency + 8,
                       retries={"max_attempts": 5, "mode": "standard"},
                       request_checksum_calculation="when_required",
                       response_checksum_validation="when_required",
                       s3={"addressing_style": "path"})
    async with get_session().create_client(
            "s3", endpoint_url=s3.endpoint_url, region_name="us-east-1", config=config,
            aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key) as c:
        async def put(i: int) -> None:
            await c.put_object(Bucket=bucket, Key=f"{prefix}{i}", Body=body, ContentMD5=md5)

        async def get(i: int) -> None:
            r = await c.get_object(Bucket=bucket, Key=f"{prefix}{i}")
            async with r["Body"] as b:
                assert len(await b.read()) == len(body)

        return {"PUT": await _drive(n, concurrency, put), "GET": await _drive(n, concurrency, get)}


async def store(s3: SeaweedServer, bucket: str, prefix: str, n: int, concurrency: int,
                body: bytes, fast: bool) -> Timings:
    md5 = hashlib.md5(body).digest()
    st = S3Store(bucket, prefix, S3Options(
        endpoint_url=s3.endpoint_url, region="us-east-1", access_key_id=s3.access_key,
        secret_access_key=s3.secret_key, max_connections=concurrency + 8, fast_path=fast))
    await st.open()
    try:
        async def put(i: int) -> None:
            await st.put(str(i), body, md5=md5)

        async def get(i: int) -> None:
            got = await st.get(str(i))
            assert isinstance(got, Fetched) and len(got.data) == len(body)

        out = {"PUT": await _drive(n, concurrency, put), "GET": await _drive(n, concurrency, get)}
        assert sum(st.requests.values()) == 2 * n, st.requests  # no retries hid in there
        return out
    finally:
        await st.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    body = os.urandom(args.size)
    clients: dict[str, Client] = {
        "aiobotocore": bare,
        "S3Store botocore": partial(store, fast=False),
        "S3Store fast": partial(store, fast=True),
    }
    rows: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory() as tmp, SeaweedServer(Path(tmp)) as s3:
        s3.create_bucket("bench")
        print(f"{args.objects} x {args.size} B objects, SeaweedFS {s3.endpoint_url}")
        print(f"{'round':>5} {'conc':>4} {'client':<17} {'op':<3} {'req/s':>7} "
              f"{'CPU s/1k req':>12}")
        for rnd in range(1, args.rounds + 1):
            for conc in args.concurrency:
                for name, run in clients.items():
                    prefix = f"r{rnd}c{conc}{name.replace(' ', '')}/"
                    result = asyncio.run(run(s3, "bench", prefix, args.objects, conc, body))
                    for op, (wall, cpu) in result.items():
                        rate, cpu_k = args.objects / wall, cpu / args.objects * 1000
                        rows.append((rnd, conc, name, op, rate, cpu_k))
                        print(f"{rnd:>5} {conc:>4} {name:<17} {op:<3} {rate:>7.0f} "
                              f"{cpu_k:>12.3f}", flush=True)


if __name__ == "__main__":
    main()
