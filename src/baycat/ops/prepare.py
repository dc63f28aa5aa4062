"""What every operation does before it starts: check the source, choose the filters and
the hasher pool, keep a manifest stored in the tree out of its own walk.

One home for each rule: `sync`, `manifest create/update`, `verify --local` and `restore`
all go through these.
"""

from __future__ import annotations

import os
from pathlib import Path

from baycat.errors import UsageError
from baycat.manifest.file import temp_prefix
from baycat.manifest.root import Root
from baycat.scan.filters import FilterSpec
from baycat.scan.local_manifest import lock_path
from baycat.scan.walker import PathFilter, SkipFunc


def default_pool_size() -> int:
    return os.cpu_count() or 1


def choose_pool_size(given: int | None, saved: Root | None) -> int:
    """Hasher threads: the --pool-size given, else the one saved in the manifest
    (`manifest create --pool-size`), else the CPU count."""
    return given or (saved.pool_size if saved is not None else None) or default_pool_size()


def check_apart(source: Path, dest: Path) -> None:
    """Refuse a local backup inside its own source (or the reverse)."""
    src, dst = source.absolute().resolve(), dest.absolute().resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise UsageError(f"source {source} and destination {dest} overlap; "
                         "the backup must live outside the tree (and not contain it)")


def check_source_dir(root: Path) -> Path:
    """The source directory as an absolute path. A symlink given as the source is
    followed (the walk itself never follows links): `sync /data` with /data a link to
    /mnt/disk1 backs up /mnt/disk1, as cp -r, tar and rsync `data/` do."""
    if not root.exists():
        raise UsageError(f"{root}: no such directory")
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory")
    return root.resolve() if root.is_symlink() else root.absolute()


class _ManifestInTree:
    """Keeps a manifest stored inside the tree (outside .baycat/) out of its own walk:
    the manifest, its lock and its temp files (paths relative to the tree)."""

    def __init__(self, rel: bytes, lock: bytes, tmp_prefix: bytes) -> None:
        self._dir = rel.rpartition(b"/")[0]
        self._names = (rel, lock)
        self._tmp_prefix = tmp_prefix

    def for_dir(self, rel_dir: bytes, names: list[bytes]) -> SkipFunc | None:
        return self._skip if rel_dir == self._dir else None

    def _skip(self, path: bytes, is_dir: bool) -> bool:
        return path in self._names or path.startswith(self._tmp_prefix)


def skip_manifest(root: Path, manifest: Path) -> PathFilter | None:
    try:
        rel = manifest.absolute().relative_to(root)
        lock, tmp = lock_path(rel), rel.with_name(temp_prefix(rel.name))
    except ValueError:  # outside the tree (or the tree itself: nothing to skip)
        return None
    return _ManifestInTree(os.fsencode(rel), os.fsencode(lock), os.fsencode(tmp))


def resolve_filters(given: FilterSpec | None, saved: Root | None) -> FilterSpec:
    """The filters of a run: those given, else those recorded in the last manifest."""
    if given is not None:
        return given
    return FilterSpec.from_header(saved.filters) if saved is not None else FilterSpec()


