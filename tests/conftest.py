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


# ---- a real S3 server for the whole session -------------------------------------------

from collections.abc import Iterator  # noqa: E402

from tests.support.counting_proxy import CountingProxy  # noqa: E402
from tests.support.seaweed import SeaweedServer  # noqa: E402


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def counting_proxy(seaweed: SeaweedServer) -> Iterator[CountingProxy]:
    """Counts what the server really receives (not what baycat says it sent)."""
    proxy = CountingProxy(seaweed.endpoint_url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
