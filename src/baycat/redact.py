"""The scrubbing that keeps secrets out of every output.

Every log record (cli/logs.py), error message and `--json` string passes through
`redact`, which removes access keys, secret keys, session tokens, request signatures, Authorization
headers and the query strings of pre-signed URLs: by value for the keys in use (from the
environment, and whatever botocore resolved: `remember_secrets`), and by pattern in
every form botocore prints them (header dicts with bytes values, `name: value` lines,
config text, XML error bodies).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

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
