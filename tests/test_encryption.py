"""Client-side encryption (docs/encryption.md): the object format on its own, then whole
backups on a local directory and on SeaweedFS — what the bucket shows, what still works,
and what happens when someone tampers with it."""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from baycat.store import envelope
from baycat.store.base import Corrupt
from baycat.store.encrypted import max_plain_key_bytes
from baycat.store.encryption import Secret
from baycat.store.keyring import Keyring, WrongKey
from tests.cli_helpers import run_baycat
from tests.support.static_http import StaticServer
from tests.targets import Target, requests_total
from tests.test_sync import assert_same_tree
from tests.trees import Spec, Symlink, make_tree, read_tree

KEY = secrets.token_bytes(32)
C = envelope.CHUNK

# ---- the object format ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, C - 1, C, C + 1, 3 * C, 3 * C + 17])
def test_sealed_objects_round_trip_with_arithmetic_sizes(size: int) -> None:
    data = os.urandom(size)
    sealed = envelope.seal(KEY, data)
    assert len(sealed) == envelope.ciphertext_size(size)
    assert envelope.plaintext_size(len(sealed)) == size
    opener = envelope.Opener(KEY, "x")
    out = b"".join(p for i in range(0, len(sealed), 999) for p in opener.feed(sealed[i:i + 999]))
    assert out + b"".join(opener.finish()) == data
    assert envelope.open_whole(KEY, sealed, "x")[0] == data


def _tampered(sealed: bytes) -> dict[str, bytes]:
    h, full = envelope.HEADER_BYTES, C + envelope.TAG
    chunks = [sealed[h + i * full:h + (i + 1) * full] for i in range(3)]
    other = envelope.seal(KEY, os.urandom(3 * C + 5))
    return {
        "a flipped bit": sealed[:h + 10] + bytes([sealed[h + 10] ^ 1]) + sealed[h + 11:],
        "the last byte cut": sealed[:-1],
        "the end chunk cut": sealed[:-envelope.END_BYTES],
        "cut at a chunk boundary": sealed[:h + 2 * full] + sealed[-envelope.END_BYTES:],
        "two chunks swapped": sealed[:h] + chunks[1] + chunks[0] + sealed[h + 2 * full:],
        "a chunk of another object": sealed[:h] + other[h:h + full] + sealed[h + full:],
        "another header (salt)": other[:h] + sealed[h:],
        "seq changed": sealed[:9] + (5).to_bytes(8, "big") + sealed[17:],
        "size changed": sealed[:h - 8] + (3 * C).to_bytes(8, "big") + sealed[h:],
    }


@pytest.mark.parametrize("how", list(_tampered(envelope.seal(KEY, b"x"))))
def test_tampering_is_detected_never_returned(how: str) -> None:
    data = os.urandom(3 * C + 5)
    bad = _tampered(envelope.seal(KEY, data))[how]
    with pytest.raises(Corrupt):
        envelope.open_whole(KEY, bad, "x")
    with pytest.raises(Corrupt):  # streaming: whatever came out before is authentic
        opener = envelope.Opener(KEY, "x")
        out = b"".join(opener.feed(bad))
        assert data.startswith(out)
        b"".join(opener.finish())


def test_a_root_is_not_a_data_object_and_the_reverse() -> None:
    root = envelope.seal(KEY, b"{}", envelope.KIND_ROOT, seq=3)
    with pytest.raises(Corrupt):
        envelope.open_whole(KEY, root, "x")
    plain, header = envelope.open_whole(KEY, root, "x", envelope.KIND_ROOT)
    assert (plain, header.seq) == (b"{}", 3)


