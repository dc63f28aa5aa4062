"""Bad input is refused with one line and a documented exit code, never a traceback
(issue 12, items 8 and 10).

Manifest values: every field of a crafted remote manifest outside what the system calls
of a restore accept (uid_t, mode_t, int64) is refused before anything is written; so is
a root nested too deeply for the JSON parser, or with fields of the wrong type."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baycat.entry import Entry
from baycat.manifest.segment import encode
from tests.cli_helpers import run_baycat
from tests.fatal import error_line, fatal_json
from tests.test_restore_safety import crafted, dir_entry, file_entry, link_entry, write_backup

# ---- item 8: hostile manifest values -----------------------------------------------------


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "backup", tmp_path / "dst"


def refused(backup: Path, dst: Path) -> str:
    """Restore with --json: exit 3, one line, and nothing in DST but baycat's state."""
    proc = run_baycat("restore", "--json", backup, dst, check=None)
    doc = fatal_json(proc, 3)
    assert doc["operations"]["downloaded"]["files"] == 0
    if dst.exists():
        assert [p.name for p in dst.iterdir()] in ([], [".baycat"])
    assert "refusing the manifest" in doc["fatal_error"] or "unusable" in doc["fatal_error"]
    return str(doc["fatal_error"])


def _good() -> Entry:
    return file_entry(b"a-good", b"good")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("uid", 1 << 40, "owner"),
    ("uid", -5, "owner"),
    ("gid", (1 << 32) - 1, "owner"),  # (gid_t)-1: "leave unchanged" to chown
    ("gid", (1 << 62), "owner"),
    ("mode", (1 << 40) | stat.S_IFREG | 0o644, "mode"),
    ("mode", -1, "mode"),
    ("mode", stat.S_IFDIR | 0o755, "mode"),  # a directory's mode on a file
    ("mode", stat.S_IFCHR | 0o644, "mode"),  # a device
    ("size", -1, "size"),
    ("deleted_ns", -1, "time"),
])
def test_entry_values_out_of_range_are_refused(places: tuple[Path, Path], field: str,
                                               value: int, message: str) -> None:
    backup, dst = places
    # A field named at run time: mypy can't tie the name to the field's type.
    change: dict[str, Any] = {field: value}
    evil = file_entry(b"b-evil", b"evil")._replace(**change)
    crafted(backup, [_good(), evil], {"a-good": b"good", "b-evil": b"evil"})
    assert message in refused(backup, dst)


def test_a_directory_or_symlink_with_a_file_mode_is_refused(
        places: tuple[Path, Path]) -> None:
    backup, dst = places
    crafted(backup, [dir_entry(b"d")._replace(mode=stat.S_IFREG | 0o755)])
    assert "mode" in refused(backup, dst)
    crafted(backup, [link_entry(b"l", b"target")._replace(mode=stat.S_IFDIR | 0o777)])
    assert "mode" in refused(backup, dst)
    crafted(backup, [link_entry(b"l", b"")])
    assert "symlink target" in refused(backup, dst)


def test_a_root_nested_too_deeply_is_refused(places: tuple[Path, Path]) -> None:
    backup, dst = places
    crafted(backup, [_good()], {"a-good": b"good"})
    depth = 100_000
    (backup / ".baycat" / "root").write_bytes(
        b'{"format_version": 1, "info": ' + b"[" * depth + b"]" * depth + b"}")
    assert "nested too deeply" in refused(backup, dst)
    proc = run_baycat("history", backup, check=None)
    assert "nested too deeply" in error_line(proc, 3)


@pytest.mark.parametrize(("edit", "message"), [
    ({"created_ns": "1"}, "creation time"),
    ({"created_ns": 1.5}, "creation time"),
    ({"entries": True}, "entry count"),
    ({"files": -1}, "file count"),
    ({"bytes": 1 << 64}, "byte count"),
    ({"source": ["x"]}, "source"),
    ({"filters": "*.tmp"}, "filters"),
    ({"info": [["k", "v"]]}, "info"),
    ({"pool_size": 1 << 40}, "pool size"),
    ({"history": [{"time_ns": 10 ** 30, "pack": "p1", "offset": 0, "length": 1,
                   "files": 0, "bytes": 0}]}, "history time"),
    ({"history": [{"time_ns": 1, "pack": "../../elsewhere", "offset": 0, "length": 1,
                   "files": 0, "bytes": 0}]}, "pack name"),
    ({"history": ["not an object"]}, "history"),
    ({"segments": [["0" * 32, 1, "a", "p1", 1 << 70, 10, 0, 0]]}, "segment offset"),
    ({"segments": [["0" * 32, 1, "a", "../p1", 0, 10, 0, 0]]}, "pack name"),
])
def test_root_fields_of_the_wrong_type_or_out_of_range_are_refused(
        places: tuple[Path, Path], edit: dict[str, object], message: str) -> None:
    backup, dst = places
    write_backup(backup, [encode([_good()])], [1], {"a-good": b"good"}, edit)
    assert message in refused(backup, dst)
    # history reads only the root: the same refusal, one line
    assert message in error_line(run_baycat("history", backup, check=None), 3)


