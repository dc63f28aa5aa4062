"""The `baycat` command line: the only module that reads flags and the environment.

Exit codes (also in README.md):
  0   success
  1   completed, but some files failed (they are listed; they are retried next run)
  2   usage error: bad arguments, missing or unusable source
  3   remote, credential, manifest, lock or conflict error, or baycat's own state
      (DIR/.baycat) can't be written (disk full, read-only)
  130 interrupted (SIGINT/SIGTERM)
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from baycat import api
from baycat.cli.logs import LEVELS
from baycat.cli.options import (
    DEFAULT_TIMEOUT,
    AsJson,
    ClearFilters,
    DryRun,
    EndpointUrl,
    Exclude,
    ExcludeFrom,
    FilterCommand,
    Include,
    IncludeFrom,
    PoolSize,
    PriceFile,
    Profile,
    ProgressFlag,
    Quiet,
    Region,
    Retries,
    StorageClass,
    Timeout,
    Transfers,
    Verbose,
    filter_spec,
    price_table,
    s3_options,
)
from baycat.cli.output import (
    action_printer,
    json_on_fatal,
    live_display,
    print_estimate,
    print_gc,
    print_history,
    print_manifest,
    print_manifest_summary,
    print_summary,
    print_verify,
    warn,
)
from baycat.cli.run import FatalFunc, fatal_errors, log_settings, run_engine, start_logging
from baycat.errors import ExitCode, UsageError
from baycat.manifest.file import ManifestReader
from baycat.manifest.generations import parse_time
from baycat.ops.backup import SyncOptions
from baycat.ops.cost import STORAGE_CLASSES
from baycat.ops.gc import parse_duration
from baycat.ops.ratelimit import parse_rate
from baycat.ops.restore import RestoreOptions
from baycat.ops.summary import SyncSummary
from baycat.ops.transfer import TransferConfig
from baycat.ops.verify import VerifyOptions, VerifySummary
from baycat.progress import Progress
from baycat.scan.local_manifest import default_manifest_path
from baycat.stop import StopRequest
from baycat.store.endpoints import LocalEndpoint, parse_endpoint
from baycat.version import __version__

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 completed with per-file errors; 2 usage error; "
    "3 remote, credential, manifest, lock or conflict error, or DIR/.baycat can't be "
    "written; 130 interrupted."
)

app = typer.Typer(
    name="baycat",
    help="Back up a directory tree to S3 (or a local directory) re-reading and re-sending "
    "as little as possible.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
manifest_app = typer.Typer(
    help="Build, refresh and inspect the local manifest (hashes + unix metadata) of a tree "
    "without syncing.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(manifest_app, name="manifest")
log = logging.getLogger("baycat")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"baycat {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
    log_level: Annotated[str | None, typer.Option(
        "--log-level", envvar="BAYCAT_LOGLEVEL", metavar="LEVEL",
        help=f"Log level: {', '.join(LEVELS)} (default: warning; also BAYCAT_LOGLEVEL). "
        "debug includes botocore's request log, with credentials and signatures "
        "redacted. Example: baycat --log-level info sync ~/data s3://b/data/")] = None,
    log_file: Annotated[Path | None, typer.Option(
        "--log-file", metavar="FILE", dir_okay=False,
        help="Append the log to FILE (timestamps; warnings still go to stderr). "
        "Example: baycat --log-file /var/log/baycat.log sync ...")] = None,
) -> None:
    if log_level is not None and log_level.lower() not in LEVELS:
        raise typer.BadParameter(f"must be one of {', '.join(LEVELS)}",
                                 param_hint="--log-level")
    log_settings.level = log_level
    log_settings.file = log_file


def _manifest_command(ctx: typer.Context, clear_filters: bool, directory: Path,
                      manifest: Path | None, create: bool, pool_size: int | None,
                      progress_flag: bool | None, quiet: bool) -> None:
    with fatal_errors():
        filters = filter_spec(ctx, clear_filters)
    start_logging(quiet)
    progress = Progress()
    with live_display(progress, progress_flag, quiet):
        summary = run_engine(api.update_manifest(directory, manifest=manifest, create=create,
                                           pool_size=pool_size, progress=progress,
                                           warn=warn, filters=filters))
    print_manifest_summary(summary, quiet)
    if summary.errors:
        raise typer.Exit(int(ExitCode.PARTIAL))


@manifest_app.command("create", cls=FilterCommand)
def manifest_create(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The tree to describe.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE",
                     help="Where to write the manifest (default: DIR/.baycat/manifest)."),
    ] = None,
    pool_size: PoolSize = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
    exclude: Exclude = None,
    include: Include = None,
    exclude_from: ExcludeFrom = None,
    include_from: IncludeFrom = None,
    clear_filters: ClearFilters = False,
) -> None:
    """Build a new manifest of DIR, hashing every file; saves --pool-size and the
    filters in it.

    Example: baycat manifest create --pool-size 4 --exclude '*.tmp' /srv/data
    """
    _manifest_command(ctx, clear_filters, directory, output, True, pool_size, progress, quiet)


@manifest_app.command("update", cls=FilterCommand)
def manifest_update(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The tree to describe.")],
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", "-m", metavar="FILE",
                     help="The manifest to refresh (default: DIR/.baycat/manifest)."),
    ] = None,
    pool_size: PoolSize = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
    exclude: Exclude = None,
    include: Include = None,
    exclude_from: ExcludeFrom = None,
    include_from: IncludeFrom = None,
    clear_filters: ClearFilters = False,
) -> None:
    """Refresh the manifest of DIR, reading only files whose size, mtime, ctime or inode
    changed. --pool-size applies to this run only; the saved one is kept. Creates the
    manifest when there is none. Without filter options, the filters recorded in the
    manifest apply (the same ones `sync` uses).

    Example: baycat manifest update /srv/data
    """
    _manifest_command(ctx, clear_filters, directory, manifest, False, pool_size, progress,
                      quiet)


@manifest_app.command("show")
def manifest_show(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The tree described.")],
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", "-m", metavar="FILE",
                     help="The manifest to show (default: DIR/.baycat/manifest)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines: the header, then one object per entry.")
    ] = False,
) -> None:
    """Show a manifest: a summary, or every entry with --json.

    Example: baycat manifest show --json /srv/data | head
    """
    path = manifest or default_manifest_path(directory)
    with fatal_errors():
        try:
            reader = ManifestReader(path)
        except FileNotFoundError:
            raise UsageError(f"no manifest at {path} (run `baycat manifest create "
                             f"{directory}`)") from None
        with reader:
            header = reader.root.header_json()
            if not as_json:
                reader.verify()
            print_manifest(header, reader.entries() if as_json else None)


# ---- sync and restore ----------------------------------------------------------------


@app.command("sync", cls=FilterCommand, epilog=EXIT_CODES_HELP)
def sync_command(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="SRC",
                                          help="A directory, or s3://bucket/prefix/ to restore.")],
    destination: Annotated[str, typer.Argument(
        metavar="DST", help="s3://bucket/prefix/, a directory path or file:// URL.")],
    delete: Annotated[bool, typer.Option(
        "--delete", help="Remove objects of files deleted locally (default: keep them, "
        "marked deleted in the manifest, still restorable).")] = False,
    max_delete: Annotated[int | None, typer.Option(
        "--max-delete", metavar="N", min=0,
        help="With --delete: refuse the whole delete step when more than N would go. "
        "Example: --delete --max-delete 100")] = None,
    dry_run: DryRun = False,
    pool_size: PoolSize = None,
    transfers: Transfers = 32,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    storage_class: StorageClass = None,
    sse: Annotated[str | None, typer.Option(
        "--sse", metavar="ALG", help="Server-side encryption: AES256 or aws:kms. "
        "Example: --sse aws:kms --sse-kms-key-id alias/backup")] = None,
    sse_kms_key_id: Annotated[str | None, typer.Option(
        "--sse-kms-key-id", metavar="KEY", help="KMS key for --sse aws:kms.")] = None,
    bwlimit: Annotated[str | None, typer.Option(
        "--bwlimit", metavar="RATE", help="Upload at most RATE bytes per second, all "
        "transfers together (K, M, G are binary units). Example: --bwlimit 10M")] = None,
    exclude: Exclude = None,
    include: Include = None,
    exclude_from: ExcludeFrom = None,
    include_from: IncludeFrom = None,
    clear_filters: ClearFilters = False,
    delete_excluded: Annotated[bool, typer.Option(
        "--delete-excluded", help="Treat excluded paths already in the backup as deleted "
        "locally (default: leave them in the backup untouched).")] = False,
    scan_remote: Annotated[bool, typer.Option(
        "--scan-remote", help="List the bucket once: adopt objects that already hold a "
        "file's content (uploads that never reached the manifest), report objects the "
        "manifest does not know, and rebuild a lost or damaged remote manifest.")] = False,
    checkpoint_interval: Annotated[float, typer.Option(
        "--checkpoint-interval", metavar="SECONDS", min=0.1,
        help="Commit the remote manifest at least this often during a long run, so a "
        "crash re-sends at most that much. Example: --checkpoint-interval 300")] = 60.0,
    checkpoint_bytes: Annotated[int, typer.Option(
        "--checkpoint-bytes", metavar="BYTES", min=1,
        help="...and after this many bytes uploaded.")] = 1 << 30,
    verify_commit: Annotated[bool, typer.Option(
        "--verify-commit", help="Read the manifest root back after each commit (one more "
        "GET) and redo the commit if another writer overwrote it. For several hosts writing "
        "one prefix on servers whose conditional PUT is not atomic (SeaweedFS 4.48 is one; "
        "AWS S3 is not).")] = False,
    keep_generations: Annotated[int, typer.Option(
        "--keep-generations", metavar="K", min=1, max=10000,
        help="Keep the last K manifest generations (commits) in the backup, for "
        "`baycat history` and `restore --at`. Example: --keep-generations 90")] = 30,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    price_file: PriceFile = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: AsJson = False,
) -> None:
    """Back up SRC to DST, sending only what changed; or restore when SRC is s3://.

    Files whose size, mtime, ctime and inode are unchanged are not read; content already
    in the bucket (renames, duplicates) is copied server-side; the manifest with hashes
    and unix metadata is stored next to the data in DST/.baycat/ and committed last.

    \b
    Examples:
      baycat sync /srv/data s3://backups/host1/data/
      baycat sync --exclude '*.tmp' --storage-class STANDARD_IA ~/data s3://b/home/
      baycat sync --json ~/data /mnt/usb/backup > /var/log/baycat.json
      baycat sync s3://backups/host1/data/ /srv/restored
    """
    start_logging(quiet)
    with fatal_errors():
        filters = filter_spec(ctx, clear_filters)
    on_fatal = json_on_fatal(as_json, SyncSummary(source=source, destination=destination))
    with fatal_errors(on_fatal):
        src, dst = parse_endpoint(source), parse_endpoint(destination)
        s3 = s3_options(endpoint_url, region, profile, transfers,
                         storage_class.upper() if storage_class else None, sse, sse_kms_key_id,
                         retries, timeout)
        if storage_class and storage_class.upper() not in STORAGE_CLASSES:
            raise UsageError(f"unknown storage class {storage_class!r} "
                             f"(one of {', '.join(STORAGE_CLASSES)})")
        if sse not in (None, "AES256", "aws:kms"):
            raise UsageError(f"--sse must be AES256 or aws:kms, not {sse!r}")
        rate = parse_rate(bwlimit) if bwlimit else None
        prices = price_table(price_file)
    progress_state = Progress()
    on_action = action_printer(verbose, as_json)
    stop = StopRequest()

    async def run() -> SyncSummary:
        if isinstance(src, LocalEndpoint):
            options = SyncOptions(delete=delete, max_delete=max_delete, dry_run=dry_run,
                                  pool_size=pool_size, filters=filters,
                                  delete_excluded=delete_excluded,
                                  transfer=TransferConfig(transfers=transfers, bwlimit=rate),
                                  checkpoint_seconds=checkpoint_interval,
                                  checkpoint_bytes=checkpoint_bytes,
                                  scan_remote=scan_remote, stop=stop,
                                  history=keep_generations, verify_commits=verify_commit)
            return await api.sync(src.path, destination, options, s3=s3, prices=prices,
                                  progress=progress_state, warn=warn, on_action=on_action)
        if isinstance(dst, LocalEndpoint):
            restore_options = RestoreOptions(transfers=transfers, pool_size=pool_size,
                                             dry_run=dry_run)
            return await api.restore(source, dst.path, restore_options, s3=s3, prices=prices,
                                     progress=progress_state, warn=warn, on_action=on_action)
        raise UsageError("one side must be a local directory (S3 to S3 is not supported)")

    _run_and_report(run(), progress_state, progress, quiet, as_json, source, destination,
                    on_fatal, stop)


def _run_and_report(work: Coroutine[Any, Any, SyncSummary], progress_state: Progress,
                    progress: bool | None, quiet: bool, as_json: bool, source: str,
                    destination: str, on_fatal: FatalFunc | None,
                    stop: StopRequest | None = None) -> None:
    log.info("%s -> %s", source, destination)
    with live_display(progress_state, progress, quiet):
        summary = run_engine(work, stop, on_fatal)
    print_summary(summary, as_json, quiet)
    raise typer.Exit(int(summary.exit_code))


@app.command("restore", epilog=EXIT_CODES_HELP)
def restore_command(
    source: Annotated[str, typer.Argument(
        metavar="SRC", help="The backup: s3://bucket/prefix/, a directory, file:// URL, or "
        "http(s):// URL of a web server or public bucket serving one (plain GETs).")],
    destination: Annotated[str, typer.Argument(metavar="DST", help="Directory to restore into.")],
    path: Annotated[list[str] | None, typer.Option(
        "--path", metavar="GLOB",
        help="Restore only paths matching GLOB (or below it); repeatable. "
        "Example: --path 'photos/2024/*'")] = None,
    include_deleted: Annotated[bool, typer.Option(
        "--include-deleted", help="Also restore files that were deleted locally but kept "
        "in the backup.")] = False,
    keep_setuid: Annotated[bool, typer.Option(
        "--keep-setuid", help="Restore setuid/setgid bits (off by default).")] = False,
    at: Annotated[str | None, typer.Option(
        "--at", metavar="TIME",
        help="Restore the tree as the last sync at or before TIME left it (ISO 8601; "
        "local time unless it ends in Z or an offset); see `baycat history`. "
        "Example: --at 2026-11-20T03:00")] = None,
    dry_run: DryRun = False,
    pool_size: PoolSize = None,
    transfers: Transfers = 32,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    price_file: PriceFile = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: AsJson = False,
) -> None:
    """Restore a backup into DST: files, empty dirs, symlinks, modes, mtimes (and owners
    when run as root), each file verified against the manifest's hash. Files already
    identical in DST are skipped, so an interrupted restore resumes cheaply.

    \b
    Examples:
      baycat restore s3://backups/host1/data/ /srv/restored
      baycat restore --path 'photos/2024/*' /mnt/usb/backup ./photos
      baycat restore --at 2026-11-20T03:00 s3://backups/host1/data/ /srv/as-of-nov-20
      baycat restore https://backups.example.org/host1/data/ /srv/restored
    """
    start_logging(quiet)
    on_fatal = json_on_fatal(as_json, SyncSummary(source=source, destination=destination))
    with fatal_errors(on_fatal):
        dst = parse_endpoint(destination)
        if not isinstance(dst, LocalEndpoint):
            raise UsageError(f"{destination}: restore needs a local directory as DST")
        parse_endpoint(source)
        s3 = s3_options(endpoint_url, region, profile, transfers, retries=retries,
                         timeout=timeout)
        prices = price_table(price_file)
        at_ns = parse_time(at) if at is not None else None
    progress_state = Progress()
    options = RestoreOptions(transfers=transfers, pool_size=pool_size, dry_run=dry_run,
                             keep_setuid=keep_setuid, include_deleted=include_deleted,
                             at_ns=at_ns,
                             paths=tuple(path or ()))
    work = api.restore(source, dst.path, options, s3=s3, prices=prices,
                       progress=progress_state, warn=warn,
                       on_action=action_printer(verbose, as_json))
    _run_and_report(work, progress_state, progress, quiet, as_json, source, destination,
                    on_fatal)


@manifest_app.command("estimate-cost")
def manifest_estimate_cost(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The tree described.")],
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", "-m", metavar="FILE",
        help="The manifest to read (default: DIR/.baycat/manifest).")] = None,
    storage_class: Annotated[str, typer.Option(
        "--storage-class", metavar="CLASS",
        help=f"Storage class priced ({', '.join(STORAGE_CLASSES)}).")] = "STANDARD",
    syncs_per_month: Annotated[int, typer.Option(
        "--syncs-per-month", min=0, help="How many syncs a month (30: nightly).")] = 30,
    change_rate: Annotated[float, typer.Option(
        "--change-rate", min=0.0, max=1.0,
        help="Fraction of files whose content changes between two syncs.")] = 0.01,
    price_file: PriceFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Estimate what backing up DIR to S3 costs a month (storage and requests), from its
    manifest, with S3 list prices (README "Cost model") or --price-file. Run
    `baycat manifest create DIR` first.

    \b
    Examples:
      baycat manifest estimate-cost /srv/data
      baycat manifest estimate-cost --storage-class GLACIER_IR --syncs-per-month 4 \\
          --change-rate 0.05 /srv/data
    """
    start_logging(False)
    with fatal_errors():
        estimate = api.estimate_cost(directory, manifest=manifest,
                                     storage_class=storage_class.upper(),
                                     syncs_per_month=syncs_per_month, change_rate=change_rate,
                                     prices=price_table(price_file))
    print_estimate(estimate, as_json)


