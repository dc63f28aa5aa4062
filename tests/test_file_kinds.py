"""Every kind of file a Unix tree holds, backed up and restored exactly (issue 14 §2),
and a local-directory backup that never widens access (§5). Against a local directory
and SeaweedFS (`target`), asserting on what is on disk."""

from __future__ import annotations

import os
import socket
import stat
import struct
from pathlib import Path

import pytest

from baycat import xattrs
from baycat.entry import DIR, FILE, FLAG_LINKED, HARDLINK, Entry
from baycat.errors import ManifestError
from baycat.manifest import segment
from baycat.manifest.validate import validate
from tests.targets import Target

AS_ROOT = os.geteuid() == 0
T1 = 1_700_000_000 * 10**9
T2 = 1_600_000_000 * 10**9
SPARSE_SIZE = 64 << 20
# A POSIX ACL (system.posix_acl_access): user::rw-, user:65534:r--, group::r--,
# mask::r--, other::--- (acl_ea_header version 2, then tag, perm, id per entry).
ACL = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident
                                      in ((1, 6, 0xFFFFFFFF), (2, 4, 65534), (4, 4, 0xFFFFFFFF),
                                          (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)))
CAPABILITY = bytes.fromhex("0000000200200000000000000000000000000000")  # cap_net_raw+p


def _xattrs_supported(where: Path) -> str:
    probe = where / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError as exc:
        return f"{where} refuses user.* extended attributes ({exc.strerror})"
    finally:
        probe.unlink()
    return ""


