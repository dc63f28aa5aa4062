"""Bytes read from local files, from an `strace -f -y` log (see `procs.strace_argv`).

Why strace: `/proc/PID/io` `rchar` also counts socket reads (a tool that downloads
counts its network traffic), and `read_bytes` counts only page-cache misses, including
the tool's own libraries, so neither says "bytes of file content read". With `-y`,
strace prints the path behind every fd, so we sum the return values of read, pread64,
readv, preadv(2), sendfile and copy_file_range whose fd is a file under the tree being
measured, except the tool's own state below `TREE/.baycat/` (baycat's manifest and
lock), which is summed separately as `state_bytes`. `mmap` of such a file is summed
separately as "mapped" (an upper bound: pages are read only when touched). Exact for
syscall reads; strace slows the tool, so these runs are never the timed ones.

When the log also traces open/openat (`procs.strace_argv(..., opens=True)`), the regular
files opened under the tree (read or not; `O_PATH` opens excepted, they can't read) are
counted too: "files opened" of the snapshot scenario. Which paths are regular files is
decided when the log is parsed, so the tree must still be there.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".baycat"
_READS = ("read", "pread64", "readv", "preadv", "preadv2")
_OPENS = ("open", "openat", "openat2")
_LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<call>\w+)\((?P<args>.*)$")
_RESUMED = re.compile(r"^(?P<pid>\d+)\s+<\.\.\. (?P<call>\w+) resumed>(?P<rest>.*)$")
_RESULT = re.compile(r"\)\s+=\s+(?P<ret>-?\d+|0x[0-9a-f]+)")
_FD = re.compile(r"(\d+)<([^>]*)>")
_OPENED = re.compile(r"\)\s+=\s+\d+<(?P<path>[^>]*)>")


@dataclass(frozen=True, slots=True)
class FileReads:
    bytes_read: int  # file content (outside TREE/.baycat/)
    files_read: int
    bytes_mapped: int
    state_bytes: int  # read from TREE/.baycat/
    files_opened: int = 0  # regular files opened (only if the log traces opens)


def parse_strace(log: Path, root: Path) -> FileReads:
    """Bytes read from regular files at or below `root` by the traced process tree."""
    prefix = str(root.resolve()).rstrip("/") + "/"
    state_prefix = prefix + STATE_DIR + "/"
    total = mapped = state = 0
    files: set[str] = set()
    opened: set[str] = set()
    # pid -> (call, path, arguments) of an unfinished call
    pending: dict[str, tuple[str, str | None, str]] = {}
    with log.open(errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = _LINE.match(line)
            if m:
                call, args = m["call"], m["args"]
                path = _path_arg(call, args)
                if line.endswith("<unfinished ...>"):
                    pending[m["pid"]] = (call, path, args)
                    continue
                rest = args
            else:
                r = _RESUMED.match(line)
                if not r or r["pid"] not in pending:
                    continue
                call, path, args = pending.pop(r["pid"])
                rest = r["rest"]
            if call in _OPENS:
                o = _OPENED.search(rest)
                if o and o["path"].startswith(prefix) and "O_PATH" not in args:
                    opened.add(o["path"])
                continue
            ret = _RESULT.search(rest)
            if path is None or not path.startswith(prefix) or ret is None:
                continue
            if call == "mmap":
                if not ret["ret"].startswith("-"):
                    mapped += _mmap_length(line)
                continue
            n = int(ret["ret"], 0)
            if n <= 0:
                continue
            if path.startswith(state_prefix):
                state += n
            else:
                total += n
                files.add(path)
    state_opened = {p for p in opened if p.startswith(state_prefix)}
    regular = sum(1 for p in opened - state_opened if _is_regular(p))
    return FileReads(total, len(files), mapped, state, regular)


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _path_arg(call: str, args: str) -> str | None:
    """The path of the fd a call reads from (-y prints `fd<path>`)."""
    fds = _FD.findall(args)
    if call in _READS or call == "copy_file_range":
        return fds[0][1] if fds else None
    if call == "sendfile":  # sendfile(out_fd, in_fd, ...)
        return fds[1][1] if len(fds) > 1 else None
    if call == "mmap":
        return fds[-1][1] if fds else None
    return None


def _mmap_length(line: str) -> int:
    # mmap(addr, length, prot, flags, fd<path>, offset)
    try:
        return int(line.split("(", 1)[1].split(",")[1].strip(), 0)
    except (IndexError, ValueError):
        return 0
