"""A stop request (SIGINT/SIGTERM) that every stage can check cheaply, from any thread.

First signal: stages stop taking new work, in-flight transfers finish (large multipart
uploads are aborted between parts), what completed is committed, and the run ends with
exit code 130. The CLI turns a second signal into an immediate exit, which is safe
because every commit (local rename, remote conditional PUT) is atomic.
"""

from __future__ import annotations

import threading


class StopRequest:
    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()
