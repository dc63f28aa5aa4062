"""Which mounted filesystem a directory is on, and which filesystems are never backed up.

The walk notices a mount point for free: a directory whose `st_dev` differs from its
parent's is the root of another filesystem. Only then is the mount table consulted,
by device number: /proc/self/mountinfo's third field is the `major:minor` every inode of
that mount reports as `st_dev`, so no path has to be matched (paths there are escaped,
relative to the process's root, and name a symlinked source differently).

Pseudo filesystems (`PSEUDO_FS`) hold no data of the machine, only views of the kernel:
`/proc/kcore` alone reads as the size of the address space. They are never entered,
with or without `--one-file-system`; their mount point is recorded as an empty directory.
"""

from __future__ import annotations

import os

# Kernel views and virtual trees: nothing in them is data to back up (and some of it,
# /proc/kcore, /sys/kernel/debug, would read forever or block).
PSEUDO_FS = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
    "securityfs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs",
    "binfmt_misc", "efivarfs", "rpc_pipefs", "nsfs", "selinuxfs", "smackfs", "nfsd",
    "devfs", "usbfs",
})

MOUNTINFO = "/proc/self/mountinfo"


def parse_mountinfo(text: str) -> dict[int, str]:
    """{st_dev: filesystem type} from the text of /proc/PID/mountinfo.

    A line: `ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE
    SUPER_OPTIONS`; the optional fields end at the lone `-`."""
    found: dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            major, minor = fields[2].split(":")
            fstype = fields[fields.index("-", 6) + 1]
            found[os.makedev(int(major), int(minor))] = fstype
        except (IndexError, ValueError):
            continue  # not a line we understand: that mount is treated as a normal one
    return found


def read_mountinfo(path: str = MOUNTINFO) -> dict[int, str]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return {}  # no /proc: every mount is treated as a normal filesystem


class MountTable:
    """The filesystem type of a device, read from mountinfo when first needed and again
    when a device not in it shows up (mounted since). Not thread-safe: one per walk."""

    def __init__(self, path: str = MOUNTINFO) -> None:
        self._path = path
        self._types: dict[int, str] | None = None
        self._reread: set[int] = set()  # devices already missed after a fresh read

    def fstype(self, dev: int) -> str:
        """The type of the filesystem of `dev`, or "" when the table doesn't list it."""
        if self._types is None:
            self._types = read_mountinfo(self._path)
        found = self._types.get(dev)
        if found is None and dev not in self._reread:
            self._reread.add(dev)
            self._types = read_mountinfo(self._path)
            found = self._types.get(dev)
        return found or ""

    def is_pseudo(self, dev: int) -> bool:
        return self.fstype(dev) in PSEUDO_FS


class MountPolicy:
    """Which mount points below the top the walk enters: none with one_file_system, else
    all but pseudo filesystems. Asked only where `st_dev` changes (a mount point)."""

    def __init__(self, one_file_system: bool = False, table: MountTable | None = None) -> None:
        self.one_file_system = one_file_system
        self._table = table or MountTable()

    def enters(self, dev: int) -> bool:
        """Enter a directory that is the root of the filesystem `dev`?"""
        return not self.one_file_system and not self._table.is_pseudo(dev)
