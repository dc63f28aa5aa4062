"""Where an option's value comes from when it is not on the command line: a
`BAYCAT_<OPTION>` environment variable, a job, or the config file's defaults.

    --transfers 8  >  BAYCAT_TRANSFERS=8  >  [job.NAME] (sync --job NAME)
                   >  [sync] (the command's table)  >  [defaults]  >  built-in default

Click already resolves "command line > envvar > ctx.default_map > default"; this module
only fills in what click reads, from the options the commands declare (nothing here
names an option, so a new option gets its variable and its config key by existing):

- every option without an `envvar` gets `BAYCAT_<LONG_NAME>` (`--log-file` ->
  BAYCAT_LOG_FILE); options that act at once (--help, --version) get none;
- each command context's `default_map` is built from the TOML file (`--config FILE`,
  BAYCAT_CONFIG, else $XDG_CONFIG_HOME/baycat/config.toml), checked whole first: an
  unknown table or key, a wrong type, a missing job -> `ConfigError` (one line, exit 2);
- the app's own options (--log-level, --log-file, --config) are accepted after the
  command name too, and -q/-v/--json before it (`ConfigGroup`).

The file:

    [defaults]                # options of any command that has them
    log-level = "info"
    transfers = 16
    [sync]                    # one command's (over [defaults]); [manifest.create] ...
    keep-generations = 90
    [job.home]                # `baycat sync --job home`: sync's options + source, destination
    source = "~/"
    destination = "s3://backups/home/"
    exclude = ["*.tmp", ".cache/"]

It holds no secrets (credentials stay in the AWS config or environment), so it need
not be private; a URL with a token in it (a healthcheck URL) belongs in the environment.
"""

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
from typer._click import types as click_types
from typer._click.core import Command, Context, Parameter, ParameterSource
from typer._click.exceptions import BadParameter, ClickException
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.models import TyperPath

from baycat.cli.commands import CONFIG_ENV, FORWARDED_FLAGS, default_config_path

# typer carries its own copy of click: these are its classes, used only through click's
# API. An option's click type says what its value is (typer makes int, float, bool, Path
# and list[str] annotations INT, FLOAT, BOOL, TyperPath and a `multiple` STRING), and
# `type_cast_value` checks a value as the parser would. typer 0.29 replaced that with
# pydantic, which costs every command ~0.12 s at start (pyproject.toml holds it back).

ENV_PREFIX = "BAYCAT_"
JOB_COMMANDS = ("sync",)  # the commands that take --job NAME
# Keys of a job that name a command's arguments rather than its options.
JOB_ARGUMENTS = ("source", "destination")
# Options typer adds that act at once, like --help: never configured.
_ACTS_AT_ONCE = ("install_completion", "show_completion")
# What a path-valued option's metavar says; a leading ~ is expanded in those.
_PATH_METAVARS = ("FILE", "DIR", "SRC", "DST")
_META_CONFIG = "baycat.config"  # (path, given explicitly)
_META_JOB = "baycat.job"
_META_FORWARD = "baycat.forward"
_META_LOADED = "baycat.config_loaded"
_META_COMMAND_CONFIG_DONE = "baycat.command_config_done"
Callback = Callable[[Context, Parameter, Any], Any]


class ConfigError(ClickException):
    """A config file (or --job) that can't be used: one line, exit code 2 (usage)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        typer.echo(f"baycat: error: {self.format_message()}", err=True)


# ---- the options the commands declare ---------------------------------------------------


def _long_name(param: Parameter) -> str | None:
    """The config key of an option (its long name without the dashes), None for options
    that are not configurable (--help, --version, this module's own: they expose no
    value)."""
    if not isinstance(param, TyperOption) or param.is_eager or not param.expose_value \
            or param.name in _ACTS_AT_ONCE:
        return None
    for opt in param.opts:
        if opt.startswith("--"):
            return opt[2:]
    return None


def _name(param: Parameter) -> str:
    """A parameter's Python name (click types it optional; every typer parameter has one)."""
    assert param.name is not None
    return param.name


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace("-", "_")


def _options(command: Command) -> dict[str, Parameter]:
    """Config key -> parameter, for one command's own options."""
    found: dict[str, Parameter] = {}
    for param in command.params:
        key = _long_name(param)
        if key is not None:
            found[key] = param
    return found


def _arguments(command: Command) -> dict[str, Parameter]:
    return {p.name: p for p in command.params
            if isinstance(p, TyperArgument) and p.name in JOB_ARGUMENTS}


def _leaves(group: TyperGroup, path: tuple[str, ...] = ()
            ) -> Iterator[tuple[tuple[str, ...], Command]]:
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from _leaves(command, (*path, name))
        else:
            yield (*path, name), command


