"""The forwarding core shared by `CountingProxy` and `FaultProxy`.

An HTTP/1.1 reverse proxy that relays every byte unchanged, including the Host
header: clients sign the Host of the proxy URL with SigV4 and the server checks
the Host it receives, so any rewrite would break signatures.

Shape of one client connection::

    client --(head, body)--> proxy --(same bytes)--> upstream
    client <--(interim 1xx, head, body)-- proxy <-- upstream

Each client connection gets its own upstream connection (opened lazily, reopened
if the upstream closed it), so keep-alive on one side maps to keep-alive on the
other and no request is ever re-sent by the proxy itself.

Subclasses steer and observe requests through hooks that run on the proxy's
event loop and must not block:

- `on_request(ex)` returns a `Plan` (forward, answer, drop, cut, delay);
- `on_bytes(ex, upstream, n)` runs *before* bytes are written, so a counter is
  already up to date when the client sees the last byte of a response;
- `on_response(ex, status)` runs before a final response head is relayed;
- `on_applied(ex)` runs before a non-forwarding plan takes visible effect;
- `request_head(ex, raw)` is the request head sent upstream (a forward proxy turns
  an absolute-form target into origin form there).

With `tls` (a server-side SSLContext) the proxy is a TLS front: it accepts TLS
from clients (counting every TCP connection in `connections`, handshakes that fail
included) and forwards plain http upstream; `endpoint_url` is then https.

Limits: plain http upstream only, path-style S3 (the bucket is the first path segment),
no pipelining (S3 clients do not pipeline), no protocol upgrades.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import parse_qsl, urlsplit

_HEAD_LIMIT = 1 << 20  # the longest request/response head we accept
_COPY_BLOCK = 1 << 16
# After a final response arrived early, how long to let the client finish a body
# it is still sending before giving up on the connection.
_EARLY_RESPONSE_GRACE_S = 5.0
# Cut a chunked body this many raw bytes in: every chunked body ("0\r\n\r\n" at
# least) is longer, so the cut always lands inside it.
_CHUNKED_CUT = 3


class ProxyError(RuntimeError):
    """The proxy could not start or a wire message could not be parsed."""


class _Cut(Exception):
    """A planned cut was reached: close both connections now."""


class _PeerGone(Exception):
    """A peer closed its connection in the middle of a message."""


@dataclass(frozen=True, slots=True)
class Head:
    """A parsed request or response head; `raw` is exactly what was received."""

    start_line: str
    headers: tuple[tuple[str, str], ...]
    raw: bytes

    def get(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def tokens(self, name: str) -> set[str]:
        """Comma-separated tokens of every `name` header, lower-cased."""
        lname = name.lower()
        return {
            t.strip().lower()
            for k, v in self.headers
            if k.lower() == lname
            for t in v.split(",")
            if t.strip()
        }


@dataclass(frozen=True, slots=True)
class Request:
    head: Head
    method: str
    target: str
    version: str

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    @property
    def bucket_and_key(self) -> tuple[str, str]:
        """Path-style split: ("", "") for the service root, (bucket, "") for a bucket."""
        path = self.path.lstrip("/")
        bucket, _, key = path.partition("/")
        return bucket, key

    @property
    def expects_continue(self) -> bool:
        return "100-continue" in self.head.tokens("expect")

    def body_length(self) -> int | None:
        """Content-Length, 0 for no body, None for chunked."""
        if "chunked" in self.head.tokens("transfer-encoding"):
            return None
        return _content_length(self.head) or 0

    def wants_close(self) -> bool:
        conn = self.head.tokens("connection")
        return "close" in conn or (self.version == "HTTP/1.0" and "keep-alive" not in conn)


def keeps_alive_after_canned(req: Request) -> bool:
    """Whether the connection survives a canned answer to `req` (Plan.respond).

    A client waiting for "100 Continue" never sends its body after a final
    answer, so the proxy cannot find the next request on that connection; a
    canned answer must then say ``Connection: close``.
    """
    return not req.expects_continue and not req.wants_close()


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one request.

    Exactly one of `respond`, `drop_before`, `cut_request`, `cut_response` should
    be set; `delay_s` can accompany forwarding. `label` names the plan for
    `on_applied` (e.g. the fault kind).
    """

    label: str = "forward"
    respond: bytes | None = None  # full canned response; the request is not forwarded
    drop_before: bool = False  # close the client connection, forward nothing
    cut_request: bool = False  # forward the head and about half the body, then close both
    cut_response: bool = False  # forward everything, relay about half the response body
    delay_s: float = 0.0  # wait this long before relaying the response head


FORWARD = Plan()


