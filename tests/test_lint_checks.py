"""The package-import check the lint session runs (tests/lint/no_package_imports.py)."""

from __future__ import annotations

from pathlib import Path

from tests.lint.no_package_imports import DEFAULT_PACKAGE, check, refused_imports
from tests.support.tables import row

ALLOWED = {"hooks", "api", "ops", "version"}

# (module's package, source, refused?)
TABLE: list[tuple[list[str], str, bool]] = [
    (["baycat"], "import baycat", True),
    (["baycat", "ops"], "import baycat as b", True),
    (["baycat", "ops"], "from baycat import __version__", True),
    (["baycat", "ops"], "from baycat import *", True),
    (["baycat"], "from . import __version__", True),
    (["baycat", "ops"], "from .. import sync_blocking", True),
    (["baycat", "ops"], "def f():\n    from baycat import SyncOptions\n", True),
    (["baycat", "ops"], "if TYPE_CHECKING:\n    import baycat\n", True),
    (["baycat", "ops"], "from baycat import hooks", False),
    (["baycat"], "from . import api", False),
    (["baycat", "ops"], "from .. import version", False),
    (["baycat", "ops"], "import baycat.hooks", False),
    (["baycat", "ops"], "from baycat.version import __version__", False),
    (["baycat", "ops"], "from . import backup", False),  # baycat.ops, not baycat
    (["baycat", "ops"], "import baycatalog", False),
]


def test_refused_imports_table() -> None:
    for package, source, refused in TABLE:
        with row(source):
            found = list(refused_imports(source, package, "baycat", ALLOWED))
            assert bool(found) == refused, found


def test_check_reads_a_tree(tmp_path: Path) -> None:
    pkg = tmp_path / "baycat"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from baycat.ops.backup import X\n__version__ = '1'\n")
    (pkg / "hooks.py").write_text("")
    (pkg / "ops" / "__init__.py").write_text("from .. import hooks\n")
    (pkg / "ops" / "backup.py").write_text("X = 1\nfrom .. import __version__\n")
    assert check(pkg) == [
        f"{pkg / 'ops' / 'backup.py'}:2: `from .. import __version__` takes a name from the "
        "package __init__ (import it from its own module)"
    ]


def test_baycat_imports_no_name_from_its_init() -> None:
    assert check(DEFAULT_PACKAGE) == []