# ---- verify and history ----------------------------------------------------------------


@app.command("verify", epilog=EXIT_CODES_HELP)
def verify_command(
    source: Annotated[str | None, typer.Argument(
        metavar="BACKUP", help="s3://bucket/prefix/, a backup directory, file:// or "
        "http(s):// URL.")] = None,
    local: Annotated[Path | None, typer.Option(
        "--local", metavar="DIR", help="Instead: compare the tree DIR with its manifest "
        "(what changed since the last sync); no network, nothing written.")] = None,
    deep: Annotated[bool, typer.Option(
        "--deep", help="Download and re-hash every object (bounded by --transfers).")
    ] = False,
    sample: Annotated[float | None, typer.Option(
        "--sample", metavar="PERCENT", min=0.0, max=100.0,
        help="Download and re-hash a random PERCENT of the objects (the rest get the "
        "cheap check). Example: --sample 2")] = None,
    transfers: Transfers = 32,
    pool_size: PoolSize = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    price_file: PriceFile = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object on stdout: counts, problems, requests.")
    ] = False,
) -> None:
    """Check a backup against its manifest: every object there, with its size and ETag
    (one LIST); --deep or --sample also download and re-hash. Reports missing, corrupt
    and unknown objects; exit code 0 only when all is well, 1 when something was found.

    \b
    Examples:
      baycat verify s3://backups/host1/data/
      baycat verify --sample 2 --json s3://backups/host1/data/   # nightly spot check
      baycat verify --deep /mnt/usb/backup
      baycat verify --local /srv/data
    """
    start_logging(quiet)
    what = str(local) if local is not None else source or ""
    on_fatal = json_on_fatal(as_json, VerifySummary(source=what, local=local is not None))
    with fatal_errors(on_fatal):
        if (local is None) == (source is None):
            raise UsageError("give either a BACKUP to verify or --local DIR")
        if local is not None and (deep or sample is not None):
            raise UsageError("--deep and --sample check a backup, not --local")
        s3 = s3_options(endpoint_url, region, profile, transfers, retries=retries,
                         timeout=timeout)
        prices = price_table(price_file)
    progress_state = Progress()
    work: Coroutine[Any, Any, VerifySummary]
    if local is not None:
        work = api.verify_local(local, pool_size=pool_size, progress=progress_state,
                                warn=warn)
    else:
        assert source is not None
        options = VerifyOptions(deep_percent=100.0 if deep else sample or 0.0,
                                transfers=transfers)
        work = api.verify(source, options, s3=s3, prices=prices, progress=progress_state)
    with live_display(progress_state, progress, quiet):
        summary = run_engine(work, on_fatal=on_fatal)
    print_verify(summary, as_json, quiet)
    raise typer.Exit(int(summary.exit_code))


