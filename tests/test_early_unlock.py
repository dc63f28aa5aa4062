"""An encrypted sync's key derivation started from its arguments, before the app loads
(cli/early_unlock.py, issue 17): the reading of the arguments agrees with the command's
own, it never takes what the command reads itself (a pipe), and a wrong guess or a wrong
password changes nothing but time."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import typer.main

from baycat.cli import early_unlock
from baycat.cli.early_unlock import FLAGS, VALUE_OPTIONS, SyncGuess, read_password_file
from baycat.cli.main import make_app
from baycat.store import unlock_ahead
from baycat.store.encryption import Encryption, Secret
from tests.cli_helpers import run_baycat


def test_the_option_lists_are_sync_s_own() -> None:
    command = typer.main.get_command(make_app("sync"))
    sync = getattr(command, "commands", {}).get("sync", command)
    takes_value: set[str] = set()
    flags: set[str] = set()
    for param in sync.params:
        if param.param_type_name != "option":
            continue
        names = {*param.opts, *param.secondary_opts}
        (flags if getattr(param, "is_flag", False) else takes_value).update(names)
    assert takes_value == VALUE_OPTIONS
    assert flags == FLAGS


@pytest.mark.parametrize(("args", "expected"), [
    (["--password-file", "pw", "src", "s3://b/p/"], SyncGuess("src", "s3://b/p/", "pw")),
    (["src", "--transfers", "8", "-q", "dst", "--password-file=pw"],
     SyncGuess("src", "dst", "pw")),
    (["--exclude", "--password-file", "src", "dst"], None),  # a value, not the option
    (["--password-file", "a", "--password-file", "b", "src", "dst"],
     SyncGuess("src", "dst", "b")),  # click: the last one
    (["--password-file", "pw", "--", "-src", "dst"], SyncGuess("-src", "dst", "pw")),
    (["--password-file", "pw", "src"], None),  # one operand
    (["--password-file", "pw", "a", "b", "c"], None),
    (["--password-file", "pw", "--future-option", "src", "dst"], None),
    (["--password-file", "pw", "-qv", "src", "dst"], None),  # combined short flags
    (["--password-file", "pw", "--delete=yes", "src", "dst"], None),
    (["--password-file", "pw", "--encrypt", "src", "dst"], None),  # no keys object yet
    (["--key-file", "k", "src", "dst"], None),
    (["--password-file", "pw", "--job", "nightly"], None),
    (["--password-file", "pw", "--state-dir", "/var/lib/baycat", "src", "dst"], None),
    (["src", "dst"], None),  # no password file
    (["src", "dst", "--transfers"], None),  # a value missing
])
def test_sync_arguments_are_read_as_typer_reads_them(args: list[str],
                                                     expected: SyncGuess | None) -> None:
    assert early_unlock.read_sync_args(args, {}) == expected


def test_the_environment_gives_the_password_file_or_rules_the_guess_out() -> None:
    env = {"BAYCAT_PASSWORD_FILE": "pw"}
    assert early_unlock.read_sync_args(["s", "d"], env) == SyncGuess("s", "d", "pw")
    assert early_unlock.read_sync_args(["--password-file", "x", "s", "d"], env) == \
        SyncGuess("s", "d", "x")
    assert early_unlock.read_sync_args(["s", "d"], {**env, "BAYCAT_KEY_FILE": "k"}) is None
    assert early_unlock.read_sync_args(["s", "d"], {**env, "BAYCAT_ENCRYPT": "1"}) is None
    assert early_unlock.read_sync_args(["s", "d"], {**env, "BAYCAT_STATE_DIR": "/x"}) is None


def test_a_password_is_read_early_only_from_a_regular_file(tmp_path: Path) -> None:
    regular = tmp_path / "pw"
    regular.write_bytes(b"hunter2\r\nsecond line\n")
    assert read_password_file(str(regular)) == Secret("password", b"hunter2")
    (tmp_path / "empty").write_bytes(b"\n")
    assert read_password_file(str(tmp_path / "empty")) is None
    assert read_password_file(str(tmp_path / "missing")) is None
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer_opened = threading.Event()
    wrote: list[bytes] = []

    def write() -> None:
        try:
            with open(fifo, "wb") as f:  # blocks until a reader opens the pipe
                writer_opened.set()
                f.write(b"from the pipe\n")
                wrote.append(b"all")
        except BrokenPipeError:
            wrote.append(b"broken")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert read_password_file(str(fifo)) is None
    # The pipe was not even opened: the writer still waits for the command's reader.
    assert not writer_opened.wait(0.5)
    with open(fifo, "rb") as f:
        assert f.read() == b"from the pipe\n"
    writer.join(10)
    assert wrote == [b"all"]


def test_start_takes_over_the_early_derivation_of_the_same_secret_only(tmp_path: Path) -> None:
    secret = Secret("password", b"one")
    unlock_ahead.start_early(lambda: None, secret)
    try:
        taken = unlock_ahead.start(Encryption(secret), tmp_path / "cache")
        assert taken.ahead is not None
        assert taken.ahead.result(10) == unlock_ahead.Unlocked()  # no cache: nothing found
        other = unlock_ahead.start(Encryption(Secret("password", b"two")), tmp_path / "c")
        assert other.ahead is not None and other.ahead is not taken.ahead
        again = unlock_ahead.start(Encryption(secret), tmp_path / "cache")
        assert again.ahead is not taken.ahead  # taken over once
    finally:
        unlock_ahead._early.clear()


# The command run as the console script runs it, reporting whether the derivation
# started early and whether the store took it over.
_REPORTING_MAIN = """
import atexit, sys
from baycat.store import unlock_ahead
started = []
real = unlock_ahead.start_early
def start_early(find_cache, secret):
    started.append(secret)
    real(find_cache, secret)
