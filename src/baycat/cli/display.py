"""The terminal side: a rich live display fed from `Progress` counters, and messages.

Only the CLI imports this module. The display redraws from counters a few times a
second; the engine never calls into it.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from baycat.progress import Progress

REFRESH_PER_SECOND = 4


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class LiveDisplay:
    """Context manager showing one line per stage while the run is under way."""

    def __init__(self, progress: Progress, console: Console, enabled: bool) -> None:
        self.progress = progress
        self.console = console
        self.enabled = enabled
        self._started = time.monotonic()
        self._live: Live | None = None

    def _render(self) -> Table:
        p = self.progress
        elapsed = max(time.monotonic() - self._started, 1e-6)
        table = Table.grid(padding=(0, 2))
        scan_state = "done" if p.scan_done else "…"
        table.add_row("scan", f"{p.scan.files:,} entries", scan_state)
        table.add_row("hash", f"{p.hash.files:,} files", f"{_size(p.hash.bytes)}",
                      f"{_size(p.hash.bytes / elapsed)}/s")
        if p.transfer.total_files or p.transfer.files:
            t = p.transfer
            rate = t.bytes / elapsed
            eta = ""
            if t.total_bytes and rate > 0 and p.scan_done:
                eta = f"ETA {max(t.total_bytes - t.bytes, 0) / rate:.0f} s"
            table.add_row("transfer", f"{t.files:,}/{t.total_files:,} files",
                          f"{_size(t.bytes)}/{_size(t.total_bytes)}", f"{_size(rate)}/s", eta)
        for name, (done, size) in list(p.active.items())[:5]:  # large files under way
            pct = 100 * done / size if size else 100
            table.add_row("", name[-40:], f"{_size(done)}/{_size(size)}", f"{pct:.0f}%",
                          ProgressBar(total=size or 1, completed=done, width=24))
        return table

    def __enter__(self) -> LiveDisplay:
        if self.enabled:
            self._live = Live(get_renderable=self._render, console=self.console,
                              refresh_per_second=REFRESH_PER_SECOND, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)
