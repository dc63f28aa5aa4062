"""No module of baycat imports the package `__init__`: `python -m tests.lint.no_package_imports`.

`baycat/__init__.py` re-exports the public API, so it imports every layer; a module that
imports a name from it (`from baycat import __version__`, `from . import X`, or `import
baycat` and then `baycat.X`) makes an import cycle through the top of the package, one
that works only as long as `__init__` happens to bind that name before it imports the
module. import-linter can't express this (the package is the container of the layers, and
`from baycat import hooks` is an import of the submodule `baycat.hooks`, which is fine), so
this reads every module's imports with `ast`, including the ones inside functions and
`if TYPE_CHECKING:` blocks.

Allowed: `import baycat.x`, `from baycat import x` and `from . import x` where `x` is a
module or subpackage of baycat. Refused: `import baycat`, `from baycat import *`, and any
other name taken from the package. Exit status 1 when something is refused (one line per
import: `path:line: ...`), 0 otherwise.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

DEFAULT_PACKAGE = Path(__file__).resolve().parents[2] / "src" / "baycat"


def submodules(package_dir: Path) -> set[str]:
    """The names `from <package> import name` may take: its modules and subpackages."""
    names = {p.stem for p in package_dir.glob("*.py") if p.name != "__init__.py"}
    names |= {p.parent.name for p in package_dir.glob("*/__init__.py")}
    return names


def package_of(path: Path, package_dir: Path) -> list[str]:
    """The package a module's relative imports start from, as name parts
    (`ops/restore.py` and `ops/__init__.py` → ['baycat', 'ops'])."""
    parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
    return parts[:-1]


def refused_imports(source: str, package: list[str], root: str,
                    allowed: set[str]) -> Iterator[tuple[int, str]]:
    """(line, message) for every import in `source` that takes the package `root` itself;
    `package` is the package of the module (for relative imports), `allowed` the names
    of the root's submodules."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == root:
                    yield node.lineno, f"`import {root}` imports the package __init__"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(package):
                    continue  # beyond the top: Python refuses it anyway
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target != root:
                continue
            for alias in node.names:
                if alias.name not in allowed:
                    spelled = "." * node.level + (node.module or "")
                    yield (node.lineno, f"`from {spelled} import {alias.name}` takes a name "
                           f"from the package __init__ (import it from its own module)")


def check(package_dir: Path) -> list[str]:
    """Every refused import below `package_dir` (its own `__init__.py` excepted)."""
    root = package_dir.name
    allowed = submodules(package_dir)
    problems = []
    for path in sorted(package_dir.rglob("*.py")):
        if path == package_dir / "__init__.py":
            continue
        source = path.read_text(encoding="utf-8")
        for line, message in refused_imports(source, package_of(path, package_dir), root,
                                             allowed):
            problems.append(f"{path}:{line}: {message}")
    return problems


def main(argv: list[str]) -> int:
    package_dir = Path(argv[0]) if argv else DEFAULT_PACKAGE
    problems = check(package_dir)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} import(s) of the package {package_dir.name!r} itself")
        return 1
    print(f"no module of {package_dir.name!r} imports the package __init__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
