"""`baycat manifest create|update|show|estimate-cost`: the local manifest of a tree,
built, refreshed, shown and priced without syncing."""

from pathlib import Path
from typing import Annotated

import typer

from baycat.cli.options import (
    ClearFilters,
    Exclude,
    ExcludeCaches,
    ExcludeFrom,
    ExcludeIfPresent,
    FilesFrom,
    Include,
    IncludeFrom,
    OneFileSystem,
    PoolSize,
    PriceFile,
    ProgressFlag,
    Quiet,
    StateDir,
    filter_spec,
    price_table,
    user_state_base,
)
from baycat.cli.output import (
    json_on_fatal,
    live_display,
    print_estimate,
    print_manifest,
    print_manifest_summary,
    warn,
)
from baycat.cli.run import fatal_errors, run_engine, start_logging
from baycat.errors import ExitCode, UsageError
from baycat.ops.cost import STORAGE_CLASSES, TreeCostEstimate
from baycat.progress import Progress

# The engine (baycat.api and what it runs) is imported inside each command: importing
# this module only declares the commands (start-up, issue 18).


def _manifest_command(ctx: typer.Context, clear_filters: bool, directory: Path,
                      manifest: Path | None, create: bool, pool_size: int | None,
                      progress_flag: bool | None, quiet: bool, state_dir: Path | None) -> None:
    from baycat import api

    with fatal_errors():
        filters = filter_spec(ctx, clear_filters)
        start_logging(quiet)
    progress = Progress()
    with live_display(progress, progress_flag, quiet):
        summary = run_engine(api.update_manifest(directory, manifest=manifest, create=create,
                                                 pool_size=pool_size, progress=progress,
                                                 warn=warn, filters=filters,
                                                 state_dir=state_dir,
                                                 user_state_dir=user_state_base()))
    print_manifest_summary(summary, quiet)
    if summary.errors:
        raise typer.Exit(int(ExitCode.PARTIAL))


def manifest_create(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The tree to describe.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE",
                     help="Where to write the manifest (default: DIR/.baycat/manifest, or the "
                     "state directory when DIR is read-only)."),
    ] = None,
    state_dir: StateDir = None,
    pool_size: PoolSize = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
    exclude: Exclude = None,
    include: Include = None,
    exclude_from: ExcludeFrom = None,
    include_from: IncludeFrom = None,
    clear_filters: ClearFilters = False,
    one_file_system: OneFileSystem = False,
    exclude_caches: ExcludeCaches = False,
    exclude_if_present: ExcludeIfPresent = None,
    files_from: FilesFrom = None,
) -> None:
    """Build a new manifest of DIR, hashing every file; saves --pool-size and the
    filters in it.

    Example: baycat manifest create --pool-size 4 --exclude '*.tmp' /srv/data
    """
    _manifest_command(ctx, clear_filters, directory, output, True, pool_size, progress, quiet,
                      state_dir)


def manifest_update(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The tree to describe.")],
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", "-m", metavar="FILE",
                     help="The manifest to refresh (default: DIR/.baycat/manifest, or the "
                     "state directory when DIR is read-only)."),
    ] = None,
    state_dir: StateDir = None,
    pool_size: PoolSize = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
    exclude: Exclude = None,
    include: Include = None,
    exclude_from: ExcludeFrom = None,
    include_from: IncludeFrom = None,
    clear_filters: ClearFilters = False,
    one_file_system: OneFileSystem = False,
    exclude_caches: ExcludeCaches = False,
    exclude_if_present: ExcludeIfPresent = None,
    files_from: FilesFrom = None,
) -> None:
    """Refresh the manifest of DIR, reading only files whose size, mtime, ctime or inode
    changed. --pool-size applies to this run only; the saved one is kept. Creates the
    manifest when there is none. Without filter options, the filters recorded in the
    manifest apply (the same ones `sync` uses).

    Example: baycat manifest update /srv/data
    """
    _manifest_command(ctx, clear_filters, directory, manifest, False, pool_size, progress,
                      quiet, state_dir)


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
    from baycat.manifest.file import ManifestReader
    from baycat.scan.local_manifest import default_manifest_path

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
    from baycat import api

    storage_class = storage_class.upper()
    nothing = TreeCostEstimate(storage_class=storage_class, price_table="", files=0, bytes=0,
                               syncs_per_month=syncs_per_month, change_rate=change_rate,
                               initial_requests=0, initial_usd=0.0, monthly_requests=0,
                               monthly_request_usd=0.0, monthly_storage_usd=0.0)
    with fatal_errors(json_on_fatal(as_json, nothing)):
        start_logging(False)
        estimate = api.estimate_cost(directory, manifest=manifest, storage_class=storage_class,
                                     syncs_per_month=syncs_per_month, change_rate=change_rate,
                                     prices=price_table(price_file))
    print_estimate(estimate, as_json)
