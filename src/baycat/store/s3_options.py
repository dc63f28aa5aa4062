"""How to reach an S3 store: a plain value, importable without loading botocore
(which costs ~0.4 s of start-up that local-only runs should not pay)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from baycat.store.layout import is_state_key


@dataclass(frozen=True, slots=True)
class S3Options:
    """How to reach the store. None means: botocore's usual sources (env, config files)."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    max_connections: int = 64
    attempts: int = 5
    # Seconds to wait for a connection, and for the server's next bytes (every attempt;
    # `baycat --timeout`). A silent server costs at most attempts × read_timeout.
    connect_timeout: float = 10
    read_timeout: float = 30
    # Explicit keys (the CLI fills them from AWS_ACCESS_KEY_ID/..., as botocore would;
    # the Python API, tests); None: botocore's credential chain.
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    # Data objects only: manifest objects stay STANDARD (they are read every run).
    storage_class: str | None = None  # STANDARD_IA, GLACIER_IR, DEEP_ARCHIVE, ...
    sse: str | None = None  # "AES256" or "aws:kms" (every object)
    sse_kms_key_id: str | None = None
    # TLS, as the AWS CLI names them: a CA bundle to trust (--ca-bundle, AWS_CA_BUNDLE;
    # None: botocore's choice, a profile's ca_bundle included), or no verification at
    # all (--no-verify-ssl). The same for the fast path and for `restore https://`.
    ca_bundle: str | None = None
    verify_ssl: bool = True
    # GET/PUT/UploadPart through store/s3_fast.py (signed here, sent with aiohttp) rather
    # than botocore: the same requests for a fraction of the CPU. Off: botocore for all.
    fast_path: bool = True
    # S3 Object Lock on every object written (data, packs, roots): a retention of this
    # many days from the write, in this mode (GOVERNANCE or COMPLIANCE). The bucket must
    # have been created with Object Lock enabled.
    object_lock_days: int | None = None
    object_lock_mode: str = "GOVERNANCE"

    def write_args(self, key: str) -> dict[str, str]:
        """Extra arguments of a PUT / CreateMultipartUpload / CopyObject of `key`."""
        args: dict[str, str] = {}
        if self.storage_class and not is_state_key(key):
            args["StorageClass"] = self.storage_class
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.object_lock_days:
            until = datetime.now(UTC) + timedelta(days=self.object_lock_days)
            args["ObjectLockMode"] = self.object_lock_mode
            args["ObjectLockRetainUntilDate"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
        return args
