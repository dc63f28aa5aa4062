"""Start-up cost: what `import baycat` and `baycat --version` load (issue 18).

Seconds are measured in benchmarks/, never here; these tests pin the imports that made
start-up slow, so a new eager import shows up as a failing test, not a slower figure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import baycat
from tests.cli_helpers import drop_dac_override, lock_out, run_baycat

HEAVY = ("typer", "rich", "asyncio", "aiohttp", "aiobotocore", "baycat.api", "baycat.ops")


def _modules_loaded_by(code: str, env: dict[str, str] | None = None) -> set[str]:
    # atexit: a command that ends by SystemExit (typer does) still reports its modules.
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('\\n'.join(sys.modules), file=sys.stderr))\n"
              f"{code}\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, env={**os.environ, **(env or {})})
    modules = set(done.stderr.split())
    assert "sys" in modules  # the report was printed
    return modules


def _modules_of_command(*argv: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules `baycat ARGV` loads (it must succeed: exit code 0)."""
    return _modules_loaded_by(f"import sys; sys.argv = ['baycat', *{list(argv)!r}]\n"
                              "from baycat.cli import main\n"
                              "try:\n    main()\n"
                              "except SystemExit as exc:\n    assert not exc.code, exc.code",
                              env)


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m in names or m.startswith(tuple(n + "." for n in names)))


# What a local run has no use for: the S3 client stack, the live display (stderr is not a
# terminal here), pattern matching without patterns, the other commands' engines.
S3_STACK = ("aiobotocore", "botocore", "aiohttp", "baycat.store.s3", "baycat.store.s3_fast",
            "baycat.store.http")
NOT_FOR_A_LOCAL_SYNC = (*S3_STACK, "rich", "pathspec", "tomllib", "baycat.ops.restore",
                        "baycat.ops.restore_writer", "baycat.ops.verify", "baycat.ops.browse",
                        "baycat.manifest.validate",
                        # ~10 ms (email, zipfile, csv) and ~120 ms (typer 0.29's option
                        # coercion): neither has a place in a no-change run.
                        "importlib.metadata", "pydantic")


# The modules of the commands a sync is not (cli/main.py: make_app(only=...)).
OTHER_COMMANDS = ("baycat.cli.browse", "baycat.cli.inspect", "baycat.cli.keys",
                  "baycat.cli.retention", "baycat.cli.manifest")


def _one_file_tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    return src


def test_a_local_no_change_sync_loads_only_the_sync_engine(tmp_path: Path) -> None:
    src, dst = _one_file_tree(tmp_path), tmp_path / "dst"
    first = _modules_of_command("sync", str(src), str(dst))
    assert "baycat.ops.backup" in first  # the report is of a run that synced
    again = _modules_of_command("sync", str(src), str(dst))
    assert _loaded(again, NOT_FOR_A_LOCAL_SYNC) == []
    assert (dst / "a.txt").read_bytes() == b"a"


def test_a_command_loads_no_other_commands_module(tmp_path: Path) -> None:
    src, dst = _one_file_tree(tmp_path), tmp_path / "dst"
    no_config = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}  # no default config file
    modules = _modules_of_command("-q", "--log-level", "info", "sync", str(src), str(dst),
                                  env=no_config)
    assert "baycat.cli.sync" in modules
    assert _loaded(modules, OTHER_COMMANDS) == []
    # A config file is checked against every command: then all of them load.
    (tmp_path / "xdg" / "baycat").mkdir(parents=True)
    (tmp_path / "xdg" / "baycat" / "config.toml").write_text("[sync]\n")
    modules = _modules_of_command("sync", str(src), str(dst), env=no_config)
    assert _loaded(modules, OTHER_COMMANDS) == sorted(OTHER_COMMANDS)


def test_manifest_update_loads_no_sync_engine(tmp_path: Path) -> None:
    src = _one_file_tree(tmp_path)
    _modules_of_command("manifest", "create", str(src))
    modules = _modules_of_command("manifest", "update", str(src))
    assert "baycat.ops.manifest" in modules
    assert _loaded(modules, (*NOT_FOR_A_LOCAL_SYNC, "baycat.ops.backup",
                             "baycat.manifest.remote")) == []


def test_a_warning_still_reaches_stderr_without_the_display(tmp_path: Path) -> None:
    # The console is made on first use: what is printed must not depend on it.
    done = subprocess.run([sys.executable, "-m", "baycat", "sync", str(tmp_path / "nope"),
                           str(tmp_path / "dst")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("baycat: error: ")


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))


def test_import_baycat_loads_no_engine() -> None:
    assert _heavy(_modules_loaded_by("import baycat")) == []


def test_version_flag_answers_before_the_app_is_imported() -> None:
    modules = _modules_loaded_by(
        "import sys; sys.argv = ['baycat', '--version']\n"
        "from baycat.cli import main; main()")
    assert _heavy(modules) == []
    done = subprocess.run([sys.executable, "-m", "baycat", "--version"],
                          capture_output=True, text=True, check=True)
    assert done.stdout == f"baycat {baycat.__version__}\n"


def test_the_version_is_the_installed_distributions() -> None:
    # version.py is the one source; pyproject.toml reads it (dynamic version).
    from importlib.metadata import version

    assert version("baycat") == baycat.__version__


def test_every_public_name_resolves() -> None:
    for name in baycat.__all__:
        assert getattr(baycat, name) is not None, name
    assert "sync_blocking" in dir(baycat)


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["sync", "a", "b"], {}, "sync"),
    (["-q", "--json", "-v", "restore", "s3://b/p/", "d"], {}, "restore"),
    (["--log-file", "sync", "restore", "x", "y"], {}, "restore"),  # a value, not a command
    (["--log-level=info", "key", "add", "d"], {}, "key"),
    (["manifest", "update", "d"], {}, "manifest"),
    (["--help", "sync"], {}, None),  # the app's help lists every command
    (["--version", "sync"], {}, None),
    (["--config", "c.toml", "sync", "a", "b"], {}, None),
    (["sync", "a", "b", "--config=c.toml"], {}, None),
    (["sync", "a", "b"], {"BAYCAT_CONFIG": "c.toml"}, None),
    (["sync", "a", "b"], {"_BAYCAT_COMPLETE": "bash_complete"}, None),
    (["synk", "a", "b"], {}, None),  # click says what is wrong, from the whole app
    ([], {}, None),
])
def test_which_command_is_loaded_alone(args: list[str], env: dict[str, str],
                                       expected: str | None, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from baycat.cli.commands import command_to_load

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert command_to_load(args, env) == expected
    (tmp_path / "baycat").mkdir()
    (tmp_path / "baycat" / "config.toml").write_text("")
    assert command_to_load(args, env) is None  # a default config file: every command


def test_an_unreadable_config_directory_is_reported_as_before(tmp_path: Path) -> None:
    """The default config file can't be looked for (its directory is locked): the run
    stops with one line naming it, exit 2, as before commands were loaded alone."""
    xdg = tmp_path / "xdg"
    (xdg / "baycat").mkdir(parents=True)
    src = _one_file_tree(tmp_path)
    lock_out(xdg / "baycat")
    proc = run_baycat("sync", src, tmp_path / "dst", env={"XDG_CONFIG_HOME": str(xdg)},
                      preexec_fn=drop_dac_override, check=2)
    err = proc.stderr.decode()
    assert err.startswith("baycat: error: ") and "config.toml" in err, err
    assert err.count("\n") == 1, err
    assert not (tmp_path / "dst").exists()