def test_keyring_opens_with_each_slot_and_never_with_a_wrong_secret() -> None:
    ring, master = Keyring.create(Secret("password", b"one"), scrypt_n=1024)
    ring = ring.add(master, Secret("keyfile", b"k" * 32), scrypt_n=1024)
    ring = Keyring.from_bytes(ring.to_bytes())
    assert ring.unlock(Secret("password", b"one"))[0] == master
    assert ring.unlock(Secret("keyfile", b"k" * 32))[0] == master
    with pytest.raises(WrongKey):
        ring.unlock(Secret("password", b"two"))
    first = ring.slots[0]["id"]
    with pytest.raises(WrongKey):
        ring.remove(first).unlock(Secret("password", b"one"))
    assert b"one" not in ring.to_bytes() and master.hex() not in ring.to_bytes().decode()
    assert "one" not in repr(Secret("password", b"one"))


def test_the_store_knows_the_root_by_the_manifest_s_name() -> None:
    from baycat.manifest.remote import ROOT_KEY
    from baycat.store import encrypted

    assert encrypted.ROOT_KEY == ROOT_KEY  # kind and replay counter are the root's


def test_names_that_would_be_too_long_encrypted_are_escaped_first() -> None:
    # An encrypted name is ~1.6x its key: the engine must escape from ~600 bytes on.
    n = max_plain_key_bytes(len("some/prefix/"))
    assert 550 < n < 650


# ---- whole backups ------------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    path = tmp_path / "backup.key"
    path.write_bytes(secrets.token_bytes(32))
    return str(path)


def _tree(src: Path) -> None:
    make_tree(src, {"docs": {"secret-plan.txt": b"attack at dawn\n" * 100,
                             "copy.txt": b"attack at dawn\n" * 100},
                    "big.bin": os.urandom(3 * C + 100), "empty": b"",
                    "link": Symlink(b"docs/secret-plan.txt"), "dir": {}})
    make_tree(src, {"l" * 200: {"o" * 200: {"n" * 200: {"g.txt": b"a long name\n"}}}})


def _run(target: Target, *args: str | Path, check: int = 0) -> Any:
    proc = run_baycat(*args, env=target.env, check=check)
    return proc


def test_encrypted_backup_round_trip(target: Target, tmp_path: Path, key_file: str) -> None:
    src = tmp_path / "src"
    _tree(src)
    dry = target.sync(src, "--encrypt", "--dry-run", "--key-file", key_file)
    # docs/copy.txt duplicates secret-plan.txt: uploaded once, copied once (issue 18).
    assert dry["uploaded"]["files"] == 4 and dry["copied"]["files"] == 1
    assert target.objects(include_state=True) == {}
    first = target.sync(src, "--encrypt", "--key-file", key_file)
    assert first["exit_code"] == 0 and first["uploaded"]["files"] == 4
    assert first["copied"]["files"] == 1
    # The bucket: no file name, no plaintext, only baycat's fixed state names.
    stored = target.objects(include_state=True)
    odd = [k for k in stored if k not in (".baycat/root", ".baycat/keys", ".baycat/probe")
           and not k.startswith(("d/", ".baycat/packs/"))]
    assert odd == []
    assert sum(k.startswith("d/") for k in stored) == 5  # symlink and directory: none
    for key, body in stored.items():
        # Opaque names are base32 of random-looking bytes: any short string can occur in
        # them by chance ("lll" did, once), so look for what a plain name would show.
        assert "secret-plan" not in key and "docs/" not in key and "l" * 12 not in key
        assert b"attack" not in body and b"secret-plan" not in body
        if key != ".baycat/keys":
            assert body.startswith(b"BAYCATE1")
    # No change: one request (GET root -> 304), the keys object comes from the cache.
    again = target.sync(src, "--key-file", key_file)
    assert again["exit_code"] == 0 and requests_total(again) == 1, again["server_requests"]
    # A rename is a server-side copy of the encrypted object.
    os.rename(src / "docs" / "copy.txt", src / "docs" / "renamed.txt")
    renamed = target.sync(src, "--key-file", key_file, "--delete")
    assert renamed["copied"]["files"] == 1 and renamed["uploaded"]["files"] == 0
    assert renamed["deleted"]["files"] == 1  # the old name's object, by its opaque key
    assert sum(k.startswith("d/") for k in target.objects()) == 5
    out = tmp_path / "out"
    restored = target.restore(out, "--key-file", key_file)
    assert restored["exit_code"] == 0
    assert_same_tree(src, out)
    part = tmp_path / "part"
    target.restore(part, "--key-file", key_file, "--path", "docs")
    assert sorted(p.name for p in (part / "docs").iterdir()) == ["renamed.txt",
                                                                 "secret-plan.txt"]
    assert not (part / "big.bin").exists()


