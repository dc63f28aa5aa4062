"""The command for people and for cron: --json validated against its schema on real
runs, every exit code, logging without secrets, the live display through a real
pseudo-terminal, help, completion, storage class / SSE / --bwlimit, estimate-cost."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pexpect
import pytest

from baycat.ops.cost import PriceTable
from tests.cli_helpers import drop_dac_override, lock_out, run_baycat
from tests.targets import Target
from tests.trees import make_tree

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "json-summary.schema.json")
                    .read_text())


def tree(root: Path, files: int = 20, size: int = 1000) -> Path:
    make_tree(root, {"d": {f"f{i:03d}": os.urandom(size) for i in range(files)}})
    return root


def one_json(stdout: bytes) -> dict[str, Any]:
    """stdout must be exactly one JSON object (one line)."""
    lines = stdout.decode().splitlines()
    assert len(lines) == 1, stdout
    doc: dict[str, Any] = json.loads(lines[0])
    jsonschema.validate(doc, SCHEMA)
    return doc


# ---- --json ----------------------------------------------------------------------------


def test_json_summary_matches_schema_on_real_runs(target: Target, tmp_path: Path) -> None:
    src = tree(tmp_path / "data")
    proc = run_baycat("sync", "--json", "-v", src, target.url, env=target.env)
    doc = one_json(proc.stdout)
    assert doc["exit_code"] == 0 and doc["errors"] == []
    assert doc["operations"]["uploaded"] == {"files": 20, "bytes": 20_000}
    assert doc["operations"]["skipped"]["files"] == 0
    assert {"scan", "transfer", "commit", "total"} <= set(doc["seconds"])
    # -v lines went to stderr, not stdout: one per upload.
    assert proc.stderr.decode().count("upload ") == 20
    # The cost is the documented table applied to the requests counted.
    assert doc["request_cost_usd"] == pytest.approx(
        PriceTable().request_cost(doc["requests"]))
    if target.kind == "s3":
        # files + pack + root + the new backup's conditional-write probe (2)
        assert doc["requests"]["PUT"] == 20 + 2 + 2
        assert doc["request_cost_usd"] > 0
    again = one_json(run_baycat("sync", "--json", src, target.url, env=target.env).stdout)
    assert again["operations"]["skipped"]["files"] == 21  # 20 files + the directory
    assert again["operations"]["uploaded"]["files"] == 0
    restored = one_json(run_baycat("restore", "--json", target.url, tmp_path / "out",
                                   env=target.env).stdout)
    assert restored["operations"]["downloaded"]["files"] == 20


def test_json_on_a_fatal_error_is_still_one_object(tmp_path: Path) -> None:
    proc = run_baycat("sync", "--json", tmp_path / "missing", tmp_path / "b", check=2)
    doc = one_json(proc.stdout)
    assert doc["exit_code"] == 2 and "no such directory" in doc["fatal_error"]
    assert b"baycat: error:" in proc.stderr


# ---- exit codes --------------------------------------------------------------------------


def test_exit_0_and_1_with_per_file_errors(tmp_path: Path) -> None:
    src = tree(tmp_path / "data", files=3)
    lock_out(src / "d" / "f001")
    proc = run_baycat("sync", "--json", src, tmp_path / "backup", check=1,
                      preexec_fn=drop_dac_override)
    doc = one_json(proc.stdout)
    assert doc["exit_code"] == 1
    assert [e["path"] for e in doc["errors"]] == ["d/f001"]
    assert doc["operations"]["failed"]["files"] == 1
    (src / "d" / "f001").unlink()
    run_baycat("sync", src, tmp_path / "backup", check=0)


def test_exit_2_usage(tmp_path: Path) -> None:
    run_baycat("sync", "--no-such-option", tmp_path, tmp_path / "b", check=2)
    run_baycat("sync", tmp_path / "missing", tmp_path / "b", check=2)
    run_baycat("sync", "--bwlimit", "fast", tmp_path, tmp_path.parent / "b", check=2)
    run_baycat("sync", "--storage-class", "COLD", tmp_path, "s3://b/p/", check=2)
    run_baycat("--log-level", "loud", "sync", tmp_path, tmp_path.parent / "b", check=2)


def test_exit_3_remote_and_no_secret_anywhere(s3: Target, tmp_path: Path) -> None:
    src = tree(tmp_path / "data", files=2)
    log_file = tmp_path / "debug.log"
    secret, key = s3.env["AWS_SECRET_ACCESS_KEY"], s3.env["AWS_ACCESS_KEY_ID"]
    # A good run at debug level: botocore logs signed requests; none of it may leak.
    # (botocore for every call: the fast path for GET/PUT logs no requests at all.)
    ok = run_baycat("--log-level", "debug", "--log-file", log_file, "sync", "--json", src,
                    s3.url, env={**s3.env, "BAYCAT_S3_FAST": "0"})
    bad = run_baycat("--log-level", "debug", "sync", "--json", src, s3.url,
                     env={**s3.env, "AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}, check=3)
    assert one_json(bad.stdout)["exit_code"] == 3
    log_text = log_file.read_text()
    assert "Authorization" in log_text or "authorization" in log_text  # it did log requests
    for output in (ok.stdout.decode(), ok.stderr.decode(), bad.stdout.decode(),
                   bad.stderr.decode(), log_text):
        for value in (secret, key, "wrong-secret-value"):
            assert value not in output
        assert not re.search(r"Signature=[0-9a-f]{64}", output)
        assert not re.search(r"X-Amz-Signature=[0-9a-f]", output, re.I)
    missing = run_baycat("sync", src, "s3://no-such-bucket-ux/x/", env=s3.env, check=3)
    assert b"does not exist" in missing.stderr


def test_exit_130_on_sigint_and_bwlimit_paces_uploads(tmp_path: Path) -> None:
    src = tree(tmp_path / "data", files=40, size=64 << 10)  # 2.5 MiB at 256 KiB/s: ~10 s
    backup = tmp_path / "backup"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "baycat", "sync", "--json", "--bwlimit",
                             "256K", "--transfers", "2", src, backup],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Signal once uploads are under way (not after a fixed delay: start-up time varies
    # with the machine's load), then after one more second of uploading.
    while not (backup / "d").exists():
        assert proc.poll() is None and time.monotonic() - started < 30
        time.sleep(0.02)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    elapsed = time.monotonic() - started
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    doc = one_json(out)
    assert doc["interrupted"] is True
    sent = doc["operations"]["uploaded"]["bytes"]
    # 256 KiB/s with a 1 s burst, over at most `elapsed` seconds (plus one file in flight
    # per transfer) — far below the 2.5 MiB an unpaced upload sends at once.
    assert 0 < sent <= (elapsed + 1) * (256 << 10) + 2 * (64 << 10), (sent, elapsed)
    assert sent < 40 * (64 << 10)
    assert time.monotonic() - started < 30


# ---- logging -------------------------------------------------------------------------------


def test_log_level_env_and_log_file(tmp_path: Path) -> None:
    src = tree(tmp_path / "data", files=2)
    log_file = tmp_path / "baycat.log"
    run_baycat("--log-file", log_file, "sync", "--quiet", src, tmp_path / "backup",
               env={"BAYCAT_LOGLEVEL": "debug"})
    text = log_file.read_text()
    assert "DEBUG baycat: upload d/f000" in text and "INFO baycat: done" in text
    quiet = run_baycat("sync", "--quiet", src, tmp_path / "backup")
    assert quiet.stdout == b"" and quiet.stderr == b""


# ---- help, version, completion -------------------------------------------------------------


@pytest.mark.parametrize("command", [["sync"], ["restore"], ["manifest", "create"],
                                     ["manifest", "update"], ["manifest", "show"],
                                     ["manifest", "estimate-cost"]])
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    text = run_baycat(*command, "--help").stdout.decode()
    assert "Example" in text
    options = re.findall(r"^\s+(--[a-z-]+)", text, re.M)
    assert options
    if command[0] in ("sync", "restore"):
        assert "130 interrupted" in text


def test_version_and_completion(tmp_path: Path) -> None:
    assert run_baycat("--version").stdout.decode().startswith("baycat ")
    script = shutil.which("baycat") or str(Path(sys.executable).parent / "baycat")
    if not os.path.exists(script):
        pytest.skip("the baycat console script is not installed")
    env = {**os.environ, "_BAYCAT_COMPLETE": "complete_bash", "COMP_WORDS": "baycat sync --stor",
           "COMP_CWORD": "2"}
    out = subprocess.run([script], env=env, capture_output=True, check=True).stdout
    assert b"--storage-class" in out


# ---- the live display ----------------------------------------------------------------------


def _spawn(args: list[str], cwd: Path) -> pexpect.spawn:  # type: ignore[type-arg]
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    return pexpect.spawn(sys.executable, ["-m", "baycat", *args], cwd=str(cwd), env=env,
                         timeout=60, dimensions=(40, 120))


def test_live_display_in_a_real_terminal(tmp_path: Path) -> None:
    src = tree(tmp_path / "data", files=20, size=64 << 10)  # 1.25 MiB at 256 KiB/s: ~4 s
    make_tree(src, {"big": os.urandom(1 << 20)})
    child = _spawn(["sync", "--bwlimit", "256K", "--transfers", "2", str(src),
                    str(tmp_path / "backup")], tmp_path)
    child.expect(r"transfer\s+\d+/\d+ files")
    child.expect(r"ETA \d+ s")
    child.expect(r"uploaded 21")  # the final summary
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    # --no-progress in a terminal, and no terminal at all: no display.
    (src / "new").write_bytes(b"x")
    child = _spawn(["sync", "--no-progress", str(src), str(tmp_path / "backup")], tmp_path)
    child.expect(pexpect.EOF)
    assert b"transfer " not in (child.before or b"")
    (src / "new2").write_bytes(b"y")
    piped = run_baycat("sync", src, tmp_path / "backup")
    assert b"transfer " not in piped.stderr and b"ETA" not in piped.stderr


def test_display_redraws_from_counters_not_per_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The display costs the engine nothing per file: it redraws from counters a few
    times a second, whatever the number of files. (Its cost in time is measured by
    benchmarks/displaycost.py, not here.)"""
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from baycat.cli.display import REFRESH_PER_SECOND, LiveDisplay
    from baycat.ops.manifest import build_manifest
    from baycat.progress import Progress

    src = tmp_path / "data"
    make_tree(src, {f"d{d}": {f"f{f}": b"x" * 100 for f in range(1000)} for d in range(20)})
    renders = 0
    with open(os.devnull, "w") as sink:
        console = Console(file=sink, force_terminal=True, width=120)
        progress = Progress()
        display = LiveDisplay(progress, console, True)
        original = display._render

        def counting_render() -> Table:
            nonlocal renders
            renders += 1
            return original()

        monkeypatch.setattr(display, "_render", counting_render)
        started = time.monotonic()
        with display:
            asyncio.run(build_manifest(src, create=True, progress=progress))
        elapsed = time.monotonic() - started
    assert progress.hash.files == 20_000  # the counters saw every file...
    assert renders <= elapsed * REFRESH_PER_SECOND * 2 + 4  # ...the display did not


