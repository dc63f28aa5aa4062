"""A run killed mid-way through a large upload leaves an incomplete multipart upload,
which S3 keeps and bills until it is aborted: the next run of the same tree aborts it
(issue 12, item 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.cli_helpers import run_baycat
from tests.support.fault_proxy import FaultProxy, FaultRates
from tests.support.seaweed import SeaweedServer
from tests.targets import Target
from tests.trees import make_tree


def _incomplete(seaweed: SeaweedServer, bucket: str) -> list[str]:
    listed = seaweed.client().list_multipart_uploads(Bucket=bucket)
    return [u["UploadId"] for u in listed.get("Uploads", [])]


def _journaled(src: Path) -> list[Path]:
    """The upload records of the tree's journal (ops/upload_journal.py)."""
    return [p for p in (src / ".baycat").rglob("*") if p.parent.name.endswith(".uploads")]


def test_a_killed_runs_multipart_upload_is_aborted_by_the_next_run(
        s3: Target, seaweed: SeaweedServer, tmp_path: Path) -> None:
    src = tmp_path / "data"
    make_tree(src, {"big.bin": os.urandom(40 << 20)})  # 5 parts of 8 MiB
    parts_slowly = FaultProxy(seaweed.endpoint_url, seed=1,
                              rates=FaultRates(delay=1.0, delay_s=2.0),
                              predicate=lambda req: "partNumber" in req.query)
    with parts_slowly:
        env = {**s3.env, "AWS_ENDPOINT_URL": parts_slowly.endpoint_url}
        proc = subprocess.Popen([sys.executable, "-m", "baycat", "sync", "--transfers", "2",
                                 src, s3.url], env={**os.environ, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        # Killed once the upload is both on the server and in the run's journal:
        # between CreateMultipartUpload's answer and the journal's fsync, a kill leaves
        # an upload only `gc` finds (ops/gc.py), and this test is not of that.
        while not (_incomplete(seaweed, s3.bucket) and _journaled(src)):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.kill()
        proc.wait()
    left = _incomplete(seaweed, s3.bucket)
    assert len(left) == 1
    summary = s3.sync(src)
    assert summary["exit_code"] == 0 and summary["uploaded"]["files"] == 1
    assert any("aborted 1 incomplete multipart" in n for n in summary["notices"]), summary
    assert _incomplete(seaweed, s3.bucket) == []
    again = json.loads(run_baycat("sync", "--json", src, s3.url, env=s3.env).stdout)
    assert again["requests"] == {"GET": 1}  # nothing left to abort: no extra request
