"""Typos must not become data: a destination that looks like a URL but is not a valid one,
or a local one whose parent directory does not exist, is a usage error (exit 2) before
anything is written anywhere, as with rsync and cp."""

from __future__ import annotations

from pathlib import Path

import pytest

from baycat.errors import UsageError
from baycat.store.endpoints import LocalEndpoint, parse_endpoint
from tests.cli_helpers import run_baycat
from tests.fatal import fatal_json


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "data"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    return src


def _everything(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("destination", [
    "s3:/bucket", "s3:/bucket/prefix/", "s3:bucket", "S3:/bucket", "http:/host/x",
    "sftp://host/backup", "gs://bucket/p/", "minio:bucket/x", "file:",
])
def test_url_typo_is_a_usage_error_and_writes_nothing(tmp_path: Path, destination: str) -> None:
    src = _tree(tmp_path)
    before = _everything(tmp_path)
    proc = run_baycat("sync", "--json", "data", destination, cwd=tmp_path, check=None)
    doc = fatal_json(proc, 2)
    assert "not a valid destination URL" in doc["fatal_error"] \
        or "unsupported" in doc["fatal_error"] or "URL" in doc["fatal_error"]
    assert _everything(tmp_path) == before  # no ./s3:/bucket, no .baycat in the source
    assert not (src / ".baycat").exists()


def test_a_colon_path_is_fine_when_written_as_a_path(tmp_path: Path) -> None:
    _tree(tmp_path)
    run_baycat("sync", "--json", "data", "./backup:2026", cwd=tmp_path)
    assert (tmp_path / "backup:2026" / "a.txt").read_bytes() == b"a"
    run_baycat("sync", "--json", "data", f"file:{tmp_path}/one-slash", cwd=tmp_path)
    assert (tmp_path / "one-slash" / "a.txt").read_bytes() == b"a"


@pytest.mark.parametrize("text", ["s3:/b", "x:y", "ab+c.d-e:rest"])
def test_parse_endpoint_refuses_scheme_like_text(text: str) -> None:
    with pytest.raises(UsageError, match="not a valid destination URL"):
        parse_endpoint(text)


@pytest.mark.parametrize("text", ["2026-12-01T03:00", "data/a:b", "./s3:/b", "-x:y", "é:x"])
def test_parse_endpoint_keeps_paths_with_colons_later(text: str) -> None:
    assert parse_endpoint(text) == LocalEndpoint(Path(text))


def test_local_destination_with_a_missing_parent_is_a_usage_error(tmp_path: Path) -> None:
    _tree(tmp_path)
    missing = tmp_path / "no" / "such" / "backup"
    proc = run_baycat("sync", "--json", tmp_path / "data", missing, check=None)
    doc = fatal_json(proc, 2)
    assert "parent directory" in doc["fatal_error"]
    assert not (tmp_path / "no").exists()
    # A new directory whose parent exists is made, as before.
    run_baycat("sync", "--json", tmp_path / "data", tmp_path / "backup")
    assert (tmp_path / "backup" / "a.txt").read_bytes() == b"a"
