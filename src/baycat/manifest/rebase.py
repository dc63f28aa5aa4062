"""Re-applying a run's changes on a root that another writer committed first.

A run decides each change against the remote entry it saw at the start (its *base*).
When another writer commits in between (the conditional root PUT answers 412), the run
must apply only what it changed itself, on top of the winner's root — never its stale
copy of an entry the winner replaced (re-applying a "deleted" mark made from an old
entry would record an old hash for an object that now holds the winner's bytes: an
unrestorable entry).

Per path, with `theirs` the winner's entry:

- `theirs == base`: the winner didn't touch it: ours applies.
- both changed it, and ours wrote no object (a deleted mark, a metadata change on the
  same object, a damage mark): theirs stands — it describes an object we didn't touch.
- both changed it, and ours wrote the object's key (upload or copy): whoever wrote the
  key last holds it, so the object is asked (one HEAD): the entry whose ETag it has
  stands; neither: ours, marked for re-upload (no ETag). A versioned entry always
  stands (its version exists whatever came later).
- ours removed the object (`--delete`) and theirs is a file: theirs stands if its
  object is there, else the removal applies.
- directories and symlinks have no object: ours applies.

`resolve` is pure (table-tested); `settle` decides a CHECK from the HEAD's answer.
"""

from __future__ import annotations

from enum import Enum

from baycat.entry import FILE, Entry
from baycat.manifest.keys import same_etag
from baycat.store.base import ObjectInfo


class Resolution(Enum):
    OURS = "ours"
    THEIRS = "theirs"
    CHECK = "check"  # ask the object which writer it holds


def resolve(ours: Entry | None, base: Entry | None, theirs: Entry | None) -> Resolution:
    if theirs == base:
        return Resolution.OURS
    if ours is None:
        if theirs is not None and theirs.kind == FILE:
            return Resolution.CHECK
        return Resolution.OURS if theirs is None else Resolution.THEIRS
    if ours.kind != FILE:
        return Resolution.OURS
    if ours.deleted_ns or not ours.etag:
        return Resolution.THEIRS  # a mark on an object we did not write
    if (base is not None and base.kind == FILE and (ours.etag, ours.version_id, ours.key)
            == (base.etag, base.version_id, base.key)):
        return Resolution.THEIRS  # metadata only: our mark on the old object
    if ours.version_id:
        return Resolution.OURS
    return Resolution.CHECK


def settle(ours: Entry | None, theirs: Entry | None,
           current: ObjectInfo | None) -> Entry | Resolution | None:
    """The entry to record for a CHECK, given the object now at the path's key (None:
    there is none). Returns Resolution.THEIRS when the winner's entry stands."""
    etag = current.etag if current is not None else ""
    holds_theirs = theirs is not None and theirs.kind == FILE and same_etag(theirs.etag, etag)
    holds_ours = ours is not None and same_etag(ours.etag, etag)
    if holds_theirs and not holds_ours:
        return Resolution.THEIRS
    if ours is None:
        return None
    if holds_ours:
        return ours
    return ours._replace(etag="")  # holds neither: uploaded again by our next run
