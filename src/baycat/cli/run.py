"""Running one command: its logging, the engine under asyncio with SIGINT/SIGTERM
handled, and the one way a command ends on a baycat error.

    with fatal_errors(on_fatal): start_logging, check the arguments ─┐
    run_engine(work, stop, on_fatal) ────────────────────────────────┤ BaycatError
                                                                     ▼
        on_fatal(exc) (--json: its one object) → `baycat: error: ...` → its exit code

The exit codes are `baycat.errors.ExitCode`; every error carries its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer

from baycat.cli.logs import setup_logging
from baycat.cli.output import write_stderr
from baycat.errors import BaycatError, ExitCode, Interrupted, UsageError, first_of
from baycat.redact import redact
from baycat.stop import StopRequest

T = TypeVar("T")
FatalFunc = Callable[[BaycatError], None]


@dataclass(slots=True)
class LogSettings:
    """The global --log-level and --log-file: set by the app's callback, applied by each
    command (which knows --quiet)."""

    level: str | None = None
    file: Path | None = None


log_settings = LogSettings()


@contextmanager
def fatal_errors(on_fatal: FatalFunc | None = None) -> Iterator[None]:
    """A BaycatError raised inside ends the command: `on_fatal` sees it first (--json
    prints its one object), then `baycat: error: MESSAGE` (redacted) on stderr and the
    error's exit code."""
    try:
        yield
    except BaycatError as exc:
        if on_fatal is not None:
            on_fatal(exc)
        write_stderr(f"baycat: error: {redact(str(exc))}")
        raise typer.Exit(int(exc.exit_code)) from None


def start_logging(quiet: bool) -> None:
    """Apply --log-level/--log-file; UsageError when the log file can't be opened (call
    it inside `fatal_errors`, so that --json still prints its object)."""
    try:
        setup_logging(log_settings.level, log_settings.file, write_stderr, quiet)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _baycat_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The error that ended a run, out of task groups (a BaycatError, else an interrupt)."""
    return first_of(group, (BaycatError,)) or first_of(group, (KeyboardInterrupt,))


def run_engine(coro: Coroutine[Any, Any, T], stop: StopRequest | None = None,
               on_fatal: FatalFunc | None = None) -> T:
    """Run the engine, turning baycat errors into one line and an exit code
    (`on_fatal` first sees the error: --json prints its one object).

    With `stop`: the first SIGINT/SIGTERM asks the engine to stop cleanly (commit what
    completed, exit 130); a second one exits at once (safe: every commit is atomic)."""

    async def main() -> T:
        if stop is not None:
            loop = asyncio.get_running_loop()

            def on_signal() -> None:
                if stop.requested:
                    os._exit(int(ExitCode.INTERRUPTED))
                stop.request()
                write_stderr("baycat: stopping: finishing in-flight transfers and committing "
                             "what completed (signal again to exit at once)")

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
        return await coro

    with fatal_errors(on_fatal):
        try:
            return asyncio.run(main())
        except BaseExceptionGroup as group:
            inner = _baycat_error(group)
            if inner is None:
                raise
            raise inner from None
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
