"""The commands baycat has and which one an argument list runs, read without typer.

`main()` (cli/__init__.py) reads the arguments here before the app loads: to build the
app with only the command asked for (`command_to_load`, cli/main.py) and to start an
encrypted sync's key derivation at once (cli/early_unlock.py). Nothing here imports
typer, the engine or asyncio.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CONFIG_ENV = "BAYCAT_CONFIG"
# Per-command flags also accepted before the command name (`baycat -q sync ...`).
FORWARDED_FLAGS = ("--quiet", "--verbose", "--json")


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                             ".config")
    return Path(base) / "baycat" / "config.toml"


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


def command_to_load(args: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The command (or group) `baycat ARGS` runs, when the app with only that one
    behaves exactly as the whole app would; None when the whole app is needed: --help
    or anything else unusual before the command name, shell completion, an unknown
    name, or a config file (`Config` checks every table against every command)."""
    position = command_position(args, env)
    return args[position] if position is not None else None


def command_position(args: Sequence[str], env: Mapping[str, str]) -> int | None:
    """Where in `args` the command `command_to_load` trusts is (None: no such one)."""
    if _COMPLETION_ENV in env or env.get(CONFIG_ENV) or any(
            arg == "--config" or arg.startswith("--config=") for arg in args):
        return None
    position = 0
    while position < len(args):
        arg = args[position]
        if arg in _VALUE_OPTIONS:
            position += 1
        elif arg.startswith(tuple(f"{option}=" for option in _VALUE_OPTIONS)) or \
                arg in _FLAGS_BEFORE_COMMAND:
            pass
        elif arg in COMMANDS or arg in GROUPS:
            return position if _no_default_config_file() else None
        else:
            return None
        position += 1
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
