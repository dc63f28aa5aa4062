"""The lean S3 data path (store/s3_fast.py): the signer against AWS's own example, and
GET/PUT/UploadPart against a real SeaweedFS — weird keys, conditions, ranges, versions,
errors, and retries through a fault-injecting proxy. Contract tests run on both paths
(fast_path on and off) so the two stay interchangeable."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import random
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from baycat.errors import BucketMissingError, CredentialsError, RemoteError
from baycat.store.base import NOT_MODIFIED, Fetched, NotFound, PreconditionFailed
from baycat.store.s3 import S3Store
from baycat.store.s3_fast import (
    EMPTY_SHA256,
    FastS3,
    SigV4Signer,
    StaticCredentials,
    backoff,
    canonical_query,
    encode_key,
)
from baycat.store.s3_options import S3Options
from tests.cli_helpers import run_baycat
from tests.support.fault_proxy import FaultProxy, FaultRates
from tests.support.seaweed import SeaweedServer
from tests.targets import Target
from tests.trees import make_tree

_buckets = itertools.count()


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


# ---- the signer -------------------------------------------------------------------------


def test_signer_reproduces_the_aws_get_object_example() -> None:
    # docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, "GET Object"
    creds = StaticCredentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    headers = SigV4Signer("us-east-1").sign(
        "GET", "examplebucket.s3.amazonaws.com", "/test.txt", "", {"range": "bytes=0-9"},
        EMPTY_SHA256, creds, "20130524T000000Z")
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    assert "x-amz-security-token" not in headers


def test_signer_signs_a_session_token() -> None:
    creds = StaticCredentials("AKID", "secret", token="the-token")
    headers = SigV4Signer("eu-west-1").sign("PUT", "h", "/b/k", "", {}, EMPTY_SHA256, creds,
                                            "20240101T000000Z")
    assert headers["x-amz-security-token"] == "the-token"
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token," \
        in headers["authorization"]
    assert "secret" not in headers["authorization"]


def test_signing_key_is_cached_per_secret_and_date() -> None:
    signer = SigV4Signer("us-east-1")
    first = signer.signing_key("s", "20240101")
    assert signer.signing_key("s", "20240101") is first
    assert signer.signing_key("s", "20240102") != first
    assert signer.signing_key("t", "20240102") != signer.signing_key("s", "20240102")


def test_uri_and_query_encoding() -> None:
    assert encode_key("a b/c+d%e=f~g") == "a%20b/c%2Bd%25e%3Df~g"
    assert encode_key("caf\u00e9/x?#") == "caf%C3%A9/x%3F%23"
    assert canonical_query({"uploadId": "a/b+c", "partNumber": "3"}) == \
        "partNumber=3&uploadId=a%2Fb%2Bc"
    assert canonical_query({"versionId": ""}) == "versionId="


def test_backoff_is_full_jitter_and_capped() -> None:
    assert backoff(1, lambda: 1.0) == pytest.approx(0.1)
    assert backoff(4, lambda: 1.0) == pytest.approx(0.8)
    assert backoff(40, lambda: 1.0) == 20.0
    assert backoff(3, lambda: 0.0) == 0.0


# ---- what goes on the wire (a recording server) -----------------------------------------


class _Refreshing:
    """A refreshable credentials source (like botocore's): asked on every request."""

    def __init__(self) -> None:
        self.calls = 0

    def refresh_needed(self) -> bool:
        return True

    async def get_frozen_credentials(self) -> StaticCredentials:
        self.calls += 1
        return StaticCredentials("AKID", "secret", token=f"token-{self.calls}")


async def test_session_tokens_are_sent_and_refreshed_per_request(
        aiohttp_recorder: tuple[str, list[web.Request]]) -> None:
    url, seen = aiohttp_recorder
    source = _Refreshing()
    fast = FastS3(endpoint_url=url, bucket="b", region="us-east-1", path_style=True,
                  credentials=source, requests=Counter())
    await fast.open()
    try:
        await fast.put_object("k 1", b"data", content_md5="bWQ1")
        await fast.get_object("k 1")
    finally:
        await fast.close()
    assert [r.headers["x-amz-security-token"] for r in seen] == ["token-1", "token-2"]
    put = seen[0]
    assert put.raw_path == "/b/k%201"
    # Nothing unsigned that S3 would refuse, nothing aiohttp adds on its own.
    assert "Content-Type" not in put.headers and "User-Agent" not in put.headers
    assert put.headers["x-amz-content-sha256"] == hashlib.sha256(b"data").hexdigest()
    assert "content-md5" in put.headers["Authorization"]


@pytest.fixture
async def aiohttp_recorder() -> AsyncIterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        seen.append(request)
        return web.Response(body=b"ok" if request.method == "GET" else b"",
                            headers={"ETag": '"e"'})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


# ---- against SeaweedFS ------------------------------------------------------------------


def _options(seaweed: SeaweedServer, endpoint: str | None = None, *, fast: bool = True,
             secret: str | None = None, attempts: int = 5) -> S3Options:
    return S3Options(endpoint_url=endpoint or seaweed.endpoint_url, region="us-east-1",
                     access_key_id=seaweed.access_key,
                     secret_access_key=secret or seaweed.secret_key, attempts=attempts,
                     fast_path=fast)


def _new_bucket(seaweed: SeaweedServer, versioning: bool = False) -> str:
    name = f"fast{next(_buckets)}"
    seaweed.create_bucket(name, versioning=versioning)
    return name


@contextlib.asynccontextmanager
async def _opened(bucket: str, options: S3Options) -> AsyncIterator[S3Store]:
    """An S3Store on `bucket`, opened; closed when the block ends."""
    s = S3Store(bucket, "", options)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture(params=[True, False], ids=["fast", "botocore"])
async def store(request: pytest.FixtureRequest, seaweed: SeaweedServer
                ) -> AsyncIterator[S3Store]:
    s = S3Store(_new_bucket(seaweed), PREFIX, _options(seaweed, fast=request.param))
    await s.open()
    assert (s._fast is not None) == request.param
    try:
        yield s
    finally:
        await s.close()


PREFIX = "pre fix/"
WEIRD_KEYS = [
    "plain.txt", "with space", "a+b", "100%", "100%25", "x=y&z", "~tilde", "q?x#y",
    "semi;colon,comma", "quote'\"", "star*[x]", "caf\u00e9",
    unicodedata.normalize("NFD", "caf\u00e9"), "emoji \U0001f600", "deep/er/path/file",
    "tab\there",
    # 1,000 bytes with the prefix (SeaweedFS allows at most 255 bytes per segment).
    "/".join(["k" * 200] * 4) + "/" + "k" * (1000 - len(PREFIX) - 804),
    "/".join(["\u00e9" * 120] * 3) + "/" + "z" * 100,
]


async def test_weird_keys_round_trip_byte_exactly(store: S3Store,
                                                  seaweed: SeaweedServer) -> None:
    for i, key in enumerate(WEIRD_KEYS):
        data = f"{i}:{key}".encode()
        stored = await store.put(key, data, md5=md5(data))
        assert stored.etag == f'"{hashlib.md5(data).hexdigest()}"'
        got = await store.get(key)
        assert isinstance(got, Fetched) and got.data == data and got.etag == stored.etag
        # The server stored exactly this key (not a normalized or decoded spelling).
        raw = seaweed.client().get_object(Bucket=store.bucket, Key=store.prefix + key)
        assert raw["Body"].read() == data
    listed = {o.key async for o in store.list()}
    assert listed == set(WEIRD_KEYS)
    nfc, nfd = "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")
    assert (await store.get(nfc)) != (await store.get(nfd))


