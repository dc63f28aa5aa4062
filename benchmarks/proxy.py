"""The counting proxy (tests/support/counting_proxy.py) as a subprocess, one per command.

A fresh proxy per command gives per-command counts without resets, and runs the relay
outside the harness's own interpreter (so the harness's GIL never slows a tool).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

_READY_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0


class ProxyError(RuntimeError):
    pass


class CountingProxyProcess:
    """`with CountingProxyProcess(upstream, workdir, repo) as p: ... p.endpoint_url`;
    after the block, `p.snapshot` holds {"requests": {...}, "bytes_up": ..., ...}."""

    def __init__(self, upstream: str, workdir: Path, repo_root: Path) -> None:
        self.upstream = upstream
        self.workdir = workdir
        self.repo_root = repo_root
        self.port = 0
        self.snapshot: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        port_file, self._counts = self.workdir / "port", self.workdir / "counts.json"
        for p in (port_file, self._counts):
            p.unlink(missing_ok=True)
        self._log = (self.workdir / "proxy.log").open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.counting_proxy", "--upstream", self.upstream,
             "--port-file", str(port_file), "--counts-file", str(self._counts)],
            cwd=self.repo_root, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not port_file.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._stop()
                raise ProxyError(f"counting proxy did not start (see {self.workdir})")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()
        if self._counts.exists():
            self.snapshot = json.loads(self._counts.read_text())

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._log.close()


def requests_of(snapshot: dict[str, Any]) -> dict[str, int]:
    """Non-zero request counts by category."""
    reqs: dict[str, int] = snapshot.get("requests", {})
    return {k: v for k, v in reqs.items() if v}
