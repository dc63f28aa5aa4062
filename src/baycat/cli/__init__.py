"""The `baycat` command line: the only package that reads flags and the environment.

    main.py      the typer app, the global options, main()
    commands.py  the table of commands; which one the arguments run (no typer)
    early_unlock.py  an encrypted sync's key derivation, started from its arguments
    sync.py      sync, restore                      ┐
    manifest.py  manifest create|update|show|...    ├ the commands
    inspect.py   verify, repair, history, gc        │
    retention.py forget, prune                      ┘
    options.py   shared options; flags and environment -> S3Options, prices, filters
    run.py       logging, the run loop and signals, the one error exit (fatal_errors)
    output.py    every printer: text, --json, the fatal --json object
    display.py   the live display (rich), fed from Progress counters
    logs.py      logging set-up, redacted

Each command checks its arguments inside `fatal_errors`, runs the engine through
`run_engine` and hands the result to a printer; modules above import modules below.

`main` (the console script) answers `baycat --version` before importing any of that:
the app and its commands pull in typer, rich, asyncio and the engine, ~170 ms that
a version check has no use for (issue 18: `--version` within 5x `python -c pass`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typer import Typer


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from baycat.version import __version__

        print(f"baycat {__version__}")
        return
    _start_early_unlock(sys.argv[1:])
    from baycat.cli.main import main as run_app

    run_app()


def _start_early_unlock(args: list[str]) -> None:
    """An encrypted sync's key derivation, started before the app loads (early_unlock.py)."""
    import os

    from baycat.cli.commands import command_position

    position = command_position(args, os.environ)
    if position is not None and args[position] == "sync":
        from baycat.cli import early_unlock

        early_unlock.start(args[position + 1:], os.environ)


def __getattr__(name: str) -> Any:
    if name == "app":  # imported on first use, like the rest of the app
        from baycat.cli.main import app

        return app
    raise AttributeError(f"module 'baycat.cli' has no attribute {name!r}")


app: Typer
__all__ = ["app", "main"]