def test_verify_history_gc_and_restore_at(target: Target, tmp_path: Path,
                                          key_file: str) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"version one", "b.txt": b"bee"})
    target.sync(src, "--encrypt", "--key-file", key_file)
    (src / "a.txt").write_bytes(b"version two!")
    (src / "b.txt").unlink()
    target.sync(src, "--key-file", key_file)
    (src / "c.txt").write_bytes(b"sea")
    target.sync(src, "--key-file", key_file, "--keep-generations", "2")
    hist = json.loads(_run(target, "history", "--json", "--key-file", key_file,
                           target.url).stdout)
    gens = hist["generations"]
    assert [g["files"] for g in gens] == [2, 1]
    when = datetime.fromtimestamp(gens[1]["time_ns"] // 1000 / 1e6, UTC).isoformat()
    old = tmp_path / "old"
    target.restore(old, "--key-file", key_file, "--at", when, check=None)
    # The generation before c.txt: a.txt (version two) only; b.txt was deleted then.
    assert sorted(p.name for p in old.iterdir() if p.name != ".baycat") == ["a.txt"]
    assert (old / "a.txt").read_bytes() == b"version two!"
    for deep in ([], ["--deep"]):
        doc = json.loads(_run(target, "verify", "--json", *deep, "--key-file", key_file,
                              target.url).stdout)
        assert doc["exit_code"] == 0 and doc["problems"] == [], doc
    gc = json.loads(_run(target, "gc", "--json", "--grace", "0s", "--key-file", key_file,
                         target.url).stdout)
    # The first commit's pack is no kept generation's: deleted, by its opaque name.
    assert gc["exit_code"] == 0 and gc["deleted_packs"] == 1, gc
    assert json.loads(_run(target, "verify", "--json", "--key-file", key_file,
                           target.url).stdout)["exit_code"] == 0


def test_wrong_key_or_none_is_exit_3_and_writes_nothing(target: Target, tmp_path: Path,
                                                        key_file: str) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"hello"})
    pw = tmp_path / "pw"
    pw.write_bytes(b"correct horse\n")
    target.sync(src, "--encrypt", "--password-file", str(pw))
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"incorrect horse\n")
    # Even a run with nothing to do (GET root -> 304, no key needed) checks the password.
    run_baycat("sync", "--password-file", wrong, src, target.url, env=target.env, check=3)
    (src / "new.txt").write_bytes(b"new")
    before = target.objects(include_state=True)
    for args in (["--password-file", wrong], ["--key-file", key_file], []):
        proc = run_baycat("sync", "--json", *args, src, target.url, env=target.env, check=3)
        doc = json.loads(proc.stdout)
        assert doc["exit_code"] == 3 and ("wrong" in doc["fatal_error"]
                                          or "encrypted" in doc["fatal_error"]), doc
        assert b"horse" not in proc.stdout + proc.stderr
    # Not even --scan-remote (which replaces a *damaged* manifest) touches it.
    run_baycat("sync", "--scan-remote", src, target.url, env=target.env, check=3)
    run_baycat("restore", "--password-file", wrong, target.url, tmp_path / "out",
               env=target.env, check=3)
    assert not (tmp_path / "out").exists()
    assert target.objects(include_state=True) == before
    # The password works from BAYCAT_PASSWORD_COMMAND too, and is never logged.
    env = {**target.env, "BAYCAT_PASSWORD_COMMAND": f"cat {pw}"}
    proc = run_baycat("--log-level", "debug", "sync", src, target.url, env=env)
    assert b"horse" not in proc.stdout + proc.stderr


