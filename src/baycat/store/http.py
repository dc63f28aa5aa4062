"""A backup read over plain HTTP(S): the read side of the store protocol, with GETs only.

Any web server that serves files and honours `Range` can serve a backup: a public
bucket, S3 static website hosting, or nginx over a directory written by a `file://`
sync. That is why the manifest lives in files (`.baycat/root`, packs) and not in object
headers: a restore needs nothing but `GET` (conditional with `If-None-Match`, ranged for
the manifest segments).

Keys become URL paths byte-exactly: every byte that is not unreserved (RFC 3986:
letters, digits, `-._~`) is percent-encoded, except the `/` between path components, so
the URL is ASCII and no server or proxy normalization can change which file is meant.
Keys with empty, `.` or `..` components are refused (a client would collapse them and
leave the backup's prefix). A VersionId is ignored: a web server serves the current
object, and the manifest's hash check refuses it if it changed (a public bucket would
need s3:GetObjectVersion for `?versionId=`). The server is untrusted: a whole-object body
larger than `MAX_GET_BYTES`, or a ranged body longer than the range asked for, is an
error.

TLS and proxies as for S3 (store/transport.py): `--ca-bundle` / AWS_CA_BUNDLE,
`--no-verify-ssl`, HTTP(S)_PROXY and NO_PROXY as botocore reads them; a certificate
that fails verification is one line naming the host and port.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import NoReturn
from urllib.parse import quote

import aiohttp

from baycat.errors import RemoteError, UsageError
from baycat.store.base import (
    NOT_MODIFIED,
    Fetched,
    NotFound,
    NotModified,
    ObjectInfo,
    Stored,
    Upload,
    Version,
    no_answer,
)
from baycat.store.transport import certificate_error, env_proxy, tls_context

CHUNK = 1 << 20
# A whole-object GET (the manifest root) holds the body in memory: at most this much.
MAX_GET_BYTES = 256 << 20
_UNRESERVED_SAFE = "/"  # quote() leaves letters, digits and "_.-~" alone


def key_url_path(key: str) -> str:
    """The percent-encoded URL path of `key` (relative; ASCII only)."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise RemoteError(f"refusing unsafe object key {key!r}")
    return quote(key.encode("utf-8", "surrogateescape"), safe=_UNRESERVED_SAFE)


