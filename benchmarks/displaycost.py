"""What the live display costs the engine: `manifest create` of a 20,000-file tree with
the display redrawing to a (forced) terminal, and without it, alternated, best of 3.

Run by `nox -s bench`; prints one line and writes docs/benchmarks-display.md.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console

from baycat.cli.display import LiveDisplay
from baycat.ops.manifest import build_manifest
from baycat.progress import Progress

FILES = 20_000


def measure() -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "data"
        for d in range(FILES // 1000):
            (src / f"d{d}").mkdir(parents=True)
            for f in range(1000):
                (src / f"d{d}" / f"f{f}").write_bytes(b"x" * 100)
        times: dict[bool, list[float]] = {False: [], True: []}
        with open(os.devnull, "w") as sink:
            console = Console(file=sink, force_terminal=True, width=120)
            for enabled in (False, True) * 3:
                progress = Progress()
                with LiveDisplay(progress, console, enabled):
                    started = time.perf_counter()
                    asyncio.run(build_manifest(src, create=True, progress=progress))
                    times[enabled].append(time.perf_counter() - started)
    return min(times[False]), min(times[True])


def main() -> None:
    off, on = measure()
    line = (f"manifest create, {FILES:,} files, best of 3: {off:.3f} s without the live "
            f"display, {on:.3f} s with it (ratio {on / off:.2f})")
    print(line)
    out = Path(__file__).parent.parent / "docs" / "benchmarks-display.md"
    out.write_text(f"# Cost of the live display\n\n{line}.\n\nLoad average: "
                   f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}.\n")


if __name__ == "__main__":
    main()
