"""`baycat verify`, `baycat repair`, `baycat history` and `baycat gc`: commands that look
after a backup (check it, fix it, list its generations, delete what nothing needs)."""

from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from baycat.cli.options import (
    DEFAULT_TIMEOUT,
    CaBundle,
    DryRun,
    EndpointUrl,
    KeyFile,
    NoVerifySsl,
    PasswordFile,
    PoolSize,
    PriceFile,
    Profile,
    ProgressFlag,
    Quiet,
    Region,
    Retries,
    StateDir,
    Timeout,
    Transfers,
    encryption_options,
    price_table,
    s3_options,
    user_state_base,
)
from baycat.cli.output import (
    json_on_fatal,
    live_display,
    print_gc,
    print_history,
    print_repair,
    print_verify,
    warn,
)
from baycat.cli.run import fatal_errors, run_engine, start_logging
from baycat.errors import UsageError
from baycat.progress import Progress

# The engine (baycat.api and the operation) is imported inside each command: importing
# this module only declares the commands (start-up, issue 18).


def verify_command(
    source: Annotated[str | None, typer.Argument(
        metavar="BACKUP", help="s3://bucket/prefix/, a backup directory, file:// or "
        "http(s):// URL.")] = None,
    local: Annotated[Path | None, typer.Option(
        "--local", metavar="DIR", help="Instead: compare the tree DIR with its manifest "
        "(what changed since the last sync); no network, nothing written.")] = None,
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", "-m", metavar="FILE", dir_okay=False,
        help="With --local: the manifest to compare with (default: DIR/.baycat/manifest, "
        "else the one in the state directory that describes DIR).")] = None,
    state_dir: StateDir = None,
    deep: Annotated[bool, typer.Option(
        "--deep", help="Download and re-hash every object (bounded by --transfers).")
    ] = False,
    sample: Annotated[float | None, typer.Option(
        "--sample", metavar="PERCENT", min=0.0, max=100.0,
        help="Download and re-hash a random PERCENT of the objects (the rest get the "
        "cheap check). Example: --sample 2")] = None,
    transfers: Transfers = 32,
    pool_size: PoolSize = None,
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
    from baycat import api
    from baycat.ops.verify import VerifyOptions, VerifySummary

    what = str(local) if local is not None else source or ""
    on_fatal = json_on_fatal(as_json, VerifySummary(source=what, local=local is not None))
    with fatal_errors(on_fatal):
        start_logging(quiet)
        if (local is None) == (source is None):
            raise UsageError("give either a BACKUP to verify or --local DIR")
        if local is not None and (deep or sample is not None):
            raise UsageError("--deep and --sample check a backup, not --local")
        if local is None and (manifest is not None or state_dir is not None):
            raise UsageError("--manifest and --state-dir go with --local")
        encryption = encryption_options(password_file, key_file)
        s3 = s3_options(endpoint_url, region, profile, transfers, retries=retries,
                        timeout=timeout, ca_bundle=ca_bundle, no_verify_ssl=no_verify_ssl)
        prices = price_table(price_file)
    progress_state = Progress()
    work: Coroutine[Any, Any, VerifySummary]
    if local is not None:
        work = api.verify_local(local, pool_size=pool_size, progress=progress_state,
                                warn=warn, manifest=manifest, state_dir=state_dir,
                                user_state_dir=user_state_base())
    else:
        assert source is not None
        options = VerifyOptions(deep_percent=100.0 if deep else sample or 0.0,
                                transfers=transfers)
        work = api.verify(source, options, s3=s3, prices=prices, progress=progress_state,
                          encryption=encryption)
    with live_display(progress_state, progress, quiet):
        summary = run_engine(work, on_fatal=on_fatal)
    print_verify(summary, as_json, quiet)
    raise typer.Exit(int(summary.exit_code))


