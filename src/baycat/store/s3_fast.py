"""A lean HTTP path for S3's hot object calls: GetObject (whole, ranged, streamed),
PutObject, UploadPart and CopyObject, signed with SigV4 here and sent with one aiohttp
session.

Why: for small objects a request's cost is client CPU, and aiobotocore spends most of it
on machinery these calls don't need (request serialization, the event system, response
parsing into dicts). Everything else (credential resolution, multipart control, list,
delete) stays on botocore; this module takes fixed keys or borrows botocore's
credentials object, so env vars, ~/.aws files, profiles, SSO and IMDS keep working,
refreshes included.

Addressing: with a custom endpoint URL, path style `{endpoint}/{bucket}/{key}` (what the
botocore client is configured for too). On AWS (no endpoint URL) virtual-hosted style
`https://{bucket}.s3.{region}.amazonaws.com/{key}` when the bucket name is a valid DNS
label without dots (dots would break the TLS wildcard certificate), else path style on
botocore's regional endpoint. A bucket in another region than the one configured answers
with a redirect: this module raises `WrongRegion` and the caller falls back to botocore,
which follows it.

TLS and proxy: `ssl` and `proxy` are what botocore uses for the same endpoint (the
store takes them from its client: CA bundle, verification, HTTP(S)_PROXY/NO_PROXY), so
both paths of a run reach the server the same way. A certificate that fails
verification is not retried.

Payload: over http:// the body's SHA-256 is signed; over https:// it is sent as
`UNSIGNED-PAYLOAD` (TLS protects it) and every PUT carries Content-MD5, so the server
still rejects a corrupted body.

Retries follow botocore's "standard" mode: up to `attempts` attempts on connection
errors, timeouts, resets, HTTP 429/500/502/503/504 and the S3 codes SlowDown,
RequestTimeout, InternalError and throttling codes; exponential backoff with full
jitter (base 0.1 s, cap 20 s). A whole-object GET reads its body inside the retry loop,
so a body cut mid-way is retried too. Every attempt is counted in `requests` by type.

Errors leave as `S3HttpError` (status, S3 error code, message; never a credential),
`TimedOut` (what was asked, of whom, for how long; each earlier timed-out attempt is a
warning) or as the transport's own exception once retries are spent; the store maps
them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import re
import time
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from ssl import SSLContext
from typing import Protocol
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from yarl import URL

from baycat.store.base import no_answer

log = logging.getLogger(__name__)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
CHUNK = 1 << 20
# Bodies at least this large are hashed in a thread (http:// only), off the event loop.
_THREAD_HASH_BYTES = 1 << 20
# An error body larger than this is not parsed (S3 error documents are < 1 KiB).
_MAX_ERROR_BODY = 64 << 10

BACKOFF_BASE = 0.1
BACKOFF_CAP = 20.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_CODES = frozenset({
    "SlowDown", "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
    "InternalError", "Throttling", "ThrottlingException", "ThrottledException",
    "RequestThrottled", "RequestThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "BandwidthLimitExceeded"})
# Redirect codes: the bucket lives in another region (or needs another endpoint).
_REDIRECT_CODES = frozenset({"PermanentRedirect", "TemporaryRedirect",
                             "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"})
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
# S3Options.write_args names -> request headers.
WRITE_HEADERS = {"StorageClass": "x-amz-storage-class",
                 "ServerSideEncryption": "x-amz-server-side-encryption",
                 "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
                 "ObjectLockMode": "x-amz-object-lock-mode",
                 "ObjectLockRetainUntilDate": "x-amz-object-lock-retain-until-date"}
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_SPACES = re.compile(r"\s+")


class FrozenCredentials(Protocol):
    @property
    def access_key(self) -> str: ...
    @property
    def secret_key(self) -> str: ...
    @property
    def token(self) -> str | None: ...


class CredentialSource(Protocol):
    """botocore's (aiobotocore's) credentials object: static or refreshable."""

    def get_frozen_credentials(self) -> Awaitable[FrozenCredentials]: ...


class S3HttpError(Exception):
    """The server answered with an error (after retries, if it was retryable)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code} {message}".strip())
        self.status = status
        self.code = code
        self.message = message


class WrongRegion(S3HttpError):
    """The bucket is not where this path signs for: let botocore follow the redirect."""


class NoCredentials(Exception):
    """botocore found no credentials."""


class TimedOut(TimeoutError):
    """The last attempt of a request timed out: what was asked (`request`, e.g.
    "GET prefix/.baycat/root"), of which server, and the timeout that expired."""

    def __init__(self, server: str, request: str, seconds: float, connecting: bool) -> None:
        super().__init__(str(no_answer(server, seconds, request, connecting)))


