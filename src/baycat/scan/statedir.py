"""baycat's state directory: `DIR/.baycat/`, or a per-user one; the one rule for
trusting it.

sync keeps its state in SRC/.baycat, `manifest create/update` in DIR/.baycat, restore in
DST/.baycat: the local manifest, its lock, the remote manifest's cache and the last-sync
markers. A source that can't hold it (a read-only snapshot, a tree the user may not
write) keeps it in a per-user directory instead, as does every source when one is chosen
(`--state-dir`): `BASE/<hash of the job>/`, BASE by default `~/.local/state/baycat`.
The job is what the state describes: a sync's is its destination (a snapshot is mounted
at a new path each night, so a key made of the source path would lose the last night's
state), a manifest's is its tree.

That state is written by path, so the directory must be what it seems:

- not a symlink: whoever planted one would choose where baycat writes;
- a directory;
- owned by the user running baycat: another user could read or swap what is in it.

Anything else is refused (StateDirError, exit code 3) before anything is written there.
A missing state directory is created 0700, and an existing one loses any group and other
permission bits (state is 0600 in 0700 directories: private.py).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from baycat.dirfd import NotReal, open_node
from baycat.errors import BaycatError, StateDirError, StateWriteError, UsageError
from baycat.manifest.file import DEFAULT_FILENAME, STATE_DIRNAME, ManifestReader, remove_stale_temps
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
    _check_private_dir(path)
    return path


# mkdir errors that say "not here" (read-only filesystem, no write permission), not "broken".
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def tree_state_dir(tree: Path) -> Path | None:
    """`tree`/.baycat created or checked as `ensure_state_dir` does; None when the tree
    can't hold it (a read-only filesystem, a directory the user may not write), so that
    the state goes to the per-user directory instead. A .baycat that is there but wrong
    (a symlink, another user's) is still refused, on a writable filesystem."""
    try:
        if os.statvfs(tree).f_flag & os.ST_RDONLY:
            return None  # a snapshot: an old .baycat in it is last night's, read-only
    except OSError:
        pass  # the checks below report what is wrong
    path = state_dir_of(tree)
    try:
        mkdir_private(path)
    except OSError as exc:
        if exc.errno in _NOT_WRITABLE:
            return None
        raise UsageError(f"cannot create {path}: {exc.strerror}") from None
    # One that exists on a writable filesystem is the tree's state: when it can't be
    # written (chmod), that is an error to report (exit 3), not a reason to start afresh.
    _check_private_dir(path)
    return path


def job_state_dir(base: Path, job: str) -> Path:
    """Create or check the per-user state directory of `job` below `base` (both private
    and checked as a tree's .baycat is). StateWriteError when it can't be made."""
    path = base / job_dir_name(job)
    for directory in (base, path):
        try:
            mkdir_private(directory, parents=True)
        except OSError as exc:
            raise StateWriteError.of("create the state directory", directory, exc) from None
        # A base the user named may be shared on purpose (modes left alone: chmod of
        # /tmp would break it); the job's directory is what must be private.
        _check_private_dir(directory, tighten=directory is path)
    if not os.access(path, os.W_OK):
        raise StateWriteError(f"cannot write the state directory {path}: permission denied")
    return path


def job_dir_name(job: str) -> str:
    return hashlib.sha256(job.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def default_user_base() -> Path:
    """The per-user base when the caller names none: ~/.local/state/baycat (the CLI
    passes $XDG_STATE_HOME/baycat when that is set)."""
    return Path.home() / ".local" / "state" / "baycat"


def choose_state_dir(tree: Path, job: str, explicit: Path | None,
                     user_base: Path | None) -> Path:
    """Where a run on `tree` keeps its state: below `explicit` when given, else
    `tree`/.baycat, else (a tree that can't hold it) below `user_base`."""
    if explicit is None:
        in_tree = tree_state_dir(tree)
        if in_tree is not None:
            return in_tree
    return job_state_dir(explicit or user_base or default_user_base(), job)


def sync_job(url: str) -> str:
    """A sync's job: its destination (see the module docstring)."""
    return "sync " + url


def tree_job(tree: Path) -> str:
    """The job of `manifest create/update` and `verify --local`: the tree."""
    return "tree " + os.fsdecode(os.fsencode(tree))


def _check_private_dir(path: Path, tighten: bool = True) -> None:
    """Refuse `path` as a state directory unless it is a real directory of the user
    running baycat; take away group and other bits it may have (`tighten`)."""
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
        if mode & 0o077 and tighten:  # made by an older baycat, under the umask
            os.chmod(handle, mode & 0o700)
    finally:
        os.close(fd)


def remote_cache_path(state_dir: Path, url: str) -> Path:
    """Where the cache of the remote manifest at `url` lives; its `.synced` marker and
    `.uploads` journal sit beside it."""
    return state_dir / "remote" / hashlib.sha256(url.encode()).hexdigest()[:24]


def keys_cache_path(state_dir: Path, url: str) -> Path:
    """Where the keys object of the encrypted backup at `url` is cached."""
    cache = remote_cache_path(state_dir, url)
    return cache.with_name(cache.name + ".keys")


def remove_stale_state(state_dir: Path) -> None:
    """Blocking: the temp files killed runs left in a tree's state directory and in its
    caches' directory. Only under the tree's lock (no other baycat writes there)."""
    remove_stale_temps(state_dir)
    remove_stale_temps(remote_cache_path(state_dir, "").parent)


def find_manifest(tree: Path, explicit: Path | None, user_base: Path | None) -> Path | None:
    """Blocking, writes nothing: the local manifest that describes `tree`, for
    `verify --local`: `tree`/.baycat/manifest (unless `explicit`), else the one of the
    tree's own job below the base, else the newest below the base whose header names
    `tree` as its source (a sync's state is keyed by its destination). None: none."""
    candidates = [] if explicit is not None else [state_dir_of(tree) / DEFAULT_FILENAME]
    base = explicit or user_base or default_user_base()
    own = job_dir_name(tree_job(tree))
    candidates.append(base / own / DEFAULT_FILENAME)
    for path in candidates:
        if path.is_file():
            return path
    newest: tuple[int, Path] | None = None
    try:
        jobs = sorted(base.iterdir())
    except OSError:
        return None
    for job in jobs:
        path = job / DEFAULT_FILENAME
        try:
            with ManifestReader(path) as reader:
                if reader.root.source == str(tree) and (
                        newest is None or reader.root.created_ns > newest[0]):
                    newest = (reader.root.created_ns, path)
        except (OSError, BaycatError):
            continue
    return newest[1] if newest is not None else None
