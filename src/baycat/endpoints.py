"""What SRC and DST name: a local directory, a local backup directory, or S3."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from .errors import UsageError


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
    if text.startswith("file://"):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"{text}: only local file:// URLs are supported")
        return LocalEndpoint(Path(os.fsdecode(unquote(parsed.path).encode(
            "utf-8", "surrogateescape"))))
    if text.startswith(("http://", "https://")):
        return HttpEndpoint(text if text.endswith("/") else text + "/")
    if "://" in text.split("/", 1)[0]:
        raise UsageError(f"{text}: unsupported URL scheme (use a path, file://, s3://)")
    return LocalEndpoint(Path(text))
