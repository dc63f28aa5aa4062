"""Table tests of rebase.resolve / rebase.settle: what a run that commits second
records for a path both writers changed."""

from __future__ import annotations

import pytest

from baycat.entry import DIR, FILE, Entry
from baycat.manifest.rebase import Resolution, resolve, settle
from baycat.store.base import ObjectInfo


def f(etag: str, *, xxh: bytes = b"h" * 16, deleted: int = 0, version: str = "") -> Entry:
    return Entry(b"p", FILE, 1, 1, 0, 0, 0, 0o100644, 0, 0, b"", xxh, etag, "", version,
                 deleted, 0)


D = Entry(b"p", DIR, 0, 1, 0, 0, 0, 0o40755, 0, 0, b"", b"", "", "", "", 0, 0)
OLD, NEW_OURS, NEW_THEIRS = f('"old"'), f('"ours"', xxh=b"o" * 16), f('"theirs"', xxh=b"t" * 16)

CASES = [
    # (ours, base, theirs, expected)
    ("untouched by the winner", NEW_OURS, OLD, OLD, Resolution.OURS),
    ("new path, winner did not add it", NEW_OURS, None, None, Resolution.OURS),
    ("our stale deleted mark", OLD._replace(deleted_ns=5), OLD, NEW_THEIRS,
     Resolution.THEIRS),
    ("our metadata change on the old object", OLD._replace(mode=0o100600), OLD, NEW_THEIRS,
     Resolution.THEIRS),
    ("our damage mark", OLD._replace(etag=""), OLD, NEW_THEIRS, Resolution.THEIRS),
    ("both uploaded: ask the object", NEW_OURS, OLD, NEW_THEIRS, Resolution.CHECK),
    ("both added the path", NEW_OURS, None, NEW_THEIRS, Resolution.CHECK),
    ("versioned upload always stands", f('"v"', version="v1"), OLD, NEW_THEIRS,
     Resolution.OURS),
    ("we removed, winner re-uploaded", None, OLD, NEW_THEIRS, Resolution.CHECK),
    ("both removed", None, OLD, None, Resolution.OURS),
    ("directories carry no object", D, None, NEW_THEIRS, Resolution.OURS),
    ("we removed, winner changed a directory", None, D, D._replace(mode=0o40700),
     Resolution.THEIRS),
]


@pytest.mark.parametrize(("ours", "base", "theirs", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_resolve(ours: Entry | None, base: Entry | None, theirs: Entry | None,
                 expected: Resolution) -> None:
    assert resolve(ours, base, theirs) is expected


def info(etag: str) -> ObjectInfo:
    return ObjectInfo("p", 1, etag)


def test_settle_keeps_the_entry_whose_object_is_there() -> None:
    assert settle(NEW_OURS, NEW_THEIRS, info('"ours"')) == NEW_OURS
    assert settle(NEW_OURS, NEW_THEIRS, info('"theirs"')) is Resolution.THEIRS
    # Neither: ours, without an ETag, so that our next run uploads it again.
    assert settle(NEW_OURS, NEW_THEIRS, info('"other"')) == NEW_OURS._replace(etag="")
    assert settle(NEW_OURS, NEW_THEIRS, None) == NEW_OURS._replace(etag="")
    # We deleted the object; the winner's upload came after (it is there) or before.
    assert settle(None, NEW_THEIRS, info('"theirs"')) is Resolution.THEIRS
    assert settle(None, NEW_THEIRS, None) is None