unlock_ahead.start_early = start_early
atexit.register(lambda: print(f"early={len(started)} left={len(unlock_ahead._early)}",
                              file=sys.stderr))
sys.argv = ["baycat", *sys.argv[1:]]
from baycat.cli import main
main()
"""


def _sync(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-c", _REPORTING_MAIN, "sync", *map(str, args)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "XDG_CONFIG_HOME": "/nonexistent",
                               **(env or {})})
    return proc.returncode, proc.stderr


@pytest.fixture
def encrypted_backup(tmp_path: Path) -> tuple[Path, Path, Path]:
    src, dst, password = tmp_path / "src", tmp_path / "backup", tmp_path / "pw"
    src.mkdir()
    (src / "a.txt").write_bytes(b"contents")
    password.write_bytes(b"correct horse\n")
    run_baycat("sync", "-q", "--encrypt", "--password-file", password, src, dst)
    return src, dst, password


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_a_no_change_sync_uses_the_derivation_started_early(
        encrypted_backup: tuple[Path, Path, Path]) -> None:
    src, dst, password = encrypted_backup
    code, err = _sync("-q", "--password-file", password, src, dst)
    assert code == 0, err
    assert "early=1 left=0" in err  # started before the app, taken over by the store
    code, err = _sync("-q", src, dst, env={"BAYCAT_PASSWORD_FILE": str(password)})
    assert code == 0, err
    assert "early=1 left=0" in err


def test_a_wrong_password_still_fails_and_writes_nothing(
        encrypted_backup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    src, dst, _ = encrypted_backup
    (src / "b.txt").write_bytes(b"new file: the run would upload it")
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"not the password\n")
    before = _tree(dst)
    code, err = _sync("-q", "--password-file", wrong, src, dst)
    assert code == 3, err
    assert "early=1" in err
    assert _tree(dst) == before


def test_a_password_from_a_pipe_reaches_the_command_whole(
        encrypted_backup: tuple[Path, Path, Path]) -> None:
    src, dst, password = encrypted_backup
    read_fd, write_fd = os.pipe()
    os.write(write_fd, password.read_bytes())
    os.close(write_fd)
    proc = subprocess.run([sys.executable, "-c", _REPORTING_MAIN, "sync", "-q",
                           "--password-file", f"/dev/fd/{read_fd}", str(src), str(dst)],
                          capture_output=True, text=True, timeout=120, pass_fds=(read_fd,),
                          env={**os.environ, "XDG_CONFIG_HOME": "/nonexistent"})
    os.close(read_fd)
    assert proc.returncode == 0, proc.stderr
    assert "early=0" in proc.stderr  # left to the command, which read it
