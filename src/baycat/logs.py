"""Logging set-up for the CLI, and the scrubbing that keeps secrets out of every output.

`--log-level` (or `BAYCAT_LOGLEVEL`) sets the level of baycat's and botocore's loggers;
records go to stderr, or to `--log-file`. At DEBUG botocore logs request headers and
URLs: every record, error message and `--json` string passes through `redact`, which
removes access keys, secret keys, session tokens, request signatures, Authorization
headers and the query strings of pre-signed URLs: by value for the keys in use (from the
environment, and whatever botocore resolved: `remember_secrets`), and by pattern in
every form botocore prints them (header dicts with bytes values, `name: value` lines,
config text, XML error bodies).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

LEVELS = ("debug", "info", "warning", "error", "critical")
REDACTED = "<redacted>"

# What may stand between a secret's name and its value: the quote closing the name, `=`
# or `:`, and the quote opening the value, maybe a bytes repr's (botocore logs signed
# headers as `{'X-Amz-Security-Token': b'...', 'Authorization': b'...'}`).
_SEP = r"""['"]?\s*[=:]\s*(?:b?['"])?"""
_PATTERNS = [
    # Authorization headers in every form: the whole value, to the closing quote or EOL.
    re.compile(rf"(\bAuthorization{_SEP})[^'\"\n]+", re.I),
    # the signature schemes wherever they appear on their own
    re.compile(r"(AWS4-HMAC-SHA256\s+)[^'\"\n]*", re.I),
    re.compile(r"(AWS\s+)[A-Z0-9]{16,}:[A-Za-z0-9+/=]+"),
    # headers, canonical-request lines and pre-signed URL parameters
    re.compile(rf"(\b(?:X-Amz-(?:Signature|Credential|Security-Token)|Signature|Credential"
               rf"|AWSAccessKeyId){_SEP})[^&\s'\",}}]+", re.I),
    # names of secrets followed by a value: aws_session_token = ..., "SessionToken": "..."
    re.compile(rf"(\b(?:aws_)?(?:secret_access_key|session_token|security_token|access_key_id"
               rf"|SecretAccessKey|SessionToken|AccessKeyId){_SEP})[^\s'\",}}]+", re.I),
    # the same in XML (S3 error bodies echo the key id, the string to sign...)
    re.compile(r"(<(AWSAccessKeyId|AccessKeyId|SecretAccessKey|SessionToken|Signature"
               r"|SignatureProvided|StringToSign(?:Bytes)?|CanonicalRequest(?:Bytes)?)>)"
               r"[^<]*(?=</\2>)"),
    # a user name and password in a URL: scheme://user:password@host
    re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@'\"]+(?=@)", re.I),
    # AWS access key ids
    re.compile(r"()\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b"),
]
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
               "AWS_ACCESS_KEY_ID")

_known: set[str] = set()


def remember_secrets(values: Iterable[str | None]) -> None:
    """Literal secrets to scrub wherever they appear (e.g. the credentials in use)."""
    for value in values:
        if value and len(value) >= 6:
            _known.add(value)


def remember_env_secrets(env: Mapping[str, str] = os.environ) -> None:
    remember_secrets(env.get(name) for name in _SECRET_ENV)


def redact(text: str) -> str:
    """`text` with every secret it may hold replaced by `<redacted>`."""
    for secret in _known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact_json(doc: Any) -> Any:
    """A JSON value with every string in it redacted."""
    if isinstance(doc, str):
        return redact(doc)
    if isinstance(doc, dict):
        return {k: redact_json(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [redact_json(v) for v in doc]
    return doc


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
