from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.counting_proxy import CountingProxy
from tests.support.seaweed import SeaweedServer
from tests.targets import Target, make_target


@pytest.fixture(autouse=True)
def _scrub_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may pick up a developer's real AWS credentials or config."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture(autouse=True)
def _scrub_baycat_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
                      ) -> None:
    """Nor a developer's baycat settings: every option reads BAYCAT_<OPTION> and the
    config file under $XDG_CONFIG_HOME (cli/config.py). The suite's own knobs stay."""
    for name in list(os.environ):
        if name.startswith("BAYCAT_") and not name.startswith(("BAYCAT_TEST_", "BAYCAT_SOAK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "no-config"))


# ---- a real S3 server for the whole session -------------------------------------------




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


@pytest.fixture(params=["local", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """The sync contract's two backends: a local directory and real S3 (SeaweedFS)."""
    if request.param == "s3":
        seaweed: SeaweedServer = request.getfixturevalue("seaweed")
        proxy: CountingProxy = request.getfixturevalue("counting_proxy")
        return make_target("s3", tmp_path, seaweed, proxy)
    return make_target("local", tmp_path, None, None)


@pytest.fixture
def s3(tmp_path: Path, seaweed: SeaweedServer, counting_proxy: CountingProxy) -> Target:
    """A fresh bucket on the session's SeaweedFS, behind the counting proxy."""
    return make_target("s3", tmp_path, seaweed, counting_proxy)