def _make_tree(src: Path) -> None:
    (src / "d" / "sub").mkdir(parents=True)
    (src / "a").write_bytes(b"shared content\n")
    os.link(src / "a", src / "d" / "a-again")  # a hardlink in another directory
    os.link(src / "a", src / "z")
    with open(src / "sparse", "wb") as f:
        f.seek(SPARSE_SIZE // 2)
        f.write(b"x" * 4096)  # 4 KiB of data in 64 MiB
        f.truncate(SPARSE_SIZE)
    (src / "tagged").write_bytes(b"with attributes\n")
    os.setxattr(src / "tagged", "user.colour", b"blue\0binary\xff")
    os.setxattr(src / "tagged", "system.posix_acl_access", ACL)
    if AS_ROOT:
        os.setxattr(src / "tagged", "security.capability", CAPABILITY)
    os.chmod(src / "tagged", 0o640)
    os.mkfifo(src / "fifo")
    os.chmod(src / "fifo", 0o620)
    if AS_ROOT:
        os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for path in (src / "a", src / "sparse", src / "tagged", src / "fifo"):
        os.utime(path, ns=(T1, T1), follow_symlinks=False)
    os.chmod(src / "d" / "sub", 0o750)
    os.chmod(src / "d", 0o705)
    for directory in (src / "d" / "sub", src / "d", src):
        os.utime(directory, ns=(T2, T2))
    os.chmod(src, 0o751)


def test_every_kind_restores_byte_and_metadata_exact(target: Target, tmp_path: Path) -> None:
    reason = _xattrs_supported(tmp_path)
    if reason:
        pytest.skip(reason)
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    _make_tree(src)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock"))
    os.utime(src, ns=(T2, T2))  # the socket's bind changed it
    try:
        summary = target.sync(src)
    finally:
        sock.close()
    # The socket: skipped, said in --json; the hardlinks: uploaded once.
    assert "sock: skipped socket (a socket can't be backed up)" in summary["notices"]
    assert summary["exit_code"] == 0
    objects = target.objects()
    assert {"a", "sparse", "tagged"} <= set(objects)
    assert not {"z", "d/a-again", "fifo", "null"} & set(objects)
    assert summary["uploaded"]["files"] == 3

    restored = target.restore(out)
    assert restored["errors"] == [] and restored["notices"] == []
    # Hardlinks: one inode within the restored tree.
    inodes = {os.lstat(out / p).st_ino for p in ("a", "z", "d/a-again")}
    assert len(inodes) == 1 and os.lstat(out / "a").st_nlink == 3
    assert (out / "z").read_bytes() == b"shared content\n"
    # Sparse: the same bytes, few blocks.
    st = os.lstat(out / "sparse")
    assert st.st_size == SPARSE_SIZE and st.st_blocks * 512 <= 64 << 10
    with open(out / "sparse", "rb") as f:
        f.seek(SPARSE_SIZE // 2 - 1)
        assert f.read(4098) == b"\0" + b"x" * 4096 + b"\0"
    # Extended attributes, the ACL and the capability.
    assert os.getxattr(out / "tagged", "user.colour") == b"blue\0binary\xff"
    assert os.getxattr(out / "tagged", "system.posix_acl_access") == ACL
    if AS_ROOT:
        assert os.getxattr(out / "tagged", "security.capability") == CAPABILITY
    # FIFOs and devices.
    fifo = os.lstat(out / "fifo")
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o620
    assert fifo.st_mtime_ns == T1
    if AS_ROOT:
        null = os.lstat(out / "null")
        assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    # Modes and mtimes of files, of every directory (set after its children), of the top.
    for rel in ("a", "sparse", "tagged", "d", "d/sub", "."):
        want, got = os.lstat(src / rel), os.lstat(out / rel)
        assert (stat.S_IMODE(got.st_mode), got.st_mtime_ns) == (
            stat.S_IMODE(want.st_mode), want.st_mtime_ns), rel
        assert (got.st_uid, got.st_gid) == (want.st_uid, want.st_gid)
    assert stat.S_IMODE(os.lstat(out).st_mode) == 0o751

    # A second restore finds everything in place; a second sync has nothing to do.
    again = target.restore(out)
    assert again["downloaded"]["files"] == 0, again
    assert target.sync(src)["uploaded"]["files"] == 0


def test_an_xattr_change_is_a_metadata_change(target: Target, tmp_path: Path) -> None:
    reason = _xattrs_supported(tmp_path)
    if reason:
        pytest.skip(reason)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data")
    target.sync(src)
    os.setxattr(src / "f", "user.note", b"v2")
    summary = target.sync(src)
    assert summary["uploaded"]["files"] == 0 and summary["metadata"]["files"] == 1
    target.restore(tmp_path / "out")
    assert os.getxattr(tmp_path / "out" / "f", "user.note") == b"v2"
    # --no-xattrs on restore leaves them out.
    target.restore(tmp_path / "plain", "--no-xattrs")
    assert os.listxattr(tmp_path / "plain" / "f") == []


def test_a_restore_onto_a_filesystem_that_refuses_xattrs_reports_them(
        target: Target, tmp_path: Path) -> None:
    reason = _xattrs_supported(tmp_path)
    if reason:
        pytest.skip(reason)
    shm = Path("/dev/shm")
    if not shm.is_dir() or not _xattrs_supported(shm):
        pytest.skip("no filesystem here that refuses user.* extended attributes "
                    "(/dev/shm accepts them or is missing)")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data")
    os.setxattr(src / "f", "user.note", b"v")
    target.sync(src)
    out = shm / f"baycat-test-{os.getpid()}-{target.kind}"
    try:
        summary = target.restore(out)
        assert (out / "f").read_bytes() == b"data"
        assert any(n.startswith("f: extended attributes not restored: user.note")
                   for n in summary["notices"]), summary["notices"]
    finally:
        import shutil
        shutil.rmtree(out, ignore_errors=True)


def test_local_backup_keeps_modes_and_state_is_private(tmp_path: Path) -> None:
    from tests.cli_helpers import run_baycat
    src, backup = tmp_path / "src", tmp_path / "backup"
    (src / "keys").mkdir(parents=True)
    (src / "keys" / "id_ed25519").write_bytes(b"secret")
    (src / "pub").write_bytes(b"public")
    (src / "suid").write_bytes(b"#!/bin/sh\n")
    os.chmod(src / "keys" / "id_ed25519", 0o600)
    os.chmod(src / "pub", 0o644)
    os.chmod(src / "suid", 0o4755)
    os.chmod(src / "keys", 0o750)
    os.utime(src / "pub", ns=(T1, T1))
    run_baycat("sync", src, backup)

    def mode(path: Path | str) -> int:
        return stat.S_IMODE(os.lstat(path).st_mode)

    assert mode(backup / "keys" / "id_ed25519") == 0o600
    assert mode(backup / "pub") == 0o644 and os.lstat(backup / "pub").st_mtime_ns == T1
    assert mode(backup / "suid") == 0o755  # never setuid/setgid
    assert mode(backup / "keys") == 0o750
    # A mode change alone reaches the backup's copy too.
    os.chmod(src / "pub", 0o600)
    run_baycat("sync", src, backup)
    assert mode(backup / "pub") == 0o600
    for state in (backup / ".baycat", src / ".baycat"):
        for dirpath, _, filenames in os.walk(state):
            assert mode(dirpath) == 0o700, dirpath
            for name in filenames:
                assert mode(os.path.join(dirpath, name)) == 0o600, name


def _file(path: bytes, flags: int = 0) -> Entry:
    return Entry(path, FILE, 1, T1, 0, 0, 0, 0o100644, 0, 0, b"", b"h" * 16, "", "", "", 0,
                 flags)


def _link(path: bytes, to: bytes) -> Entry:
    return Entry(path, HARDLINK, 0, T1, 0, 0, 0, 0o100644, 0, 0, b"", b"", "", "", "", 0, 0,
                 0, to)


@pytest.mark.parametrize(("entries", "message"), [
    ([_file(b"a", FLAG_LINKED), _link(b"b", b"../etc/passwd")], "unsafe path"),
    ([_file(b"a"), _link(b"b", b"a")], "not a linked file"),
    ([_link(b"a", b"b"), _file(b"b", FLAG_LINKED)], "does not come before"),
    ([_file(b"a")._replace(link=b"b")], "not a hardlink"),
    ([_file(b"a")._replace(rdev=5)], "device number"),
    ([_file(b"a")._replace(xattrs=b"user.x\0" + struct.pack("<I", 10) + b"short")],
     "malformed"),
    ([_file(b"a")._replace(xattrs=b"\1" * (xattrs.MAX_BLOB + 1))], "too large"),
    ([Entry(b"p", "p", 0, T1, 0, 0, 0, 0o100644, 0, 0, b"", b"", "", "", "", 0, 0)], "mode"),
])
def test_hostile_format2_fields_are_refused(entries: list[Entry], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        validate(entries, 100)


def test_format2_columns_cost_nothing_when_empty_and_round_trip() -> None:
    plain = [_file(b"f%05d" % i) for i in range(2000)]
    blob = segment.encode(plain)
    assert segment.decode(blob) == plain
    # The three new columns, all default: 12 bytes of lengths before zlib.
    assert len(blob) - len(_encode_v1(plain)) <= 16
    rich = [e._replace(kind="c", mode=0o20644, rdev=os.makedev(1, i % 7), size=0)
            if i % 3 == 0 else e._replace(xattrs=xattrs.encode({b"user.i": b"%d" % i}))
            for i, e in enumerate(plain)]
    rich[5] = _link(b"f00005", b"f00001")
    assert segment.decode(segment.encode(rich)) == rich
    assert validate([_file(b"a", FLAG_LINKED), _link(b"b", b"a"),
                     Entry(b"d", DIR, 0, T1, 0, 0, 0, 0o40755, 0, 0, b"", b"", "", "", "", 0,
                           0)], 10) == 3


def _encode_v1(entries: list[Entry]) -> bytes:
    """What a BCS1 encoder wrote for these entries (the first 17 columns)."""
    import zlib
    raw = zlib.decompress(segment.encode(entries))
    count = struct.unpack_from("<I", raw, 4)[0]
    pos, columns = 8, []
    while pos < len(raw):
        (length,) = struct.unpack_from("<I", raw, pos)
        columns.append(raw[pos:pos + 4 + length])
        pos += 4 + length
    v1 = b"BCS1" + struct.pack("<I", count) + b"".join(columns[:17])
    assert segment.decode(zlib.compress(v1, 1)) == entries  # BCS1 still decodes
    return zlib.compress(v1, 1)
