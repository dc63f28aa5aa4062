"""The `baycat` command line (see main.py for the map of this package)."""

from baycat.cli.main import app, main

__all__ = ["app", "main"]
