"""Read-only sources and snapshots (issue 14 §1).

A snapshot is mounted read-only at a new path each night, with the live tree's inodes,
sizes and times under another device number. baycat must back it up with no extra flag
(its state then lives in the per-user state directory), and the next night's snapshot
must cost only its changed files: opened (seen by the kernel, tests/inotify.py) and
uploaded. The real thing: ext4 images, loop-mounted read-only; a read-only bind mount
covers the rest. Mounting needs root and loop devices: refused, the tests are skipped
with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import drop_dac_override, run_baycat
from tests.fatal import fatal_json
from tests.inotify import OpenWatch
from tests.targets import Target, counts

FILES = {f"dir{d}/file{f:02d}.txt": f"content {d}/{f}\n".encode() * (f + 1)
         for d in range(3) for f in range(6)}
CHANGED = "dir1/file03.txt"


def _run(*cmd: str | Path) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True)
    if proc.returncode:
        raise OSError(f"{' '.join(map(str, cmd))}: {proc.stderr.decode().strip()}")


@contextmanager
def mounted(*args: str | Path) -> Iterator[None]:
    """`mount ARGS... TARGET` for the block; skips the test when the machine refuses."""
    target = Path(args[-1])
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    proc = subprocess.run(["mount", *map(str, args)], capture_output=True)
    if proc.returncode:
        pytest.skip(f"mount {' '.join(map(str, args))} refused: {proc.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], capture_output=True, check=True)


@contextmanager
def read_only_bind(source: Path, target: Path) -> Iterator[None]:
    with mounted("--bind", source, target):
        _run("mount", "-o", "remount,ro,bind", target)
        yield


def _image(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    tree = tmp_path / f"{name}-tree"
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    image = tmp_path / f"{name}.img"
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed")
    _run("mkfs.ext4", "-q", "-d", tree, image, "4M")
    return image


def _sync(target: Target, source: Path, env: dict[str, str], *args: str,
          check: int = 0) -> dict[str, Any]:
    target.env.update(env)
    return target.sync(source, *args, check=check)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_nightly_snapshots_at_new_paths_read_and_upload_only_what_changed(
        target: Target, tmp_path: Path) -> None:
    image1 = _image(tmp_path, "night1", FILES)
    # The next nights: copies of the image (same inodes and times), one file changed.
    image2 = tmp_path / "night2.img"
    shutil.copy(image1, image2)
    with mounted("-o", "loop", image2, tmp_path / "rw"):
        (tmp_path / "rw" / CHANGED).write_bytes(b"changed overnight\n")
    image3 = tmp_path / "night3.img"
    shutil.copy(image2, image3)
    time.sleep(2.1)  # every ctime out of the racy window (hasher.RACY_WINDOW_NS)
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    snap1, snap2, snap3, snap4 = (tmp_path / "snap" / f"2026-12-0{n}" for n in range(1, 5))
    with mounted("-o", "loop,ro", image1, snap1):
        first = _sync(target, snap1, env)
        assert first["uploaded"]["files"] == len(FILES)
        assert not (snap1 / ".baycat").exists()
        base = tmp_path / "state" / "baycat"
        (job,) = base.iterdir()
        assert _mode(job) == 0o700 and _mode(job / "manifest") == 0o600
        # Night 2 at a new path, on another loop device (night 1 is still mounted).
        with mounted("-o", "loop,ro", image2, snap2):
            assert os.stat(snap1).st_dev != os.stat(snap2).st_dev
            watch = OpenWatch(snap2)
            try:
                second = _sync(target, snap2, env)
                opened = watch.opened_files()
            finally:
                watch.close()
            assert opened == {os.fsencode(snap2 / CHANGED)}
            assert second["uploaded"]["files"] == 1
            assert second["uploaded"]["bytes"] == len(b"changed overnight\n")
            assert second["metadata"]["files"] == 0 and second["deleted"]["files"] == 0
            if target.kind == "s3":  # the upload, the pack, the root
                assert counts(second)["PUT"] == 3, second["server_requests"]
            assert target.objects()[CHANGED] == b"changed overnight\n"
            # verify --local finds the state of the tree's last sync: nothing changed.
            proc = run_baycat("verify", "--local", snap2, "--json", env=target.env)
            assert json.loads(proc.stdout)["ok"] == len(FILES) + 3 + 1  # + dirs, lost+found
            # Night 3: nothing changed since night 2, a new path again. Nothing opened,
            # nothing written locally (the device number is not part of "unchanged"), and
            # on S3 the one request of a no-change run.
            manifest = os.stat(job / "manifest")
            with mounted("-o", "loop,ro", image3, snap3):
                watch = OpenWatch(snap3)
                try:
                    third = _sync(target, snap3, env)
                    opened = watch.opened_files()
                finally:
                    watch.close()
                assert opened == set()
                assert third["uploaded"]["files"] == third["metadata"]["files"] == 0
                assert os.stat(job / "manifest").st_ino == manifest.st_ino  # not rewritten
                if target.kind == "s3":
                    assert sum(third["server_requests"].values()) == 1, third
    # Night 4 with fresh state (a new machine, lost state): no local manifest, so the
    # remote manifest's size, mtime, ctime and inode say what is unchanged.
    with mounted("-o", "loop,ro", image3, snap4):
        watch = OpenWatch(snap4)
        try:
            fourth = _sync(target, snap4, {"XDG_STATE_HOME": str(tmp_path / "fresh")})
            opened = watch.opened_files()
        finally:
            watch.close()
        assert opened == set()
        assert fourth["uploaded"]["files"] == fourth["copied"]["files"] == 0
        assert fourth["metadata"]["files"] == 0 and fourth["committed"] is False


def test_read_only_bind_mount_with_an_old_state_dir_in_it(target: Target,
                                                           tmp_path: Path) -> None:
    """A snapshot of a tree that was synced in place holds that tree's .baycat,
    read-only: no traceback from its lock, the state goes to the per-user directory."""
    live = tmp_path / "live"
    for rel, data in FILES.items():
        (live / rel).parent.mkdir(parents=True, exist_ok=True)
        (live / rel).write_bytes(data)
    env = {"BAYCAT_STATE_DIR": str(tmp_path / "state")}
    target.sync(live)  # in place: live/.baycat
    assert (live / ".baycat" / "manifest").is_file()
    (live / CHANGED).write_bytes(b"changed\n")
    snap = tmp_path / "snap"
    with read_only_bind(live, snap):
        before = sorted(os.listdir(snap / ".baycat"))
        summary = _sync(target, snap, {"XDG_STATE_HOME": str(tmp_path / "xdg")})
        assert summary["uploaded"]["files"] == 1 and not summary["errors"]
        assert sorted(os.listdir(snap / ".baycat")) == before
        assert (tmp_path / "xdg" / "baycat").is_dir()
        # --state-dir / BAYCAT_STATE_DIR: chosen explicitly, used even for a writable tree.
        explicit = _sync(target, live, env)
        assert explicit["uploaded"]["files"] == 0
        assert len(list((tmp_path / "state").iterdir())) == 1
        # A state directory that can't be written: one line, exit 3, the --json object.
        bad = run_baycat("sync", "--json", "--state-dir", snap / "dir0", snap, target.url,
                         env=target.env, check=None)
        assert "cannot create the state directory" in fatal_json(bad, 3)["fatal_error"]
        # A lock that can't be written (-m on the read-only mount): the same.
        bad = run_baycat("sync", "--json", "-m", snap / "m", snap, target.url,
                         env=target.env, check=None)
        assert "lock" in fatal_json(bad, 3)["fatal_error"]


def test_manifest_commands_on_a_read_only_tree(tmp_path: Path) -> None:
    live = tmp_path / "live"
    (live / "d").mkdir(parents=True)
    (live / "d" / "f").write_bytes(b"x")
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    snap = tmp_path / "snap"
    with read_only_bind(live, snap):
        run_baycat("manifest", "create", snap, env=env)
        (manifest,) = (tmp_path / "xdg" / "baycat").glob("*/manifest")
        assert _mode(manifest) == 0o600 and _mode(manifest.parent) == 0o700
        run_baycat("manifest", "update", snap, env=env)
        doc = json.loads(run_baycat("verify", "--local", snap, "--json", env=env).stdout)
        assert doc["ok"] == 2 and doc["exit_code"] == 0
        out = tmp_path / "out" / "m"
        run_baycat("manifest", "create", "-o", out, snap, env=env)
        assert out.is_file()


def test_a_tree_the_user_may_not_write(target: Target, tmp_path: Path) -> None:
    """chmod a-w (root loses its override, as in tests/cli_helpers.drop_dac_override):
    .baycat can't be made in it, so the state goes to the per-user directory."""
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_bytes(b"data")
    tree.chmod(0o555)
    try:
        target.env["XDG_STATE_HOME"] = str(tmp_path / "xdg")
        proc = run_baycat("sync", "--json", tree, target.url, env=target.env,
                          preexec_fn=drop_dac_override)
        assert json.loads(proc.stdout)["uploaded"]["files"] == 1
        assert not (tree / ".baycat").exists()
        assert len(list((tmp_path / "xdg" / "baycat").iterdir())) == 1
    finally:
        tree.chmod(0o755)


