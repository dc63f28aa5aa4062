"""Telling a scheduler's monitoring how a run went: `--healthcheck-url` and
`--metrics-file` (issue 15 §3).

    run begins ──► GET  URL/start
    run ends   ──► POST URL        exit 0                    body: the one-line summary
               └─► POST URL/log    exit 4 (another run holds the lock: it reports)
               └─► POST URL/fail   any other exit code
               └─► FILE            the run in Prometheus text format (temp + rename)

The healthchecks.io convention (Uptime Kuma, Cronitor and others accept it too). A
monitoring outage never fails a backup: each ping waits at most `PING_TIMEOUT` seconds
once, and a failure is a warning that names only the host (a ping URL is a secret:
whoever has it can report runs). HTTP(S)_PROXY apply (urllib reads them).

The metrics file is no more readable than the tree it describes (the group and other
read bits of the local tree's root, never more than 0644): it says how much a tree
holds and when it changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from baycat.errors import BaycatError, ExitCode
from baycat.ops.summary import OPERATIONS, SyncSummary
from baycat.private import open_private
from baycat.redact import redact
from baycat.store.endpoints import check_http_url

log = logging.getLogger(__name__)

# Seconds a ping may take: a cron job must not hang on its monitoring.
PING_TIMEOUT = 5.0
_USER_AGENT = "baycat"


class Healthcheck:
    """Pings of one run to a healthchecks.io-style URL; no-ops without one."""

    def __init__(self, url: str | None, timeout: float = PING_TIMEOUT) -> None:
        self._given = url
        self.url: str | None = None  # set by check(): nothing is sent before
        self._timeout = timeout

    def check(self) -> None:
        """UsageError for a URL that can't name a server."""
        if self._given:
            self.url = check_http_url(self._given, "healthcheck URL").rstrip("/")

    def start(self) -> None:
        self._ping("/start", None)

    def finish(self, code: int, line: str) -> None:
        """The run ended with exit `code`; `line` (the summary) is the body."""
        if code == ExitCode.OK:
            suffix = ""
        elif code == ExitCode.LOCKED:
            suffix = "/log"  # the run holding the lock reports success or failure
        else:
            suffix = "/fail"
        self._ping(suffix, redact(f"{line} (exit code {code})").encode())

    def _ping(self, suffix: str, body: bytes | None) -> None:
        if self.url is None:
            return
        # Imported with a URL only: urllib.request pulls in http.client and email (~10 ms
        # of every run's start-up otherwise, issue 18).
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url + suffix, data=body,
                                         method="GET" if body is None else "POST",
                                         headers={"User-Agent": _USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read(4096)
        except (OSError, ValueError, urllib.error.HTTPError) as exc:
            host = urlsplit(self.url).netloc
            reason = getattr(exc, "reason", None) or exc
            log.warning("healthcheck ping to %s failed (%s); the backup goes on", host, reason)


# ---- the metrics file -------------------------------------------------------------------


def metrics_text(summary: SyncSummary, code: int, started: float, ended: float,
                 last_success: float | None) -> str:
    """The run as Prometheus text exposition (node_exporter's textfile collector)."""
    out: list[str] = []

    def metric(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP baycat_{name} {help_text}")
        out.append(f"# TYPE baycat_{name} gauge")
        out.extend(f"baycat_{name}{labels} {value:g}" if isinstance(value, int)
                   else f"baycat_{name}{labels} {value!r}" for labels, value in samples)

    metric("last_run_start_timestamp_seconds", "When the last run started (Unix time).",
           [("", round(started, 3))])
    metric("last_run_end_timestamp_seconds", "When the last run ended (Unix time).",
           [("", round(ended, 3))])
    metric("last_run_seconds", "How long the last run took.", [("", round(ended - started, 3))])
    metric("last_run_success", "1 when the last run exited 0.", [("", int(code == 0))])
    metric("last_run_exit_code", "The exit code of the last run (README: exit codes).",
           [("", int(code))])
    if last_success is not None:
        metric("last_success_timestamp_seconds", "When a run last exited 0 (Unix time).",
               [("", round(last_success, 3))])
    metric("last_run_files", "Files of the last run, by operation.",
           [(f'{{operation="{name}"}}', getattr(summary, field).files)
            for name, field in OPERATIONS])
    metric("last_run_bytes", "Bytes of the last run, by operation.",
           [(f'{{operation="{name}"}}', getattr(summary, field).bytes)
            for name, field in OPERATIONS])
    metric("last_run_requests", "Store requests of the last run, by type.",
           [(f'{{type="{kind}"}}', int(n)) for kind, n in sorted(summary.requests.items())])
    metric("last_run_request_cost_usd", "Estimated cost of the last run's requests.",
           [("", float(summary.request_cost_usd))])
    metric("last_run_stage_seconds", "Seconds of the last run, by stage.",
           [(f'{{stage="{stage}"}}', float(round(s, 3)))
            for stage, s in sorted(summary.seconds.items())])
    return "\n".join(out) + "\n"


def _previous_success(path: Path) -> float | None:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "baycat_last_success_timestamp_seconds":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def metrics_mode(tree: Path) -> int:
    """0600 plus the group and other read bits of `tree` (0600 when it can't be read)."""
    try:
        bits = stat.S_IMODE(os.stat(tree).st_mode)
    except OSError:
        bits = 0
    return 0o600 | (bits & 0o044)


class MetricsFile:
    """Writes one run's metrics to `path` atomically: a temp file in the same directory,
    then rename, so the collector never reads half a file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.started = time.time()

    def write(self, summary: SyncSummary, code: int, tree: Path | None) -> None:
        if self.path is None:
            return
        ended = time.time()
        last_success = ended if code == 0 else _previous_success(self.path)
        text = metrics_text(summary, code, self.started, ended, last_success)
        mode = metrics_mode(tree) if tree is not None else 0o600
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC, mode)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write the metrics file %s: %s", self.path, exc.strerror or exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)


class RunMonitor:
    """A run's healthcheck and metrics together: `start()` when the run begins (after
    the arguments were checked), `finish()` once with how it ended."""

    def __init__(self, healthcheck_url: str | None, metrics_file: Path | None) -> None:
        self.healthcheck = Healthcheck(healthcheck_url)
        self.metrics = MetricsFile(metrics_file)
        self._done = False

    def check(self) -> None:
        """Check the options (inside `fatal_errors`: a bad URL is a usage error)."""
        self.healthcheck.check()

    def start(self) -> None:
        self.metrics.started = time.time()
        self.healthcheck.start()

    def finish(self, summary: SyncSummary, code: int, line: str, tree: Path | None) -> None:
        if self._done:
            return
        self._done = True
        self.metrics.write(summary, code, tree)
        self.healthcheck.finish(code, line)

    def on_fatal(self, empty: SyncSummary, tree: Path | None,
                 then: Callable[[BaycatError], None] | None) -> Callable[[BaycatError], None]:
        """An on_fatal for `fatal_errors`: report the error, then `then` (--json)."""

        def report(exc: BaycatError) -> None:
            self.finish(empty, int(exc.exit_code), f"baycat: error: {exc}", tree)
            if then is not None:
                then(exc)

        return report