@dataclass(slots=True)
class Exchange:
    """Book-keeping for one request, handed to every hook."""

    seq: int
    request: Request
    tag: str = ""  # free for subclasses (e.g. the request category)
    plan: Plan = FORWARD
    status: int | None = None
    bytes_up: int = 0  # written to the upstream (head + body)
    bytes_down: int = 0  # written to the client (interim + head + body)
    outcome: str = "pending"
    extra: dict[str, object] = field(default_factory=dict)


def _content_length(head: Head) -> int | None:
    value = head.get("content-length")
    if value is None:
        return None
    try:
        n = int(value.strip())
    except ValueError as e:
        raise ProxyError(f"bad Content-Length {value!r}") from e
    if n < 0:
        raise ProxyError(f"bad Content-Length {value!r}")
    return n


async def _read_head(reader: asyncio.StreamReader) -> Head | None:
    """Read one head; None on a clean EOF before any byte."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise _PeerGone("connection closed inside a message head") from e
    except asyncio.LimitOverrunError as e:
        raise ProxyError("message head too long") from e
    lines = raw[:-4].decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProxyError(f"malformed header line {line!r}")
        headers.append((name.strip(), value.strip()))
    return Head(lines[0], tuple(headers), raw)


def parse_request(head: Head) -> Request:
    parts = head.start_line.split(" ")
    if len(parts) != 3:
        raise ProxyError(f"malformed request line {head.start_line!r}")
    return Request(head, parts[0].upper(), parts[1], parts[2])


def _status(head: Head) -> int:
    parts = head.start_line.split(" ", 2)
    try:
        return int(parts[1])
    except (IndexError, ValueError) as e:
        raise ProxyError(f"malformed status line {head.start_line!r}") from e


class _Writer(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class _Sink:
    """Writes to one side, reports bytes before writing, and enforces a cut.

    The cut budget applies to body bytes only; reaching it raises `_Cut`
    after the bytes up to the budget have been written.
    """

    def __init__(self, writer: _Writer, on_bytes: Callable[[int], None]) -> None:
        self._writer = writer
        self._on_bytes = on_bytes
        self.budget: int | None = None

    async def head(self, data: bytes) -> None:
        self._on_bytes(len(data))
        self._writer.write(data)
        await self._writer.drain()

    async def body(self, data: bytes) -> None:
        if self.budget is not None and len(data) >= self.budget:
            part = data[: self.budget]
            if part:
                self._on_bytes(len(part))
                self._writer.write(part)
                await self._writer.drain()
            raise _Cut
        if self.budget is not None:
            self.budget -= len(data)
        self._on_bytes(len(data))
        self._writer.write(data)
        await self._writer.drain()


async def _copy_exact(reader: asyncio.StreamReader, sink: _Sink, n: int) -> None:
    while n > 0:
        data = await reader.read(min(n, _COPY_BLOCK))
        if not data:
            raise _PeerGone(f"connection closed with {n} body bytes missing")
        n -= len(data)
        await sink.body(data)


async def _copy_line(reader: asyncio.StreamReader, sink: _Sink) -> bytes:
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.IncompleteReadError as e:
        raise _PeerGone("connection closed inside a chunked body") from e
    await sink.body(line)
    return line


async def _copy_chunked(reader: asyncio.StreamReader, sink: _Sink) -> None:
    """Relay a chunked body verbatim (sizes, extensions, trailers)."""
    while True:
        line = await _copy_line(reader, sink)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as e:
            raise ProxyError(f"bad chunk size line {line!r}") from e
        if size == 0:
            while await _copy_line(reader, sink) != b"\r\n":
                pass  # trailer fields
            return
        await _copy_exact(reader, sink, size + 2)  # data + CRLF


async def _copy_to_eof(reader: asyncio.StreamReader, sink: _Sink) -> None:
    while data := await reader.read(_COPY_BLOCK):
        await sink.body(data)


class _Conn:
    """One client connection and its upstream partner."""

    def __init__(
        self, proxy: ForwardingProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.c_reader = reader
        self.c_writer = writer
        self.u_reader: asyncio.StreamReader | None = None
        self.u_writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        try:
            while True:
                head = await _read_head(self.c_reader)
                if head is None:
                    return
                if not await self._exchange(parse_request(head)):
                    return
        except (_PeerGone, _Cut, ProxyError, OSError, asyncio.IncompleteReadError):
            return
        finally:
            # Start closing both sides before awaiting either: a cancellation
            # (proxy shutdown) landing in the first await must not leave the
            # other socket open.
            writers = [w for w in (self.u_writer, self.c_writer) if w is not None]
            self.u_writer = self.u_reader = None
            for w in writers:
                w.close()
            for w in writers:
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    async def _ensure_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.u_reader is not None and self.u_writer is not None and not self.u_reader.at_eof():
            return self.u_reader, self.u_writer
        await self._close_upstream()
        host, port = self.proxy.upstream_addr
        self.u_reader, self.u_writer = await asyncio.open_connection(host, port, limit=_HEAD_LIMIT)
        return self.u_reader, self.u_writer

    async def _close_upstream(self) -> None:
        writer, self.u_writer, self.u_reader = self.u_writer, None, None
        if writer is not None:
            await _close(writer)

    async def _exchange(self, req: Request) -> bool:
        """Handle one request; True if both connections may be reused."""
        proxy = self.proxy
        ex = Exchange(seq=proxy._next_seq(), request=req)
        ex.plan = plan = proxy.on_request(ex)

        def up(n: int) -> None:
            ex.bytes_up += n
            proxy.on_bytes(ex, True, n)

        def down(n: int) -> None:
            ex.bytes_down += n
            proxy.on_bytes(ex, False, n)

        client = _Sink(self.c_writer, down)
        body_length = req.body_length()

        if plan.drop_before:
            ex.outcome = "dropped_before"
            proxy.on_applied(ex)
            return False

        if plan.respond is not None:
            keep = keeps_alive_after_canned(req)
            if keep:
                # Read the body the client is sending so the connection stays
                # usable and the client surely reads our answer.
                discard = _Sink(_NullWriter(), lambda n: None)
                await (
                    _copy_chunked(self.c_reader, discard)
                    if body_length is None
                    else _copy_exact(self.c_reader, discard, body_length)
                )
            ex.outcome = "responded"
            ex.status = _status_of_raw(plan.respond)
            proxy.on_applied(ex)
            await client.head(plan.respond)
            return keep

        if plan.cut_request and body_length == 0:
            plan = ex.plan = Plan(label=plan.label + ":not-applicable", delay_s=plan.delay_s)

        u_reader, u_writer = await self._ensure_upstream()
        upstream = _Sink(u_writer, up)
        await upstream.head(proxy.request_head(ex, req.head.raw))
        if plan.cut_request:
            upstream.budget = _CHUNKED_CUT if body_length is None else max(1, body_length // 2)
            ex.outcome = "cut_request"
            proxy.on_applied(ex)

        async def send_body() -> None:
            if body_length is None:
                await _copy_chunked(self.c_reader, upstream)
            else:
                await _copy_exact(self.c_reader, upstream, body_length)

        pump = asyncio.create_task(send_body())
        got_continue = False
        try:
            while True:
                resp_head = await _wait_head(u_reader, pump)
                if resp_head is None:
                    raise _PeerGone("upstream closed before answering")
                status = _status(resp_head)
                if 100 <= status < 200 and status != 101:
                    got_continue = got_continue or status == 100
                    await client.head(resp_head.raw)
                    continue
                break
            # A final answer before the whole body was sent: if the client is
            # waiting for "100 Continue" it will never send the body, so neither
            # connection is reusable after this answer.
            abandon = not pump.done() and req.expects_continue and not got_continue
            if abandon:
                pump.cancel()
            ex.status = status
            proxy.on_response(ex, status)
            await self._relay_response(ex, req, resp_head, status, client)
            if abandon:
                return False
            if not pump.done():
                done, _ = await asyncio.wait({pump}, timeout=_EARLY_RESPONSE_GRACE_S)
                if not done:
                    return False
            pump.result()  # surface a body error
        finally:
            if not pump.done():
                pump.cancel()
                with contextlib.suppress(BaseException):
                    await pump
        if ex.outcome == "pending":
            ex.outcome = "ok"
        return not (
            req.wants_close()
            or "close" in resp_head.tokens("connection")
            or ex.extra.get("until_close", False)
        )

    async def _relay_response(
        self, ex: Exchange, req: Request, head: Head, status: int, client: _Sink
    ) -> None:
        assert self.u_reader is not None
        plan = ex.plan
        if req.method == "HEAD" or status in (204, 304):
            length: int | None = 0
        elif "chunked" in head.tokens("transfer-encoding"):
            length = None
        else:
            length = _content_length(head)
            if length is None:
                ex.extra["until_close"] = True
        if plan.delay_s > 0:
            ex.outcome = "delayed"
            self.proxy.on_applied(ex)
            await asyncio.sleep(plan.delay_s)
        cut = plan.cut_response and not ex.extra.get("until_close", False)
        if cut and length == 0:
            # Nothing to cut inside: withhold the whole answer, so the client
            # sees a dropped connection for a request the server has applied.
            ex.outcome = "cut_response"
            self.proxy.on_applied(ex)
            raise _Cut
        await client.head(self.proxy.response_head(ex, head.raw))
        if cut:
            client.budget = _CHUNKED_CUT if length is None else length // 2
            ex.outcome = "cut_response"
            self.proxy.on_applied(ex)
        if length is None:
            await _copy_chunked(self.u_reader, client)
        elif ex.extra.get("until_close", False):
            await _copy_to_eof(self.u_reader, client)
        else:
            await _copy_exact(self.u_reader, client, length)


class _NullWriter:
    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


def _status_of_raw(raw: bytes) -> int | None:
    try:
        return int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


async def _wait_head(reader: asyncio.StreamReader, pump: asyncio.Task[None]) -> Head | None:
    """Read the next response head while the request body is still being sent;
    a failing body pump (client gone, planned cut) aborts the wait."""
    head_task = asyncio.create_task(_read_head(reader))
    try:
        while True:
            waiting: set[asyncio.Task[Head | None] | asyncio.Task[None]] = {head_task}
            if not pump.done():
                waiting.add(pump)
            elif not pump.cancelled() and pump.exception() is not None:
                raise pump.exception()  # type: ignore[misc]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if head_task.done():
                return head_task.result()
    finally:
        if not head_task.done():
            head_task.cancel()
            with contextlib.suppress(BaseException):
                await head_task


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


class ForwardingProxy:
    """Reverse proxy core with an optional background-thread runner.

    Use it on a running loop (`await astart()` / `await aclose()`) or from
    synchronous code (`start()` / `stop()` or `with proxy:`), which runs a
    private event loop in a daemon thread. Hooks always run on the proxy's loop.
    """

    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0,
                 tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None:
            raise ProxyError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream_url = upstream.rstrip("/")
        self.upstream_addr: tuple[str, int] = (parts.hostname, parts.port or 80)
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._bound_port: int | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._tls = tls
        self.connections = 0  # TCP connections accepted (TLS handshakes tried)

    # -- hooks (run on the proxy loop, must not block) ------------------------

    def on_request(self, ex: Exchange) -> Plan:
        return FORWARD

    def on_bytes(self, ex: Exchange, upstream: bool, n: int) -> None:
        pass

    def on_response(self, ex: Exchange, status: int) -> None:
        pass

    def on_applied(self, ex: Exchange) -> None:
        pass

    def request_head(self, ex: Exchange, raw: bytes) -> bytes:
        """The request head sent upstream (a subclass may rewrite it)."""
        return raw

    def response_head(self, ex: Exchange, raw: bytes) -> bytes:
        """The response head sent to the client (a subclass may rewrite headers)."""
        return raw

    # -- facts ----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise ProxyError("proxy was never started")
        return self._bound_port

    @property
    def endpoint_url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self._host}:{self.port}"

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # -- running on the caller's loop ------------------------------------------

    async def astart(self) -> None:
        if self._server is not None:
            raise ProxyError("already running")
        self._server = await asyncio.start_server(
            self._on_client, self._host, self._port, limit=_HEAD_LIMIT
        )
        self._bound_port = int(self._server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        await server.wait_closed()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self.connections += 1
        try:
            if self._tls is not None:
                try:
                    await writer.start_tls(self._tls)
                except (ssl.SSLError, OSError):  # e.g. the client refused our certificate
                    writer.close()
                    return
            await _Conn(self, reader, writer).run()
        except asyncio.CancelledError:
            # Only aclose() cancels these tasks. Ending "normally" matters on
            # 3.11, whose stream callback calls task.exception() on a cancelled
            # task and logs a spurious error.
            pass
        finally:
            self._conns.discard(task)

    async def serve_until(self, stop: Callable[[], Awaitable[object]]) -> None:
        """Run until `stop()` returns, then close."""
        await self.astart()
        try:
            await stop()
        finally:
            await self.aclose()

    # -- running in a background thread --------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise ProxyError("already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop_event = asyncio.Event()
            try:
                await self.astart()
            except BaseException as e:
                failure.append(e)
                ready.set()
                return
            ready.set()
            try:
                await self._stop_event.wait()
            finally:
                await self.aclose()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise ProxyError("proxy failed to start") from failure[0]

    def stop(self) -> None:
        """Close the listener and every connection, then join the thread.
        Idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stop_event is not None:
            with contextlib.suppress(RuntimeError):  # loop already gone
                self._loop.call_soon_threadsafe(self._stop_event.set)
        thread.join()
        self._loop = None
        self._stop_event = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
