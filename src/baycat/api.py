"""The Python API: what the `baycat` command does, as typed functions.

Each operation is a coroutine, with a `*_blocking` twin that runs it in a fresh event
loop. Sync and restore return the `SyncSummary` that `--json` prints (the CLI calls these
same functions), so a script gets the same numbers either way::

    import baycat

    summary = baycat.sync_blocking("/srv/data", "s3://backups/host1/data/",
                                   baycat.SyncOptions(filters=baycat.FilterSpec(
                                       (baycat.Rule(include=False, pattern="*.tmp"),))))
    if summary.exit_code:
        for error in summary.errors:
            print(error.path, error.message)

Errors that stop a whole run raise `baycat.BaycatError` subclasses (each carries its
`exit_code`); per-file failures are listed in `summary.errors` instead.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from baycat.errors import UsageError
from baycat.progress import ActionFunc, NoticeFunc, Progress, ignore_notice
from baycat.store.s3_options import S3Options

# Each operation imports its own modules when it runs: the CLI imports this module for
# every command, and one command should load only the engine it uses (a local sync never
# loads restore, verify or browse; issue 18, tests/test_startup.py).
if TYPE_CHECKING:
    from baycat.manifest.generations import History
    from baycat.ops.backup import SyncOptions
    from baycat.ops.browse import DiffSummary, Listing
    from baycat.ops.cost import PriceTable, TreeCostEstimate
    from baycat.ops.forget import ForgetSummary, KeepPolicy
    from baycat.ops.gc import GcSummary
    from baycat.ops.manifest import ManifestSummary
    from baycat.ops.prune import PruneSummary
    from baycat.ops.repair import RepairOptions, RepairSummary
    from baycat.ops.restore import RestoreOptions
    from baycat.ops.summary import SyncSummary
    from baycat.ops.transfer import TransferConfig
    from baycat.ops.verify import VerifyOptions, VerifySummary
    from baycat.scan.filters import FilterSpec
    from baycat.store.base import ObjectStore
    from baycat.store.encryption import Encryption, Secret
    from baycat.store.endpoints import Endpoint
    from baycat.store.keyring import Keyring

T = TypeVar("T")
P = ParamSpec("P")
PathLike = str | os.PathLike[str]


async def _with_store(store: ObjectStore, work: Coroutine[Any, Any, T]) -> T:
    try:
        await store.open()
    except BaseException:
        work.close()
        raise
    try:
        return await work
    finally:
        await store.close()


def _open(endpoint: Endpoint, s3: S3Options, create: bool,
          encryption: Encryption | None, state_dir: Path | None = None) -> ObjectStore:
    """The store for `endpoint`, behind an EncryptedStore when a secret is given. With
    `state_dir`, the keys object is cached there (a no-change sync stays one request)."""
    from baycat.store.endpoints import open_store

    store = open_store(endpoint, s3, create=create)
    if encryption is None:
        return store
    from baycat.scan.statedir import keys_cache_path
    from baycat.store.encrypted import EncryptedStore  # cryptography loads only when used

    if state_dir is not None and encryption.cache is None:
        encryption = replace(encryption, cache=keys_cache_path(state_dir, store.url))
    return EncryptedStore(store, encryption if create else replace(encryption, create=False))


def _unlock_ahead(encryption: Encryption, state_dir: Path, endpoint: Endpoint
                  ) -> Encryption:
    """`encryption` with its key derivation started from the cached keys object, if
    the endpoint's store URL is known without making the store (S3, local)."""
    from baycat.scan.statedir import keys_cache_path
    from baycat.store.endpoints import store_url
    from baycat.store.unlock_ahead import start

    url = store_url(endpoint)
    return encryption if url is None else start(encryption, keys_cache_path(state_dir, url))


def _price(summary: SyncSummary, s3: S3Options, prices: PriceTable | None) -> SyncSummary:
    from baycat.ops.cost import PriceTable

    table = prices or PriceTable()
    summary.storage_class = s3.storage_class or "STANDARD"
    summary.price_table = table.name
    summary.request_cost_usd = table.request_cost(summary.requests, summary.storage_class)
    return summary


