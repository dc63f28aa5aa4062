"""Running the real `baycat` command in a subprocess, as a user or cron would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_baycat(*args: str | Path | bytes, check: int | None = 0, env: dict[str, str] | None = None,
               preexec_fn: Callable[[], None] | None = None, timeout: float = 120,
               cwd: Path | None = None,
               input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "baycat", *(os.fsdecode(a) if isinstance(a, bytes) else str(a)
                                            for a in args)]
    full_env = {**os.environ, **(env or {})}
    if "BAYCAT_TEST_LOGLEVEL" in full_env:  # e.g. BAYCAT_TEST_LOGLEVEL=debug pytest ...
        full_env.setdefault("BAYCAT_LOGLEVEL", full_env["BAYCAT_TEST_LOGLEVEL"])
    proc = subprocess.run(cmd, capture_output=True, env=full_env, timeout=timeout,
                          preexec_fn=preexec_fn, cwd=cwd, input=input)
    if check is not None and proc.returncode != check:
        raise AssertionError(
            f"baycat {args} exited {proc.returncode}, expected {check}\n"
            f"stdout: {proc.stdout.decode(errors='replace')}\n"
            f"stderr: {proc.stderr.decode(errors='replace')}"
        )
    return proc


def manifest_json(directory: Path, manifest: Path | None = None) -> tuple[dict[str, Any],
                                                                            list[dict[str, Any]]]:
    args: list[str | Path] = ["manifest", "show", "--json", directory]
    if manifest is not None:
        args += ["-m", manifest]
    lines = run_baycat(*args).stdout.decode().splitlines()
    docs = [json.loads(line) for line in lines]
    return docs[0], docs[1:]


def path_bytes(doc: dict[str, Any]) -> bytes:
    if "path_hex" in doc:
        return bytes.fromhex(doc["path_hex"])
    return os.fsencode(doc["path"])


PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
NOBODY = 65534


def drop_dac_override() -> None:
    """preexec_fn: the child (root in CI) loses the power to bypass file permissions.

    Dropped from the capability bounding set, so the exec'd interpreter never gets them:
    files owned by someone else with mode 000 are then as unreadable to it as to anyone.
    A no-op for a non-root user, for whom chmod alone does it.
    """
    if os.geteuid() != 0:
        return
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def lock_out(path: Path, mode: int = 0o000) -> None:
    """Make `path` inaccessible to a process that ran drop_dac_override()."""
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    path.chmod(mode)