def encode_key(key: str) -> str:
    """A key as an S3 canonical URI path: each segment percent-encoded, `/` kept."""
    return "/".join([quote(seg, safe="-_.~") for seg in key.split("/")])


def canonical_query(params: Mapping[str, str]) -> str:
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


class SigV4Signer:
    """AWS Signature Version 4 for one region and service; the derived signing key is
    cached per (secret, date)."""

    def __init__(self, region: str, service: str = "s3") -> None:
        self.region = region
        self.service = service
        self._key_for: tuple[str, str] = ("", "")
        self._key = b""

    def signing_key(self, secret: str, datestamp: str) -> bytes:
        if self._key_for != (secret, datestamp):
            k = hmac.digest(("AWS4" + secret).encode(), datestamp.encode(), "sha256")
            for part in (self.region, self.service, "aws4_request"):
                k = hmac.digest(k, part.encode(), "sha256")
            self._key_for, self._key = (secret, datestamp), k
        return self._key

    def sign(self, method: str, host: str, path: str, query: str, headers: dict[str, str],
             payload_hash: str, creds: FrozenCredentials, amz_date: str) -> dict[str, str]:
        """Add the SigV4 headers to `headers` (lower-case names; every one is signed) and
        return it. `path` and `query` are already encoded, exactly as sent."""
        headers["host"] = host
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = payload_hash
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        names = sorted(headers)
        signed = ";".join(names)
        canonical_headers = "".join(
            [f"{n}:{_SPACES.sub(' ', headers[n].strip())}\n" for n in names])
        canonical = (f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n"
                     f"{payload_hash}")
        datestamp = amz_date[:8]
        scope = f"{datestamp}/{self.region}/{self.service}/aws4_request"
        to_sign = (f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n"
                   f"{hashlib.sha256(canonical.encode()).hexdigest()}")
        signature = hmac.new(self.signing_key(creds.secret_key, datestamp), to_sign.encode(),
                             "sha256").hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        return headers


def parse_error(status: int, body: bytes) -> tuple[str, str]:
    """(code, message) of an S3 error response; the status as code when there is no
    XML body (HEAD, 304, some proxies)."""
    if body and len(body) <= _MAX_ERROR_BODY:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return str(status), ""
        return (root.findtext("Code") or str(status)), (root.findtext("Message") or "")
    return str(status), ""


