"""The `baycat` app: the typer objects, the global options (--version, --log-level,
--log-file; --config and the BAYCAT_* variables come from cli/config.py), the table of
commands and `main()`.

`main()` builds the app with only the command it was asked to run when that is certain
from the arguments alone (`command_to_load`): the other commands' modules are not
imported and typer builds no options for them, ~20 ms of a ~0.16 s no-change run
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from baycat import version
from baycat.cli.config import CONFIG_ENV, FORWARDED_FLAGS, ConfigGroup, default_config_path
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

MANIFEST_HELP = ("Build, refresh and inspect the local manifest (hashes + unix metadata) of "
                 "a tree without syncing.")
KEY_HELP = ("The passwords and key files that open an encrypted backup (sync --encrypt); "
            "changing them re-encrypts no data.")


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """Where a command's function lives (a module of baycat.cli) and how it is shown."""

    module: str
    function: str
    filters: bool = False  # takes --exclude/--include (FilterCommand)
    exit_codes: bool = True  # its --help ends with the exit codes


# The commands, in the order `baycat --help` and `baycat manifest --help` list them.
COMMANDS: dict[str, CommandSpec] = {
    "sync": CommandSpec("sync", "sync_command", filters=True),
    "restore": CommandSpec("sync", "restore_command"),
    "verify": CommandSpec("inspect", "verify_command"),
    "repair": CommandSpec("inspect", "repair_command"),
    "history": CommandSpec("inspect", "history_command"),
    "gc": CommandSpec("inspect", "gc_command"),
    "ls": CommandSpec("browse", "ls_command"),
    "diff": CommandSpec("browse", "diff_command"),
    "forget": CommandSpec("retention", "forget_command"),
    "prune": CommandSpec("retention", "prune_command"),
}
GROUPS: dict[str, tuple[str, dict[str, CommandSpec]]] = {
    "manifest": (MANIFEST_HELP, {
        "create": CommandSpec("manifest", "manifest_create", filters=True, exit_codes=False),
        "update": CommandSpec("manifest", "manifest_update", filters=True, exit_codes=False),
        "show": CommandSpec("manifest", "manifest_show", exit_codes=False),
        "estimate-cost": CommandSpec("manifest", "manifest_estimate_cost", exit_codes=False),
    }),
    "key": (KEY_HELP, {
        "list": CommandSpec("keys", "key_list"),
        "add": CommandSpec("keys", "key_add"),
        "remove": CommandSpec("keys", "key_remove"),
    }),
}
# What may come before the command name for `command_to_load` to trust it: the flags
# forwarded to the command (and the short forms config.py's `_own_options` gives them),
# and the app's options that take a value (which may look like a command name:
# `--log-file sync`).
_FLAGS_BEFORE_COMMAND = frozenset((*FORWARDED_FLAGS, "-q", "-v"))
_VALUE_OPTIONS = ("--log-level", "--log-file")
_COMPLETION_ENV = "_BAYCAT_COMPLETE"  # set by the shell when it asks for completions


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


def command_to_load(args: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The command (or group) `baycat ARGS` runs, when the app with only that one
    behaves exactly as the whole app would; None when the whole app is needed: --help
    or anything else unusual before the command name, shell completion, an unknown
    name, or a config file (`Config` checks every table against every command)."""
    if _COMPLETION_ENV in env or env.get(CONFIG_ENV) or any(
            arg == "--config" or arg.startswith("--config=") for arg in args):
        return None
    rest = iter(args)
    for arg in rest:
        if arg in _VALUE_OPTIONS:
            next(rest, None)
        elif arg.startswith(tuple(f"{option}=" for option in _VALUE_OPTIONS)) or \
                arg in _FLAGS_BEFORE_COMMAND:
            continue
        elif arg in COMMANDS or arg in GROUPS:
            return arg if _no_default_config_file() else None
        else:
            return None
    return None


def _no_default_config_file() -> bool:
    """True when there is certainly no default config file: exactly the case
    load_config reads as an empty config (anything else, e.g. a file it can't read, it
    reports, and the whole app does that)."""
    try:
        os.stat(default_config_path())
    except FileNotFoundError:
        return True
    except OSError:  # e.g. EACCES: load_config reports it
        pass
    return False


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
