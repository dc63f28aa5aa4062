"""The `baycat` command line: the only module that reads flags and the environment.

Exit codes (also in README.md):
  0   success
  1   completed, but some files failed (they are listed; they are retried next run)
  2   usage error: bad arguments, missing or unusable source
  3   remote, credential, manifest, lock or conflict error
  130 interrupted (SIGINT/SIGTERM)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from . import __version__
from .backup import ActionFunc, SyncOptions, sync_to_store
from .endpoints import Endpoint, LocalEndpoint, S3Endpoint, parse_endpoint
from .engine import ManifestSummary, build_manifest
from .entry import DIR, FILE, SYMLINK, Entry
from .errors import BaycatError, ExitCode, UsageError
from .local_manifest import default_manifest_path
from .manifest_file import ManifestReader
from .progress import Notice, Progress
from .restore import RestoreOptions, restore_from_store
from .stop import StopRequest
from .store.base import ObjectStore
from .store.local import LocalStore
from .store.s3 import S3Options, S3Store
from .summary import SyncSummary
from .transfer import TransferConfig
from .ui import LiveDisplay, stderr_console

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 completed with per-file errors; 2 usage error; "
    "3 remote, credential, manifest, lock or conflict error; 130 interrupted."
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

T = TypeVar("T")
console = stderr_console()


def _fail(message: str, code: ExitCode) -> typer.Exit:
    console.print(f"baycat: error: {message}", markup=False, highlight=False)
    return typer.Exit(int(code))


def _run(coro: Coroutine[Any, Any, T], stop: StopRequest | None = None) -> T:
    """Run the engine, turning baycat errors into one line and an exit code.

    With `stop`: the first SIGINT/SIGTERM asks the engine to stop cleanly (commit what
    completed, exit 130); a second one exits at once (safe: every commit is atomic)."""

    async def main() -> T:
        if stop is not None:
            loop = asyncio.get_running_loop()

            def on_signal() -> None:
                if stop.requested:
                    os._exit(int(ExitCode.INTERRUPTED))
                stop.request()
                console.print("baycat: stopping: finishing in-flight transfers and committing "
                              "what completed (signal again to exit at once)",
                              markup=False, highlight=False)

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
        return await coro

    try:
        return asyncio.run(main())
    except BaycatError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise _fail("interrupted", ExitCode.INTERRUPTED) from None


def _warn(notice: Notice) -> None:
    where = os.fsdecode(notice.path) or "."
    console.print(f"baycat: warning: {where}: {notice.message}", markup=False, highlight=False)


def _show_progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


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
) -> None:
    pass


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


def _print_manifest_summary(summary: ManifestSummary, quiet: bool) -> None:
    if quiet:
        return
    state = "written" if summary.written else "unchanged"
    typer.echo(
        f"{summary.entries:,} entries ({summary.files:,} files, {summary.dirs:,} dirs, "
        f"{summary.symlinks:,} symlinks); hashed {summary.hashed_files:,} files, "
        f"{summary.hashed_bytes:,} bytes; {summary.errors} errors; manifest {state} "
        f"({summary.manifest}); pool size {summary.pool_size}; {summary.seconds:.2f} s"
    )


def _manifest_command(directory: Path, manifest: Path | None, create: bool,
                      pool_size: int | None, progress_flag: bool | None, quiet: bool) -> None:
    progress = Progress()
    with LiveDisplay(progress, console, _show_progress(progress_flag) and not quiet):
        summary = _run(build_manifest(directory, manifest=manifest, create=create,
                                      pool_size=pool_size, progress=progress, warn=_warn))
    _print_manifest_summary(summary, quiet)
    if summary.errors:
        raise typer.Exit(int(ExitCode.PARTIAL))


@manifest_app.command("create")
def manifest_create(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The tree to describe.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE",
                     help="Where to write the manifest (default: DIR/.baycat/manifest)."),
    ] = None,
    pool_size: PoolSize = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
) -> None:
    """Build a new manifest of DIR, hashing every file; saves --pool-size in it.

    Example: baycat manifest create --pool-size 4 /srv/data
    """
    _manifest_command(directory, output, True, pool_size, progress, quiet)


@manifest_app.command("update")
def manifest_update(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The tree to describe.")],
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", "-m", metavar="FILE",
                     help="The manifest to refresh (default: DIR/.baycat/manifest)."),
    ] = None,
    pool_size: PoolSize = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
) -> None:
    """Refresh the manifest of DIR, reading only files whose size, mtime, ctime or inode
    changed. --pool-size applies to this run only; the saved one is kept. Creates the
    manifest when there is none.

    Example: baycat manifest update /srv/data
    """
    _manifest_command(directory, manifest, False, pool_size, progress, quiet)


_TYPE_NAMES = {FILE: "file", DIR: "dir", SYMLINK: "symlink"}


def entry_json(entry: Entry) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "path": os.fsdecode(entry.path),
        "type": _TYPE_NAMES[entry.kind],
        "size": entry.size,
        "mtime_ns": entry.mtime_ns,
        "mode": entry.mode,
        "uid": entry.uid,
        "gid": entry.gid,
        "hash": entry.xxh.hex() if entry.xxh else None,
        "target": os.fsdecode(entry.target) if entry.kind == SYMLINK else None,
    }
    try:
        entry.path.decode()
    except UnicodeDecodeError:
        doc["path_hex"] = entry.path.hex()  # exact bytes of a name that isn't UTF-8
    return doc


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
    try:
        reader = ManifestReader(path)
    except FileNotFoundError:
        raise _fail(f"no manifest at {path} (run `baycat manifest create {directory}`)",
                    ExitCode.USAGE) from None
    except BaycatError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    with reader:
        header = reader.root.header_json()
        if not as_json:
            try:
                reader.verify()
            except BaycatError as exc:
                raise _fail(str(exc), exc.exit_code) from None
            for key, value in header.items():
                typer.echo(f"{key}: {value}")
            return
        out = sys.stdout
        out.write(json.dumps(header) + "\n")
        try:
            for entry in reader.entries():
                out.write(json.dumps(entry_json(entry)) + "\n")
        except BaycatError as exc:
            raise _fail(str(exc), exc.exit_code) from None


# ---- sync and restore ----------------------------------------------------------------


def _s3_options(endpoint_url: str | None, region: str | None, profile: str | None,
                transfers: int, retries: int = 5) -> S3Options:
    endpoint = (endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL") or None)
    return S3Options(endpoint_url=endpoint, region=region, profile=profile,
                     max_connections=max(transfers + 8, 16), attempts=retries)


def _open_store(endpoint: Endpoint, s3: S3Options, create: bool) -> ObjectStore:
    if isinstance(endpoint, S3Endpoint):
        return S3Store(endpoint.bucket, endpoint.prefix, s3)
    if isinstance(endpoint, LocalEndpoint):
        return LocalStore(endpoint.path.absolute(), create=create)
    raise UsageError(f"{endpoint.url}: HTTP(S) backups can only be restored from")


def _check_apart(source: Path, dest: Path) -> None:
    src, dst = source.absolute().resolve(), dest.absolute().resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise UsageError(f"source {source} and destination {dest} overlap; "
                         "the backup must live outside the tree (and not contain it)")


def _print_summary(summary: SyncSummary, as_json: bool, quiet: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(summary.to_json(), sort_keys=True) + "\n")
        return
    if quiet:
        return
    parts = []
    for name in ("uploaded", "copied", "downloaded", "metadata", "deleted", "marked_deleted",
                 "unchanged", "failed"):
        count = getattr(summary, name)
        if count.files or name in ("unchanged", "failed"):
            parts.append(f"{name.replace('_', ' ')} {count.files:,}"
                         + (f" ({count.bytes:,} B)" if count.bytes else ""))
    requests = ", ".join(f"{k} {v}" for k, v in sorted(summary.requests.items())) or "none"
    prefix = "dry run: would have " if summary.dry_run else ""
    typer.echo(f"{prefix}{'; '.join(parts)}")
    typer.echo(f"requests: {requests}; manifest {'committed' if summary.committed else 'unchanged'}"
               f"; {summary.seconds.get('total', 0):.2f} s")
    for notice in summary.notices:
        typer.echo(f"note: {notice}")


def _action_printer(to_stderr: bool) -> ActionFunc:
    out = sys.stderr if to_stderr else sys.stdout

    def show(kind: str, path: str, size: int) -> None:
        out.write(f"{kind:<13} {path}\n")

    return show


Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="One line per operation.")]
AsJson = Annotated[bool, typer.Option(
    "--json", help="Print exactly one JSON summary object on stdout (all else on stderr).")]
EndpointUrl = Annotated[str | None, typer.Option(
    "--endpoint-url", metavar="URL",
    help="S3-compatible endpoint (SeaweedFS, MinIO, Ceph); also AWS_ENDPOINT_URL.")]
Region = Annotated[str | None, typer.Option("--region", help="AWS region.")]
Profile = Annotated[str | None, typer.Option("--profile", help="AWS shared-config profile.")]
Transfers = Annotated[int, typer.Option(
    "--transfers", min=1, max=1024, help="Concurrent requests.")]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="Show what would be done; change nothing anywhere.")]


@app.command("sync")
def sync_command(
    source: Annotated[str, typer.Argument(metavar="SRC",
                                          help="A directory, or s3://bucket/prefix/ to restore.")],
    destination: Annotated[str, typer.Argument(
        metavar="DST", help="s3://bucket/prefix/, a directory path or file:// URL.")],
    delete: Annotated[bool, typer.Option(
        "--delete", help="Remove objects of files deleted locally (default: keep them, "
        "marked deleted in the manifest, still restorable).")] = False,
    max_delete: Annotated[int | None, typer.Option(
        "--max-delete", metavar="N", min=0,
        help="With --delete: refuse the whole delete step when more than N would go.")] = None,
    dry_run: DryRun = False,
    scan_remote: Annotated[bool, typer.Option(
        "--scan-remote", help="List the bucket once: adopt objects that already hold a "
        "file's content (uploads that never reached the manifest), report objects the "
        "manifest does not know, and rebuild a lost or damaged remote manifest.")] = False,
    checkpoint_interval: Annotated[float, typer.Option(
        "--checkpoint-interval", metavar="SECONDS", min=0.1,
        help="Commit the remote manifest at least this often during a long run, so a "
        "crash re-sends at most that much.")] = 60.0,
    checkpoint_bytes: Annotated[int, typer.Option(
        "--checkpoint-bytes", metavar="BYTES", min=1,
        help="...and after this many bytes uploaded.")] = 1 << 30,
    retries: Annotated[int, typer.Option(
        "--retries", min=1, max=50,
        help="Attempts per request (throttling, 5xx, resets, timeouts), with exponential "
        "backoff and jitter.")] = 5,
    pool_size: PoolSize = None,
    transfers: Transfers = 32,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: AsJson = False,
) -> None:
    """Back up SRC to DST, sending only what changed; or restore when SRC is s3://.

    Files whose size, mtime, ctime and inode are unchanged are not read; content already
    in the bucket (renames, duplicates) is copied server-side; the manifest with hashes
    and unix metadata is stored next to the data in DST/.baycat/ and committed last.

    Examples:
      baycat sync /srv/data s3://backups/host1/data/
      baycat sync ~/data /mnt/usb/backup
      baycat sync s3://backups/host1/data/ /srv/restored
    """
    try:
        src, dst = parse_endpoint(source), parse_endpoint(destination)
    except BaycatError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    s3 = _s3_options(endpoint_url, region, profile, transfers, retries)
    progress_state = Progress()
    on_action = _action_printer(as_json) if verbose else None
    stop = StopRequest()

    async def run() -> SyncSummary:
        if isinstance(src, LocalEndpoint):
            if isinstance(dst, LocalEndpoint):
                _check_apart(src.path, dst.path)
            store = _open_store(dst, s3, create=True)
            options = SyncOptions(delete=delete, max_delete=max_delete, dry_run=dry_run,
                                  pool_size=pool_size,
                                  transfer=TransferConfig(transfers=transfers),
                                  checkpoint_seconds=checkpoint_interval,
                                  checkpoint_bytes=checkpoint_bytes,
                                  scan_remote=scan_remote, stop=stop)
            return await _with_store(store, sync_to_store(
                src.path, store, options, progress=progress_state, warn=_warn,
                on_action=on_action))
        if isinstance(dst, LocalEndpoint):
            store = _open_store(src, s3, create=False)
            restore_options = RestoreOptions(transfers=transfers, pool_size=pool_size,
                                             dry_run=dry_run)
            return await _with_store(store, restore_from_store(
                store, dst.path, restore_options, progress=progress_state, warn=_warn,
                on_action=on_action))
        raise UsageError("one side must be a local directory (S3 to S3 is not supported)")

    with LiveDisplay(progress_state, console, _show_progress(progress) and not quiet):
        summary = _run(run(), stop)
    _print_summary(summary, as_json, quiet)
    raise typer.Exit(int(summary.exit_code))


@app.command("restore")
def restore_command(
    source: Annotated[str, typer.Argument(
        metavar="SRC", help="The backup: s3://bucket/prefix/, a directory or file:// URL.")],
    destination: Annotated[str, typer.Argument(metavar="DST", help="Directory to restore into.")],
    path: Annotated[list[str] | None, typer.Option(
        "--path", metavar="GLOB",
        help="Restore only paths matching GLOB (or below it); repeatable.")] = None,
    include_deleted: Annotated[bool, typer.Option(
        "--include-deleted", help="Also restore files that were deleted locally but kept "
        "in the backup.")] = False,
    keep_setuid: Annotated[bool, typer.Option(
        "--keep-setuid", help="Restore setuid/setgid bits (off by default).")] = False,
    dry_run: DryRun = False,
    pool_size: PoolSize = None,
    transfers: Transfers = 16,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    progress: ProgressFlag = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    as_json: AsJson = False,
) -> None:
    """Restore a backup into DST: files, empty dirs, symlinks, modes, mtimes (and owners
    when run as root), each file verified against the manifest's hash. Files already
    identical in DST are skipped, so an interrupted restore resumes cheaply.

    Examples:
      baycat restore s3://backups/host1/data/ /srv/restored
      baycat restore --path 'photos/2024/*' /mnt/usb/backup ./photos
    """
    try:
        src, dst = parse_endpoint(source), parse_endpoint(destination)
        if not isinstance(dst, LocalEndpoint):
            raise UsageError(f"{destination}: restore needs a local directory as DST")
    except BaycatError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    s3 = _s3_options(endpoint_url, region, profile, transfers)
    progress_state = Progress()
    options = RestoreOptions(transfers=transfers, pool_size=pool_size, dry_run=dry_run,
                             keep_setuid=keep_setuid, include_deleted=include_deleted,
                             paths=tuple(path or ()))

    async def run() -> SyncSummary:
        if isinstance(src, LocalEndpoint):
            _check_apart(src.path, dst.path)
        store = _open_store(src, s3, create=False)
        return await _with_store(store, restore_from_store(
            store, dst.path, options, progress=progress_state, warn=_warn,
            on_action=_action_printer(as_json) if verbose else None))

    with LiveDisplay(progress_state, console, _show_progress(progress) and not quiet):
        summary = _run(run())
    _print_summary(summary, as_json, quiet)
    raise typer.Exit(int(summary.exit_code))


async def _with_store(store: ObjectStore, work: Coroutine[Any, Any, T]) -> T:
    if isinstance(store, S3Store):
        await store.open()
    try:
        return await work
    finally:
        await store.close()


def main() -> None:
    app()
