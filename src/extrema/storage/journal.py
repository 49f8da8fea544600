"""The journal: append-only, memory-mapped segment files of 64-byte records (extrema.RECORD_DTYPE).

A journal is a directory of segment files `seg-<index:08d>.exj`, each a 64-byte header followed by
records, byte for byte the ring slot / numpy row (records.pyx documents the layout and the multi-slot
kinds). Nothing is converted on the way in or out.

Segment header (64 bytes, little-endian; one record wide so records stay 64-byte aligned):

    offset  size  field
    0       8     magic            b"EXJRNL\\r\\n" (the CR LF catches text-mode mangling)
    8       2     version          1
    10      2     header_size      64
    12      4     record_size      64 (sizeof ex_record)
    16      8     created_us       wall time the segment was created (µs since the epoch, UTC)
    24      8     segment_index    0, 1, 2 ... (also in the file name)
    32      8     first_record     journal-wide index of the segment's first record
    40      8     capacity         records the file has room for
    48      8     committed        records published (complete); written LAST, after the records
    56      4     sealed           1 once the writer moved to the next segment or closed the journal
    60      4     reserved

Crash safety. The writer copies records into the mapped file and only then stores the new `committed`
count (one aligned 8-byte store). A process killed at any instant (SIGKILL included) leaves the
kernel's page cache holding every store it made, in program order, so `committed` never covers a
record that is not completely in place: a reader sees a clean prefix and no torn record. A batch is
published whole (one store) unless it spans a segment rotation, where it is published in pieces cut
between events: a multi-slot event is never cut off from its continuations.
Protection against power loss / kernel crashes is `flush()` (msync): call it at the rate your data is
worth. New segments are created under a temporary name, given their header, and renamed into place, so
a reader never finds a half-made segment.

One writer per directory (an advisory flock on `LOCK`, released by the kernel if the writer dies).
Reopening a journal validates the last segment and appends after its committed prefix (bytes past it,
left by a killed writer, are overwritten). Readers may read while a writer appends: they see what was
committed when they looked.

Throughput (benches/README.md, `python benches/journal_bench.py`): 2-6 M records/s in large batches
(first-touch page faults), < 1 µs per append call for the one-frame batches a live recorder makes.
"""
from __future__ import annotations

import fcntl
import logging
import mmap
import os
import re
import struct
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from extrema._core.journal import SegmentMap, check_events
from extrema._core.records import RECORD_DTYPE, RecordKind

log = logging.getLogger("extrema.storage")

MAGIC = b"EXJRNL\r\n"
VERSION = 1
HEADER_SIZE = 64
RECORD_SIZE = RECORD_DTYPE.itemsize
DEFAULT_SEGMENT_BYTES = 64 << 20
SEGMENT_SUFFIX = ".exj"
_SEGMENT_RE = re.compile(r"^seg-(\d{8})\.exj$")
_HEADER = struct.Struct("<8sHHIqQQQQII")
assert _HEADER.size == HEADER_SIZE and RECORD_SIZE == 64
_OFF_COMMITTED = 48
_OFF_SEALED = 56
_CONT = int(RecordKind.CONTINUATION)


class JournalError(Exception):
    """A journal directory or segment that cannot be used as it is (the message says why)."""


def segment_name(index: int) -> str:
    return f"seg-{index:08d}{SEGMENT_SUFFIX}"


def list_segments(directory) -> list[Path]:
    """The segment files of a journal directory, in order."""
    directory = Path(directory)
    found = []
    for p in directory.iterdir():
        m = _SEGMENT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    found.sort()
    return [p for _, p in found]


def read_header(path) -> dict:
    """A segment's header as a dict; raises JournalError when it is not a journal segment of this version."""
    with open(path, "rb") as f:
        raw = f.read(HEADER_SIZE)
        size = os.fstat(f.fileno()).st_size
    if len(raw) < HEADER_SIZE:
        raise JournalError(f"{path}: {len(raw)} bytes, shorter than a segment header ({HEADER_SIZE})")
    magic, version, hsize, rsize, created, index, first, capacity, committed, sealed, _ = _HEADER.unpack(raw)
    if magic != MAGIC:
        raise JournalError(f"{path}: not an extrema journal segment (magic {magic!r})")
    if version != VERSION or hsize != HEADER_SIZE:
        raise JournalError(f"{path}: journal format version {version} (header {hsize} bytes); "
                           f"this extrema reads version {VERSION}")
    if rsize != RECORD_SIZE:
        raise JournalError(f"{path}: records of {rsize} bytes; this build's records are {RECORD_SIZE}")
    in_file = (size - HEADER_SIZE) // RECORD_SIZE
    if committed > in_file:
        # Only a truncated copy can do this (the writer extends a file before publishing into it).
        log.warning("%s: header says %d records but the file holds %d; reading those", path, committed, in_file)
        committed = in_file
    return {"path": Path(path), "created_us": created, "segment_index": index, "first_record": first,
            "capacity": capacity, "committed": committed, "sealed": bool(sealed), "file_bytes": size}


