"""Counters the engine updates and the UI reads (a few times a second, never per file).

The core never imports rich or typer: it only bumps these plain integers, which costs
nothing measurable, and reports warnings through a callback with a no-op default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class StageCounter:
    files: int = 0
    bytes: int = 0
    total_files: int = 0  # known so far (grows while scanning)
    total_bytes: int = 0


@dataclass(slots=True)
class Progress:
    """Live counters of one run. Mutated only from the event loop thread."""

    scan: StageCounter = field(default_factory=StageCounter)
    hash: StageCounter = field(default_factory=StageCounter)
    transfer: StageCounter = field(default_factory=StageCounter)
    scan_done: bool = False
    # Large transfers under way: name -> (bytes done, size).
    active: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notice:
    """A warning about one path (skipped, unreadable, ...); the run goes on."""

    path: bytes  # relative path, b"" for the root or the whole run
    message: str
    failure: bool = True  # the path could not be backed up (exit code 1); False: a remark


NoticeFunc = Callable[[Notice], None]


def ignore_notice(_: Notice) -> None:
    pass


# on_action(kind, path, bytes): one call per operation ("upload", "copy", "delete", ...),
# for `-v` output.
ActionFunc = Callable[[str, str, int], None]
