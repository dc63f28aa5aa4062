"""Restore over plain HTTP(S): a backup read with ordinary GETs, from a static web
server over a `file://` backup and from a SeaweedFS bucket that allows anonymous reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baycat.errors import RemoteError
from baycat.store.http import key_url_path
from tests.cli_helpers import run_baycat
from tests.remote_check import manifest_entries
from tests.support.seaweed import SeaweedServer
from tests.support.static_http import StaticServer
from tests.test_sync import assert_same_tree
from tests.trees import Symlink, make_tree, read_tree, weird_tree


def test_keys_become_exact_ascii_url_paths() -> None:
    assert key_url_path("a/b c.txt") == "a/b%20c.txt"
    assert key_url_path("percent%20name") == "percent%2520name"
    assert key_url_path("star*?[x]") == "star%2A%3F%5Bx%5D"
    assert key_url_path("quote\"'#;=&+") == "quote%22%27%23%3B%3D%26%2B"
    assert key_url_path("caf\u00e9") == "caf%C3%A9"
    assert key_url_path("-._~") == "-._~"
    for bad in ("", "a/../b", "./a", "a//b", "/a", ".."):
        with pytest.raises(RemoteError):
            key_url_path(bad)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "weird"
    make_tree(src, weird_tree())
    make_tree(src, {"link": Symlink(b"plain.txt"), "big": b"0123456789" * 300_000})
    return src


def test_http_restore_round_trip_from_a_static_web_server(source: Path, tmp_path: Path
                                                          ) -> None:
    backup = tmp_path / "backup"
    run_baycat("sync", source, f"file://{backup}")
    with StaticServer(backup) as server:
        proc = run_baycat("restore", "--json", server.url, tmp_path / "out")
        first = json.loads(proc.stdout)
        assert first["exit_code"] == 0
        assert_same_tree(source, tmp_path / "out")
        # The segments came with a ranged GET (206), the rest with plain GETs.
        assert server.requests["GET 206"] >= 1
        assert set(server.requests) <= {"GET 200", "GET 206"}
        # Again: one conditional GET of the root (304), nothing downloaded.
        server.requests.clear()
        again = json.loads(run_baycat("restore", "--json", server.url,
                                      tmp_path / "out").stdout)
        assert again["downloaded"]["files"] == 0
        assert server.requests == {"GET 304": 1}
        # Read-only: a sync to an HTTP URL is a usage error.
        run_baycat("sync", source, server.url, check=2)
        # Deep verify works over HTTP; the cheap one needs a listing.
        deep = json.loads(run_baycat("verify", "--json", "--deep", server.url).stdout)
        assert deep["deep_files"] == len([1 for k, _ in read_tree(source).values()
                                          if k == "f"])
        run_baycat("verify", server.url, check=2)


def test_http_restore_of_a_corrupted_object_fails_that_file_only(
        source: Path, tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    run_baycat("sync", source, backup)
    (backup / "plain.txt").write_bytes(b"tampered")
    with StaticServer(backup) as server:
        summary = json.loads(run_baycat("restore", "--json", server.url, tmp_path / "out",
                                        check=1).stdout)
    assert [e["path"] for e in summary["errors"]] == ["plain.txt"]
    assert not (tmp_path / "out" / "plain.txt").exists()


def test_a_server_that_is_not_a_backup(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    with StaticServer(tmp_path / "site") as server:
        proc = run_baycat("restore", server.url, tmp_path / "out", check=3)
    assert b"no baycat backup" in proc.stderr


def test_http_restore_from_seaweedfs_with_anonymous_reads(
        seaweed: SeaweedServer, source: Path, tmp_path: Path) -> None:
    bucket = "public-http-restore"
    seaweed.create_bucket(bucket, versioning=True)  # VersionIds in the manifest, too
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
        "Resource": [f"arn:aws:s3:::{bucket}/*"]}]}
    seaweed.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    env = {"AWS_ACCESS_KEY_ID": seaweed.access_key,
           "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": seaweed.endpoint_url}
    run_baycat("sync", source, f"s3://{bucket}/host1/data/", env=env)
    assert all(e.version_id for e in manifest_entries(seaweed, bucket, "host1/data/")
               if e.kind == "f")
    url = f"{seaweed.endpoint_url}/{bucket}/host1/data/"
    summary = json.loads(run_baycat("restore", "--json", url, tmp_path / "out").stdout)
    assert summary["exit_code"] == 0
    assert_same_tree(source, tmp_path / "out")
    again = json.loads(run_baycat("restore", "--json", url, tmp_path / "out").stdout)
    assert again["downloaded"]["files"] == 0 and again["requests"] == {"GET": 1}


def test_a_server_without_range_support_is_a_clear_error(source: Path, tmp_path: Path
                                                         ) -> None:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    backup = tmp_path / "backup"
    run_baycat("sync", source, backup)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(Quiet, directory=str(backup)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        proc = run_baycat("restore", url, tmp_path / "out", check=3)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert b"ignores Range" in proc.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".baycat"]
