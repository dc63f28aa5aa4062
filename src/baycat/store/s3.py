"""S3 and S3-compatible stores through aiobotocore.

One client per run, with a connection pool sized to the transfer concurrency. Every PUT
carries Content-MD5, so a body corrupted on the way is rejected by the server; botocore's
own extra CRC32 checksums are switched off (`when_required`) because baycat already hashes
every byte once and a second pass would cost CPU on every request. Retries (throttling,
5xx, resets, timeouts) are botocore's "standard" mode: exponential backoff with jitter.

The hot object calls (GET, streamed GET, PUT, UploadPart, CopyObject, DeleteObjects,
multipart create/complete/abort) go through `s3_fast` unless `S3Options.fast_path` is
off: same requests, a fraction of the client CPU. It signs with the credentials
botocore resolved (or the explicit keys); a bucket in another region makes the store
fall back to botocore (which follows the redirect) for the rest of the run.

Both paths reach the server the same way: the fast path takes the endpoint (a
profile's `endpoint_url` and `services` section included), the addressing style, the
TLS context (CA bundle, client certificate, verification) and the proxy from the
botocore client (`_fast_transport`). What it can't do the same way (an HTTPS proxy,
proxy certificates) leaves every request to botocore. A certificate that fails
verification is never retried, on either path.

botocore is loaded only when needed. With endpoint (http://), region and keys explicit
in the options (the CLI resolves them from the environment as botocore would), no
proxy for the endpoint and no AWS config file that could change how it is reached
(addressing style), the fast path starts alone; the botocore client (~0.2 s to import
and create) is made on the first call only it can make: LIST, versioned deletes. A
no-change sync (one conditional GET) never loads it, nor does a sync --delete or one
that uploads a large file in parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from ssl import SSLContext
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp

from baycat.errors import BucketMissingError, CredentialsError, RemoteError
from baycat.redact import remember_secrets
from baycat.store.base import (
    NOT_MODIFIED,
    Fetched,
    NoAnswer,
    NotFound,
    NotModified,
    ObjectInfo,
    PreconditionFailed,
    Stored,
    Upload,
    Version,
    content_md5,
    no_answer,
)
from baycat.store.s3_fast import (
    MAX_DELETE_KEYS,
    CredentialSource,
    FastS3,
    FrozenCredentials,
    NoCredentials,
    S3HttpError,
    StaticCredentials,
    TimedOut,
    WrongRegion,
)
from baycat.store.s3_options import S3Options
from baycat.store.transport import certificate_error, env_proxy

log = logging.getLogger(__name__)
T = TypeVar("T")

# What a request can fail with, without botocore. Once botocore is loaded its own errors
# join (S3Store._errors): it may be the credential source of the fast path, too.
_BASE_ERRORS: tuple[type[Exception], ...] = (
    S3HttpError, NoCredentials, aiohttp.ClientError, asyncio.TimeoutError, OSError)


class _FixedCredentials:
    """Keys given in the options, as the fast path asks for them."""

    def __init__(self, keys: StaticCredentials) -> None:
        self._keys = keys

    async def get_frozen_credentials(self) -> FrozenCredentials:
        return self._keys


def without_botocore(options: S3Options) -> tuple[str, str, CredentialSource] | None:
    """(endpoint, region, credentials) when the fast path can start without botocore:
    endpoint, region and keys are all explicit, no profile is named, the endpoint is
    plain http:// (no CA bundle to resolve) reached without a proxy, and there is no AWS
    config file (its `s3.addressing_style` would apply). Otherwise (profiles, SSO,
    instance roles, AWS's own endpoints, TLS...) botocore resolves them."""
    if not (options.fast_path and options.endpoint_url and options.region
            and options.access_key_id and options.secret_access_key) or options.profile:
        return None
    if (not options.endpoint_url.startswith("http://") or env_proxy(options.endpoint_url)
            or _aws_config_file()):
        return None
    keys = StaticCredentials(options.access_key_id, options.secret_access_key,
                             options.session_token)
    return options.endpoint_url, options.region, _FixedCredentials(keys)


def _aws_config_file() -> bool:
    """True when botocore would read a non-empty shared config file."""
    path = os.path.expanduser(os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"))
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False


def _path_style(endpoint_url: str, s3_config: dict[str, Any] | None) -> bool:
    """botocore's addressing rule (args.py, `AWS_S3_FORCE_PATH_STYLE`): a custom endpoint
    (--endpoint-url, AWS_ENDPOINT_URL, a profile's endpoint_url) is addressed path style
    unless the config says `addressing_style = virtual`, and always when it is an IP
    address (the endpoint rules: no bucket name in front of an IP); AWS's own endpoints
    virtual-host style unless it says `path`."""
    style = (s3_config or {}).get("addressing_style")
    host = urlsplit(endpoint_url).hostname or ""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return True
    if host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return style == "path"
    return style != "virtual"


async def _fast_transport(client: Any) -> tuple[SSLContext | bool | None, str | None] | None:
    """(ssl, proxy) of the botocore client's HTTP session, for the fast path: the same
    CA bundle (AWS_CA_BUNDLE, a profile's ca_bundle, --ca-bundle), client certificate,
    verification and proxy (HTTP(S)_PROXY, NO_PROXY, Config(proxies=)). None when the
    fast path can't reach the endpoint the same way (an HTTPS proxy, proxy certificates,
    an aiobotocore whose session looks different): then botocore sends everything."""
    endpoint = client.meta.endpoint_url
    try:
        http = client._endpoint.http_session
        proxy = http._proxy_config.proxy_url_for(endpoint) or None
        proxy_settings = http._proxy_config.settings
        build = http._build_ssl_contexts
    except AttributeError:
        return None
    if proxy is not None and (not proxy.startswith("http://") or any(
            value is not None for value in (proxy_settings or {}).values())):
        return None
    if not endpoint.startswith("https://"):
        return None, proxy
    context, _ = await asyncio.to_thread(build, None)
    return context, proxy


def _no_retry_on_certificate(caught_exception: BaseException | None = None,
                             **_: Any) -> None:
    """botocore's needs-retry hook, first in line: a certificate that failed
    verification ends the request (botocore's standard mode would retry it)."""
    if caught_exception is not None and certificate_error(
            getattr(caught_exception, "kwargs", {}).get("error")) is not None:
        raise caught_exception


_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                     "InvalidToken", "ExpiredToken", "InvalidClientTokenId", "403"}


def _quoted(etag: str) -> str:
    """ETags as S3 sends them in headers; some servers leave the quotes off in XML."""
    return etag if not etag or etag.startswith('"') else f'"{etag}"'


def _stamp(when: Any) -> int:
    """ns since the epoch of a datetime botocore parsed (0 when absent)."""
    return int(when.timestamp() * 1e9) if when is not None else 0


def _versioning_status(body: bytes) -> str:
    """The Status of a GetBucketVersioning answer ("" when versioning was never on).

    >>> _versioning_status(b'<VersioningConfiguration xmlns="x"><Status>Enabled</Status>'
    ...                    b'</VersioningConfiguration>')
    'Enabled'
    """
    try:
        root = ET.fromstring(body[:65536])
    except ET.ParseError:
        raise RemoteError("GetBucketVersioning: unreadable answer") from None
    for element in root.iter():
        if element.tag.rpartition("}")[2] == "Status":
            return (element.text or "").strip()
    return ""


def _code(exc: Any) -> str:
    """A botocore ClientError's error code ("" for any other exception)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


async def _remember_credentials(client: Any, errors: tuple[type[Exception], ...]) -> None:
    """Have the logs scrub the keys botocore resolved (a profile, SSO, a role: not only
    the environment's), wherever they turn up. Resolving them can't fail a run here: a
    source that fails now fails the first request, which reports it."""
    credentials = client._get_credentials()
    if credentials is None:
        return
    with contextlib.suppress(*errors):
        frozen = await credentials.get_frozen_credentials()
        remember_secrets((frozen.access_key, frozen.secret_key, frozen.token))


class S3Store:
    conditional_writes: bool | None = None

    def __init__(self, bucket: str, prefix: str, options: S3Options) -> None:
        self.bucket = bucket
        self.prefix = prefix  # "" or ends with "/"
        self.options = options
        # With SSE-KMS, S3's ETags are not the MD5 of the content.
        self.content_etags = options.sse != "aws:kms"
        self.uses_md5 = True
        self.requests: Counter[str] = Counter()
        self._client: Any = None  # the botocore client, made on first use
        self._context: Any = None
        self._client_lock = asyncio.Lock()
        self._errors = _BASE_ERRORS
        self._fast: FastS3 | None = None  # None: botocore for everything
        self._fast_owned: FastS3 | None = None  # closed by close() even once switched off

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def key_prefix(self) -> str:
        return self.prefix

    async def open(self) -> None:
        simple = without_botocore(self.options)
        if simple is not None:
            endpoint, region, credentials = simple
            fast = FastS3(endpoint_url=endpoint, bucket=self.bucket, region=region,
                          path_style=True, credentials=credentials, requests=self.requests,
                          **self._fast_settings())
        else:
            client = await self._botocore()
            if not self.options.fast_path:
                return
            meta = client.meta
            try:
                transport = await _fast_transport(client)
            except self._errors as exc:
                raise self._error(exc) from None
            if transport is None:
                log.info("s3://%s/: the fast path can't use this proxy set-up; botocore "
                         "sends every request", self.bucket)
                return
            fast = FastS3(endpoint_url=meta.endpoint_url, bucket=self.bucket,
                          region=meta.region_name,
                          path_style=_path_style(meta.endpoint_url, meta.config.s3),
                          credentials=client._get_credentials(), requests=self.requests,
                          ssl=transport[0], proxy=transport[1], **self._fast_settings())
        await fast.open()
        self._fast = self._fast_owned = fast

    def _fast_settings(self) -> dict[str, Any]:
        return {"max_connections": self.options.max_connections,
                "attempts": self.options.attempts,
                "connect_timeout": self.options.connect_timeout,
                "read_timeout": self.options.read_timeout}

    async def _botocore(self) -> Any:
        """The botocore client, made (once) on first use."""
        async with self._client_lock:
            if self._client is None:
                self._client = await self._make_client()
        return self._client

    async def _make_client(self) -> Any:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors = (*_BASE_ERRORS, ClientError, BotoCoreError)
        session = get_session()
        if self.options.profile:
            session.set_config_variable("profile", self.options.profile)
        config = AioConfig(
            max_pool_connections=self.options.max_connections,
            retries={"max_attempts": self.options.attempts, "mode": "standard"},
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.read_timeout,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # No addressing style here: botocore's own rule (path style for a custom
            # endpoint, the config file's addressing_style first) is the fast path's.
        )
        # None: botocore's choice (AWS_CA_BUNDLE, the profile's ca_bundle, its default).
        verify = self.options.ca_bundle if self.options.verify_ssl else False
        self._context = session.create_client(
            "s3", endpoint_url=self.options.endpoint_url,
            region_name=self.options.region or None, config=config, verify=verify,
            aws_access_key_id=self.options.access_key_id,
            aws_secret_access_key=self.options.secret_access_key,
            aws_session_token=self.options.session_token)
        try:
            client = await self._context.__aenter__()
        except BotoCoreError as exc:
            self._context = None
            raise RemoteError(f"cannot set up S3 client: {exc}") from None
        client.meta.events.register("before-send.s3", self._count)
        client.meta.events.register_first("needs-retry.s3", _no_retry_on_certificate)
        await _remember_credentials(client, self._errors)
        return client

    def _count(self, request: Any, **_: Any) -> None:
        method = request.method
        url = request.url
        query = url.split("?", 1)[-1].split("&") if "?" in url else []
        # Bucket-level GETs count as LIST, as the counting proxy classifies them.
        if method == "GET" and ("list-type=" in url or "?versions" in url or "&versions" in url
                                or "uploads" in query or "versioning" in query):
            kind = "LIST"
        elif method == "PUT" and "x-amz-copy-source" in request.headers:
            kind = "COPY"
        else:
            kind = method
        self.requests[kind] += 1

    async def close(self) -> None:
        if self._fast_owned is not None:
            await self._fast_owned.close()
            self._fast = self._fast_owned = None
        if self._context is not None:
            await self._context.__aexit__(None, None, None)
            self._context = self._client = None

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _error(self, exc: Exception, key: str = "") -> Exception:
        """The baycat error for what botocore or the fast path raised."""
        where = f"s3://{self.bucket}/{self.prefix}{key}"
        if isinstance(exc, S3HttpError):
            return self._coded(exc.code, exc.message, where)
        if isinstance(exc, TimedOut):
            return NoAnswer(str(exc))
        certificate = certificate_error(exc)
        if certificate is not None:
            return certificate
        if isinstance(exc, NoCredentials):
            return CredentialsError("no AWS credentials found (env, ~/.aws or --profile)")
        botocore = sys.modules.get("botocore.exceptions")  # loaded if it could have raised
        if botocore is not None:
            if isinstance(exc, botocore.ClientError):
                return self._coded(_code(exc),
                                   exc.response.get("Error", {}).get("Message", ""), where)
            if isinstance(exc, botocore.NoCredentialsError):
                return CredentialsError("no AWS credentials found (env, ~/.aws or --profile)")
            if isinstance(exc, (botocore.ReadTimeoutError, botocore.ConnectTimeoutError)):
                connecting = isinstance(exc, botocore.ConnectTimeoutError)
                url = urlsplit(str(exc.kwargs.get("endpoint_url", "")))
                return no_answer(f"{url.scheme}://{url.netloc}",
                                 self.options.connect_timeout if connecting
                                 else self.options.read_timeout,
                                 f"{self.prefix}{key}" if key else f"s3://{self.bucket}/",
                                 connecting)
            if isinstance(exc, botocore.SSLError):
                return certificate_error(exc.kwargs.get("error")) or RemoteError(
                    f"TLS error with the S3 endpoint: {exc}")
            if isinstance(exc, botocore.EndpointConnectionError):
                return RemoteError(
                    f"cannot reach the S3 endpoint ({exc.kwargs.get('endpoint_url')})")
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = exc.os_error.strerror or exc.os_error
            return RemoteError(f"cannot reach the S3 endpoint {exc.host}:{exc.port} ({reason})")
        return RemoteError(f"{where}: {exc}")

    def _coded(self, code: str, message: str, where: str) -> Exception:
        if code in ("NoSuchKey", "404", "NotFound", "NoSuchUpload"):
            return NotFound(f"{where}: not found")
        if code == "NoSuchBucket":
            return BucketMissingError(f"bucket {self.bucket!r} does not exist")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return PreconditionFailed(f"{where}: changed by another writer")
        if code in _CREDENTIAL_CODES:
            return CredentialsError(f"access denied to s3://{self.bucket}/ ({code}); "
                                    "check the credentials")
        return RemoteError(f"{where}: {code} {message}".strip())

    def _fast_off(self, exc: WrongRegion) -> None:
        log.info("s3://%s/: %s; using botocore for the rest of the run", self.bucket,
                 exc.code)
        self._fast = None  # closed in close(): a streamed GET may still use its session

    async def _on_fast(self, key: str, call: Callable[[FastS3], Awaitable[T]]) -> T | None:
        """`call` on the fast path; None when botocore must do it instead (no fast path,
        or the bucket turned out to be in another region)."""
        if self._fast is None:
            return None
        try:
            return await call(self._fast)
        except WrongRegion as exc:
            self._fast_off(exc)
            return None
        except self._errors as exc:
            raise self._error(exc, key) from None

    async def _call(self, method: str, key: str, **kwargs: Any) -> Any:
        try:
            client = await self._botocore()
            return await getattr(client, method)(Bucket=self.bucket, **kwargs)
        except self._errors as exc:
            raise self._error(exc, key) from None

    async def check(self) -> None:
        # Nothing to do: the first request of a run (the manifest root GET) reports a
        # missing bucket, bad credentials or no endpoint, and a HEAD would cost a request.
        return

    async def get(self, key: str, *, if_none_match: str | None = None,
                  byte_range: tuple[int, int] | None = None,
                  version_id: str = "") -> Fetched | NotModified:
        reply = await self._on_fast(key, lambda fast: fast.get_object(
            self._key(key), if_none_match=if_none_match, byte_range=byte_range,
            version_id=version_id))
        if reply is not None:
            if reply.status == 304:
                return NOT_MODIFIED
            return Fetched(reply.body, reply.headers.get("ETag", ""))
        kwargs: dict[str, Any] = {"Key": self._key(key)}
        if if_none_match:
            kwargs["IfNoneMatch"] = if_none_match
        if byte_range is not None:
            kwargs["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        if version_id:
            kwargs["VersionId"] = version_id
        client = await self._botocore()
        try:
            response = await client.get_object(Bucket=self.bucket, **kwargs)
            async with response["Body"] as body:
                data = await body.read()
        except self._errors as exc:
            if _code(exc) in ("304", "NotModified"):
                return NOT_MODIFIED
            raise self._error(exc, key) from None
        return Fetched(data, response.get("ETag", ""))

    async def head(self, key: str) -> ObjectInfo:
        reply = await self._on_fast(key, lambda fast: fast.head_object(self._key(key)))
        if reply is not None:
            return ObjectInfo(key, int(reply.headers.get("Content-Length", "0")),
                              _quoted(reply.headers.get("ETag", "")))
        response = await self._call("head_object", key, Key=self._key(key))
        return ObjectInfo(key, int(response.get("ContentLength", 0)),
                          _quoted(response.get("ETag", "")))

    async def stream(self, key: str, version_id: str = "") -> AsyncIterator[bytes]:
        if self._fast is not None:
            chunks = self._fast.stream_object(self._key(key), version_id)
            try:
                first = await anext(chunks, None)
            except WrongRegion as exc:
                self._fast_off(exc)
            except self._errors as exc:
                raise self._error(exc, key) from None
            else:
                try:
                    if first is not None:
                        yield first
                        async for chunk in chunks:
                            yield chunk
                except self._errors as exc:
                    raise RemoteError(f"{self.url}{key}: download failed: {exc}") from None
                finally:
                    await chunks.aclose()
                return
        kwargs: dict[str, Any] = {"Key": self._key(key)}
        if version_id:
            kwargs["VersionId"] = version_id
        response = await self._call("get_object", key, **kwargs)
        try:
            async with response["Body"] as body:
                async for chunk in body.iter_chunks(1 << 20):
                    yield chunk
        except self._errors as exc:
            raise RemoteError(f"{self.url}{key}: download failed: {exc}") from None

    async def put(self, key: str, data: bytes | bytearray, *, md5: bytes,
                  if_match: str | None = None, if_none_match_any: bool = False) -> Stored:
        reply = await self._on_fast(key, lambda fast: fast.put_object(
            self._key(key), data, content_md5=content_md5(md5), if_match=if_match,
            if_none_match_any=if_none_match_any, write_args=self.options.write_args(key)))
        if reply is not None:
            return Stored(_quoted(reply.headers.get("ETag", "")),
                          reply.headers.get("x-amz-version-id", ""))
        kwargs: dict[str, Any] = {"Key": self._key(key), "Body": data,
                                  "ContentMD5": content_md5(md5),
                                  **self.options.write_args(key)}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        if if_none_match_any:
            kwargs["IfNoneMatch"] = "*"
        response = await self._call("put_object", key, **kwargs)
        return Stored(response.get("ETag", ""), response.get("VersionId", "") or "")

    async def create_multipart(self, key: str) -> str:
        # Multipart control is on the fast path when it is up: a sync of one large file
        # must not load botocore for it (~0.3 s CPU to import and set up).
        upload_id = await self._on_fast(key, lambda fast: fast.create_multipart_upload(
            self._key(key), write_args=self.options.write_args(key)))
        if upload_id is not None:
            return upload_id
        response = await self._call("create_multipart_upload", key, Key=self._key(key),
                                    **self.options.write_args(key))
        return str(response["UploadId"])

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes,
                          md5: bytes) -> str:
        reply = await self._on_fast(key, lambda fast: fast.upload_part(
            self._key(key), upload_id, number, data, content_md5=content_md5(md5)))
        if reply is not None:
            return _quoted(reply.headers.get("ETag", ""))
        response = await self._call("upload_part", key, Key=self._key(key), UploadId=upload_id,
                                    PartNumber=number, Body=data, ContentMD5=content_md5(md5))
        return str(response["ETag"])

    async def complete_multipart(self, key: str, upload_id: str,
                                 parts: list[tuple[int, str]]) -> Stored:
        done = await self._on_fast(key, lambda fast: fast.complete_multipart_upload(
            self._key(key), upload_id, parts))
        if done is not None:
            etag, version = done
            return Stored(_quoted(etag), version)
        response = await self._call(
            "complete_multipart_upload", key, Key=self._key(key), UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})
        return Stored(response.get("ETag", ""), response.get("VersionId", "") or "")

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        if await self._on_fast(key, lambda fast: fast.abort_multipart_upload(
                self._key(key), upload_id)) is not None:
            return
        await self._call("abort_multipart_upload", key, Key=self._key(key), UploadId=upload_id)

    async def copy(self, source_key: str, key: str, *, if_match: str | None = None,
                   source_version: str = "") -> Stored:
        copied = await self._on_fast(source_key, lambda fast: fast.copy_object(
            self._key(key), self._key(source_key), if_match=if_match,
            source_version=source_version, write_args=self.options.write_args(key)))
        if copied is not None:
            etag, version = copied
            return Stored(_quoted(etag), version)
        source: dict[str, str] = {"Bucket": self.bucket, "Key": self._key(source_key)}
        if source_version:
            source["VersionId"] = source_version
        extra: dict[str, str] = {"CopySourceIfMatch": if_match} if if_match else {}
        response = await self._call(
            "copy_object", key, Key=self._key(key), CopySource=source, **extra,
            **self.options.write_args(key))
        result = response.get("CopyObjectResult", {})
        return Stored(_quoted(result.get("ETag", "")), response.get("VersionId", "") or "")

    async def delete_many(self, keys: list[str]) -> list[tuple[str, str]]:
        failed: list[tuple[str, str]] = []
        for start in range(0, len(keys), MAX_DELETE_KEYS):
            failed += await self._delete_batch(
                [self._key(k) for k in keys[start:start + MAX_DELETE_KEYS]])
        return failed

    async def _delete_batch(self, full_keys: list[str]) -> list[tuple[str, str]]:
        """One DeleteObjects; (key, reason) of each key S3 refused, the reason being its
        message, else its code, on both paths. On the fast path when it is up: a sync
        --delete must not load botocore for it (~0.4 s CPU to import and set up)."""
        cut = len(self.prefix)
        fast = await self._on_fast("", lambda fast: fast.delete_objects(full_keys))
        if fast is not None:
            return [(f.key[cut:], f.message if f.message is not None else f.code or "error")
                    for f in fast]
        response = await self._call(
            "delete_objects", "",
            Delete={"Objects": [{"Key": k} for k in full_keys], "Quiet": True})
        return [(error.get("Key", "")[cut:], error.get("Message", error.get("Code", "error")))
                for error in response.get("Errors", [])]

    async def list_versions(self, prefix: str = "") -> AsyncIterator[Version]:
        client = await self._botocore()
        paginator = client.get_paginator("list_object_versions")
        cut = len(self.prefix)
        try:
            async for page in paginator.paginate(Bucket=self.bucket,
                                                 Prefix=self.prefix + prefix):
                for obj in page.get("Versions", []):
                    yield Version(obj["Key"][cut:], str(obj.get("VersionId") or "null"),
                                  int(obj.get("Size", 0)), bool(obj.get("IsLatest")),
                                  _stamp(obj.get("LastModified")),
                                  etag=_quoted(str(obj.get("ETag", ""))))
                for obj in page.get("DeleteMarkers", []):
                    yield Version(obj["Key"][cut:], str(obj.get("VersionId") or "null"), 0,
                                  bool(obj.get("IsLatest")), _stamp(obj.get("LastModified")),
                                  delete_marker=True)
        except self._errors as exc:
            raise self._error(exc, prefix) from None

    async def delete_versions(self, versions: list[tuple[str, str]]
                              ) -> list[tuple[str, str, str]]:
        failed: list[tuple[str, str, str]] = []
        for start in range(0, len(versions), 1000):
            batch = versions[start:start + 1000]
            response = await self._call(
                "delete_objects", "",
                Delete={"Objects": [{"Key": self._key(k), "VersionId": v} for k, v in batch],
                        "Quiet": True})
            for error in response.get("Errors", []):
                failed.append((error.get("Key", "")[len(self.prefix):],
                               str(error.get("VersionId", "")),
                               str(error.get("Code") or error.get("Message") or "error")))
        return failed

    async def list_uploads(self) -> AsyncIterator[Upload]:
        client = await self._botocore()
        paginator = client.get_paginator("list_multipart_uploads")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    yield Upload(upload["Key"][len(self.prefix):], upload["UploadId"],
                                 _stamp(upload.get("Initiated")))
        except self._errors as exc:
            raise self._error(exc) from None

    async def remove_temp_files(self, before_ns: int, *, dry_run: bool = False
                                ) -> list[tuple[str, int]]:
        return []  # a PUT is atomic: S3 leaves no half-written object

    async def versioning(self) -> str | None:
        # On the fast path when it is up: asked by a sync's first commit, which must not
        # load botocore for it (~0.2 s). Counted as LIST, as bucket-level GETs are.
        reply = await self._on_fast("", lambda fast: fast._request(
            "GET", "", {"versioning": ""}, {}, b"", read=True, kind="LIST"))
        if reply is not None:
            return _versioning_status(reply[0].body)
        response = await self._call("get_bucket_versioning", "")
        return str(response.get("Status", "") or "")

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        client = await self._botocore()
        paginator = client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"][len(self.prefix):], obj["Size"], obj["ETag"],
                                     _stamp(obj.get("LastModified")))
        except self._errors as exc:
            raise self._error(exc, prefix) from None
