"""Replay sources: recorded market data as RECORD_DTYPE batches for backtests and paced replays.

Every source here has the same interface:

    batches()                 -> iterator of RECORD_DTYPE arrays, records in nondecreasing ts_local (the
                                 moment the frame / row arrived; = ts_exchange when the data has one
                                 timestamp); a multi-slot event is never split across batches. Each call
                                 starts again from the beginning of the data.
    await run(emit, subs)     the engine source protocol (engine/sources.py): as fast as possible, or
                                 paced by ts_local at `speed` x real time with realtime=True.
    stats                     {"records": emitted, "dropped": {reason: count}, ...} of the last pass.

Constructor keywords common to all: realtime=False, speed=1.0, progress=False (True: a progress line on
stderr; or a callable(records_done, ts_local_us, fraction_or_None)), batch_records (records per batch,
default 65536).

Instruments must be registered in the InstrumentRegistry before a source reads data that names them;
rows / frames / records of unknown instruments are counted, logged drops (never an error that stops the
replay). Bad lines are counted and logged with their line number, at most `LOG_LINES_PER_REASON` lines
per reason, then one summary line at the end of the pass.

Ordering: some data comes out of time order by construction (a depth snapshot releases diffs buffered
before it arrived; a recording of several sources interleaves their clocks). Sources keep ts_local
nondecreasing by stamping such records with the time they became usable (the running maximum): what a
live engine would have seen. They are counted in stats["restamped"].

Sources:
    CaptureSource      the exchanges' own frames as captured (Binance combined-stream JSONL with REST
                       depth snapshots: `{"dir": "recv" | "http_response" | "connect", "ts": seconds,
                       "raw": wire text, "url": ...}`), decoded by the compiled BinanceDecoder and
                       synchronised by DepthSync, as live.
    EventJsonlSource   one simple market event per line (format below).
    TardisSource       tardis.dev `incremental_book_L2` and `trades` CSV files (plain or .gz).
    JournalSource      an extrema journal directory (extrema.storage).
    ArraySource        an in-memory RECORD_DTYPE array.
    merge(*sources)    k-way merge of several sources by ts_local (ties: argument order).
    open_source(spec, registry, **kw) picks the class from the file (suffix / first line / header).

EventJsonlSource format (one JSON object per line, blank lines and lines starting with # ignored):

    common   "type"        "trade" | "quote" | "book" | "reset"
             "instrument"  normalised name, e.g. "BTC_USDT_PERP"
             "market"      optional Market name ("BINANCE_USDM"); needed only when the name is
                           registered on several markets
             "ts"          exchange time, integer µs since the epoch (UTC)
             "ts_local"    optional receive time, integer µs (default: ts)
             "sequence"    optional integer (trade id / update id), default 0
    trade    "price", "size" (decimal strings or JSON numbers, exact at the instrument's precision,
             size > 0), "side": the aggressor, "buy" | "sell" (optional: unknown)
    quote    "bid", "bid_size", "ask", "ask_size"
    book     "bids", "asks": lists of [price, size] level changes (size 0 deletes the level), at least
             one level in all; "snapshot": true when the lists are the whole book (default false)
    reset    the book is void until the next snapshot

Anything else (unknown type, missing / mistyped field, more decimals than the instrument's precision,
negative size, NaN, non-integer timestamps, unknown instrument) drops the line with its reason.
"""
from __future__ import annotations

import csv
import gzip
import heapq
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from extrema._core.binance import BinanceDecoder, DepthSync, SyncStatus
from extrema._core.fixedpoint import parse_decimal
from extrema._core.instruments import Market, UnknownInstrumentError
from extrema._core.journal import check_events
from extrema._core.records import RECORD_DTYPE, RecordFlag, RecordKind, ResetReason
from extrema.engine.sources import event_times, replay

log = logging.getLogger("extrema.backtest.sources")

LOG_LINES_PER_REASON = 5
DEFAULT_BATCH = 1 << 16
_CONT = int(RecordKind.CONTINUATION)
_ASK = int(RecordFlag.ASK)
_LAST = int(RecordFlag.LAST)
_SNAPSHOT = int(RecordFlag.SNAPSHOT)
_UNKNOWN_AGGRESSOR = int(RecordFlag.AGGRESSOR_UNKNOWN)
_EMPTY = np.zeros(0, dtype=RECORD_DTYPE)


# ------------------------------------------------------------------------------------------ progress

class Progress:
    """A one-line progress report on stderr, rewritten at most every `interval` seconds:
    records, data time reached, records/s, and the percentage when the source knows its size."""

    def __init__(self, label="replay", *, stream=None, interval=0.5):
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = interval
        self._t0 = time.monotonic()
        self._last = 0.0
        self._shown = False

    def __call__(self, done, ts_us, fraction=None):
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        self._write(done, ts_us, fraction, now)

    def _write(self, done, ts_us, fraction, now):
        rate = done / max(now - self._t0, 1e-9)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts_us / 1e6)) if ts_us else "-"
        pct = f" {fraction * 100:5.1f}%" if fraction is not None else ""
        self.stream.write(f"\r{self.label}:{pct} {done:,} records, data time {when} UTC, {rate:,.0f} records/s ")
        self.stream.flush()
        self._shown = True

    def close(self, done, ts_us):
        self._write(done, ts_us, 1.0, time.monotonic())
        self.stream.write("\n")
        self.stream.flush()


