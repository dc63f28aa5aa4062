"""`baycat sync` and `baycat restore`: the two commands that move files, and what they
share (the run under the live display, the summary, --json)."""

import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from baycat.cli.monitor import RunMonitor
from baycat.cli.options import (
    DEFAULT_TIMEOUT,
    AsJson,
    CaBundle,
    ClearFilters,
    DryRun,
    EndpointUrl,
    Exclude,
    ExcludeCaches,
    ExcludeFrom,
    ExcludeIfPresent,
    FilesFrom,
    HealthcheckUrl,
    Include,
    IncludeFrom,
    KeyFile,
    MetricsFile,
    NoVerifySsl,
    OneFileSystem,
    PasswordFile,
    PoolSize,
    PriceFile,
    Profile,
    ProgressFlag,
    Quiet,
    Region,
    Retries,
    StateDir,
    StorageClass,
    Timeout,
    Transfers,
    Verbose,
    encryption_options,
    filter_spec,
    price_table,
    s3_options,
    user_state_base,
)
from baycat.cli.output import (
    action_printer,
    json_on_fatal,
    live_display,
    print_summary,
    summary_line,
    warn,
)
from baycat.cli.run import FatalFunc, fatal_errors, run_engine, start_logging
from baycat.errors import UsageError
from baycat.ops.cost import STORAGE_CLASSES
from baycat.ops.ratelimit import parse_rate
from baycat.ops.summary import SyncSummary
from baycat.progress import Progress
from baycat.stop import StopRequest
from baycat.store.endpoints import LocalEndpoint, parse_endpoint

# The engine (baycat.api, the sync or the restore) is imported inside each command, and
# only the side a run needs: importing this module only declares the commands, and a
# sync never loads the restore code (start-up, issue 18).

