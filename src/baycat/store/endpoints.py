"""What SRC and DST name (a local directory, a local backup directory, S3, a web
server), checked, and the store behind each."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse, urlsplit

from baycat.errors import UsageError
from baycat.store.s3_options import S3Options

if TYPE_CHECKING:
    from baycat.store.base import ObjectStore


@dataclass(frozen=True, slots=True)
class LocalEndpoint:
    path: Path


@dataclass(frozen=True, slots=True)
class S3Endpoint:
    bucket: str
    prefix: str  # "" or ending with "/"


@dataclass(frozen=True, slots=True)
class HttpEndpoint:
    url: str  # ends with "/"


Endpoint = LocalEndpoint | S3Endpoint | HttpEndpoint


def parse_endpoint(text: str) -> Endpoint:
    if text.startswith("s3://"):
        rest = text[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise UsageError(f"{text}: no bucket name (expected s3://bucket/prefix/)")
        prefix = prefix.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise UsageError(f"{text}: the prefix has empty, '.' or '..' parts")
        return S3Endpoint(bucket, prefix + "/" if prefix else "")
    if text.startswith(("file://", "file:/")):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"{text}: only local file:// URLs are supported")
        return LocalEndpoint(Path(os.fsdecode(unquote(parsed.path).encode(
            "utf-8", "surrogateescape"))))
    if text.startswith(("http://", "https://")):
        check_http_url(text, "backup URL")
        return HttpEndpoint(text if text.endswith("/") else text + "/")
    if _SCHEME.match(text):
        # A typo of a URL (`s3:/bucket`, `s3:bucket`, `sftp://...`) would otherwise back up
        # into a local directory named after it and exit 0 (rsync, too, reads `x:` as
        # "not a local path").
        raise UsageError(f"{text}: not a valid destination URL (expected s3://bucket/prefix/, "
                         "file:///path or https://host/path/; a local path with a colon in "
                         f"its first part can be written ./{text})")
    return LocalEndpoint(Path(text))


# `scheme:` as RFC 3986 spells a scheme, at the very start.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


_USERINFO = re.compile(r"(://)[^/?#]*@")


def _shown(url: str) -> str:
    """`url` as messages may show it: never a user name or password it carries."""
    return _USERINFO.sub(r"\1***@", url)


def check_http_url(url: str, what: str = "endpoint URL") -> str:
    """`url` when it can name a server: http(s)://host[:port][/path], no user name or
    password (signing carries the credentials; one in the URL would be echoed in every
    message), no query or fragment. Otherwise a UsageError that says what is wrong and
    never repeats credentials. The one check for --endpoint-url, AWS_ENDPOINT_URL, the
    API's S3Options.endpoint_url and http(s):// backups.

    >>> check_http_url("http://localhost:8333")
    'http://localhost:8333'
    """
    shown = _shown(url)

    def bad(problem: str) -> UsageError:
        return UsageError(f"{what} {shown!r}: {problem}")

    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise bad("contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise bad(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise bad("expected http://host[:port] or https://host[:port]")
    if "@" in parts.netloc:
        raise bad("a user name or password in the URL is not supported (S3 keys come "
                  "from the environment, ~/.aws or --profile)")
    if not parts.hostname:
        raise bad("no host name")
    if port == 0:
        raise bad("port 0")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise bad("a query or fragment is not supported")
    return url


def store_url(endpoint: Endpoint) -> str | None:
    """The `url` of the store `open_store` makes for `endpoint`, without making it (an
    S3 store loads botocore); None for HTTP(S), which is never written to."""
    if isinstance(endpoint, S3Endpoint):
        return f"s3://{endpoint.bucket}/{endpoint.prefix}"
    if isinstance(endpoint, LocalEndpoint):
        return f"file://{endpoint.path.absolute()}"
    return None


def open_store(endpoint: Endpoint, s3: S3Options, create: bool) -> ObjectStore:
    """The store behind a parsed endpoint (S3 needs `await store.open()`)."""
    if isinstance(endpoint, S3Endpoint):
        from baycat.store.s3 import S3Store  # botocore loads only when S3 is used

        if s3.endpoint_url is not None:
            check_http_url(s3.endpoint_url)
        return S3Store(endpoint.bucket, endpoint.prefix, s3)
    if isinstance(endpoint, LocalEndpoint):
        from baycat.store.local import LocalStore  # asyncio: not needed to parse a URL

        root = endpoint.path.absolute()
        if create and not root.exists() and not root.parent.is_dir():
            # As cp and rsync: the backup's directory may be new, its parent may not (a
            # typo would otherwise make directories anywhere, /nonexistent at the root).
            raise UsageError(f"{endpoint.path}: its parent directory {root.parent} does not "
                             "exist (create it first)")
        return LocalStore(root, create=create)
    if create:
        raise UsageError(f"{endpoint.url}: HTTP(S) backups can only be restored from")
    from baycat.store.http import HttpStore  # aiohttp loads only when HTTP is used

    return HttpStore(endpoint.url, max_connections=s3.max_connections,
                     connect_timeout=s3.connect_timeout, read_timeout=s3.read_timeout,
                     ca_bundle=s3.ca_bundle, verify_ssl=s3.verify_ssl)
