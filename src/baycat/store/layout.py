"""What is baycat's own under a backup's prefix, and what is data.

    PREFIX/a/b.txt                 data: the object of the path a/b.txt
    PREFIX/.baycat/root, packs/…   baycat's own state: the manifest, the store lock
    PREFIX/.baycat/escaped/<hash>  data: the object of a name that can't be a key as it
                                   is (manifest/keys.py)

One home for the rule, because both sides of the store boundary need it: the stores
(manifest objects keep the STANDARD storage class, they are read every run) and the
operations (a LIST's own objects are neither adopted, reported as unknown, nor restored).
"""

from __future__ import annotations

STATE_PREFIX = ".baycat/"
# The first bytes of every object of an encrypted backup (store/envelope.py): how a
# reader without the key tells an encrypted root from a damaged one.
ENCRYPTED_MAGIC = b"BAYCATE1"
ESCAPED_PREFIX = ".baycat/escaped/"


def is_state_key(key: str) -> bool:
    """Whether `key` (relative to the prefix) is one of baycat's own objects, not data.

    >>> [is_state_key(k) for k in (".baycat/root", ".baycat/escaped/ab12", "a/.baycat/x")]
    [True, False, False]
    """
    return key.startswith(STATE_PREFIX) and not key.startswith(ESCAPED_PREFIX)
