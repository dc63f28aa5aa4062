"""The version of baycat: its one source (pyproject.toml reads it, `dynamic = ["version"]`).

A constant, not `importlib.metadata.version("baycat")`: importing `importlib.metadata`
costs ~10 ms (it pulls in email, zipfile, csv), and every sync records the version in
the manifest root it builds, a no-change run included (issue 18).
"""

__version__ = "0.1.0"
