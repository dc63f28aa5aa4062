"""A backup's key derivation started before the engine loads (issue 17).

scrypt takes 0.15-0.34 s of CPU, and a no-change sync is ~0.5 s, most of it start-up
(importing the engine and the S3 stack, making the S3 client). Started in a thread as
soon as the secret and the cached keys object are known, the derivation costs the
second core instead of wall time, as far as there is other work to overlap (a no-change
run's scan ends first and waits for the rest in `close()`); `EncryptedStore.open()`
takes its result only if it was derived from the very keys object the store reads
(anything else: it derives again).

`baycat sync` starts it earlier still, from its arguments alone, before the app loads
(cli/early_unlock.py: `start_early`); `start` then takes that derivation over when it
was made with the same secret, whatever file it read: the store's own check of the keys
object decides whether its result is used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from baycat.store.encryption import Encryption, Secret

if TYPE_CHECKING:
    from baycat.store.keyring import Keyring


@dataclass(frozen=True, slots=True)
class Unlocked:
    """What the derivation found: the keys object it opened, its master key and slot."""

    keyring: Keyring | None = None  # None: there was no readable cached keys object
    master: bytes = b""
    slot_id: str = ""


# Derivations started by start_early, by secret, until `start` takes one over.
_early: dict[Secret, Future[Unlocked]] = {}


def start(encryption: Encryption, cache: Path) -> Encryption:
    """`encryption` with the derivation from the keys object cached at `cache` running
    in a daemon thread (`encryption.ahead`), or the one `start_early` began with the
    same secret. Errors (a wrong secret) are kept in the future; the store then derives
    again and raises what that raises."""
    early = _early.pop(encryption.secret, None)
    if early is not None:
        return replace(encryption, ahead=early)
    ahead: Future[Unlocked] = Future()
    _start_thread(lambda: cache, encryption.secret, ahead)
    return replace(encryption, ahead=ahead)


def start_early(find_cache: Callable[[], Path | None], secret: Secret) -> None:
    """Derive from the keys object cached where `find_cache()` says (None: nowhere, and
    nothing is derived), in a daemon thread that calls it: finding it imports modules
    the main thread is about to import too, and the two then load side by side."""
    ahead: Future[Unlocked] = Future()
    _early[secret] = ahead
    _start_thread(find_cache, secret, ahead)


def _start_thread(find_cache: Callable[[], Path | None], secret: Secret,
                  ahead: Future[Unlocked]) -> None:
    threading.Thread(target=_derive, args=(find_cache, secret, ahead),
                     name="baycat-unlock", daemon=True).start()


def _derive(find_cache: Callable[[], Path | None], secret: Secret,
            ahead: Future[Unlocked]) -> None:
    try:
        cache = find_cache()
        if cache is None:
            ahead.set_result(Unlocked())
            return
        # cryptography loads in this thread, beside the engine's imports.
        from baycat.store.keyring import KEY_CACHE_ERRORS, load_key_cache

        try:
            keyring, _ = load_key_cache(cache)
        except KEY_CACHE_ERRORS:
            ahead.set_result(Unlocked())  # the store reads (and reports) the cache itself
            return
        master, slot_id = keyring.unlock(secret)
        ahead.set_result(Unlocked(keyring, master, slot_id))
    except BaseException as exc:  # WrongKey: the store derives again and raises it
        ahead.set_exception(exc)
