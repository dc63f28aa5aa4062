"""The local manifest of a tree: where it lives, and rewriting it only where it changed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from operator import itemgetter
from pathlib import Path

from baycat.entry import Entry
from baycat.manifest.file import DEFAULT_FILENAME, STATE_DIRNAME, ManifestReader, ManifestWriter
from baycat.manifest.rebuild import Output, StreamRebuilder, rebuild_with_changes, sorted_changes
from baycat.manifest.root import Root, SegmentRef
from baycat.private import mkdir_private
from baycat.scan.pipeline import ScanItem


def default_manifest_path(root: Path) -> Path:
    return root / STATE_DIRNAME.decode() / DEFAULT_FILENAME


def lock_path(manifest: Path) -> Path:
    """The lock that keeps a second baycat off the tree this manifest describes."""
    return manifest.with_name(manifest.name + ".lock")


def open_manifest(path: Path) -> ManifestReader | None:
    """The manifest at `path`, or None when there is none yet."""
    try:
        return ManifestReader(path)
    except FileNotFoundError:
        return None


def entries_of(reader: ManifestReader | None) -> Iterator[Entry]:
    return reader.entries() if reader is not None else iter(())


_old_of = itemgetter(2)  # ScanItem.old (by C code: it runs for every unchanged path)


class LocalManifestSink:
    """Takes the scan's items in order and writes the new manifest if anything changed.

    Until the first change, reused segments are only remembered; the new file is started
    at the first change, so a run that changes nothing writes nothing.
    """

    def __init__(self, path: Path, old: ManifestReader | None) -> None:
        self.path = path
        self._old = old
        self._old_refs: tuple[SegmentRef, ...] = old.root.segments if old else ()
        self._rebuilder = StreamRebuilder(self._old_refs)
        self._reused: list[SegmentRef] = []
        self._writer: ManifestWriter | None = None
        self.changed_entries = 0

    def add_items(self, items: list[ScanItem]) -> None:
        run_start = 0  # start of the current run of unchanged items
        for i, (_, entry, old, _) in enumerate(items):
            if entry is old and old is not None:  # unchanged: the common case, first
                continue
            item = items[i]
            if run_start < i:
                self._take(self._rebuilder.add_unchanged(
                    list(map(_old_of, items[run_start:i]))))
            run_start = i + 1
            if item.entry is None:
                if item.old is not None:
                    self.changed_entries += 1
                    self._take(self._rebuilder.removed(item.path))
            else:
                changed = item.entry != item.old
                self.changed_entries += changed
                self._take(self._rebuilder.add(item.entry, changed))
        if run_start < len(items):
            self._take(self._rebuilder.add_unchanged(list(map(_old_of, items[run_start:]))))

    def _start_writer(self) -> ManifestWriter:
        mkdir_private(self.path.parent, parents=True)
        writer = ManifestWriter(self.path)
        for ref in self._reused:
            self._copy(writer, ref)
        self._reused = []
        return writer

    def _copy(self, writer: ManifestWriter, ref: SegmentRef) -> None:
        assert self._old is not None
        writer.copy_segment(self._old, ref)

    def _take(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, SegmentRef):
                if self._writer is None:
                    self._reused.append(out)
                else:
                    self._copy(self._writer, out)
            else:
                if self._writer is None:
                    self._writer = self._start_writer()
                self._writer.add_entries(out)

    def finish(self, root: Root, force: bool = False) -> Root | None:
        """Commit the new manifest; None when nothing changed (and not `force`d)."""
        self._take(self._rebuilder.finish())
        if self._writer is None:
            if not force and tuple(self._reused) == self._old_refs and self._old is not None:
                return None
            self._writer = self._start_writer()
        return self._writer.commit(root)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


def record_changes(path: Path, old: ManifestReader | None,
                   changes: Mapping[bytes, Entry | None], root: Root) -> None:
    """Blocking: write the manifest at `path` as `old` with `changes` applied (path →
    new entry, None: removed), copying untouched segments as they are. Nothing is
    written when there is no change."""
    if not changes:
        return
    writer = ManifestWriter(path)
    try:
        refs = old.root.segments if old is not None else ()
        load = old.read_segment if old is not None else (lambda ref: [])
        for out in rebuild_with_changes(refs, load, sorted_changes(changes)):
            if isinstance(out, SegmentRef):
                assert old is not None
                writer.copy_segment(old, out)
            else:
                writer.add_entries(out)
        writer.commit(root)
    except BaseException:
        writer.abort()
        raise
