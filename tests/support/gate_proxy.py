"""A reverse proxy that runs something, once, just before it forwards a chosen request.

The way to put another writer's whole commit between a sync's read of the manifest
root and its own commit, deterministically: hold the sync's root PUT, run the other
sync (straight to the server, not through this proxy), then forward the PUT.

    gate = GateProxy(s3.endpoint_url, when=is_root_put, then=run_other_sync)

`then` runs on the proxy's loop and blocks it: the held client waits meanwhile, as it
would for a slow server.
"""

from __future__ import annotations

from collections.abc import Callable

from ._forwarding import FORWARD, Exchange, ForwardingProxy, Plan, Request


class GateProxy(ForwardingProxy):
    def __init__(self, upstream: str, *, when: Callable[[Request], bool],
                 then: Callable[[], None]) -> None:
        super().__init__(upstream)
        self._when = when
        self._then = then
        self.fired = False

    def on_request(self, ex: Exchange) -> Plan:
        if not self.fired and self._when(ex.request):
            self.fired = True
            self._then()
        return FORWARD


def is_root_put(request: Request) -> bool:
    """The conditional write of a backup's manifest root."""
    return request.method == "PUT" and request.bucket_and_key[1].endswith(".baycat/root")