def backoff(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Delay before retry number `attempt` (1-based): full jitter, capped."""
    return rand() * min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class FastS3:
    """GET/PUT/UploadPart/CopyObject of one bucket over one aiohttp session.

    `credentials` is botocore's credentials object (None: none found, requests raise
    NoCredentials). Holds at most `max_connections` connections; the whole body of a
    GET or PUT is in memory (the caller bounds how many run at once)."""

    def __init__(self, *, endpoint_url: str, bucket: str, region: str, path_style: bool,
                 credentials: CredentialSource | None, requests: Counter[str],
                 max_connections: int = 64, attempts: int = 5,
                 connect_timeout: float = 10, read_timeout: float = 60,
                 ssl: SSLContext | bool | None = None, proxy: str | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        parts = urlsplit(endpoint_url)
        self._bucket = bucket
        self._https = parts.scheme == "https"
        if not path_style and _DNS_BUCKET.match(bucket) is None:
            path_style = True
        netloc = parts.netloc
        if not path_style:
            if netloc == "s3.amazonaws.com":  # botocore's legacy global name for us-east-1
                netloc = f"s3.{region}.amazonaws.com"
            netloc = f"{bucket}.{netloc}"
        self.host = netloc
        self._origin = f"{parts.scheme}://{netloc}"
        base = parts.path.rstrip("/")
        self._path_prefix = f"{base}/{encode_key(bucket)}/" if path_style else f"{base}/"
        self.signer = SigV4Signer(region)
        self.requests = requests
        self._source = credentials
        # Static credentials never change: freeze them once, not per request.
        self._static: FrozenCredentials | None = None
        self._static_checked = False
        self._attempts = max(1, attempts)
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._sleep = sleep
        # None: aiohttp's default verification (the system's trust store).
        self._ssl: SSLContext | bool = True if ssl is None else ssl
        self._proxy = proxy
        self._session: aiohttp.ClientSession | None = None
        self._date_second = -1
        self._amz_date = ""

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections,
                                               limit_per_host=0, ssl=self._ssl),
                timeout=self._timeout, auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                # Nothing unsigned or surprising on the wire: no Content-Type is stored
                # with the object (like botocore), no compression is negotiated.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding",
                                   "Content-Type"))
            # aiohttp silently re-sends a request once when a reused connection drops;
            # retries are ours alone (counted, bounded, with backoff). aiohttp's own
            # test client switches it off the same way.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- the operations ---------------------------------------------------------------

    async def get_object(self, key: str, *, if_none_match: str | None = None,
                         byte_range: tuple[int, int] | None = None,
                         version_id: str = "") -> Reply:
        """Whole body (or bytes [start, end)); status 304 with no body when
        `if_none_match` still matches."""
        headers: dict[str, str] = {}
        if if_none_match:
            headers["if-none-match"] = if_none_match
        if byte_range is not None:
            headers["range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        query = {"versionId": version_id} if version_id else {}
        reply, _ = await self._request("GET", key, query, headers, b"", read=True)
        return reply

    async def head_object(self, key: str) -> Reply:
        reply, _ = await self._request("HEAD", key, {}, {}, b"", read=True)
        return reply

    async def stream_object(self, key: str, version_id: str = "") -> AsyncGenerator[bytes, None]:
        """The body in chunks of up to 1 MiB. Errors before the first byte are retried;
        a body cut later raises the transport's error."""
        query = {"versionId": version_id} if version_id else {}
        _, response = await self._request("GET", key, query, {}, b"", read=False)
        assert response is not None
        try:
            async for chunk in response.content.iter_chunked(CHUNK):
                yield chunk
        except BaseException:
            response.close()
            raise
        response.release()

    async def put_object(self, key: str, body: bytes | bytearray, *, content_md5: str,
                         if_match: str | None = None, if_none_match_any: bool = False,
                         write_args: Mapping[str, str] | None = None) -> Reply:
        headers = {"content-md5": content_md5}
        if if_match is not None:
            headers["if-match"] = if_match
        if if_none_match_any:
            headers["if-none-match"] = "*"
        for name, value in (write_args or {}).items():
            headers[WRITE_HEADERS[name]] = value
        reply, _ = await self._request("PUT", key, {}, headers, body, read=True)
        return reply

    async def copy_object(self, key: str, source_key: str, *, if_match: str | None = None,
                          source_version: str = "",
                          write_args: Mapping[str, str] | None = None) -> tuple[str, str]:
        """Server-side copy within the bucket; (ETag, version id) of the new object.
        Counted as COPY, as the counting proxy and botocore's path count it. With
        `if_match`, S3 refuses (412) unless the source's ETag is that one.

        S3 may answer a copy 200 OK and then report an error in the body (it had to
        send the headers before the copy finished): such a reply is an error too, and is
        tried again like any other when its code is retryable."""
        source = f"/{encode_key(self._bucket)}/{encode_key(source_key)}"
        if source_version:
            source += f"?versionId={quote(source_version, safe='')}"
        headers = {"x-amz-copy-source": source}
        if if_match is not None:
            headers["x-amz-copy-source-if-match"] = if_match
        for name, value in (write_args or {}).items():
            headers[WRITE_HEADERS[name]] = value
        for attempt in range(1, self._attempts + 1):
            reply, _ = await self._request("PUT", key, {}, headers, b"", read=True,
                                           kind="COPY")
            version = reply.headers.get("x-amz-version-id", "")
            if not reply.body.strip():
                return reply.headers.get("ETag", ""), version
            try:
                root = ET.fromstring(reply.body[:_MAX_ERROR_BODY])
            except ET.ParseError:
                raise S3HttpError(reply.status, "MalformedCopyReply",
                                  "unreadable CopyObject reply") from None
            if not root.tag.endswith("Error"):
                etag = next((el.text or "" for el in root.iter() if el.tag.endswith("ETag")),
                            "")
                return etag, version
            code, message = root.findtext("Code") or "", root.findtext("Message") or ""
            if attempt >= self._attempts or code not in RETRY_CODES:
                raise S3HttpError(reply.status, code, message)
            await self._sleep(backoff(attempt))
        raise AssertionError("unreachable")

    async def upload_part(self, key: str, upload_id: str, number: int, body: bytes, *,
                          content_md5: str) -> Reply:
        query = {"partNumber": str(number), "uploadId": upload_id}
        reply, _ = await self._request("PUT", key, query, {"content-md5": content_md5},
                                       body, read=True)
        return reply

    # ---- one request, with retries ----------------------------------------------------

    async def _credentials(self) -> FrozenCredentials:
        if self._static is not None:
            return self._static
        if self._source is None:
            raise NoCredentials
        frozen = await self._source.get_frozen_credentials()
        if not self._static_checked:
            self._static_checked = True
            # Plain Credentials (not Refreshable) are fixed for the life of the client.
            if not hasattr(self._source, "refresh_needed"):
                self._static = frozen
        return frozen

    def _date(self) -> str:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        return self._amz_date

    async def _payload_hash(self, body: bytes | bytearray) -> str:
        if self._https:
            return UNSIGNED_PAYLOAD
        if not body:
            return EMPTY_SHA256
        if len(body) >= _THREAD_HASH_BYTES:
            return await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
        return hashlib.sha256(body).hexdigest()

    def _timed_out(self, exc: BaseException, request: str, key: str) -> TimedOut | None:
        """A TimedOut for `exc` when it is a timeout (None for any other error)."""
        if not isinstance(exc, asyncio.TimeoutError):
            return None
        connecting = isinstance(exc, aiohttp.ConnectionTimeoutError)
        return TimedOut(self._origin, f"{request} {key}",
                        self._connect_timeout if connecting else self._read_timeout,
                        connecting)

    async def _request(self, method: str, key: str, query: Mapping[str, str],
                       headers: dict[str, str], body: bytes | bytearray, *, read: bool,
                       kind: str = "") -> tuple[Reply, aiohttp.ClientResponse | None]:
        """Send with retries. With `read`, the body is read (inside the retry loop) and
        the connection released; otherwise a 2xx response is returned open."""
        session = self._session
        if session is None:
            raise RuntimeError("FastS3.open() was not called")
        path = self._path_prefix + encode_key(key)
        qs = canonical_query(query) if query else ""
        url = URL(f"{self._origin}{path}?{qs}" if qs else f"{self._origin}{path}",
                  encoded=True)
        payload_hash = await self._payload_hash(body)
        for attempt in range(1, self._attempts + 1):
            creds = await self._credentials()
            signed = self.signer.sign(method, self.host, path, qs, dict(headers),
                                      payload_hash, creds, self._date())
            self.requests[kind or method] += 1
            try:
                response = await session.request(
                    method, url, headers=signed, data=_payload(body) if method == "PUT" else None,
                    allow_redirects=False, proxy=self._proxy)
                status = response.status
                if status < 300 or status == 304:
                    if not read:
                        return Reply(status, response.headers, b""), response
                    try:
                        data = await response.read()
                    finally:
                        response.release()
                    return Reply(status, response.headers, data), None
                try:
                    data = await response.read()
                finally:
                    response.release()
            except _TRANSPORT_ERRORS as exc:
                if isinstance(exc, aiohttp.ClientConnectorCertificateError):
                    raise  # the next attempt would meet the same certificate
                timed_out = self._timed_out(exc, kind or method, key)
                if attempt >= self._attempts:
                    if timed_out is not None:
                        raise timed_out from exc
                    raise
                if timed_out is not None:  # a silent server: say so while waiting again
                    log.warning("%s; retrying (attempt %d of %d)", timed_out, attempt + 1,
                                self._attempts)
                else:
                    log.debug("%s %s: %r; retrying (attempt %d)", method, key, exc, attempt)
                await self._sleep(backoff(attempt))
                continue
            code, message = parse_error(status, data)
            if (300 <= status < 400 or code in _REDIRECT_CODES
                    or response.headers.get("x-amz-bucket-region",
                                            self.signer.region) != self.signer.region):
                raise WrongRegion(status, code, message)
            if attempt >= self._attempts or not (status in RETRY_STATUSES
                                                 or code in RETRY_CODES):
                raise S3HttpError(status, code, message)
            log.debug("%s %s: %d %s; retrying (attempt %d)", method, key, status, code,
                      attempt)
            await self._sleep(backoff(attempt))
        raise AssertionError("unreachable")