def repair_command(
    source: Annotated[Path, typer.Argument(
        metavar="SRC", help="The directory the backup was made from.")],
    destination: Annotated[str, typer.Argument(
        metavar="DST", help="Its backup: s3://bucket/prefix/, a directory or file:// URL.")],
    deep: Annotated[bool, typer.Option(
        "--deep", help="Find damage by downloading and re-hashing every object (default: "
        "one LIST, size and ETag).")] = False,
    dry_run: DryRun = False,
    transfers: Transfers = 16,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    ca_bundle: CaBundle = None,
    no_verify_ssl: NoVerifySsl = False,
    password_file: PasswordFile = None,
    key_file: KeyFile = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object: what was repaired and how, what could not be, "
        "requests.")] = False,
) -> None:
    """Put back every object that `verify` finds missing or damaged: uploaded again from
    SRC when the file there still has the content the manifest records (it is hashed to
    make sure), else copied server-side from another object with that content; otherwise
    reported as unrepairable (exit 1). Then one manifest commit. Afterwards `verify`
    (with --deep, `verify --deep`) finds nothing.

    \b
    Examples:
      baycat repair /srv/data s3://backups/host1/data/
      baycat repair --deep --json /srv/data /mnt/usb/backup
    """
    from baycat import api
    from baycat.ops.repair import RepairOptions, RepairSummary

    on_fatal = json_on_fatal(as_json, RepairSummary(source=str(source),
                                                    destination=destination))
    with fatal_errors(on_fatal):
        start_logging(quiet)
        s3 = s3_options(endpoint_url, region, profile, transfers, retries=retries,
                        timeout=timeout, ca_bundle=ca_bundle, no_verify_ssl=no_verify_ssl)
        encryption = encryption_options(password_file, key_file)
    progress_state = Progress()
    options = RepairOptions(deep=deep, dry_run=dry_run, transfers=transfers)
    with live_display(progress_state, progress, quiet):
        summary = run_engine(api.repair(source, destination, options, s3=s3,
                                        progress=progress_state, encryption=encryption),
                             on_fatal=on_fatal)
    print_repair(summary, as_json, quiet)
    raise typer.Exit(int(summary.exit_code))


def history_command(
    source: Annotated[str, typer.Argument(
        metavar="BACKUP", help="s3://bucket/prefix/, a backup directory, file:// or "
        "http(s):// URL.")],
    password_file: PasswordFile = None,
    key_file: KeyFile = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    ca_bundle: CaBundle = None,
    no_verify_ssl: NoVerifySsl = False,
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
    from baycat import api
    from baycat.manifest.generations import History

    on_fatal = json_on_fatal(as_json, History(source=source, generations=(), requests={}))
    with fatal_errors(on_fatal):
        start_logging(False)
        s3 = s3_options(endpoint_url, region, profile, 4, retries=retries, timeout=timeout,
                        ca_bundle=ca_bundle, no_verify_ssl=no_verify_ssl)
        encryption = encryption_options(password_file, key_file)
    found = run_engine(api.history(source, s3=s3, encryption=encryption), on_fatal=on_fatal)
    print_history(found, as_json)


def gc_command(
    destination: Annotated[str, typer.Argument(
        metavar="BACKUP", help="s3://bucket/prefix/, a backup directory or file:// URL.")],
    grace: Annotated[str, typer.Option(
        "--grace", metavar="DURATION",
        help="Keep unreferenced packs, incomplete multipart uploads and a local "
        "directory's temp files younger than this (a sync in progress on another "
        "host has uploaded its pack but not yet committed it). Units s, m, h, d. "
        "Example: --grace 6h")] = "24h",
    dry_run: DryRun = False,
    password_file: PasswordFile = None,
    key_file: KeyFile = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    ca_bundle: CaBundle = None,
    no_verify_ssl: NoVerifySsl = False,
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
    touched. Also aborts incomplete multipart uploads under the prefix (S3 bills them
    until aborted) and removes temp files that killed writes left in a local directory.
    Costs one GET per kept generation, two LISTs and the deletes.

    \b
    Examples:
      baycat gc s3://backups/host1/data/
      baycat sync /srv/data s3://backups/host1/data/ && baycat gc s3://backups/host1/data/
      baycat gc --dry-run --json /mnt/usb/backup
    """
    from baycat import api
    from baycat.ops.gc import GcSummary, parse_duration

    on_fatal = json_on_fatal(as_json, GcSummary(destination=destination, dry_run=dry_run))
    with fatal_errors(on_fatal):
        start_logging(quiet)
        grace_s = parse_duration(grace)
        s3 = s3_options(endpoint_url, region, profile, 4, retries=retries, timeout=timeout,
                        ca_bundle=ca_bundle, no_verify_ssl=no_verify_ssl)
        encryption = encryption_options(password_file, key_file)
    summary = run_engine(api.gc(destination, grace_s=grace_s, dry_run=dry_run, s3=s3,
                                encryption=encryption), on_fatal=on_fatal)
    print_gc(summary, as_json, quiet)
    raise typer.Exit(summary.exit_code)
