"""The AWS CLI in its own venv, so it never shares a botocore with baycat.

Checked on 2026-11-26: aiobotocore 3.10 pins botocore < 1.43.118, and awscli 1.46.x
(the current release) vendors its own botocore as `awscli.botocore`, so today the two
would coexist in one venv; older awscli releases pin an exact botocore and would move
baycat's. A separate venv (created once, reused) keeps that from ever mattering.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_INSTALL_TIMEOUT_S = 600


def ensure_awscli(venv: Path, spec: str = "awscli") -> tuple[Path | None, str]:
    """Create `venv` with the AWS CLI if it isn't there; returns (aws executable or None,
    a log line)."""
    aws = venv / "bin" / "aws"
    if aws.exists():
        return aws, f"reused {venv}"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True, timeout=_INSTALL_TIMEOUT_S)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", spec],
                       check=True, capture_output=True, timeout=_INSTALL_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return None, f"could not install {spec} into {venv}: {exc} {detail[-500:]!r}"
    return (aws if aws.exists() else None), f"installed {spec} into {venv}"
