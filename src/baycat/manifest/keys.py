"""Object keys for paths: the path itself where S3 allows it, an escaped key otherwise.

The remote layout stays browsable (`prefix/a/b.txt` holds `a/b.txt`). A path that can't be
a key as it is — not valid UTF-8, too long for S3's 1,024-byte limit with the prefix, or
holding control characters or a backslash (see _UNSAFE) — is stored under
`.baycat/escaped/<sha256 of the path>`, and the manifest records that key, so the exact
bytes of the name still come back on restore. NFC and NFD spellings are different bytes,
hence different keys.
"""

from __future__ import annotations

import hashlib
import re

from baycat.entry import Entry
from baycat.store.layout import ESCAPED_PREFIX

MAX_KEY_BYTES = 1024
# Control characters (XML 1.0 listings can't carry them) and backslash (some servers,
# SeaweedFS among them, turn it into '/', which would collide with a real subdirectory).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")


def escaped_key(path: bytes) -> str:
    return ESCAPED_PREFIX + hashlib.sha256(path).hexdigest()


def key_for_path(path: bytes, prefix: str) -> str:
    """The key (relative to `prefix`) a new object for `path` is stored under."""
    try:
        text = path.decode("utf-8")
    except UnicodeDecodeError:
        return escaped_key(path)
    if _UNSAFE.search(text) or len(prefix.encode()) + len(path) > MAX_KEY_BYTES:
        return escaped_key(path)
    return text


def stored_key(path: bytes, prefix: str) -> str:
    """What Entry.key records: "" when the key is the path itself (the common case)."""
    key = key_for_path(path, prefix)
    return "" if key.encode() == path else key


def object_key(entry: Entry) -> str:
    """The key an entry's object lives under."""
    return entry.key or entry.path.decode("utf-8")


def same_etag(recorded: str, listed: str) -> bool | None:
    """Whether a listed object's ETag is the one the manifest recorded; None when the two
    can't be compared (one multipart, one not: a local-directory store lists plain MD5s
    of objects that S3 would give a multipart ETag)."""
    a, b = recorded.strip('"'), listed.strip('"')
    if not a or not b or ("-" in a) != ("-" in b):
        return None
    return a == b
