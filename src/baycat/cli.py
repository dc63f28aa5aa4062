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
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from . import __version__
from .engine import ManifestSummary, build_manifest
from .entry import DIR, FILE, SYMLINK, Entry
from .errors import BaycatError, ExitCode
from .local_manifest import default_manifest_path
from .manifest_file import ManifestReader
from .progress import Notice, Progress
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


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run the engine, turning baycat errors into one line and an exit code."""
    try:
        return asyncio.run(coro)
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


def main() -> None:
    app()
