"""The result of a sync or restore: what `--json` prints and the Python API returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from baycat.errors import ExitCode

SCHEMA_VERSION = 1


@dataclass(slots=True)
class OpCount:
    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size


@dataclass(frozen=True, slots=True)
class FileError:
    path: str
    message: str


@dataclass(slots=True)
class SyncSummary:
    source: str
    destination: str
    dry_run: bool = False
    uploaded: OpCount = field(default_factory=OpCount)
    copied: OpCount = field(default_factory=OpCount)
    metadata: OpCount = field(default_factory=OpCount)  # manifest-only changes
    deleted: OpCount = field(default_factory=OpCount)  # objects removed (--delete)
    # restore: paths in DST the backup doesn't have, left there (removed: `deleted`)
    extra: OpCount = field(default_factory=OpCount)
    marked_deleted: OpCount = field(default_factory=OpCount)  # kept, marked deleted
    downloaded: OpCount = field(default_factory=OpCount)  # restore
    adopted: OpCount = field(default_factory=OpCount)  # --scan-remote: already there
    unchanged: OpCount = field(default_factory=OpCount)
    failed: OpCount = field(default_factory=OpCount)
    requests: dict[str, int] = field(default_factory=dict)
    # Estimated cost of `requests` (cost.py; set by the API/CLI, which know the prices).
    request_cost_usd: float = 0.0
    price_table: str = ""
    storage_class: str = "STANDARD"
    manifest_bytes_uploaded: int = 0
    manifest_bytes_downloaded: int = 0
    committed: bool = False
    checkpoints: int = 0  # remote manifest commits (the last one included)
    interrupted: bool = False
    # --max-changes refused the run: how many files changed content, and the limit (the
    # message is in `refused`).
    refused_changes: int = 0
    refused_limit: int | None = None
    # The destination's versioning (manifest/versioning.py): "Enabled", "Suspended", ""
    # (never enabled), "n/a" (a local directory), "unknown"; "" too before it is known.
    bucket_versioning: str = ""
    errors: list[FileError] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    # What a safety limit refused (--max-delete, --max-changes): also in `notices`;
    # exit code 5.
    refused: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.refused:
            return ExitCode.REFUSED
        return ExitCode.PARTIAL if self.errors else ExitCode.OK

    def refuse(self, message: str) -> None:
        """A safety limit refused a step: the run says so and exits 5."""
        self.refused.append(message)
        self.notices.append(message)

    def fail(self, path: str, message: str, size: int = 0) -> None:
        self.failed.add(size)
        self.errors.append(FileError(path, message))

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["schema_version"] = SCHEMA_VERSION
        doc["exit_code"] = int(self.exit_code)
        doc["operations"] = {name: doc[field_name] for name, field_name in OPERATIONS}
        return doc


# The `operations` object of `--json` (docs/json-summary.md): name -> SyncSummary field.
OPERATIONS = (("uploaded", "uploaded"), ("copied", "copied"), ("metadata_only", "metadata"),
              ("deleted", "deleted"), ("marked_deleted", "marked_deleted"), ("extra", "extra"),
              ("downloaded", "downloaded"), ("adopted", "adopted"), ("skipped", "unchanged"),
              ("failed", "failed"))
