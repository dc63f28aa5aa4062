"""Test trees described as data (after restic's TestDir): build them, read them back.

    make_tree(root, {"a": {"b.txt": b"hello", "empty": {}}, "link": Symlink(b"a")})
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import xxhash


@dataclass(frozen=True)
class Symlink:
    target: bytes


Spec = dict[bytes | str, Union[bytes, "Spec", Symlink]]


def _name(name: bytes | str) -> bytes:
    return name if isinstance(name, bytes) else name.encode()


def make_tree(root: Path | bytes, spec: Spec) -> None:
    base = os.fsencode(root)
    os.makedirs(base, exist_ok=True)
    for name, value in spec.items():
        path = base + b"/" + _name(name)
        if isinstance(value, dict):
            make_tree(path, value)
        elif isinstance(value, Symlink):
            os.symlink(value.target, path)
        else:
            with open(path, "wb") as f:
                f.write(value)


NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")

# Names any Linux filesystem allows and a backup must reproduce byte for byte.
WEIRD_NAMES: list[bytes] = [
    b"plain.txt",
    b"with space.txt",
    b"new\nline",
    b"back\\slash",
    b"not-utf8-\xff\xfe",
    b"latin1-caf\xe9",
    NFC.encode(),
    NFD.encode(),
    b"x" * 255,
    b"-leading-dash",
    b"tab\tname",
    b"quote\"'",
    b"star*?[x]",
    b"percent%20name",
    "emoji-🎉".encode(),
]


def weird_tree() -> Spec:
    spec: Spec = {name: b"content of " + name for name in WEIRD_NAMES}
    spec[b"dir \xff"] = {name: name * 3 for name in WEIRD_NAMES[:6]}
    spec["empty-dir"] = {}
    spec["nested"] = {"deeper": {"deepest": {}}}
    return spec


def read_tree(root: Path | bytes) -> dict[bytes, tuple[str, bytes]]:
    """Every path below root -> (kind, content or link target); skips .baycat."""
    base = os.fsencode(root)
    out: dict[bytes, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base)
        if rel_dir == b".":
            rel_dir = b""
            if b".baycat" in dirnames:
                dirnames.remove(b".baycat")
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.join(rel_dir, name) if rel_dir else name
            if os.path.islink(full):
                out[rel] = ("l", os.readlink(full))
            elif os.path.isdir(full):
                out[rel] = ("d", b"")
            else:
                with open(full, "rb") as f:
                    out[rel] = ("f", f.read())
    return out


def xxh(data: bytes) -> bytes:
    return xxhash.xxh3_128_digest(data)