# ---- S3 options --------------------------------------------------------------------------


def test_storage_class_and_sse_reach_the_server(s3: Target, tmp_path: Path) -> None:
    src = tree(tmp_path / "data", files=2)
    make_tree(src, {"dup": (src / "d" / "f000").read_bytes()})
    s3.sync(src, "--storage-class", "STANDARD_IA", "--sse", "AES256")
    assert s3.seaweed is not None
    client = s3.seaweed.client()
    head = client.head_object(Bucket=s3.bucket, Key=s3.prefix + "d/f000")
    assert head.get("StorageClass") == "STANDARD_IA"
    assert head.get("ServerSideEncryption") == "AES256"
    root = client.head_object(Bucket=s3.bucket, Key=s3.prefix + ".baycat/root")
    assert root.get("StorageClass", "STANDARD") == "STANDARD"  # manifest stays readable


# ---- estimate-cost -------------------------------------------------------------------------


def test_manifest_estimate_cost(tmp_path: Path) -> None:
    src = tree(tmp_path / "data", files=100, size=10_000)
    run_baycat("manifest", "estimate-cost", src, check=2)  # no manifest yet
    run_baycat("manifest", "create", src)
    doc = json.loads(run_baycat("manifest", "estimate-cost", "--json", "--change-rate", "0.1",
                                "--syncs-per-month", "30", src).stdout)
    assert doc["files"] == 100 and doc["bytes"] == 1_000_000
    assert doc["monthly_storage_usd"] == pytest.approx(1_000_000 / (1 << 30) * 0.023)
    # per sync: GET root + 10 PUTs + pack + root
    assert doc["monthly_requests"] == 30 * (1 + 10 + 2)
    assert doc["monthly_request_usd"] == pytest.approx(30 * 0.0004 / 1000 + 360 * 0.005 / 1000)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"name": "cheap", "classes": {
        "STANDARD": {"storage_gb_month": 0.0}}}))
    cheap = json.loads(run_baycat("manifest", "estimate-cost", "--json", "--price-file", prices,
                                  src).stdout)
    assert cheap["monthly_storage_usd"] == 0 and cheap["price_table"] == "cheap"
    text = run_baycat("manifest", "estimate-cost", "--storage-class", "DEEP_ARCHIVE",
                      src).stdout.decode()
    assert "per month" in text and "DEEP_ARCHIVE" in text


