"""Options from the environment and the config file (cli/config.py): precedence seen in
what a sync uploads, jobs, bad files as one-line usage errors, the app's options after
the command name, and that a new option gets its variable and key without more code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from baycat.cli.config import ConfigGroup
from tests.cli_helpers import run_baycat
from tests.targets import Target
from tests.trees import make_tree

TREE = {"keep.txt": b"always", "x.a": b"a", "x.b": b"b", "x.c": b"c", "x.d": b"d",
        "x.e": b"e"}


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def uploaded_names(target: Target, stage: str) -> set[str]:
    names = {key.removeprefix(stage + "/") for key in target.objects()
             if key.startswith(stage + "/")}
    return {name for name in names if not name.startswith(".baycat/")}


def test_precedence_flag_env_job_command_defaults(target: Target, tmp_path: Path) -> None:
    """Each layer's --exclude replaces the one below it: what is left out of each
    upload shows which layer won."""
    src = tmp_path / "src"
    make_tree(src, TREE)  # type: ignore[arg-type]
    base = target.url.rstrip("/")
    if target.root is not None:  # a local destination's parent must exist (issue 14 §6)
        target.root.mkdir(parents=True, exist_ok=True)
    layers = [("defaults", "*.a"), ("sync", "*.b"), ("job", "*.c"), ("env", "*.d"),
              ("flag", "*.e")]
    for depth in range(1, len(layers) + 1):
        given = dict(layers[:depth])
        stage = f"stage{depth}"
        text = f'[defaults]\nexclude = "{given["defaults"]}"\n'
        if "sync" in given:
            text += f'[sync]\nexclude = ["{given["sync"]}"]\n'
        text += f'[job.home]\nsource = "{src}"\ndestination = "{base}/{stage}/"\n'
        if "job" in given:
            text += f'exclude = ["{given["job"]}"]\n'
        config = write_config(tmp_path / f"config{depth}.toml", text)
        env = {**target.env, "BAYCAT_CONFIG": str(config)}
        if "env" in given:
            env["BAYCAT_EXCLUDE"] = given["env"]
        args = ["--exclude", given["flag"]] if "flag" in given else []
        proc = run_baycat("sync", "--job", "home", "--json", *args, env=env)
        assert json.loads(proc.stdout)["exit_code"] == 0
        winner = layers[depth - 1][1]
        expected = {name for name in TREE if name != "x" + winner[1:]}
        assert uploaded_names(target, stage) == expected, (depth, winner)


def test_env_list_option_and_xdg_default_file(tmp_path: Path) -> None:
    """BAYCAT_EXCLUDE takes several whitespace-separated patterns; the config file is
    found under $XDG_CONFIG_HOME without --config."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, TREE)  # type: ignore[arg-type]
    xdg = tmp_path / "xdg"
    (xdg / "baycat").mkdir(parents=True)
    write_config(xdg / "baycat" / "config.toml", "[sync]\nexclude = ['x.e']\n")
    run_baycat("sync", src, dst, env={"XDG_CONFIG_HOME": str(xdg),
                                      "BAYCAT_EXCLUDE": "x.a  x.b"})
    assert {p.name for p in dst.iterdir() if p.is_file()} == {"keep.txt", "x.c", "x.d",
                                                                "x.e"}
    run_baycat("sync", src, tmp_path / "dst2", env={"XDG_CONFIG_HOME": str(xdg)})
    assert not (tmp_path / "dst2" / "x.e").exists()
    assert (tmp_path / "dst2" / "x.a").exists()


@pytest.mark.parametrize("how", ["xdg", "env", "option"])
def test_the_file_is_checked_against_every_command_whichever_runs(
        tmp_path: Path, how: str) -> None:
    """`baycat sync` reads a file with other commands' tables and keys, and refuses one
    whose [restore] table is wrong, however the file is found."""
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"a"})
    xdg = tmp_path / "xdg"
    (xdg / "baycat").mkdir(parents=True)
    config = xdg / "baycat" / "config.toml"

    def sync(dst: Path, check: int) -> bytes:
        env = {"XDG_CONFIG_HOME": str(xdg)} if how == "xdg" else \
            {"XDG_CONFIG_HOME": str(tmp_path / "none"), "BAYCAT_CONFIG": str(config)} \
            if how == "env" else {"XDG_CONFIG_HOME": str(tmp_path / "none")}
        extra: list[str | Path] = ["--config", config] if how == "option" else []
        return run_baycat("sync", *extra, src, dst, env=env, check=check).stderr

    write_config(config, "[defaults]\nkeep-last = 3\n[restore]\ndelete = true\n"
                 "[manifest.show]\n[key]\n")
    sync(tmp_path / "d1", check=0)
    assert (tmp_path / "d1" / "a.txt").read_bytes() == b"a"
    write_config(config, "[restore]\ndelete = 'yes'\n")
    err = sync(tmp_path / "d2", check=2).decode()
    assert "[restore] delete: expected true or false" in err, err
    assert not (tmp_path / "d2").exists()


