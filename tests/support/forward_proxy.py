"""A forward HTTP proxy on loopback that counts what passes through it.

Clients configured with `HTTP_PROXY=http://127.0.0.1:PORT` send absolute-form requests
(`PUT http://127.0.0.1:8333/bucket/key HTTP/1.1`). This proxy accepts only those, and
only for its one upstream: a request in origin form (a client that went to the proxy
as if it were the server) or for another host is answered 400 / 502 and counted
under `refused`, so a test sees exactly which requests went through the proxy.
Forwarded requests have their target turned into origin form; every other byte
(the Host header the client signed, the body, `Expect: 100-continue` and the
server's interim answer) is relayed unchanged. Counts are by `counting_proxy.classify`.

`ConnectProxy` is the HTTPS side: CONNECT tunnels to one loopback port (a TLS front),
counted by target; what passes inside is the TLS front's to count.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from ._forwarding import Exchange, Plan
from .counting_proxy import CountingProxy

_BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
_BAD_GATEWAY = (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class ForwardProxy(CountingProxy):
    """Forwards absolute-form requests for `upstream` (http://host:port) and counts them."""

    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(upstream, host=host, port=port)
        self.refused: Counter[str] = Counter()
        self._authority = urlsplit(self.upstream_url).netloc

    def on_request(self, ex: Exchange) -> Plan:
        target = urlsplit(ex.request.target)
        if target.scheme != "http":
            self.refused["origin-form"] += 1
            return Plan(label="origin-form", respond=_BAD_REQUEST)
        if target.netloc != self._authority:
            self.refused[target.netloc] += 1
            return Plan(label="other-host", respond=_BAD_GATEWAY)
        return super().on_request(ex)

    def request_head(self, ex: Exchange, raw: bytes) -> bytes:
        line, sep, rest = raw.partition(b"\r\n")
        method, target, version = line.split(b" ", 2)
        parts = urlsplit(target.decode("latin-1"))
        origin = parts.path + (f"?{parts.query}" if parts.query else "")
        return b" ".join((method, origin.encode("latin-1"), version)) + sep + rest


class ConnectProxy:
    """An HTTPS forward proxy: `CONNECT host:port` opens a tunnel (to `upstream_port` on
    loopback only) and relays bytes both ways; anything else is answered 405. Counts the
    tunnels by target in `tunnels`. Runs its own event loop in a thread."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.tunnels: Counter[str] = Counter()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if method != "CONNECT" or target != f"127.0.0.1:{self.upstream_port}":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                await writer.drain()
                return
            self.tunnels[target] += 1
            u_reader, u_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(OSError):
                    while data := await src.read(1 << 16):
                        dst.write(data)
                        await dst.drain()
                with contextlib.suppress(OSError):
                    dst.close()

            await asyncio.gather(pipe(reader, u_writer), pipe(u_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # stop(): end quietly
        finally:
            writer.close()
            self._conns.discard(task)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