def test_encrypt_refuses_a_plain_backup_and_plain_backups_stay_plain(
        target: Target, tmp_path: Path, key_file: str) -> None:
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"hello"})
    target.sync(src)
    assert target.objects() == {"a.txt": b"hello"}  # browsable, as before
    proc = run_baycat("sync", "--encrypt", "--key-file", key_file, src, target.url,
                      env=target.env, check=3)
    assert b"plain" in proc.stderr
    run_baycat("restore", "--key-file", key_file, target.url, tmp_path / "o",
               env=target.env, check=3)
    assert ".baycat/keys" not in target.objects(include_state=True)


def test_tampered_objects_are_reported_and_never_restored(tmp_path: Path,
                                                          key_file: str) -> None:
    src, backup = tmp_path / "src", tmp_path / "backup"
    files = {"a.txt": b"A" * 5000, "b.txt": b"B" * 5000, "c.txt": b"C" * 70000,
             "d.txt": b"D" * 100, "e.txt": b"E" * 100}
    spec: Spec = {name: data for name, data in files.items()}
    make_tree(src, spec)
    target = Target("local", str(backup), root=backup)
    target.sync(src, "--encrypt", "--key-file", key_file)
    # The names are opaque; sizes tell the objects apart: d|e (100 B), a|b, c.
    objects = target.objects()
    by_size = sorted(objects, key=lambda k: (len(objects[k]), k))
    d_or_e, a_or_b, c = by_size[0:2], by_size[2:4], by_size[4]
    target.put_raw(a_or_b[0], objects[a_or_b[0]][:-1] + b"\0")  # modified
    target.put_raw(c, objects[c][:envelope.HEADER_BYTES + C + 16]
                   + objects[c][-envelope.END_BYTES:])  # truncated at a chunk boundary
    target.put_raw(d_or_e[0], objects[d_or_e[1]])  # swapped: d's object under e's key
    target.put_raw(d_or_e[1], objects[d_or_e[0]])
    out = tmp_path / "out"
    summary = target.restore(out, "--key-file", key_file, check=1)
    failed = {e["path"] for e in summary["errors"]}
    assert failed == {"c.txt", "d.txt", "e.txt"} | ({"a.txt", "b.txt"} & failed)
    assert len(failed) == 4
    for name, data in files.items():
        if name not in failed:
            assert (out / name).read_bytes() == data
        else:
            assert not (out / name).exists()
    for deep in ([], ["--deep"]):
        proc = run_baycat("verify", "--json", *deep, "--key-file", key_file, backup, check=1)
        problems = {p["path"]: p["kind"] for p in json.loads(proc.stdout)["problems"]}
        assert set(problems) == failed and set(problems.values()) == {"corrupt"}, problems