# ---- pure pieces ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "Authorization: AWS4-HMAC-SHA256 Credential=AKIAABCDEFGHIJKLMNOP/20250101/us-east-1/s3/"
    "aws4_request, SignedHeaders=host, Signature=" + "a" * 64,
    "GET https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAABCDEFGHIJKLMNOP%2F2025&"
    "X-Amz-Signature=" + "b" * 64 + "&X-Amz-Security-Token=FQoGZXIvYXdzEJr",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    '{"SessionToken": "FQoGZXIvYXdzEJrTOKEN"}',
])
def test_redact_table(text: str) -> None:
    from baycat.redact import redact
    out = redact(text)
    for secret in ("AKIAABCDEFGHIJKLMNOP", "a" * 64, "b" * 64, "FQoGZXIvYXdzEJr",
                   "wJalrXUtnFEMI", "EJrTOKEN"):
        assert secret not in out
    assert "<redacted>" in out
    assert redact("secret: cannot open: Permission denied") == \
        "secret: cannot open: Permission denied"  # a file named "secret" is not a secret


def test_display_renders_large_files_with_bars() -> None:
    from rich.console import Console

    from baycat.cli.display import LiveDisplay
    from baycat.progress import Progress
    p = Progress()
    p.scan_done = True
    p.transfer.total_files, p.transfer.files = 3, 1
    p.transfer.total_bytes, p.transfer.bytes = 100 << 20, 40 << 20
    p.active["big/disk.img"] = (10 << 20, 80 << 20)
    console = Console(width=120, record=True, color_system=None)
    console.print(LiveDisplay(p, console, False)._render())
    text = console.export_text()
    assert "transfer" in text and "1/3 files" in text and "ETA" in text
    assert "big/disk.img" in text and "12%" in text and "━" in text


async def test_token_bucket_paces_to_the_rate() -> None:
    from baycat.ops.ratelimit import TokenBucket, parse_rate
    assert parse_rate("10M") == 10 << 20 and parse_rate("512K") == 512 << 10
    assert parse_rate("1000") == 1000
    bucket = TokenBucket(400_000)
    started = time.monotonic()
    for _ in range(10):
        await bucket.take(100_000)  # 1 MB at 400 kB/s with a 400 kB burst: >= 1.5 s
    assert 1.4 < time.monotonic() - started < 3
