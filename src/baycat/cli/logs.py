"""Logging set-up for one CLI run: levels, stderr lines and the log file, all redacted.

`--log-level` (or `BAYCAT_LOGLEVEL`) sets the level of baycat's and botocore's loggers;
records go to stderr, or to `--log-file`. At DEBUG botocore logs request headers and
URLs; every record passes through `redact` (baycat/redact.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from baycat.redact import redact, remember_env_secrets

LEVELS = ("debug", "info", "warning", "error", "critical")


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _WriteHandler(logging.Handler):
    """Writes `baycat: warning: ...` lines through `write` (the CLI's console, which
    keeps them above the live display)."""

    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__()
        self._write = write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = redact(record.getMessage())
            if record.exc_info:
                message += "\n" + redact(logging.Formatter().formatException(record.exc_info))
            self._write(f"baycat: {record.levelname.lower()}: {message}")
        except Exception:
            self.handleError(record)


def setup_logging(level: str | None, log_file: Path | None,
                  write: Callable[[str], None], quiet: bool = False) -> None:
    """Configure the `baycat` and botocore loggers for one CLI run.

    `write` (stderr) gets records at `level` (default: warning), but never below
    warning when there is a log file, and only errors with `quiet`. The log file gets
    every record at `level`, with timestamps.
    """
    remember_env_secrets()
    name = (level or "warning").lower()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    numeric: int = getattr(logging, name.upper())
    handlers: list[logging.Handler] = []
    console = _WriteHandler(write)
    console.setLevel(logging.ERROR if quiet
                     else max(numeric, logging.WARNING) if log_file else numeric)
    handlers.append(console)
    if log_file is not None:
        try:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot open log file {log_file}: {exc.strerror}") from None
        file_handler.setFormatter(RedactingFormatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
        file_handler.setLevel(numeric)
        handlers.append(file_handler)
    for logger_name in ("baycat", "botocore", "aiobotocore"):
        logger = logging.getLogger(logger_name)
        logger.handlers[:] = handlers
        # botocore is chatty at INFO; only DEBUG opens it up.
        logger.setLevel(numeric if logger_name == "baycat" or numeric <= logging.DEBUG
                        else max(numeric, logging.WARNING))
        logger.propagate = False
