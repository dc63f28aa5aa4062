"""Every command with --json prints its one JSON object on stdout even when it cannot
complete: the object names the error (`fatal_error`) and the exit code, stderr has the
one `baycat: error: ...` line (tests/fatal.py), and without --json stdout stays empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import run_baycat
from tests.fatal import error_line, fatal_json


@pytest.mark.parametrize("command", ["history", "gc"])
def test_missing_backup(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "no-backup"
    doc = fatal_json(run_baycat(command, "--json", missing, check=None), 3, schema=False)
    assert "no baycat backup" in doc["fatal_error"]

    plain = run_baycat(command, missing, check=None)
    assert "no baycat backup" in error_line(plain, 3)
    assert plain.stdout == b""


def test_history_fatal_object_is_an_empty_history(tmp_path: Path) -> None:
    missing = tmp_path / "no-backup"
    doc = fatal_json(run_baycat("history", "--json", missing, check=None), 3, schema=False)
    assert doc["generations"] == [] and doc["requests"] == {}
    assert doc["source"] == str(missing)


def test_gc_fatal_object_is_an_empty_gc_summary(tmp_path: Path) -> None:
    missing = tmp_path / "no-backup"
    proc = run_baycat("gc", "--json", "--dry-run", missing, check=None)
    doc = fatal_json(proc, 3, schema=False)
    assert doc["destination"] == str(missing) and doc["dry_run"] is True
    assert doc["deleted_packs"] == 0 and doc["failed"] == []


@pytest.mark.parametrize(("args", "message"), [
    (["gc", "--json", "--grace", "soon"], "soon"),
    (["gc", "--json", "--endpoint-url", "ftp://example.org"], "endpoint URL"),
    (["history", "--json", "--endpoint-url", "ftp://example.org"], "endpoint URL"),
])
def test_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    doc = fatal_json(run_baycat(*args, tmp_path, check=None), 2, schema=False)
    assert message in doc["fatal_error"]


# ---- errors found before anything runs: the log file, the filter files ------------------

JSON_COMMANDS = [
    ["sync", "--json", "{tree}", "{tmp}/backup"],
    ["restore", "--json", "{tmp}/backup", "{tmp}/restored"],
    ["verify", "--json", "{tmp}/backup"],
    ["history", "--json", "{tmp}/backup"],
    ["gc", "--json", "{tmp}/backup"],
    ["manifest", "estimate-cost", "--json", "{tree}"],
]


def _args(template: list[str], tmp_path: Path) -> list[str]:
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    return [a.format(tree=tree, tmp=tmp_path) for a in template]


@pytest.mark.parametrize("template", JSON_COMMANDS, ids=lambda t: " ".join(t[:2]))
def test_unusable_log_file(tmp_path: Path, template: list[str]) -> None:
    log_file = tmp_path / "no-such-dir" / "baycat.log"
    proc = run_baycat("--log-file", log_file, *_args(template, tmp_path), check=None)
    doc = fatal_json(proc, 2, schema=template[0] in ("sync", "restore"))
    assert "cannot open log file" in doc["fatal_error"]


def test_sync_unreadable_filter_file(tmp_path: Path) -> None:
    args = _args(JSON_COMMANDS[0], tmp_path)
    proc = run_baycat("sync", "--exclude-from", tmp_path / "nope", *args[1:], check=None)
    assert "cannot read" in fatal_json(proc, 2)["fatal_error"]


def test_estimate_cost_without_a_manifest(tmp_path: Path) -> None:
    proc = run_baycat("manifest", "estimate-cost", "--json", "--storage-class", "glacier_ir",
                      *_args(["{tree}"], tmp_path), check=None)
    doc = fatal_json(proc, 2, schema=False)
    assert doc["storage_class"] == "GLACIER_IR" and doc["files"] == 0
