"""A reverse proxy that counts S3 requests and bytes by request category.

SeaweedFS's own metrics lump HEAD with GET, so tests and benchmarks count at the
wire instead. Requests are relayed byte for byte (SigV4 stays valid); see
`_forwarding` for the relay itself.

Categories (path-style S3 only; `classify` is the single source of truth):

- ``COPY``: PUT with an ``x-amz-copy-source`` header (CopyObject, UploadPartCopy);
- ``LIST``: GET without a key (ListBuckets, ListObjects, and other bucket-level
  GETs such as GetBucketVersioning), or any GET with a ``list-type``,
  ``versions``, ``uploads`` or ``uploadId`` (ListParts) query parameter;
- ``GET``, ``HEAD``, ``PUT``, ``POST``, ``DELETE``: by method otherwise;
- ``OTHER``: anything else (OPTIONS, ...).

Counting slows request-heavy tools by 25-40% (S3-SERVERS.md): time runs without
the proxy, count with it.

In-process::

    with CountingProxy(s3.endpoint_url) as proxy:
        client = make_client(proxy.endpoint_url)
        ...
        assert proxy.counts() == {"PUT": 3, "LIST": 1}

As a process for foreign tools (s5cmd, rclone, aws)::

    python -m tests.support.counting_proxy --upstream http://127.0.0.1:8333 \\
        --port-file port.txt --counts-file counts.json
    # ... SIGTERM or SIGINT writes `snapshot()` as JSON to counts.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
import threading
from collections import Counter
from pathlib import Path

from ._forwarding import FORWARD, Exchange, ForwardingProxy, Plan, Request

CATEGORIES = ("GET", "HEAD", "PUT", "POST", "DELETE", "LIST", "COPY", "OTHER")
_LIST_PARAMS = ("list-type", "versions", "uploads", "uploadId")


def classify(req: Request) -> str:
    """The category of one request (see the module docstring)."""
    method = req.method
    if method == "PUT" and req.head.get("x-amz-copy-source") is not None:
        return "COPY"
    if method == "GET":
        _, key = req.bucket_and_key
        query = req.query
        if not key or any(p in query for p in _LIST_PARAMS):
            return "LIST"
    return method if method in CATEGORIES else "OTHER"


class CountingProxy(ForwardingProxy):
    """Counts requests, wire bytes (heads included) and response statuses.

    Counters are updated before the bytes they describe are written, so they
    are exact as soon as a client call returns. Readers may call from any
    thread. Bytes "up" go to the server (request heads and bodies), bytes
    "down" go to the client (interim, heads and bodies).
    """

    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0,
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__(upstream, host=host, port=port, tls=tls)
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._up: Counter[str] = Counter()
        self._down: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()

    def on_request(self, ex: Exchange) -> Plan:
        ex.tag = classify(ex.request)
        with self._lock:
            self._requests[ex.tag] += 1
        return FORWARD

    def on_bytes(self, ex: Exchange, upstream: bool, n: int) -> None:
        with self._lock:
            (self._up if upstream else self._down)[ex.tag] += n

    def on_response(self, ex: Exchange, status: int) -> None:
        with self._lock:
            self._statuses[status] += 1

    def counts(self) -> Counter[str]:
        """Requests per category; missing categories read as 0, and equality
        with a plain dict ignores zero entries."""
        with self._lock:
            return Counter(self._requests)

    def total(self) -> int:
        with self._lock:
            return sum(self._requests.values())

    def bytes_up(self) -> Counter[str]:
        """Bytes sent to the server per category (heads + bodies)."""
        with self._lock:
            return Counter(self._up)

    def bytes_down(self) -> Counter[str]:
        """Bytes sent to the client per category (heads + bodies)."""
        with self._lock:
            return Counter(self._down)

    def statuses(self) -> Counter[int]:
        """Final response statuses relayed from the server."""
        with self._lock:
            return Counter(self._statuses)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._up.clear()
            self._down.clear()
            self._statuses.clear()

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Every counter as JSON-ready dicts (all categories present)."""
        with self._lock:
            return {
                "requests": {c: self._requests[c] for c in CATEGORIES},
                "bytes_up": {c: self._up[c] for c in CATEGORIES},
                "bytes_down": {c: self._down[c] for c in CATEGORIES},
                "statuses": {str(s): n for s, n in sorted(self._statuses.items())},
            }


def _write_atomically(path: Path, text: str) -> None:
    # Readers poll for the file: they must never see it half-written.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def _main(args: argparse.Namespace) -> None:
    proxy = CountingProxy(args.upstream, host=args.host, port=args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await proxy.astart()
    try:
        if args.port_file is not None:
            _write_atomically(args.port_file, f"{proxy.port}\n")
        else:
            print(proxy.endpoint_url, flush=True)
        await stop.wait()
    finally:
        await proxy.aclose()
    report = json.dumps(proxy.snapshot(), indent=2, sort_keys=True) + "\n"
    if args.counts_file is not None:
        _write_atomically(args.counts_file, report)
    else:
        sys.stdout.write(report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.counting_proxy",
        description="Count S3 requests and bytes passing to an upstream endpoint.",
    )
    parser.add_argument("--upstream", required=True, help="S3 endpoint, http://host:port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="listen port (default: a free one)")
    parser.add_argument("--port-file", type=Path, help="write the listen port here once listening")
    parser.add_argument(
        "--counts-file", type=Path, help="on SIGTERM/SIGINT write counts as JSON here (or stdout)"
    )
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
