"""A forward HTTP proxy on loopback that counts what passes through it.

Clients configured with `HTTP_PROXY=http://127.0.0.1:PORT` send absolute-form requests
(`PUT http://127.0.0.1:8333/bucket/key HTTP/1.1`). This proxy accepts only those, and
only for its one upstream: a request in origin form (a client that went to the proxy
as if it were the server) or for another host is answered 400 / 502 and counted
under `refused`, so a test sees exactly which requests went through the proxy.
Forwarded requests have their target turned into origin form; every other byte
(the Host header the client signed, the body, `Expect: 100-continue` and the
server's interim answer) is relayed unchanged. Counts are by `counting_proxy.classify`.

No CONNECT (HTTPS through the proxy): the tests use a plain-http upstream.
"""

from __future__ import annotations

from collections import Counter
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
