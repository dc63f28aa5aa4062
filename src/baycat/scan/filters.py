"""Choosing what to back up: `--exclude`/`--include` rules and `.baycatignore` files.

Semantics (README "Choosing what to back up"):

- Patterns use gitignore syntax (matched by `pathspec`, not by hand): `*.log` matches at
  any depth, `/build` only at the top, `cache/` only directories, `**` any number of
  directories. Paths are relative to the source directory.
- Every path is checked against, in this order: the `.baycatignore` of each directory
  above it (top first; each file's patterns are relative to its own directory, and `!`
  re-includes), then the command-line rules in the order given. The **last match wins**;
  a path nothing matches is included.
- An excluded directory is never entered, so nothing below it can be re-included (as in
  git): exclude `logs/*` rather than `logs/` to keep `logs/keep.txt`.
- Beyond patterns (selection.py, mounts.py): `--one-file-system`, `--exclude-caches`,
  `--exclude-if-present NAME` and `--files-from FILE`. A `FilterSpec` holds them all and
  is what a manifest header records, so `sync`, `manifest update` and `verify --local`
  choose the same paths.

Everything here is pure except reading `.baycatignore` files, which goes through a
`read` function (a test passes a dict). A `Matcher` keeps the ignore files of the
current directory's ancestors only (a stack, like the walk), so memory is O(depth).
A `Matcher` is not thread-safe: make one per thread with `FilterSpec.matcher`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from baycat.entry import DIR, Entry
from baycat.errors import UsageError
from baycat.scan.mounts import MountPolicy
from baycat.scan.selection import FilesFrom, Markers, RemoteSelection
from baycat.scan.walker import PathFilter, SkipFunc

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

IGNORE_FILE = b".baycatignore"
# read(relative directory, b"" for the top) -> the ignore file's bytes, or None.
ReadIgnore = Callable[[bytes], bytes | None]


@dataclass(frozen=True, slots=True)
class Rule:
    """One command-line rule: exclude (`- pattern`) or include (`+ pattern`)."""

    include: bool
    pattern: str

    def __str__(self) -> str:
        return ("+ " if self.include else "- ") + self.pattern

    @classmethod
    def parse(cls, text: str) -> Rule:
        """The inverse of `str()`: `"- *.log"` or `"+ keep.log"` (as stored in headers)."""
        if len(text) < 3 or text[:2] not in ("+ ", "- "):
            raise UsageError(f"bad filter rule {text!r} (want '- PATTERN' or '+ PATTERN')")
        return cls(text[0] == "+", text[2:])


def _gitignore_line(rule: Rule) -> str:
    pattern = rule.pattern
    if pattern.startswith(("!", "#")):
        pattern = "\\" + pattern  # a literal leading ! or #, not negation or a comment
    return ("!" if rule.include else "") + pattern


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """What to leave out of a backup: ordered rules plus `.baycatignore` files.

    Example::

        spec = FilterSpec((Rule(False, "*.log"), Rule(True, "important.log")))
        skip = spec.matcher(read_ignore_files(Path("/srv/data"))).skip
    """

    rules: tuple[Rule, ...] = ()
    ignore_files: bool = True  # honour .baycatignore files
    one_file_system: bool = False  # enter no mount point below the top (-x)
    exclude_caches: bool = False  # a valid CACHEDIR.TAG keeps only itself
    exclude_if_present: tuple[str, ...] = ()  # marker names doing the same
    files_from: tuple[bytes, ...] | None = None  # only these paths (selection.py)

    def __post_init__(self) -> None:
        for rule in self.rules:
            if not rule.pattern.strip() or "\0" in rule.pattern:
                raise UsageError(f"empty or invalid filter pattern {rule.pattern!r}")
        for name in self.exclude_if_present:
            if name in ("", ".", "..") or "/" in name or "\0" in name:
                raise UsageError(f"--exclude-if-present takes a file name, not {name!r}")

    @classmethod
    def from_header(cls, lines: Iterable[str]) -> FilterSpec:
        """Rebuild the spec recorded in a manifest header (`Root.filters`)."""
        rules: list[Rule] = []
        spec = cls()
        markers: list[str] = []
        listed: list[bytes] = []
        for line in lines:
            keyword, _, value = line.partition(" ")
            if line == "no-ignore-files":
                spec = replace(spec, ignore_files=False)
            elif line == "one-file-system":
                spec = replace(spec, one_file_system=True)
            elif line == "exclude-caches":
                spec = replace(spec, exclude_caches=True)
            elif keyword == "exclude-if-present" and value:
                markers.append(value)
            elif keyword == "files-from" and value:
                listed.append(os.fsencode(value))
            else:
                rules.append(Rule.parse(line))
        return replace(spec, rules=tuple(rules), exclude_if_present=tuple(markers),
                       files_from=tuple(listed) if listed else None)

    def to_header(self) -> tuple[str, ...]:
        lines = [str(r) for r in self.rules]
        if not self.ignore_files:
            lines.append("no-ignore-files")
        if self.one_file_system:
            lines.append("one-file-system")
        if self.exclude_caches:
            lines.append("exclude-caches")
        lines += [f"exclude-if-present {name}" for name in self.exclude_if_present]
        lines += [f"files-from {os.fsdecode(path)}" for path in self.files_from or ()]
        return tuple(lines)

    def matcher(self, read: ReadIgnore | None) -> Matcher:
        return Matcher(self, read if self.ignore_files else None)

    def _markers(self, root: Path) -> Markers | None:
        if not self.exclude_caches and not self.exclude_if_present:
            return None
        return Markers(os.fsencode(root), self.exclude_caches,
                       [os.fsencode(n) for n in self.exclude_if_present])

    def path_filter(self, root: Path) -> PathFilter | None:
        """What the walk of the tree at `root` leaves out: rules, ignore files, markers,
        --files-from (mount points: ScanConfig.one_file_system)."""
        return combine(self.matcher(read_ignore_files(root)), self._markers(root),
                       FilesFrom(self.files_from) if self.files_from is not None else None)

    def keep_remote(self, root: Path, entries: Iterator[Entry]) -> Iterator[Entry]:
        """The remote manifest stream less every path this spec leaves out of the walk
        of `root` (see Matcher.keep_remote): those are not deleted locally."""
        entries = self.matcher(read_ignore_files(root)).keep_remote(entries)
        markers = self._markers(root)
        if markers is None and self.files_from is None and not self.one_file_system:
            return entries
        return RemoteSelection(
            os.fsencode(root), markers,
            FilesFrom(self.files_from) if self.files_from is not None else None,
            MountPolicy(True) if self.one_file_system else None).keep(entries)


def rules_from_file(path: Path, include: bool) -> list[Rule]:
    """`--exclude-from FILE`: one pattern a line; blank lines and `#` comments skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    rules: list[Rule] = []
    for line in text.splitlines():
        line = line.rstrip("\r")
        if line.strip() and not line.lstrip().startswith("#"):
            rules.append(Rule(include, line))
    return rules