# ---- reading and checking the file ------------------------------------------------------


def _normal(key: str) -> str:
    return key.replace("_", "-")


def _expand(param: Parameter, value: Any) -> Any:
    if isinstance(value, list):
        return [_expand(param, v) for v in value]
    if isinstance(value, str) and value.startswith("~") and (
            isinstance(param.type, TyperPath) or param.metavar in _PATH_METAVARS):
        return os.path.expanduser(value)
    return value


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML true is an int


# By click type (a range is a subclass of its number type); anything else is a string.
_EXPECTED: tuple[tuple[type[click_types.ParamType], str, Callable[[Any], bool]], ...] = (
    (click_types.BoolParamType, "true or false", lambda v: isinstance(v, bool)),
    (click_types.IntParamType, "an integer", _is_integer),
    (click_types.FloatParamType, "a number",
     lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
)


def _expected(param: Parameter) -> tuple[str, Callable[[Any], bool]]:
    for kind, expected, fits in _EXPECTED:
        if isinstance(param.type, kind):
            return expected, fits
    return "a string", lambda v: isinstance(v, str)


def _integer_as_text(param: Parameter, value: Any) -> Any:
    """A TOML integer for a plain string option, as the command line would pass it: the
    options that take a count or a rate with an optional suffix (`max-changes = 500`,
    `bwlimit = 1048576`) read naturally without quotes. Anything else is left as it is."""
    if isinstance(param.type, click_types.StringParamType) and _is_integer(value):
        return str(value)
    return value


def _checked(param: Parameter, value: Any, where: str, ctx: Context | None) -> Any:
    """`value` from the file for `param`, as the option parser will take it; ConfigError
    when its TOML type is wrong or the option refuses it (a range, a choice)."""
    if param.multiple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{where}: expected a string or a list of strings, "
                              f"not {value!r}")
        value = items
    else:
        value = _integer_as_text(param, value)
        expected, fits = _expected(param)
        if not fits(value):
            raise ConfigError(f"{where}: expected {expected}, not {value!r}")
    value = _expand(param, value)
    if ctx is not None and not isinstance(value, bool):
        try:
            param.type_cast_value(ctx, value)
        except BadParameter as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
    return value