@app.command("history", epilog=EXIT_CODES_HELP)
def history_command(
    source: Annotated[str, typer.Argument(
        metavar="BACKUP", help="s3://bucket/prefix/, a backup directory, file:// or "
        "http(s):// URL.")],
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object: the generations, newest first.")] = False,
) -> None:
    """List the generations (commits) a backup keeps, newest first: time (UTC), files,
    bytes. Any of those times can be given to `restore --at` (one GET: the root).

    \b
    Examples:
      baycat history s3://backups/host1/data/
      baycat restore --at 2026-11-20T03:00:00Z s3://backups/host1/data/ /srv/old
    """
    start_logging(False)
    with fatal_errors():
        s3 = s3_options(endpoint_url, region, profile, 4, retries=retries, timeout=timeout)
    found = run_engine(api.history(source, s3=s3))
    print_history(found, as_json)


@app.command("gc", epilog=EXIT_CODES_HELP)
def gc_command(
    destination: Annotated[str, typer.Argument(
        metavar="BACKUP", help="s3://bucket/prefix/, a backup directory or file:// URL.")],
    grace: Annotated[str, typer.Option(
        "--grace", metavar="DURATION",
        help="Keep unreferenced packs younger than this (a sync in progress on another "
        "host has uploaded its pack but not yet committed it). Units s, m, h, d. "
        "Example: --grace 6h")] = "24h",
    dry_run: DryRun = False,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    quiet: Quiet = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object: packs kept and deleted, bytes freed, requests.")
    ] = False,
) -> None:
    """Delete manifest packs that no kept generation needs. Every sync that changes
    something uploads one pack under PREFIX/.baycat/packs/; once `--keep-generations`
    lets a generation go, packs only it used are garbage. Data objects are never
    touched. Costs one GET per kept generation, one LIST and the deletes.

    \b
    Examples:
      baycat gc s3://backups/host1/data/
      baycat sync /srv/data s3://backups/host1/data/ && baycat gc s3://backups/host1/data/
      baycat gc --dry-run --json /mnt/usb/backup
    """
    start_logging(quiet)
    with fatal_errors():
        grace_s = parse_duration(grace)
        s3 = s3_options(endpoint_url, region, profile, 4, retries=retries, timeout=timeout)
    summary = run_engine(api.gc(destination, grace_s=grace_s, dry_run=dry_run, s3=s3))
    print_gc(summary, as_json, quiet)
    raise typer.Exit(summary.exit_code)


# Allocations between automatic collections of the youngest generation (CPython: 700).
GC_GEN0_THRESHOLD = 50_000


def main() -> None:
    # The walk and the manifest codec allocate millions of short-lived tuples that form
    # no cycles; with CPython's default thresholds the collector ran every 700 of them
    # and took ~20 % of the CPU of a no-change `manifest update` (measured on 200k
    # files: 1.66 s user -> 1.26-1.34 s). Collect far less often (cycles are still
    # found), and leave what start-up created (modules, classes) out of every pass.
    # Set here, not in the library: a program using the API keeps its own policy.
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 100)
    app()