def _progress_callback(progress, label):
    if not progress:
        return None
    if progress is True:
        return Progress(label)
    if callable(progress):
        return progress
    raise TypeError(f"progress is True, False or a callable(done, ts_us, fraction), got {progress!r}")


# ----------------------------------------------------------------------------------------- helpers

def _open_text(path: Path):
    """A text file, gunzipped when its name ends in .gz."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _event_heads(records) -> np.ndarray:
    """Index of each record's event head (itself for single-slot records)."""
    idx = np.arange(len(records))
    cont = records["kind"] == _CONT
    if cont.any():
        idx[cont] = 0
        np.maximum.accumulate(idx, out=idx)
    return idx


def _event_cut(records, limit) -> int:
    """The largest cut <= limit that does not split a multi-slot event."""
    if limit >= len(records):
        return len(records)
    kinds = records["kind"]
    while limit > 0 and kinds[limit] == _CONT:
        limit -= 1
    return limit


class _Batcher:
    """Collects record arrays and hands out batches of about `size` records, ts_local kept nondecreasing
    (records released late get the running maximum, counted in `restamped`)."""

    def __init__(self, size):
        self.size = size
        self.parts = []
        self.count = 0
        self.clock = None           # running maximum of ts_local
        self.restamped = 0

    def add(self, records):
        n = len(records)
        if n == 0:
            return
        if n == 1 and records["kind"][0] != _CONT:
            ts = int(records["ts_local"][0])
            if self.clock is not None and ts < self.clock:
                records = records.copy()
                records["ts_local"][0] = self.clock
                self.restamped += 1
            else:
                self.clock = ts
        else:
            records = self._monotone(records)
        self.parts.append(records)
        self.count += n

    def _monotone(self, records):
        heads = records["kind"] != _CONT
        ts = records["ts_local"][heads]
        floor = np.maximum.accumulate(ts)
        if self.clock is not None:
            np.maximum(floor, self.clock, out=floor)
        changed = floor != ts
        if changed.any():
            records = records.copy()
            records["ts_local"][heads] = floor
            self.restamped += int(changed.sum())
        self.clock = int(floor[-1])
        return records

    def full(self):
        return self.count >= self.size

    def take(self):
        if not self.parts:
            return _EMPTY
        out = self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)
        if out.base is not None or not out.flags.owndata:
            out = out.copy()            # never hand out a view of a caller's (reused) buffer
        self.parts = []
        self.count = 0
        return out


# -------------------------------------------------------------------------------------- base class

class ReplaySource:
    """The common part of every replay source: stats, drops, batching, pacing (see the module doc)."""

    label = "replay"

    def __init__(self, registry=None, *, realtime=False, speed=1.0, progress=False, batch_records=DEFAULT_BATCH):
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        if batch_records < 16:
            raise ValueError(f"batch_records must be >= 16, got {batch_records}")
        self.registry = registry
        self.realtime = bool(realtime)
        self.speed = float(speed)
        self.progress = progress
        self.batch_records = int(batch_records)
        self.stats = self._fresh_stats()
        self._logged = {}

    def _fresh_stats(self):
        return {"records": 0, "batches": 0, "dropped": {}, "restamped": 0}

    # ---- drops -----------------------------------------------------------------------------------

    def _drop(self, reason, detail="", line=None, count=1):
        dropped = self.stats["dropped"]
        dropped[reason] = dropped.get(reason, 0) + count
        n = self._logged.get(reason, 0)
        if n < LOG_LINES_PER_REASON:
            self._logged[reason] = n + 1
            log.warning("%s: dropped (%s) %s", self._drop_where(line), reason, detail)

    def _drop_where(self, line):
        return f"{self._where()}:{line}" if line is not None else self._where()

    def _where(self):
        return self.label

    def _summarise(self):
        dropped = self.stats["dropped"]
        if dropped:
            log.warning("%s: %d records / lines dropped: %s", self._where(), sum(dropped.values()),
                        ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())))

    # ---- the interface ---------------------------------------------------------------------------

    def batches(self) -> Iterator[np.ndarray]:
        """RECORD_DTYPE batches in nondecreasing ts_local (see the module doc); restarts the data."""
        self.stats = self._fresh_stats()
        self._logged = {}
        batcher = _Batcher(self.batch_records)
        report = _progress_callback(self.progress, self.label)
        for chunk in self._generate():
            batcher.add(chunk)
            if batcher.full():
                yield self._out(batcher, report)
        if batcher.count:
            yield self._out(batcher, report)
        self.stats["restamped"] = batcher.restamped
        self._finish()
        self._summarise()
        if isinstance(report, Progress):
            report.close(self.stats["records"], batcher.clock or 0)

    def _out(self, batcher, report):
        out = batcher.take()
        self.stats["records"] += len(out)
        self.stats["batches"] += 1
        if report is not None:
            report(self.stats["records"], int(batcher.clock or 0), self._fraction())
        return out

    def _generate(self) -> Iterator[np.ndarray]:
        """Record arrays in the data's order (the batcher makes ts_local nondecreasing)."""
        raise TypeError(f"{type(self).__name__} does not produce records")

    def _finish(self):
        """End-of-data accounting (e.g. diffs still waiting for a snapshot)."""

    def _fraction(self) -> Optional[float]:
        return None

    async def run(self, emit, subscriptions):
        """Engine source protocol: every record of the data (the engine's router delivers to strategies
        only what they subscribed to), paced by ts_local when realtime=True."""
        await replay(self.batches(), emit, realtime=self.realtime, speed=self.speed, time_field="ts_local")

    def __iter__(self):
        return self.batches()

    # ---- instruments -----------------------------------------------------------------------------

    def _instrument(self, name, market=None):
        """The registered instrument called `name` (normalised name; on `market` when given)."""
        if self.registry is None:
            raise UnknownInstrumentError(f"{type(self).__name__} needs a registry to resolve {name!r}")
        return self.registry.find(name, market)


