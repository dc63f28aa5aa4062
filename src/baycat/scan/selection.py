"""Choosing what to back up beyond patterns: marker files and lists of paths.

- `Markers` (`--exclude-caches`, `--exclude-if-present NAME`): a directory holding a
  valid `CACHEDIR.TAG` (the Cache Directory Tagging specification: the file starts with
  `CACHEDIR_SIGNATURE`) or a file named NAME keeps only that file; the rest of its
  contents is left out. Keeping the tag (as tar --exclude-caches does) means a restore
  brings back a directory that is still marked as a cache.
- `FilesFrom` (`--files-from FILE`): only the listed paths (a listed directory with all
  below it) and the directories above them.

Both are walker.PathFilters, so the walk never enters what they leave out, and both
answer for a path the walk did not see (`RemoteSelection`): a path of the backup that is
left out by them now is not ours to delete, like a path an --exclude rule matches
(ops/sync_diff.py). For the remote side, markers and mount points are looked up in the
tree (a few lstat calls per directory of the backup, only when those options are on).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator

from baycat.entry import Entry
from baycat.errors import UsageError
from baycat.scan.mounts import MountPolicy
from baycat.scan.walker import SkipFunc

CACHEDIR_TAG = b"CACHEDIR.TAG"
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def valid_cache_tag(path: bytes) -> bool:
    """Is the file at `path` a regular file starting with the CACHEDIR.TAG signature?
    (Never through a symlink: O_NOFOLLOW; a FIFO there can't block: O_NONBLOCK.)"""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return os.read(fd, len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE
    except OSError:
        return False
    finally:
        os.close(fd)


class Markers:
    """walker.PathFilter: a directory holding a marker keeps only its markers."""

    def __init__(self, root: bytes, exclude_caches: bool, names: Iterable[bytes]) -> None:
        self._root = root
        self._caches = exclude_caches
        self._names = frozenset(names)

    def _dir_path(self, rel_dir: bytes) -> bytes:
        return self._root + (b"/" + rel_dir if rel_dir else b"")

    def kept(self, rel_dir: bytes, present: Callable[[bytes], bool]) -> frozenset[bytes] | None:
        """The markers `rel_dir` holds (`present(name)` says whether a name is there), or
        None when it holds none and its contents are all walked."""
        found = {name for name in self._names if present(name)}
        if self._caches and present(CACHEDIR_TAG) and valid_cache_tag(
                self._dir_path(rel_dir) + b"/" + CACHEDIR_TAG):
            found.add(CACHEDIR_TAG)
        return frozenset(found) if found else None

    def for_dir(self, rel_dir: bytes, names: list[bytes]) -> SkipFunc | None:
        listed = set(names) if len(names) > 8 else names
        kept = self.kept(rel_dir, listed.__contains__)
        if kept is None:
            return None
        return lambda rel, is_dir: rel.rpartition(b"/")[2] not in kept

    def kept_on_disk(self, rel_dir: bytes) -> frozenset[bytes] | None:
        """`kept` for a directory the walk did not list (lstat of each marker name)."""
        base = self._dir_path(rel_dir) + b"/"

        def present(name: bytes) -> bool:
            try:
                os.lstat(base + name)
            except OSError:
                return False
            return True

        return self.kept(rel_dir, present)


def normalize_listed(lines: Iterable[str]) -> tuple[bytes, ...]:
    """The paths of a --files-from list, relative to the source, sorted and unique.
    Blank lines and `#` comments are skipped; `./a/` is `a`. UsageError for an absolute
    path or one with `..` (it would name something outside the source)."""
    found: set[bytes] = set()
    for line in lines:
        line = line.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("/"):
            raise UsageError(f"--files-from: {line!r} is absolute (paths are relative to SRC)")
        parts = [p for p in line.split("/") if p not in ("", ".")]
        if ".." in parts or "\0" in line:
            raise UsageError(f"--files-from: {line!r} leaves the source directory")
        if parts:
            found.add(os.fsencode("/".join(parts)))
    if not found:
        raise UsageError("--files-from lists no paths")
    return tuple(sorted(found))


def read_listed(source: str, stdin: Callable[[], bytes]) -> tuple[bytes, ...]:
    """--files-from FILE (`-`: `stdin()`): its paths, normalized."""
    if source == "-":
        data = stdin()
    else:
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read {source}: {exc.strerror}") from None
    return normalize_listed(data.decode("utf-8", "surrogateescape").splitlines())


class FilesFrom:
    """walker.PathFilter: only the listed paths, all below listed directories, and the
    directories above listed paths (recorded as directories, without their other
    contents)."""

    def __init__(self, listed: Iterable[bytes]) -> None:
        self._listed = frozenset(listed)
        above: set[bytes] = set()
        for path in self._listed:
            head = path.rpartition(b"/")[0]
            while head and head not in above:
                above.add(head)
                head = head.rpartition(b"/")[0]
        self._above = frozenset(above)

    def _skip(self, rel: bytes, is_dir: bool) -> bool:
        return rel not in self._listed and rel not in self._above

    def for_dir(self, rel_dir: bytes, names: list[bytes]) -> SkipFunc | None:
        # The walk enters only the top, directories above listed paths, and what is
        # at or below a listed path: in the last case nothing is left out.
        if rel_dir == b"" or (rel_dir in self._above and rel_dir not in self._listed):
            return self._skip
        return None

    def selects(self, rel: bytes) -> bool:
        """Is `rel` (anywhere in the tree) in the selection?"""
        if rel in self._above:
            return True
        head = rel
        while head:
            if head in self._listed:
                return True
            head = head.rpartition(b"/")[0]
        return False


class RemoteSelection:
    """The remote manifest stream less the paths the walk leaves out because of markers,
    mount points (with one_file_system) or --files-from: entries the differ must not
    treat as deleted. Blocking (lstat calls); one per thread."""

    _CACHE = 4096  # directories remembered (the stream is in path order: ancestors hit)

    def __init__(self, root: bytes, markers: Markers | None, files_from: FilesFrom | None,
                 mounts: MountPolicy | None) -> None:
        self._root = root
        self._markers = markers
        self._files_from = files_from
        self._mounts = mounts
        # dir -> (left out itself, names its contents keep (None: all), its st_dev or -1)
        self._dirs: dict[bytes, tuple[bool, frozenset[bytes] | None, int]] = {}

    def _decide(self, rel_dir: bytes, parent_dev: int) -> tuple[frozenset[bytes] | None, int]:
        """(the names `rel_dir`'s contents keep, its st_dev), looked up in the tree."""
        try:
            dev = os.lstat(self._root + (b"/" + rel_dir if rel_dir else b"")).st_dev
        except OSError:
            return None, -1  # not in the tree (any more): nothing left out below it
        if (self._mounts is not None and rel_dir and parent_dev >= 0 and dev != parent_dev
                and not self._mounts.enters(dev)):
            return frozenset(), dev
        if self._markers is not None:
            return self._markers.kept_on_disk(rel_dir), dev
        return None, dev

    def _dir(self, rel_dir: bytes) -> tuple[bool, frozenset[bytes] | None, int]:
        todo: list[bytes] = []
        head = rel_dir
        while head not in self._dirs:
            todo.append(head)
            if not head:
                break
            head = head.rpartition(b"/")[0]
        if len(self._dirs) + len(todo) > self._CACHE:
            self._dirs.clear()
            return self._dir_uncached(rel_dir)
        for path in reversed(todo):  # top down: each one's parent is known
            self._dirs[path] = self._step(path)
        return self._dirs[rel_dir]

    def _dir_uncached(self, rel_dir: bytes) -> tuple[bool, frozenset[bytes] | None, int]:
        parts = rel_dir.split(b"/") if rel_dir else []
        for i in range(len(parts) + 1):
            path = b"/".join(parts[:i])
            self._dirs[path] = self._step(path)
        return self._dirs[rel_dir]

    def _step(self, rel_dir: bytes) -> tuple[bool, frozenset[bytes] | None, int]:
        if not rel_dir:
            kept, dev = self._decide(b"", -1)
            return False, kept, dev
        parent, _, name = rel_dir.rpartition(b"/")
        parent_out, parent_kept, parent_dev = self._dirs[parent]
        if parent_out or (parent_kept is not None and name not in parent_kept):
            return True, frozenset(), -1
        kept, dev = self._decide(rel_dir, parent_dev)
        return False, kept, dev

    def left_out(self, rel: bytes) -> bool:
        if self._files_from is not None and not self._files_from.selects(rel):
            return True
        if self._markers is None and self._mounts is None:
            return False
        parent, _, name = rel.rpartition(b"/")
        out, kept, _ = self._dir(parent)
        return out or (kept is not None and name not in kept)

    def keep(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        for entry in entries:
            if not self.left_out(entry.path):
                yield entry


def missing_listed(root: bytes, listed: tuple[bytes, ...]) -> list[bytes]:
    """Blocking: the --files-from paths that are not in the tree, or only through a
    symlink (the walk never follows one, so what lies behind it is not backed up)."""
    missing = []
    for path in listed:
        current = root
        parts = path.split(b"/")
        for depth, part in enumerate(parts):
            current += b"/" + part
            try:
                mode = os.lstat(current).st_mode
            except OSError:
                missing.append(path)
                break
            if depth < len(parts) - 1 and not stat.S_ISDIR(mode):
                missing.append(path)
                break
    return missing