async def sync(
    source: PathLike,
    destination: str,
    options: SyncOptions | None = None,
    *,
    s3: S3Options | None = None,
    prices: PriceTable | None = None,
    progress: Progress | None = None,
    warn: NoticeFunc = ignore_notice,
    on_action: ActionFunc | None = None,
    encryption: Encryption | None = None,
) -> SyncSummary:
    """Back up the directory `source` to `destination` (`s3://bucket/prefix/`, a
    directory path or a `file://` URL), sending only what changed.

    `s3` says how to reach S3 (endpoint, region, profile, storage class, SSE); `prices`
    prices the requests in `summary.request_cost_usd` (default: S3 Standard list prices).
    `encryption`: the backup is (with `create`: becomes) encrypted (docs/encryption.md).
    """
    from baycat.ops.prepare import check_apart
    from baycat.store.endpoints import LocalEndpoint, parse_endpoint

    dst = parse_endpoint(destination)
    src_path = Path(source)
    s3 = s3 or S3Options()
    if isinstance(dst, LocalEndpoint):
        check_apart(src_path, dst.path)
    state = None
    if encryption is not None:
        from baycat.scan.statedir import choose_state_dir, sync_job
        from baycat.store.encryption import encrypted_url
        from baycat.store.endpoints import store_url

        # The keys cache lives with the rest of the job's state, where the sync keeps it
        # (SRC/.baycat, --state-dir, or the per-user directory for a read-only snapshot;
        # the job is the store's URL, the EncryptedStore's).
        url = store_url(dst)
        if url is not None:
            state = choose_state_dir(src_path, sync_job(encrypted_url(url)),
                                     options.state_dir if options else None,
                                     options.user_state_dir if options else None)
        if options is not None and options.dry_run:
            encryption = replace(encryption, dry_run=True)
        # Before the engine and the S3 stack load: the derivation runs beside that.
        if state is not None:
            encryption = _unlock_ahead(encryption, state, dst)
    from baycat.ops.backup import sync_to_store

    store = _open(dst, s3, True, encryption, state)
    summary = await _with_store(store, sync_to_store(
        src_path, store, options, progress=progress, warn=warn, on_action=on_action))
    return _price(summary, s3, prices)


async def restore(
    source: str,
    destination: PathLike,
    options: RestoreOptions | None = None,
    *,
    s3: S3Options | None = None,
    prices: PriceTable | None = None,
    progress: Progress | None = None,
    warn: NoticeFunc = ignore_notice,
    on_action: ActionFunc | None = None,
    encryption: Encryption | None = None,
) -> SyncSummary:
    """Restore the backup at `source` (`s3://...`, a directory or `file://` URL) into the
    directory `destination`, fetching only files that differ."""
    from baycat.ops.prepare import check_apart
    from baycat.ops.restore import restore_from_store
    from baycat.store.endpoints import LocalEndpoint, parse_endpoint

    src = parse_endpoint(source)
    dest = Path(destination)
    s3 = s3 or S3Options()
    if isinstance(src, LocalEndpoint):
        check_apart(src.path, dest)
    store = _open(src, s3, False, encryption)
    summary = await _with_store(store, restore_from_store(
        store, dest, options, progress=progress, warn=warn, on_action=on_action))
    return _price(summary, s3, prices)


async def update_manifest(
    directory: PathLike,
    *,
    create: bool = False,
    manifest: PathLike | None = None,
    pool_size: int | None = None,
    filters: FilterSpec | None = None,
    progress: Progress | None = None,
    warn: NoticeFunc = ignore_notice,
    state_dir: PathLike | None = None,
    user_state_dir: PathLike | None = None,
) -> ManifestSummary:
    """Refresh (or with `create`, rebuild from scratch) the local manifest of `directory`,
    hashing only files whose stat changed. `filters` None: those recorded in it.
    `manifest` None: DIR/.baycat/manifest, or below `state_dir` when given, or below
    `user_state_dir` (default ~/.local/state/baycat) when DIR can't hold it."""
    from baycat.ops.manifest import build_manifest

    return await build_manifest(Path(directory), manifest=Path(manifest) if manifest else None,
                                create=create, pool_size=pool_size, progress=progress,
                                warn=warn, filters=filters,
                                state_dir=Path(state_dir) if state_dir else None,
                                user_state_dir=Path(user_state_dir) if user_state_dir else None)


