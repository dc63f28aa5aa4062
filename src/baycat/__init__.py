"""baycat: efficient backups of a directory tree to S3 and S3-compatible stores.

The public Python API (see `baycat.api` for the details and an example)::

    import baycat
    summary = baycat.sync_blocking("/srv/data", "s3://backups/host1/data/")
    print(summary.exit_code, summary.uploaded.files, summary.request_cost_usd)
"""

__version__ = "0.1.0"

from .api import (
    estimate_cost,
    gc,
    gc_blocking,
    history,
    history_blocking,
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
from .backup import SyncOptions
from .cost import PriceTable, TreeCostEstimate, load_prices
from .engine import ManifestSummary
from .errors import (
    BaycatError,
    CredentialsError,
    ExitCode,
    ManifestError,
    RemoteError,
    UsageError,
)
from .filters import FilterSpec, Rule
from .gc import GcSummary
from .generations import History
from .progress import Notice, Progress
from .restore import RestoreOptions
from .store.s3_options import S3Options
from .summary import FileError, OpCount, SyncSummary
from .transfer import TransferConfig
from .verify import Problem, VerifyOptions, VerifySummary

__all__ = [
    "BaycatError",
    "CredentialsError",
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
