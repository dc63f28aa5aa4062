"""The options several commands share, and what turns them (and the environment) into
the engine's values: `S3Options`, the price table, the ordered filter rules.

With cli/main.py's global options, this is the only code that reads flags and the
environment: the layers below take values.
"""

import getpass
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from typer._click.core import ParameterSource  # typer's own copy of click
from typer.core import TyperCommand

from baycat.errors import UsageError
from baycat.ops.cost import STORAGE_CLASSES, PriceTable, load_prices
from baycat.scan.filters import FilterSpec, Rule, rules_from_file
from baycat.scan.selection import read_listed
from baycat.store.encryption import Encryption, Secret, password_line
from baycat.store.endpoints import check_http_url
from baycat.store.s3_options import S3Options

PoolSize = Annotated[
    int | None,
    typer.Option("--pool-size", min=1, max=256,
                 help="Hasher threads (default: the CPU count)."),
]
ProgressFlag = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress",
                 help="Live progress display (default: on when stderr is a terminal)."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
Verbose = Annotated[bool, typer.Option(
    "--verbose", "-v", help="One line per operation (upload, copy, delete, ...).")]
AsJson = Annotated[bool, typer.Option(
    "--json", help="Print exactly one JSON summary object on stdout (all else on stderr); "
    "schema: docs/json-summary.md. Example: baycat sync --json ~/data DST > run.json")]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="Show what would be done; change nothing anywhere.")]


# ---- local state ------------------------------------------------------------------------

StateDir = Annotated[Path | None, typer.Option(
    "--state-dir", metavar="DIR", envvar="BAYCAT_STATE_DIR", file_okay=False,
    help="Keep baycat's local state (manifest, cache, lock) below DIR, one subdirectory "
    "per job, instead of in the source's .baycat/ (also BAYCAT_STATE_DIR). Without it, a "
    "source that can't hold .baycat/ (a read-only snapshot) uses $XDG_STATE_HOME/baycat "
    "(default ~/.local/state/baycat). Example: --state-dir /var/lib/baycat")]


def user_state_base() -> Path | None:
    """$XDG_STATE_HOME/baycat when XDG_STATE_HOME is set to an absolute path (the XDG
    spec says to ignore a relative one); None: the default, ~/.local/state/baycat."""
    home = os.environ.get("XDG_STATE_HOME", "")
    return Path(home) / "baycat" if os.path.isabs(home) else None


# ---- the store --------------------------------------------------------------------------

# --timeout: seconds of silence from the store before an attempt is given up.
DEFAULT_TIMEOUT = 30.0
MAX_CONNECT_TIMEOUT = 10.0

EndpointUrl = Annotated[str | None, typer.Option(
    "--endpoint-url", metavar="URL",
    help="S3-compatible endpoint (SeaweedFS, MinIO, Ceph); also AWS_ENDPOINT_URL. "
    "Example: --endpoint-url http://localhost:8333")]
Region = Annotated[str | None, typer.Option(
    "--region", help="AWS region. Example: --region eu-west-1")]
Profile = Annotated[str | None, typer.Option(
    "--profile", help="AWS shared-config profile. Example: --profile backup")]
Transfers = Annotated[int, typer.Option(
    "--transfers", min=1, max=1024, help="Concurrent requests. Example: --transfers 8")]
Timeout = Annotated[float, typer.Option(
    "--timeout", metavar="SECONDS", min=0.1, max=3600.0,
    help="Wait at most SECONDS for the store's next bytes on each attempt (and at most "
    f"{MAX_CONNECT_TIMEOUT:g} s, or SECONDS if less, for a connection); then the request "
    "is retried (--retries) and finally fails with what was waited for (exit code 3). "
    "Example: --timeout 120")]
Retries = Annotated[int, typer.Option(
    "--retries", min=1, max=100, metavar="N",
    help="Attempts per request (throttling, 5xx, resets, timeouts; exponential backoff). "
    "Example: --retries 10")]
# TLS, with the AWS CLI's names (issue 15): the same for botocore, the fast path and
# `restore https://`.
CaBundle = Annotated[str | None, typer.Option(
    "--ca-bundle", metavar="FILE",
    help="Trust the CAs in FILE (PEM) for the store's TLS certificate, e.g. a MinIO or "
    "Ceph behind a private CA (default: AWS_CA_BUNDLE, the profile's ca_bundle, then "
    "botocore's bundle). Proxies: HTTPS_PROXY, HTTP_PROXY, NO_PROXY. "
    "Example: --ca-bundle /etc/ssl/private-ca.pem")]