def estimate_cost(
    directory: PathLike,
    *,
    manifest: PathLike | None = None,
    storage_class: str = "STANDARD",
    syncs_per_month: int = 30,
    change_rate: float = 0.01,
    prices: PriceTable | None = None,
    transfer: TransferConfig | None = None,
) -> TreeCostEstimate:
    """Blocking: the monthly storage and request cost of backing up the tree that
    `directory`'s manifest describes (see cost.estimate_tree)."""
    from baycat.entry import FILE
    from baycat.manifest.file import ManifestReader
    from baycat.ops.cost import PriceTable, estimate_tree
    from baycat.ops.transfer import TransferConfig
    from baycat.scan.local_manifest import default_manifest_path

    path = Path(manifest) if manifest else default_manifest_path(Path(directory))
    transfer = transfer or TransferConfig()
    try:
        reader = ManifestReader(path)
    except FileNotFoundError:
        raise UsageError(f"no manifest at {path} (run `baycat manifest create "
                         f"{directory}` first)") from None
    files = total = requests = 0
    with reader:
        for entry in reader.entries():
            if entry.kind != FILE or entry.deleted_ns:
                continue
            files += 1
            total += entry.size
            part = transfer.upload_part_size(entry.size)
            # One PUT, or create + the parts + complete.
            requests += 1 if part is None else 2 + -(-entry.size // part)
    return estimate_tree(files, total, requests, table=prices or PriceTable(),
                         storage_class=storage_class, syncs_per_month=syncs_per_month,
                         change_rate=change_rate)


def _blocking(coro_fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """The blocking twin of an API coroutine: same arguments, run in a fresh event loop
    (for code that isn't async; not from inside a running loop)."""

    @functools.wraps(coro_fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return asyncio.run(coro_fn(*args, **kwargs))

    run.__doc__ = f"Blocking `{coro_fn.__name__}`: {coro_fn.__doc__}"
    return run


sync_blocking = _blocking(sync)
restore_blocking = _blocking(restore)
update_manifest_blocking = _blocking(update_manifest)


# ---- verify, history, ls, diff --------------------------------------------------------------


async def verify(
    source: str,
    options: VerifyOptions | None = None,
    *,
    s3: S3Options | None = None,
    prices: PriceTable | None = None,
    progress: Progress | None = None,
    encryption: Encryption | None = None,
) -> VerifySummary:
    """Check that the backup at `source` (`s3://...`, a directory, `file://` or
    `http(s)://` URL) holds every object its manifest lists, intact: sizes and ETags from
    one listing, and with `options.deep_percent` a download and re-hash of that share."""
    from baycat.ops.cost import PriceTable
    from baycat.ops.verify import verify_store
    from baycat.store.endpoints import parse_endpoint

    s3 = s3 or S3Options()
    store = _open(parse_endpoint(source), s3, False, encryption)
    summary = await _with_store(store, verify_store(store, options, progress=progress))
    table = prices or PriceTable()
    summary.price_table = table.name
    summary.request_cost_usd = table.request_cost(summary.requests, summary.storage_class)
    return summary


async def verify_local(
    directory: PathLike,
    *,
    pool_size: int | None = None,
    progress: Progress | None = None,
    warn: NoticeFunc = ignore_notice,
    manifest: PathLike | None = None,
    state_dir: PathLike | None = None,
    user_state_dir: PathLike | None = None,
) -> VerifySummary:
    """Compare the tree `directory` with its local manifest (what changed since the last
    sync); no network, nothing written. The manifest: `manifest`, else DIR/.baycat's,
    else one in the per-user state directory (`state_dir`, `user_state_dir`) that
    describes DIR."""
    from baycat.ops.verify import verify_tree

    return await verify_tree(Path(directory), pool_size=pool_size, progress=progress,
                             warn=warn, manifest=Path(manifest) if manifest else None,
                             state_dir=Path(state_dir) if state_dir else None,
                             user_state_dir=Path(user_state_dir) if user_state_dir else None)


async def history(source: str, *, s3: S3Options | None = None,
                  encryption: Encryption | None = None) -> History:
    """The generations (commits) the backup at `source` keeps, newest first."""
    from baycat.manifest.generations import history as read_history
    from baycat.store.endpoints import parse_endpoint

    store = _open(parse_endpoint(source), s3 or S3Options(), False, encryption)
    return await _with_store(store, read_history(store))


async def gc(destination: str, *, grace_s: float | None = None, dry_run: bool = False,
             s3: S3Options | None = None, encryption: Encryption | None = None
             ) -> GcSummary:
    """Delete the manifest packs of the backup at `destination` that no kept generation
    needs and that are older than `grace_s` (None: DEFAULT_GRACE_S, a day; see
    baycat.gc)."""
    from baycat.ops.gc import DEFAULT_GRACE_S, collect
    from baycat.store.endpoints import parse_endpoint

    grace_s = DEFAULT_GRACE_S if grace_s is None else grace_s
    store = _open(parse_endpoint(destination), s3 or S3Options(), False, encryption)
    return await _with_store(store, collect(store, grace_s=grace_s, dry_run=dry_run))


async def ls(source: str, path: str = "", *, at_ns: int | None = None,
             recursive: bool = False, include_deleted: bool = False,
             s3: S3Options | None = None, encryption: Encryption | None = None) -> Listing:
    """The entries of the backup at `source` at `path` (a directory's children, or
    with `recursive` all below it) as of the latest generation or `at_ns`; reads the
    manifest only."""
    from baycat.ops.browse import list_backup
    from baycat.store.endpoints import parse_endpoint

    store = _open(parse_endpoint(source), s3 or S3Options(), False, encryption)
    return await _with_store(store, list_backup(store, path, at_ns=at_ns,
                                                recursive=recursive,
                                                include_deleted=include_deleted))


async def diff(source: str, at: tuple[int, ...] = (), *, directory: PathLike | None = None,
               s3: S3Options | None = None, pool_size: int | None = None,
               progress: Progress | None = None, warn: NoticeFunc = ignore_notice,
               encryption: Encryption | None = None) -> DiffSummary:
    """What changed in the backup at `source` between two generations (`at`: none,
    the one before the latest and the latest; one time, it and the latest; two, those),
    or with `directory` between a generation (the latest, or `at[0]`'s) and that tree
    now. Reads the manifest only; nothing is written."""
    from baycat.ops.browse import diff_generations, diff_tree
    from baycat.store.endpoints import parse_endpoint

    if directory is not None and len(at) > 1:
        raise UsageError("diff with a directory compares one generation: give --at once")
    store = _open(parse_endpoint(source), s3 or S3Options(), False, encryption)
    if directory is None:
        return await _with_store(store, diff_generations(store, at))
    return await _with_store(store, diff_tree(store, Path(directory),
                                              at_ns=at[0] if at else None,
                                              pool_size=pool_size, progress=progress,
                                              warn=warn))


async def repair(source: PathLike, destination: str, options: RepairOptions | None = None,
                 *, s3: S3Options | None = None, progress: Progress | None = None,
                 encryption: Encryption | None = None) -> RepairSummary:
    """Re-upload from the directory `source` (or copy from another object with the same
    content) every object of the backup at `destination` that verify finds missing or
    damaged (see baycat.ops.repair)."""
    from baycat.ops.prepare import check_apart
    from baycat.ops.repair import repair_store
    from baycat.store.endpoints import LocalEndpoint, parse_endpoint

    dst = parse_endpoint(destination)
    if isinstance(dst, LocalEndpoint):
        check_apart(Path(source), dst.path)
    store = _open(dst, s3 or S3Options(), False, encryption)
    return await _with_store(store, repair_store(Path(source), store, options,
                                                 progress=progress))


async def forget(destination: str, policy: KeepPolicy, *, dry_run: bool = False,
                 prune: bool = False, grace_s: float | None = None,
                 s3: S3Options | None = None, encryption: Encryption | None = None
                 ) -> ForgetSummary:
    """Drop the generations of the backup at `destination` that `policy` does not keep
    (restic's rules; see baycat.ops.forget); with `prune`, then delete what no kept
    generation needs (older than `grace_s`; None: DEFAULT_GRACE_S, a day)."""
    from baycat.ops.forget import forget as forget_generations
    from baycat.ops.gc import DEFAULT_GRACE_S
    from baycat.ops.prune import prune as prune_store
    from baycat.store.endpoints import parse_endpoint

    grace = DEFAULT_GRACE_S if grace_s is None else grace_s
    store = _open(parse_endpoint(destination), s3 or S3Options(), False, encryption)

    async def work() -> ForgetSummary:
        summary = await forget_generations(store, policy, dry_run=dry_run)
        if prune:
            summary.prune = await prune_store(store, grace_s=grace, dry_run=dry_run)
        summary.requests = dict(store.requests)
        return summary

    return await _with_store(store, work())


async def prune(destination: str, *, grace_s: float | None = None, dry_run: bool = False,
                s3: S3Options | None = None, encryption: Encryption | None = None
                ) -> PruneSummary:
    """Delete what no kept generation and no current entry of the backup at
    `destination` needs, older than `grace_s` (None: DEFAULT_GRACE_S, a day; see
    baycat.ops.prune)."""
    from baycat.ops.gc import DEFAULT_GRACE_S
    from baycat.ops.prune import prune as prune_store
    from baycat.store.endpoints import parse_endpoint

    grace_s = DEFAULT_GRACE_S if grace_s is None else grace_s
    store = _open(parse_endpoint(destination), s3 or S3Options(), False, encryption)
    return await _with_store(store, prune_store(store, grace_s=grace_s, dry_run=dry_run))


verify_blocking = _blocking(verify)
verify_local_blocking = _blocking(verify_local)
history_blocking = _blocking(history)
gc_blocking = _blocking(gc)
ls_blocking = _blocking(ls)
diff_blocking = _blocking(diff)
repair_blocking = _blocking(repair)
forget_blocking = _blocking(forget)
prune_blocking = _blocking(prune)


# ---- the keys of an encrypted backup ---------------------------------------------------


async def _with_keys(destination: str, encryption: Encryption, s3: S3Options | None,
                     change: Callable[[Keyring, bytes, str], Keyring] | None
                     ) -> list[dict[str, str]]:
    from baycat.store.encrypted import EncryptedStore
    from baycat.store.endpoints import open_store, parse_endpoint

    store = EncryptedStore(open_store(parse_endpoint(destination), s3 or S3Options(),
                                      create=False), replace(encryption, create=False))
    await store.open()
    try:
        await store.ready()
        assert store.keyring is not None
        if change is not None:
            master, _ = store.keyring.unlock(encryption.secret)
            await store.save_keyring(change(store.keyring, master, store.slot_id))
        assert store.keyring is not None
        return [{**slot, "current": "yes" if slot["id"] == store.slot_id else ""}
                for slot in store.keyring.describe()]
    finally:
        await store.close()


async def key_list(destination: str, encryption: Encryption, *,
                   s3: S3Options | None = None) -> list[dict[str, str]]:
    """The key slots of the encrypted backup at `destination` (id, kind, created);
    `encryption` must open one of them."""
    return await _with_keys(destination, encryption, s3, None)


async def key_add(destination: str, encryption: Encryption, new: Secret, *,
                  s3: S3Options | None = None) -> list[dict[str, str]]:
    """Add a slot for the password or key file `new`: the data is not re-encrypted."""
    n = encryption.scrypt_n
    return await _with_keys(destination, encryption, s3,
                            lambda ring, master, _: ring.add(master, new) if n is None
                            else ring.add(master, new, n))


async def key_remove(destination: str, encryption: Encryption, slot_id: str, *,
                     s3: S3Options | None = None) -> list[dict[str, str]]:
    """Remove a key slot (never the last one). Whoever kept the old keys object and that
    slot's password can still open the backup: see docs/encryption.md."""
    return await _with_keys(destination, encryption, s3,
                            lambda ring, master, current: ring.remove(slot_id))
