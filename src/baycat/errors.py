"""The one exception hierarchy of baycat, and the exit code each error maps to.

    BaycatError                      exit code
    ├── UsageError                   2  bad arguments, missing or wrong source, unsafe destination
    ├── ManifestError                3  a manifest that is corrupt, truncated or from a newer format
    │   └── ManifestFormatError      3  a manifest written by a newer baycat
    ├── RemoteError                  3  the store refused or could not be reached
    │   ├── CredentialsError         3  no credentials or wrong ones
    │   ├── BucketMissingError       3  the bucket does not exist
    │   ├── ConflictError            3  another writer committed first and merging failed
    │   └── UnversionedError         3  --require-versioning, and the bucket keeps no versions
    ├── LockedError                  4  another baycat holds the tree's lock: nothing was done
    ├── StateDirError                3  DIR/.baycat is a symlink, not a directory, or not ours
    ├── StateWriteError              3  baycat's own state (DIR/.baycat: manifest, cache, lock,
    │                                   markers) can't be written: disk full, read-only, denied
    └── Interrupted                  130  SIGINT / SIGTERM

Exit codes 1 and 5 are not exceptions: 1 means the run completed but some files failed
(`ExitCode.PARTIAL`); 5 that a safety limit refused a step (`ExitCode.REFUSED`, e.g. the
delete step over `--max-delete`), reported in the summary.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the `baycat` command; documented in README and `--help`."""

    OK = 0
    PARTIAL = 1  # completed, but some files failed (listed in the summary)
    USAGE = 2
    REMOTE = 3  # remote, credential, manifest, state directory or conflict error,
    #             or local state that can't be written
    LOCKED = 4  # another baycat holds this tree's lock: nothing was done (a scheduler skips)
    REFUSED = 5  # a safety limit refused the run or a step of it (--max-delete: the deletes,
    #              the rest is committed; --max-changes); said in the summary
    INTERRUPTED = 130


class BaycatError(Exception):
    """Base class: every error baycat raises on purpose. `str()` is a one-line message."""

    exit_code: ExitCode = ExitCode.REMOTE


class UsageError(BaycatError):
    exit_code = ExitCode.USAGE


class ManifestError(BaycatError):
    exit_code = ExitCode.REMOTE


class ManifestFormatError(ManifestError):
    pass


class RemoteError(BaycatError):
    exit_code = ExitCode.REMOTE


class CredentialsError(RemoteError):
    pass


class BucketMissingError(RemoteError):
    pass


class ConflictError(RemoteError):
    pass


class UnversionedError(RemoteError):
    """--require-versioning against a store that keeps no old versions."""


class LockedError(BaycatError):
    """Another baycat holds the lock: this run did nothing (a scheduler skips it, where
    it alerts on the other failures)."""

    exit_code = ExitCode.LOCKED


class StateDirError(BaycatError):
    """baycat's state directory can't be trusted (see statedir.py)."""

    exit_code = ExitCode.REMOTE


class StateWriteError(BaycatError):
    """Writing the local manifest, the remote-manifest cache, the lock or a marker failed
    (the message names the file and the reason). What was committed to the store stays
    committed; the old local files are intact."""

    exit_code = ExitCode.REMOTE

    @classmethod
    def of(cls, doing: str, path: object, exc: OSError) -> StateWriteError:
        """`of("write", path, exc)`: "cannot write PATH: No space left on device"."""
        return cls(f"cannot {doing} {path}: {exc.strerror or exc}")


class Interrupted(BaycatError):
    exit_code = ExitCode.INTERRUPTED


def first_of(group: BaseExceptionGroup[BaseException],
             kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of one of `kinds` in a (nested) exception group: what a task
    group raised, as the one error that matters to its caller."""
    for exc in group.exceptions:
        inner = first_of(exc, kinds) if isinstance(exc, BaseExceptionGroup) else exc
        if inner is not None and isinstance(inner, kinds):
            return inner
    return None