class _FileSource(ReplaySource):
    """A source reading one file, with byte progress."""

    def __init__(self, path, registry=None, **kw):
        super().__init__(registry, **kw)
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        self._size = self.path.stat().st_size
        self._pos = 0

    def _where(self):
        return str(self.path)

    def _fraction(self):
        return min(self._pos / self._size, 1.0) if self._size else None


# ------------------------------------------------------------------------------------ ArraySource

class ArraySource(ReplaySource):
    """An in-memory RECORD_DTYPE array. Records out of ts_local order are sorted (stably, multi-slot
    events kept whole) unless sort=False, in which case they are restamped like any late record."""

    label = "array"

    def __init__(self, records, registry=None, *, sort=True, **kw):
        super().__init__(registry, **kw)
        if not isinstance(records, np.ndarray) or records.dtype != RECORD_DTYPE:
            raise TypeError("ArraySource takes a numpy array of extrema.RECORD_DTYPE")
        records = check_events(records)
        if sort and len(records):
            ts = event_times(records, "ts_local")
            if (np.diff(ts) < 0).any():
                records = records[np.argsort(ts, kind="stable")]   # a continuation shares its head's key
        self.records = records

    def _generate(self):
        records, size = self.records, self.batch_records
        start = 0
        while start < len(records):
            stop = start + _event_cut(records[start:], size)
            self._pos = stop
            yield records[start:stop]
            start = stop

    def _fraction(self):
        return self._pos / len(self.records) if len(self.records) else None


# ---------------------------------------------------------------------------------- JournalSource

class JournalSource(ReplaySource):
    """An extrema journal (extrema.storage). With a registry, records of instrument ids it does not
    know are dropped (whole events; account records with instrument 0 are kept), and the registry must
    agree with the journal's instrument table (instruments.json, written by the Recorder) id by id;
    registry=None takes the journal's own instruments (extrema.storage.registry_for_journal)."""

    label = "journal"

    def __init__(self, directory, registry=None, **kw):
        from extrema.storage.instruments import check_registry_matches, read_instrument_table, registry_for_journal
        from extrema.storage.journal import JournalReader
        if registry is None and read_instrument_table(directory) is not None:
            registry = registry_for_journal(directory)
        elif registry is not None:
            check_registry_matches(directory, registry)
        super().__init__(registry, **kw)
        self.directory = Path(directory)
        self.reader = JournalReader(self.directory, batch_records=self.batch_records)
        self._total = None
        self._done = 0

    def _where(self):
        return str(self.directory)

    def _generate(self):
        self._total = len(self.reader) or None
        self._done = 0
        known_max = len(self.registry) if self.registry is not None else None
        for batch in self.reader:
            self._done += len(batch)
            if known_max is not None:
                ids = batch["instrument_id"][_event_heads(batch)]
                bad = ids > known_max
                if bad.any():
                    heads = bad & (batch["kind"] != _CONT)
                    for iid in np.unique(batch["instrument_id"][heads]).tolist():
                        self._drop("unknown_instrument", f"instrument id {iid} is not in the registry",
                                   count=int((batch["instrument_id"][heads] == iid).sum()))
                    batch = batch[~bad]
            yield batch

    def _fraction(self):
        return self._done / self._total if self._total else None


# ------------------------------------------------------------------------------- EventJsonlSource

_TRADE, _QUOTE, _BOOK, _RESET = (int(RecordKind.TRADE), int(RecordKind.QUOTE), int(RecordKind.BOOK_DELTA),
                                 int(RecordKind.BOOK_RESET))


class _BadLine(Exception):
    def __init__(self, reason, detail):
        super().__init__(detail)
        self.reason = reason


def _int_field(obj, key, default=None):
    v = obj.get(key, default)
    if v is None:
        raise _BadLine("missing_field", f"no {key!r}")
    if isinstance(v, bool) or not isinstance(v, int):
        raise _BadLine("bad_field", f"{key!r} must be an integer (µs), got {v!r}")
    return v


def _decimal_field(obj, key, precision, *, allow_zero=True):
    v = obj.get(key)
    if v is None:
        raise _BadLine("missing_field", f"no {key!r}")
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise _BadLine("bad_field", f"{key!r} must be a decimal string or number, got {v!r}")
    try:
        raw = parse_decimal(str(v), precision)
    except ValueError as exc:
        raise _BadLine("bad_number", f"{key!r}: {exc}") from None
    if raw < 0 or (raw == 0 and not allow_zero):
        raise _BadLine("bad_number", f"{key!r} must be {'>= 0' if allow_zero else '> 0'}, got {v!r}")
    return raw


