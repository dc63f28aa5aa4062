"""A damaged cache of the remote manifest is dropped and fetched again, with a notice
(issue 12, item 11): it is only a cache, the store holds the manifest."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from baycat.manifest.file import ManifestReader
from tests.targets import Target
from tests.trees import make_tree, read_tree


def cache_file(tree: Path) -> Path:
    """The one remote-manifest cache under a tree's state directory."""
    found = [p for p in (tree / ".baycat" / "remote").iterdir()
             if not p.name.startswith(".") and "." not in p.name]
    assert len(found) == 1, found
    return found[0]


def damage_a_segment(cache: Path) -> None:
    """Flip one byte in the middle of the cache's first segment."""
    with ManifestReader(cache) as reader:
        ref = reader.root.segments[0]
    data = bytearray(cache.read_bytes())
    data[ref.offset + ref.length // 2] ^= 0xFF
    cache.write_bytes(bytes(data))


def make_data(root: Path) -> Path:
    make_tree(root, {"a": {f"f{i:02d}": os.urandom(300) for i in range(12)},
                     "b.txt": b"first version"})
    return root


def truncate(cache: Path) -> None:
    cache.write_bytes(cache.read_bytes()[:40])  # not even a root to read


@pytest.mark.parametrize(("damage", "notice"), [
    (damage_a_segment, "1 of its 1 segments are damaged; fetching them again"),
    (truncate, "fetching the whole manifest again"),
])
def test_a_damaged_sync_cache_is_fetched_again(target: Target, tmp_path: Path,
                                               damage: Callable[[Path], None],
                                               notice: str) -> None:
    src = make_data(tmp_path / "src")
    target.sync(src)
    damage(cache_file(src))
    (src / "b.txt").write_bytes(b"second version, longer")
    summary = target.sync(src)  # exit 0 (checked by Target.sync)
    assert any("was damaged" in n and notice in n for n in summary["notices"]), \
        summary["notices"]
    assert summary["operations"]["uploaded"]["files"] == 1
    assert target.objects()["b.txt"] == b"second version, longer"
    again = target.sync(src)  # the cache was rewritten whole: nothing to say any more
    damaged = [n for n in again["notices"] if "was damaged" in n]
    assert damaged == [] and again["operations"]["uploaded"]["files"] == 0
    target.restore(tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(src)


def test_a_damaged_segment_in_the_restore_cache_is_fetched_again(target: Target,
                                                                 tmp_path: Path) -> None:
    src = make_data(tmp_path / "src")
    target.sync(src)
    out = tmp_path / "out"
    target.restore(out)
    damage_a_segment(cache_file(out))
    (src / "b.txt").write_bytes(b"second version")
    target.sync(src)
    summary = target.restore(out)  # exit 0
    assert any("was damaged" in n for n in summary["notices"]), summary["notices"]
    assert summary["operations"]["downloaded"]["files"] == 1
    assert read_tree(out) == read_tree(src)
