"""The version of baycat: one source, the package metadata (pyproject.toml).

Read on first use (PEP 562): importing `importlib.metadata` costs ~15 ms (it pulls in
email, zipfile, csv), which a command that never prints or records the version (a
no-change sync) should not pay at start-up (issue 18). Callers read
`version.__version__` where they use it, not `from baycat.version import __version__`
at the top of a module.
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module 'baycat.version' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("baycat")
    except PackageNotFoundError:  # running from a source tree that was never installed
        value = "0+unknown"
    globals()["__version__"] = value  # the next lookup doesn't come here
    return value