class _Segment:
    """One mapped segment open for writing (the copy + publish step is compiled: _core/journal.pyx)."""

    __slots__ = ("path", "file", "map", "writer", "first_record", "index")

    def __init__(self, path: Path, fd_file, index: int, first_record: int, committed: int, capacity: int):
        self.path = path
        self.file = fd_file
        self.index = index
        self.first_record = first_record
        self.map = mmap.mmap(fd_file.fileno(), HEADER_SIZE + capacity * RECORD_SIZE)
        self.writer = SegmentMap(self.map, capacity, committed)

    @property
    def committed(self):
        return self.writer.committed

    def close(self, *, seal: bool):
        committed = self.writer.committed
        self.writer.release()
        if seal:
            struct.pack_into("<I", self.map, _OFF_SEALED, 1)
        self.map.flush()
        self.map.close()
        # Give back the unused preallocated tail so a closed journal takes the space its records take.
        self.file.truncate(HEADER_SIZE + committed * RECORD_SIZE)
        self.file.close()


class JournalWriter:
    """Appends RECORD_DTYPE batches to the journal in `directory` (created if needed). See the module doc.

    segment_bytes  size of one segment file (header included); a batch that does not fit is split at an
                   event boundary and continued in the next segment.
    """

    def __init__(self, directory, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES):
        if segment_bytes < HEADER_SIZE + 16 * RECORD_SIZE:
            raise ValueError(f"segment_bytes must hold a header and at least 16 records "
                             f"({HEADER_SIZE + 16 * RECORD_SIZE} bytes), got {segment_bytes}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_capacity = (segment_bytes - HEADER_SIZE) // RECORD_SIZE
        self._lock_file = open(self.directory / "LOCK", "a+b")
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise JournalError(f"{self.directory}: another JournalWriter has this journal open") from None
        self._seg: _Segment | None = None
        self.records_written = 0        # by this writer
        try:
            self._open_last()
        except BaseException:
            self._lock_file.close()
            raise

    # ---- opening -----------------------------------------------------------------------------------

    def _open_last(self):
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink()                # a segment whose creation was interrupted: never published
        segments = list_segments(self.directory)
        if not segments:
            self._new_segment(0, 0)
            return
        # Earlier segments must chain; the last one is continued.
        first = 0
        for path in segments[:-1]:
            h = read_header(path)
            if h["first_record"] != first:
                raise JournalError(f"{path}: first record {h['first_record']}, expected {first} "
                                   f"(a segment is missing or foreign)")
            first += h["committed"]
        h = read_header(segments[-1])
        if h["first_record"] != first:
            raise JournalError(f"{segments[-1]}: first record {h['first_record']}, expected {first}")
        committed = h["committed"]
        capacity = max(self.segment_capacity, committed)
        f = open(segments[-1], "r+b")
        want = HEADER_SIZE + capacity * RECORD_SIZE
        if os.fstat(f.fileno()).st_size < want:
            os.posix_fallocate(f.fileno(), 0, want)
        f.seek(40)
        f.write(struct.pack("<Q", capacity))
        f.seek(_OFF_SEALED)
        f.write(b"\0\0\0\0")
        f.flush()
        self._seg = _Segment(segments[-1], f, h["segment_index"], h["first_record"], committed, capacity)
        log.info("journal %s: continuing segment %d after %d records", self.directory, h["segment_index"],
                 first + committed)

    def _new_segment(self, index: int, first_record: int):
        path = self.directory / segment_name(index)
        if path.exists():
            raise JournalError(f"{path} already exists")
        tmp = path.with_suffix(".tmp")
        f = open(tmp, "w+b")
        # Allocate the blocks now: a write into a mapped hole on a full disk is a SIGBUS, and first-touch
        # faults on allocated blocks are ~3x cheaper than on holes (measured: 2.5 -> 6-10 M records/s).
        size = HEADER_SIZE + self.segment_capacity * RECORD_SIZE
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as exc:
            f.close()
            tmp.unlink()
            raise JournalError(f"{path}: cannot allocate {size} bytes for a new segment: {exc}") from exc
        f.write(_HEADER.pack(MAGIC, VERSION, HEADER_SIZE, RECORD_SIZE, time.time_ns() // 1000, index,
                             first_record, self.segment_capacity, 0, 0, 0))
        f.flush()
        os.rename(tmp, path)
        self._seg = _Segment(path, f, index, first_record, 0, self.segment_capacity)

    # ---- writing -----------------------------------------------------------------------------------

    @property
    def total_records(self) -> int:
        """Records in the journal (all segments, committed)."""
        seg = self._seg
        return seg.first_record + seg.committed

    def append(self, records) -> int:
        """Copy a batch into the journal and publish it; returns the number of records appended.
        Multi-slot events must be complete within the batch (ValueError otherwise, nothing written).
        A batch larger than the segment's room continues in the next segment (split between events)."""
        seg = self._seg
        if seg is None:
            raise JournalError("the journal writer is closed")
        done = seg.writer.append(records)
        n = len(records)
        while done < n:
            self._rotate()
            took = self._seg.writer.append(records, done)
            if took == 0:       # cannot happen: a fresh segment holds >= 16 slots, an event <= 16
                raise JournalError(f"an event of the batch does not fit an empty segment")
            done += took
        self.records_written += n
        return n

    def _rotate(self):
        seg = self._seg
        seg.close(seal=True)
        self._new_segment(seg.index + 1, seg.first_record + seg.committed)

    def flush(self):
        """msync the current segment: what was appended survives a power loss / kernel crash too."""
        if self._seg is not None:
            self._seg.map.flush()

    def close(self):
        """Seal the current segment, give back its unused space and release the directory."""
        if self._seg is None:
            return
        self._seg.close(seal=True)
        self._seg = None
        self._lock_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._seg is None else f"{self.total_records} records, segment {self._seg.index}"
        return f"<JournalWriter {self.directory} {state}>"


class JournalReader:
    """Iterates the committed records of a journal as RECORD_DTYPE batches (copies, safe to keep).

    batch_records  records per batch at most (a multi-slot event is never split across batches)
    Iterating again re-reads the directory: records appended meanwhile are included.
    """

    def __init__(self, directory, *, batch_records: int = 1 << 16):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise JournalError(f"{self.directory}: no such journal directory")
        if batch_records < 16:
            raise ValueError(f"batch_records must be >= 16, got {batch_records}")
        self.batch_records = batch_records

    def segments(self) -> list[dict]:
        """The headers of the segments (committed counts as of now), checked to chain."""
        headers = []
        first = 0
        for path in list_segments(self.directory):
            h = read_header(path)
            if h["first_record"] != first:
                raise JournalError(f"{path}: first record {h['first_record']}, expected {first} "
                                   f"(a segment is missing or foreign)")
            first += h["committed"]
            headers.append(h)
        return headers

    def __len__(self):
        return sum(h["committed"] for h in self.segments())

    def __iter__(self) -> Iterator[np.ndarray]:
        for h in self.segments():
            yield from self._segment_batches(h)

    def iter_segments(self) -> Iterator[tuple[dict, np.ndarray]]:
        """(header, all records of that segment) per segment."""
        for h in self.segments():
            yield h, self._read(h["path"], 0, h["committed"])

    def read_all(self) -> np.ndarray:
        parts = [recs for _, recs in self.iter_segments()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=RECORD_DTYPE)

    @staticmethod
    def _read(path, start, count) -> np.ndarray:
        with open(path, "rb") as f:
            out = np.fromfile(f, dtype=RECORD_DTYPE, count=count, offset=HEADER_SIZE + start * RECORD_SIZE)
        if len(out) != count:
            raise JournalError(f"{path}: expected {count} records from {start}, read {len(out)}")
        return out

    def _segment_batches(self, h) -> Iterator[np.ndarray]:
        total = h["committed"]
        pos = 0
        while pos < total:
            n = min(self.batch_records, total - pos)
            batch = self._read(h["path"], pos, n)
            if pos + n < total:
                # end the batch before a trailing event whose continuations fall in the next batch
                nxt = self._read(h["path"], pos + n, 1)
                if nxt["kind"][0] == _CONT:
                    starts = np.flatnonzero(batch["kind"] != _CONT)
                    n = int(starts[-1]) if len(starts) and starts[-1] > 0 else n
                    batch = batch[:n]
            yield batch
            pos += n
