"""The multipart uploads a run has started and not yet finished, kept on disk.

An interrupted large upload (kill -9, power loss) leaves an incomplete multipart upload
that S3 keeps, and bills, until it is aborted. Its id is known only to the run that
started it, so each one is written down here when it starts and struck out when it
completes or is aborted; the next run to the same destination aborts what is left.

    <state dir>/remote/<destination id>.uploads/<sha256(upload id)[:32]>
        {"key": "...", "upload_id": "..."}

One small file per upload (created 0600 in a 0700 directory): adding and removing are
one create and one unlink, and a torn write can only lose that one record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from baycat.errors import StateWriteError
from baycat.private import mkdir_private, open_private


@dataclass(frozen=True, slots=True)
class PendingUpload:
    key: str
    upload_id: str


class UploadJournal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, upload_id: str) -> Path:
        return self.directory / hashlib.sha256(upload_id.encode()).hexdigest()[:32]

    def add(self, key: str, upload_id: str) -> None:
        """Blocking: record a started upload (durably enough: it is rare and small).
        Raises StateWriteError when the record can't be written."""
        path = self._path(upload_id)
        try:
            mkdir_private(self.directory, parents=True)  # and remote/, whatever the umask
            data = json.dumps({"key": key, "upload_id": upload_id}).encode()
            fd = open_private(path, os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StateWriteError.of("write", path, exc) from None

    def remove(self, upload_id: str) -> None:
        # Best effort: a record left behind only costs one DELETE of the next run.
        with contextlib.suppress(OSError):
            self._path(upload_id).unlink()

    def pending(self) -> list[PendingUpload]:
        """Blocking: the uploads recorded and not struck out (unreadable records are
        dropped: without an id nothing can be aborted)."""
        try:
            names = sorted(os.listdir(self.directory))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise StateWriteError.of("read", self.directory, exc) from None
        found: list[PendingUpload] = []
        for name in names:
            path = self.directory / name
            try:
                doc = json.loads(path.read_bytes())
                found.append(PendingUpload(str(doc["key"]), str(doc["upload_id"])))
            except (OSError, ValueError, KeyError, TypeError):
                with contextlib.suppress(OSError):
                    path.unlink()
        return found