def test_an_integer_for_an_option_that_takes_a_count_or_a_rate(tmp_path: Path) -> None:
    """`max-changes = 500` and `bwlimit = 1048576` mean what the same digits mean on the
    command line; a boolean or a float for them is still refused."""
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"a", "b.txt": b"b"})
    config = write_config(tmp_path / "c.toml", "[sync]\nmax-changes = 500\n"
                          "bwlimit = 1048576\n")
    run_baycat("sync", "--config", config, src, tmp_path / "dst")
    assert (tmp_path / "dst" / "b.txt").read_bytes() == b"b"
    # The digits reach the option: no changed file allowed, and one changed.
    write_config(config, "[sync]\nmax-changes = 0\n")
    (src / "a.txt").write_bytes(b"changed")
    proc = run_baycat("sync", "--config", config, "--json", src, tmp_path / "dst",
                      check=None)
    assert proc.returncode == 5, proc.stderr
    assert (tmp_path / "dst" / "a.txt").read_bytes() == b"a"
    for bad in ("true", "1.5"):
        write_config(config, f"[sync]\nbwlimit = {bad}\n")
        err = run_baycat("sync", "--config", config, src, tmp_path / "d2",
                         check=2).stderr.decode()
        assert "[sync] bwlimit: expected a string" in err, err


def test_job_positional_arguments_win_and_tilde(tmp_path: Path) -> None:
    src, other = tmp_path / "src", tmp_path / "other"
    make_tree(src, {"a.txt": b"a"})
    make_tree(other, {"b.txt": b"b"})
    config = write_config(tmp_path / "c.toml",
                          f'[job.j]\nsource = "{src}"\ndestination = "~/dst"\n')
    home = tmp_path / "home"
    home.mkdir()
    run_baycat("sync", "--config", config, "--job", "j", env={"HOME": str(home)})
    assert (home / "dst" / "a.txt").read_bytes() == b"a"
    run_baycat("sync", "--job", "j", "--config", config, other, tmp_path / "dst3",
               env={"HOME": str(home)})
    assert (tmp_path / "dst3" / "b.txt").exists()


@pytest.mark.parametrize(("text", "args", "message"), [
    ("[sync]\ntransfer = 8\n", (), "[sync]: unknown key 'transfer'"),
    ("[defaults]\nno-such = 1\n", (), "[defaults]: unknown key 'no-such'"),
    ("[job.j]\nsource='a'\ndestination='b'\ntransfers = '8'\n", (),
     "[job.j] transfers: expected an integer"),
    ("[job.j]\nsource='a'\ndestination='b'\nexclude = 3\n", (),
     "[job.j] exclude: expected a string or a list of strings"),
    ("[defaults]\ntransfers = 0\n", (), "[defaults] transfers:"),
    ("[sync]\ndelete = 'yes'\n", (), "[sync] delete: expected true or false"),
    ("[job.j]\nsource = 'a'\n", (), "[job.j]: a job needs destination"),
    ("[job.j]\nsource='a'\ndestination='b'\n", ("--job", "nope"), "no job 'nope'"),
    ("[synk]\n", (), "unknown table [synk]"),
    ("[manifest.crate]\n", (), "[manifest]: unknown command 'crate'"),
    ("[sync\n", (), "not valid TOML"),
])
def test_bad_config_is_one_line_usage_error(tmp_path: Path, text: str,
                                            args: tuple[str, ...], message: str) -> None:
    config = write_config(tmp_path / "bad.toml", text)
    proc = run_baycat("sync", "--config", config, *args, tmp_path / "s", tmp_path / "d",
                      check=2)
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("baycat: error: "), err
    assert str(config) in err and message in err, err
    assert not (tmp_path / "d").exists()


def test_missing_named_config_and_bad_env_value(tmp_path: Path) -> None:
    proc = run_baycat("history", "--config", tmp_path / "none.toml", tmp_path, check=2)
    assert proc.stderr.decode() == f"baycat: error: {tmp_path / 'none.toml'}: no such config " \
        "file\n"
    proc = run_baycat("sync", tmp_path, tmp_path / "d", env={"BAYCAT_TRANSFERS": "0"},
                      check=2)
    assert "BAYCAT_TRANSFERS" in proc.stderr.decode()
    assert b"Traceback" not in proc.stderr


