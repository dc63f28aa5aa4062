"""docs/benchmarks.md (tables) and docs/benchmarks.json (everything) from one run.

`python -m benchmarks.report docs/benchmarks.json` re-renders the Markdown from the JSON
(after a change to this module), without running anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .results import Measurement
from .scenarios import ALL_SCENARIOS
from .snapshot import SCENARIOS as SNAPSHOT_SCENARIOS

BASELINE = "baycat"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    measured: str
    goal: str
    met: bool | None  # None: could not be measured


@dataclass(slots=True)
class RunReport:
    """Everything one run produced; `run.py` fills it, `write` renders it."""

    meta: dict[str, Any]
    table: dict[tuple[str, str], Measurement]
    tools: list[str]
    configs: dict[str, str]
    hashbench: dict[str, Any] | None = None
    update_vs_find: dict[str, Any] | None = None
    million: dict[str, Any] | None = None
    encryption: dict[str, Any] | None = None
    startup: dict[str, Any] | None = None  # benchmarks/startup.py
    notes: list[str] | None = None
    snapshot: dict[str, Any] | None = None  # benchmarks/snapshot.py: nights, or "skipped"


# -- figures ----------------------------------------------------------------------------


def best_peer(report: RunReport, scenario: str, attr: str = "wall_s") -> tuple[str, float] | None:
    """(tool, value) of the peer with the lowest `attr` among correct, finished runs."""
    best: tuple[str, float] | None = None
    for tool in report.tools:
        if tool == BASELINE:
            continue
        m = report.table.get((tool, scenario))
        value = getattr(m, attr) if m is not None and m.ok else None
        if value is not None and (best is None or value < best[1]):
            best = (tool, float(value))
    return best


def ratio(report: RunReport, tool: str, scenario: str, attr: str = "wall_s") -> float | None:
    m = report.table.get((tool, scenario))
    best = best_peer(report, scenario, attr)
    value = getattr(m, attr) if m is not None and m.ok else None
    if value is None or best is None or best[1] <= 0:
        return None
    return float(value) / best[1]


def targets(report: RunReport) -> list[Target]:
    out: list[Target] = []
    tab = report.table

    def wall_target(scenario: str, limit: float, label: str) -> None:
        r = ratio(report, BASELINE, scenario)
        bp = best_peer(report, scenario)
        m = tab.get((BASELINE, scenario))
        if m is None:
            return
        if not m.ok:
            measured = f"baycat failed/incorrect: {m.failure or m.correct_detail}"
            out.append(Target(label, measured, f"≤ {limit}× best peer", False))
            return
        measured = (f"{_r(r)} ({_s(m.wall_s)} vs {bp[0]} {_s(bp[1])})" if bp and r is not None
                    else f"{_s(m.wall_s)}, no peer finished correctly")
        out.append(Target(label, measured, f"≤ {limit}× best peer",
                          None if r is None else r <= limit))

    m = tab.get((BASELINE, "no-change"))
    if m is not None:
        wall_target("no-change", 0.3, "no-change re-sync: wall time")
        total = m.total_requests
        out.append(Target("no-change re-sync: requests",
                          "not counted" if total is None else f"{total} ({_reqs(m.requests)})",
                          "≤ 2", None if total is None else total <= 2))
        read = m.file_bytes_read
        out.append(Target("no-change re-sync: file content read",
                          "not measured" if read is None else f"{read:,} B",
                          "0 B", None if read is None else read == 0))
    for sc in ("modify", "touch", "rename"):
        wall_target(sc, 0.5, f"1 % {sc}: wall time")
    m = tab.get((BASELINE, "touch"))
    if m is not None:
        up = _summary_files(m, "uploaded")
        puts = (m.requests or {}).get("PUT") if m.requests is not None else None
        measured = f"{up} files uploaded" + ("" if puts is None else f", {puts} PUT (manifest)")
        out.append(Target("1 % touch: no upload", measured, "0 files uploaded",
                          None if up is None else up == 0))
    m = tab.get((BASELINE, "rename"))
    if m is not None:
        up, cp = _summary_files(m, "uploaded"), _summary_files(m, "copied")
        copies = (m.requests or {}).get("COPY") if m.requests is not None else None
        measured = f"{cp} copied, {up} uploaded" + ("" if copies is None
                                                    else f"; {copies} CopyObject on the wire")
        out.append(Target("1 % rename: CopyObject, not upload", measured,
                          "all copied, 0 uploaded",
                          None if up is None or cp is None else (up == 0 and cp > 0)))
    wall_target("initial", 1.0, "initial sync (small-file mix + large): wall time")
    wall_target("initial-large", 1.0, "initial sync (large files only): wall time")
    wall_target("restore", 1.0, "restore: wall time")
    # Real data (the standard library): goals as for the synthetic scenarios they mirror;
    # restore has issue 18's goal.
    wall_target("stdlib-initial", 1.0, "real data (stdlib): initial sync: wall time")
    wall_target("stdlib-change", 0.5, "real data (stdlib): re-sync after a realistic change: "
                "wall time")
    wall_target("stdlib-restore", 0.8, "real data (stdlib): restore: wall time")
    if report.hashbench and "pool" in report.hashbench:
        hb = report.hashbench
        for p, v in hb["pool"].items():
            if int(p) > hb["cores"]:
                continue
            out.append(Target(f"hashing, --pool-size {p}",
                              f"{v['vs_xxh3_1t']:.2f}× single-thread xxh3 "
                              f"({v['bytes_per_s'] / 1e9:.2f} GB/s)",
                              f"≥ {v['target']:.1f}×", bool(v["met"])))
    st = report.startup
    if st is not None:
        out.append(Target("start-up: baycat --version vs python -c pass",
                          f"{st['version_ratio']:.2f}× ({_s3(st['version_s'])} vs "
                          f"{_s3(st['python_pass_s'])})", f"≤ {st['version_goal']:.0f}×",
                          st["version_ratio"] <= st["version_goal"]))
        for where in ("local", "s3"):
            wall = st[f"no_change_{where}_s"]
            out.append(Target(f"start-up: no-change sync of a 1-file tree ({where})",
                              _s3(wall), f"≤ {st['one_file_goal_s']} s",
                              wall <= st["one_file_goal_s"]))
    u = report.update_vs_find
    if u is not None:
        out.append(Target(f"manifest update, unchanged {u['entries']:,}-entry tree, vs find",
                          "failed" if u["ratio"] is None else
                          f"{u['ratio']:.2f}× ({_s(u['update_s'])} vs {_s(u['find_s'])})",
                          "≤ 2×", None if u["ratio"] is None else u["ratio"] <= 2.0))
    return out


def snapshot_targets(report: RunReport) -> list[Target]:
    """Issue 14's figures for baycat on the nights after the first: files opened =
    changed files, bytes uploaded ≈ changed bytes, wall time beside the peers."""
    snap = report.snapshot
    if not snap or "skipped" in snap:
        return []
    out: list[Target] = []
    for scenario, label in (("snapshot", "snapshot, state kept"),
                            ("snapshot-nostate", "snapshot, no local state")):
        night = snap["nights"].get(scenario)
        m = report.table.get((BASELINE, scenario))
        if night is None or m is None:
            continue
        files, size = night["changed_files"], night["changed_bytes"]
        opened = m.files_opened
        out.append(Target(f"{label}: files opened", "not measured" if opened is None else
                          f"{opened:,} ({files:,} changed)", "= changed files",
                          None if opened is None else opened == files))
        summary = m.counted_summary or {}
        content = summary.get("uploaded", {}).get("bytes")
        out.append(Target(f"{label}: file content uploaded",
                          "not counted" if content is None else
                          f"{content:,} B ({size:,} B changed)", "= changed bytes",
                          None if content is None else content == size))
        wire, manifest = m.bytes_up, summary.get("manifest_bytes_uploaded")
        peers = ", ".join(f"{t} {p.bytes_up / size:.2f}×" for t in report.tools
                          if t != BASELINE and (p := report.table.get((t, scenario)))
                          and p.bytes_up is not None and size)
        out.append(Target(f"{label}: bytes uploaded", "not counted" if wire is None else
                          f"{wire / size:.2f}× changed bytes: {_bytes(wire)} on the wire, "
                          f"manifest {_bytes(manifest)} of it" + (f" (peers: {peers})"
                                                                   if peers else ""),
                          "≈ changed bytes (reported)", None))
        r, bp = ratio(report, BASELINE, scenario), best_peer(report, scenario)
        own = (m.tool_summary or {}).get("seconds", {}).get("total")
        out.append(Target(f"{label}: wall time", "baycat failed/incorrect" if not m.ok else
                          (f"{_r(r)} ({_s(m.wall_s)} vs {bp[0]} {_s(bp[1])})" if bp else
                           f"{_s(m.wall_s)}, no peer finished correctly") +
                          ("" if own is None else f"; baycat's own `seconds.total` {_s(own)}"),
                          "(reported, beside the peers)", None))
    return out


def million_targets(mil: dict[str, Any]) -> list[Target]:
    steps = mil["steps"]
    out: list[Target] = []
    for step, label in (("initial", "initial sync"), ("no-change", "no change"),
                        ("one-percent-changed", "1 % changed")):
        s = steps.get(step, {})
        rss = s.get("peak_rss_kib")
        out.append(Target(f"peak RSS, {label}", "n/a" if rss is None else f"{rss / 1024:.0f} MiB",
                          "≤ 200 MB (issue 18; issue 8 asked 250)",
                          None if rss is None else rss * 1024 <= 200e6))
    nc = steps.get("no-change-counted", {})
    if nc:
        total = sum(nc.get("requests", {}).values())
        mb = (nc.get("manifest_bytes_uploaded") or 0) + (nc.get("manifest_bytes_downloaded") or 0)
        out.append(Target("no change: requests", f"{total} ({_reqs(nc.get('requests'))})",
                          "≤ 2", total <= 2))
        out.append(Target("no change: manifest bytes up+down", f"{mb:,} B", "0", mb == 0))
        if "file_bytes_read" in nc:
            out.append(Target("no change: file content read", f"{nc['file_bytes_read']:,} B",
                              "0 B", nc["file_bytes_read"] == 0))
    one = steps.get("one-file-changed", {})
    if one:
        total = sum(one.get("requests", {}).values())
        up = one.get("manifest_bytes_uploaded")
        out.append(Target("one file changed: requests", f"{total} ({_reqs(one.get('requests'))})",
                          "≤ 5", total <= 5))
        out.append(Target("one file changed: manifest uploaded",
                          "n/a" if up is None else f"{up:,} B", "< 1 MB",
                          None if up is None else up < 1_000_000))
    if mil.get("manifest_bytes") and mil.get("entries"):
        per = mil["manifest_bytes"] / mil["entries"]
        out.append(Target("local manifest bytes per entry",
                          f"{per:.1f} ({mil['manifest_bytes']:,} B / {mil['entries']:,})",
                          "≤ 64", per <= 64))
    initial = steps.get("initial", {})
    for peer in initial.get("peers", []):
        p = steps.get(f"initial ({peer})", {})
        ok = initial.get("wall_s") and not initial.get("failure") and p.get("wall_s") \
            and not p.get("failure")
        out.append(Target(f"initial sync vs {peer}",
                          f"{initial['wall_s'] / p['wall_s']:.2f}× ({_s(initial['wall_s'])} "
                          f"vs {_s(p['wall_s'])})" if ok else
                          f"not compared ({initial.get('failure') or p.get('failure')})",
                          "(reported, issue 18)", None))
    nc_t, find = steps.get("no-change", {}), steps.get("find", {})
    if nc_t.get("wall_s") and find.get("wall_s"):
        out.append(Target("no-change sync vs find", f"{nc_t['wall_s'] / find['wall_s']:.2f}× "
                          f"({_s(nc_t['wall_s'])} vs {_s(find['wall_s'])})", "(reported)", None))
    return out


# -- rendering --------------------------------------------------------------------------


def _encryption_table(enc: dict[str, Any]) -> list[str]:
    lines = [f"baycat with `sync --encrypt --password-file` against plain baycat, same "
             f"run and server, twin trees ({enc['spec']}); goal: encrypted ≤ "
             f"{enc['goal']:.1f}× plain.", "",
             "| step | plain | encrypted | ratio | median ratio "
             "| CPU plain / encrypted (ratio) | requests plain / encrypted | goal |",
             "|---|---|---|---|---|---|---|---|"]
    for name, got in enc["steps"].items():
        p, e, ratio = got["plain"], got["encrypted"], got.get("ratio")
        met = "–" if ratio is None else "**met**" if ratio <= enc["goal"] else "**missed**"
        reqs = " / ".join(", ".join(f"{k} {v}" for k, v in sorted((g["requests"] or {}).items()))
                          or "–" for g in (p, e))
        cpu = (f"{_s(p.get('cpu_s'))} / {_s(e.get('cpu_s'))} "
               f"({_r(got.get('cpu_ratio'))})")
        lines.append(f"| {name} | {_s(p['wall_s'])} | {_s(e['wall_s'])} | {_r(ratio)} | "
                     f"{_r(got.get('median_ratio'))} | {cpu} | {reqs} | {met} |")
    runs = ", ".join(f"{name} {got['plain'].get('runs', '?')}"
                     for name, got in enc["steps"].items())
    lines += ["", f"Wall: best of the runs per mode ({runs}), on which the goal is "
              "judged; median ratio: of the two medians; CPU: user + system of the best "
              "run, the tool and its children (less sensitive to a busy machine).", "",
              "Restored trees identical to the source: plain "
              f"{enc.get('plain_restore_identical')}, encrypted "
              f"{enc.get('encrypted_restore_identical')}."]
    return lines


def _s(v: float | None) -> str:
    return "–" if v is None else (f"{v:.2f} s" if v < 100 else f"{v:.0f} s")


def _s3(v: float) -> str:
    return f"{v:.3f} s"


def _r(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}×"


def _bytes(v: int | None) -> str:
    if v is None:
        return "–"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if v >= size:
            return f"{v / size:.1f} {unit}"
    return f"{v} B"


def _reqs(reqs: dict[str, int] | None) -> str:
    if reqs is None:
        return "–"
    return ", ".join(f"{k} {v:,}" for k, v in sorted(reqs.items())) or "none"


def _met(v: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "n/a"}[v]


def _summary_files(m: Measurement, key: str) -> int | None:
    s = m.tool_summary or {}
    v = s.get(key)
    return int(v["files"]) if isinstance(v, dict) and "files" in v else None


def render(report: RunReport) -> str:
    meta = report.meta
    lines = [
        "# baycat benchmarks", "",
        f"Generated by `{meta['command']}` on {meta['date']}. Every figure below comes from "
        f"that one run; the raw figures are in [{meta['json_name']}]({meta['json_name']}).", "",
        "## Machine and versions", "",
        "| | |", "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in _ordered(meta["machine"], _MACHINE_ORDER)]
    lines += [f"| {k} | {v} |" for k, v in _ordered(meta["versions"], report.tools)]
    lines += ["", "## How to run", "",
              "`nox -s bench` (this default size, about 10 minutes on 2 cores); "
              "`nox -s bench -- --scale 100k` (writes docs/benchmarks-100k.md) and "
              "`nox -s bench -- --scale 1m` (baycat, and rclone beside its initial sync; "
              "issues 8 and 18; docs/benchmarks-1m.md) and "
              "`nox -s bench -- --scenarios snapshot` (nightly snapshots at a new path, "
              "issue 14: loop mounts, needs root; `--snapshot-files N`, default 100k; "
              "docs/benchmarks-snapshot.md) are opt-in; `nox -s bench -- --help` lists the "
              "options (`--tools`, sizes, `--scenarios synthetic|realdata` for one set of "
              "scenarios only, `--count resync|none` to shorten the counted pass, ...).", ""]
    lines += ["## Dataset", "", meta["dataset"], ""]
    lines += ["## Method", ""] + [f"- {x}" for x in meta["method"]] + [""]
    lines += ["## Tool configuration", "", "| tool | invocation |", "|---|---|"]
    lines += [f"| {t} | `{c}` |" for t, c in _ordered(report.configs, report.tools)]
    lines += ["", "## Targets (baycat, ratios to the best peer in this run)", "",
              "| target | measured | goal | result |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.measured} | {t.goal} | {_met(t.met)} |"
              for t in targets(report) + snapshot_targets(report)]
    if report.million:
        lines += ["", f"### Millions of files (issue 8): {report.million['spec']}", "",
                  "| target | measured | goal | result |", "|---|---|---|---|"]
        lines += [f"| {t.name} | {t.measured} | {t.goal} | {_met(t.met)} |"
                  for t in million_targets(report.million)]
        lines += ["", *_million_steps(report.million)]
    if any(sc.name == s for sc in ALL_SCENARIOS for (_, s) in report.table):
        lines += ["", "## Scenarios", "",
                  "Wall time and peak RSS from the timed pass; requests (by type, from the "
                  "counting proxy) and bytes read from local files (strace) from the counted "
                  "pass. `×best` is the tool's wall time over the best peer's (correct runs "
                  "only). A run that failed or gave a wrong result is never the best. "
                  "Scenarios timed more than once per tool keep the fastest run ("
                  + ", ".join(f"{sc.name}: {sc.runs}" for sc in ALL_SCENARIOS if sc.runs > 1)
                  + "; the large tree's runs are each a first sync into a prefix of its "
                  "own).", ""]
        for sc in ALL_SCENARIOS:
            if not any((t, sc.name) in report.table for t in report.tools):
                continue
            lines += [f"### {sc.name}: {sc.title}", "", *_scenario_table(report, sc.name), ""]
    if report.snapshot:
        lines += _snapshot_section(report)
    if report.hashbench:
        lines += ["## Hashing with --pool-size (micro-benchmark)", "",
                  *_hash_table(report.hashbench), ""]
    if report.update_vs_find:
        u = report.update_vs_find
        lines += ["## manifest update vs find (issue 2)", "",
                  f"`baycat manifest update` on an unchanged tree of {u['entries']:,} entries "
                  f"(its manifest present) against `find DIR -printf '%s %T@\\n' >/dev/null`, "
                  f"best of two each: update {_s(u['update_s'])}, find {_s(u['find_s'])}, "
                  f"ratio {_r(u['ratio'])} (goal ≤ 2×); update peak RSS "
                  f"{_bytes(u['update_peak_rss_kib'] * 1024)}.", ""]
    if report.startup:
        st = report.startup
        lines += ["## Start-up (issue 18)", "",
                  f"Best of {st['repeats']} wall times each, same run: `python -c pass` "
                  f"{_s3(st['python_pass_s'])}; `baycat --version` {_s3(st['version_s'])}; "
                  f"no-change sync of a 1-file tree: to a local directory "
                  f"{_s3(st['no_change_local_s'])}, to the S3 server "
                  f"{_s3(st['no_change_s3_s'])}.", ""]
    if report.encryption:
        lines += ["## Encrypted beside plain (issue 17)", "", *_encryption_table(
            report.encryption), ""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(lines).rstrip() + "\n"


_MACHINE_ORDER = ["machine", "CPU", "memory", "disk (work dir)", "Python",
                  "load average at start"]


def _ordered(d: dict[str, Any], first: list[str]) -> list[tuple[str, Any]]:
    """`d`'s items, keys in `first` first (in that order), then the rest as they come."""
    head = [(k, d[k]) for k in first if k in d]
    return head + [(k, v) for k, v in d.items() if k not in first]


