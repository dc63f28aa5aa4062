"""The contract every object store meets, and the facts it returns.

A store deals in keys relative to the backup's prefix (e.g. "a/b.txt",
".baycat/root"); it knows nothing of manifests or trees. Every method that talks to the
store counts one request per attempt in `requests`, by type, so the `--json` summary
and the benchmarks can report what a run cost.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from baycat.errors import CredentialsError, RemoteError


class NotFound(RemoteError):
    """The key does not exist."""


class PreconditionFailed(RemoteError):
    """A conditional write lost: someone else changed the object first."""


class Corrupt(RemoteError):
    """An object's bytes are not what was written (an encrypted object that fails
    authentication, or is truncated): never handed on as good data."""


class EncryptedBackupError(CredentialsError):
    """The backup is encrypted and no password or key was given, or the reverse."""


class NoAnswer(RemoteError):
    """The store did not answer a request in time, on any attempt."""


def no_answer(server: str, seconds: float, request: str, connecting: bool = False
              ) -> NoAnswer:
    """The error for a request that timed out: who, how long, waiting for what.

    >>> str(no_answer("http://127.0.0.1:9000", 30, "GET .baycat/root"))
    'no answer from http://127.0.0.1:9000 within 30 s (GET .baycat/root)'
    """
    what = "could not connect to" if connecting else "no answer from"
    return NoAnswer(f"{what} {server} within {seconds:g} s ({request})")


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    etag: str


@dataclass(frozen=True, slots=True)
class Stored:
    etag: str
    version_id: str = ""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    modified_ns: int = 0  # when it was written, as a LIST tells (0: not known)


@dataclass(frozen=True, slots=True)
class Version:
    """One version of an object on a versioned bucket (ListObjectVersions)."""

    key: str
    version_id: str
    size: int
    latest: bool
    modified_ns: int
    delete_marker: bool = False
    etag: str = ""


@dataclass(frozen=True, slots=True)
class Upload:
    """An incomplete multipart upload: what aborting it takes, and when it began."""

    key: str
    upload_id: str
    initiated_ns: int


class NotModified:
    """Returned by a conditional GET whose ETag still matches."""


NOT_MODIFIED = NotModified()


class ObjectStore(Protocol):
    requests: Counter[str]
    # Whether If-Match / If-None-Match writes are honoured: True, False, or None when
    # only a probe can tell (S3-compatible servers differ; rclone's `serve s3` ignores
    # them). See remote_manifest.RemoteManifest.
    conditional_writes: bool | None
    # True when a single-part object's ETag is the MD5 of its bytes (S3 without SSE-KMS),
    # so what a write answers can be checked against what was sent.
    content_etags: bool
    # True when put and upload_part use the `md5` they are given (Content-MD5, a local
    # store's check). False when the store sends something else, whose MD5 it computes
    # itself (encrypted.py seals the bytes first): a caller may then pass b"" and save
    # hashing bytes no one checks (~0.3 s of CPU per 200 MiB).
    uses_md5: bool

    @property
    def url(self) -> str: ...

    @property
    def key_prefix(self) -> str:
        """What the store puts before every key (counts toward S3's key length limit)."""
        ...

    async def get(self, key: str, *, if_none_match: str | None = None,
                  byte_range: tuple[int, int] | None = None,
                  version_id: str = "") -> Fetched | NotModified:
        """Whole object, or bytes [start, end) of it. Raises NotFound."""
        ...

    async def head(self, key: str) -> ObjectInfo:
        """Size and ETag of the current object at `key`. Raises NotFound."""
        ...

    def stream(self, key: str, version_id: str = "") -> AsyncIterator[bytes]:
        """The object's bytes in chunks (for large downloads). Raises NotFound."""
        ...

    async def put(self, key: str, data: bytes | bytearray, *, md5: bytes,
                  if_match: str | None = None, if_none_match_any: bool = False) -> Stored:
        """Store `data`; the store rejects it unless its MD5 is `md5`.
        Raises PreconditionFailed when a condition does not hold."""
        ...

    async def create_multipart(self, key: str) -> str: ...

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes,
                          md5: bytes) -> str: ...

    async def complete_multipart(self, key: str, upload_id: str,
                                 parts: list[tuple[int, str]]) -> Stored: ...

    async def abort_multipart(self, key: str, upload_id: str) -> None: ...

    async def copy(self, source_key: str, key: str, *, if_match: str | None = None,
                   source_version: str = "") -> Stored:
        """Server-side copy of `source_key` (that version of it, if given) to `key`.
        With `if_match`, refused with PreconditionFailed unless the source's ETag is
        that one (the source may have been overwritten since it was recorded).
        Raises NotFound when the source is gone."""
        ...

    async def delete_many(self, keys: list[str]) -> list[tuple[str, str]]:
        """Delete keys; returns (key, error message) for those that failed."""
        ...

    def list_versions(self, prefix: str = "") -> AsyncIterator[Version]:
        """Every version and delete marker under the prefix; nothing from a store that
        keeps no versions."""
        ...

    async def delete_versions(self, versions: list[tuple[str, str]]
                              ) -> list[tuple[str, str, str]]:
        """Delete these (key, VersionId)s for good (batched DeleteObjects); returns
        (key, VersionId, error code or message) for those that failed (e.g. AccessDenied
        for a version under Object Lock retention)."""
        ...

    def list_uploads(self) -> AsyncIterator[Upload]:
        """Incomplete multipart uploads under the prefix (ListMultipartUploads)."""
        ...

    async def remove_temp_files(self, before_ns: int, *, dry_run: bool = False
                                ) -> list[tuple[str, int]]:
        """Remove the store's own temporary files last changed before `before_ns` (a
        local directory's `.baycat-tmp-*` of a killed write); (path, size) of each (with
        `dry_run`, of each that would go). A store without such files returns []."""
        ...

    async def versioning(self) -> str | None:
        """The bucket's versioning status as S3 names it ("Enabled", "Suspended", or ""
        when it was never turned on); None when the store keeps no versions by design (a
        local directory). One request (GetBucketVersioning); may raise RemoteError."""
        ...

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]: ...

    async def check(self) -> None:
        """Fail early and clearly when the store can't be used (bucket, credentials)."""
        ...

    async def open(self) -> None:
        """Set up connections; call once before use."""
        ...

    async def close(self) -> None: ...


def content_md5(md5: bytes) -> str:
    """The Content-MD5 header value of a body with this MD5."""
    return base64.b64encode(md5).decode()
