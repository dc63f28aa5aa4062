"""One contract, every store: the same tests run against each ObjectStore implementation
(restic's backend suite, rclone's fstests), so the engine can rely on what they share.

    kind          the store under test                          what saw the requests
    local         LocalStore over a fresh directory             (no wire: its own count)
    s3-fast       S3Store on SeaweedFS, a fresh bucket, keys    the counting proxy
                  under a prefix; GET/PUT/COPY on the fast path
    s3-botocore   the same with S3Options(fast_path=False)      the counting proxy
    http          HttpStore over a static web server serving    the web server's log
                  a LocalStore's directory (read side only)

Read tests run on every kind (for `http` the objects are put through the LocalStore
whose directory the server serves); write tests on the three writable kinds. Every call
is wrapped in `backend.sends(...)`: the requests the store counted, by type, must be the
ones expected, and where there is a server, exactly the ones it received.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from xml.sax.saxutils import escape

import pytest

# The store layer under test: every baycat import of this file is here.
from baycat.errors import RemoteError, UsageError
from baycat.manifest.keys import key_for_path
from baycat.store.base import (
    NOT_MODIFIED,
    Fetched,
    NotFound,
    ObjectInfo,
    ObjectStore,
    PreconditionFailed,
)
from baycat.store.http import HttpStore
from baycat.store.local import LocalStore
from baycat.store.s3 import S3Store
from baycat.store.s3_options import S3Options
from tests.support._forwarding import FORWARD, Exchange, ForwardingProxy, Plan
from tests.support.counting_proxy import CountingProxy
from tests.support.seaweed import SeaweedServer
from tests.support.static_http import StaticServer
from tests.support.tables import row
from tests.trees import NFC, NFD, WEIRD_NAMES

PREFIX = "some/prefix/"  # S3 kinds keep their keys under it
MIB = 1 << 20
WRITABLE = ("local", "s3-fast", "s3-botocore")
READABLE = (*WRITABLE, "http")

_buckets = itertools.count()


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def quoted_md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def noise(size: int, seed: int = 0) -> bytes:
    """Bytes that never repeat a pattern, so an off-by-one range shows."""
    return random.Random(seed).randbytes(size)


def _weird_keys() -> list[str]:
    # The keys the engine sends for the names a backup must reproduce (key_for_path
    # turns the ones S3 can't take into .baycat/escaped/... keys), nested ones, and
    # spellings that URL and XML encoders get wrong.
    keys = [key_for_path(name, PREFIX) for name in WEIRD_NAMES]
    keys += ["deep/er/" + k for k in keys if not k.startswith(".baycat/")][:4]
    keys += ["100%", "100%25", "a+b=c&d", "q?x#y", ".hidden", "dir with space/x",
             "semi;colon,comma", "/".join(["k" * 250] * 3) + "/" + "z" * 100]
    assert len(set(keys)) == len(keys)
    return keys


WEIRD_KEYS = _weird_keys()


# ---- the backends -----------------------------------------------------------------------


class Wire(Protocol):
    """What a server received, by request type (CountingProxy is one)."""

    def counts(self) -> Counter[str]: ...

    def reset(self) -> None: ...


class StaticLog:
    """The static web server's "GET 206"-style log as a Wire."""

    def __init__(self, server: StaticServer) -> None:
        self._server = server

    def counts(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for line, n in self._server.requests.items():
            out[line.split()[0]] += n
        return out

    def reset(self) -> None:
        self._server.requests.clear()


@dataclass
class Backend:
    kind: str
    store: ObjectStore
    # Puts the objects the read tests read: the store itself, except for `http`.
    writer: ObjectStore
    wire: Wire | None = None  # None: no server, the store's own count is all there is
    _before: Counter[str] = field(default_factory=Counter, repr=False)

    @property
    def md5_etags(self) -> bool:
        """ETags are the quoted MD5 of single-part content (a web server has its own)."""
        return self.kind != "http"

    @property
    def lists_multipart_etags(self) -> bool:
        """A completed multipart object keeps its MD5-of-MD5s-N ETag in head and list;
        a local directory only has the file, so it answers the file's MD5 there."""
        return self.kind.startswith("s3")

    async def seed(self, key: str, data: bytes) -> None:
        await self.writer.put(key, data, md5=md5(data))

    @contextlib.contextmanager
    def sends(self, **expected: int) -> Iterator[None]:
        """The block must send exactly `expected` requests, by type."""
        self._before = Counter(self.store.requests)
        if self.wire is not None:
            self.wire.reset()
        yield
        counted = Counter(self.store.requests)
        counted.subtract(self._before)
        assert dict(+counted) == expected, f"{self.kind} counted {dict(+counted)}"
        if self.wire is not None:
            seen = dict(+self.wire.counts())
            assert seen == expected, f"{self.kind}: the server saw {seen}"


def _s3_options(endpoint: str, seaweed: SeaweedServer, fast: bool) -> S3Options:
    return S3Options(endpoint_url=endpoint, region=seaweed.region,
                     access_key_id=seaweed.access_key,
                     secret_access_key=seaweed.secret_key, fast_path=fast)


def _new_bucket(seaweed: SeaweedServer) -> str:
    bucket = f"contract{os.getpid()}-{next(_buckets)}"
    seaweed.create_bucket(bucket)
    # Neighbours outside the store's prefix: a listing must never show them.
    for key in ("outside", PREFIX.rstrip("/") + "-sibling", PREFIX[:-1]):
        seaweed.client().put_object(Bucket=bucket, Key=key, Body=b"not in the store")
    return bucket


@contextlib.asynccontextmanager
async def open_backend(kind: str, request: pytest.FixtureRequest,
                       tmp_path: Path) -> AsyncIterator[Backend]:
    if kind.startswith("s3"):
        seaweed: SeaweedServer = request.getfixturevalue("seaweed")
        proxy: CountingProxy = request.getfixturevalue("counting_proxy")
        fast = kind == "s3-fast"
        s3 = S3Store(_new_bucket(seaweed), PREFIX,
                     _s3_options(proxy.endpoint_url, seaweed, fast))
        await s3.open()
        assert (s3._fast is not None) == fast  # the path this kind claims to test
        try:
            yield Backend(kind, s3, s3, proxy)
        finally:
            await s3.close()
        return
    local = LocalStore(tmp_path / "store")
    await local.check()
    if kind == "local":
        yield Backend(kind, local, local)
        return
    assert kind == "http"
    with StaticServer(local.root) as server:
        http = HttpStore(server.url)
        await http.open()
        try:
            yield Backend(kind, http, local, StaticLog(server))
        finally:
            await http.close()


@pytest.fixture(params=READABLE)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend(request.param, request, tmp_path) as opened:
        yield opened


@pytest.fixture(params=WRITABLE)
async def writable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend(request.param, request, tmp_path) as opened:
        yield opened


async def fetch(store: ObjectStore, key: str, **kwargs: Any) -> Fetched:
    got = await store.get(key, **kwargs)
    assert isinstance(got, Fetched), got
    return got


async def listed(store: ObjectStore, prefix: str = "") -> dict[str, tuple[int, str]]:
    infos: list[ObjectInfo] = [info async for info in store.list(prefix)]
    out = {info.key: (info.size, info.etag) for info in infos}
    assert len(out) == len(infos), "a key listed twice"
    return out


async def body_or_none(store: ObjectStore, key: str) -> bytes | None:
    """The object's bytes, or None when there is none."""
    try:
        return (await fetch(store, key)).data
    except NotFound:
        return None


# ---- the read side: every kind ----------------------------------------------------------


async def test_weird_keys_round_trip_byte_exactly(backend: Backend) -> None:
    for i, key in enumerate(WEIRD_KEYS):
        await backend.seed(key, f"{i}:{key}".encode())
    for i, key in enumerate(WEIRD_KEYS):
        data = f"{i}:{key}".encode()
        with backend.sends(GET=1):
            got = await fetch(backend.store, key)
        assert got.data == data, key
        assert got.etag, key
        if backend.md5_etags:
            assert got.etag == quoted_md5(data), key
    # NFC and NFD spellings are different keys, not one normalized object.
    assert (await fetch(backend.store, NFC)).data != (await fetch(backend.store, NFD)).data


# (key, why it is not an object), with "dir/x" and "file" stored.
MISSING = [
    ("missing", "no such key"),
    ("dir", "only a prefix of another key"),
    ("file/below", "below an object"),
]


async def test_reading_a_missing_key_raises_not_found(backend: Backend) -> None:
    await backend.seed("dir/x", b"x")
    await backend.seed("file", b"f")
    for key, why in MISSING:
        with row(why):
            with backend.sends(GET=1), pytest.raises(NotFound):
                await backend.store.get(key)
            with backend.sends(GET=1), pytest.raises(NotFound):
                await backend.store.get(key, byte_range=(0, 1))
            with backend.sends(GET=1), pytest.raises(NotFound):
                await backend.store.get(key, if_none_match=quoted_md5(b"x"))
            with backend.sends(HEAD=1), pytest.raises(NotFound):
                await backend.store.head(key)
            with backend.sends(GET=1), pytest.raises(NotFound):
                [chunk async for chunk in backend.store.stream(key)]


BODY = noise(2 * MIB + MIB // 2 + 7)
# (start, end) of `get(byte_range=...)`: bytes [start, end).
RANGES = [
    (0, 1),
    (0, len(BODY)),
    (10, 20),
    (len(BODY) - 1, len(BODY)),
    (MIB - 5, MIB + 5),  # across the 1 MiB chunks of the readers
    (MIB, 2 * MIB + 1),
]


async def test_ranged_get_returns_exactly_the_bytes_asked_for(backend: Backend) -> None:
    await backend.seed("obj", BODY)
    for start, end in RANGES:
        with backend.sends(GET=1):
            got = await fetch(backend.store, "obj", byte_range=(start, end))
        assert len(got.data) == end - start, (start, end)
        assert got.data == BODY[start:end], (start, end)


async def test_get_if_none_match(backend: Backend) -> None:
    await backend.seed("root", b"version one")
    first = await fetch(backend.store, "root")
    with backend.sends(GET=1):
        assert await backend.store.get("root", if_none_match=first.etag) is NOT_MODIFIED
    with backend.sends(GET=1):
        other = await fetch(backend.store, "root", if_none_match='"' + "0" * 32 + '"')
    assert other == first
    await backend.seed("root", b"version two, longer")
    with backend.sends(GET=1):
        second = await fetch(backend.store, "root", if_none_match=first.etag)
    assert second.data == b"version two, longer"
    assert second.etag not in ("", first.etag)
    with backend.sends(GET=1):
        assert await backend.store.get("root", if_none_match=second.etag) is NOT_MODIFIED


SIZES = {"empty": b"", "1 B": b"x", "2.5 MiB": BODY}


async def test_head_returns_size_and_etag(backend: Backend) -> None:
    for name, data in SIZES.items():
        await backend.seed(f"a/{name}", data)
        with row(name):
            with backend.sends(HEAD=1):
                info = await backend.store.head(f"a/{name}")
            assert (info.key, info.size) == (f"a/{name}", len(data))
            assert info.etag == (await fetch(backend.store, f"a/{name}")).etag
            if backend.md5_etags:
                assert info.etag == quoted_md5(data)


async def test_stream_yields_the_whole_body(backend: Backend) -> None:
    for name, data in SIZES.items():
        await backend.seed(f"s/{name}", data)
        with row(name):
            with backend.sends(GET=1):
                chunks = [chunk async for chunk in backend.store.stream(f"s/{name}")]
            assert b"".join(chunks) == data
            assert all(chunks)  # no empty chunks


# conditional_writes, content_etags as the Protocol documents them, for each store.
ATTRIBUTES: dict[str, tuple[Callable[[Path], ObjectStore], bool | None, bool]] = {
    # An flock makes If-Match / If-None-Match atomic.
    "local": (lambda tmp: LocalStore(tmp), True, True),
    # Only a probe can tell (rclone's `serve s3` ignores them); MD5 ETags unless SSE-KMS.
    "s3": (lambda _: S3Store("b", PREFIX, S3Options()), None, True),
    "s3 sse AES256": (lambda _: S3Store("b", PREFIX, S3Options(sse="AES256")), None, True),
    "s3 sse-kms": (lambda _: S3Store("b", PREFIX, S3Options(sse="aws:kms")), None, False),
    # Read-only: nothing is written, conditionally or not; a web server's ETags are its
    # own (aiohttp: mtime-size), not MD5s.
    "http": (lambda _: HttpStore("http://127.0.0.1:9/b/"), False, False),
}


@pytest.mark.parametrize("kind", ATTRIBUTES)
def test_store_attributes(kind: str, tmp_path: Path) -> None:
    make, conditional_writes, content_etags = ATTRIBUTES[kind]
    store = make(tmp_path)
    assert store.conditional_writes is conditional_writes
    assert store.content_etags is content_etags
    assert store.key_prefix == (PREFIX if kind.startswith("s3") else "")
    assert store.requests == {}


# ---- the write side: local and S3 -------------------------------------------------------


async def test_put_answers_the_md5_etag_and_the_keys_list_as_put(writable: Backend) -> None:
    store = writable.store
    for i, key in enumerate(WEIRD_KEYS):
        data = f"{i}:{key}".encode()
        with writable.sends(PUT=1):
            stored = await store.put(key, data, md5=md5(data))
        assert stored.etag == quoted_md5(data), key
    with writable.sends(LIST=1):
        found = await listed(store)
    assert found == {key: (len(f"{i}:{key}".encode()), quoted_md5(f"{i}:{key}".encode()))
                     for i, key in enumerate(WEIRD_KEYS)}


V1, V2, V3 = b"one", b"two, longer", b"three"


@dataclass(frozen=True)
class CondPut:
    name: str
    before: tuple[bytes, ...]  # versions put (unconditionally) before the conditional one
    condition: Callable[[list[str]], dict[str, Any]]  # ETags of `before` -> put kwargs
    stored: bool  # else refused with PreconditionFailed, and the object stays as it was


CONDITIONAL_PUTS = [
    CondPut("none-match-any on a missing key", (), lambda _: {"if_none_match_any": True},
            stored=True),
    CondPut("none-match-any on an existing key", (V1,),
            lambda _: {"if_none_match_any": True}, stored=False),
    CondPut("if-match the current etag", (V1, V2), lambda e: {"if_match": e[-1]},
            stored=True),
    CondPut("if-match a stale etag", (V1, V2), lambda e: {"if_match": e[0]}, stored=False),
    CondPut("if-match on a missing key", (), lambda _: {"if_match": quoted_md5(V1)},
            stored=False),
    CondPut("unconditional over an existing key", (V1,), lambda _: {}, stored=True),
]


async def test_conditional_put(writable: Backend) -> None:
    store = writable.store
    for i, case in enumerate(CONDITIONAL_PUTS):
        key = f"{i}/.baycat/root"
        etags = [(await store.put(key, v, md5=md5(v))).etag for v in case.before]
        with row(case.name):
            with writable.sends(PUT=1):  # a refusal (412) is never retried
                if case.stored:
                    stored = await store.put(key, V3, md5=md5(V3), **case.condition(etags))
                    assert stored.etag == quoted_md5(V3)
                else:
                    with pytest.raises(PreconditionFailed):
                        await store.put(key, V3, md5=md5(V3), **case.condition(etags))
            expected = V3 if case.stored else (case.before[-1] if case.before else None)
            assert await body_or_none(store, key) == expected


async def test_a_put_whose_md5_does_not_match_the_body_is_refused(writable: Backend) -> None:
    store = writable.store
    await store.put("existing", V1, md5=md5(V1))
    for key, before in (("new", None), ("existing", V1)):
        with row(key):
            with writable.sends(PUT=1), pytest.raises(RemoteError) as refused:
                await store.put(key, b"the body", md5=md5(b"another body"))
            assert not isinstance(refused.value, NotFound | PreconditionFailed)
            assert await body_or_none(store, key) == before
    with writable.sends(LIST=1):
        assert set(await listed(store)) == {"existing"}


SOURCE, OLD_DST = b"the source's bytes", b"what the destination held"


@dataclass(frozen=True)
class CondCopy:
    name: str
    source: str  # "src" holds SOURCE (and held an older, "stale" version); "dir/x", "file"
    if_match: str | None  # "current", "stale" or None
    dst_before: bytes | None
    raises: type[Exception] | None


COPIES = [
    CondCopy("plain", "src", None, None, None),
    CondCopy("if-match the current etag", "src", "current", None, None),
    CondCopy("over an existing destination", "src", "current", OLD_DST, None),
    CondCopy("if-match a stale etag", "src", "stale", None, PreconditionFailed),
    CondCopy("if-match a stale etag, destination kept", "src", "stale", OLD_DST,
             PreconditionFailed),
    CondCopy("missing source", "missing", None, OLD_DST, NotFound),
    CondCopy("missing source with if-match", "missing", "current", None, NotFound),
    CondCopy("source only a prefix of another key", "dir", None, None, NotFound),
    CondCopy("source below an object", "file/below", None, None, NotFound),
]


async def test_copy(writable: Backend) -> None:
    store = writable.store
    stale = (await store.put("src", b"an earlier source", md5=md5(b"an earlier source"))).etag
    current = (await store.put("src", SOURCE, md5=md5(SOURCE))).etag
    await store.put("dir/x", b"x", md5=md5(b"x"))
    await store.put("file", b"f", md5=md5(b"f"))
    for i, case in enumerate(COPIES):
        dst = f"other/{i}/c\u00f3py %2F.txt"
        if case.dst_before is not None:
            await store.put(dst, case.dst_before, md5=md5(case.dst_before))
        if_match = {"current": current, "stale": stale, None: None}[case.if_match]
        with row(case.name):
            with writable.sends(COPY=1):
                if case.raises is None:
                    copied = await store.copy(case.source, dst, if_match=if_match)
                    assert copied.etag == current == quoted_md5(SOURCE)
                else:
                    with pytest.raises(case.raises):
                        await store.copy(case.source, dst, if_match=if_match)
            assert await body_or_none(store, dst) == (SOURCE if case.raises is None
                                                      else case.dst_before)
            if case.raises is None:
                assert await store.head(dst) == ObjectInfo(dst, len(SOURCE), current)
    assert await body_or_none(store, "src") == SOURCE


PART1, PART2 = noise(5 * MIB, seed=1), noise(1000, seed=2)  # S3's smallest non-last part
BIG = "big/file \u00e9.bin"


async def test_multipart_upload(writable: Backend) -> None:
    store = writable.store
    with writable.sends(POST=1):
        upload = await store.create_multipart(BIG)
    assert upload
    with writable.sends(PUT=1), pytest.raises(RemoteError):
        await store.upload_part(BIG, upload, 1, PART1, md5(PART2))
    parts = []
    for number, data in enumerate((PART1, PART2), 1):
        with writable.sends(PUT=1):
            etag = await store.upload_part(BIG, upload, number, data, md5(data))
        assert etag == quoted_md5(data)
        parts.append((number, etag))
    with writable.sends(LIST=1):
        assert await listed(store, "big/") == {}  # an unfinished upload is no object
    with writable.sends(POST=1):
        done = await store.complete_multipart(BIG, upload, parts)
    whole = PART1 + PART2
    assert done.etag == f'"{hashlib.md5(md5(PART1) + md5(PART2)).hexdigest()}-2"'
    assert (await fetch(store, BIG)).data == whole
    assert b"".join([c async for c in store.stream(BIG)]) == whole
    etag = done.etag if writable.lists_multipart_etags else quoted_md5(whole)
    assert await store.head(BIG) == ObjectInfo(BIG, len(whole), etag)
    assert await listed(store, "big/") == {BIG: (len(whole), etag)}


async def test_multipart_upload_of_awkward_keys(writable: Backend) -> None:
    # The key travels in the URL of every multipart request, the part ETags in an XML
    # body: the object must arrive under exactly the key named, and an abort must find it.
    store = writable.store
    keys = ["100%", "100%25", "a+b=c&d", "q?x#y", "x<y>z & ]]>", "dir with space/\u00e9"]
    for key in keys:
        with row(key):
            data = key.encode()
            with writable.sends(POST=2, PUT=1):
                upload = await store.create_multipart(key)
                etag = await store.upload_part(key, upload, 1, data, md5(data))
                done = await store.complete_multipart(key, upload, [(1, etag)])
            assert done.etag == f'"{hashlib.md5(md5(data)).hexdigest()}-1"'
            assert (await fetch(store, key)).data == data
    aborted = await store.create_multipart("a&b <c>/\u00e9 %")
    with writable.sends(DELETE=1):
        await store.abort_multipart("a&b <c>/\u00e9 %", aborted)
    assert set(await listed(store)) == set(keys)


async def test_abort_leaves_nothing(writable: Backend) -> None:
    store = writable.store
    upload = await store.create_multipart(BIG)
    await store.upload_part(BIG, upload, 1, PART1, md5(PART1))
    with writable.sends(DELETE=1):
        await store.abort_multipart(BIG, upload)
    with pytest.raises(NotFound):
        await store.head(BIG)
    assert await listed(store) == {}


async def test_delete_many(writable: Backend) -> None:
    store = writable.store
    for key in ("a", "b/c", "b/d", "e"):
        await store.put(key, key.encode(), md5=md5(key.encode()))
    with writable.sends():
        assert await store.delete_many([]) == []
    # Keys that are not there are no failures: deleting is idempotent.
    missing = ["missing", "b/missing/deeper", "e/below-an-object"]
    with writable.sends(POST=1):
        assert await store.delete_many(["a", "b/c", *missing]) == []
    assert set(await listed(store)) == {"b/d", "e"}
    with writable.sends(POST=1):
        assert await store.delete_many(["a", "b/c", *missing]) == []


async def test_delete_many_deletes_exactly_the_keys_named(writable: Backend) -> None:
    # The keys travel in an XML body on S3: markup and entities must arrive as written.
    keys = [*WEIRD_KEYS, "x<y>z", "a&amp;b", "]]>", "&#13;", "<Key>"]
    store = writable.store
    for key in keys:
        await store.put(key, key.encode(), md5=md5(key.encode()))
    doomed, kept = keys[::2], keys[1::2]
    with writable.sends(POST=1):
        assert await store.delete_many(doomed) == []
    assert set(await listed(store)) == set(kept)


async def test_local_delete_many_reports_what_it_could_not_delete(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for key in ("a", "b/c"):
        await store.put(key, b"x", md5=md5(b"x"))
    # "b" is a directory there (it holds b/c): a file can't be deleted in its place.
    failed = await store.delete_many(["a", "b"])
    assert [key for key, _ in failed] == ["b"] and failed[0][1]
    assert set(await listed(store)) == {"b/c"}
    assert store.requests == {"PUT": 2, "POST": 1, "LIST": 1}


class DeleteRefuser(ForwardingProxy):
    """Answers every DeleteObjects (POST ?delete) with a canned reply that lists a
    per-key error for each of `refused` (full key, code, message or None for no
    <Message>); forwards everything else."""

    def __init__(self, upstream: str, refused: list[tuple[str, str, str | None]]) -> None:
        super().__init__(upstream)
        errors = "".join(
            f"<Error><Key>{escape(key)}</Key><Code>{code}</Code>"
            + ("" if message is None else f"<Message>{message}</Message>") + "</Error>"
            for key, code, message in refused)
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"{errors}</DeleteResult>").encode()
        self._reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body)) + body

    def on_request(self, ex: Exchange) -> Plan:
        if ex.request.method == "POST" and "delete" in ex.request.query:
            return Plan(label="refuse", respond=self._reply)
        return FORWARD


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "botocore"])
async def test_s3_delete_many_reports_the_keys_the_server_refused(
        seaweed: SeaweedServer, fast: bool) -> None:
    # Both paths report the same: the key as the caller named it, S3's message, else
    # its code.
    refused = [(PREFIX + "b <&> \u00e9", "AccessDenied", "Access Denied"),
               (PREFIX + "c", "InternalError", None)]
    with DeleteRefuser(seaweed.endpoint_url, refused) as proxy:
        store = S3Store(_new_bucket(seaweed), PREFIX,
                        _s3_options(proxy.endpoint_url, seaweed, fast=fast))
        await store.open()
        try:
            failed = await store.delete_many(["a", "b <&> \u00e9", "c"])
            assert (store._client is None) == fast  # the path this case claims to test
        finally:
            await store.close()
    assert failed == [("b <&> \u00e9", "Access Denied"), ("c", "InternalError")]
    assert store.requests == {"POST": 1}