def _scenario_table(report: RunReport, scenario: str) -> list[str]:
    rows = ["| tool | wall | ×best | requests | total | file bytes read | peak RSS | correct |",
            "|---|---:|---:|---|---:|---:|---:|---|"]
    bp = best_peer(report, scenario)
    for tool in report.tools:
        m = report.table.get((tool, scenario))
        if m is None:
            continue
        if m.failure:
            wall = f"failed: {m.failure[:80]}"
        else:
            wall = _s(m.wall_s) + (" (best peer)" if bp and bp[0] == tool else "")
        r = ratio(report, tool, scenario)
        rss = None if m.peak_rss_kib is None else m.peak_rss_kib * 1024
        correct = "yes" if m.correct else ("no: " + m.correct_detail if m.correct is False
                                            else "–")
        if m.correct and m.correct_detail not in ("", "matches"):
            correct += f" ({m.correct_detail})"
        reqs = _reqs(m.requests) if m.requests is not None else (
            f"counting failed: {m.counted_failure[:60]}" if m.counted_failure else "–")
        total = "–" if m.total_requests is None else f"{m.total_requests:,}"
        read = _bytes(m.file_bytes_read)
        if m.files_read:
            read += f" ({m.files_read:,} files)"
        if m.state_bytes_read:
            read += f" + {_bytes(m.state_bytes_read)} own state"
        rows.append(f"| {tool} | {wall} | {_r(r)} | {reqs} | {total} | {read} | "
                    f"{_bytes(rss)} | {correct} |")
    return rows


