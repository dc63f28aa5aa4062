"""The seeded dataset: many small files in nested directories plus a few large ones.

Two trees generated from the same `DatasetSpec` are identical: same paths, same bytes,
same mtimes (ctime and inode differ, as they would on any copy). Every tool gets its
own tree so one tool's state (baycat's `.baycat/`, mtimes) never leaks into another's.

Layout::

    small/d000/d00/d0/f0000000.bin   (SMALL_PER_DIR files per leaf directory)
    large/L00.bin                    (sizes drawn between large_min and large_max)

mtimes are set to a fixed past date plus a seeded offset, so a tree looks like data
that has been sitting on disk, not like files written a moment ago.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB

SMALL_PER_DIR = 50
_FANOUT = 10
_BASE_MTIME_S = 1_700_000_000  # 2023-11-14, i.e. "long ago"
_WRITE_CHUNK = 8 * MiB


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """What to generate. Example: the default run::

        DatasetSpec(small_files=5000, large_files=2, large_min=32 * MiB, large_max=32 * MiB)
    """

    seed: int = 7
    small_files: int = 5000
    small_min: int = 1 * KiB
    small_max: int = 16 * KiB
    large_files: int = 2
    large_min: int = 32 * MiB
    large_max: int = 32 * MiB

    def small_path(self, i: int) -> str:
        leaf = i // SMALL_PER_DIR
        top, mid, low = leaf // (_FANOUT * _FANOUT), (leaf // _FANOUT) % _FANOUT, leaf % _FANOUT
        return f"small/d{top:03d}/d{mid:02d}/d{low}/f{i:07d}.bin"

    def large_sizes(self) -> list[int]:
        rng = random.Random(f"{self.seed}/large")
        low, high = self.large_min // MiB, max(self.large_min, self.large_max) // MiB
        return [rng.randint(low, high) * MiB for _ in range(self.large_files)]

    def describe(self) -> str:
        sizes = self.large_sizes()
        large = ", ".join(f"{s // MiB} MiB" for s in sizes) if sizes else "none"
        return (f"{self.small_files:,} small files of {self.small_min // KiB}–"
                f"{self.small_max // KiB} KiB (uniform, {SMALL_PER_DIR} per directory, "
                f"3 levels) + {self.large_files} large files ({large}); seed {self.seed}")


# `--scale` presets. 1m keeps files small (64 B–1 KiB) so the tree is ~0.5 GB: issue 8
# is about per-file metadata cost, not bandwidth.
PRESETS: dict[str, DatasetSpec] = {
    "default": DatasetSpec(),
    "100k": DatasetSpec(small_files=100_000),
    "1m": DatasetSpec(small_files=1_000_000, small_min=64, small_max=1 * KiB, large_files=0),
}


def with_overrides(spec: DatasetSpec, **changes: int | None) -> DatasetSpec:
    """`spec` with every non-None keyword replaced."""
    return replace(spec, **{k: v for k, v in changes.items() if v is not None})


def generate(spec: DatasetSpec, root: Path) -> tuple[int, int]:
    """Write the tree under `root` (which must not exist); returns (files, bytes)."""
    root.mkdir(parents=True)
    rng = random.Random(f"{spec.seed}/small")
    total = 0
    made_dirs: set[str] = set()
    for i in range(spec.small_files):
        rel = spec.small_path(i)
        parent = rel.rpartition("/")[0]
        if parent not in made_dirs:
            (root / parent).mkdir(parents=True, exist_ok=True)
            made_dirs.add(parent)
        size = rng.randint(spec.small_min, spec.small_max)
        _write(root / rel, rng.randbytes(size), _mtime_ns(rng))
        total += size
    if spec.large_files:
        (root / "large").mkdir()
    for j, size in enumerate(spec.large_sizes()):
        lrng = random.Random(f"{spec.seed}/large/{j}")
        path = root / f"large/L{j:02d}.bin"
        with path.open("wb") as f:
            left = size
            while left:
                n = min(left, _WRITE_CHUNK)
                f.write(lrng.randbytes(n))
                left -= n
        os.utime(path, ns=(_mtime_ns(lrng),) * 2)
        total += size
    return spec.small_files + spec.large_files, total


def _mtime_ns(rng: random.Random) -> int:
    return (_BASE_MTIME_S + rng.randrange(30 * 86400)) * 1_000_000_000 + rng.randrange(10**9)


def _write(path: Path, data: bytes, mtime_ns: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.utime(path, ns=(mtime_ns, mtime_ns))
