"""The Python API: `import baycat`, typed, awaitable and blocking, returning the summary
`--json` is built from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import baycat
from tests.cli_helpers import run_baycat
from tests.trees import make_tree, read_tree


def _tree(root: Path) -> Path:
    make_tree(root, {"a.txt": b"hello", "skip.tmp": b"no", "d": {"b.txt": b"world"}})
    return root


def test_blocking_sync_restore_and_the_json_it_matches(tmp_path: Path) -> None:
    src, backup = _tree(tmp_path / "data"), tmp_path / "backup"
    options = baycat.SyncOptions(filters=baycat.FilterSpec((baycat.Rule(False, "*.tmp"),)))
    summary = baycat.sync_blocking(src, str(backup), options)
    assert isinstance(summary, baycat.SyncSummary)
    assert summary.exit_code is baycat.ExitCode.OK
    assert summary.uploaded.files == 2 and summary.price_table
    # The CLI prints the same object for the next (no-change) run.
    doc = json.loads(run_baycat("sync", "--json", src, backup).stdout)
    again = baycat.sync_blocking(src, str(backup))
    assert set(doc) == set(again.to_json())
    assert doc["operations"] == again.to_json()["operations"]
    out = tmp_path / "out"
    restored = baycat.restore_blocking(str(backup), out)
    assert restored.downloaded.files == 2
    assert set(read_tree(out)) == {b"a.txt", b"d", b"d/b.txt"}


async def test_async_functions_and_errors(tmp_path: Path) -> None:
    src = _tree(tmp_path / "data")
    manifest = await baycat.update_manifest(src, create=True)
    assert isinstance(manifest, baycat.ManifestSummary) and manifest.files == 3
    estimate = baycat.estimate_cost(src, storage_class="STANDARD_IA")
    assert estimate.files == 3 and estimate.monthly_usd > 0
    summary = await baycat.sync(src, str(tmp_path / "backup"))
    assert summary.uploaded.files == 3
    with pytest.raises(baycat.UsageError) as info:
        await baycat.sync(tmp_path / "missing", str(tmp_path / "b2"))
    assert info.value.exit_code == baycat.ExitCode.USAGE


def test_progress_and_notices_are_callbacks(tmp_path: Path) -> None:
    src = _tree(tmp_path / "data")
    progress = baycat.Progress()
    actions: list[tuple[str, str]] = []
    baycat.sync_blocking(src, str(tmp_path / "backup"), progress=progress,
                         on_action=lambda kind, path, size: actions.append((kind, path)))
    assert progress.transfer.files == 3 and progress.scan_done
    assert ("upload", "d/b.txt") in actions


def test_typed_package(tmp_path: Path) -> None:
    """py.typed ships, and a strict type check of API use passes."""
    assert (Path(baycat.__file__).parent / "py.typed").exists()
    user = tmp_path / "user.py"
    user.write_text(
        "import baycat\n"
        "def run() -> int:\n"
        "    s: baycat.SyncSummary = baycat.sync_blocking('/src', 's3://b/p/',\n"
        "        baycat.SyncOptions(delete=True), s3=baycat.S3Options(region='eu-west-1'))\n"
        "    return s.uploaded.files + int(s.exit_code)\n")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           str(user)], capture_output=True, text=True)
    if "No module named mypy" in proc.stderr:
        pytest.skip("mypy not installed")
    assert proc.returncode == 0, proc.stdout + proc.stderr