def _state_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_an_encrypted_backup_of_a_read_only_snapshot(tmp_path: Path) -> None:
    """An encrypted sync keeps its keys cache with the rest of the job's state: a
    read-only snapshot is backed up (its state in the per-user directory), a no-change
    night is one request, and --state-dir leaves the source untouched."""
    live = tmp_path / "live"
    for rel, data in FILES.items():
        (live / rel).parent.mkdir(parents=True, exist_ok=True)
        (live / rel).write_bytes(data)
    password = tmp_path / "pw"
    password.write_bytes(b"correct horse\n")
    backup, restored = tmp_path / "backup", tmp_path / "restored"
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    snap = tmp_path / "snap"
    with read_only_bind(live, snap):
        first = run_baycat("sync", "--json", "--encrypt", "--password-file", password, snap,
                           backup, env=env)
        assert json.loads(first.stdout)["uploaded"]["files"] == len(FILES)
        again = json.loads(run_baycat("sync", "--json", "--password-file", password, snap,
                                      backup, env=env).stdout)
        assert again["requests"] == {"GET": 1} and again["uploaded"]["files"] == 0
    assert not (live / ".baycat").exists()
    assert any(name.endswith(".keys") for name in _state_files(tmp_path / "xdg"))
    run_baycat("restore", "--password-file", password, backup, restored)
    assert [name for name in _state_files(restored) if not name.startswith(".baycat/")] == \
        sorted(FILES)
    assert all((restored / rel).read_bytes() == data for rel, data in FILES.items())
    # --state-dir: nothing of baycat's in the source, the keys cache included.
    state = tmp_path / "state"
    run_baycat("sync", "-q", "--encrypt", "--password-file", password, "--state-dir", state,
               live, tmp_path / "backup2")
    assert not (live / ".baycat").exists()
    assert any(name.endswith(".keys") for name in _state_files(state))
