"""What a run that could not complete must look like: its documented exit code, one line
`baycat: error: ...` on stderr (never a traceback) and, with --json, one object on stdout
that carries the error."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "json-summary.schema.json")
                    .read_text())


def error_line(proc: subprocess.CompletedProcess[bytes], code: int) -> str:
    """The one error line of a run that exited `code`."""
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == code, (proc.returncode, stderr)
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("baycat: error: "), stderr
    return lines[0]


def fatal_json(proc: subprocess.CompletedProcess[bytes], code: int,
               schema: bool = True) -> dict[str, Any]:
    """A --json run that failed: one error line, one JSON object naming the error
    (checked against the sync/restore summary schema unless `schema` is False)."""
    line = error_line(proc, code)
    out = proc.stdout.decode().splitlines()
    assert len(out) == 1, proc.stdout
    doc: dict[str, Any] = json.loads(out[0])
    if schema:
        jsonschema.validate(doc, SCHEMA)
    assert doc["exit_code"] == code
    assert doc["fatal_error"] and doc["fatal_error"] in line, (doc, line)
    return doc
