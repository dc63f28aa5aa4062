"""A reverse proxy that answers some writes with a wrong ETag (everything else intact).

The write itself reaches the server unchanged; only the `ETag` header of the answer is
replaced, the way a broken proxy or gateway would. Which answers lie is decided per
request by `lie(method, key, query)`; `lied` counts them.

    with EtagLiar(s3.endpoint_url, lie=lambda m, k, q: m == "PUT" and "bad" in k) as p:
        ...
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping

from ._forwarding import Exchange, ForwardingProxy

WRONG_ETAG = '"0123456789abcdef0123456789abcdef"'
_ETAG_LINE = re.compile(rb"(?im)^etag:[^\r\n]*")

LieFunc = Callable[[str, str, Mapping[str, str]], bool]


class EtagLiar(ForwardingProxy):
    def __init__(self, upstream: str, *, lie: LieFunc) -> None:
        super().__init__(upstream)
        self._lie = lie
        self._lock = threading.Lock()
        self.lied = 0

    def response_head(self, ex: Exchange, raw: bytes) -> bytes:
        request = ex.request
        _, key = request.bucket_and_key
        if not self._lie(request.method, key, request.query):
            return raw
        rewritten, n = _ETAG_LINE.subn(b"ETag: " + WRONG_ETAG.encode(), raw)
        if n:
            with self._lock:
                self.lied += 1
        return rewritten
