"""baycat's state directory in a tree, `DIR/.baycat/`: the one rule for trusting it.

sync keeps its state in SRC/.baycat, `manifest create/update` in DIR/.baycat, restore in
DST/.baycat: the local manifest, its lock, the remote manifest's cache and the last-sync
markers. That state is written by path, so the directory must be what it seems:

- not a symlink: whoever planted one would choose where baycat writes;
- a directory;
- owned by the user running baycat: another user could read or swap what is in it.

Anything else is refused (StateDirError, exit code 3) before anything is written there.
A missing state directory is created 0700, and an existing one loses any group and other
permission bits (state is 0600 in 0700 directories: private.py).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from baycat.dirfd import NotReal, open_node
from baycat.errors import StateDirError, UsageError
from baycat.manifest.file import STATE_DIRNAME, remove_stale_temps
from baycat.private import mkdir_private


def state_dir_of(tree: Path) -> Path:
    return tree / os.fsdecode(STATE_DIRNAME)


def ensure_state_dir(tree: Path) -> Path:
    """Create or check `tree`/.baycat and return its path. Raises StateDirError when it
    is a symlink, not a directory or another user's; UsageError when it can't be made."""
    path = state_dir_of(tree)
    try:
        mkdir_private(path)
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from None
    try:
        fd, handle = open_node(os.fsencode(path), None, directory=True)
    except NotReal:
        what = "a symlink" if os.path.islink(path) else "not a directory"
        raise StateDirError(f"{path} is {what}: refusing it as baycat's state directory "
                            "(baycat never writes its state through a link)") from None
    except OSError as exc:
        raise StateDirError(f"cannot open {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise StateDirError(
                f"{path} belongs to uid {st.st_uid}, not to the user running baycat "
                f"(uid {os.geteuid()}): refusing it as baycat's state directory")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:  # made by an older baycat, under the umask
            os.chmod(handle, mode & 0o700)
    finally:
        os.close(fd)
    return path


def remote_cache_path(state_dir: Path, url: str) -> Path:
    """Where the cache of the remote manifest at `url` lives; its `.synced` marker and
    `.uploads` journal sit beside it."""
    return state_dir / "remote" / hashlib.sha256(url.encode()).hexdigest()[:24]


def remove_stale_state(state_dir: Path) -> None:
    """Blocking: the temp files killed runs left in a tree's state directory and in its
    caches' directory. Only under the tree's lock (no other baycat writes there)."""
    remove_stale_temps(state_dir)
    remove_stale_temps(remote_cache_path(state_dir, "").parent)
