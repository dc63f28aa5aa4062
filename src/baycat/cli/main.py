"""The `baycat` app: the typer objects, the global options (--version, --log-level,
--log-file; --config and the BAYCAT_* variables come from cli/config.py) and `main()`;
the table of commands is in cli/commands.py.

`main()` builds the app with only the command it was asked to run when that is certain
from the arguments alone (commands.command_to_load): the other commands' modules are
not imported and typer builds no options for them, ~20 ms of a ~0.16 s no-change run
(issue 18). `--help`, completion, a config file (checked whole against every command)
and anything unusual before the command name get the whole app, as `app` is.

Exit codes (also in README.md):
  0   success
  1   completed, but some files failed (they are listed; they are retried next run)
  2   usage error: bad arguments, missing or unusable source
  3   remote, credential, manifest or conflict error, or baycat's own state
      (DIR/.baycat) can't be written (disk full, read-only)
  4   another baycat holds the tree's lock: nothing was done
  5   a safety limit refused a step (--max-delete: nothing was deleted)
  130 interrupted (SIGINT/SIGTERM)
"""

import gc
import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from baycat import version
from baycat.cli.commands import COMMANDS, GROUPS, CommandSpec, command_to_load
from baycat.cli.config import ConfigGroup
from baycat.cli.logs import LEVELS
from baycat.cli.options import FilterCommand
from baycat.cli.run import log_settings

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 completed with per-file errors; 2 usage error; "
    "3 remote, credential, manifest or conflict error, or DIR/.baycat can't be "
    "written; 4 another baycat holds the tree's lock (nothing done); 5 refused by a "
    "safety limit (--max-delete, --max-changes); 130 interrupted."
)
CONFIG_HELP = (
    "Every option can also be set by an environment variable BAYCAT_<OPTION> (shown "
    "with each option: BAYCAT_TRANSFERS=8; a list option takes whitespace-separated "
    "values) or in the config file ~/.config/baycat/config.toml (--config FILE), whose "
    "[job.NAME] tables `baycat sync --job NAME` runs. Precedence: option > environment "
    "> job > config defaults. The app's options (--log-level, --log-file, --config) may "
    "follow the command name; -q, -v and --json may precede it."
)

def _version(value: bool) -> None:
    if value:
        typer.echo(f"baycat {version.__version__}")
        raise typer.Exit()


def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
    log_level: Annotated[str | None, typer.Option(
        "--log-level", envvar="BAYCAT_LOGLEVEL", metavar="LEVEL",
        help=f"Log level: {', '.join(LEVELS)} (default: warning; also BAYCAT_LOGLEVEL). "
        "debug includes botocore's request log, with credentials and signatures "
        "redacted. Example: baycat --log-level info sync ~/data s3://b/data/")] = None,
    log_file: Annotated[Path | None, typer.Option(
        "--log-file", metavar="FILE", dir_okay=False,
        help="Append the log to FILE (timestamps; warnings still go to stderr). "
        "Example: baycat --log-file /var/log/baycat.log sync ...")] = None,
) -> None:
    if log_level is not None and log_level.lower() not in LEVELS:
        raise typer.BadParameter(f"must be one of {', '.join(LEVELS)}",
                                 param_hint="--log-level")
    log_settings.level = log_level
    log_settings.file = log_file


def _register(app: typer.Typer, name: str, spec: CommandSpec) -> None:
    module = importlib.import_module(f"baycat.cli.{spec.module}")
    extra: dict[str, Any] = {"epilog": EXIT_CODES_HELP} if spec.exit_codes else {}
    if spec.filters:
        extra["cls"] = FilterCommand
    app.command(name, **extra)(getattr(module, spec.function))


def make_app(only: str | None = None) -> typer.Typer:
    """The app with every command, or with only the command (or group) `only`."""
    app = typer.Typer(
        name="baycat",
        help="Back up a directory tree to S3 (or a local directory) re-reading and "
        "re-sending as little as possible.\n\n" + CONFIG_HELP + "\n\n" + EXIT_CODES_HELP,
        cls=ConfigGroup,
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
    )
    app.callback()(main_callback)
    for name, spec in COMMANDS.items():
        if only in (None, name):
            _register(app, name, spec)
    for group_name, (group_help, commands) in GROUPS.items():
        if only not in (None, group_name):
            continue
        group = typer.Typer(help=group_help, no_args_is_help=True, rich_markup_mode=None)
        app.add_typer(group, name=group_name)
        for name, spec in commands.items():
            _register(group, name, spec)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole app, built on first use (tests, `baycat.cli.app`)
        app = globals()["app"] = make_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Allocations between automatic collections of the youngest generation (CPython: 700).
GC_GEN0_THRESHOLD = 50_000


def main() -> None:
    # The walk and the manifest codec allocate millions of short-lived tuples that form
    # no cycles; with CPython's default thresholds the collector ran every 700 of them
    # and took ~20 % of the CPU of a no-change `manifest update` (measured on 200k
    # files: 1.66 s user -> 1.26-1.34 s). Collect far less often (cycles are still
    # found), and leave what start-up created (modules, classes) out of every pass.
    # Set here, not in the library: a program using the API keeps its own policy.
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 100)
    make_app(command_to_load(sys.argv[1:], os.environ))()