class EventJsonlSource(_FileSource):
    """One simple market event per line (format in the module doc)."""

    label = "events"

    def __init__(self, path, registry, **kw):
        super().__init__(path, registry, **kw)
        self._cache = {}

    def _resolve(self, obj):
        name = obj.get("instrument")
        if not isinstance(name, str):
            raise _BadLine("missing_field", "no \"instrument\" name")
        market = obj.get("market")
        key = (name, market)
        inst = self._cache.get(key)
        if inst is None:
            try:
                inst = self._instrument(name, Market[market] if market is not None else None)
            except KeyError as exc:
                raise _BadLine("unknown_instrument", str(exc).strip('"')) from None
            self._cache[key] = inst
        return inst

    def _records(self, obj):
        if not isinstance(obj, dict):
            raise _BadLine("not_an_object", f"a line is a JSON object, got {type(obj).__name__}")
        kind = obj.get("type")
        if kind not in ("trade", "quote", "book", "reset"):
            raise _BadLine("unknown_type", f"type {kind!r} (trade, quote, book, reset)")
        inst = self._resolve(obj)
        ts = _int_field(obj, "ts")
        ts_local = _int_field(obj, "ts_local", ts)
        seq = _int_field(obj, "sequence", 0)
        pp, sp = inst.price_precision, inst.size_precision
        if kind == "trade":
            side = obj.get("side")
            if side not in ("buy", "sell", None):
                raise _BadLine("bad_field", f"side {side!r} (buy, sell, or absent)")
            flags = _ASK if side == "sell" else (_UNKNOWN_AGGRESSOR if side is None else 0)
            return [(_TRADE, flags, inst.id, ts, ts_local, seq, _decimal_field(obj, "price", pp),
                     _decimal_field(obj, "size", sp, allow_zero=False), 0, 0)]
        if kind == "quote":
            return [(_QUOTE, 0, inst.id, ts, ts_local, seq, _decimal_field(obj, "bid", pp),
                     _decimal_field(obj, "bid_size", sp), _decimal_field(obj, "ask", pp),
                     _decimal_field(obj, "ask_size", sp))]
        if kind == "reset":
            return [(_RESET, 0, inst.id, ts, ts_local, seq, 0, 0, int(ResetReason.UNSPECIFIED), 0)]
        snapshot = obj.get("snapshot", False)
        if not isinstance(snapshot, bool):
            raise _BadLine("bad_field", f"snapshot must be true or false, got {snapshot!r}")
        base = _SNAPSHOT if snapshot else 0
        rows = []
        for side_key, side_flag in (("bids", 0), ("asks", _ASK)):
            levels = obj.get(side_key, [])
            if not isinstance(levels, list):
                raise _BadLine("bad_field", f"{side_key!r} must be a list of [price, size]")
            for level in levels:
                if not isinstance(level, list) or len(level) != 2:
                    raise _BadLine("bad_field", f"a level of {side_key!r} is [price, size], got {level!r}")
                pair = {"price": level[0], "size": level[1]}
                rows.append([_BOOK, base | side_flag, inst.id, ts, ts_local, seq, _decimal_field(pair, "price", pp),
                             _decimal_field(pair, "size", sp), 0, 0])
        if not rows:
            raise _BadLine("empty_book", "a book line needs at least one level in \"bids\" or \"asks\"")
        rows[-1][1] |= _LAST
        return [tuple(r) for r in rows]

    def _generate(self):
        self._pos = 0
        chunk = []
        with open(self.path, "rb") as f:
            for lineno, line in enumerate(f, 1):
                self._pos += len(line)
                text = line.strip()
                if not text or text.startswith(b"#"):
                    continue
                try:
                    obj = json.loads(text, parse_float=str)
                    chunk.extend(self._records(obj))
                except _BadLine as bad:
                    self._drop(bad.reason, str(bad), lineno)
                except ValueError as exc:           # JSONDecodeError, UnicodeDecodeError
                    self._drop("bad_json", str(exc), lineno)
                if len(chunk) >= 4096:
                    yield np.array(chunk, dtype=RECORD_DTYPE)
                    chunk = []
        if chunk:
            yield np.array(chunk, dtype=RECORD_DTYPE)


# -------------------------------------------------------------------------------------- TardisSource

# tardis.dev exchange ids -> extrema markets (https://docs.tardis.dev/api/csv-datasets)
TARDIS_MARKETS = {
    "binance": Market.BINANCE_SPOT, "binance-futures": Market.BINANCE_USDM, "deribit": Market.DERIBIT,
    "okex": Market.OKX, "okex-swap": Market.OKX, "okex-futures": Market.OKX, "bybit": Market.BYBIT,
    "bybit-spot": Market.BYBIT, "coinbase": Market.COINBASE,
}
_BOOK_HEADER = ["exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount"]
_TRADES_HEADER = ["exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"]


