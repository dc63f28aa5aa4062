"""Reaching the store the way botocore and the AWS CLI do, on every path (issue 15 §1):
a profile's endpoint and addressing style from the config file, TLS with a private CA
(AWS_CA_BUNDLE, --ca-bundle, a profile's ca_bundle, --no-verify-ssl), and the
HTTP_PROXY / NO_PROXY environment. The fast path (GET, PUT, UploadPart, CopyObject)
and botocore (LIST, DELETE, multipart control) must both follow them: every request a
run reports is counted where it must have gone (a TLS front, a forward proxy).

Real components: SeaweedFS behind a TLS front with a CA made here (trustme), a forward
proxy on loopback, a static web server for `restore https://`.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

import baycat
from baycat.ops.summary import SyncSummary
from baycat.ops.sync_context import SyncOptions
from baycat.ops.transfer import TransferConfig
from baycat.store.s3_options import S3Options
from tests.cli_helpers import run_baycat
from tests.support.counting_proxy import CountingProxy
from tests.support.forward_proxy import ConnectProxy, ForwardProxy
from tests.support.seaweed import SeaweedServer
from tests.support.static_http import StaticServer
from tests.trees import make_tree

# Multipart uploads (UploadPart on the fast path, the rest on botocore) are run through
# the API with a 5 MiB threshold: the CLI's 16 MiB would make the tests slow.
MiB = 1 << 20


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def tls_front(seaweed: SeaweedServer, ca: trustme.CA) -> Iterator[CountingProxy]:
    """SeaweedFS over https://127.0.0.1:PORT, with a certificate of the test CA."""
    with CountingProxy(seaweed.endpoint_url, tls=_server_context(ca)) as front:
        yield front


@pytest.fixture
def bucket(seaweed: SeaweedServer, request: pytest.FixtureRequest) -> str:
    name = f"reach-{abs(hash(request.node.name)) % 10**8}"
    seaweed.create_bucket(name)
    return name


def _keys(seaweed: SeaweedServer) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": seaweed.access_key,
            "AWS_SECRET_ACCESS_KEY": seaweed.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    make_tree(tree, {"a.txt": b"a" * 100, "d": {"b.txt": b"b" * 5000}, "c.txt": b"c" * 300})
    return tree


def _multipart_sync(tree: Path, url: str, s3: S3Options) -> SyncSummary:
    (tree / "big").write_bytes(b"x" * (6 * MiB))
    config = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB)
    return baycat.sync_blocking(tree, url, SyncOptions(transfer=config), s3=s3)


def _sync(env: dict[str, str], *args: str | Path, check: int = 0) -> dict[str, Any]:
    proc = run_baycat("sync", "--json", *args, env=env, check=check)
    summary: dict[str, Any] = json.loads(proc.stdout)
    summary["_stderr"] = proc.stderr.decode()
    return summary


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("baycat: error: "), lines
    return lines[0]


# ---- TLS ----------------------------------------------------------------------------------


def test_private_ca_from_env_flag_and_profile(tmp_path: Path, seaweed: SeaweedServer,
                                             tls_front: CountingProxy, ca_file: Path,
                                             bucket: str) -> None:
    tree = _tree(tmp_path)
    env = {**_keys(seaweed), "AWS_ENDPOINT_URL": tls_front.endpoint_url,
           "AWS_CA_BUNDLE": str(ca_file), "BAYCAT_LOGLEVEL": "info"}
    url = f"s3://{bucket}/p/"
    first = _sync(env, tree, url)
    assert "fast path can't use" not in first["_stderr"]
    # Every request went through the TLS front: the fast path's GET of the root and PUTs.
    assert first["requests"] == dict(tls_front.counts()) and first["requests"]["PUT"] >= 3

    # --ca-bundle (the AWS CLI's flag), for a restore.
    tls_front.reset()
    no_env = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}
    out = tmp_path / "out"
    run_baycat("restore", "--ca-bundle", ca_file, url, out, env=no_env)
    assert (out / "d" / "b.txt").read_bytes() == b"b" * 5000
    assert tls_front.counts()["GET"] >= 2

    # A profile's ca_bundle in the config file (botocore's setting, on the fast path too).
    config = tmp_path / "config"
    config.write_text(f"[default]\nca_bundle = {ca_file}\n")
    (tree / "a.txt").write_bytes(b"changed")
    tls_front.reset()
    second = _sync({**no_env, "AWS_CONFIG_FILE": str(config)}, tree, url)
    assert second["uploaded"]["files"] == 1 and second["requests"] == dict(tls_front.counts())


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast-path", "botocore-only"])
def test_untrusted_certificate_is_one_line_without_retries(
        tmp_path: Path, seaweed: SeaweedServer, tls_front: CountingProxy, bucket: str,
        fast: str) -> None:
    env = {**_keys(seaweed), "AWS_ENDPOINT_URL": tls_front.endpoint_url, "BAYCAT_S3_FAST": fast}
    summary = _sync(env, _tree(tmp_path), f"s3://{bucket}/p/", check=3)
    line = _one_line(summary["_stderr"])
    assert f"TLS certificate verify failed for 127.0.0.1:{tls_front.port}" in line, line
    assert "--ca-bundle" in line
    assert summary["exit_code"] == 3 and "certificate verify failed" in summary["fatal_error"]
    assert tls_front.connections == 1  # not retried
    assert tls_front.total() == 0


