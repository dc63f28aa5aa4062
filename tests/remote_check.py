"""Independent checks of what a backup holds, read straight from the store."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import xxhash

from baycat.entry import FILE, Entry
from baycat.manifest.keys import object_key
from baycat.manifest.remote import RemoteManifest
from baycat.store.base import NotFound, NotModified
from baycat.store.s3 import S3Store
from baycat.store.s3_options import S3Options
from tests.support.seaweed import SeaweedServer


def manifest_entries(seaweed: SeaweedServer, bucket: str, prefix: str) -> list[Entry]:
    return asyncio.run(_entries(seaweed, bucket, prefix))


def _store(seaweed: SeaweedServer, bucket: str, prefix: str) -> S3Store:
    return S3Store(bucket, prefix, S3Options(
        endpoint_url=seaweed.endpoint_url, region="us-east-1",
        access_key_id=seaweed.access_key, secret_access_key=seaweed.secret_key))


async def _entries(seaweed: SeaweedServer, bucket: str, prefix: str) -> list[Entry]:
    store = _store(seaweed, bucket, prefix)
    await store.open()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            remote = RemoteManifest(store, Path(tmp) / "cache")
            await remote.load()
            entries = list(remote.entries())
            remote.close()
            return entries
    finally:
        await store.close()


def deep_check(seaweed: SeaweedServer, bucket: str, prefix: str) -> tuple[int, list[str]]:
    """Download every live file the manifest lists and re-hash it.
    Returns (files checked, problems)."""
    return asyncio.run(_deep_check(seaweed, bucket, prefix))


async def _deep_check(seaweed: SeaweedServer, bucket: str, prefix: str
                      ) -> tuple[int, list[str]]:
    entries = [e for e in await _entries(seaweed, bucket, prefix)
               if e.kind == FILE and not e.deleted_ns]
    store = _store(seaweed, bucket, prefix)
    await store.open()
    problems: list[str] = []
    try:
        for entry in entries:
            try:
                got = await store.get(object_key(entry))
            except NotFound:
                problems.append(f"missing: {entry.path!r}")
                continue
            assert not isinstance(got, NotModified)
            if xxhash.xxh3_128_digest(got.data) != entry.xxh or len(got.data) != entry.size:
                problems.append(f"wrong bytes: {entry.path!r}")
    finally:
        await store.close()
    return len(entries), problems