class CompleteRefuser(ForwardingProxy):
    """Answers the first `times` CompleteMultipartUploads (POST ?uploadId=) 200 OK with
    `body`, as S3 reports an error it met after sending the headers; forwards
    everything else, later completes included. `refused`: how many it answered."""

    def __init__(self, upstream: str, body: bytes, times: int) -> None:
        super().__init__(upstream)
        self._reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body)) + body
        self._left = times
        self.refused = 0

    def on_request(self, ex: Exchange) -> Plan:
        if ex.request.method == "POST" and "uploadId" in ex.request.query and self._left:
            self._left -= 1
            self.refused += 1
            return Plan(label="refuse", respond=self._reply)
        return FORWARD


def _error_in_200(code: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{code} after 200 OK</Message>"
            "<RequestId>4442587FB7D0A2F9</RequestId></Error>").encode()


# A reply whose body stops mid-way through the XML (S3 sends it slowly while it works).
_CUT_SHORT = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
              b'<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
              b"<Location>http://")


@pytest.mark.parametrize("body", [_error_in_200("InternalError"), _CUT_SHORT],
                         ids=["error", "cut-short"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "botocore"])
async def test_s3_complete_answered_200_with_an_error_is_tried_again(
        seaweed: SeaweedServer, fast: bool, body: bytes) -> None:
    # botocore makes such a reply a 500 and retries it; the fast path must too, and
    # answer the completed object's real ETag, not take the error for a success.
    with CompleteRefuser(seaweed.endpoint_url, body, times=1) as proxy:
        store = S3Store(_new_bucket(seaweed), PREFIX,
                        _s3_options(proxy.endpoint_url, seaweed, fast=fast))
        await store.open()
        try:
            upload = await store.create_multipart(BIG)
            etag = await store.upload_part(BIG, upload, 1, PART2, md5(PART2))
            done = await store.complete_multipart(BIG, upload, [(1, etag)])
            assert (store._client is None) == fast  # the path this case claims to test
            assert (await fetch(store, BIG)).data == PART2
        finally:
            await store.close()
    assert done.etag == f'"{hashlib.md5(md5(PART2)).hexdigest()}-1"'
    assert proxy.refused == 1
    assert store.requests == {"POST": 3, "PUT": 1, "GET": 1}  # the complete sent twice


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "botocore"])
async def test_s3_complete_answered_200_with_an_error_every_time_fails(
        seaweed: SeaweedServer, fast: bool) -> None:
    # Every attempt (two here) gets the error: the complete fails with S3's code, no
    # object appears, and the upload can still be aborted.
    bucket = _new_bucket(seaweed)
    with CompleteRefuser(seaweed.endpoint_url, _error_in_200("InvalidPart"), times=9) as proxy:
        options = _s3_options(proxy.endpoint_url, seaweed, fast=fast)
        store = S3Store(bucket, PREFIX, replace(options, attempts=2))
        await store.open()
        try:
            upload = await store.create_multipart(BIG)
            etag = await store.upload_part(BIG, upload, 1, PART2, md5(PART2))
            with pytest.raises(RemoteError, match="InvalidPart"):
                await store.complete_multipart(BIG, upload, [(1, etag)])
            assert (store._client is None) == fast
            await store.abort_multipart(BIG, upload)
            assert await body_or_none(store, BIG) is None
        finally:
            await store.close()
    # botocore's max_attempts counts retries, not attempts: it sends one more.
    assert proxy.refused == (2 if fast else 3)
    assert seaweed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