class _TardisFile(_FileSource):
    """One tardis.dev CSV file (book or trades) of a TardisSource."""

    def __init__(self, path, owner, header):
        super().__init__(path, owner.registry, batch_records=owner.batch_records)
        self.owner = owner
        self.header = header
        self.label = "tardis"

    def _drop(self, reason, detail="", line=None, count=1):
        self.owner._drop(reason, detail, f"{self.path.name}:{line}" if line is not None else None, count)

    def _rows(self):
        with _open_text(self.path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header != self.header:
                raise ValueError(f"{self.path}: not a tardis.dev {'incremental_book_L2' if self.header is _BOOK_HEADER else 'trades'} "
                                 f"CSV (header {header!r}, expected {','.join(self.header)})")
            for lineno, row in enumerate(reader, 2):
                yield lineno, row

    def _resolve(self, exchange, symbol):
        return self.owner._resolve(exchange, symbol)


def _tardis_row(f, row):
    """The columns every tardis CSV row starts with, checked: (instrument, ts, ts_local, *the other four)."""
    if len(row) != 8:
        raise _BadLine("bad_row", f"{len(row)} columns, expected 8")
    exchange, symbol, ts, ts_local = row[:4]
    inst = f._resolve(exchange, symbol)
    try:
        ts, ts_local = int(ts), int(ts_local)
    except ValueError:
        raise _BadLine("bad_field", f"timestamps must be integer µs: {ts!r}, {ts_local!r}") from None
    return (inst, ts, ts_local, *row[4:])


class TardisSource(ReplaySource):
    """tardis.dev CSV datasets (https://docs.tardis.dev/api/csv-datasets): `incremental_book_L2`
    (exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount) and/or `trades`
    (exchange,symbol,timestamp,local_timestamp,id,side,price,amount), merged by local_timestamp.

    Symbols are resolved by venue symbol on the tardis exchange's market (TARDIS_MARKETS, or market=),
    or all rows go to `instrument` (an Instrument or a registered name) when given. Book rows: one
    message per run of rows with the same local_timestamp (LAST on its final record); a run of snapshot
    rows starts a fresh book: BOOK_RESET then SNAPSHOT-flagged deltas (tardis sends one at the start of
    every day's file and after each reconnection). amount 0 deletes a level. Trades: side = the
    aggressor (buy / sell / unknown), id -> sequence when it is an integer (else 0).
    Times are µs; ts_exchange = timestamp, ts_local = local_timestamp.
    """

    label = "tardis"

    def __init__(self, registry, *, book=None, trades=None, instrument=None, market=None, **kw):
        super().__init__(registry, **kw)
        if book is None and trades is None:
            raise ValueError("TardisSource needs book= (incremental_book_L2 CSV) and/or trades= (trades CSV)")
        self.market = Market(market) if market is not None else None
        if instrument is not None and not hasattr(instrument, "id"):
            instrument = self._instrument(instrument, self.market)
        self.instrument = instrument
        self.files = []
        if book is not None:
            self.files.append(_TardisFile(book, self, _BOOK_HEADER))
        if trades is not None:
            self.files.append(_TardisFile(trades, self, _TRADES_HEADER))
        self._cache = {}

    def _where(self):
        return ", ".join(str(f.path) for f in self.files)

    def _fraction(self):
        total = sum(f._size for f in self.files)
        return sum(f._pos for f in self.files) / total if total else None

    def _resolve(self, exchange, symbol):
        key = (exchange, symbol)
        inst = self._cache.get(key)
        if inst is None:
            if self.instrument is not None:
                inst = self.instrument
            else:
                market = self.market or TARDIS_MARKETS.get(exchange)
                if market is None:
                    raise _BadLine("unknown_exchange", f"tardis exchange {exchange!r}: pass market=")
                try:
                    inst = self.registry.by_venue_symbol(market, symbol)
                except KeyError:
                    raise _BadLine("unknown_instrument", f"{symbol!r} on {market.name} is not registered") from None
            self._cache[key] = inst
        return inst

    def _book_records(self, f):
        """Book rows -> record arrays, one per message."""
        message = []
        message_key = None
        in_snapshot = {}
        for lineno, row in f._rows():
            f._pos += sum(len(c) for c in row) + len(row)
            try:
                inst, ts, ts_local, is_snapshot, side, price, amount = _tardis_row(f, row)
                if is_snapshot not in ("true", "false"):
                    raise _BadLine("bad_field", f"is_snapshot {is_snapshot!r}")
                if side not in ("bid", "ask"):
                    raise _BadLine("bad_field", f"side {side!r} (bid, ask)")
                pair = {"price": price, "amount": amount}
                raw_price = _decimal_field(pair, "price", inst.price_precision)
                raw_size = _decimal_field(pair, "amount", inst.size_precision)
            except _BadLine as bad:
                f._drop(bad.reason, str(bad), lineno)
                continue
            snap = is_snapshot == "true"
            # a snapshot is one message however many timestamps its rows carry (the book clears at the
            # first SNAPSHOT record after a LAST one)
            key = (inst.id, None if snap else ts_local, snap)
            if message and key != message_key:
                yield self._close_message(message)
                message = []
            if snap and not in_snapshot.get(inst.id) and not message:
                # a snapshot block begins: the old book is void
                message.append([_RESET, 0, inst.id, ts, ts_local, 0, 0, 0, int(ResetReason.UNSPECIFIED), 0])
            in_snapshot[inst.id] = snap
            message_key = key
            message.append([_BOOK, (_SNAPSHOT if snap else 0) | (_ASK if side == "ask" else 0), inst.id, ts,
                            ts_local, 0, raw_price, raw_size, 0, 0])
        if message:
            yield self._close_message(message)

    @staticmethod
    def _close_message(rows):
        rows[-1][1] |= _LAST
        return np.array([tuple(r) for r in rows], dtype=RECORD_DTYPE)

    def _trade_records(self, f):
        chunk = []
        for lineno, row in f._rows():
            f._pos += sum(len(c) for c in row) + len(row)
            try:
                inst, ts, ts_local, trade_id, side, price, amount = _tardis_row(f, row)
                if side not in ("buy", "sell", "unknown"):
                    raise _BadLine("bad_field", f"side {side!r} (buy, sell, unknown)")
                pair = {"price": price, "amount": amount}
                raw_price = _decimal_field(pair, "price", inst.price_precision)
                raw_size = _decimal_field(pair, "amount", inst.size_precision, allow_zero=False)
            except _BadLine as bad:
                f._drop(bad.reason, str(bad), lineno)
                continue
            flags = _ASK if side == "sell" else (_UNKNOWN_AGGRESSOR if side == "unknown" else 0)
            seq = int(trade_id) if trade_id.isdigit() and len(trade_id) < 19 else 0
            chunk.append((_TRADE, flags, inst.id, ts, ts_local, seq, raw_price, raw_size, 0, 0))
            if len(chunk) >= 4096:
                yield np.array(chunk, dtype=RECORD_DTYPE)
                chunk = []
        if chunk:
            yield np.array(chunk, dtype=RECORD_DTYPE)

    def _generate(self):
        streams = []
        for f in self.files:
            f._pos = 0
            streams.append(self._book_records(f) if f.header is _BOOK_HEADER else self._trade_records(f))
        if len(streams) == 1:
            yield from streams[0]
        else:
            yield from _merge_streams(streams)


# ------------------------------------------------------------------------------------ CaptureSource

_CAPTURE_MARKETS = {"spot": Market.BINANCE_SPOT, "usdm": Market.BINANCE_USDM}


def _capture_market(path: Path, first: Optional[dict]):
    """The Binance market of a capture: the "market" its recorder stamped on the connect line
    (extrema.storage.RawFrameWriter), else from its connect URL, else from `_spot_` / `_usdm_` in its name."""
    if first and first.get("market") in Market.__members__:
        return Market[first["market"]]
    first_url = first.get("url") if first else None
    if first_url:
        if "fstream" in first_url or "/fapi/" in first_url:
            return Market.BINANCE_USDM
        if "stream.binance" in first_url or "/api/v3/" in first_url:
            return Market.BINANCE_SPOT
    for word, market in _CAPTURE_MARKETS.items():
        if f"_{word}_" in path.name:
            return market
    return None


class CaptureSource(_FileSource):
    """Binance market-data frames as captured (the format of ../shared/fixtures/binance/captures and of
    extrema.storage.RawFrameWriter): JSON lines `{"dir", "ts", "raw", "url"}` (or `local_ts_ns` instead of
    `ts`). "recv" lines are websocket frames, decoded by the compiled BinanceDecoder at ts_local = ts;
    "http_response" lines of /depth URLs are REST depth snapshots, applied through DepthSync exactly as the
    live adapter does (diffs are buffered until their snapshot, stale ones dropped, a broken chain
    emits BOOK_RESET and waits for the next snapshot). Snapshots come from the same file and/or from
    `snapshots` (a path or list of paths; by default the `_http_depth_` sibling of a `_ws_` capture), in
    ts order with the frames. Depth diffs of an instrument that never gets a snapshot cannot build a
    correct book: they are dropped and counted (depth_without_snapshot).
    """

    label = "capture"

    def __init__(self, path, registry, *, market=None, snapshots=None, **kw):
        super().__init__(path, registry, **kw)
        if snapshots is None:
            sibling = self.path.with_name(self.path.name.replace("_ws_", "_http_depth_"))
            snapshots = [sibling] if "_ws_" in self.path.name and sibling.is_file() else []
        elif isinstance(snapshots, (str, Path)):
            snapshots = [snapshots]
        self.snapshot_paths = [Path(p) for p in snapshots]
        if market is None:
            market = _capture_market(self.path, self._first_connect())
            if market is None:
                raise ValueError(f"{self.path}: cannot tell the Binance market of this capture: pass market=")
        self.market = Market(market)
        self._frame = np.zeros(8192, dtype=RECORD_DTYPE)

    def _first_connect(self):
        """The first line when it names where the capture came from (a connect line), else None."""
        with open(self.path, "rb") as f:
            for line in f:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict) and obj.get("url"):
                    return obj
                break
        return None

    @staticmethod
    def _ts_us(obj):
        if "ts" in obj:
            ts = obj["ts"]
            if isinstance(ts, bool) or not isinstance(ts, (int, float)):
                raise _BadLine("bad_field", f"ts {ts!r} is not a number of seconds")
            return round(ts * 1_000_000)
        ns = obj.get("local_ts_ns")
        if isinstance(ns, bool) or not isinstance(ns, int):
            raise _BadLine("missing_field", "no \"ts\" (seconds) or \"local_ts_ns\"")
        return ns // 1000

    def _lines(self, path, snapshots_only, tag):
        """(ts_local, tag, line number, kind, payload, url) of the usable lines of one file."""
        with open(path, "rb") as f:
            for lineno, line in enumerate(f, 1):
                if not snapshots_only:
                    self._pos += len(line)
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise _BadLine("not_an_object", "a capture line is a JSON object")
                    direction = obj.get("dir", "recv")
                    if direction == "recv" and not snapshots_only:
                        raw = obj.get("raw")
                        if not isinstance(raw, str):
                            raise _BadLine("missing_field", "a recv line needs the frame text in \"raw\"")
                        yield self._ts_us(obj), tag, lineno, "frame", raw, None
                    elif direction == "http_response":
                        url = obj.get("url", "")
                        if "/depth" in url and isinstance(obj.get("raw"), str):
                            yield self._ts_us(obj), tag, lineno, "snapshot", obj["raw"], url
                except _BadLine as bad:
                    self._drop(bad.reason, str(bad), f"{path.name}:{lineno}")
                except ValueError as exc:
                    self._drop("bad_json", str(exc), f"{path.name}:{lineno}")

    def _drop_where(self, line):
        # line numbers here already name their file
        return line or self.path

    def _generate(self):
        self._pos = 0
        decoder = BinanceDecoder(self.registry, self.market)
        sync = DepthSync(self.market)
        self._decoder, self._sync = decoder, sync
        self._depth_ids = set()
        streams = [self._lines(self.path, False, 0)]
        streams += [self._lines(p, True, i + 1) for i, p in enumerate(self.snapshot_paths)]
        lines = heapq.merge(*streams, key=lambda x: (x[0], x[1])) if len(streams) > 1 else streams[0]
        buf = self._frame
        for ts_local, _, lineno, kind, payload, url in lines:
            if kind == "snapshot":
                yield from self._snapshot(decoder, sync, payload, url, ts_local, lineno)
                continue
            n = decoder.decode_to(payload.encode(), buf, ts_local)
            status, records = sync.accept(buf[:n], decoder)
            if status == SyncStatus.EMIT:
                if len(records):
                    yield records.copy()         # a view of the reused frame buffer
            elif status == SyncStatus.GAP:
                iid = decoder.info["instrument_id"]
                self._drop("sequence_gap", f"{self.registry[iid].name}: depth chain broke; book reset until "
                           f"the next snapshot", f"{self.path.name}:{lineno}")
                r = records.copy()
                r["ts_local"] = ts_local
                yield r
            if status in (SyncStatus.NEED_SNAPSHOT, SyncStatus.BUFFERED):
                self._depth_ids.add(decoder.info["instrument_id"])

    def _snapshot(self, decoder, sync, body, url, ts_local, lineno):
        from urllib.parse import parse_qs, urlparse
        symbol = (parse_qs(urlparse(url).query).get("symbol") or [None])[0]
        where = f"snapshot line {lineno}"
        if symbol is None:
            self._drop("bad_snapshot", f"{where}: no symbol in {url!r}")
            return
        try:
            inst = self.registry.by_venue_symbol(self.market, symbol)
        except KeyError:
            self._drop("unknown_instrument", f"{where}: {symbol} is not registered on {self.market.name}")
            return
        try:
            snap = decoder.decode_depth_snapshot(body, inst.id, ts_local)
        except ValueError as exc:
            self._drop("bad_snapshot", f"{where}: {exc}")
            return
        status, records = sync.snapshot(snap)
        self._depth_ids.add(inst.id)
        if status == SyncStatus.SYNCED:
            yield records       # the snapshot, then the buffered diffs that continue it (restamped late)
        elif status == SyncStatus.SNAPSHOT_TOO_OLD:
            self._drop("snapshot_too_old", f"{where}: {inst.name}'s buffered diffs start after it")

    def _finish(self):
        decoder_stats = self._decoder.stats()
        for reason, n in decoder_stats["drops"].items():
            self.stats["dropped"][f"decoder_{reason.lower()}"] = n
        sync_stats = self._sync.stats()
        self.stats["stale_diffs"] = sync_stats["stale"]
        self.stats["snapshots"] = sync_stats["snapshots"]
        waiting = 0
        for iid in self._depth_ids:
            st = self._sync.state(iid)
            if not st["live"]:
                waiting += st["buffered_messages"]
        if waiting:
            self.stats["dropped"]["depth_without_snapshot"] = waiting
        self.stats["decoder"] = decoder_stats