async def test_conditional_puts(store: S3Store) -> None:
    first = await store.put(".baycat/root", b"one", md5=md5(b"one"), if_none_match_any=True)
    before = dict(store.requests)
    with pytest.raises(PreconditionFailed):
        await store.put(".baycat/root", b"two", md5=md5(b"two"), if_none_match_any=True)
    with pytest.raises(PreconditionFailed):
        await store.put(".baycat/root", b"two", md5=md5(b"two"), if_match='"0123"')
    assert store.requests["PUT"] == before["PUT"] + 2  # 412 is never retried
    second = await store.put(".baycat/root", b"two", md5=md5(b"two"), if_match=first.etag)
    assert second.etag != first.etag


async def test_a_wrong_content_md5_is_rejected(store: S3Store) -> None:
    with pytest.raises(RemoteError, match=r"BadDigest|InvalidDigest"):
        await store.put("k", b"data", md5=md5(b"other"))


async def test_conditional_and_ranged_gets(store: S3Store) -> None:
    data = bytes(range(256)) * 4
    stored = await store.put("obj", data, md5=md5(data))
    assert await store.get("obj", if_none_match=stored.etag) is NOT_MODIFIED
    got = await store.get("obj", if_none_match='"other"')
    assert isinstance(got, Fetched) and got.data == data
    part = await store.get("obj", byte_range=(10, 20))
    assert isinstance(part, Fetched) and part.data == data[10:20]
    with pytest.raises(NotFound):
        await store.get("missing")
    with pytest.raises(NotFound):
        [c async for c in store.stream("missing")]


