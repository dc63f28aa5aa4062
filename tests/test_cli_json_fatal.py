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
