"""The `baycat` app: the typer objects, the global options (--version, --log-level,
--log-file; --config and the BAYCAT_* variables come from cli/config.py), the table of
commands and `main()`.

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
from pathlib import Path
from typing import Annotated

import typer

from baycat import version
from baycat.cli import browse, inspect, keys, manifest, retention, sync
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

app = typer.Typer(
    name="baycat",
    help="Back up a directory tree to S3 (or a local directory) re-reading and re-sending "
    "as little as possible.\n\n" + CONFIG_HELP + "\n\n" + EXIT_CODES_HELP,
    cls=ConfigGroup,
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
key_app = typer.Typer(
    help="The passwords and key files that open an encrypted backup (sync --encrypt); "
    "changing them re-encrypts no data.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(key_app, name="key")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"baycat {version.__version__}")
        raise typer.Exit()


@app.callback()
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


# The commands, in the order `baycat --help` and `baycat manifest --help` list them.
app.command("sync", cls=FilterCommand, epilog=EXIT_CODES_HELP)(sync.sync_command)
app.command("restore", epilog=EXIT_CODES_HELP)(sync.restore_command)
app.command("verify", epilog=EXIT_CODES_HELP)(inspect.verify_command)
app.command("repair", epilog=EXIT_CODES_HELP)(inspect.repair_command)
app.command("history", epilog=EXIT_CODES_HELP)(inspect.history_command)
app.command("gc", epilog=EXIT_CODES_HELP)(inspect.gc_command)
app.command("ls", epilog=EXIT_CODES_HELP)(browse.ls_command)
app.command("diff", epilog=EXIT_CODES_HELP)(browse.diff_command)
app.command("forget", epilog=EXIT_CODES_HELP)(retention.forget_command)
app.command("prune", epilog=EXIT_CODES_HELP)(retention.prune_command)
manifest_app.command("create", cls=FilterCommand)(manifest.manifest_create)
manifest_app.command("update", cls=FilterCommand)(manifest.manifest_update)
manifest_app.command("show")(manifest.manifest_show)
key_app.command("list", epilog=EXIT_CODES_HELP)(keys.key_list)
key_app.command("add", epilog=EXIT_CODES_HELP)(keys.key_add)
key_app.command("remove", epilog=EXIT_CODES_HELP)(keys.key_remove)
manifest_app.command("estimate-cost")(manifest.manifest_estimate_cost)


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
    app()