def _snapshot_section(report: RunReport) -> list[str]:
    snap = report.snapshot or {}
    lines = ["", "## Nightly snapshots at a new path (issue 14)", ""]
    if "skipped" in snap:
        return [*lines, f"Skipped: {snap['skipped'].rstrip('.')}.", ""]
    lines += [
        f"{snap['spec']}, in a loop-mounted ext4 image; each night after the first "
        f"modifies {snap['fraction']:.0%} of the small files (same size, new bytes, mtime "
        "now) and is mounted read-only at a new path. Files opened and bytes read "
        "(strace), requests and bytes up (the counting proxy: wire bytes, request heads "
        "included) from the counted run; wall time and peak RSS from the timed run. "
        "`×best` is the tool's wall time over the best peer's; `(n×)` after the bytes "
        "read and `× changed` after the bytes up are over the night's changed bytes. "
        "Reading a changed file about twice is the norm: once to hash it (baycat xxh3-128, "
        "the peers MD5), once to send it; s5cmd also reads 512 B of each to guess its "
        "content type. baycat's bytes up include its manifest: a random 1 % change "
        "touches every segment of ~2,000 entries, so each night re-uploads all of them "
        "(docs/design.md, \"Segments and roots\").", "",
        "What the peers do on a snapshot: rclone (`--update --use-server-modtime`) and "
        "s5cmd `sync` compare each file's size and mtime with the object's size and "
        "upload time from one listing of the prefix, so they open and upload only the "
        "files whose mtime is newer than the last upload; neither keeps local state, so "
        "the new path and device number cost them nothing either. They would miss a "
        "change that keeps the size and leaves an older mtime (`cp -p`, `touch -r`, a "
        "restored file); baycat's stat rule also compares ctime and inode (docs/design.md: "
        "why a false \"unchanged\" can't happen).", ""]
    for scenario, title in SNAPSHOT_SCENARIOS:
        night = snap["nights"].get(scenario)
        if night is None:
            continue
        lines += [f"### {scenario}: {title}", ""]
        if "changed_files" in night:
            lines += [f"`{night['path']}` (device {night['st_dev']:#x}; the previous night "
                      f"{night['previous_st_dev']:#x}): {night['changed_files']:,} files "
                      f"changed, {_bytes(night['changed_bytes'])} "
                      f"({night['changed_bytes']:,} B).", ""]
        else:
            lines += [f"`{night['path']}` (device {night['st_dev']:#x}).", ""]
        lines += [*_snapshot_table(report, scenario, night.get("changed_bytes")), ""]
    return lines


