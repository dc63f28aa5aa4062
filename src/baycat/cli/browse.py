"""`baycat ls` and `baycat diff`: look into a backup from its manifest alone (no data
object is read; ops/browse.py), and print what was found."""

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from baycat.cli.options import (
    DEFAULT_TIMEOUT,
    CaBundle,
    EndpointUrl,
    KeyFile,
    NoVerifySsl,
    PasswordFile,
    PoolSize,
    Profile,
    ProgressFlag,
    Region,
    Retries,
    Timeout,
    encryption_options,
    s3_options,
)
from baycat.cli.output import json_on_fatal, live_display, print_json, warn
from baycat.cli.run import fatal_errors, run_engine, start_logging
from baycat.entry import HARDLINK, SYMLINK, Entry, as_text
from baycat.progress import Progress

# The engine (baycat.api, ops/browse.py) is imported inside each command: importing this
# module only declares the commands (start-up, issue 18).
if TYPE_CHECKING:
    from baycat.ops.browse import DiffSummary, Listing

Backup = Annotated[str, typer.Argument(
    metavar="BACKUP", help="s3://bucket/prefix/, a backup directory, file:// or "
    "http(s):// URL.")]


class _Nothing:
    """The --json object of a command that could not complete (fatal_error is added)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self._doc = doc

    def to_json(self) -> dict[str, Any]:
        return dict(self._doc)


def ls_command(
    source: Backup,
    path: Annotated[str, typer.Argument(
        metavar="[PATH]", help="A directory or file inside the backup (default: the top).")
    ] = "",
    at: Annotated[str | None, typer.Option(
        "--at", metavar="TIME", help="The generation current at TIME (ISO 8601, local "
        "time unless it ends in Z; see `baycat history`). Example: --at 2026-11-20T03:00")
    ] = None,
    recursive: Annotated[bool, typer.Option(
        "--recursive", "-R", help="Everything below PATH, not only its entries.")] = False,
    include_deleted: Annotated[bool, typer.Option(
        "--include-deleted", help="Also show files deleted locally but kept in the "
        "backup (what `restore --include-deleted` brings back).")] = False,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    ca_bundle: CaBundle = None,
    no_verify_ssl: NoVerifySsl = False,
    password_file: PasswordFile = None,
    key_file: KeyFile = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object: the generation and its entries (schema: "
        "docs/json-summary.md).")] = False,
) -> None:
    """List what a backup holds, like `ls -ln`: type and mode, uid, gid, size, mtime
    (UTC), name. Reads the manifest only (the root and its packs), never the data.

    \b
    Examples:
      baycat ls s3://backups/host1/data/
      baycat ls -R s3://backups/host1/data/ photos/2024
      baycat ls --at 2026-11-20T03:00 --json /mnt/usb/backup etc
    """
    from baycat import api
    from baycat.manifest.generations import parse_time

    on_fatal = json_on_fatal(as_json, _Nothing(
        {"source": source, "path": path, "recursive": recursive, "generation": None,
         "generation_ns": None, "entries": [], "requests": {}}))
    with fatal_errors(on_fatal):
        start_logging(False)
        s3 = s3_options(endpoint_url, region, profile, 4, retries=retries, timeout=timeout,
                        ca_bundle=ca_bundle, no_verify_ssl=no_verify_ssl)
        encryption = encryption_options(password_file, key_file)
        at_ns = parse_time(at) if at is not None else None
    listing = run_engine(api.ls(source, path, at_ns=at_ns, recursive=recursive,
                                include_deleted=include_deleted, s3=s3,
                                encryption=encryption), on_fatal=on_fatal)
    print_listing(listing, as_json)


def diff_command(
    source: Backup,
    directory: Annotated[Path | None, typer.Argument(
        metavar="[SRC]", help="Compare with this local tree instead of another "
        "generation.")] = None,
    at: Annotated[list[str] | None, typer.Option(
        "--at", metavar="TIME",
        help="A generation (see `baycat history`); once: from it to the latest (or to "
        "SRC); twice: from the first to the second. Default: from the one before the "
        "latest to the latest (what the last sync changed). Example: --at 2026-11-01")
    ] = None,
    pool_size: PoolSize = None,
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
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object: the two sides, counts, every change with its "
        "old and new entry (schema: docs/json-summary.md).")] = False,
) -> None:
    """Show what changed between two generations of a backup, or between a generation
    and a local tree: added, removed, modified (content: a file's hash or size, a
    symlink's target, the type) and metadata (mode, owner, mtime only). Reads the
    manifest only; with SRC, hashes only files whose stat its manifest doesn't match.
    Nothing is written; the exit code is 0 whether or not something changed.

    \b
    Examples:
      baycat diff s3://backups/host1/data/                   # what the last sync did
      baycat diff --at 2026-11-01 --at 2026-11-20 s3://backups/host1/data/
      baycat diff s3://backups/host1/data/ /srv/data        # not yet backed up
    """
    from baycat import api
    from baycat.manifest.generations import parse_time
    from baycat.ops.browse import CHANGE_KINDS

    on_fatal = json_on_fatal(as_json, _Nothing(
        {"source": source, "old": None, "new": str(directory) if directory else None,
         "new_is_local": directory is not None, "counts": dict.fromkeys(CHANGE_KINDS, 0),
         "changes": [], "requests": {}}))
    with fatal_errors(on_fatal):
        start_logging(False)
        s3 = s3_options(endpoint_url, region, profile, 4, retries=retries, timeout=timeout,
                        ca_bundle=ca_bundle, no_verify_ssl=no_verify_ssl)
        encryption = encryption_options(password_file, key_file)
        times = tuple(parse_time(t) for t in at or ())
    progress_state = Progress()
    work = api.diff(source, times, directory=directory, s3=s3, pool_size=pool_size,
                    progress=progress_state, warn=warn, encryption=encryption)
    with live_display(progress_state, progress if directory is not None else False, False):
        summary = run_engine(work, on_fatal=on_fatal)
    print_diff(summary, as_json)


# ---- printing ---------------------------------------------------------------------------


def ls_line(entry: Entry, name: str) -> str:
    """One `ls -ln`-like line: mode, uid, gid, size, mtime (UTC), name [-> target of a
    symlink] [=> first name of a hardlinked file]."""
    from baycat.manifest.generations import format_time

    when = format_time(entry.mtime_ns).replace("T", " ").rstrip("Z")
    shown = name + (f" -> {as_text(entry.target)}" if entry.kind == SYMLINK else
                    f" => {as_text(entry.link)}" if entry.kind == HARDLINK else "")
    deleted = f"  (deleted {format_time(entry.deleted_ns)})" if entry.deleted_ns else ""
    return (f"{stat.filemode(entry.mode)} {entry.uid:>6} {entry.gid:>6} {entry.size:>14,} "
            f"{when}  {shown}{deleted}")


def print_listing(listing: "Listing", as_json: bool) -> None:
    if as_json:
        print_json(listing.to_json())
        return
    prefix = os.fsencode(listing.path) + b"/" if listing.path else b""
    for entry in listing.entries:
        rel = entry.path[len(prefix):] if entry.path.startswith(prefix) else entry.path
        typer.echo(ls_line(entry, as_text(rel)))


def print_diff(summary: "DiffSummary", as_json: bool) -> None:
    from baycat.ops.browse import CHANGE_KINDS

    if as_json:
        print_json(summary.to_json())
        return
    for change in summary.changes:
        typer.echo(f"{change.kind:<9} {as_text(change.path)}")
    counts = summary.counts()
    found = ", ".join(f"{counts[k]:,} {k}" for k in CHANGE_KINDS)
    typer.echo(f"{summary.old} -> {summary.new}: {found}")
