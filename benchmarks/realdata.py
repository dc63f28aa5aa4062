"""A tree no one generated: the standard library of the running interpreter.

`copy_stdlib` copies `sysconfig.get_paths()["stdlib"]` into a tool's work dir: real
file sizes (a few bytes to tens of MiB), real names and depths, symlinks kept as
symlinks, mtimes kept. Left out: `__pycache__/` (bytecode the interpreter derives from
the sources, whose presence depends on what ran before) and `site-packages/`
(third-party packages of this environment, not the standard library). Two copies are
identical (paths, bytes, mtimes), so every tool gets its own twin.

`change` is a realistic edit session, the same on every twin (picked by a seeded sample
of the sorted file list):

- edited: 1 % of the `.py` files get a line inserted in the middle (size changes);
- added: 10 new modules in existing directories;
- removed: 10 files;
- renamed: one package directory of 5–40 files (`name` -> `name_renamed`).
"""

from __future__ import annotations

import os
import random
import shutil
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SKIP_DIRS = frozenset({"__pycache__", "site-packages"})
EDIT_FRACTION = 0.01
ADDED = 10
REMOVED = 10


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@dataclass(frozen=True, slots=True)
class TreeStats:
    files: int
    bytes: int
    symlinks: int
    dirs: int
    largest: int

    def describe(self, root: Path) -> str:
        return (f"a copy of this interpreter's standard library ({root}; `__pycache__/` and "
                f"`site-packages/` left out): {self.files:,} files, "
                f"{self.bytes / (1 << 20):.1f} MiB (largest {self.largest / (1 << 20):.1f} "
                f"MiB), {self.symlinks} symlinks, {self.dirs} directories")


def _ignore(_: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIP_DIRS}


def copy_stdlib(dst: Path, src: Path | None = None) -> None:
    """Copy the standard library to `dst` (which must not exist)."""
    shutil.copytree(src or stdlib_root(), dst, symlinks=True, ignore=_ignore)


def stats(root: Path) -> TreeStats:
    files = size = links = dirs = largest = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        dirs += 1
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                links += 1
            elif os.path.isfile(path):
                n = os.path.getsize(path)
                files, size, largest = files + 1, size + n, max(largest, n)
    return TreeStats(files, size, links, dirs, largest)


def _files(root: Path) -> list[str]:
    """Relative paths of the regular files under `root`, sorted."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                out.append(name if rel == "." else f"{rel}/{name}")
    out.sort()
    return out


def _renamed_dir(files: list[str], rng: random.Random) -> str | None:
    """A package directory of 5-40 files (counting its subdirectories), seeded pick."""
    counts: dict[str, int] = {}
    for rel in files:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            counts["/".join(parts[:i])] = counts.get("/".join(parts[:i]), 0) + 1
    fits = sorted(d for d, n in counts.items() if 5 <= n <= 40)
    return rng.choice(fits) if fits else None


def change(root: Path, seed: int) -> dict[str, int]:
    """Apply the edit session to `root`; returns how many files each step touched."""
    rng = random.Random(f"{seed}/realdata")
    files = _files(root)
    py = [f for f in files if f.endswith(".py")]
    edited = sorted(rng.sample(py, max(1, round(len(py) * EDIT_FRACTION))))
    for rel in edited:
        path = root / rel
        lines = path.read_bytes().splitlines(keepends=True)
        at = len(lines) // 2
        lines.insert(at, b"# edited by the benchmark: a line a person might add\n")
        path.write_bytes(b"".join(lines))
    rest = [f for f in files if f not in set(edited)]
    removed = sorted(rng.sample(rest, REMOVED))
    for rel in removed:
        (root / rel).unlink()
    parents = sorted({rel.rpartition("/")[0] for rel in rest if "/" in rel})
    for i in range(ADDED):
        parent = rng.choice(parents)
        body = "".join(f"def helper_{i}_{j}(x):\n    return x * {j}\n\n"
                       for j in range(rng.randint(3, 60)))
        (root / parent / f"bench_added_{i}.py").write_text(f'"""Added."""\n\n{body}')
    renamed = 0
    left = _files(root)
    directory = _renamed_dir(left, rng)
    if directory is not None:
        renamed = sum(1 for rel in left if rel.startswith(directory + "/"))
        os.rename(root / directory, root / (directory + "_renamed"))
    return {"edited": len(edited), "added": ADDED, "removed": len(removed),
            "renamed_dir_files": renamed}
