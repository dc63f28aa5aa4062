"""Two writers on one backup: the one that commits second applies only its own
changes (issue 12, item 2), and a store that ignores conditional writes is detected.

The race is made deterministic by a proxy that holds the loser's root PUT until the
winner's whole sync has run (tests/support/gate_proxy.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.cli_helpers import run_baycat
from tests.support._forwarding import FORWARD, Exchange, ForwardingProxy, Plan, Request
from tests.support.fault_proxy import s3_error_response
from tests.support.gate_proxy import GateProxy, is_root_put
from tests.support.rclone_s3 import RcloneS3
from tests.support.seaweed import SeaweedServer
from tests.targets import Target
from tests.trees import Spec, make_tree, read_tree


def _files(salt: bytes) -> Spec:
    return {f"f{i}": salt + os.urandom(100 + i) for i in range(20)}


def test_the_losing_sync_keeps_the_winners_fresh_entries(
        s3: Target, seaweed: SeaweedServer, tmp_path: Path) -> None:
    """Hosts a and b back up different trees into one prefix, night after night: each
    marks the other's files deleted. When b re-uploads its files while a's run is in
    flight, a's stale "deleted" marks (made from b's old entries) must not replace b's
    new entries: every entry must still describe the bytes of its object."""
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"a": _files(b"a")})
    make_tree(b, {"b": _files(b"b")})
    s3.sync(a)
    s3.sync(b)  # a/* now marked deleted
    make_tree(a, {"a": _files(b"A")})  # both trees change overnight
    make_tree(b, {"b": _files(b"B")})

    def winner() -> None:
        run_baycat("sync", b, s3.url, env=s3.env)

    with GateProxy(seaweed.endpoint_url, when=is_root_put, then=winner) as gate:
        env = {**s3.env, "AWS_ENDPOINT_URL": gate.endpoint_url}
        proc = run_baycat("sync", "--json", a, s3.url, env=env)
        assert gate.fired
    summary = json.loads(proc.stdout)
    assert summary["exit_code"] == 0
    out = tmp_path / "out"
    s3.restore(out, "--include-deleted")
    expected = read_tree(a) | read_tree(b)
    assert read_tree(out) == expected
    run_baycat("verify", "--deep", s3.url, env=s3.env)


def test_both_writers_uploading_one_path_keep_the_entry_of_the_object(
        s3: Target, seaweed: SeaweedServer, tmp_path: Path) -> None:
    """Both hosts write `shared` (different bytes); the winner's PUT comes last, so the
    object holds its bytes, and so must the manifest after the loser's merge."""
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"shared": b"from a" * 100, "only-a": b"a"})
    make_tree(b, {"shared": b"from b" * 100, "only-b": b"b"})

    def winner() -> None:
        run_baycat("sync", b, s3.url, env=s3.env)

    with GateProxy(seaweed.endpoint_url, when=is_root_put, then=winner) as gate:
        run_baycat("sync", a, s3.url, env={**s3.env, "AWS_ENDPOINT_URL": gate.endpoint_url})
    assert s3.objects()["shared"] == b"from b" * 100
    out = tmp_path / "out"
    s3.restore(out, "--include-deleted")
    assert (out / "shared").read_bytes() == b"from b" * 100
    assert set(read_tree(out)) == {b"shared", b"only-a", b"only-b"}
    run_baycat("verify", "--deep", s3.url, env=s3.env)


def _rclone_env(server: RcloneS3, endpoint: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}


def test_a_store_ignoring_conditional_writes_is_detected_and_a_race_refused(
        tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"a": _files(b"a")})
    make_tree(b, {"b": _files(b"b")})
    with RcloneS3(tmp_path / "rclone") as server:
        server.client().create_bucket(Bucket="bkt")
        url = "s3://bkt/backup/"
        direct = _rclone_env(server, server.endpoint_url)
        first = json.loads(run_baycat("sync", "--json", a, url, env=direct).stdout)
        assert any("ignores conditional writes" in n for n in first["notices"]), first
        make_tree(a, {"a": _files(b"A")})
        root_gets = []

        def second_root_get(request: Request) -> bool:
            if request.method == "GET" and request.path.endswith("/.baycat/root"):
                root_gets.append(request)
            return len(root_gets) == 2  # the check just before the commit

        def winner() -> None:
            run_baycat("sync", b, url, env=direct)

        with GateProxy(server.endpoint_url, when=second_root_get, then=winner) as gate:
            proc = run_baycat("sync", "--json", a, url,
                              env=_rclone_env(server, gate.endpoint_url), check=3)
            assert gate.fired
        lines = proc.stderr.decode().strip().splitlines()
        assert lines[-1].startswith("baycat: error: another writer committed")
        assert "ignores conditional writes" in lines[-1]
        assert json.loads(proc.stdout)["exit_code"] == 3
        # The winner's commit stands. (The loser's uploads already replaced its own
        # files' objects in place: on an unversioned store those entries fail their
        # hash check until the next sync, as after any crash before a commit.)
        out = tmp_path / "out"
        run_baycat("restore", "--include-deleted", "--path", "b", url, out, env=direct)
        assert read_tree(out) == read_tree(b)
        # The loser's next run (alone) goes through.
        run_baycat("sync", a, url, env=direct)
        out2 = tmp_path / "out2"
        run_baycat("restore", "--include-deleted", url, out2, env=direct)
        assert read_tree(out2) == read_tree(a) | read_tree(b)


class _RefuseRootWrites(ForwardingProxy):
    """Answers every root PUT 412, as a broken proxy or server might."""

    def on_request(self, ex: Exchange) -> Plan:
        if is_root_put(ex.request):
            return Plan(label="412", respond=s3_error_response(
                412, "Precondition Failed", "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                ex.request, "test"))
        return FORWARD


def test_412_without_another_writer_says_what_was_seen(
        s3: Target, seaweed: SeaweedServer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, {"f": b"x"})
    s3.sync(src)
    (src / "g").write_bytes(b"y")
    with _RefuseRootWrites(seaweed.endpoint_url) as proxy:
        proc = run_baycat("sync", src, s3.url, check=3,
                          env={**s3.env, "AWS_ENDPOINT_URL": proxy.endpoint_url})
    line = proc.stderr.decode().strip().splitlines()[-1]
    assert "although the root had not changed" in line and "mishandles If-Match" in line
    assert "other writers" not in line
