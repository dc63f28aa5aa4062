"""The per-scenario changes: modify, touch, rename or delete 1 % of the small files.

Applied identically to every tool's tree: the choice is a seeded sample of the sorted
list of small files (trees are identical, so the lists are), and new content is drawn
from a seed per path. Large files are left alone so that which files are picked does
not swing the result by tens of MiB.

- modify: same size, new bytes (mtime becomes "now", as after any write);
- touch: mtime set to now, content identical;
- rename: `f0001234.bin` -> `r0001234.bin` in the same directory (content unchanged);
- delete: unlink.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

MUTATIONS = ("modify", "touch", "rename", "delete")


def small_files(root: Path) -> list[str]:
    """Relative paths of the files under `root/small`, sorted."""
    base = root / "small"
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        out.extend(f"{rel}/{name}" for name in filenames)
    out.sort()
    return out


def pick(root: Path, kind: str, fraction: float, seed: int) -> list[str]:
    files = small_files(root)
    k = min(len(files), max(1, round(len(files) * fraction)))
    return sorted(random.Random(f"{seed}/{kind}").sample(files, k))


def apply(root: Path, kind: str, fraction: float, seed: int) -> list[str]:
    """Apply mutation `kind` to `root`; returns the chosen relative paths."""
    chosen = pick(root, kind, fraction, seed)
    action = _ACTIONS[kind]
    for rel in chosen:
        action(root, rel, seed)
    return chosen


def _modify(root: Path, rel: str, seed: int) -> None:
    path = root / rel
    size = path.stat().st_size
    data = random.Random(f"{seed}/modify/{rel}").randbytes(size)
    with path.open("r+b") as f:
        f.write(data)


def _touch(root: Path, rel: str, seed: int) -> None:
    os.utime(root / rel)


def _rename(root: Path, rel: str, seed: int) -> None:
    parent, _, name = rel.rpartition("/")
    os.rename(root / rel, root / parent / ("r" + name[1:]))


def _delete(root: Path, rel: str, seed: int) -> None:
    (root / rel).unlink()


_ACTIONS: dict[str, Callable[[Path, str, int], None]] = {
    "modify": _modify, "touch": _touch, "rename": _rename, "delete": _delete,
}