NoVerifySsl = Annotated[bool, typer.Option(
    "--no-verify-ssl", help="Do not verify the store's TLS certificate (insecure: "
    "anyone on the path can read and change what is sent).")]
StorageClass = Annotated[str | None, typer.Option(
    "--storage-class", metavar="CLASS", case_sensitive=False,
    help=f"S3 storage class of data objects ({', '.join(STORAGE_CLASSES)}); manifest "
    "objects stay STANDARD. GLACIER and DEEP_ARCHIVE objects must be restored in S3 "
    "before `baycat restore`. Example: --storage-class GLACIER_IR")]


def s3_options(endpoint_url: str | None, region: str | None, profile: str | None,
               transfers: int, storage_class: str | None = None, sse: str | None = None,
               sse_kms_key_id: str | None = None, retries: int = 5,
               timeout: float = DEFAULT_TIMEOUT, ca_bundle: str | None = None,
               no_verify_ssl: bool = False) -> S3Options:
    """The store options from the flags and the AWS_* environment; UsageError for a bad
    endpoint or a KMS key without aws:kms."""
    env = os.environ
    endpoint = endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") \
        or None
    if endpoint is not None:
        check_http_url(endpoint)
    if sse_kms_key_id and sse not in (None, "aws:kms"):
        raise UsageError("--sse-kms-key-id needs --sse aws:kms")
    # What botocore itself would take first: its region from AWS_DEFAULT_REGION, keys
    # from the environment unless a profile is named. Resolved here, the S3 store can
    # start without loading botocore at all (store/s3.py: without_botocore).
    region = region or env.get("AWS_DEFAULT_REGION") or None
    env_keys = not profile and not env.get("AWS_PROFILE") and bool(
        env.get("AWS_ACCESS_KEY_ID")) and bool(env.get("AWS_SECRET_ACCESS_KEY"))
    # AWS_CA_BUNDLE as botocore reads it (a profile's ca_bundle botocore finds itself):
    # resolved here, `restore https://` and the fast path's checks see it too.
    ca_bundle = ca_bundle or env.get("AWS_CA_BUNDLE") or None
    if ca_bundle is not None and not os.path.isfile(ca_bundle):
        raise UsageError(f"CA bundle {ca_bundle!r}: no such file")
    return S3Options(endpoint_url=endpoint, region=region, profile=profile,
                     ca_bundle=ca_bundle, verify_ssl=not no_verify_ssl,
                     access_key_id=env["AWS_ACCESS_KEY_ID"] if env_keys else None,
                     secret_access_key=env["AWS_SECRET_ACCESS_KEY"] if env_keys else None,
                     session_token=(env.get("AWS_SESSION_TOKEN") or None) if env_keys else None,
                     max_connections=max(transfers + 8, 16), storage_class=storage_class,
                     sse="aws:kms" if sse_kms_key_id and not sse else sse,
                     sse_kms_key_id=sse_kms_key_id, attempts=retries,
                     connect_timeout=min(timeout, MAX_CONNECT_TIMEOUT), read_timeout=timeout,
                     fast_path=env.get("BAYCAT_S3_FAST", "1") != "0")


# ---- monitoring (cli/monitor.py) ---------------------------------------------------------

HealthcheckUrl = Annotated[str | None, typer.Option(
    "--healthcheck-url", metavar="URL",
    help="Ping URL as healthchecks.io expects: GET URL/start when the run begins, POST "
    "URL (exit 0), URL/log (exit 4: another run holds the lock) or URL/fail (any other "
    "exit) with the one-line summary when it ends. A ping that fails (5 s timeout) is a "
    "warning; it never fails the backup. "
    "Example: --healthcheck-url https://hc-ping.com/UUID")]
MetricsFile = Annotated[Path | None, typer.Option(
    "--metrics-file", metavar="FILE", dir_okay=False,
    help="Write the run to FILE in Prometheus text format (node_exporter's textfile "
    "collector): start and end time, success, exit code, files and bytes by operation, "
    "requests by type, cost, seconds. Replaced atomically; as readable as the local tree. "
    "Example: --metrics-file /var/lib/node_exporter/textfile/baycat-home.prom")]


# ---- prices -----------------------------------------------------------------------------

