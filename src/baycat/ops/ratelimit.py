"""`--bwlimit`: a token bucket shared by every upload of a run.

Each request body waits for its size in tokens before it is sent; tokens refill at
`rate` bytes per second up to a burst of one second's worth (or the body, if larger, so a
16 MiB part at 1 MB/s still goes, after ~16 s). Over any window longer than a few bodies
the upload rate stays at or under `rate`. Pacing is per body, not per TCP segment: a
single body goes out at line speed, then the next one waits.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from baycat.errors import UsageError

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_rate(text: str) -> int:
    """`10M` -> 10 MiB/s; `512K`, `1.5G`, `100000` (bytes/s); binary units, as rclone."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.I)
    if match is None:
        raise UsageError(f"bad rate {text!r}: want bytes per second like 500K, 10M, 1G")
    value = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if value <= 0:
        raise UsageError(f"bad rate {text!r}: must be more than 0")
    return value


class TokenBucket:
    """Awaitable byte budget refilled at `rate` bytes per second (event-loop only)."""

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = float(rate)
        self._last = clock()
        self._lock = asyncio.Lock()  # waiters are served in order

    async def take(self, n: int) -> None:
        """Wait until `n` bytes may be sent."""
        async with self._lock:
            now = self._clock()
            self._tokens = min(self._tokens + (now - self._last) * self.rate,
                               float(max(self.rate, n)))
            self._last = now
            if self._tokens < n:
                await asyncio.sleep((n - self._tokens) / self.rate)
                self._last = self._clock()
                self._tokens = float(n)
            self._tokens -= n
