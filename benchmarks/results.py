"""What one run of one tool in one scenario measured (the rows of the report)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class Measurement:
    """Timed figures come from the plain run; requests and bytes read from a second,
    counted run (through the counting proxy, under strace) of the same scenario on a
    twin tree and bucket. `None` means "not measured"."""

    tool: str
    scenario: str
    wall_s: float | None = None
    peak_rss_kib: int | None = None
    exit_code: int | None = None
    failure: str = ""  # why the timed run failed ('' when it succeeded)
    correct: bool | None = None
    correct_detail: str = ""
    requests: dict[str, int] | None = None
    bytes_up: int | None = None  # wire bytes to the server, heads included
    bytes_down: int | None = None
    file_bytes_read: int | None = None  # from local files, strace
    files_read: int | None = None
    files_opened: int | None = None  # regular files opened (snapshot scenario, strace)
    file_bytes_mapped: int | None = None
    state_bytes_read: int | None = None  # from the tool's own TREE/.baycat/ (strace)
    counted_wall_s: float | None = None  # under proxy + strace: not a timing
    counted_failure: str = ""
    tool_summary: dict[str, Any] | None = None  # baycat --json (timed run)
    counted_summary: dict[str, Any] | None = None  # baycat --json (counted run)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Finished and correct: only such runs are compared."""
        return not self.failure and self.correct is True

    @property
    def total_requests(self) -> int | None:
        return None if self.requests is None else sum(self.requests.values())

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["total_requests"] = self.total_requests
        return d


def parse_json_summary(stdout: str) -> dict[str, Any] | None:
    """The last line of `stdout` that is a JSON object (baycat --json), else None."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None