class HttpStore:
    """Read-only store at `base_url` (ends with "/"). Writes raise UsageError."""

    conditional_writes: bool | None = False
    content_etags = False  # a web server's ETags are its own (mtime-size), not MD5s
    uses_md5 = True  # (it writes nothing)

    def __init__(self, base_url: str, *, max_connections: int = 32,
                 connect_timeout: float = 10, read_timeout: float = 60,
                 ca_bundle: str | None = None, verify_ssl: bool = True) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._ssl = tls_context(ca_bundle, verify_ssl)
        self._proxy = env_proxy(self.base_url)
        self.requests: Counter[str] = Counter()
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def key_prefix(self) -> str:
        return ""

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, auto_decompress=False,
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    ssl=True if self._ssl is None else self._ssl))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def check(self) -> None:
        return  # the first GET (the manifest root) reports an unreachable server

    def _url(self, key: str) -> str:
        return self.base_url + key_url_path(key)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RemoteError("HTTP store used before open()")
        return self._session

    def _status_error(self, key: str, status: int, reason: str | None) -> RemoteError:
        if status in (404, 410):
            return NotFound(f"{self.base_url}{key}: not found")
        if status in (401, 403):
            # A bucket without public read answers 403 for what doesn't exist, too.
            return NotFound(f"{self.base_url}{key}: HTTP {status} (not found or not public)")
        return RemoteError(f"{self.base_url}{key}: HTTP {status} {reason or ''}".strip())

    def _transport_error(self, exc: BaseException, key: str, what: str = "") -> RemoteError:
        certificate = certificate_error(exc)
        if certificate is not None:
            return certificate
        if isinstance(exc, TimeoutError):
            connecting = isinstance(exc, aiohttp.ConnectionTimeoutError)
            return no_answer(self.base_url, self._connect_timeout if connecting
                             else self._read_timeout, f"GET {key}", connecting)
        return RemoteError(f"{self.base_url}{key}: {what}{exc}")

    async def get(self, key: str, *, if_none_match: str | None = None,
                  byte_range: tuple[int, int] | None = None,
                  version_id: str = "") -> Fetched | NotModified:
        headers = {"Accept-Encoding": "identity"}
        if if_none_match:
            headers["If-None-Match"] = if_none_match
        limit = MAX_GET_BYTES
        if byte_range is not None:
            start, end = byte_range
            if end <= start:
                return Fetched(b"", "")
            headers["Range"] = f"bytes={start}-{end - 1}"
            limit = end - start
        self.requests["GET"] += 1
        try:
            async with self._http().get(self._url(key), headers=headers,
                                        proxy=self._proxy) as response:
                if response.status == 304:
                    return NOT_MODIFIED
                if response.status not in (200, 206):
                    raise self._status_error(key, response.status, response.reason)
                data = await _read_at_most(response, limit + 1)
                etag = response.headers.get("ETag", "")
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._transport_error(exc, key) from None
        if byte_range is not None:
            if status == 200 and (byte_range[0] != 0 or len(data) > limit):
                raise RemoteError(f"{self.base_url}{key}: the server ignores Range "
                                  "requests; serve the backup with one that honours them")
            if len(data) != limit:
                raise RemoteError(f"{self.base_url}{key}: wrong length for bytes "
                                  f"{byte_range[0]}-{byte_range[1] - 1}")
            return Fetched(data, "")
        if len(data) > limit:
            raise RemoteError(f"{self.base_url}{key}: larger than {MAX_GET_BYTES} bytes")
        return Fetched(data, etag)

    async def head(self, key: str) -> ObjectInfo:
        self.requests["HEAD"] += 1
        try:
            async with self._http().head(self._url(key), headers={"Accept-Encoding": "identity"},
                                         proxy=self._proxy) as response:
                if response.status != 200:
                    raise self._status_error(key, response.status, response.reason)
                return ObjectInfo(key, int(response.headers.get("Content-Length", "0")),
                                  response.headers.get("ETag", ""))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._transport_error(exc, key) from None

    async def stream(self, key: str, version_id: str = "") -> AsyncIterator[bytes]:
        self.requests["GET"] += 1
        try:
            async with self._http().get(self._url(key), headers={"Accept-Encoding": "identity"},
                                        proxy=self._proxy) as response:
                if response.status != 200:
                    raise self._status_error(key, response.status, response.reason)
                async for chunk in response.content.iter_chunked(CHUNK):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._transport_error(exc, key, "download failed: ") from None

    # ---- the write side: not available ------------------------------------------------

    def _read_only(self) -> NoReturn:
        raise UsageError(f"{self.base_url}: HTTP(S) backups can only be restored from")

    async def put(self, key: str, data: bytes | bytearray, *, md5: bytes,
                  if_match: str | None = None, if_none_match_any: bool = False) -> Stored:
        self._read_only()

    async def create_multipart(self, key: str) -> str:
        self._read_only()

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes,
                          md5: bytes) -> str:
        self._read_only()

    async def complete_multipart(self, key: str, upload_id: str,
                                 parts: list[tuple[int, str]]) -> Stored:
        self._read_only()

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        self._read_only()

    async def copy(self, source_key: str, key: str, *, if_match: str | None = None,
                   source_version: str = "") -> Stored:
        self._read_only()

    async def delete_many(self, keys: list[str]) -> list[tuple[str, str]]:
        self._read_only()

    async def list_versions(self, prefix: str = "") -> AsyncIterator[Version]:
        raise UsageError(f"{self.base_url}: a plain HTTP(S) server can't list versions")
        yield  # pragma: no cover - makes this an async generator

    async def delete_versions(self, versions: list[tuple[str, str]]
                              ) -> list[tuple[str, str, str]]:
        self._read_only()

    async def list_uploads(self) -> AsyncIterator[Upload]:
        raise UsageError(f"{self.base_url}: a plain HTTP(S) server can't list uploads")
        yield  # pragma: no cover - makes this an async generator

    async def remove_temp_files(self, before_ns: int, *, dry_run: bool = False
                                ) -> list[tuple[str, int]]:
        self._read_only()

    async def versioning(self) -> str | None:
        return None  # read-only: whatever the server keeps is not ours to know

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        raise UsageError(f"{self.base_url}: a plain HTTP(S) server can't list objects")
        yield  # pragma: no cover - makes this an async generator


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, but never more than `limit` bytes of it in memory."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