async def test_server_side_copy(store: S3Store) -> None:
    data = b"copy me " * 1000
    source = await store.put("dir/s\u00e9rce +1.txt", data, md5=md5(data))
    before = Counter(store.requests)
    copied = await store.copy("dir/s\u00e9rce +1.txt", "other/c\u00f3py %2F.txt")
    assert copied.etag == source.etag  # same bytes, one part: the same MD5
    assert Counter(store.requests) - before == Counter({"COPY": 1})
    got = await store.get("other/c\u00f3py %2F.txt")
    assert isinstance(got, Fetched) and got.data == data
    with pytest.raises(NotFound):
        await store.copy("no/such/key", "elsewhere")


async def test_stream_and_multipart(store: S3Store) -> None:
    big = hashlib.sha256(b"seed").digest() * (6 * 1024 * 1024 // 32)  # 6 MiB
    upload = await store.create_multipart("big")
    etags = [await store.upload_part("big", upload, 1, big[:5 << 20], md5(big[:5 << 20])),
             await store.upload_part("big", upload, 2, big[5 << 20:], md5(big[5 << 20:]))]
    assert all(e.startswith('"') for e in etags)
    done = await store.complete_multipart("big", upload, list(enumerate(etags, 1)))
    assert done.etag.endswith('-2"')
    chunks = [c async for c in store.stream("big")]
    assert b"".join(chunks) == big


async def test_version_ids(seaweed: SeaweedServer) -> None:
    for fast in (True, False):
        bucket = _new_bucket(seaweed, versioning=True)
        async with _opened(bucket, _options(seaweed, fast=fast)) as s:
            v1 = await s.put("k", b"one", md5=md5(b"one"))
            v2 = await s.put("k", b"two", md5=md5(b"two"))
            assert v1.version_id and v2.version_id and v1.version_id != v2.version_id
            old = await s.get("k", version_id=v1.version_id)
            assert isinstance(old, Fetched) and old.data == b"one"
            assert b"".join([c async for c in s.stream("k", v1.version_id)]) == b"one"
            new = await s.get("k")
            assert isinstance(new, Fetched) and new.data == b"two"


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "botocore"])
async def test_bad_secret_and_missing_bucket(seaweed: SeaweedServer, fast: bool) -> None:
    bucket = _new_bucket(seaweed)
    async with _opened(bucket, _options(seaweed, fast=fast, secret="wrong-secret")) as s:
        with pytest.raises(CredentialsError) as err:
            await s.get("k")
        assert "wrong-secret" not in str(err.value)
        with pytest.raises(CredentialsError):
            await s.put("k", b"x", md5=md5(b"x"))
        assert s.requests == {"GET": 1, "PUT": 1}  # no retries on a credentials error
    async with _opened("no-such-bucket-here", _options(seaweed, fast=fast)) as s:
        with pytest.raises(BucketMissingError):
            await s.get("k")
        with pytest.raises(BucketMissingError):
            [c async for c in s.stream("k")]
        # (No PUT: SeaweedFS creates a missing bucket on PUT for an admin identity.)


async def test_unreachable_endpoint(seaweed: SeaweedServer) -> None:
    async with _opened("b", _options(seaweed, "http://127.0.0.1:9", attempts=2)) as s:
        with pytest.raises(RemoteError, match="cannot reach the S3 endpoint"):
            await s.get("k")
        assert s.requests["GET"] == 2