def test_tampered_manifest_and_replayed_root_are_refused(tmp_path: Path,
                                                         key_file: str) -> None:
    src, backup = tmp_path / "src", tmp_path / "backup"
    make_tree(src, {"a.txt": b"one"})
    target = Target("local", str(backup), root=backup)
    target.sync(src, "--encrypt", "--key-file", key_file)
    old_root = (backup / ".baycat" / "root").read_bytes()
    [(data_key, old_object)] = target.objects().items()
    (src / "a.txt").write_bytes(b"two")
    target.sync(src, "--key-file", key_file)
    # Replay: the old (authentic) root put back; the syncing machine has seen a newer one.
    new_root = (backup / ".baycat" / "root").read_bytes()
    target.put_raw(".baycat/root", old_root)
    proc = run_baycat("sync", src, backup, "--key-file", key_file, check=3)
    assert b"older than one this machine has seen" in proc.stderr
    # A damaged root is refused, even by --scan-remote (which rebuilds a *plain* one).
    damaged = new_root[:-1] + bytes([new_root[-1] ^ 1])
    target.put_raw(".baycat/root", damaged)
    proc = run_baycat("sync", "--scan-remote", src, backup, "--key-file", key_file, check=3)
    assert b"corrupt" in proc.stderr
    assert (backup / ".baycat" / "root").read_bytes() == damaged  # not replaced
    target.put_raw(".baycat/root", new_root)
    # A replayed object (a.txt's first version, authentic, under its own name).
    new_object = target.objects()[data_key]
    target.put_raw(data_key, old_object)
    summary = target.restore(tmp_path / "r1", "--key-file", key_file, check=1)
    assert [e["path"] for e in summary["errors"]] == ["a.txt"]
    assert not (tmp_path / "r1" / "a.txt").exists()
    target.put_raw(data_key, new_object)
    # Two manifest packs swapped, then one damaged: the manifest is not trusted.
    packs = sorted((backup / ".baycat" / "packs").iterdir())
    assert len(packs) == 2
    blobs = [p.read_bytes() for p in packs]
    packs[0].write_bytes(blobs[1])
    packs[1].write_bytes(blobs[0])
    proc = run_baycat("restore", "--key-file", key_file, backup, tmp_path / "r2", check=3)
    assert b"corrupt" in proc.stderr or b"damaged" in proc.stderr
    packs[0].write_bytes(blobs[0])
    packs[1].write_bytes(blobs[1])
    for pack in packs:
        data = bytearray(pack.read_bytes())
        data[envelope.HEADER_BYTES + 3] ^= 1
        pack.write_bytes(bytes(data))
    proc = run_baycat("restore", "--key-file", key_file, backup, tmp_path / "out", check=3)
    assert b"corrupt" in proc.stderr
    assert not (tmp_path / "out" / "a.txt").exists()
    proc = run_baycat("verify", "--key-file", key_file, backup, check=None)
    assert proc.returncode != 0


def test_restore_over_plain_http_with_the_key(tmp_path: Path, key_file: str) -> None:
    src, backup = tmp_path / "src", tmp_path / "backup"
    _tree(src)
    run_baycat("sync", "--encrypt", "--key-file", key_file, src, backup)
    with StaticServer(backup) as server:
        run_baycat("restore", server.url, tmp_path / "nokey", check=3)
        run_baycat("restore", "--key-file", key_file, server.url, tmp_path / "out")
        assert_same_tree(src, tmp_path / "out")
        assert set(server.requests) <= {"GET 200", "GET 206", "GET 404"}


def test_key_add_and_remove_change_no_data(tmp_path: Path, key_file: str) -> None:
    src, backup = tmp_path / "src", tmp_path / "backup"
    make_tree(src, {"a.txt": b"hello"})
    target = Target("local", str(backup), root=backup)
    target.sync(src, "--encrypt", "--key-file", key_file)
    data_before = target.objects()
    pw = tmp_path / "pw"
    pw.write_bytes(b"second\n")
    run_baycat("key", "add", "--key-file", key_file, "--new-password-file", pw, backup)
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")  # bad input (exit 2), not a wrong key (exit 3)
    run_baycat("key", "add", "--key-file", key_file, "--new-key-file", short, backup, check=2)
    slots = json.loads(run_baycat("key", "list", "--json", "--password-file", pw,
                                  backup).stdout)["slots"]
    assert sorted(s["kind"] for s in slots) == ["keyfile", "password"]
    first = next(s["id"] for s in slots if s["kind"] == "keyfile")
    only = json.loads(run_baycat("key", "remove", "--json", "--password-file", pw, backup,
                                 first).stdout)["slots"]
    assert [s["kind"] for s in only] == ["password"]
    run_baycat("restore", "--key-file", key_file, backup, tmp_path / "o1", check=3)
    run_baycat("restore", "--password-file", pw, backup, tmp_path / "o2")
    assert (tmp_path / "o2" / "a.txt").read_bytes() == b"hello"
    assert target.objects() == data_before  # no object re-encrypted
    proc = run_baycat("key", "remove", "--password-file", pw, backup, only[0]["id"], check=3)
    assert b"last key slot" in proc.stderr


