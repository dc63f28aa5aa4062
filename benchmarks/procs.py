"""Run one command: wall time, exit code, peak RSS, with a timeout and no stragglers.

The child runs in its own session (process group) under GNU `time -f %M`, which reports
`ru_maxrss` from its own `wait4` of the tool: the peak RSS of the tool, or of any
descendant it reaped itself, whichever is larger. Not our own `os.wait4`: Linux keeps
the high-water RSS across `exec`, so a child forked from this ~100 MB harness would
report at least the harness's size (GNU time is a 1 MB C program). Without
/usr/bin/time, our own `wait4` figure is reported and flagged. A child still running at the
deadline has its whole group killed (SIGTERM, 3 s grace, SIGKILL) and is reported as
timed out; the group is always swept with SIGKILL once the child is reaped.

Optionally the command runs under `strace` (see `fileio`) to count bytes read from
local files; such runs are for counting, never for timing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_GRACE_S = 3.0
_TAIL = 4000
STRACE_SYSCALLS = "read,pread64,readv,preadv,preadv2,sendfile,copy_file_range,mmap"


@dataclass(frozen=True, slots=True)
class RunResult:
    argv: list[str]
    exit_code: int | None  # None: did not start, or killed at the deadline
    wall_s: float
    peak_rss_kib: int
    timed_out: bool = False
    stdout: str = ""
    stderr_tail: str = ""
    error: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def failure(self) -> str:
        """Why the run failed, in one line ('' if it didn't)."""
        if self.error:
            return self.error
        if self.timed_out:
            return f"timed out after {self.wall_s:.0f} s"
        if self.exit_code != 0:
            last = self.stderr_tail.strip().splitlines()[-1:] or [""]
            return f"exit {self.exit_code}: {last[0][:300]}"
        return ""


TIME = "/usr/bin/time"


def strace_available() -> bool:
    return shutil.which("strace") is not None


def strace_argv(argv: list[str], log: Path, *, opens: bool = False) -> list[str]:
    """`argv` under strace, logging read-family syscalls with the fd's path (`-y`);
    with `opens`, the open calls too (for "files opened", `fileio.parse_strace`)."""
    calls = STRACE_SYSCALLS + (",open,openat,openat2" if opens else "")
    return ["strace", "-f", "-qq", "--seccomp-bpf", "-y", "-s", "0",
            "-e", f"trace={calls}", "-o", str(log), "--", *argv]


def run(argv: list[str], env: dict[str, str], *, timeout_s: float, workdir: Path,
        cwd: Path | None = None, discard_stdout: bool = False) -> RunResult:
    """Run `argv` to completion (or the deadline). stdout/stderr go to files in
    `workdir` (no pipes to drain, so a chatty tool can't block on us), or stdout to
    /dev/null with `discard_stdout`."""
    workdir.mkdir(parents=True, exist_ok=True)
    out_path = Path(os.devnull) if discard_stdout else workdir / "stdout.txt"
    err_path = workdir / "stderr.txt"
    rss_path = workdir / "maxrss.txt"
    rss_path.unlink(missing_ok=True)
    use_time = os.access(TIME, os.X_OK)
    full_argv = [TIME, "-f", "%M", "-o", str(rss_path), "--", *argv] if use_time else argv
    timed_out = threading.Event()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(full_argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, cwd=cwd, start_new_session=True)
        except OSError as exc:
            return RunResult(argv, None, 0.0, 0, error=f"cannot start: {exc}")
        timer = threading.Timer(timeout_s, _expire, (proc.pid, timed_out))
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
        finally:
            timer.cancel()
            _killpg(proc.pid, signal.SIGKILL)
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # reaped by wait4: keep Popen from waiting again
    stdout = "" if discard_stdout else out_path.read_text(errors="replace")
    stderr = err_path.read_bytes()[-_TAIL:].decode(errors="replace")
    # CPU of the tool and every descendant it reaped (wait4 sums them): less sensitive to
    # a busy machine than wall time.
    extra: dict[str, object] = {"cpu_s": usage.ru_utime + usage.ru_stime}
    rss = _time_maxrss(rss_path) if use_time else None
    if rss is None:
        rss = usage.ru_maxrss
        extra["rss_includes_harness_fork"] = True
    return RunResult(argv, None if timed_out.is_set() else code, wall, rss,
                     timed_out=timed_out.is_set(), stdout=stdout[-1_000_000:],
                     stderr_tail=stderr, extra=extra)


def _time_maxrss(path: Path) -> int | None:
    """The %M figure GNU time wrote (its last line; earlier lines may say
    "Command exited with non-zero status")."""
    try:
        lines = path.read_text().split()
        return int(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def _expire(pid: int, flag: threading.Event) -> None:
    flag.set()
    _killpg(pid, signal.SIGTERM)
    time.sleep(_GRACE_S)
    _killpg(pid, signal.SIGKILL)


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
