"""The key derivation started before the engine loads (store/unlock_ahead.py, issue 17):
the cache it reads is the store's own, and a key derived from any other keys object is
never used."""

from __future__ import annotations

from pathlib import Path

import pytest

import baycat
from baycat.store.base import Fetched
from baycat.store.encrypted import ROOT_KEY, EncryptedStore
from baycat.store.endpoints import open_store, parse_endpoint, store_url
from baycat.store.keyring import Keyring
from baycat.store.s3_options import S3Options
from baycat.store.unlock_ahead import start


@pytest.mark.parametrize("destination", ["s3://bucket/", "s3://bucket/some/prefix/",
                                         "relative/backup", "/abs/backup", "file:///x/y"])
def test_store_url_is_the_url_of_the_store_open_store_makes(tmp_path: Path,
                                                            destination: str,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.chdir(tmp_path)
    endpoint = parse_endpoint(destination)
    assert store_url(endpoint) == open_store(endpoint, S3Options(), create=False).url


def test_http_endpoints_have_no_store_url() -> None:
    assert store_url(parse_endpoint("https://example.com/backup/")) is None


async def _backup(tmp_path: Path, name: str, password: bytes) -> tuple[Path, Path]:
    """An encrypted local backup of a 1-file tree; returns (backup dir, key cache)."""
    src = tmp_path / f"src-{name}"
    src.mkdir()
    (src / "a.txt").write_bytes(b"contents of " + name.encode())
    dst = tmp_path / f"backup-{name}"
    enc = baycat.Encryption(baycat.Secret("password", password), create=True, scrypt_n=1024)
    await baycat.sync(src, str(dst), encryption=enc)
    caches = list((src / ".baycat").rglob("*.keys"))
    assert len(caches) == 1, caches
    return dst, caches[0]


async def test_a_key_derived_from_another_backups_keys_is_not_used(tmp_path: Path) -> None:
    mine, my_cache = await _backup(tmp_path, "mine", b"same password")
    _, other_cache = await _backup(tmp_path, "other", b"same password")
    secret = baycat.Secret("password", b"same password")
    # The other backup's cache opens with the same password, to another master key.
    enc = start(baycat.Encryption(secret, cache=my_cache), other_cache)
    assert enc.ahead is not None
    store = EncryptedStore(open_store(parse_endpoint(str(mine)), S3Options(), create=False),
                           enc)
    await store.open()
    try:
        await store.ready()
        got = enc.ahead.result()
        assert got.keyring is not None and got.master  # it did derive, another key
        root = await store.get(ROOT_KEY)  # decrypts (authenticated) with my key only
        assert isinstance(root, Fetched) and root.data
        # One read, the root: not a failed decryption and a fetch of the keys object
        # to recover from it.
        assert dict(store.requests) == {"GET": 1}, store.requests
    finally:
        await store.close()


async def test_the_early_derivation_from_the_stores_own_cache_is_the_only_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine, my_cache = await _backup(tmp_path, "mine", b"pw")
    derivations: list[str] = []
    unlock = Keyring.unlock

    def counted(self: Keyring, secret: baycat.Secret) -> tuple[bytes, str]:
        derivations.append(secret.kind)
        return unlock(self, secret)

    monkeypatch.setattr(Keyring, "unlock", counted)
    enc = start(baycat.Encryption(baycat.Secret("password", b"pw"), cache=my_cache),
                my_cache)
    store = EncryptedStore(open_store(parse_endpoint(str(mine)), S3Options(), create=False),
                           enc)
    await store.open()
    try:
        await store.ready()
        root = await store.get(ROOT_KEY)
        assert isinstance(root, Fetched) and root.data
    finally:
        await store.close()
    assert derivations == ["password"]
