from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _scrub_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may pick up a developer's real AWS credentials or config."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