def test_app_options_after_the_command(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"a"})
    proc = run_baycat("sync", "--log-level", "debug", src, tmp_path / "d")
    assert b"baycat: debug:" in proc.stderr
    log = tmp_path / "run.log"
    run_baycat("sync", src, tmp_path / "d", "--log-file", log, "--log-level", "info")
    assert "done: exit code 0" in log.read_text()
    # The command line beats the environment, wherever the option stands.
    proc = run_baycat("sync", "--log-level", "warning", src, tmp_path / "d",
                      env={"BAYCAT_LOGLEVEL": "info"})
    assert b"info" not in proc.stderr
    proc = run_baycat("sync", src, tmp_path / "d", env={"BAYCAT_LOGLEVEL": "info"})
    assert b"baycat: info:" in proc.stderr  # the old variable still works
    proc = run_baycat("sync", src, tmp_path / "d", env={"BAYCAT_LOG_LEVEL": "info"})
    assert b"baycat: info:" in proc.stderr
    # A [defaults] log level from a --config given after the command.
    config = write_config(tmp_path / "c.toml", '[defaults]\nlog-level = "info"\n')
    proc = run_baycat("sync", src, tmp_path / "d", "--config", config)
    assert b"baycat: info:" in proc.stderr


def test_command_flags_before_the_command(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"a"})
    proc = run_baycat("-q", "sync", src, tmp_path / "d")
    assert proc.stdout == b""
    proc = run_baycat("--json", "sync", src, tmp_path / "d")
    assert json.loads(proc.stdout)["exit_code"] == 0
    proc = run_baycat("-q", "history", tmp_path / "d", check=2)
    assert proc.stderr == b"baycat: error: `baycat history` has no --quiet\n"


def test_help_names_the_variables() -> None:
    out = run_baycat("sync", "--help").stdout.decode()
    for name in ("BAYCAT_TRANSFERS", "BAYCAT_EXCLUDE", "BAYCAT_CONFIG", "--job"):
        assert name in out, name
    assert "--log-level" in out  # the app's options, after the command too


def test_a_new_option_gets_a_variable_and_a_key(tmp_path: Path) -> None:
    """Nothing lists the options: one declared anywhere is configurable at once."""
    app = typer.Typer(cls=ConfigGroup)
    seen: list[int] = []

    @app.callback()
    def main() -> None: ...

    @app.command("sync")
    def sync(source: str, destination: str,
             frobs: Annotated[int, typer.Option("--frobs", min=1)] = 1) -> None:
        seen.append(frobs)

    @app.command("other")
    def other(frobs: Annotated[int, typer.Option("--frobs")] = 1) -> None:
        seen.append(frobs)

    config = write_config(tmp_path / "c.toml", "[defaults]\nfrobs = 3\n"
                          "[job.j]\nsource = 'a'\ndestination = 'b'\nfrobs = 4\n")
    runner = CliRunner()
    env = {"BAYCAT_CONFIG": str(config)}
    for args, extra, expected in [(["other"], {}, 3), (["sync", "--job", "j"], {}, 4),
                                  (["sync", "--job", "j"], {"BAYCAT_FROBS": "5"}, 5),
                                  (["sync", "--job", "j", "--frobs", "6"],
                                   {"BAYCAT_FROBS": "5"}, 6)]:
        result = runner.invoke(app, args, env={**env, **extra})
        assert result.exit_code == 0, result.output
        assert seen.pop() == expected, args


def test_restore_deletes_only_when_asked_on_its_own(tmp_path: Path) -> None:
    """`delete = true` in [defaults] (meant for sync) or BAYCAT_DELETE must not make a
    restore remove what DST holds and the backup doesn't: only the flag or [restore]."""
    src, backup = tmp_path / "src", tmp_path / "backup"
    make_tree(src, {"a.txt": b"a"})
    run_baycat("sync", src, backup)
    dst = tmp_path / "dst"
    make_tree(dst, {"mine.txt": b"the user's own file"})
    shared = write_config(tmp_path / "shared.toml", "[defaults]\ndelete = true\n")
    env = {"BAYCAT_CONFIG": str(shared), "BAYCAT_DELETE": "1"}
    run_baycat("restore", backup, dst, env=env)
    assert (dst / "mine.txt").read_bytes() == b"the user's own file"
    assert (dst / "a.txt").read_bytes() == b"a"
    own = write_config(tmp_path / "own.toml", "[restore]\ndelete = true\n")
    run_baycat("restore", backup, dst, env={"BAYCAT_CONFIG": str(own)})
    assert not (dst / "mine.txt").exists()
