"""The recorder: wraps any engine source; records pass through to the engine unchanged and into a journal.

    engine = Engine(registry, sources=[Recorder(BinanceMarketData(...), "data/journal",
                                                raw_jsonl="data/binance_spot.jsonl")], ...)

Each batch the wrapped source emits is appended to the journal (one copy into the mapped segment, then
the publish; extrema.storage.journal) and then handed to the engine: a record is on file before anything
acts on it. With `raw_jsonl`, the exchange's own frames are written too, one JSON line each, in the
capture format CaptureSource replays (`{"dir": "recv", "ts": seconds, "raw": text}`, REST depth
snapshots as `{"dir": "http_response", "url", "ts", "raw"}`); this needs a source that hands its raw
frames to a sink (`raw_sink` attribute: BinanceMarketData). A replay source (with batches()) is
recorded the same way when iterated through Recorder.batches().
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from extrema._core.instruments import Market
from extrema.storage.instruments import write_instrument_table
from extrema.storage.journal import DEFAULT_SEGMENT_BYTES, JournalWriter

log = logging.getLogger("extrema.storage")


class RawFrameWriter:
    """Writes raw exchange frames as capture JSON lines. Call it as the source's raw sink:
    `writer(direction, payload, ts_local_us, url=None)`; payload is bytes / memoryview / str."""

    def __init__(self, path, *, market=None, flush_every: int = 256):
        self.path = Path(path)
        # Stamped on connect lines so a recording made against any URL (the simulator's 127.0.0.1 among
        # them) says which market it is; the captures from Binance itself are told apart by their URLs.
        self.market = None if market is None else Market(market).name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._flush_every = flush_every
        self._pending = 0
        self.frames = 0

    def __call__(self, direction, payload, ts_local, url=None):
        if self._file is None:
            return
        if not isinstance(payload, str):
            payload = bytes(payload).decode("utf-8", "replace")
        # µs exactly as a decimal number of seconds (the capture format's "ts")
        entry = {"dir": direction}
        if url is not None:
            entry["url"] = url
        if direction == "connect" and self.market is not None:
            entry["market"] = self.market
        line = json.dumps(entry)[:-1] + f', "ts": {ts_local // 1_000_000}.{ts_local % 1_000_000:06d}, "raw": ' \
            + json.dumps(payload) + "}\n"
        self._file.write(line)
        self.frames += 1
        self._pending += 1
        if self._pending >= self._flush_every:
            self._file.flush()
            self._pending = 0

    def flush(self):
        if self._file is not None:
            self._file.flush()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


class Recorder:
    """A source that records another one (see the module doc)."""

    def __init__(self, source, directory, *, raw_jsonl=None, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 registry=None):
        if not hasattr(source, "run") and not hasattr(source, "batches"):
            raise TypeError(f"Recorder wraps a source (async run(emit, subscriptions) or batches()), got {source!r}")
        self.source = source
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.raw = None
        if raw_jsonl is not None:
            if not hasattr(source, "raw_sink"):
                raise ValueError(f"raw_jsonl needs a source that hands its raw frames to a sink (a raw_sink "
                                 f"attribute, e.g. BinanceMarketData); {type(source).__name__} has none")
            self.raw = RawFrameWriter(raw_jsonl, market=getattr(source, "market", None))
        self.writer = None
        self.recorded = 0
        # Whose instrument ids the records carry: given, the engine's (bind_engine) or a replay source's.
        # Written beside the segments at the start and again at the end (instruments registered meanwhile).
        self.registry = registry if registry is not None else getattr(source, "registry", None)

    def _open(self):
        if self.writer is None:
            self.writer = JournalWriter(self.directory, segment_bytes=self.segment_bytes)
            self._write_instruments()
        if self.raw is not None:
            self.source.raw_sink = self.raw

    # ---- engine wiring: the wrapped source keeps its own behaviour ----------------------------------

    def bind_engine(self, engine):
        bind = getattr(self.source, "bind_engine", None)
        if bind is not None:
            bind(engine)
        if self.registry is None:
            self.registry = engine.registry

    def _write_instruments(self):
        if self.registry is not None:
            write_instrument_table(self.directory, self.registry)

    def subscriptions_changed(self, subscriptions):
        update = getattr(self.source, "subscriptions_changed", None)
        if update is not None:
            update(subscriptions)

    def __getattr__(self, name):
        # stats(), counters, session ... of the wrapped source
        if name == "source":
            raise AttributeError(name)
        return getattr(self.source, name)

    async def run(self, emit, subscriptions):
        self._open()
        append = self.writer.append

        def record_then_emit(records):
            append(records)
            self.recorded += len(records)
            emit(records)

        try:
            await self.source.run(record_then_emit, subscriptions)
        finally:
            self.close()

    def batches(self):
        self._open()
        try:
            for batch in self.source.batches():
                self.writer.append(batch)
                self.recorded += len(batch)
                yield batch
        finally:
            self.close()

    def flush(self):
        """msync the journal and flush the raw-frame file."""
        if self.writer is not None:
            self.writer.flush()
        if self.raw is not None:
            self.raw.flush()

    @property
    def stats(self):
        """What this recorder wrote (the wrapped source's own counters stay on the source)."""
        return {"journal": str(self.directory), "records": self.recorded,
                "raw_frames": None if self.raw is None else self.raw.frames,
                "raw_jsonl": None if self.raw is None else str(self.raw.path)}

    def close(self):
        if self.raw is not None and getattr(self.source, "raw_sink", None) is self.raw:
            self.source.raw_sink = None
        if self.raw is not None:
            self.raw.flush()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self._write_instruments()

    async def aclose(self):
        aclose = getattr(self.source, "aclose", None)
        if aclose is not None:
            await aclose()
        self.close()
