"""Sources produce records into the engine's ring, from the engine thread's event loop.

A source is any object with `async def run(self, emit, subscriptions)`: it calls `emit(records)` with
RECORD_DTYPE arrays until it is done (return) or cancelled (engine stop). `subscriptions` is the
merged set of (instrument id, RecordKind) every strategy asked for, so a live adapter subscribes once
per stream however many strategies share it. Live adapters, the simulator feed and replay files
(later issues) are sources.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np

from extrema._core.records import RECORD_DTYPE


_CONTINUATION = 15     # RecordKind.CONTINUATION: its ts fields hold payload words, not times


def event_times(records, field="ts_local"):
    """The `field` timestamp of every record, continuation slots taking their head's (their 56 bytes
    after the first 8 are payload words, not times)."""
    ts = records[field]
    cont = records["kind"] == _CONTINUATION
    if not cont.any():
        return ts
    idx = np.arange(len(records))
    idx[cont] = 0
    np.maximum.accumulate(idx, out=idx)
    return ts[idx]


async def replay(batches, emit, *, realtime=False, speed=1.0, time_field="ts_local", on_batch=None):
    """Emit RECORD_DTYPE batches: as fast as possible (yielding to the loop between batches), or paced
    by `time_field` at `speed` x real time when realtime=True (the first record sets the origin; records
    sharing a timestamp go out together; a multi-slot event is never split). `on_batch(batch)` is
    called after each batch is emitted (progress). The one pacing implementation of every source."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if not realtime:
        for batch in batches:
            if len(batch):
                emit(batch)
                if on_batch is not None:
                    on_batch(batch)
            await asyncio.sleep(0)          # let the loop breathe: timers, commands, stop
        return
    loop = asyncio.get_running_loop()
    origin = None
    scale = 1.0 / (1e6 * speed)
    for batch in batches:
        for t, piece in _time_slices(batch, time_field):
            if origin is None:
                origin = (loop.time(), t)
            delay = origin[0] + (t - origin[1]) * scale - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            emit(piece)
        if len(batch) and on_batch is not None:
            on_batch(batch)
        await asyncio.sleep(0)


def paced(batches, *, speed=1.0, time_field="ts_local"):
    """The batches again, each cut where its timestamp changes and released when `speed` x real time
    reaches it: the same pacing as replay(), for callers without an event loop (Backtest(realtime=True)
    runs in the caller's thread)."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    origin = None
    scale = 1.0 / (1e6 * speed)
    for batch in batches:
        for t, piece in _time_slices(batch, time_field):
            if origin is None:
                origin = (time.monotonic(), t)
            delay = origin[0] + (t - origin[1]) * scale - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield piece


def _time_slices(batch, time_field):
    """(time, records) pieces of one batch: records sharing a timestamp together; a continuation has its
    head's time, so a multi-slot event is never cut."""
    if not len(batch):
        return
    ts = event_times(batch, time_field)
    cuts = np.flatnonzero(ts[1:] != ts[:-1]) + 1
    start = 0
    for stop in (*cuts.tolist(), len(batch)):
        yield int(ts[start]), batch[start:stop]
        start = stop


class RecordSource:
    """Replays an in-memory RECORD_DTYPE array: in batches as fast as possible, or paced by its
    ts_exchange timestamps (`speed` x real time) when realtime=True."""

    def __init__(self, records, *, batch=1024, realtime=False, speed=1.0):
        if not isinstance(records, np.ndarray) or records.dtype != RECORD_DTYPE:
            raise TypeError("RecordSource takes a numpy array of extrema.RECORD_DTYPE")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.records = records
        self.batch = batch
        self.realtime = realtime
        self.speed = speed
        self.emitted = 0

    def batches(self):
        records = self.records
        starts = records["kind"] != _CONTINUATION
        start = 0
        while start < len(records):
            stop = min(start + self.batch, len(records))
            while stop < len(records) and not starts[stop]:
                stop += 1                    # keep a multi-slot event whole
            yield records[start:stop]
            start = stop

    async def run(self, emit, subscriptions):
        def count(batch):
            self.emitted += len(batch)
        self.emitted = 0
        await replay(self.batches(), emit, realtime=self.realtime, speed=self.speed, time_field="ts_exchange",
                     on_batch=count)
