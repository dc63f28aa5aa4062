"""What the aiohttp paths (the S3 fast path, `restore https://`) need to reach a server
the way botocore does: the TLS context, the proxy, and the one-line error of a
certificate that fails verification.

The S3 fast path takes its TLS context and proxy from the botocore client it runs
beside (store/s3.py), so both paths of a run use the same CA bundle, verification and
proxy. These helpers are for the cases without a botocore client: the HTTP(S) store,
and deciding whether the fast path may start before botocore.

A certificate that fails verification is not a transient error: it is never retried,
and the message names the host and port and what to do about it.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp

from baycat.errors import RemoteError, UsageError


def env_proxy(url: str) -> str | None:
    """The proxy for `url` from HTTP_PROXY / HTTPS_PROXY / NO_PROXY (and their lower-case
    forms): exactly botocore's rule (`botocore.utils.get_environ_proxies`), which is
    urllib's. None: connect directly."""
    parts = urlsplit(url)
    try:
        if proxy_bypass(parts.netloc):
            return None
    except (TypeError, OSError):  # botocore treats a failing check as "don't bypass"
        pass
    return getproxies().get(parts.scheme) or None


def tls_context(ca_bundle: str | None, verify: bool) -> ssl.SSLContext | bool | None:
    """aiohttp's `ssl=` for these settings: False without verification, a context that
    trusts only `ca_bundle`'s CAs, or None (the system's trust store).
    UsageError when the bundle can't be read."""
    if not verify:
        return False
    if ca_bundle is None:
        return None
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"CA bundle {ca_bundle}: cannot load it "
                         f"({getattr(exc, 'strerror', None) or exc})") from None


def certificate_failed(host: str, port: int | None, reason: str) -> RemoteError:
    """The error of a server whose certificate does not verify.

    >>> str(certificate_failed("127.0.0.1", 8443, "self-signed certificate"))[:60]
    'TLS certificate verify failed for 127.0.0.1:8443: self-signed'
    """
    return RemoteError(f"TLS certificate verify failed for {host}:{port}: {reason} "
                       "(trust its CA with --ca-bundle FILE or AWS_CA_BUNDLE)")


def certificate_error(exc: BaseException | None) -> RemoteError | None:
    """`certificate_failed` for aiohttp's certificate error (None for any other)."""
    if not isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return None
    cause = exc.certificate_error
    reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) \
        or str(cause)
    return certificate_failed(exc.host, exc.port, str(reason))