log = logging.getLogger("baycat")


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
        help="With --delete: refuse the whole delete step (exit code 5) when more than N "
        "would go. "
        "Example: --delete --max-delete 100")] = None,
    max_changes: Annotated[str | None, typer.Option(
        "--max-changes", metavar="N|N%",
        help="Refuse the run (upload and commit nothing, exit 5) when more than N files, "
        "or N% of the files in the backup, changed content: mass modification is what "
        "ransomware looks like. New and deleted files don't count. "
        "Example: --max-changes 10%")] = None,
    object_lock_days: Annotated[int | None, typer.Option(
        "--object-lock-days", metavar="N", min=1, max=36500,
        help="S3 Object Lock: every object this run writes (data, manifest packs and "
        "roots) is retained N days from its write, so stolen credentials can't delete or "
        "overwrite history meanwhile. The bucket must have Object Lock enabled. "
        "Example: --object-lock-days 30")] = None,
    object_lock_mode: Annotated[str, typer.Option(
        "--object-lock-mode", metavar="MODE",
        help="governance (users with s3:BypassGovernanceRetention may still delete) or "
        "compliance (nobody can, not even the account's root, until it expires).")
    ] = "governance",
    require_versioning: Annotated[bool, typer.Option(
        "--require-versioning", help="Refuse to back up to a bucket that keeps no old "
        "object versions (exit 3); a local directory never does.")] = False,
    dry_run: DryRun = False,
    pool_size: PoolSize = None,
    transfers: Transfers = 32,
    encrypt: Annotated[bool, typer.Option(
        "--encrypt", help="Make a new backup encrypted on the client: contents, the "
        "manifest and object names (docs/encryption.md). Needs a password or key; later "
        "runs need the same one (no --encrypt). Example: baycat sync --encrypt "
        "--password-file ~/.pw ~/data s3://b/data/")] = False,
    password_file: PasswordFile = None,
    key_file: KeyFile = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    ca_bundle: CaBundle = None,
    no_verify_ssl: NoVerifySsl = False,
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
    one_file_system: OneFileSystem = False,
    exclude_caches: ExcludeCaches = False,
    exclude_if_present: ExcludeIfPresent = None,
    files_from: FilesFrom = None,
    no_xattrs: Annotated[bool, typer.Option(
        "--no-xattrs", help="Leave extended attributes (ACLs, file capabilities, user.*) "
        "out: neither read nor restored.")] = False,
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
    state_dir: StateDir = None,
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", "-m", metavar="FILE", dir_okay=False,
        help="The local manifest to use and refresh, as `manifest update -m` does "
        "(default: SRC/.baycat/manifest, or the state directory's). Example: "
        "-m /var/lib/baycat/home.manifest")] = None,
    keep_generations: Annotated[int, typer.Option(
        "--keep-generations", metavar="K", min=1, max=10000,
        help="Keep the last K manifest generations (commits) in the backup, for "
        "`baycat history` and `restore --at`. Example: --keep-generations 90")] = 30,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    price_file: PriceFile = None,
    healthcheck_url: HealthcheckUrl = None,
    metrics_file: MetricsFile = None,
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
      baycat sync --healthcheck-url https://hc-ping.com/UUID /srv/data s3://b/data/
    """
    monitor = RunMonitor(healthcheck_url, metrics_file)
    tree = _local_tree(source, destination)
    empty = SyncSummary(source=source, destination=destination)
    on_fatal = monitor.on_fatal(empty, tree, json_on_fatal(as_json, empty))
    with fatal_errors(on_fatal):
        start_logging(quiet)
        monitor.check()
        filters = filter_spec(ctx, clear_filters)
        src, dst = parse_endpoint(source), parse_endpoint(destination)
        s3 = s3_options(endpoint_url, region, profile, transfers,
                        storage_class.upper() if storage_class else None, sse, sse_kms_key_id,
                        retries, timeout, ca_bundle, no_verify_ssl)
        encryption = encryption_options(password_file, key_file, create=encrypt)
        if storage_class and storage_class.upper() not in STORAGE_CLASSES:
            raise UsageError(f"unknown storage class {storage_class!r} "
                             f"(one of {', '.join(STORAGE_CLASSES)})")
        if sse not in (None, "AES256", "aws:kms"):
            raise UsageError(f"--sse must be AES256 or aws:kms, not {sse!r}")
        if object_lock_mode.lower() not in ("governance", "compliance"):
            raise UsageError(f"--object-lock-mode must be governance or compliance, not "
                             f"{object_lock_mode!r}")
        lock_mode = object_lock_mode.upper()
        if object_lock_days is not None:
            if isinstance(dst, LocalEndpoint):
                raise UsageError("--object-lock-days needs an S3 destination (a local "
                                 "directory can't lock objects)")
            s3 = replace(s3, object_lock_days=object_lock_days, object_lock_mode=lock_mode)
        rate = parse_rate(bwlimit) if bwlimit else None
        if max_changes is not None:
            from baycat.ops.safety import parse_max_changes

            change_count, change_fraction = parse_max_changes(max_changes)
        else:
            change_count, change_fraction = None, None
        prices = price_table(price_file)
    progress_state = Progress()
    on_action = action_printer(verbose, as_json)
    stop = StopRequest()

    async def run() -> SyncSummary:
        from baycat import api

        if isinstance(src, LocalEndpoint):
            from baycat.ops.backup import SyncOptions
            from baycat.ops.transfer import TransferConfig

            options = SyncOptions(delete=delete, max_delete=max_delete, dry_run=dry_run,
                                  pool_size=pool_size, filters=filters,
                                  delete_excluded=delete_excluded,
                                  transfer=TransferConfig(transfers=transfers, bwlimit=rate),
                                  checkpoint_seconds=checkpoint_interval,
                                  checkpoint_bytes=checkpoint_bytes,
                                  scan_remote=scan_remote, stop=stop,
                                  history=keep_generations, verify_commits=verify_commit,
                                  xattrs=not no_xattrs,
                                  state_dir=state_dir, user_state_dir=user_state_base(),
                                  manifest=manifest,
                                  require_versioning=require_versioning,
                                  max_changes=change_count,
                                  max_changes_fraction=change_fraction,
                                  object_lock_days=object_lock_days,
                                  object_lock_mode=lock_mode)
            return await api.sync(src.path, destination, options, s3=s3, prices=prices,
                                  progress=progress_state, warn=warn, on_action=on_action,
                                  encryption=encryption)
        if isinstance(dst, LocalEndpoint):
            from baycat.ops.restore import RestoreOptions

            restore_options = RestoreOptions(transfers=transfers, pool_size=pool_size,
                                             dry_run=dry_run, xattrs=not no_xattrs)
            return await api.restore(source, dst.path, restore_options, s3=s3, prices=prices,
                                     progress=progress_state, warn=warn, on_action=on_action,
                                     encryption=encryption)
        raise UsageError("one side must be a local directory (S3 to S3 is not supported)")

    _run_and_report(run(), progress_state, progress, quiet, as_json, source, destination,
                    on_fatal, monitor, tree, stop)


def _local_tree(source: str, destination: str) -> Path | None:
    """The local directory of a sync or restore (what the metrics file is about)."""
    for side in (source, destination):
        with contextlib.suppress(UsageError):
            endpoint = parse_endpoint(side)
            if isinstance(endpoint, LocalEndpoint):
                return endpoint.path
    return None


def _run_and_report(work: Coroutine[Any, Any, SyncSummary], progress_state: Progress,
                    progress: bool | None, quiet: bool, as_json: bool, source: str,
                    destination: str, on_fatal: FatalFunc | None, monitor: RunMonitor,
                    tree: Path | None, stop: StopRequest | None = None) -> None:
    log.info("%s -> %s", source, destination)
    monitor.start()
    with live_display(progress_state, progress, quiet):
        summary = run_engine(work, stop, on_fatal)
    print_summary(summary, as_json, quiet)
    line = "; ".join([summary_line(summary), *summary.refused])
    monitor.finish(summary, int(summary.exit_code), line, tree)
    raise typer.Exit(int(summary.exit_code))


def restore_command(
    source: Annotated[str, typer.Argument(
        metavar="SRC", help="The backup: s3://bucket/prefix/, a directory, file:// URL, or "
        "http(s):// URL of a web server or public bucket serving one (plain GETs).")],
    destination: Annotated[str, typer.Argument(metavar="DST", help="Directory to restore into.")],
    path: Annotated[list[str] | None, typer.Option(
        "--path", metavar="PATTERN",
        help="Restore only paths matching PATTERN (gitignore syntax, as --exclude: '*' "
        "stays within one name, a matching directory brings all below it), with the "
        "directories above them; repeatable. Example: --path 'photos/2024/*'")] = None,
    delete: Annotated[bool, typer.Option(
        "--delete", help="Make DST exactly the backup (within --path): remove what the "
        "backup doesn't have (never outside DST, never through a symlink; not after a "
        "failure). Without it such paths stay and are counted as `extra`.")] = False,
    include_deleted: Annotated[bool, typer.Option(
        "--include-deleted", help="Also restore files that were deleted locally but kept "
        "in the backup.")] = False,
    keep_setuid: Annotated[bool, typer.Option(
        "--keep-setuid", help="Restore setuid/setgid bits (off by default).")] = False,
    no_xattrs: Annotated[bool, typer.Option(
        "--no-xattrs", help="Leave extended attributes (ACLs, file capabilities, user.*) "
        "out: neither read nor restored.")] = False,
    at: Annotated[str | None, typer.Option(
        "--at", metavar="TIME",
        help="Restore the tree as the last sync at or before TIME left it (ISO 8601; "
        "local time unless it ends in Z or an offset); see `baycat history`. "
        "Example: --at 2026-11-20T03:00")] = None,
    dry_run: DryRun = False,
    pool_size: PoolSize = None,
    transfers: Transfers = 32,
    password_file: PasswordFile = None,
    key_file: KeyFile = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    ca_bundle: CaBundle = None,
    no_verify_ssl: NoVerifySsl = False,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    price_file: PriceFile = None,
    healthcheck_url: HealthcheckUrl = None,
    metrics_file: MetricsFile = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: AsJson = False,
) -> None:
    """Restore a backup into DST: files, empty dirs, symlinks, hardlinks, sparse files,
    FIFOs, modes, mtimes and extended attributes (owners and device nodes when run as
    root), each file verified against the manifest's hash. Files already
    identical in DST are skipped, so an interrupted restore resumes cheaply.

    \b
    Examples:
      baycat restore s3://backups/host1/data/ /srv/restored
      baycat restore --path 'photos/2024/*' /mnt/usb/backup ./photos
      baycat restore --at 2026-11-20T03:00 s3://backups/host1/data/ /srv/as-of-nov-20
      baycat restore https://backups.example.org/host1/data/ /srv/restored
    """
    from baycat import api
    from baycat.manifest.generations import parse_time
    from baycat.ops.restore import RestoreOptions

    monitor = RunMonitor(healthcheck_url, metrics_file)
    tree = _local_tree(destination, destination)
    empty = SyncSummary(source=source, destination=destination)
    on_fatal = monitor.on_fatal(empty, tree, json_on_fatal(as_json, empty))
    with fatal_errors(on_fatal):
        start_logging(quiet)
        monitor.check()
        dst = parse_endpoint(destination)
        if not isinstance(dst, LocalEndpoint):
            raise UsageError(f"{destination}: restore needs a local directory as DST")
        parse_endpoint(source)
        s3 = s3_options(endpoint_url, region, profile, transfers, retries=retries,
                        timeout=timeout, ca_bundle=ca_bundle, no_verify_ssl=no_verify_ssl)
        encryption = encryption_options(password_file, key_file)
        prices = price_table(price_file)
        at_ns = parse_time(at) if at is not None else None
    progress_state = Progress()
    options = RestoreOptions(transfers=transfers, pool_size=pool_size, dry_run=dry_run,
                             keep_setuid=keep_setuid, include_deleted=include_deleted,
                             at_ns=at_ns, delete=delete, xattrs=not no_xattrs,
                             paths=tuple(path or ()))
    work = api.restore(source, dst.path, options, s3=s3, prices=prices,
                       progress=progress_state, warn=warn, encryption=encryption,
                       on_action=action_printer(verbose, as_json))
    _run_and_report(work, progress_state, progress, quiet, as_json, source, destination,
                    on_fatal, monitor, tree)
