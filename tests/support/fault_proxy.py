"""A reverse proxy that injects S3 failures, reproducibly.

Per eligible request the proxy draws one number from a seeded `random.Random`
and picks at most one fault by walking the rates in `Fault` order. The same seed
and the same request sequence inject the same faults (concurrent clients make
the *sequence* nondeterministic, not the draws).

Faults:

- ``slowdown``: answer ``503 SlowDown`` (S3 XML error body), nothing forwarded;
- ``internal_error``: answer ``500 InternalError``, nothing forwarded;
- ``drop_before``: close the client connection, nothing forwarded;
- ``drop_mid_request``: forward the head and about half the body, then close
  both connections (requests without a body pass untouched);
- ``drop_mid_response``: forward the request (the server applies it!), relay
  the head and half the response body, then close; a response without a body
  is withheld entirely, so the client sees a dropped connection after success;
- ``delay``: wait `FaultRates.delay_s` before relaying the response.

Usage::

    rates = FaultRates(slowdown=0.2)
    with FaultProxy(s3.endpoint_url, rates=rates, seed=7, only_methods={"PUT"}) as proxy:
        ...
        proxy.injected()   # Counter({"slowdown": 3})
        proxy.disable()    # from here on every request passes
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from enum import StrEnum
from xml.sax.saxutils import escape

from ._forwarding import (
    FORWARD,
    Exchange,
    ForwardingProxy,
    Plan,
    Request,
    keeps_alive_after_canned,
)


class Fault(StrEnum):
    SLOWDOWN = "slowdown"
    INTERNAL_ERROR = "internal_error"
    DROP_BEFORE = "drop_before"
    DROP_MID_REQUEST = "drop_mid_request"
    DROP_MID_RESPONSE = "drop_mid_response"
    DELAY = "delay"


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probability of each fault per eligible request; they must sum to <= 1.

    >>> FaultRates(slowdown=0.1, delay=0.05, delay_s=2.0).total()
    0.15000000000000002
    """

    slowdown: float = 0.0
    internal_error: float = 0.0
    drop_before: float = 0.0
    drop_mid_request: float = 0.0
    drop_mid_response: float = 0.0
    delay: float = 0.0
    delay_s: float = 0.5

    def __post_init__(self) -> None:
        rates = [self.rate(f) for f in Fault]
        if any(r < 0 for r in rates) or sum(rates) > 1 + 1e-9:
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1: {self}")
        if self.delay_s < 0:
            raise ValueError("delay_s must be >= 0")

    def rate(self, fault: Fault) -> float:
        value: float = getattr(self, fault.value)
        return value

    def total(self) -> float:
        return sum(self.rate(f) for f in Fault)

    def pick(self, draw: float) -> Fault | None:
        """The fault for a uniform draw in [0, 1), or None."""
        edge = 0.0
        for fault in Fault:
            edge += self.rate(fault)
            if draw < edge:
                return fault
        return None


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """One eligible request and the fault drawn for it (None: passed)."""

    seq: int
    method: str
    target: str
    fault: Fault | None


_STATUS = {
    Fault.SLOWDOWN: (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    Fault.INTERNAL_ERROR: (
        500,
        "Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
}


def s3_error_response(
    status: int, reason: str, code: str, message: str, req: Request, request_id: str
) -> bytes:
    """A complete S3-style error response to `req`, framed for the proxy to
    send as is (no body for HEAD, ``Connection: close`` when required)."""
    bucket, key = req.bucket_and_key
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(req.path)}</Resource><RequestId>{request_id}</RequestId>"
        + (f"<BucketName>{escape(bucket)}</BucketName>" if bucket else "")
        + (f"<Key>{escape(key)}</Key>" if key else "")
        + "</Error>"
    ).encode()
    if req.method == "HEAD":
        body = b""
    connection = "keep-alive" if keeps_alive_after_canned(req) else "close"
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Date: {formatdate(usegmt=True)}\r\n"
        "Content-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"x-amz-request-id: {request_id}\r\n"
        f"Connection: {connection}\r\n"
        "\r\n"
    ).encode()
    return head + body


class FaultProxy(ForwardingProxy):
    """Forwards requests like `CountingProxy` but injects faults.

    Only requests passing `only_methods` (upper-case methods) and `predicate`
    are eligible; the random draw happens only for eligible requests while
    faults are enabled. Control methods may be called from any thread.
    """

    def __init__(
        self,
        upstream: str,
        *,
        rates: FaultRates | None = None,
        seed: int = 0,
        only_methods: Iterable[str] | None = None,
        predicate: Callable[[Request], bool] | None = None,
        enabled: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(upstream, host=host, port=port)
        self._lock = threading.Lock()
        self._rates = rates or FaultRates()
        self._rng = random.Random(seed)
        self._only_methods = None if only_methods is None else {m.upper() for m in only_methods}
        self._predicate = predicate
        self._enabled = enabled
        self._injected: Counter[str] = Counter()
        self._history: list[FaultEvent] = []

    # -- control ----------------------------------------------------------------

    @property
    def rates(self) -> FaultRates:
        return self._rates

    def set_rates(self, rates: FaultRates | None = None, **changes: float) -> None:
        """Replace the rates, or change some: ``set_rates(slowdown=0.5)``."""
        with self._lock:
            base = rates or self._rates
            self._rates = dataclasses.replace(base, **changes) if changes else base

    def enable(self) -> None:
        with self._lock:
            self._enabled = True

    def disable(self) -> None:
        with self._lock:
            self._enabled = False

    @property
    def enabled(self) -> bool:
        return self._enabled

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def reset(self) -> None:
        """Forget injected counts and history (the random state continues)."""
        with self._lock:
            self._injected.clear()
            self._history.clear()

    # -- observation ----------------------------------------------------------

    def injected(self) -> Counter[str]:
        """Faults that took effect, by `Fault` value (a drawn
        ``drop_mid_request`` on a body-less request does not count)."""
        with self._lock:
            return Counter(self._injected)

    def history(self) -> list[FaultEvent]:
        """Every eligible request and its draw, in arrival order."""
        with self._lock:
            return list(self._history)

    # -- hooks ------------------------------------------------------------------

    def on_request(self, ex: Exchange) -> Plan:
        req = ex.request
        with self._lock:
            if not self._enabled:
                return FORWARD
            if self._only_methods is not None and req.method not in self._only_methods:
                return FORWARD
            if self._predicate is not None and not self._predicate(req):
                return FORWARD
            rates = self._rates
            fault = rates.pick(self._rng.random())
            self._history.append(FaultEvent(ex.seq, req.method, req.target, fault))
        return _plan(fault, rates, req, ex.seq)

    def on_applied(self, ex: Exchange) -> None:
        with self._lock:
            self._injected[ex.plan.label] += 1


def _plan(fault: Fault | None, rates: FaultRates, req: Request, seq: int) -> Plan:
    if fault is None:
        return FORWARD
    label = fault.value
    if fault in _STATUS:
        status, reason, code, message = _STATUS[fault]
        request_id = f"FAULTPROXY{seq:08d}"
        response = s3_error_response(status, reason, code, message, req, request_id)
        return Plan(label, respond=response)
    if fault is Fault.DROP_BEFORE:
        return Plan(label, drop_before=True)
    if fault is Fault.DROP_MID_REQUEST:
        return Plan(label, cut_request=True)
    if fault is Fault.DROP_MID_RESPONSE:
        return Plan(label, cut_response=True)
    return Plan(label, delay_s=rates.delay_s)