def _snapshot_table(report: RunReport, scenario: str, changed: int | None) -> list[str]:
    rows = ["| tool | wall | ×best | files opened | file bytes read | bytes up | × changed "
            "| requests | total | peak RSS | correct |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    bp = best_peer(report, scenario)
    for tool in report.tools:
        m = report.table.get((tool, scenario))
        if m is None:
            continue
        wall = (f"failed: {m.failure[:80]}" if m.failure else
                _s(m.wall_s) + (" (best peer)" if bp and bp[0] == tool else ""))
        correct = "yes" if m.correct else ("no: " + m.correct_detail if m.correct is False
                                            else "–")
        opened = "–" if m.files_opened is None else f"{m.files_opened:,}"
        up = "–" if m.bytes_up is None else _bytes(m.bytes_up)
        times = ("–" if m.bytes_up is None or not changed else f"{m.bytes_up / changed:.2f}×")
        read = _bytes(m.file_bytes_read) + ("" if m.file_bytes_read is None or not changed
                                            else f" ({m.file_bytes_read / changed:.2f}×)")
        reqs = _reqs(m.requests) if m.requests is not None else (
            f"counting failed: {m.counted_failure[:60]}" if m.counted_failure else "–")
        total = "–" if m.total_requests is None else f"{m.total_requests:,}"
        rss = None if m.peak_rss_kib is None else m.peak_rss_kib * 1024
        rows.append(f"| {tool} | {wall} | {_r(ratio(report, tool, scenario))} | {opened} | "
                    f"{read} | {up} | {times} | {reqs} | {total} | "
                    f"{_bytes(rss)} | {correct} |")
    return rows


def _hash_table(hb: dict[str, Any]) -> list[str]:
    rows = ["The goal compares baycat's read + hash throughput with the *pure* in-memory "
            "hash rate, so even P = 1 pays for copying from the page cache; `× hash_file "
            "P=1` is the scaling alone, and the pure xxh3 column is what P threads of the "
            "bare hash reach on this machine at the same moment.", "",
            f"Single-thread xxh3-128 over memory (1 MiB blocks): "
            f"{hb['xxh3_1t_bytes_per_s'] / 1e9:.2f} GB/s. baycat's `hasher.hash_file` on P "
            f"threads over {hb['files']} files of {hb['file_mib']} MiB in the page cache "
            f"(read + hash), best of repeats; {hb['cores']} cores.", "",
            "| P | hash_file GB/s | × 1-thread xxh3 | goal | × hash_file P=1 | "
            "pure xxh3 on P threads, GB/s | result |",
            "|---:|---:|---:|---:|---:|---:|---|"]
    base = hb["pool"].get("1", {}).get("bytes_per_s")
    for p, v in hb["pool"].items():
        scale = f"{v['bytes_per_s'] / base:.2f}×" if base else "–"
        rows.append(f"| {p} | {v['bytes_per_s'] / 1e9:.2f} | {v['vs_xxh3_1t']:.2f} | "
                    f"≥ {v['target']:.1f} | {scale} | "
                    f"{v['xxh3_threads_bytes_per_s'] / 1e9:.2f} | {_met(bool(v['met']))} |")
    load = hb.get("loadavg_before")
    if load:
        rows += ["", f"Load average when it started: {', '.join(f'{x:.2f}' for x in load)} "
                 "(other work on the machine lowers every multi-thread figure)."]
    return rows


def _million_steps(mil: dict[str, Any]) -> list[str]:
    rows = ["| step | wall | peak RSS | requests | manifest up / down | file bytes read |",
            "|---|---:|---:|---|---:|---:|"]
    for name, s in mil["steps"].items():
        wall = s.get("wall_s", s.get("counted_wall_s"))
        note = " (counted: proxy + strace)" if "counted_wall_s" in s else ""
        rss = s.get("peak_rss_kib")
        summ = s.get("summary") or {}
        up = s.get("manifest_bytes_uploaded", summ.get("manifest_bytes_uploaded"))
        down = s.get("manifest_bytes_downloaded", summ.get("manifest_bytes_downloaded"))
        reqs = s.get("requests") or summ.get("requests")
        fail = f" failed: {s['failure']}" if s.get("failure") else ""
        rows.append(f"| {name}{fail} | {_s(wall)}{note} | "
                    f"{_bytes(None if rss is None else rss * 1024)} | {_reqs(reqs)} | "
                    f"{_bytes(up)} / {_bytes(down)} | {_bytes(s.get('file_bytes_read'))} |")
    return rows


def write(report: RunReport, md_path: Path, json_path: Path) -> None:
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(render(report))
    data = {
        "meta": report.meta,
        "tools": report.tools,
        "configs": report.configs,
        "targets": [_target_json(t) for t in targets(report) + snapshot_targets(report)],
        "measurements": [m.to_json() for m in report.table.values()],
        "hashbench": report.hashbench,
        "update_vs_find": report.update_vs_find,
        "million": report.million,
        "encryption": report.encryption,
        "startup": report.startup,
        "million_targets": [_target_json(t) for t in million_targets(report.million)]
        if report.million else None,
        "notes": report.notes,
        "snapshot": report.snapshot,
    }
    json_path.write_text(json.dumps(data, indent=1, default=str) + "\n")


def _target_json(t: Target) -> dict[str, Any]:
    return {"name": t.name, "measured": t.measured, "goal": t.goal, "met": t.met}


def from_json(data: dict[str, Any]) -> RunReport:
    """The RunReport a benchmarks.json was written from."""
    names = {f.name for f in dataclasses.fields(Measurement)}
    table: dict[tuple[str, str], Measurement] = {}
    for raw in data["measurements"]:
        m = Measurement(**{k: v for k, v in raw.items() if k in names})
        table[(m.tool, m.scenario)] = m
    return RunReport(data["meta"], table, data["tools"], data["configs"],
                     hashbench=data.get("hashbench"), update_vs_find=data.get("update_vs_find"),
                     million=data.get("million"), encryption=data.get("encryption"),
                     startup=data.get("startup"), notes=data.get("notes"),
                     snapshot=data.get("snapshot"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                     description="Re-render the Markdown of a run.")
    parser.add_argument("json", type=Path)
    parser.add_argument("--md", type=Path, help="default: the JSON's name with .md")
    args = parser.parse_args(argv)
    rep = from_json(json.loads(args.json.read_text()))
    (args.md or args.json.with_suffix(".md")).write_text(render(rep))


if __name__ == "__main__":
    main()
