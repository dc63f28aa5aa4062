"""The manifest's building blocks as pure functions: order, segment codec, chunking, rebuild."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baycat.entry import DIR, FILE, SYMLINK, Entry, path_key
from baycat.errors import ManifestError
from baycat.manifest import segment
from baycat.manifest.rebuild import Change, StreamRebuilder, rebuild_with_changes
from baycat.manifest.root import SegmentRef
from tests.trees import WEIRD_NAMES


def make_entry(path: bytes, n: int = 0, kind: str = FILE) -> Entry:
    return Entry(path, kind, n, 1_700_000_000_000_000_000 + n, -5, 2**64 - 1 - n, 2**63 + n,
                 0o100644, 1000, 1000, b"../t" if kind == SYMLINK else b"",
                 bytes([n % 255 + 1]) * 16 if kind == FILE else b"", f"etag{n}" if n % 3 else "",
                 "", "v" * (n % 2), 0, n % 4)


def test_path_key_orders_component_by_component() -> None:
    paths = [b"a-c", b"a/b", b"a", b"a/b/c", b"a0", b"a\xff", b"b", b"a/\xff", b"a.b"]
    assert sorted(paths, key=path_key) == sorted(paths, key=lambda p: p.split(b"/"))
    assert sorted(paths, key=path_key)[:4] == [b"a", b"a/b", b"a/b/c", b"a/\xff"]


def test_segment_round_trips_every_field() -> None:
    entries = [make_entry(b"d/" + name, i, (FILE, DIR, SYMLINK)[i % 3])
               for i, name in enumerate(sorted(WEIRD_NAMES))]
    blob = segment.encode(entries)
    assert segment.decode(blob) == entries


def test_segment_is_compact() -> None:
    entries = [Entry(b"photos/2024/%05d.jpg" % i, FILE, 3_000_000 + i * 17,
                     1_700_000_000_000_000_000 + i * 999_999, 1_700_000_000_000_000_000 + i,
                     5_000_000 + i, 2049, 0o100644, 1000, 1000, b"",
                     random.Random(i).randbytes(16), "", "", "", 0, 0) for i in range(4000)]
    blob = segment.encode(entries)
    # 16 bytes of hash are incompressible; the rest must mostly compress away.
    assert len(blob) / len(entries) < 32


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_damaged_segment_is_an_error(damage: str) -> None:
    blob = bytearray(segment.encode([make_entry(b"a", 1), make_entry(b"b", 2)]))
    if damage == "flip":
        blob[len(blob) // 2] ^= 0xFF
    elif damage == "truncate":
        del blob[-5:]
    else:
        blob = bytearray(b"not a segment at all")
    with pytest.raises(ManifestError):
        segment.decode(bytes(blob))
    with pytest.raises(ManifestError):
        segment.has_content(bytes(blob), {bytes(16)})


def test_has_content_reads_the_hash_column() -> None:
    entries = [make_entry(b"d/%03d" % i, i, (FILE, DIR)[i % 2]) for i in range(300)]
    blob = segment.encode(entries)
    present = {e.xxh for e in entries if e.xxh}
    assert len(present) > 100
    for xxh in present:
        assert segment.has_content(blob, {b"\x00" * 16 + b"?", xxh})
    absent = {bytes([i]) * 15 + b"\xfe" for i in range(50)}
    assert not segment.has_content(blob, absent)
    # A directory's empty hash is stored as zeros, which no file content can claim.
    assert not segment.has_content(blob, {b""})


def test_decompression_bomb_is_refused() -> None:
    import zlib
    bomb = zlib.compress(segment.MAGIC + b"\0" * (segment.MAX_DECODED_BYTES + 10))
    with pytest.raises(ManifestError):
        segment.decode(bomb)


def test_a_segment_claiming_too_many_entries_is_refused() -> None:
    import struct
    import zlib
    raw = segment.MAGIC + struct.pack("<I", segment.MAX_DECODED_ENTRIES + 1)
    with pytest.raises(ManifestError, match="entries claimed"):
        segment.decode(zlib.compress(raw))


def _sorted_paths(rng: random.Random, n: int) -> list[bytes]:
    paths = {b"d%03d/f%06d" % (rng.randrange(50), rng.randrange(10**6)) for _ in range(n)}
    return sorted(paths, key=path_key)


def test_chunk_cuts_are_content_defined() -> None:
    rng = random.Random(7)
    paths = _sorted_paths(rng, 30_000)
    runs = list(segment.chunk(make_entry(p) for p in paths))
    assert all(segment.MIN_ENTRIES <= len(r) <= segment.MAX_ENTRIES for r in runs[:-1])
    # Inserting one path changes at most two runs (the one it lands in, maybe split).
    inserted = sorted([*paths, b"d025/x"], key=path_key)
    runs2 = list(segment.chunk(make_entry(p) for p in inserted))
    before = {tuple(e.path for e in r) for r in runs}
    after = {tuple(e.path for e in r) for r in runs2}
    assert len(after - before) <= 2


class Store:
    """Segments by ref, as a manifest file or a pack would hold them."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.loads = 0

    def ref(self, entries: list[Entry]) -> SegmentRef:
        blob = segment.encode(entries)
        h = segment.segment_hash(blob)
        self.blobs[h] = blob
        return SegmentRef(h, len(entries), entries[0].path, "", 0, len(blob), 0, 0)

    def load(self, ref: SegmentRef) -> list[Entry]:
        self.loads += 1
        return segment.decode(self.blobs[ref.hash])

    def materialize(self, outputs: list[SegmentRef | list[Entry]]) -> list[SegmentRef]:
        return [o if isinstance(o, SegmentRef) else self.ref(o) for o in outputs]

    def entries(self, refs: list[SegmentRef]) -> list[Entry]:
        return [e for r in refs for e in segment.decode(self.blobs[r.hash])]


