"""What a restore takes from the backup, and what it does about the rest of DST.

- `PathSelection` (`--path PATTERN`): gitignore-style patterns, as `--exclude` uses
  (`*` stays within one name, `photos/2024/*` is anchored at the top, a matching
  directory brings everything below it).
- `Parents`: the directories above selected paths. The manifest is in path order, so a
  directory comes before anything in it; one not selected itself is held (one per
  level of the current path) until something below it is selected, then restored with
  its backed-up mode, owner and times, before that path.
- `Extras`: what DST holds that the restored backup doesn't (within `--path`'s scope).
  Counted always; removed with `--delete`, after every download is done (the scan of
  DST runs while files are written) and before directory times are set (removing a
  name changes its directory's mtime). Removal goes through DirFds (O_NOFOLLOW from
  DST down), unlinks a symlink itself and never what it points to, and only ever
  removes empty directories (rmdir), so nothing outside DST can be reached.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from pathspec import GitIgnoreSpec

from baycat.dirfd import DirFds
from baycat.entry import DIR, Entry, as_text

# The temp files a restore writes beside their targets (restore_writer._tmp_name):
# DST's scan may see them while they are written; they are never extras.
TMP_MARK = b".baycat-tmp-"


class PathSelection:
    """--path patterns; none: everything is selected."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        lines = ["\\" + p if p.startswith(("!", "#")) else p for p in patterns]
        self._spec = GitIgnoreSpec.from_lines(lines) if patterns else None
        self.matched = False  # some path matched (a typo'd pattern matches none)

    def matches(self, path: bytes, is_dir: bool) -> bool:
        if self._spec is None:
            return True
        if self._spec.match_file(as_text(path) + ("/" if is_dir else "")):
            self.matched = True
            return True
        return False


@dataclass(slots=True)
class _Held:
    remote: Entry
    local: Entry | None
    restored: bool = False


class Parents:
    """Directories of the backup held until something below them is selected."""

    def __init__(self) -> None:
        self._stack: list[_Held] = []

    def _unwind(self, path: bytes) -> None:
        stack = self._stack
        while stack and not path.startswith(stack[-1].remote.path + b"/"):
            stack.pop()

    def hold(self, remote: Entry, local: Entry | None) -> None:
        """`remote` (not selected) is passed: keep it if it is a directory."""
        self._unwind(remote.path)
        if remote.kind == DIR:
            self._stack.append(_Held(remote, local))

    def above(self, path: bytes) -> list[tuple[Entry, Entry | None]]:
        """The held directories above `path` not restored yet, top first; they count as
        restored from now on."""
        self._unwind(path)
        due = [(held.remote, held.local) for held in self._stack if not held.restored]
        for held in self._stack:
            held.restored = True
        return due

    def selected_dir(self, remote: Entry, local: Entry | None) -> None:
        """`remote` was selected: a directory among the held ones (restored)."""
        self._unwind(remote.path)
        if remote.kind == DIR:
            self._stack.append(_Held(remote, local, restored=True))


class Extras:
    """Paths in DST the backup doesn't have (path order), and their removal."""

    def __init__(self) -> None:
        # (path, is a directory, size); memory: one tuple per extra path
        self.found: list[tuple[bytes, bool, int]] = []

    def add(self, local: Entry) -> None:
        if TMP_MARK not in local.path.rpartition(b"/")[2]:
            is_dir = local.kind == DIR
            self.found.append((local.path, is_dir, 0 if is_dir else local.size))

    def remove(self, fds: DirFds) -> list[tuple[bytes, str]]:
        """Remove them, children before their directories; returns (path, why) of each
        that could not be removed. A directory still holding something (a file that
        could not go, or one written since the scan) stays."""
        failed: list[tuple[bytes, str]] = []
        for path, is_dir, _ in reversed(self.found):
            try:
                with fds.parent(path) as (dir_fd, name):
                    if is_dir:
                        os.rmdir(name, dir_fd=dir_fd)
                    else:
                        os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                reason = "not empty" if exc.errno == errno.ENOTEMPTY else \
                    exc.strerror or str(exc)
                failed.append((path, reason))
        return failed
