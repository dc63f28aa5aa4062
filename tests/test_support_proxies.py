"""Prove the test-support proxies against a real SeaweedFS.

The proxies are themselves test infrastructure: if they miscounted or
corrupted bytes, every benchmark and fault test built on them would lie.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.counting_proxy import CountingProxy
from tests.support.fault_proxy import Fault, FaultProxy, FaultRates
from tests.support.seaweed import SeaweedServer, make_client

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    with SeaweedServer(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def bucket(seaweed: SeaweedServer) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    seaweed.create_bucket(name)
    return name


@pytest.fixture
def counting(seaweed: SeaweedServer) -> Iterator[CountingProxy]:
    with CountingProxy(seaweed.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def via(request: pytest.FixtureRequest) -> Iterator[list[Any]]:
    """Collects botocore clients made by a test and closes them afterwards, so
    no pooled socket outlives the test (filterwarnings = error)."""
    clients: list[Any] = []
    yield clients
    for c in clients:
        c.close()


def _client(via: list[Any], endpoint_url: str, max_attempts: int = 1) -> Any:
    c = make_client(endpoint_url, max_attempts=max_attempts)
    via.append(c)
    return c


# -- CountingProxy -------------------------------------------------------------


def test_counting_proxy_counts_a_known_sequence_exactly(
    seaweed: SeaweedServer, counting: CountingProxy, bucket: str, via: list[Any]
) -> None:
    c = _client(via, counting.endpoint_url)
    big = os.urandom(3 * 1024 * 1024 + 17)
    small = b"hello \x00 world"
    # A file-like body makes botocore send "Expect: 100-continue".
    c.put_object(Bucket=bucket, Key="big", Body=io.BytesIO(big))
    c.put_object(Bucket=bucket, Key="small", Body=small)
    c.put_object(Bucket=bucket, Key="caf\u00e9/na\u0308me with space", Body=b"utf8")
    listed = c.list_objects_v2(Bucket=bucket)
    got_big = c.get_object(Bucket=bucket, Key="big")["Body"].read()
    got_small = c.get_object(Bucket=bucket, Key="small")["Body"].read()
    head = c.head_object(Bucket=bucket, Key="big")
    c.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "small"})
    c.delete_object(Bucket=bucket, Key="small")

    assert counting.counts() == {
        "PUT": 3, "LIST": 1, "GET": 2, "HEAD": 1, "COPY": 1, "DELETE": 1
    }  # fmt: skip
    assert counting.total() == 9
    assert counting.statuses() == {200: 8, 204: 1}
    assert got_big == big and got_small == small
    assert head["ContentLength"] == len(big)
    assert [o["Key"] for o in listed["Contents"]] == [
        "big",
        "caf\u00e9/na\u0308me with space",
        "small",
    ]
    # Wire bytes include heads, so they exceed the payloads, but not by much.
    assert len(big) + len(small) < counting.bytes_up()["PUT"] < len(big) + len(small) + 8192
    assert len(big) + len(small) < counting.bytes_down()["GET"] < len(big) + len(small) + 8192

    # Read back around the proxy: what was stored through it is intact.
    direct = seaweed.client()
    stored = direct.get_object(Bucket=bucket, Key="big")
    assert stored["Body"].read() == big
    assert stored["ETag"] == f'"{hashlib.md5(big).hexdigest()}"'
    assert direct.get_object(Bucket=bucket, Key="copy")["Body"].read() == small

    counting.reset()
    assert counting.counts() == {} and counting.total() == 0


def _presign(counting: CountingProxy, method: str, bucket: str, key: str, via: list[Any]) -> str:
    # Presigned against the proxy URL: the signed Host names the proxy port.
    c = _client(via, counting.endpoint_url)
    url: str = c.generate_presigned_url(
        "put_object" if method == "PUT" else "get_object",
        Params={"Bucket": bucket, "Key": key},
        ExpiresIn=300,
    )
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, dict[str, str], bytes]:
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, "connection closed before a response head"
        buf += data
    raw, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        data = sock.recv(65536)
        assert data, "connection closed inside a response body"
        rest += data
    buf[:] = rest[length:]
    return int(lines[0].split()[1]), headers, rest[:length]


def test_counting_proxy_relays_100_continue_and_keeps_alive(
    seaweed: SeaweedServer, counting: CountingProxy, bucket: str, via: list[Any]
) -> None:
    body = os.urandom(200_000)
    put_path = _presign(counting, "PUT", bucket, "raw", via)
    get_path = _presign(counting, "GET", bucket, "raw", via)
    host = urlsplit(counting.endpoint_url).netloc
    with socket.create_connection(("127.0.0.1", counting.port), timeout=10) as sock:
        buf = bytearray()
        sock.sendall(
            f"PUT {put_path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        status, _, _ = _read_response(sock, buf)
        assert status == 100
        sock.sendall(body)
        status, _, _ = _read_response(sock, buf)
        assert status == 200
        # Same socket, next request: keep-alive works across the proxy.
        sock.sendall(f"GET {get_path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, _, got = _read_response(sock, buf)
        assert status == 200 and got == body
    assert counting.counts() == {"PUT": 1, "GET": 1}


def test_counting_proxy_forwards_chunked_request_bodies(
    seaweed: SeaweedServer, counting: CountingProxy, bucket: str, via: list[Any]
) -> None:
    import http.client

    parts = [os.urandom(70_000), b"x", os.urandom(5)]
    conn = http.client.HTTPConnection("127.0.0.1", counting.port, timeout=10)
    try:
        conn.request(
            "PUT",
            _presign(counting, "PUT", bucket, "chunked", via),
            body=iter(parts),
            encode_chunked=True,
        )
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    finally:
        conn.close()
    stored = seaweed.client().get_object(Bucket=bucket, Key="chunked")["Body"].read()
    assert stored == b"".join(parts)
    assert counting.counts() == {"PUT": 1}


async def test_counting_proxy_with_aiobotocore(counting: CountingProxy, bucket: str) -> None:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    session = get_session()
    payload = os.urandom(1_000_000)
    async with session.create_client(
        "s3",
        endpoint_url=counting.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=SeaweedServer.access_key,
        aws_secret_access_key=SeaweedServer.secret_key,
        config=AioConfig(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    ) as c:
        await c.put_object(Bucket=bucket, Key="a", Body=payload)
        await c.put_object(Bucket=bucket, Key="b", Body=b"")
        resp = await c.get_object(Bucket=bucket, Key="a")
        async with resp["Body"] as stream:
            got = await stream.read()
        await c.head_object(Bucket=bucket, Key="b")
        await c.list_objects_v2(Bucket=bucket, Prefix="a")
        with pytest.raises(ClientError) as e:
            await c.put_object(Bucket=bucket, Key="a", Body=b"x", IfNoneMatch="*")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert got == payload
    assert counting.counts() == {"PUT": 3, "GET": 1, "HEAD": 1, "LIST": 1}


def test_counting_proxy_cli_writes_counts_on_sigterm(
    seaweed: SeaweedServer, bucket: str, tmp_path: Path, via: list[Any]
) -> None:
    port_file, counts_file = tmp_path / "port", tmp_path / "counts.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.counting_proxy", "--upstream",
         seaweed.endpoint_url, "--port-file", str(port_file), "--counts-file", str(counts_file)],
        cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        c = _client(via, f"http://127.0.0.1:{int(port_file.read_text())}")
        c.put_object(Bucket=bucket, Key="k", Body=b"12345")
        c.list_objects_v2(Bucket=bucket)
        c.head_object(Bucket=bucket, Key="k")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    report = json.loads(counts_file.read_text())
    assert {k: v for k, v in report["requests"].items() if v} == {"PUT": 1, "LIST": 1, "HEAD": 1}
    assert report["bytes_up"]["PUT"] > 5 and report["statuses"] == {"200": 3}


# -- FaultProxy --------------------------------------------------------------------


def test_fault_proxy_503s_are_retried_through_and_never_reach_the_server(
    seaweed: SeaweedServer, counting: CountingProxy, bucket: str, via: list[Any]
) -> None:
    # client -> FaultProxy -> CountingProxy -> SeaweedFS: the counter sees only
    # what got past the faults.
    # Seed 10 draws exactly 3 isolated faults for this sequence: with botocore's
    # backoff (up to 1 s before a first retry) that keeps the test fast.
    rates = FaultRates(slowdown=0.3)
    with FaultProxy(counting.endpoint_url, rates=rates, seed=10) as faults:
        c = _client(via, faults.endpoint_url, max_attempts=8)
        bodies = {f"k{i}": os.urandom(1000 + i) for i in range(5)}
        for key, body in bodies.items():
            c.put_object(Bucket=bucket, Key=key, Body=body)
        for key, body in bodies.items():
            assert c.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        injected = faults.injected()
        history = faults.history()
    assert injected == {"slowdown": 3}
    assert len(history) == 13
    assert counting.counts() == {"PUT": 5, "GET": 5}


def test_fault_proxy_can_be_switched_off_and_on(
    seaweed: SeaweedServer, bucket: str, via: list[Any]
) -> None:
    with FaultProxy(seaweed.endpoint_url, rates=FaultRates(internal_error=1.0)) as faults:
        c = _client(via, faults.endpoint_url)
        with pytest.raises(ClientError) as e:
            c.put_object(Bucket=bucket, Key="k", Body=b"v")
        assert e.value.response["Error"]["Code"] == "InternalError"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        faults.disable()
        c.put_object(Bucket=bucket, Key="k", Body=b"v")
        assert c.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
        faults.enable()
        faults.set_rates(internal_error=0.0, slowdown=1.0)
        with pytest.raises(ClientError) as e:
            c.head_object(Bucket=bucket, Key="k")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert faults.injected() == {"internal_error": 1, "slowdown": 1}
    assert [ev.fault for ev in faults.history()] == [Fault.INTERNAL_ERROR, Fault.SLOWDOWN]


def test_fault_proxy_method_filter(seaweed: SeaweedServer, bucket: str, via: list[Any]) -> None:
    rates = FaultRates(slowdown=1.0)
    with FaultProxy(seaweed.endpoint_url, rates=rates, only_methods={"GET"}) as faults:
        c = _client(via, faults.endpoint_url)
        c.put_object(Bucket=bucket, Key="k", Body=b"v")
        c.head_object(Bucket=bucket, Key="k")
        with pytest.raises(ClientError):
            c.get_object(Bucket=bucket, Key="k")
    assert faults.injected() == {"slowdown": 1}


def test_fault_proxy_drops_leave_no_partial_object(
    seaweed: SeaweedServer, bucket: str, via: list[Any]
) -> None:
    rates = FaultRates(drop_mid_request=1.0)
    with FaultProxy(seaweed.endpoint_url, rates=rates) as faults:
        c = _client(via, faults.endpoint_url)
        with pytest.raises(BotoCoreError):
            c.put_object(Bucket=bucket, Key="cut", Body=io.BytesIO(os.urandom(500_000)))
        faults.set_rates(drop_mid_request=0.0, drop_mid_response=1.0)
        seaweed.client().put_object(Bucket=bucket, Key="whole", Body=os.urandom(100_000))
        with pytest.raises(BotoCoreError):
            c.get_object(Bucket=bucket, Key="whole")["Body"].read()
        faults.set_rates(drop_mid_response=0.0, drop_before=1.0)
        with pytest.raises(BotoCoreError):
            c.list_objects_v2(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        seaweed.client().head_object(Bucket=bucket, Key="cut")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert faults.injected() == {"drop_mid_request": 1, "drop_mid_response": 1, "drop_before": 1}


def _outcome(call: Any) -> str:
    try:
        call()
    except ClientError as e:
        return str(e.response["ResponseMetadata"]["HTTPStatusCode"])
    except BotoCoreError as e:
        return type(e).__name__
    return "ok"


def _run_fault_sequence(
    seaweed: SeaweedServer, bucket: str, seed: int, via: list[Any]
) -> tuple[list[Fault | None], list[str], dict[str, int]]:
    run = uuid.uuid4().hex[:8]  # fresh keys: earlier runs must not change outcomes
    rates = FaultRates(
        slowdown=0.15, internal_error=0.15, drop_before=0.1, drop_mid_response=0.1,
        delay=0.1, delay_s=0.01,
    )  # fmt: skip
    with FaultProxy(seaweed.endpoint_url, rates=rates, seed=seed) as faults:
        c = _client(via, faults.endpoint_url)
        outcomes = []
        for i in range(12):
            key = f"{run}-{i % 4}"
            outcomes.append(_outcome(lambda k=key: c.put_object(Bucket=bucket, Key=k, Body=b"v")))
            outcomes.append(
                _outcome(lambda k=key: c.get_object(Bucket=bucket, Key=k)["Body"].read())
            )
    return [ev.fault for ev in faults.history()], outcomes, dict(faults.injected())


def test_fault_proxy_is_deterministic_per_seed(
    seaweed: SeaweedServer, bucket: str, via: list[Any]
) -> None:
    first = _run_fault_sequence(seaweed, bucket, 11, via)
    again = _run_fault_sequence(seaweed, bucket, 11, via)
    other = _run_fault_sequence(seaweed, bucket, 12, via)
    # Each run uses fresh keys, so the same seed must give the same faults and
    # the client the same outcomes; another seed gives other faults.
    assert first[0] == again[0] and first[1] == again[1] and first[2] == again[2]
    assert len(first[0]) == 24 and sum(first[2].values()) > 3
    assert first[0] != other[0]


def test_counting_proxy_survives_an_early_412_to_expect_continue(
    counting: CountingProxy, bucket: str, via: list[Any]
) -> None:
    # The server answers 412 before asking for the body: the client never sends
    # it, so the proxy must relay the answer and drop both connections cleanly.
    c = _client(via, counting.endpoint_url)
    c.put_object(Bucket=bucket, Key="k", Body=io.BytesIO(b"first"))
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket=bucket, Key="k", Body=io.BytesIO(b"second" * 1000), IfNoneMatch="*")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    c.put_object(Bucket=bucket, Key="k2", Body=io.BytesIO(b"third"))
    assert c.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"
    assert counting.counts() == {"PUT": 3, "GET": 1}
    assert counting.statuses() == {200: 3, 412: 1}