def _base(store: Store, n: int, seed: int) -> tuple[list[Entry], list[SegmentRef]]:
    entries = [make_entry(p, i) for i, p in enumerate(_sorted_paths(random.Random(seed), n))]
    return entries, [store.ref(r) for r in segment.chunk(entries)]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 30), st.integers(0, 2**32))
def test_rebuild_with_changes_equals_full_merge(n: int, k: int, seed: int) -> None:
    store = Store()
    old, refs = _base(store, n, seed)
    rng = random.Random(seed)
    changes: dict[bytes, Entry | None] = {}
    for _ in range(k):
        if old and rng.random() < 0.5:
            victim = rng.choice(old).path
            changes[victim] = None if rng.random() < 0.5 else make_entry(victim, 999)
        else:
            p = b"d%03d/new%d" % (rng.randrange(60), rng.randrange(10**6))
            changes[p] = make_entry(p, 5)
    change_list: list[Change] = sorted(
        ((path_key(p), p, e) for p, e in changes.items()), key=lambda c: c[0])
    new_refs = store.materialize(list(rebuild_with_changes(refs, store.load, change_list)))
    expected = {e.path: e for e in old}
    for p, e in changes.items():
        if e is None:
            expected.pop(p, None)
        else:
            expected[p] = e
    assert store.entries(new_refs) == sorted(expected.values(), key=lambda e: path_key(e.path))
    # Work grows with the change, not the tree: untouched segments are not even read.
    assert store.loads <= 2 * len(changes) + 2
    # And the result is the same as chunking the final stream from scratch.
    fresh = [store.ref(r) for r in segment.chunk(store.entries(new_refs))]
    assert [r.hash for r in fresh] == [r.hash for r in new_refs]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 30), st.integers(0, 2**32))
def test_stream_rebuilder_reuses_unchanged_segments(n: int, k: int, seed: int) -> None:
    store = Store()
    old, refs = _base(store, n, seed)
    rng = random.Random(seed)
    new = {e.path: e for e in old}
    changed: set[bytes] = set()
    removed: list[bytes] = []
    for _ in range(k):
        if old and rng.random() < 0.6:
            victim = rng.choice(old).path
            if rng.random() < 0.5:
                new.pop(victim, None)
                removed.append(victim)
                changed.discard(victim)
            else:
                new[victim] = make_entry(victim, 777)
                changed.add(victim)
        else:
            p = b"d%03d/z%d" % (rng.randrange(60), rng.randrange(10**6))
            new[p] = make_entry(p, 3)
            changed.add(p)
    rebuilder = StreamRebuilder(refs)
    old_paths = {e.path for e in old}
    outputs: list[SegmentRef | list[Entry]] = []
    events = sorted([(path_key(p), p, True) for p in new] +
                    [(path_key(p), p, False) for p in set(removed) if p not in new])
    run: list[Entry] = []  # consecutive unchanged entries go in by the batch path
    for _, p, present in events:
        if present and p not in changed and p in old_paths:
            run.append(new[p])
            continue
        outputs += rebuilder.add_unchanged(run)
        run = []
        if present:
            outputs += rebuilder.add(new[p], p in changed)
        else:
            outputs += rebuilder.removed(p)
    outputs += rebuilder.add_unchanged(run)
    outputs += rebuilder.finish()
    new_refs = store.materialize(outputs)
    assert store.entries(new_refs) == sorted(new.values(), key=lambda e: path_key(e.path))
    fresh = [store.ref(r) for r in segment.chunk(sorted(new.values(),
                                                        key=lambda e: path_key(e.path)))]
    assert [r.hash for r in fresh] == [r.hash for r in new_refs]
    reused = sum(isinstance(o, SegmentRef) for o in outputs)
    assert reused >= len(refs) - 2 * (len(changed) + len(removed)) - 1
