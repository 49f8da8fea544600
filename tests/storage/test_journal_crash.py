"""SIGKILL mid-write leaves a readable journal prefix with no torn record (extrema.storage.journal).

A forked child appends a deterministic stream of batches (small ones, a two-slot CANDLE event in every
fifth, a large batch now and then that spans segment rotations) to a journal with small segments; the
parent kills it with SIGKILL at a random moment, then reads the journal: it must be exactly a prefix of
the stream, end on an event boundary, and the next child must continue it after that prefix. Repeated
many times on the same journal, so reopening after a crash is tested as often as the crash itself.
"""
import os
import random
import signal
import time

import numpy as np
import pytest

from extrema import RECORD_DTYPE, RecordKind, with_continuations
from extrema._core.journal import check_events
from extrema.storage import JournalReader, JournalWriter, list_segments, read_header

SEGMENT_BYTES = 64 + 4096 * 64          # 4096 records per segment: rotations happen every few kills


STREAM_RECORDS = 1_000_000


def make_stream():
    """The whole stream and its batch boundaries. Batch i: 1..7 TRADE records; every 5th ends in a
    CANDLE + its continuation; every 200th is 1500 records (a long copy that crosses segments).
    sequence = the record's index in the stream. Built once before forking: the children share it."""
    i = np.arange(STREAM_RECORDS // 8)
    n = np.where(i % 200 == 199, 1500, i % 7 + 1)
    candle = i % 5 == 0
    sizes = n + candle
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    records = np.zeros(bounds[-1], dtype=RECORD_DTYPE)
    records["kind"] = RecordKind.TRADE
    records["ts_local"] = np.repeat(i, sizes)
    records["price"] = records["ts_local"] * 10_000 + np.arange(len(records)) - np.repeat(bounds[:-1], sizes)
    heads = bounds[:-1][candle] + n[candle] - 1
    records["kind"][heads] = RecordKind.CANDLE
    records["flags"][heads] = with_continuations(0, 1)
    records["kind"][heads + 1] = RecordKind.CONTINUATION
    records["flags"][heads + 1] = 1
    records["sequence"] = np.arange(len(records))
    check_events(records)
    return records, bounds


def child(directory, ready_fd, records, bounds):
    w = JournalWriter(directory, segment_bytes=SEGMENT_BYTES)
    start = w.total_records
    # resume the stream exactly where the journal stands (possibly inside a batch split by a rotation)
    i = int(np.searchsorted(bounds, start, side="right")) - 1      # bounds[i] <= start < bounds[i + 1]
    if start > bounds[i]:
        w.append(records[start:bounds[i + 1]])
        i += 1
    os.write(ready_fd, b"r")
    while i + 1 < len(bounds):
        w.append(records[bounds[i]:bounds[i + 1]])
        i += 1
    while True:                             # the stream is exhausted: wait for the kill
        time.sleep(1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigkill_leaves_clean_prefix(tmp_path):
    rng = random.Random(7)
    directory = tmp_path / "journal"
    kills = 60
    lengths = []
    records, bounds = make_stream()
    for _ in range(kills):
        r, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:                        # child: write until killed, never return into pytest
            try:
                os.close(r)
                child(directory, wfd, records, bounds)
            finally:
                os._exit(3)
        os.close(wfd)
        assert os.read(r, 1) == b"r", "the writer child died before it was ready"
        os.close(r)
        # let the child make progress first (on a loaded machine it may not run for a while), then kill it
        # at a random moment of its writing
        before = lengths[-1] if lengths else 0
        deadline = time.monotonic() + 30
        while len(JournalReader(directory)) <= before and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(rng.random() * 0.002)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "the child exited on its own"

        got = JournalReader(directory).read_all()
        assert len(got) >= (lengths[-1] if lengths else 0), "records that were committed disappeared"
        assert got.tobytes() == records[:len(got)].tobytes(), "the journal is not a prefix of what was written"
        check_events(got)                   # ends on an event boundary: no head without its payload
        lengths.append(len(got))
        # the killed segment is left unsealed; all earlier ones are sealed
        headers = [read_header(p) for p in list_segments(directory)]
        assert all(h["sealed"] for h in headers[:-1])
    # not vacuous: the journal grew across the kills, over several segments
    assert lengths[-1] > lengths[0] > 0
    assert len(list_segments(directory)) >= 3
    assert len(set(lengths)) == kills              # every child wrote something before its kill
    assert lengths[-1] < len(records), "the stream ran out: kills after it prove nothing"
    print(f"{kills} kills, journal {lengths[-1]} records of {len(records)}")


def test_torn_bytes_past_the_committed_count_are_ignored_and_overwritten(tmp_path):
    """Simulates a kill in the middle of a copy: garbage after the committed records is invisible to
    readers and a reopened writer overwrites it."""
    d = tmp_path / "j"
    w = JournalWriter(d, segment_bytes=SEGMENT_BYTES)
    records, _ = make_stream()
    first = records[:100]
    w.append(first)
    seg = w._seg
    # bytes of a half-copied record beyond the committed count, as a killed copy would leave them
    seg.map[64 + 100 * 64: 64 + 100 * 64 + 40] = b"\xff" * 40
    os.kill(os.getpid(), 0)                 # (no-op) the process "dies" here: drop the writer unclosed
    seg.writer.release()
    seg.map.close()
    seg.file.close()
    w._lock_file.close()
    np.testing.assert_array_equal(JournalReader(d).read_all(), first)
    w2 = JournalWriter(d, segment_bytes=SEGMENT_BYTES)
    more = records[100:150]
    w2.append(more)
    w2.close()
    np.testing.assert_array_equal(JournalReader(d).read_all(), records[:150])
