"""baycat: efficient backups of a directory tree to S3 and S3-compatible stores.

The public Python API (see `baycat.api` for the details and an example)::

    import baycat
    summary = baycat.sync_blocking("/srv/data", "s3://backups/host1/data/")
    print(summary.exit_code, summary.uploaded.files, summary.request_cost_usd)
"""

from baycat.api import (
    estimate_cost,
    gc,
    gc_blocking,
    history,
    history_blocking,
    key_add,
    key_list,
    key_remove,
    restore,
    restore_blocking,
    sync,
    sync_blocking,
    update_manifest,
    update_manifest_blocking,
    verify,
    verify_blocking,
    verify_local,
    verify_local_blocking,
)
from baycat.errors import (
    BaycatError,
    CredentialsError,
    ExitCode,
    ManifestError,
    RemoteError,
    UsageError,
)
from baycat.manifest.generations import History
from baycat.ops.backup import SyncOptions
from baycat.ops.cost import PriceTable, TreeCostEstimate, load_prices
from baycat.ops.gc import GcSummary
from baycat.ops.manifest import ManifestSummary
from baycat.ops.restore import RestoreOptions
from baycat.ops.summary import FileError, OpCount, SyncSummary
from baycat.ops.transfer import TransferConfig
from baycat.ops.verify import Problem, VerifyOptions, VerifySummary
from baycat.progress import Notice, Progress
from baycat.scan.filters import FilterSpec, Rule
from baycat.store.encryption import Encryption, Secret
from baycat.store.s3_options import S3Options
from baycat.version import __version__

__all__ = [
    "BaycatError",
    "CredentialsError",
    "Encryption",
    "ExitCode",
    "FileError",
    "FilterSpec",
    "GcSummary",
    "History",
    "ManifestError",
    "ManifestSummary",
    "Notice",
    "OpCount",
    "PriceTable",
    "Problem",
    "Progress",
    "RemoteError",
    "RestoreOptions",
    "Rule",
    "S3Options",
    "Secret",
    "SyncOptions",
    "SyncSummary",
    "TransferConfig",
    "TreeCostEstimate",
    "UsageError",
    "VerifyOptions",
    "VerifySummary",
    "__version__",
    "estimate_cost",
    "gc",
    "gc_blocking",
    "history",
    "history_blocking",
    "key_add",
    "key_list",
    "key_remove",
    "load_prices",
    "restore",
    "restore_blocking",
    "sync",
    "sync_blocking",
    "update_manifest",
    "update_manifest_blocking",
    "verify",
    "verify_blocking",
    "verify_local",
    "verify_local_blocking",
]