PriceFile = Annotated[Path | None, typer.Option(
    "--price-file", metavar="FILE", dir_okay=False,
    help="JSON price table overriding the built-in S3 list prices used for the cost "
    "estimate (also BAYCAT_PRICE_FILE; format in README). Example: --price-file wasabi.json")]


def price_table(price_file: Path | None) -> PriceTable:
    """--price-file, else BAYCAT_PRICE_FILE, else the built-in S3 list prices."""
    if price_file is None and os.environ.get("BAYCAT_PRICE_FILE"):
        price_file = Path(os.environ["BAYCAT_PRICE_FILE"])
    return load_prices(price_file)


# ---- encryption -------------------------------------------------------------------------

PasswordFile = Annotated[Path | None, typer.Option(
    "--password-file", metavar="FILE", dir_okay=False,
    help="Read the password of an encrypted backup from FILE (its first line; also "
    "BAYCAT_PASSWORD_FILE, or BAYCAT_PASSWORD_COMMAND: a shell command that prints it). "
    "Example: --password-file ~/.config/baycat/pw")]
KeyFile = Annotated[Path | None, typer.Option(
    "--key-file", metavar="FILE", dir_okay=False,
    help="Open an encrypted backup with a key file (its bytes, at least 16 random "
    "ones; `baycat key add --new-key-file` makes one) instead of a password.")]


def read_secret(source: Path, kind: Literal["password", "keyfile"], what: str) -> Secret:
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {source}: {exc.strerror}") from None
    if kind == "password":
        data = password_line(data)
        if not data:
            raise UsageError(f"{what} {source}: empty")
    return Secret(kind, data)


