"""The key derivation of an encrypted `baycat sync` started from its arguments alone,
before the app loads (issue 17).

scrypt takes 0.2-0.3 s of CPU. api.sync starts it (store/unlock_ahead.py) once typer,
the options and the first engine modules have loaded, 0.1-0.2 s in; a no-change sync of
a few thousand files is done about then, so it waited for the rest and took up to 1.4x
a plain one. Started here, a few milliseconds in, it runs on the second core beside
all of that start-up.

It is a guess that can only cost CPU, never change a result: the arguments are read
with `sync`'s grammar (the options that take a value are listed here, and a test checks
the lists against the command), and whatever this reading is not sure of starts
nothing: an option it does not know, a key file, --encrypt (no keys object yet), a
password that is not in a regular file (a pipe is read once, by the command), not
exactly two operands, a source that is not a local directory. The command resolves its
secret itself; `unlock_ahead.start` takes this derivation over only for the same
secret, and the store uses its key only if it came from the very keys object the store
reads. `main()` (cli/__init__.py) calls this only where commands.command_position
trusts the command name (no config file, nothing unusual before it).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from baycat.store.encryption import Secret, password_line

# sync's options that take a value, and its flags (tests/test_early_unlock.py checks
# both against the command's parameters).
VALUE_OPTIONS = frozenset((
    "--max-delete", "--max-changes", "--object-lock-days", "--object-lock-mode",
    "--pool-size", "--transfers", "--password-file", "--key-file", "--endpoint-url",
    "--region", "--profile", "--ca-bundle", "--storage-class", "--sse", "--sse-kms-key-id",
    "--bwlimit", "--exclude", "--include", "--exclude-from", "--include-from",
    "--exclude-if-present", "--files-from", "--checkpoint-interval", "--checkpoint-bytes",
    "--state-dir", "--manifest", "-m", "--keep-generations", "--retries", "--timeout",
    "--price-file", "--healthcheck-url", "--metrics-file", "--log-level", "--log-file",
    "--config", "--job"))
FLAGS = frozenset((
    "--delete", "--require-versioning", "--dry-run", "--encrypt", "--no-verify-ssl",
    "--clear-filters", "--one-file-system", "-x", "--exclude-caches", "--no-xattrs",
    "--delete-excluded", "--scan-remote", "--verify-commit", "--progress", "--no-progress",
    "--quiet", "-q", "--verbose", "-v", "--json"))
# What rules the guess out: a key (HKDF: nothing to gain), a new backup (no keys object
# yet), a config file's job, a state directory elsewhere than SRC/.baycat.
_GIVE_UP = frozenset(("--key-file", "--encrypt", "--config", "--job", "--state-dir"))
_GIVE_UP_ENV = ("BAYCAT_KEY_FILE", "BAYCAT_ENCRYPT", "BAYCAT_STATE_DIR")
_PASSWORD_FILE_ENV = "BAYCAT_PASSWORD_FILE"
_MAX_PASSWORD_FILE = 1 << 16


@dataclass(frozen=True, slots=True)
class SyncGuess:
    """What `baycat sync ARGS` will most likely open: its operands and password file."""

    source: str
    destination: str
    password_file: str


def read_sync_args(args: Sequence[str], env: Mapping[str, str]) -> SyncGuess | None:
    """`args` (what follows `sync`) read as typer would read them, or None where this
    reading is not certain or there is nothing to derive."""
    operands: list[str] = []
    password_file: str | None = None
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            operands.extend(rest)
            break
        value: str | None
        if arg.startswith("--") and "=" in arg:
            name, _, value = arg.partition("=")
        elif arg in VALUE_OPTIONS:
            name, value = arg, next(rest, None)
            if value is None:
                return None
        elif arg in FLAGS and arg not in _GIVE_UP:
            continue
        elif arg.startswith("-") and arg != "-":
            return None  # unknown, or one this reading gives up on
        else:
            operands.append(arg)
            continue
        if name in _GIVE_UP or name not in VALUE_OPTIONS:
            return None
        if name == "--password-file":
            password_file = value
    if any(env.get(name) for name in _GIVE_UP_ENV) or len(operands) != 2:
        return None
    password_file = password_file or env.get(_PASSWORD_FILE_ENV)
    if not password_file:
        return None
    return SyncGuess(operands[0], operands[1], password_file)


def read_password_file(path: str) -> Secret | None:
    """The password in `path` if it is a regular file (a pipe or a terminal is left for
    the command to read, once); None if it can't be read or is empty. Not even opened
    unless a regular file: opening a named pipe would release a writer waiting for a
    reader, and closing it again would kill that writer (SIGPIPE) before the command
    reads."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        value = password_line(os.read(fd, _MAX_PASSWORD_FILE))
    except OSError:
        return None
    finally:
        os.close(fd)
    return Secret("password", value) if value else None


def keys_cache_of(guess: SyncGuess) -> Path | None:
    """Where api.sync finds the cached keys object for this sync when it keeps its state
    in SRC/.baycat (None: it doesn't, or the source is a read-only snapshot, whose state
    is in the per-user directory: no guess)."""
    from baycat.errors import UsageError
    from baycat.scan.statedir import keys_cache_path, state_dir_of
    from baycat.store.endpoints import LocalEndpoint, parse_endpoint, store_url

    try:
        source, destination = parse_endpoint(guess.source), parse_endpoint(guess.destination)
    except UsageError:
        return None
    url = store_url(destination)
    if not isinstance(source, LocalEndpoint) or url is None:
        return None
    try:
        if os.statvfs(source.path).f_flag & os.ST_RDONLY:
            return None
    except OSError:
        return None
    return keys_cache_path(state_dir_of(source.path), url)


def start(args: Sequence[str], env: Mapping[str, str]) -> bool:
    """Start the derivation for `baycat sync ARGS` if it can be foreseen; True if so."""
    guess = read_sync_args(args, env)
    secret = read_password_file(guess.password_file) if guess is not None else None
    if guess is None or secret is None:
        return False
    from baycat.store.unlock_ahead import start_early

    start_early(lambda: keys_cache_of(guess), secret)
    return True