def _table(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, not {data!r}")
    return data


class Config:
    """A config file, checked whole against the app's commands: what each command (and
    each job) takes from it, by parameter name."""

    def __init__(self, path: Path, data: dict[str, Any], ctx: Context) -> None:
        self.path = path
        self.defaults: dict[str, Any] = {}  # config key -> value, from [defaults]
        self.commands: dict[tuple[str, ...], dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        root = ctx.find_root().command
        assert isinstance(root, TyperGroup)
        self._ctx = ctx
        self._leaves = dict(_leaves(root))
        self._groups = {path[:i] for path in self._leaves for i in range(1, len(path))}
        self._root = root
        for name, value in data.items():
            if name == "defaults":
                self._check_defaults(_table(value, self._where(name)))
            elif name == "job":
                for job, table in _table(value, self._where(name)).items():
                    self._check_job(job, _table(table, self._where(f"job.{job}")))
            elif (name,) in self._groups or (name,) in self._leaves:
                self._check_command((name,), value)
            else:
                known = ", ".join(["defaults", "job", *dict.fromkeys(
                    p[0] for p in self._leaves)])
                raise ConfigError(f"{path}: unknown table [{name}] (expected one of "
                                  f"{known})")

    def _where(self, table: str) -> str:
        return f"{self.path}: [{table}]"

    def _settings(self, table: dict[str, Any], params: dict[str, Parameter], where: str,
                  command: str) -> dict[str, Any]:
        """A table's keys checked against `params`: parameter name -> value."""
        out: dict[str, Any] = {}
        for raw, value in table.items():
            key = _normal(raw)
            param = params.get(key)
            if param is None:
                raise ConfigError(f"{where}: unknown key {raw!r} ({command} has no "
                                  f"--{key})")
            if param.name in out:
                raise ConfigError(f"{where}: {raw!r} is given twice")
            out[_name(param)] = _checked(param, value, f"{where} {raw}", self._ctx)
        return out

    def _check_defaults(self, table: dict[str, Any]) -> None:
        every: dict[str, list[Parameter]] = {}
        for command in (self._root, *self._leaves.values()):
            for key, param in _options(command).items():
                every.setdefault(key, []).append(param)
        for raw, value in table.items():
            key = _normal(raw)
            if not every.get(key):
                raise ConfigError(f"{self._where('defaults')}: unknown key {raw!r} (no "
                                  f"command has --{key})")
            if key in self.defaults:
                raise ConfigError(f"{self._where('defaults')}: {raw!r} is given twice")
            for param in every[key]:
                _checked(param, value, f"{self._where('defaults')} {raw}", self._ctx)
            self.defaults[key] = value

    def _check_command(self, path: tuple[str, ...], value: Any) -> None:
        where = self._where(".".join(path))
        table = _table(value, where)
        if path in self._groups:
            for name, sub in table.items():
                if (*path, name) not in self._leaves and (*path, name) not in self._groups:
                    raise ConfigError(f"{where}: unknown command {name!r}")
                self._check_command((*path, name), sub)
            return
        self.commands[path] = self._settings(table, _options(self._leaves[path]), where,
                                             f"`baycat {' '.join(path)}`")

    def _check_job(self, job: str, table: dict[str, Any]) -> None:
        name = JOB_COMMANDS[0]
        command = self._leaves[(name,)]
        where = self._where(f"job.{job}")
        settings = self._settings(table, {**_options(command), **_arguments(command)},
                                  where, f"`baycat {name}`")
        missing = [arg for arg in JOB_ARGUMENTS if arg not in settings]
        if missing:
            raise ConfigError(f"{where}: a job needs {' and '.join(missing)}")
        self.jobs[job] = settings

    def default_map(self, path: tuple[str, ...], command: Command,
                    job: str | None = None) -> dict[str, Any]:
        """What `command` (at `path` below the app) takes from the file: [defaults],
        then its own table, then the job; parameter name -> value."""
        out: dict[str, Any] = {}
        options = _options(command)
        for key, value in self.defaults.items():
            param = options.get(key)
            if param is not None and (path, param.name) not in NOT_SHARED:
                # checked at load; this makes a list of a string
                out[_name(param)] = _checked(param, value, self._where("defaults"), None)
        out.update(self.commands.get(path, {}))
        if job is not None:
            if job not in self.jobs:
                known = ", ".join(sorted(self.jobs)) or "none"
                raise ConfigError(f"{self.path}: no job {job!r} (no [job.{job}] table; "
                                  f"jobs: {known})")
            out.update(self.jobs[job])
        return out


def load_config(path: Path, explicit: bool, ctx: Context) -> Config:
    """The config at `path`, checked; a missing file is an empty config unless it was
    named (--config / BAYCAT_CONFIG)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: no such config file") from None
        return Config(path, {}, ctx)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    import tomllib  # only with a file: most runs have none and skip its import

    try:
        data = tomllib.loads(raw.decode())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8") from None
    return Config(path, data, ctx)


# ---- wiring it into the option parser ---------------------------------------------------


def _config(ctx: Context) -> Config:
    path, explicit = ctx.meta.get(_META_CONFIG) or (default_config_path(), False)
    loaded: dict[Path, Config] = ctx.meta.setdefault(_META_LOADED, {})
    if path not in loaded:
        loaded[path] = load_config(path, explicit, ctx)
    return loaded[path]


def _command_path(ctx: Context) -> tuple[str, ...]:
    names: list[str] = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return tuple(reversed(names))


def _on_root_config(ctx: Context, param: Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[_META_CONFIG] = (Path(value).expanduser(), True)
    ctx.default_map = _config(ctx).default_map((), ctx.command)


def _on_command_config(ctx: Context, param: Parameter, value: str | None) -> None:
    """A command's --config (and --job): rebuild its default_map. A file named only here
    also sets the app's own options it holds (--log-level) not given otherwise."""
    if value is not None:
        ctx.meta[_META_CONFIG] = (Path(value).expanduser(), True)
        root = ctx.find_root()
        from_file = _config(ctx).default_map((), root.command)
        changed = False
        for option in root.command.params:
            name = option.name
            if name in from_file and root.get_parameter_source(name) in (
                    ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
                root.params[name] = option.process_value(root, from_file[name])
                changed = True
        if changed:
            _rerun_root_callback(root)
    ctx.default_map = _config(ctx).default_map(_command_path(ctx), ctx.command,
                                               ctx.meta.get(_META_JOB))
    ctx.meta[_META_COMMAND_CONFIG_DONE] = True


def _on_job(ctx: Context, param: Parameter, value: str | None) -> None:
    # Both are eager, processed in command-line order, and an eager option not given
    # comes after those given: unless --config came first, its callback (which runs
    # in any case) is still to come and reads the job.
    if value is not None:
        ctx.meta[_META_JOB] = value
        if ctx.meta.get(_META_COMMAND_CONFIG_DONE):
            _on_command_config(ctx, param, None)


def _rerun_root_callback(root: Context) -> None:
    # The app's callback only records its options (cli/run.py log_settings): running it
    # again with what a command's alias or --config changed is how those take effect.
    if root.command.callback is not None:
        root.invoke(root.command.callback, **root.params)


def _alias_callback(name: str) -> Callback:
    def apply(ctx: Context, param: Parameter, value: Any) -> None:
        if value is None:
            return  # not on this command's line: the app's own value stands
        root = ctx.find_root()
        root.params[name] = value
        _rerun_root_callback(root)

    return apply


def _alias(option: TyperOption) -> TyperOption:
    """The app's `option`, accepted after the command name too; only from the command
    line (its environment variable and config key were read by the app)."""
    alias = copy.copy(option)
    alias.default = None
    alias.envvar = None
    alias.expose_value = False
    alias.callback = _alias_callback(_name(option))
    return alias


def _own_options(
    config: Annotated[str | None, typer.Option(
        "--config", metavar="FILE", envvar=CONFIG_ENV, show_envvar=True, is_eager=True,
        expose_value=False,
        help="Read option defaults and jobs from this TOML file (default: "
        "$XDG_CONFIG_HOME/baycat/config.toml, i.e. ~/.config/baycat/config.toml). "
        "Precedence: option > BAYCAT_<OPTION> > job > [command] > [defaults]. Format in "
        "README \"Configuration\". Example: --config /etc/baycat/config.toml")] = None,
    job: Annotated[str | None, typer.Option(
        "--job", metavar="NAME", is_eager=True, expose_value=False,
        help="Run the job [job.NAME] of the config file: its source, destination and "
        "options (options and BAYCAT_* variables given here win). "
        "Example: baycat sync --job home")] = None,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", expose_value=False,
        help="The command's --quiet, given before the command name.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", expose_value=False,
        help="The command's --verbose, given before the command name.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", expose_value=False,
        help="The command's --json, given before the command name.")] = False,
) -> None:
    """Only its parameters are used: the options this module adds to the commands."""


def _make_own() -> dict[str, TyperOption]:
    scratch = typer.Typer()
    scratch.command()(_own_options)
    command = typer.main.get_command(scratch)
    return {_name(p): p for p in command.params if isinstance(p, TyperOption)}


def _with_callback(option: TyperOption, callback: Callback) -> TyperOption:
    option = copy.copy(option)
    option.callback = callback
    return option


def _forward_callback(flag: str) -> Callback:
    def record(ctx: Context, param: Parameter, value: Any) -> None:
        if value:
            ctx.meta.setdefault(_META_FORWARD, []).append(flag)

    return record


# Options that remove the user's own files: taken only from the command line or the
# command's own table, never from [defaults] or a BAYCAT_* variable. `delete = true` in
# [defaults], meant for sync (which keeps what it deletes in the bucket's history), must
# not make every restore delete what DST holds and the backup doesn't.
NOT_SHARED: frozenset[tuple[tuple[str, ...], str]] = frozenset({(("restore",), "delete")})


def _add_envvars(command: Command, path: tuple[str, ...] = ()) -> None:
    for param in command.params:
        key = _long_name(param)
        if key is None or (path, param.name) in NOT_SHARED:
            continue
        assert isinstance(param, TyperOption)
        name = env_name(key)
        if param.envvar is None:
            param.envvar = name
        elif isinstance(param.envvar, str) and param.envvar != name:
            param.envvar = [param.envvar, name]  # an older spelling keeps working
        param.show_envvar = True


class ConfigGroup(TyperGroup):
    """The app's group: gives every option its BAYCAT_* variable and config key, and
    every command the app's own options (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        own = _make_own()
        globals_ = [p for p in self.params
                    if isinstance(p, TyperOption) and _long_name(p) is not None]
        _add_envvars(self)
        self.params.append(_with_callback(own["config"], _on_root_config))
        for flag in FORWARDED_FLAGS:
            option = next(p for p in own.values() if flag in p.opts)
            self.params.append(_with_callback(option, _forward_callback(flag)))
        for path, command in _leaves(self):
            _add_envvars(command, path)
            command.params.extend(_alias(option) for option in globals_)
            command.params.append(_with_callback(own["config"], _on_command_config))
            if len(path) == 1 and path[0] in JOB_COMMANDS:
                command.params.append(_with_callback(own["job"], _on_job))

    def resolve_command(self, ctx: Context, args: list[str]
                        ) -> tuple[str | None, Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        forwarded: list[str] = ctx.meta.get(_META_FORWARD, [])
        if command is not None and forwarded:
            takes = {opt for p in command.params if isinstance(p, TyperOption)
                     for opt in p.opts}
            for flag in forwarded:
                if flag not in takes:
                    raise ConfigError(f"`baycat {name}` has no {flag}")
            # In front: the part of a command's arguments that is always options.
            rest = [*forwarded, *rest]
        return name, command, rest