def read_ignore_files(root: Path) -> ReadIgnore:
    """A `read` function for the real tree at `root` (one failed open per directory)."""
    base = os.fsencode(root)

    def read(rel_dir: bytes) -> bytes | None:
        path = base + b"/" + (rel_dir + b"/" if rel_dir else b"") + IGNORE_FILE
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                return f.read(1 << 20)  # an ignore file bigger than 1 MiB is cut there
        except OSError:
            return None

    return read


def _spec(lines: list[str]) -> GitIgnoreSpec:
    # pathspec is imported by the first pattern: ~25 ms a run without any need not pay.
    from pathspec import GitIgnoreSpec

    return GitIgnoreSpec.from_lines(lines)


def _compile(data: bytes) -> GitIgnoreSpec | None:
    lines = data.decode("utf-8", "surrogateescape").splitlines()
    spec = _spec(lines)
    return spec if len(spec) else None


class Matcher:
    """Answers "leave this path out?" for one thread; see the module docstring."""

    def __init__(self, spec: FilterSpec, read: ReadIgnore | None) -> None:
        self._read = read
        self._cli = (_spec([_gitignore_line(r) for r in spec.rules])
                     if spec.rules else None)
        # The directories above the current one: (b"dir/" prefix, its ignore spec or None).
        self._stack: list[tuple[bytes, GitIgnoreSpec | None]] = []
        self._parent: bytes | None = None
        self._active: list[tuple[int, GitIgnoreSpec]] = []  # (prefix length, spec)
        self._dir_cache: tuple[bytes, bool] = (b"\0", False)  # for `excluded`
        self._listing: tuple[bytes, bool] | None = None  # (dir, has ignore file) being entered

    @property
    def trivial(self) -> bool:
        """True when nothing can ever be excluded (no rules, no ignore files read)."""
        return self._cli is None and self._read is None

    def _enter(self, parent: bytes) -> None:
        """Make the stack hold `parent` and its ancestors (reading their ignore files)."""
        prefix = parent + b"/" if parent else b""
        stack = self._stack
        while stack and not prefix.startswith(stack[-1][0]):
            stack.pop()
        if not stack:
            stack.append((b"", self._load(b"")))
        while len(stack[-1][0]) < len(prefix):
            nxt = prefix.find(b"/", len(stack[-1][0])) + 1
            stack.append((prefix[:nxt], self._load(prefix[:nxt - 1])))
        self._parent = parent
        self._active = [(len(p), s) for p, s in stack if s is not None]

    def for_dir(self, rel_dir: bytes, names: list[bytes]) -> SkipFunc | None:
        """walker.PathFilter: the skip function for `rel_dir`'s children, or None when
        nothing there can be excluded. Its listing says whether it has an ignore file,
        so a directory without one costs no extra open."""
        self._listing = (rel_dir, IGNORE_FILE in names)
        try:
            self._enter(rel_dir)
        finally:
            self._listing = None
        return self.skip if self._active or self._cli is not None else None

    def _load(self, rel_dir: bytes) -> GitIgnoreSpec | None:
        if self._read is None:
            return None
        if self._listing is not None and self._listing[0] == rel_dir and not self._listing[1]:
            return None  # its listing has no ignore file
        data = self._read(rel_dir)
        return _compile(data) if data else None

    def skip(self, rel: bytes, is_dir: bool) -> bool:
        """The walker's `SkipFunc`: True to leave `rel` (and all below it) out. Assumes
        the parents of `rel` were not skipped (the walker never enters those)."""
        parent = rel.rpartition(b"/")[0]
        if parent != self._parent:
            self._enter(parent)
        if not self._active and self._cli is None:
            return False
        text = os.fsdecode(rel) + ("/" if is_dir else "")
        verdict: bool | None = None
        for length, spec in self._active:
            hit = spec.check_file(text[len(os.fsdecode(rel[:length])):]).include
            if hit is not None:
                verdict = hit
        if self._cli is not None:
            hit = self._cli.check_file(text).include
            if hit is not None:
                verdict = hit
        return verdict is True

    def excluded(self, rel: bytes, is_dir: bool) -> bool:
        """Like `skip`, but also True below an excluded directory (any order of calls)."""
        parent = rel.rpartition(b"/")[0]
        if parent:
            cached_parent, parent_out = self._dir_cache
            if cached_parent != parent:
                parent_out = self.excluded(parent, True)
                self._dir_cache = (parent, parent_out)
            if parent_out:
                return True
        return self.skip(rel, is_dir)

    def keep_remote(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        """The remote manifest stream less excluded paths: what the differ should see, so
        that excluded paths are neither uploaded nor treated as deleted."""
        for entry in entries:
            if not self.excluded(entry.path, entry.kind == DIR):
                yield entry


class Combined:
    """Several walker.PathFilters as one: a path is left out when any leaves it out."""

    def __init__(self, filters: list[PathFilter]) -> None:
        self._filters = filters

    def for_dir(self, rel_dir: bytes, names: list[bytes]) -> SkipFunc | None:
        # Every filter sees every directory (they may keep per-directory state).
        skips = [s for f in self._filters if (s := f.for_dir(rel_dir, names)) is not None]
        if len(skips) <= 1:
            return skips[0] if skips else None
        return lambda rel, is_dir: any(s(rel, is_dir) for s in skips)


def combine(*filters: PathFilter | None) -> PathFilter | None:
    """One filter from several (None ones dropped)."""
    present = [f for f in filters if f is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else Combined(present)