def test_a_sync_onto_a_hostile_root_stops_with_one_line(places: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    backup, _ = places
    write_backup(backup, [encode([_good()])], [1], {"a-good": b"good"},
                 {"history": [{"time_ns": 10 ** 30, "pack": "p1", "offset": 0, "length": 1,
                               "files": 0, "bytes": 0}]})
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data")
    doc = fatal_json(run_baycat("sync", "--json", src, backup, check=None), 3)
    assert "--scan-remote" in doc["fatal_error"]
    root = json.loads((backup / ".baycat" / "root").read_bytes())
    assert root["history"][0]["time_ns"] == 10 ** 30  # left as it was: not ours to fix


# ---- item 10: malformed endpoints, and a server that never answers -----------------------

BAD_ENDPOINTS = ["http://[::1", "http://127.0.0.1:99999", "http://user:pw-secret@127.0.0.1:9",
                 "ftp://127.0.0.1:9", "localhost:8333", "http://", "http://host:port"]


@pytest.fixture
def keys() -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example",
            "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.mark.parametrize("url", BAD_ENDPOINTS)
def test_a_malformed_endpoint_is_a_usage_error(tmp_path: Path, keys: dict[str, str],
                                               url: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    proc = run_baycat("sync", "--json", "--endpoint-url", url, src, "s3://bucket/p/",
                      env=keys, check=None)
    doc = fatal_json(proc, 2)
    assert "endpoint URL" in doc["fatal_error"]
    assert b"pw-secret" not in proc.stdout + proc.stderr
    # the same check, from the environment, for every command that talks to a store
    env = {**keys, "AWS_ENDPOINT_URL": url}
    for args in (["restore", "s3://bucket/p/", tmp_path / "dst"], ["verify", "s3://bucket/p/"],
                 ["history", "s3://bucket/p/"], ["gc", "s3://bucket/p/"]):
        proc = run_baycat(*args, env=env, check=None)
        assert "endpoint URL" in error_line(proc, 2)
        assert b"pw-secret" not in proc.stdout + proc.stderr
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("url", ["http://[::1/backup/", "http://127.0.0.1:99999/b/",
                                 "https://user:pw-secret@127.0.0.1:9/b/"])
def test_a_malformed_http_backup_url_is_a_usage_error(tmp_path: Path, url: str) -> None:
    proc = run_baycat("restore", "--json", url, tmp_path / "dst", check=None)
    assert "backup URL" in fatal_json(proc, 2)["fatal_error"]
    assert b"pw-secret" not in proc.stdout + proc.stderr


def test_the_api_checks_the_endpoint_too(tmp_path: Path) -> None:
    import baycat
    from baycat.store.s3_options import S3Options

    with pytest.raises(baycat.UsageError, match="endpoint URL"):
        baycat.sync_blocking(tmp_path, "s3://bucket/p/",
                             s3=S3Options(endpoint_url="http://[::1", region="us-east-1"))


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback TCP server that accepts every connection and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        thread.join(5)
        for conn in held:
            conn.close()


@pytest.mark.parametrize("fast", ["1", "0"])
def test_a_silent_endpoint_fails_within_the_timeout_saying_what_it_waited_for(
        tmp_path: Path, keys: dict[str, str], silent_server: str, fast: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data")
    started = time.monotonic()
    proc = run_baycat("sync", "--json", "--timeout", "1", "--retries", "1", "--endpoint-url",
                      silent_server, src, "s3://bucket/p/",
                      env={**keys, "BAYCAT_S3_FAST": fast}, check=None)
    elapsed = time.monotonic() - started
    doc = fatal_json(proc, 3)
    assert f"no answer from {silent_server} within 1 s (" in doc["fatal_error"]
    assert "p/.baycat/root" in doc["fatal_error"]
    assert elapsed < 10, elapsed


def test_a_silent_http_backup_fails_within_the_timeout(tmp_path: Path,
                                                      silent_server: str) -> None:
    proc = run_baycat("restore", "--json", "--timeout", "1", silent_server + "/b/",
                      tmp_path / "dst", check=None)
    doc = fatal_json(proc, 3)
    assert doc["fatal_error"] == \
        f"no answer from {silent_server}/b/ within 1 s (GET .baycat/root)"


def test_timeout_is_documented() -> None:
    for command in ("sync", "restore", "verify", "history", "gc"):
        help_text = run_baycat(command, "--help").stdout.decode()
        assert "--timeout" in help_text and "Example: --timeout" in help_text