LIST_KEYS = ["d/a", "d/b/c", "d/bx", "d-x", "da", "e"]
# prefix -> exactly the keys list(prefix) yields
LISTINGS = {
    "": LIST_KEYS,
    "d/": ["d/a", "d/b/c", "d/bx"],
    "d/b": ["d/b/c", "d/bx"],
    "d/b/": ["d/b/c"],
    "d": ["d/a", "d/b/c", "d/bx", "d-x", "da"],
    "d-": ["d-x"],
    "e": ["e"],
    "nothing/": [],
    "d/a/": [],
}


async def test_list_yields_exactly_the_keys_under_a_prefix(writable: Backend) -> None:
    # The order is not part of the contract (a local directory lists directory by
    # directory, S3 in key order): every caller builds a dict of the listing.
    store = writable.store
    content = {key: key.encode() * i for i, key in enumerate(LIST_KEYS)}
    for key, data in content.items():
        await store.put(key, data, md5=md5(data))
    for prefix, keys in LISTINGS.items():
        with row(f"prefix {prefix!r}"):
            with writable.sends(LIST=1):
                found = await listed(store, prefix)
            assert found == {k: (len(content[k]), quoted_md5(content[k])) for k in keys}


# ---- the HTTP store is read-only --------------------------------------------------------


HTTP_WRITES: dict[str, Callable[[ObjectStore], Awaitable[object]]] = {
    "put": lambda s: s.put("k", b"x", md5=md5(b"x")),
    "put if-none-match": lambda s: s.put("k", b"x", md5=md5(b"x"), if_none_match_any=True),
    "create_multipart": lambda s: s.create_multipart("k"),
    "upload_part": lambda s: s.upload_part("k", "id", 1, b"x", md5(b"x")),
    "complete_multipart": lambda s: s.complete_multipart("k", "id", [(1, '"e"')]),
    "abort_multipart": lambda s: s.abort_multipart("k", "id"),
    "copy": lambda s: s.copy("src", "k"),
    "delete_many": lambda s: s.delete_many(["src"]),
    "list": lambda s: listed(s),  # a web server can't list
}


async def test_http_store_refuses_every_write_without_a_request(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    async with open_backend("http", request, tmp_path) as http:
        await http.seed("src", b"source")
        for name, write in HTTP_WRITES.items():
            with row(name), http.sends(), pytest.raises(UsageError):
                await write(http.store)
        assert await body_or_none(http.writer, "k") is None
        assert await body_or_none(http.writer, "src") == b"source"
