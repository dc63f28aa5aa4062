"""Start-up cost: what `import baycat` and `baycat --version` load (issue 18).

Seconds are measured in benchmarks/, never here; these tests pin the imports that made
start-up slow, so a new eager import shows up as a failing test, not a slower figure.
"""

from __future__ import annotations

import subprocess
import sys

import baycat

HEAVY = ("typer", "rich", "asyncio", "aiohttp", "aiobotocore", "baycat.api", "baycat.ops")


def _modules_loaded_by(code: str) -> set[str]:
    # atexit: a command that ends by SystemExit (typer does) still reports its modules.
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('\\n'.join(sys.modules), file=sys.stderr))\n"
              f"{code}\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    modules = set(done.stderr.split())
    assert "sys" in modules  # the report was printed
    return modules


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))


def test_import_baycat_loads_no_engine() -> None:
    assert _heavy(_modules_loaded_by("import baycat")) == []


def test_version_flag_answers_before_the_app_is_imported() -> None:
    modules = _modules_loaded_by(
        "import sys; sys.argv = ['baycat', '--version']\n"
        "from baycat.cli import main; main()")
    assert _heavy(modules) == []
    done = subprocess.run([sys.executable, "-m", "baycat", "--version"],
                          capture_output=True, text=True, check=True)
    assert done.stdout == f"baycat {baycat.__version__}\n"


def test_every_public_name_resolves() -> None:
    for name in baycat.__all__:
        assert getattr(baycat, name) is not None, name
    assert "sync_blocking" in dir(baycat)