# ------------------------------------------------------------------------------------------- merge

def _merge_streams(streams: list[Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
    """k-way merge of record-array streams, each nondecreasing in ts_local, by ts_local; ties go to
    the earlier stream; multi-slot events stay whole. Works in vectorised chunks: everything up to the
    smallest 'last time buffered' of the live streams can be ordered and released."""
    iters = [iter(s) for s in streams]
    bufs: list[Optional[np.ndarray]] = [None] * len(iters)
    times: list[Optional[np.ndarray]] = [None] * len(iters)

    def refill(i):
        while True:
            nxt = next(iters[i], None)
            if nxt is None:
                bufs[i] = times[i] = None
                return
            if len(nxt):
                bufs[i] = nxt
                times[i] = event_times(nxt, "ts_local")
                return

    for i in range(len(iters)):
        refill(i)
    while True:
        live = [i for i in range(len(iters)) if bufs[i] is not None]
        if not live:
            return
        if len(live) == 1:
            i = live[0]
            yield bufs[i]
            refill(i)
            continue
        horizon = min(int(times[i][-1]) for i in live)
        parts, keys = [], []
        for i in live:
            cut = int(np.searchsorted(times[i], horizon, side="right"))   # never between head and payload
            if cut:
                parts.append(bufs[i][:cut])
                keys.append(times[i][:cut])
            if cut == len(bufs[i]):
                refill(i)
            else:
                bufs[i] = bufs[i][cut:]
                times[i] = times[i][cut:]
        if len(parts) == 1:
            yield parts[0]
            continue
        merged = np.concatenate(parts)
        # stable: equal times keep stream order, and an event's slots (equal keys) stay together
        yield merged[np.argsort(np.concatenate(keys), kind="stable")]


class MergedSource(ReplaySource):
    """Several sources as one, merged by ts_local (see merge())."""

    label = "merge"

    def __init__(self, sources, **kw):
        super().__init__(None, **kw)
        if not sources:
            raise ValueError("merge() needs at least one source")
        for s in sources:
            if not hasattr(s, "batches"):
                raise TypeError(f"merge() takes replay sources (with batches()), got {s!r}")
        self.sources = list(sources)

    def _generate(self):
        yield from _merge_streams([s.batches() for s in self.sources])

    def _finish(self):
        dropped = self.stats["dropped"]
        for s in self.sources:
            for reason, n in s.stats.get("dropped", {}).items():
                dropped[reason] = dropped.get(reason, 0) + n
        self.stats["sources"] = [s.stats for s in self.sources]

    def _summarise(self):
        pass                        # each source summarised its own drops


def merge(*sources, **kw) -> MergedSource:
    """One source replaying several in ts_local order (ties: argument order). Keywords as any source
    (realtime, speed, progress, batch_records)."""
    if len(sources) == 1 and isinstance(sources[0], (list, tuple)):
        sources = tuple(sources[0])
    return MergedSource(sources, **kw)


# -------------------------------------------------------------------------------------- open_source

def open_source(spec, registry, **kw) -> ReplaySource:
    """A replay source for a path, chosen from what it is:
      a directory with journal segments (seg-*.exj)   -> JournalSource
      *.npy (a saved RECORD_DTYPE array)              -> ArraySource
      *.csv / *.csv.gz with the tardis header         -> TardisSource (book= or trades= by header)
      *.jsonl / *.json / *.gz whose first object has "raw" (+ "dir" / "local_ts_ns") -> CaptureSource
      *.jsonl whose first object has "type"           -> EventJsonlSource
    Keywords go to the source (market= for captures and tardis files, realtime, speed, progress...)."""
    path = Path(spec)
    if path.is_dir():
        if any(path.glob("seg-*.exj")):
            return JournalSource(path, registry, **kw)
        raise ValueError(f"{path}: a directory, but not a journal (no seg-*.exj segment files)")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    name = path.name.lower()
    if name.endswith(".npy"):
        return ArraySource(np.load(path), registry, **kw)
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        with _open_text(path) as f:
            header = f.readline().strip().split(",")
        if header == _BOOK_HEADER:
            return TardisSource(registry, book=path, **kw)
        if header == _TRADES_HEADER:
            return TardisSource(registry, trades=path, **kw)
        raise ValueError(f"{path}: a CSV, but not a tardis.dev incremental_book_L2 or trades file "
                         f"(header {','.join(header)!r})")
    if name.endswith((".jsonl", ".json", ".jsonl.gz", ".ndjson")):
        first = None
        with open(path, "rb") as f:
            for line in f:
                if line.strip() and not line.lstrip().startswith(b"#"):
                    try:
                        first = json.loads(line)
                    except ValueError:
                        raise ValueError(f"{path}: the first line is not JSON") from None
                    break
        if isinstance(first, dict) and ("dir" in first or "local_ts_ns" in first) and ("raw" in first or "url" in first):
            return CaptureSource(path, registry, **kw)
        if isinstance(first, dict) and "type" in first:
            return EventJsonlSource(path, registry, **kw)
        raise ValueError(f"{path}: JSON lines, but neither an exchange capture ({{\"dir\", \"ts\", \"raw\"}}) "
                         f"nor one market event per line ({{\"type\", \"instrument\", \"ts\", ...}})")
    raise ValueError(f"{path}: unknown replay format; use a journal directory, .npy, a tardis .csv(.gz), "
                     f"or .jsonl (capture or events)")


__all__ = ["ArraySource", "CaptureSource", "EventJsonlSource", "JournalSource", "MergedSource", "Progress",
           "ReplaySource", "TardisSource", "TARDIS_MARKETS", "merge", "open_source"]