def test_no_verify_ssl_accepts_an_untrusted_certificate(
        tmp_path: Path, seaweed: SeaweedServer, tls_front: CountingProxy, bucket: str) -> None:
    env = {**_keys(seaweed), "AWS_ENDPOINT_URL": tls_front.endpoint_url}
    summary = _sync(env, "--no-verify-ssl", _tree(tmp_path), f"s3://{bucket}/p/")
    assert summary["uploaded"]["files"] == 3
    assert summary["requests"] == dict(tls_front.counts())


def test_multipart_upload_over_tls_with_a_private_ca(
        tmp_path: Path, seaweed: SeaweedServer, tls_front: CountingProxy, ca_file: Path,
        bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(ca_file))  # as botocore reads it, in-process
    s3 = S3Options(endpoint_url=tls_front.endpoint_url, region="us-east-1",
                   access_key_id=seaweed.access_key, secret_access_key=seaweed.secret_key)
    summary = _multipart_sync(_tree(tmp_path), f"s3://{bucket}/p/", s3)
    assert summary.exit_code == 0 and summary.requests["POST"] >= 2  # create + complete
    assert summary.requests == dict(tls_front.counts())
    assert seaweed.client().get_object(Bucket=bucket, Key="p/big")["ContentLength"] == 6 * MiB


def test_restore_https_with_a_private_ca(tmp_path: Path, ca: trustme.CA, ca_file: Path) -> None:
    tree = _tree(tmp_path)
    (tmp_path / "site").mkdir()
    baycat.sync_blocking(tree, str(tmp_path / "site" / "backup"))
    with StaticServer(tmp_path / "site" / "backup") as web, \
            CountingProxy(f"http://127.0.0.1:{web.port}", tls=_server_context(ca)) as front:
        url = f"{front.endpoint_url}/backup/"
        proc = run_baycat("restore", url, tmp_path / "bad", check=3)
        line = _one_line(proc.stderr.decode())
        assert f"TLS certificate verify failed for 127.0.0.1:{front.port}" in line, line
        assert front.connections == 1
        run_baycat("restore", "--ca-bundle", ca_file, url, tmp_path / "out")
        assert (tmp_path / "out" / "c.txt").read_bytes() == (tree / "c.txt").read_bytes()
        run_baycat("restore", url, tmp_path / "env", env={"AWS_CA_BUNDLE": str(ca_file)})
        assert (tmp_path / "env" / "d" / "b.txt").read_bytes() == b"b" * 5000


# ---- proxies ------------------------------------------------------------------------------


@pytest.fixture
def forward_proxy(seaweed: SeaweedServer) -> Iterator[ForwardProxy]:
    with ForwardProxy(seaweed.endpoint_url) as proxy:
        yield proxy


def test_every_request_goes_through_http_proxy(tmp_path: Path, seaweed: SeaweedServer,
                                               forward_proxy: ForwardProxy, bucket: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tree = _tree(tmp_path)
    env = {**_keys(seaweed), "AWS_ENDPOINT_URL": seaweed.endpoint_url,
           "HTTP_PROXY": forward_proxy.endpoint_url, "BAYCAT_LOGLEVEL": "info"}
    url = f"s3://{bucket}/p/"
    first = _sync(env, tree, url)
    assert "fast path can't use" not in first["_stderr"]  # GET/PUT really took the fast path
    (tree / "d" / "b.txt").rename(tree / "moved.txt")  # a server-side copy, then a delete
    second = _sync(env, "--delete", tree, url)
    assert second["copied"]["files"] == 1 and second["deleted"]["files"] == 1
    out = tmp_path / "out"
    proc = run_baycat("restore", "--json", url, out, env=env)
    restored = json.loads(proc.stdout)
    assert (out / "moved.txt").read_bytes() == b"b" * 5000
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.endpoint_url)
    s3 = S3Options(endpoint_url=seaweed.endpoint_url, region="us-east-1",
                   access_key_id=seaweed.access_key, secret_access_key=seaweed.secret_key)
    third = _multipart_sync(tree, url, s3).to_json()
    sent: dict[str, int] = {}
    for summary in (first, second, restored, third):
        for kind, n in summary["requests"].items():
            sent[kind] = sent.get(kind, 0) + n
    assert {"GET", "PUT", "COPY", "POST"} <= set(sent)  # POST: multipart, DeleteObjects
    assert sent == dict(forward_proxy.counts())  # each one passed through the proxy
    assert not forward_proxy.refused