# ---- retries ----------------------------------------------------------------------------


@pytest.fixture
def faults(seaweed: SeaweedServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(seaweed.endpoint_url, seed=4321, enabled=False)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


async def test_faults_are_retried_and_every_attempt_counted(
        seaweed: SeaweedServer, faults: FaultProxy) -> None:
    bucket = _new_bucket(seaweed)
    async with _opened(bucket, _options(seaweed, faults.endpoint_url, attempts=12)) as s:
        faults.set_rates(FaultRates(slowdown=0.1, internal_error=0.05, drop_before=0.05,
                                    drop_mid_request=0.05, drop_mid_response=0.05))
        faults.enable()
        blobs = {f"k{i}": hashlib.sha256(bytes([i])).digest() * (i * 40 + 1)
                 for i in range(40)}
        for key, data in blobs.items():
            await s.put(key, data, md5=md5(data))
        for key, data in blobs.items():
            got = await s.get(key)
            assert isinstance(got, Fetched) and got.data == data
        faults.disable()
        injected = faults.injected()
        assert injected["slowdown"] and injected["internal_error"] and injected["drop_before"]
        assert injected["drop_mid_request"] and injected["drop_mid_response"]
        # What the proxy saw is exactly what the store counted, attempt by attempt.
        seen = faults.history()
        assert s.requests["PUT"] == sum(e.method == "PUT" for e in seen)
        assert s.requests["GET"] == sum(e.method == "GET" for e in seen)
        assert sum(s.requests.values()) == len(blobs) * 2 + sum(injected.values())


async def test_large_bodies_are_sent_whole_after_mid_request_drops(
        seaweed: SeaweedServer, faults: FaultProxy) -> None:
    """Bodies over 1 MiB go out in slices (a manifest pack is one); a connection dropped
    mid-body must resend the whole body, and a bytearray must be accepted as it is."""
    bucket = _new_bucket(seaweed)
    async with _opened(bucket, _options(seaweed, faults.endpoint_url, attempts=12)) as s:
        faults.set_rates(FaultRates(drop_mid_request=0.5))
        faults.enable()
        bodies = {f"big{i}": bytearray(hashlib.sha256(bytes([i])).digest()
                                       * ((3 << 20) // 32 + i) + b"tail" * i)
                  for i in range(4)}
        for key, data in bodies.items():
            await s.put(key, data, md5=md5(bytes(data)))
        faults.disable()
        assert faults.injected()["drop_mid_request"] > 0
        for key, data in bodies.items():
            got = await s.get(key)
            assert isinstance(got, Fetched) and got.data == bytes(data)


async def test_retries_give_up_after_attempts(seaweed: SeaweedServer,
                                              faults: FaultProxy) -> None:
    bucket = _new_bucket(seaweed)
    async with _opened(bucket, _options(seaweed, faults.endpoint_url, attempts=3)) as s:
        faults.set_rates(FaultRates(slowdown=1.0))
        faults.enable()
        with pytest.raises(RemoteError, match="SlowDown"):
            await s.put("k", b"x", md5=md5(b"x"))
        assert s.requests["PUT"] == 3 and len(faults.history()) == 3
        faults.set_rates(FaultRates(drop_before=1.0))
        with pytest.raises(RemoteError):
            await s.get("k")
        assert s.requests["GET"] == 3


async def test_precondition_failed_is_not_retried_through_the_proxy(
        seaweed: SeaweedServer, faults: FaultProxy) -> None:
    bucket = _new_bucket(seaweed)
    async with _opened(bucket, _options(seaweed, faults.endpoint_url)) as s:
        await s.put("root", b"a", md5=md5(b"a"), if_none_match_any=True)
        faults.enable()  # all rates zero: every request passes, and is recorded
        with pytest.raises(PreconditionFailed):
            await s.put("root", b"b", md5=md5(b"b"), if_none_match_any=True)
        assert len(faults.history()) == 1 and s.requests["PUT"] == 2



async def test_write_args_become_signed_headers(seaweed: SeaweedServer) -> None:
    bucket = _new_bucket(seaweed)
    options = S3Options(endpoint_url=seaweed.endpoint_url, region="us-east-1",
                        access_key_id=seaweed.access_key, secret_access_key=seaweed.secret_key,
                        storage_class="STANDARD_IA")
    async with _opened(bucket, options) as s:
        await s.put("data", b"x", md5=md5(b"x"))
        await s.put(".baycat/root", b"r", md5=md5(b"r"))  # manifest objects stay STANDARD
    head = seaweed.client().head_object(Bucket=bucket, Key="data")
    assert head.get("StorageClass") == "STANDARD_IA"
    assert seaweed.client().head_object(Bucket=bucket, Key=".baycat/root").get(
        "StorageClass", "STANDARD") == "STANDARD"


# ---- botocore only when needed -----------------------------------------------------------


def _imports_botocore(proc_stderr: bytes) -> bool:
    """From `python -X importtime` output: was any botocore module imported?"""
    return any(line.split(b"|")[-1].strip().startswith((b"botocore", b"aiobotocore"))
               for line in proc_stderr.splitlines() if line.startswith(b"import time:"))


def test_botocore_loads_only_for_calls_the_fast_path_cannot_make(
        s3: Target, tmp_path: Path) -> None:
    """With endpoint, region and keys explicit, a sync that only GETs, PUTs and copies
    never imports botocore (~0.2 s of start-up); a listing loads it on demand."""
    src = tmp_path / "data"
    make_tree(src, {"a.txt": b"alpha", "b.txt": b"bravo"})
    env = {**s3.env, "PYTHONPROFILEIMPORTTIME": "1"}
    first = run_baycat("sync", "--json", src, s3.url, env=env)
    again = run_baycat("sync", "--json", src, s3.url, env=env)
    assert not _imports_botocore(first.stderr) and not _imports_botocore(again.stderr)
    assert json.loads(again.stdout)["requests"] == {"GET": 1}
    (src / "a.txt").rename(src / "c.txt")  # CopyObject: the fast path's too
    moved = run_baycat("sync", "--json", src, s3.url, env=env)
    assert not _imports_botocore(moved.stderr)
    summary = json.loads(moved.stdout)
    assert summary["copied"]["files"] == 1 and summary["exit_code"] == 0
    assert s3.objects()["c.txt"] == b"alpha"
    (src / "b.txt").unlink()  # DeleteObjects: the fast path's too
    deleted = run_baycat("sync", "--json", "--delete", src, s3.url, env=env)
    assert not _imports_botocore(deleted.stderr)
    assert json.loads(deleted.stdout)["deleted"]["files"] == 2  # b.txt, and a.txt's object
    assert set(s3.objects()) == {"c.txt"}
    # ListObjectsV2 is botocore's: loaded on demand.
    scanned = run_baycat("sync", "--json", "--scan-remote", src, s3.url, env=env)
    assert _imports_botocore(scanned.stderr)
    assert json.loads(scanned.stdout)["requests"]["LIST"] >= 1
    # A named profile is botocore's to resolve: it is loaded from the start.
    profiled = run_baycat("sync", "--json", src, s3.url, check=None,
                          env={**env, "AWS_PROFILE": "no-such-profile"})
    assert _imports_botocore(profiled.stderr) and profiled.returncode == 3


# Names an XML body or a URL gets wrong: markup, entities, CDATA's end, percent signs.
AWKWARD_NAMES = ["with space.txt", "a&b.txt", "<tag>.txt", "&amp;.txt", "]]>.txt",
                 "100%", "100%25", "caf\u00e9", "quote'\"", "dir & co/x <y>.txt"]


def test_sync_delete_of_awkward_names_stays_on_the_fast_path(
        s3: Target, tmp_path: Path) -> None:
    """A sync --delete sends DeleteObjects itself: exactly the deleted names' objects
    go, in one request, and botocore is never imported."""
    src = tmp_path / "data"
    make_tree(src, {"keep.txt": b"kept", "dir & co": {"kept <z>": b"z"},
                    **{name: name.encode() for name in AWKWARD_NAMES
                       if not name.startswith("dir")}})
    (src / "dir & co" / "x <y>.txt").write_bytes(b"xy")
    env = {**s3.env, "PYTHONPROFILEIMPORTTIME": "1"}
    run_baycat("sync", src, s3.url, env=env)
    assert set(s3.objects()) == {"keep.txt", "dir & co/kept <z>", *AWKWARD_NAMES}
    for name in AWKWARD_NAMES:
        (src / name).unlink()
    deleted = run_baycat("sync", "--json", "--delete", src, s3.url, env=env)
    assert not _imports_botocore(deleted.stderr)
    summary = json.loads(deleted.stdout)
    assert summary["deleted"]["files"] == len(AWKWARD_NAMES) and summary["exit_code"] == 0
    assert summary["requests"]["POST"] == 1  # one DeleteObjects
    assert s3.objects() == {"keep.txt": b"kept", "dir & co/kept <z>": b"z"}


async def test_delete_many_sends_batches_of_at_most_1000_keys(
        seaweed: SeaweedServer) -> None:
    """1,001 keys: two DeleteObjects (S3 refuses more than 1,000 in one), and every
    object is gone, the awkward last key (alone in the second batch) included."""
    store = S3Store(_new_bucket(seaweed), PREFIX, _options(seaweed, fast=True))
    await store.open()
    keys = [f"k{i:04}" for i in range(1000)] + ["last & <least>"]
    try:
        gate = asyncio.Semaphore(16)

        async def put(key: str) -> None:
            async with gate:
                await store.put(key, b"x", md5=md5(b"x"))

        await asyncio.gather(*(put(key) for key in [*keys, "kept"]))
        store.requests.clear()
        assert await store.delete_many(keys) == []
        assert store.requests == {"POST": 2}
        assert store._client is None  # sent on the fast path: botocore was never set up
        assert [o.key async for o in store.list()] == ["kept"]
    finally:
        await store.close()


def test_sync_of_a_large_file_stays_on_the_fast_path(s3: Target, tmp_path: Path) -> None:
    """A file over the multipart threshold (16 MiB) is created, sent in parts and
    completed without botocore; the object has S3's MD5-of-MD5s ETag and the
    storage class asked for, no upload is left open, and it restores byte for byte."""
    src = tmp_path / "data"
    name = "big & <co> ]]> 100%.bin"
    data = random.Random(7).randbytes((16 << 20) + 1000)  # parts of 8, 8 MiB and 1000 B
    make_tree(src, {"d &amp; e": {name: data}})
    env = {**s3.env, "PYTHONPROFILEIMPORTTIME": "1"}
    synced = run_baycat("sync", "--json", "--storage-class", "STANDARD_IA", src, s3.url,
                        env=env)
    assert not _imports_botocore(synced.stderr)
    summary = json.loads(synced.stdout)
    assert summary["exit_code"] == 0 and summary["uploaded"]["files"] == 1
    assert summary["requests"]["POST"] == 2  # CreateMultipartUpload, Complete...
    key = f"{s3.prefix}d &amp; e/{name}"
    head = s3.seaweed.client().head_object(Bucket=s3.bucket, Key=key)  # type: ignore[union-attr]
    parts = [data[:8 << 20], data[8 << 20:16 << 20], data[16 << 20:]]
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert head["ETag"] == f'"{expected}-3"' and head.get("StorageClass") == "STANDARD_IA"
    assert s3.seaweed.client().list_multipart_uploads(  # type: ignore[union-attr]
        Bucket=s3.bucket).get("Uploads", []) == []
    restored = tmp_path / "restored"
    run_baycat("sync", s3.url, restored, env=s3.env)
    assert (restored / "d &amp; e" / name).read_bytes() == data


async def test_multipart_abort_stays_on_the_fast_path(seaweed: SeaweedServer) -> None:
    bucket = _new_bucket(seaweed)
    store = S3Store(bucket, PREFIX, _options(seaweed, fast=True))
    await store.open()
    key = "a & <b> 100%25 \u00e9"
    try:
        upload = await store.create_multipart(key)
        await store.upload_part(key, upload, 1, b"part", md5(b"part"))
        await store.abort_multipart(key, upload)
        assert store.requests == {"POST": 1, "PUT": 1, "DELETE": 1}
        assert store._client is None  # sent on the fast path: botocore was never set up
    finally:
        await store.close()
    assert seaweed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
