"""Is the result right? A fast wrong result does not count.

- `check_bucket`: every file of the source tree is an object under the prefix with the
  same size and content (ETag = MD5 for single-part uploads; multipart objects are
  downloaded and hashed). With `exact`, objects with no source file are errors too
  (the delete scenario); otherwise they are only counted (a sync without `--delete`
  keeps them by design). baycat's own `PREFIX/.baycat/` is not data and is skipped.
- `check_tree`: a restored tree has exactly the source's files with the same bytes
  (baycat's `.baycat/` state directory is skipped on both sides).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_DIR = ".baycat"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    detail: str
    extra: int = 0


def tree_digest(root: Path) -> dict[str, tuple[int, str]]:
    """rel path -> (size, md5 hex) of every regular file, skipping top-level .baycat."""
    out: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root) and STATE_DIR in dirnames:
            dirnames.remove(STATE_DIR)
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            out[rel] = (os.path.getsize(full), _md5_file(full))
    return out


def _md5_file(path: str) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_tree(source: dict[str, tuple[int, str]], restored: Path) -> Verdict:
    if not restored.is_dir():
        return Verdict(False, "restore directory missing")
    got = tree_digest(restored)
    missing = source.keys() - got.keys()
    extra = got.keys() - source.keys()
    wrong = [p for p in source.keys() & got.keys() if source[p] != got[p]]
    return _verdict(len(missing), len(wrong), len(extra), exact=True,
                    sample=sorted(missing)[:3] + sorted(wrong)[:3] + sorted(extra)[:3])


def check_bucket(client: Any, bucket: str, prefix: str, source: dict[str, tuple[int, str]],
                 *, exact: bool) -> Verdict:
    objects: dict[str, tuple[int, str]] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix):]
            if rel == STATE_DIR or rel.startswith(STATE_DIR + "/"):
                continue
            objects[rel] = (obj["Size"], obj["ETag"].strip('"'))
    missing = source.keys() - objects.keys()
    extra = objects.keys() - source.keys()
    wrong: list[str] = []
    for rel in source.keys() & objects.keys():
        size, md5 = source[rel]
        o_size, etag = objects[rel]
        if o_size != size:
            wrong.append(rel)
        elif "-" in etag:  # multipart: the ETag is not the content MD5
            if _md5_object(client, bucket, prefix + rel) != md5:
                wrong.append(rel)
        elif etag != md5:
            wrong.append(rel)
    return _verdict(len(missing), len(wrong), len(extra), exact=exact,
                    sample=sorted(missing)[:3] + sorted(wrong)[:3])


def _md5_object(client: Any, bucket: str, key: str) -> str:
    h = hashlib.md5(usedforsecurity=False)
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        for chunk in body.iter_chunks(_CHUNK):
            h.update(chunk)
    finally:
        body.close()
    return h.hexdigest()


def _verdict(missing: int, wrong: int, extra: int, *, exact: bool,
             sample: list[str]) -> Verdict:
    bad = missing + wrong + (extra if exact else 0)
    parts = []
    if missing:
        parts.append(f"{missing} missing")
    if wrong:
        parts.append(f"{wrong} wrong content/size")
    if extra:
        parts.append(f"{extra} extra" + ("" if exact else " (kept, no delete)"))
    detail = ", ".join(parts) or "matches"
    if bad and sample:
        detail += " e.g. " + ", ".join(sample[:4])
    return Verdict(bad == 0, detail, extra)
