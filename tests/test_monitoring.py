"""Monitoring for cron and systemd (issue 15 §3): --healthcheck-url pings a receiver on
loopback the healthchecks.io way, --metrics-file leaves the run in Prometheus text
format, and the systemd units in contrib/ run one job per instance."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from baycat.scan.lock import TreeLock
from tests.cli_helpers import run_baycat
from tests.support.ping_receiver import PingReceiver
from tests.trees import make_tree

ROOT = Path(__file__).parent.parent
SECRET = "5f1c2a9e-0b7d-4c55-9d1e-3a8b6f0c2d47"  # healthchecks.io ping URLs end in a UUID


@pytest.fixture
def receiver() -> Iterator[PingReceiver]:
    with PingReceiver() as r:
        yield r


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    make_tree(tmp_path / "data", {"a": b"a" * 10, "d": {"b": b"b" * 20}, "c": b"c"})
    return tmp_path / "data"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_healthcheck_start_and_success(tmp_path: Path, tree: Path,
                                       receiver: PingReceiver) -> None:
    url = f"{receiver.url}/ping/{SECRET}"
    run_baycat("sync", "--healthcheck-url", url, tree, tmp_path / "backup")
    assert [(m, p) for m, p, _ in receiver.pings] == [("GET", f"/ping/{SECRET}/start"),
                                                      ("POST", f"/ping/{SECRET}")]
    body = receiver.pings[1][2].decode()
    assert "uploaded 3" in body and "(exit code 0)" in body and "\n" not in body
    receiver.pings.clear()
    run_baycat("restore", "--healthcheck-url", url, tmp_path / "backup", tmp_path / "out")
    assert [p for _, p, _ in receiver.pings] == [f"/ping/{SECRET}/start", f"/ping/{SECRET}"]
    assert "downloaded 3" in receiver.pings[1][2].decode()


def test_healthcheck_fail_with_the_error_line(tmp_path: Path, tree: Path,
                                              receiver: PingReceiver) -> None:
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
           "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}"}
    run_baycat("sync", "--retries", "1", "--healthcheck-url", receiver.url, tree,
               "s3://bucket/p/", env=env, check=3)
    assert [(m, p) for m, p, _ in receiver.pings] == [("GET", "/start"), ("POST", "/fail")]
    body = receiver.pings[1][2].decode()
    assert body.startswith("baycat: error: cannot reach the S3 endpoint") and "exit code 3" in body


def test_healthcheck_max_delete_refusal_fails_saying_why(tmp_path: Path, tree: Path,
                                                         receiver: PingReceiver) -> None:
    run_baycat("sync", tree, tmp_path / "backup")
    (tree / "a").unlink()
    (tree / "c").unlink()
    run_baycat("sync", "--delete", "--max-delete", "1", "--healthcheck-url", receiver.url,
               tree, tmp_path / "backup", check=5)
    assert [p for _, p, _ in receiver.pings] == ["/start", "/fail"]
    body = receiver.pings[1][2].decode()
    assert "more than --max-delete 1" in body and "exit code 5" in body


def test_healthcheck_locked_run_only_logs(tmp_path: Path, tree: Path,
                                          receiver: PingReceiver) -> None:
    (tree / ".baycat").mkdir()
    with TreeLock(tree / ".baycat" / "manifest.lock", "test"):
        run_baycat("sync", "--healthcheck-url", receiver.url, tree, tmp_path / "backup",
                   check=4)
    # The run holding the lock reports success or failure; this one must not flip it.
    assert [p for _, p, _ in receiver.pings] == ["/start", "/log"]
    assert b"another baycat" in receiver.pings[1][2]


def test_a_monitoring_outage_never_fails_the_backup(tmp_path: Path, tree: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/ping/{SECRET}"
    proc = run_baycat("sync", "--healthcheck-url", url, tree, tmp_path / "backup")
    stderr = proc.stderr.decode()
    assert "healthcheck ping to 127.0.0.1" in stderr and "the backup goes on" in stderr
    assert SECRET not in stderr  # whoever has the URL can report runs
    assert (tmp_path / "backup" / "d" / "b").read_bytes() == b"b" * 20


def test_healthcheck_url_must_name_a_server(tmp_path: Path, tree: Path,
                                            receiver: PingReceiver) -> None:
    proc = run_baycat("sync", "--healthcheck-url", "ftp://x/y", tree, tmp_path / "b", check=2)
    assert b"healthcheck URL" in proc.stderr
    # A bad argument baycat checks fails the check too.
    run_baycat("sync", "--healthcheck-url", receiver.url, tmp_path / "missing", tmp_path / "b",
               check=2)
    assert [p for _, p, _ in receiver.pings][-1] == "/fail"
    assert b"exit code 2" in receiver.pings[-1][2]


_SAMPLE = re.compile(r'^baycat_[a-z_]+(\{[a-z]+="[A-Za-z_]+"\})? -?[0-9.]+(e[+-][0-9]+)?$')


def _metrics(path: Path) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) baycat_[a-z_]+ ", line), line
            continue
        assert _SAMPLE.match(line), line  # the text exposition format
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values


def test_metrics_file(tmp_path: Path, tree: Path) -> None:
    metrics = tmp_path / "textfile" / "baycat.prom"
    metrics.parent.mkdir()
    tree.chmod(0o750)
    run_baycat("sync", "--metrics-file", metrics, tree, tmp_path / "backup")
    first = _metrics(metrics)
    assert first["baycat_last_run_success"] == 1 and first["baycat_last_run_exit_code"] == 0
    assert first['baycat_last_run_files{operation="uploaded"}'] == 3
    assert first['baycat_last_run_bytes{operation="uploaded"}'] == 31
    assert first['baycat_last_run_requests{type="PUT"}'] >= 3
    assert "baycat_last_run_request_cost_usd" in first
    assert 0 <= first["baycat_last_run_seconds"] < 60
    assert (first["baycat_last_run_end_timestamp_seconds"]
            >= first["baycat_last_run_start_timestamp_seconds"])
    assert first["baycat_last_success_timestamp_seconds"] == \
        first["baycat_last_run_end_timestamp_seconds"]
    # As readable as the tree (group read), never more; written by rename (no temp left).
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o640
    assert os.listdir(metrics.parent) == ["baycat.prom"]

    # A failed run: success 0, its exit code, and the last success kept for alerting.
    (tree / ".baycat").mkdir(exist_ok=True)
    with TreeLock(tree / ".baycat" / "manifest.lock", "test"):
        run_baycat("sync", "--metrics-file", metrics, tree, tmp_path / "backup", check=4)
    second = _metrics(metrics)
    assert second["baycat_last_run_success"] == 0 and second["baycat_last_run_exit_code"] == 4
    assert second["baycat_last_success_timestamp_seconds"] == \
        first["baycat_last_success_timestamp_seconds"]

    tree.chmod(0o700)  # a private tree: private metrics
    run_baycat("sync", "--metrics-file", metrics, tree, tmp_path / "backup")
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o600


def test_metrics_file_that_cannot_be_written_is_a_warning(tmp_path: Path, tree: Path) -> None:
    proc = run_baycat("sync", "--metrics-file", tmp_path / "missing" / "m.prom", tree,
                      tmp_path / "backup")
    assert b"cannot write the metrics file" in proc.stderr


def test_systemd_units_run_one_job_per_instance() -> None:
    service = (ROOT / "contrib" / "systemd" / "baycat@.service").read_text()
    timer = (ROOT / "contrib" / "systemd" / "baycat@.timer").read_text()
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    assert "baycat sync --job %i" in exec_start
    # A run that found the lock held (exit 4) is not a failure of the unit.
    assert re.search(r"^SuccessExitStatus=.*\b4\b", service, re.M)
    assert re.search(r"^OnCalendar=", timer, re.M) and "Persistent=true" in timer
    assert "baycat@.service" in (ROOT / "README.md").read_text()
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the units were checked as text only")
    proc = subprocess.run([analyze, "verify", str(ROOT / "contrib/systemd/baycat@.timer")],
                          capture_output=True, text=True, timeout=60)
    # Only the binary's path may be wrong here (baycat is not installed in /usr/local).
    problems = [line for line in proc.stderr.splitlines()
                if line.strip() and "/usr/local/bin/baycat" not in line]
    assert problems == [], proc.stderr