def test_large_files_go_up_in_encrypted_parts(s3: Target, tmp_path: Path) -> None:
    import baycat

    src = tmp_path / "src"
    big = os.urandom(11 * 1024 * 1024 + 5)
    make_tree(src, {"big.bin": big})
    assert s3.seaweed is not None and s3.proxy is not None
    options = baycat.S3Options(endpoint_url=s3.proxy.endpoint_url, region="us-east-1",
                               access_key_id=s3.seaweed.access_key,
                               secret_access_key=s3.seaweed.secret_key)
    enc = baycat.Encryption(baycat.Secret("password", b"pw"), create=True, scrypt_n=1024)
    sync_options = baycat.SyncOptions(transfer=baycat.TransferConfig(
        multipart_threshold=6 * 1024 * 1024, part_size=5 * 1024 * 1024))
    s3.proxy.reset()
    plain = baycat.sync_blocking(src, f"s3://{s3.bucket}/plain/", sync_options, s3=options)
    plain_puts = s3.proxy.counts()["PUT"]
    s3.proxy.reset()
    summary = baycat.sync_blocking(src, s3.url, sync_options, s3=options, encryption=enc)
    assert summary.exit_code == 0 and summary.uploaded.files == 1 and plain.exit_code == 0
    # The same parts (5, 5 and 1 MiB; the end chunk rides on the last), + the keys object.
    assert s3.proxy.counts()["PUT"] == plain_puts + 1
    out = tmp_path / "out"
    restored = baycat.restore_blocking(s3.url, out, s3=options, encryption=enc)
    assert restored.exit_code == 0 and (out / "big.bin").read_bytes() == big
    verified = baycat.verify_blocking(s3.url, baycat.VerifyOptions(deep_percent=100),
                                      s3=options, encryption=enc)
    assert verified.exit_code == 0 and verified.deep_files == 1


def test_ls_diff_forget_prune_and_repair_work_on_an_encrypted_backup(
        target: Target, tmp_path: Path, key_file: str) -> None:
    """The commands that came with the other issues take the key like the rest."""
    src = tmp_path / "src"
    make_tree(src, {"a.txt": b"version one", "b.txt": b"bee", "gone.txt": b"going"})
    target.sync(src, "--encrypt", "--key-file", key_file)
    (src / "gone.txt").unlink()
    (src / "a.txt").write_bytes(b"version two!")
    target.sync(src, "--key-file", key_file)
    (src / "c.txt").write_bytes(b"sea")
    target.sync(src, "--key-file", key_file)

    def run_json(*args: str, check: int = 0) -> Any:
        return json.loads(_run(target, *args, "--key-file", key_file, target.url,
                               check=check).stdout)

    listing = run_json("ls", "--json")
    assert sorted(e["path"] for e in listing["entries"]) == ["a.txt", "b.txt", "c.txt"]
    changes = run_json("diff", "--json")["changes"]
    assert [(c["path"], c["change"]) for c in changes] == [("c.txt", "added")]
    # Without the key these commands refuse, as the others do.
    refused = run_baycat("ls", "--json", target.url, env=target.env, check=3)
    assert json.loads(refused.stdout)["exit_code"] == 3
    forgot = run_json("forget", "--json", "--keep-last", "1", "--prune", "--grace", "0")
    assert forgot["committed"] and forgot["prune"]["entries_dropped"] == 1, forgot
    out = tmp_path / "out"
    target.restore(out, "--key-file", key_file)
    assert read_tree(out) == read_tree(src)
    # An object deleted behind baycat's back (opaque name: any data object) is repaired.
    data = sorted(k for k in target.objects() if k.startswith("d/"))
    assert len(data) == 3
    target.delete_raw(data[0])
    assert run_json("verify", "--json", check=1)["problems"]
    repaired = json.loads(_run(target, "repair", "--json", "--key-file", key_file, str(src),
                               target.url).stdout)
    assert repaired["exit_code"] == 0, repaired
    assert run_json("verify", "--json", "--deep")["problems"] == []
