"""What the commands print: a command's result on stdout (text, or one `--json` object),
everything else on stderr through one console that keeps it above the live display.

    stdout  result lines | one --json object | JSON Lines (manifest show --json)
    stderr  warnings, `-v` lines under --json, `baycat: error: ...`, the live display

Secrets never reach either: messages pass through `redact`, --json objects through
`redact_json`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

import typer

from baycat import xattrs
from baycat.entry import (
    BLOCK_DEVICE,
    CHAR_DEVICE,
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    SYMLINK,
    Entry,
)
from baycat.errors import BaycatError
from baycat.progress import ActionFunc, Notice, Progress
from baycat.redact import redact, redact_json

if TYPE_CHECKING:  # the summaries are only read here: their modules load with the engine
    from rich.console import Console

    from baycat.manifest.generations import History
    from baycat.ops.cost import TreeCostEstimate
    from baycat.ops.forget import ForgetSummary
    from baycat.ops.gc import GcSummary
    from baycat.ops.manifest import ManifestSummary
    from baycat.ops.prune import PruneSummary
    from baycat.ops.repair import RepairSummary
    from baycat.ops.summary import SyncSummary
    from baycat.ops.verify import VerifySummary

log = logging.getLogger("baycat")
_console: Console | None = None


def console() -> Console:
    """The one stderr console (rich), made on first use: a run that prints nothing on
    stderr and shows no display never imports rich (~40 ms of start-up, issue 18)."""
    global _console
    if _console is None:
        from baycat.cli.display import stderr_console

        _console = stderr_console()
    return _console


def write_stderr(line: str) -> None:
    console().print(line, markup=False, highlight=False)


def warn(notice: Notice) -> None:
    log.warning("%s: %s", os.fsdecode(notice.path) or ".", notice.message)


def live_display(progress: Progress, flag: bool | None, quiet: bool
                 ) -> AbstractContextManager[object]:
    """The live display of a run: on when stderr is a terminal, unless `flag`
    (--progress/--no-progress) says otherwise; never with --quiet."""
    shown = sys.stderr.isatty() if flag is None else flag
    if not shown or quiet:
        return nullcontext()
    from baycat.cli.display import LiveDisplay

    return LiveDisplay(progress, console(), True)


# ---- --json -----------------------------------------------------------------------------


def print_json(doc: dict[str, Any]) -> None:
    """`--json`: one object on one line of stdout, secrets redacted."""
    sys.stdout.write(json.dumps(redact_json(doc), sort_keys=True) + "\n")


class _Summary(Protocol):
    def to_json(self) -> dict[str, Any]: ...


def json_on_fatal(as_json: bool, empty: _Summary) -> Callable[[BaycatError], None] | None:
    """With --json, what prints the one object of a command that could not complete:
    `empty` (the summary of a run that did nothing) with `fatal_error` and its
    `exit_code`; without --json, None."""
    if not as_json:
        return None

    def on_fatal(exc: BaycatError) -> None:
        doc = empty.to_json()
        doc["exit_code"] = int(exc.exit_code)
        doc["fatal_error"] = str(exc)
        print_json(doc)

    return on_fatal


# ---- sync and restore -------------------------------------------------------------------


def print_summary(summary: SyncSummary, as_json: bool, quiet: bool) -> None:
    log.info("done: exit code %d, requests %s", int(summary.exit_code), summary.requests)
    if as_json:
        print_json(summary.to_json())
        return
    if quiet:
        return
    requests = ", ".join(f"{k} {v}" for k, v in sorted(summary.requests.items())) or "none"
    typer.echo(summary_line(summary))
    typer.echo(f"requests: {requests} (~${summary.request_cost_usd:.4f}); manifest "
               f"{'committed' if summary.committed else 'unchanged'}"
               f"; {summary.seconds.get('total', 0):.2f} s")
    for notice in summary.notices:
        typer.echo(f"note: {redact(notice)}")


def summary_line(summary: SyncSummary) -> str:
    """The run in one line: what was done to how many files (and bytes)."""
    parts = []
    for name in ("uploaded", "copied", "downloaded", "adopted", "metadata", "deleted",
                 "marked_deleted", "extra", "unchanged", "failed"):
        count = getattr(summary, name)
        if count.files or name in ("unchanged", "failed"):
            parts.append(f"{name.replace('_', ' ')} {count.files:,}"
                         + (f" ({count.bytes:,} B)" if count.bytes else ""))
    prefix = "dry run: would have " if summary.dry_run else ""
    return f"{prefix}{'; '.join(parts)}"


def action_printer(verbose: bool, to_stderr: bool) -> ActionFunc:
    """What sees each operation: with -v one line for each (on stderr under --json),
    else the debug log only."""
    if not verbose:
        return _debug_action
    out = sys.stderr if to_stderr else sys.stdout

    def show(kind: str, path: str, size: int) -> None:
        log.debug("%s %s (%d B)", kind, path, size)
        out.write(f"{kind:<13} {path}\n")

    return show


def _debug_action(kind: str, path: str, size: int) -> None:
    log.debug("%s %s (%d B)", kind, path, size)


# ---- manifest ---------------------------------------------------------------------------


def print_manifest_summary(summary: ManifestSummary, quiet: bool) -> None:
    if quiet:
        return
    state = "written" if summary.written else "unchanged"
    typer.echo(
        f"{summary.entries:,} entries ({summary.files:,} files, {summary.dirs:,} dirs, "
        f"{summary.symlinks:,} symlinks); hashed {summary.hashed_files:,} files, "
        f"{summary.hashed_bytes:,} bytes; {summary.errors} errors; manifest {state} "
        f"({summary.manifest}); pool size {summary.pool_size}; {summary.seconds:.2f} s"
    )


def print_manifest(header: dict[str, Any], entries: Iterable[Entry] | None) -> None:
    """`manifest show`: the header as `key: value` lines; with `entries` (--json), JSON
    Lines: the header, then one object per entry, written as they are read."""
    if entries is None:
        for key, value in header.items():
            typer.echo(f"{key}: {value}")
        return
    out = sys.stdout
    out.write(json.dumps(header) + "\n")
    for entry in entries:
        out.write(json.dumps(entry_json(entry)) + "\n")


_TYPE_NAMES = {FILE: "file", DIR: "dir", SYMLINK: "symlink", HARDLINK: "hardlink",
               FIFO: "fifo", CHAR_DEVICE: "char-device", BLOCK_DEVICE: "block-device"}


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
    # Format 2's facts, only where they are set (the output of a format-1 tree is as it was).
    if entry.link:
        doc["link"] = os.fsdecode(entry.link)
    if entry.rdev:
        doc["rdev"] = entry.rdev
    if entry.xattrs:
        doc["xattrs"] = sorted(os.fsdecode(name) for name in xattrs.decode(entry.xattrs))
    try:
        entry.path.decode()
    except UnicodeDecodeError:
        doc["path_hex"] = entry.path.hex()  # exact bytes of a name that isn't UTF-8
    return doc


def print_estimate(estimate: TreeCostEstimate, as_json: bool) -> None:
    if as_json:
        print_json(estimate.to_json())
        return
    typer.echo(f"tree: {estimate.files:,} files, {estimate.bytes:,} bytes "
               f"({estimate.bytes / (1 << 30):.2f} GiB); {estimate.storage_class}, "
               f"{estimate.price_table}")
    typer.echo(f"first backup: {estimate.initial_requests:,} requests, "
               f"${estimate.initial_usd:.2f}")
    typer.echo(f"per month ({estimate.syncs_per_month} syncs, "
               f"{estimate.change_rate:.1%} of files changing each time): "
               f"storage ${estimate.monthly_storage_usd:.2f} + "
               f"{estimate.monthly_requests:,} requests ${estimate.monthly_request_usd:.2f} "
               f"= ${estimate.monthly_usd:.2f}")


# ---- verify, history, gc ----------------------------------------------------------------


def print_verify(summary: VerifySummary, as_json: bool, quiet: bool) -> None:
    if as_json:
        print_json(summary.to_json())
        return
    if quiet:
        return
    for problem in summary.problems:
        detail = f" ({redact(problem.message)})" if problem.message else ""
        typer.echo(f"{problem.kind:<10} {problem.path}{detail}")
    found = ", ".join(f"{kind} {n:,}" for kind, n in sorted(summary.counts.items()))
    what = "paths" if summary.local else "files"
    deep = "" if summary.local else \
        f"; re-hashed {summary.deep_files:,} ({summary.deep_bytes:,} B)"
    requests = ", ".join(f"{k} {v}" for k, v in sorted(summary.requests.items()))
    typer.echo(f"{summary.files:,} {what} checked: ok {summary.ok:,}; "
               f"{found or 'no problems'}{deep}"
               + (f"; requests: {requests}" if requests else "")
               + f"; {summary.seconds.get('total', 0):.2f} s")


def print_repair(summary: RepairSummary, as_json: bool, quiet: bool) -> None:
    if as_json:
        print_json(summary.to_json())
        return
    for problem in summary.unrepairable:
        write_stderr(f"baycat: cannot repair {problem.path}: {redact(problem.message)}")
    if quiet:
        return
    for done in summary.repaired:
        typer.echo(f"{done.how:<10} {done.path} (was {done.problem}; from {done.source})")
    verb = "would repair" if summary.dry_run else "repaired"
    requests = ", ".join(f"{k} {v}" for k, v in sorted(summary.requests.items()))
    typer.echo(f"{summary.checked:,} files checked, {summary.damaged:,} damaged: {verb} "
               f"{len(summary.repaired):,} (uploaded {summary.uploaded:,}, copied "
               f"{summary.copied:,}), {len(summary.unrepairable):,} unrepairable; "
               f"manifest {'committed' if summary.committed else 'unchanged'}"
               + (f"; requests: {requests}" if requests else ""))


def print_forget(summary: ForgetSummary, as_json: bool, quiet: bool) -> None:
    from baycat.manifest.generations import format_time

    if as_json:
        print_json(summary.to_json())
        return
    if not quiet:
        for decision in [*summary.kept, *summary.forgotten]:
            what = f"keep   ({', '.join(decision.reasons)})" if decision.kept else "forget"
            gen = decision.generation
            typer.echo(f"{format_time(gen.time_ns):<21} {what:<40} {gen.files:>10,} files")
        verb = "would forget" if summary.dry_run else "forgot"
        typer.echo(f"kept {len(summary.kept):,} generations; {verb} "
                   f"{len(summary.forgotten):,}")
    if summary.prune is not None:
        print_prune(summary.prune, False, quiet)


def print_prune(summary: PruneSummary, as_json: bool, quiet: bool) -> None:
    if as_json:
        print_json(summary.to_json())
        return
    for item in summary.failed:
        write_stderr(f"baycat: cannot delete {item['key']}: {redact(item['message'])}")
    if summary.gc is not None:
        for key, message in summary.gc.failed:
            write_stderr(f"baycat: cannot delete {key}: {redact(message)}")
    if quiet:
        return
    verb = "would free" if summary.dry_run else "freed"
    requests = ", ".join(f"{k} {v}" for k, v in sorted(summary.requests.items()))
    packs = summary.gc.deleted_packs if summary.gc is not None else 0
    typer.echo(f"{verb} {summary.freed_objects:,} objects ({summary.freed_bytes:,} B): "
               f"{summary.deleted_objects:,} of deleted files, {summary.deleted_versions:,} "
               f"noncurrent versions, {packs:,} packs; {len(summary.locked):,} locked, "
               f"{summary.young:,} too young; requests: {requests or 'none'}")


def print_history(found: History, as_json: bool) -> None:
    from baycat.manifest.generations import format_time

    if as_json:
        print_json(found.to_json())
        return
    typer.echo(f"{'time (UTC)':<21} {'files':>12} {'bytes':>18}")
    for gen in found.generations:
        typer.echo(f"{format_time(gen.time_ns):<21} {gen.files:>12,} {gen.file_bytes:>18,}")


def print_gc(summary: GcSummary, as_json: bool, quiet: bool) -> None:
    if as_json:
        print_json(summary.to_json())
        return
    for key, message in summary.failed:
        write_stderr(f"baycat: cannot delete {key}: {redact(message)}")
    if quiet:
        return
    verb = "would delete" if summary.dry_run else "deleted"
    extra = f"; {len(summary.foreign_keys)} unknown keys left alone" \
        if summary.foreign_keys else ""
    typer.echo(f"{verb} {summary.deleted_packs:,} packs ({summary.deleted_bytes:,} B); "
               f"kept {summary.live_packs:,} in use and {summary.recent_packs:,} recent"
               + (f", {summary.locked_packs:,} under Object Lock" if summary.locked_packs
                  else "") + extra)
    if summary.aborted_uploads or summary.recent_uploads or summary.removed_temp_files:
        verb = "would abort" if summary.dry_run else "aborted"
        typer.echo(f"{verb} {summary.aborted_uploads:,} incomplete multipart uploads (kept "
                   f"{summary.recent_uploads:,} recent); "
                   f"{'would remove' if summary.dry_run else 'removed'} "
                   f"{summary.removed_temp_files:,} leftover temp files "
                   f"({summary.removed_temp_bytes:,} B)")
