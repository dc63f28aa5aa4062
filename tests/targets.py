"""One sync contract, two backends: a local directory and S3 (SeaweedFS behind a
counting proxy). Tests take a `Target` and don't care which it is."""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baycat.store.layout import is_state_key
from tests.cli_helpers import run_baycat
from tests.support.counting_proxy import CountingProxy
from tests.support.seaweed import SeaweedServer

_bucket_numbers = itertools.count()


@dataclass
class Target:
    kind: str  # "local" or "s3"
    url: str  # what `baycat sync SRC <url>` takes
    env: dict[str, str] = field(default_factory=dict)
    root: Path | None = None  # local backups
    seaweed: SeaweedServer | None = None
    proxy: CountingProxy | None = None
    bucket: str = ""
    prefix: str = ""

    def sync(self, source: Path, *args: str, check: int | None = 0) -> dict[str, Any]:
        """Run `baycat sync --json`; returns the summary, after checking that the server
        saw exactly the requests the summary reports."""
        if self.proxy is not None:
            self.proxy.reset()
        proc = run_baycat("sync", "--json", *args, source, self.url, env=self.env,
                          check=check)
        summary: dict[str, Any] = json.loads(proc.stdout)
        summary["_stderr"] = proc.stderr.decode()
        if self.proxy is not None:
            summary["server_requests"] = dict(self.proxy.counts())
            assert summary["server_requests"] == summary["requests"], summary
        else:
            summary["server_requests"] = summary["requests"]
        return summary

    def restore(self, dest: Path | str, *args: str, check: int | None = 0,
                cwd: Path | None = None) -> dict[str, Any]:
        if self.proxy is not None:
            self.proxy.reset()
        proc = run_baycat("restore", "--json", *args, self.url, dest, env=self.env,
                          check=check, cwd=cwd)
        summary: dict[str, Any] = json.loads(proc.stdout)
        if self.proxy is not None:
            summary["server_requests"] = dict(self.proxy.counts())
        return summary

    def objects(self, include_state: bool = False) -> dict[str, bytes]:
        """Every data object (key relative to the prefix) and its bytes; with
        include_state, baycat's manifest objects too."""
        out: dict[str, bytes] = {}
        if self.root is not None:
            for dirpath, _, filenames in os.walk(self.root):
                for name in filenames:
                    full = os.path.join(dirpath, name)
                    key = os.path.relpath(full, self.root)
                    if is_state_key(key) and not include_state:
                        continue
                    if ".baycat-tmp-" in name or key == ".baycat/store.lock":
                        continue
                    with open(full, "rb") as f:
                        out[key] = f.read()
            return out
        assert self.seaweed is not None
        client = self.seaweed.client()
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self.prefix):]
                if is_state_key(key) and not include_state:
                    continue
                out[key] = client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
        return out

    def put_raw(self, key: str, data: bytes) -> None:
        """Write an object behind baycat's back."""
        if self.root is not None:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        assert self.seaweed is not None
        self.seaweed.client().put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def delete_raw(self, key: str) -> None:
        if self.root is not None:
            (self.root / key).unlink()
            return
        assert self.seaweed is not None
        self.seaweed.client().delete_object(Bucket=self.bucket, Key=self.prefix + key)


def make_target(kind: str, tmp_path: Path, seaweed: SeaweedServer | None,
                proxy: CountingProxy | None) -> Target:
    if kind == "local":
        root = tmp_path / "backup"
        return Target("local", str(root), root=root)
    assert seaweed is not None and proxy is not None
    bucket = f"t{os.getpid()}-{next(_bucket_numbers)}"
    seaweed.create_bucket(bucket)
    env = {"AWS_ACCESS_KEY_ID": seaweed.access_key,
           "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
           "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": proxy.endpoint_url}
    return Target("s3", f"s3://{bucket}/some/prefix/", env=env, seaweed=seaweed, proxy=proxy,
                  bucket=bucket, prefix="some/prefix/")


def requests_total(summary: dict[str, Any]) -> int:
    return sum(summary["server_requests"].values())


def counts(summary: dict[str, Any]) -> Counter[str]:
    return Counter(summary["server_requests"])