def encryption_options(password_file: Path | None, key_file: Path | None,
                       create: bool = False) -> Encryption | None:
    """The secret from --key-file, --password-file, BAYCAT_PASSWORD_FILE or
    BAYCAT_PASSWORD_COMMAND (the first given), else a prompt on a terminal when
    `create` (--encrypt); None: the backup is plain. The secret is never echoed."""
    if key_file is not None and password_file is not None:
        raise UsageError("give --password-file or --key-file, not both")
    secret: Secret | None = None
    if key_file is not None:
        secret = read_secret(key_file, "keyfile", "--key-file")
    elif password_file is not None:
        secret = read_secret(password_file, "password", "--password-file")
    elif os.environ.get("BAYCAT_PASSWORD_FILE"):
        secret = read_secret(Path(os.environ["BAYCAT_PASSWORD_FILE"]), "password",
                             "BAYCAT_PASSWORD_FILE")
    elif os.environ.get("BAYCAT_PASSWORD_COMMAND"):
        proc = subprocess.run(os.environ["BAYCAT_PASSWORD_COMMAND"], shell=True,
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            raise UsageError(f"BAYCAT_PASSWORD_COMMAND exited with {proc.returncode}")
        secret = Secret("password", password_line(proc.stdout))
        if not secret.value:
            raise UsageError("BAYCAT_PASSWORD_COMMAND printed an empty password")
    elif create:
        secret = prompt_new_password()
    if secret is None:
        if create:
            raise UsageError("--encrypt needs a password or key (--password-file, "
                             "--key-file, BAYCAT_PASSWORD_FILE or BAYCAT_PASSWORD_COMMAND)")
        return None
    return Encryption(secret, create=create)


def prompt_new_password() -> Secret | None:
    """A new password typed twice on the terminal; None without a terminal."""
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass("New password for the backup: ")
    if not first or getpass.getpass("Again: ") != first:
        raise UsageError("the passwords are empty or differ")
    return Secret("password", first.encode())


# ---- filters ----------------------------------------------------------------------------

Exclude = Annotated[list[str] | None, typer.Option(
    "--exclude", metavar="PATTERN",
    help="Leave out paths matching PATTERN (gitignore syntax, relative to the source: "
    "'*.tmp', '/build/', 'cache/'); repeatable. Rules apply in order, last match wins; "
    ".baycatignore files apply first. Example: --exclude '*.log' --include 'keep.log'")]
Include = Annotated[list[str] | None, typer.Option(
    "--include", metavar="PATTERN",
    help="Keep paths matching PATTERN even when an earlier rule excluded them "
    "(nothing below an excluded directory comes back). Example: --include 'logs/keep.txt'")]
ExcludeFrom = Annotated[list[str] | None, typer.Option(
    "--exclude-from", metavar="FILE",
    help="Exclude patterns from FILE, one a line (# comments). Example: --exclude-from "
    "~/.config/baycat/excludes")]
IncludeFrom = Annotated[list[str] | None, typer.Option(
    "--include-from", metavar="FILE", help="Include patterns from FILE, one a line.")]
ClearFilters = Annotated[bool, typer.Option(
    "--clear-filters", help="Forget the filters recorded in the manifest (without filter "
    "options, the recorded ones apply). Example: baycat sync --clear-filters ~/data DST")]

OneFileSystem = Annotated[bool, typer.Option(
    "--one-file-system", "-x",
    help="Don't descend into other mounted filesystems (a mount point is recorded as an "
    "empty directory). Pseudo filesystems (proc, sysfs, devtmpfs, cgroup, ...) are never "
    "entered, even without -x. Example: baycat sync -x / s3://b/host1/root/")]
ExcludeCaches = Annotated[bool, typer.Option(
    "--exclude-caches", help="Leave out the contents of directories holding a valid "
    "CACHEDIR.TAG (bford.info/cachedir); the tag itself is kept.")]
ExcludeIfPresent = Annotated[list[str] | None, typer.Option(
    "--exclude-if-present", metavar="NAME",
    help="Leave out the contents of directories holding a file named NAME (kept itself); "
    "repeatable. Example: --exclude-if-present .nobackup")]
FilesFrom = Annotated[str | None, typer.Option(
    "--files-from", metavar="FILE",
    help="Back up only the paths listed in FILE, one a line, relative to the source "
    "(a listed directory with all below it; the directories above listed paths are "
    "recorded too; blank lines and # comments skipped); '-' reads standard input. "
    "Example: git ls-files | baycat sync --files-from - . DST")]

_FILTER_OPTIONS = ("exclude", "include", "exclude_from", "include_from")
# Selection options beyond rules; with any of them given, the spec is given too.
_SELECTION_OPTIONS = ("one_file_system", "exclude_caches", "exclude_if_present",
                      "files_from")


class FilterCommand(TyperCommand):
    """Records the command-line order of --exclude/--include/--*-from (click keeps only
    each option's own values), so that the last matching rule can win."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            opts, _, order = self.make_parser(ctx).parse_args(args=list(args))
        except Exception:  # the real parse below reports it properly
            opts, order = {}, []
        values = {name: list(opts.get(name) or ()) for name in _FILTER_OPTIONS}
        sequence: list[tuple[str, str]] = []
        for param in order:
            if param.name in _FILTER_OPTIONS and values[param.name]:
                sequence.append((param.name, values[param.name].pop(0)))
        ctx.meta["baycat.filters"] = sequence
        return super().parse_args(ctx, args)


# Filter options from the environment or the config file have no order among them:
# excludes first, then the includes that take paths back (their meaning when read).
_CONFIGURED_ORDER = ("exclude_from", "exclude", "include_from", "include")


def filter_spec(ctx: typer.Context, clear: bool) -> FilterSpec | None:
    """The rules given (the environment's and the config file's first, in
    `_CONFIGURED_ORDER`, then the command line's in its order), with the selection
    options; None: use the recorded ones. BaycatError: a --*-from file can't be read."""
    configured = [(name, value) for name in _CONFIGURED_ORDER
                  if ctx.get_parameter_source(name) in (ParameterSource.ENVIRONMENT,
                                                        ParameterSource.DEFAULT_MAP)
                  for value in ctx.params.get(name) or ()]
    sequence: list[tuple[str, str]] = configured + ctx.meta.get("baycat.filters", [])
    params = ctx.params
    if not sequence and not any(params.get(name) for name in _SELECTION_OPTIONS):
        return FilterSpec() if clear else None
    rules: list[Rule] = []
    for name, value in sequence:
        if name.endswith("_from"):
            rules += rules_from_file(Path(value), include=name == "include_from")
        else:
            rules.append(Rule(include=name == "include", pattern=value))
    files_from = params.get("files_from")
    return replace(
        FilterSpec(tuple(rules)), one_file_system=bool(params.get("one_file_system")),
        exclude_caches=bool(params.get("exclude_caches")),
        exclude_if_present=tuple(params.get("exclude_if_present") or ()),
        files_from=read_listed(files_from, sys.stdin.buffer.read) if files_from else None)
