"""Sources produce records into the engine's ring, from the engine thread's event loop.

A source is any object with `async def run(self, emit, subscriptions)`: it calls `emit(records)` with
RECORD_DTYPE arrays until it is done (return) or cancelled (engine stop). `subscriptions` is the
merged set of (instrument id, RecordKind) every strategy asked for, so a live adapter subscribes once
per stream however many strategies share it. Live adapters, the simulator feed and replay files
(later issues) are sources.
"""
from __future__ import annotations

import asyncio

import numpy as np

from extrema._core.records import RECORD_DTYPE


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

    async def run(self, emit, subscriptions):
        records = self.records
        if not self.realtime:
            for start in range(0, len(records), self.batch):
                emit(records[start:start + self.batch])
                self.emitted = min(start + self.batch, len(records))
                await asyncio.sleep(0)          # let the loop breathe: timers, commands, stop
            return
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        first_ts = int(records[0]["ts_exchange"]) if len(records) else 0
        for i in range(len(records)):
            due = t0 + (int(records[i]["ts_exchange"]) - first_ts) / 1e6 / self.speed
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            emit(records[i:i + 1])
            self.emitted = i + 1