def test_https_through_https_proxy(tmp_path: Path, seaweed: SeaweedServer,
                                   tls_front: CountingProxy, ca_file: Path,
                                   bucket: str) -> None:
    with ConnectProxy(tls_front.port) as proxy:
        env = {**_keys(seaweed), "AWS_ENDPOINT_URL": tls_front.endpoint_url,
               "AWS_CA_BUNDLE": str(ca_file), "HTTPS_PROXY": proxy.url}
        summary = _sync(env, _tree(tmp_path), f"s3://{bucket}/p/")
        assert summary["uploaded"]["files"] == 3
        assert summary["requests"] == dict(tls_front.counts())
        # Every connection to the endpoint came through a tunnel of the proxy.
        assert tls_front.connections == sum(proxy.tunnels.values()) >= 1


def test_no_proxy_bypasses_it(tmp_path: Path, seaweed: SeaweedServer,
                              forward_proxy: ForwardProxy, bucket: str) -> None:
    env = {**_keys(seaweed), "AWS_ENDPOINT_URL": seaweed.endpoint_url,
           "HTTP_PROXY": forward_proxy.endpoint_url, "NO_PROXY": "127.0.0.1"}
    summary = _sync(env, _tree(tmp_path), f"s3://{bucket}/p/")
    assert summary["uploaded"]["files"] == 3
    assert forward_proxy.total() == 0 and forward_proxy.connections == 0


# ---- the config file ----------------------------------------------------------------------


def _config(tmp_path: Path, seaweed: SeaweedServer, body: str) -> dict[str, str]:
    config = tmp_path / "aws-config"
    config.write_text(body.format(key=seaweed.access_key, secret=seaweed.secret_key))
    return {"AWS_CONFIG_FILE": str(config)}


@pytest.mark.parametrize("where", ["profile", "services"])
def test_profile_endpoint_from_config_file(tmp_path: Path, seaweed: SeaweedServer,
                                           counting_proxy: CountingProxy, bucket: str,
                                           where: str) -> None:
    endpoint = counting_proxy.endpoint_url
    section = (f"endpoint_url = {endpoint}\n" if where == "profile" else
               "services = local\n\n[services local]\ns3 =\n"
               f"  endpoint_url = {endpoint}\n")
    env = _config(tmp_path, seaweed, "[profile backup]\nregion = us-east-1\n"
                  "aws_access_key_id = {key}\naws_secret_access_key = {secret}\n" + section)
    counting_proxy.reset()
    summary = _sync(env, "--profile", "backup", _tree(tmp_path), f"s3://{bucket}/p/")
    assert summary["uploaded"]["files"] == 3
    assert summary["requests"] == dict(counting_proxy.counts())
    assert seaweed.client().get_object(Bucket=bucket, Key="p/a.txt")["Body"].read() == b"a" * 100


def test_addressing_style_from_config_file(tmp_path: Path, seaweed: SeaweedServer,
                                           forward_proxy: ForwardProxy, bucket: str) -> None:
    """`addressing_style = virtual` puts the bucket in the host name, on the fast path as
    in botocore (the forward proxy sees the host asked for, no DNS needed), and a failure
    to reach it names host and port."""
    port = seaweed.endpoint_url.rsplit(":", 1)[1]
    env = {**_config(tmp_path, seaweed, "[default]\nregion = us-east-1\n"
                     "aws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
                     f"endpoint_url = http://localhost:{port}\n"
                     "s3 =\n  addressing_style = virtual\n"),
           "HTTP_PROXY": forward_proxy.endpoint_url}
    summary = _sync(env, "--retries", "1", _tree(tmp_path), f"s3://{bucket}/p/", check=3)
    assert set(forward_proxy.refused) == {f"{bucket}.localhost:{port}"}, forward_proxy.refused
    assert forward_proxy.total() == 0
    assert summary["exit_code"] == 3


def test_unreachable_profile_endpoint_names_host_and_port(tmp_path: Path,
                                                          seaweed: SeaweedServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _config(tmp_path, seaweed, "[profile p]\nregion = us-east-1\n"
                  "aws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
                  f"endpoint_url = http://127.0.0.1:{port}\n")
    summary = _sync(env, "--profile", "p", "--retries", "1", _tree(tmp_path), "s3://bkt/p/",
                    check=3)
    line = _one_line(summary["_stderr"])
    assert f"cannot reach the S3 endpoint 127.0.0.1:{port}" in line, line
