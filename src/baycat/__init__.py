"""baycat: efficient backups of a directory tree to S3 and S3-compatible stores.

The public Python API (see `baycat.api` for the details and an example)::

    import baycat
    summary = baycat.sync_blocking("/srv/data", "s3://backups/host1/data/")
    print(summary.exit_code, summary.uploaded.files, summary.request_cost_usd)

The names are imported on first use (PEP 562): the `baycat` command imports this package
on every start, and importing the whole API eagerly cost ~130 ms of a ~180 ms start-up
(`python -X importtime -c 'import baycat.cli'`, issue 18).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from baycat.api import (
        estimate_cost,
        gc,
        gc_blocking,
        history,
        history_blocking,
        key_add,
        key_list,
        key_remove,
        repair,
        repair_blocking,
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
    from baycat.ops.repair import RepairOptions, RepairSummary
    from baycat.ops.restore import RestoreOptions
    from baycat.ops.summary import FileError, OpCount, SyncSummary
    from baycat.ops.transfer import TransferConfig
    from baycat.ops.verify import Problem, VerifyOptions, VerifySummary
    from baycat.progress import Notice, Progress
    from baycat.scan.filters import FilterSpec, Rule
    from baycat.store.encryption import Encryption, Secret
    from baycat.store.s3_options import S3Options
    from baycat.version import __version__

# Where each public name lives.
_HOMES: dict[str, str] = {
    "BaycatError": "baycat.errors",
    "CredentialsError": "baycat.errors",
    "Encryption": "baycat.store.encryption",
    "ExitCode": "baycat.errors",
    "FileError": "baycat.ops.summary",
    "FilterSpec": "baycat.scan.filters",
    "GcSummary": "baycat.ops.gc",
    "History": "baycat.manifest.generations",
    "ManifestError": "baycat.errors",
    "ManifestSummary": "baycat.ops.manifest",
    "Notice": "baycat.progress",
    "OpCount": "baycat.ops.summary",
    "PriceTable": "baycat.ops.cost",
    "Problem": "baycat.ops.verify",
    "Progress": "baycat.progress",
    "RemoteError": "baycat.errors",
    "RepairOptions": "baycat.ops.repair",
    "RepairSummary": "baycat.ops.repair",
    "RestoreOptions": "baycat.ops.restore",
    "Rule": "baycat.scan.filters",
    "S3Options": "baycat.store.s3_options",
    "Secret": "baycat.store.encryption",
    "SyncOptions": "baycat.ops.backup",
    "SyncSummary": "baycat.ops.summary",
    "TransferConfig": "baycat.ops.transfer",
    "TreeCostEstimate": "baycat.ops.cost",
    "UsageError": "baycat.errors",
    "VerifyOptions": "baycat.ops.verify",
    "VerifySummary": "baycat.ops.verify",
    "__version__": "baycat.version",
    "estimate_cost": "baycat.api",
    "gc": "baycat.api",
    "gc_blocking": "baycat.api",
    "history": "baycat.api",
    "history_blocking": "baycat.api",
    "key_add": "baycat.api",
    "key_list": "baycat.api",
    "key_remove": "baycat.api",
    "load_prices": "baycat.ops.cost",
    "repair": "baycat.api",
    "repair_blocking": "baycat.api",
    "restore": "baycat.api",
    "restore_blocking": "baycat.api",
    "sync": "baycat.api",
    "sync_blocking": "baycat.api",
    "update_manifest": "baycat.api",
    "update_manifest_blocking": "baycat.api",
    "verify": "baycat.api",
    "verify_blocking": "baycat.api",
    "verify_local": "baycat.api",
    "verify_local_blocking": "baycat.api",
}

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
    "RepairOptions",
    "RepairSummary",
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
    "repair",
    "repair_blocking",
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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'baycat' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next lookup doesn't come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
