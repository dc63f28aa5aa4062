"""The uploader computes the MD5 of what it sends only for a store that uses it.

A store that declares `uses_md5` False (the encrypted one: it sends ciphertext, whose
MD5 it computes itself after sealing) is given no MD5 of the plaintext, for whole
files and for every part; a store that declares it True is given the true MD5 of each
body. Both ways the bytes stored are the file's.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from baycat.entry import FILE, Entry
from baycat.ops.transfer import TransferConfig, Uploader
from baycat.store.base import Stored
from baycat.store.local import LocalStore

MiB = 1 << 20


class RecordingStore(LocalStore):
    """A local store that records the MD5 it is given with each body and, when it
    declares that it needs none, checks what it writes with an MD5 of its own."""

    def __init__(self, root: Path, uses_md5: bool) -> None:
        super().__init__(root)
        self.uses_md5 = uses_md5
        self.given: list[tuple[bytes, bytes]] = []  # (md5 given, md5 of the body)

    def _own(self, data: bytes | bytearray, md5: bytes) -> bytes:
        self.given.append((md5, hashlib.md5(data).digest()))
        return md5 if self.uses_md5 else hashlib.md5(data).digest()

    async def put(self, key: str, data: bytes | bytearray, *, md5: bytes,
                  if_match: str | None = None, if_none_match_any: bool = False) -> Stored:
        return await super().put(key, data, md5=self._own(data, md5), if_match=if_match,
                                 if_none_match_any=if_none_match_any)

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes,
                          md5: bytes) -> str:
        return await super().upload_part(key, upload_id, number, data,
                                         self._own(data, md5))


def _entry(path: Path) -> Entry:
    return Entry(os.fsencode(path.name), FILE, path.stat().st_size, 0, 0, 0, 0, 0o100644,
                 0, 0, b"", b"", "", "", "", 0, 0)


@pytest.mark.parametrize("uses_md5", [True, False])
def test_the_plaintext_md5_is_computed_only_for_a_store_that_uses_it(
        tmp_path: Path, uses_md5: bool) -> None:
    src = tmp_path / "src"
    src.mkdir()
    small, large = src / "small", src / "large"
    small.write_bytes(os.urandom(100_000))
    large.write_bytes(os.urandom(11 * MiB))  # three parts of 5 MiB: 5 + 5 + 1
    store = RecordingStore(tmp_path / "dst", uses_md5)
    uploader = Uploader(store, TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB),
                        os.fsencode(src))

    async def upload_both() -> None:
        for path in (small, large):
            done = await uploader.upload(_entry(path), path.name)
            assert done.bytes_sent == path.stat().st_size
            assert done.stored.etag  # the store's answer is what is recorded

    asyncio.run(upload_both())
    assert len(store.given) == 4  # one whole file, three parts
    for given, actual in store.given:
        assert given == (actual if uses_md5 else b"")
    for path in (small, large):
        assert (tmp_path / "dst" / path.name).read_bytes() == path.read_bytes()
