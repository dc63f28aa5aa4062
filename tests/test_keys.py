"""Which keys under a backup's prefix are baycat's own state (store/layout.py), checked
against the keys the manifest and the key escaping really use."""

from __future__ import annotations

from baycat.manifest.keys import key_for_path
from baycat.manifest.remote import PACK_PREFIX, PROBE_KEY, ROOT_KEY
from baycat.store.layout import is_state_key
from tests.support.tables import row

STATE = [ROOT_KEY, PACK_PREFIX + "20250101T000000Z-ab12", PROBE_KEY, ".baycat/store.lock"]
DATA = [
    "a.txt",
    "d/.baycat/root",  # a subdirectory's .baycat is data: only the top one is baycat's
    ".baycatignore",
    key_for_path(b"not-utf8-\xff", ""),  # escaped names: under .baycat/, yet data
    key_for_path(b"back\\slash", "p/"),
]


def test_state_keys_and_data_keys() -> None:
    assert key_for_path(b"not-utf8-\xff", "").startswith(".baycat/escaped/")
    for key in STATE:
        with row(key):
            assert is_state_key(key)
    for key in DATA:
        with row(key):
            assert not is_state_key(key)
