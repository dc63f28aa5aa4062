"""`baycat forget` and `baycat prune`: retention that frees space (restic's policies)."""

from typing import Annotated, Any

import typer

from baycat import api
from baycat.cli.options import (
    DEFAULT_TIMEOUT,
    CaBundle,
    DryRun,
    EndpointUrl,
    KeyFile,
    NoVerifySsl,
    PasswordFile,
    Profile,
    Quiet,
    Region,
    Retries,
    Timeout,
    encryption_options,
    s3_options,
)
from baycat.cli.output import json_on_fatal, print_forget, print_prune
from baycat.cli.run import fatal_errors, run_engine, start_logging

# The engine (ops/forget.py, ops/prune.py) is imported inside each command: importing
# this module only declares the commands (start-up, issue 18).

Backup = Annotated[str, typer.Argument(
    metavar="BACKUP", help="s3://bucket/prefix/, a backup directory or file:// URL.")]
Grace = Annotated[str, typer.Option(
    "--grace", metavar="DURATION",
    help="Delete nothing written more recently than this (a sync in flight uploads "
    "before it commits). Units s, m, h, d. Example: --grace 6h")]


def _keep(flag: str, what: str) -> Any:  # typer.Option's type
    return typer.Option(flag, metavar="N", min=0, help=f"Keep the newest generation of "
                        f"each of the last N {what} that have one.")


def forget_command(
    destination: Backup,
    keep_last: Annotated[int, typer.Option(
        "--keep-last", metavar="N", min=0, help="Keep the N newest generations.")] = 0,
    keep_hourly: Annotated[int, _keep("--keep-hourly", "hours")] = 0,
    keep_daily: Annotated[int, _keep("--keep-daily", "days")] = 0,
    keep_weekly: Annotated[int, _keep("--keep-weekly", "ISO weeks")] = 0,
    keep_monthly: Annotated[int, _keep("--keep-monthly", "months")] = 0,
    keep_yearly: Annotated[int, _keep("--keep-yearly", "years")] = 0,
    keep_within: Annotated[str | None, typer.Option(
        "--keep-within", metavar="DURATION",
        help="Keep every generation within DURATION of the newest (y years, m months, "
        "d days, h hours). Example: --keep-within 1m15d")] = None,
    prune: Annotated[bool, typer.Option(
        "--prune", help="Then delete what no kept generation needs (as `baycat prune`).")
    ] = False,
    grace: Grace = "24h",
    dry_run: DryRun = False,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    ca_bundle: CaBundle = None,
    no_verify_ssl: NoVerifySsl = False,
    password_file: PasswordFile = None,
    key_file: KeyFile = None,
    quiet: Quiet = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object: generations kept (and why) and forgotten; with "
        "--prune, what was deleted and the requests.")] = False,
) -> None:
    """Forget the generations a retention policy does not keep (restic's rules, periods
    in UTC; the newest generation is always kept: it is the current tree). Rewrites only
    the manifest root's history; --prune then deletes what only forgotten generations
    needed: objects of deleted files, noncurrent object versions, manifest packs.

    \b
    Examples:
      baycat forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run s3://b/host1/
      baycat forget --keep-within 30d --keep-monthly 24 --prune s3://backups/host1/data/
    """
    from baycat.ops.forget import ForgetSummary, KeepPolicy, within_cutoff
    from baycat.ops.gc import parse_duration

    on_fatal = json_on_fatal(as_json, ForgetSummary(destination=destination,
                                                    dry_run=dry_run))
    with fatal_errors(on_fatal):
        start_logging(quiet)
        policy = KeepPolicy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly,
                            keep_yearly, keep_within or "")
        if keep_within:
            within_cutoff(0, keep_within)  # a usage error before any request
        grace_s = parse_duration(grace)
        s3 = s3_options(endpoint_url, region, profile, 8, retries=retries, timeout=timeout,
                        ca_bundle=ca_bundle, no_verify_ssl=no_verify_ssl)
        encryption = encryption_options(password_file, key_file)
    summary = run_engine(api.forget(destination, policy, dry_run=dry_run, prune=prune,
                                    grace_s=grace_s, s3=s3, encryption=encryption),
                         on_fatal=on_fatal)
    print_forget(summary, as_json, quiet)
    raise typer.Exit(summary.exit_code)


def prune_command(
    destination: Backup,
    grace: Grace = "24h",
    dry_run: DryRun = False,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    ca_bundle: CaBundle = None,
    no_verify_ssl: NoVerifySsl = False,
    password_file: PasswordFile = None,
    key_file: KeyFile = None,
    quiet: Quiet = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object: objects, versions and packs deleted, bytes freed, "
        "locked versions, requests.")] = False,
) -> None:
    """Delete what no kept generation and no current entry needs: objects of files
    deleted locally that no kept generation has, noncurrent object versions (versioned
    buckets, by VersionId), manifest packs (as `gc`). Versions under Object Lock are
    reported, not deleted. Reads one root copy per kept generation, LISTs, batched
    deletes.

    \b
    Examples:
      baycat prune --dry-run s3://backups/host1/data/
      baycat forget --keep-daily 14 s3://backups/host1/data/ && baycat prune s3://backups/host1/data/
    """
    from baycat.ops.gc import parse_duration
    from baycat.ops.prune import PruneSummary

    on_fatal = json_on_fatal(as_json, PruneSummary(destination=destination, dry_run=dry_run))
    with fatal_errors(on_fatal):
        start_logging(quiet)
        grace_s = parse_duration(grace)
        s3 = s3_options(endpoint_url, region, profile, 8, retries=retries, timeout=timeout,
                        ca_bundle=ca_bundle, no_verify_ssl=no_verify_ssl)
        encryption = encryption_options(password_file, key_file)
    summary = run_engine(api.prune(destination, grace_s=grace_s, dry_run=dry_run, s3=s3,
                                   encryption=encryption),
                         on_fatal=on_fatal)
    print_prune(summary, as_json, quiet)
    raise typer.Exit(int(summary.exit_code))