# A large body is handed to the socket this much at a time (see _SlicedPayload).
_SEND_SLICE = 256 << 10


class _SlicedPayload(aiohttp.BytesPayload):
    """A large body written in slices, waiting for the socket between them.

    aiohttp writes a BytesPayload in one call: it joins the headers and the whole body
    into one new buffer, and the transport copies what the socket did not take at once
    into its own buffer, so a 48 MB manifest pack briefly cost three times its size.
    Slices of a memoryview are not copies; each write drains before the next."""

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter,
                                content_length: int | None) -> None:
        view = memoryview(self._value)
        end = len(view) if content_length is None else min(content_length, len(view))
        for start in range(0, end, _SEND_SLICE):
            await writer.write(view[start:min(start + _SEND_SLICE, end)])
            await writer.drain()


def _payload(body: bytes | bytearray) -> bytes | bytearray | aiohttp.BytesPayload:
    """The body for aiohttp: small ones as they are (no thread hop, no copy), large
    ones in slices. aiohttp warns about bodies over 1 MiB; building the payload here,
    synchronously, silences just that warning."""
    if len(body) <= _THREAD_HASH_BYTES:
        return body
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sending a large body", ResourceWarning)
        return _SlicedPayload(body)


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Fixed credentials (tests, the signer's test vector)."""

    access_key: str
    secret_key: str
    token: str | None = None
