"""The "last clean sync" marker: what lets a no-change run skip the remote manifest.

After a sync that finished with no failure, baycat records (per destination) the remote
root's ETag and a digest of the local manifest's root. Next run, if the remote root is
still that one (its conditional GET said 304) and the local manifest is still that one,
every path whose local entry did not change is known to be in sync — both sides are as
the clean sync left them — so only changed paths are looked up in the remote manifest.
A no-change run then decodes no remote segment at all. Any doubt (a failure, an
interruption, `manifest update` in between, --delete toggled) means no marker, and the
full merge with the remote manifest runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from baycat.errors import StateWriteError
from baycat.manifest.file import temp_path
from baycat.manifest.root import Root
from baycat.private import write_private


@dataclass(frozen=True, slots=True)
class SyncedState:
    remote_etag: str
    local_root: str  # root_digest of the local manifest
    delete: bool


def root_digest(root: Root) -> str:
    return hashlib.sha256(root.to_bytes()).hexdigest()


def read_synced(path: Path) -> SyncedState | None:
    try:
        doc = json.loads(path.read_bytes())
        return SyncedState(str(doc["remote_etag"]), str(doc["local_root"]), bool(doc["delete"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_synced(path: Path, state: SyncedState) -> None:
    """Raises StateWriteError when the marker can't be written (no temp file is left)."""
    tmp = temp_path(path)
    try:
        write_private(tmp, json.dumps(asdict(state)).encode())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StateWriteError.of("write", path, exc) from None


def forget_synced(path: Path) -> None:
    """Best effort (a marker that can't be removed claims nothing: it names the remote
    root and local manifest of its clean sync, and a run that commits changes both)."""
    with contextlib.suppress(OSError):
        path.unlink()
