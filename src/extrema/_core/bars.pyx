"""Bars (candles) built from trade records, compiled: time, tick, volume and notional bars.

    agg = BarAggregator(instrument_id, "time", "1m", price_precision=2, size_precision=3)
    candles = agg.update_records(trades)   # RECORD_DTYPE candle records: head + 1 continuation per bar
    agg.on_time(now_us)                    # a timer closes a bar whose interval has ended
    agg.flush(now_us)                      # end of data: on_time(now_us), then the partial bar too
    table = agg.to_bars(candles)           # structured array (floats; raw=True for exact ints)
    agg.partial                            # the bar being built, as a Bar (or None)

The engine calls the compiled API instead (bars.pxd): update_c / on_time_c / flush_c write candle
records straight into a record buffer (the ring, or a dispatch buffer) without the GIL, then drain_c.

Input
-----
TRADE records of `instrument_id` (records.pyx): price and quantity raw, ts_exchange in µs UTC, FLAG_ASK
when the seller was the aggressor, FLAG_AGGRESSOR_UNKNOWN when the venue does not say (such a trade
counts in volume but in neither buy nor sell volume). Other kinds and instruments are ignored (counted
in stats['ignored']). Bad trades are counted and skipped, never raised, so the engine keeps running
(DESIGN.md section 7); each has its own counter in `stats`:
  bad_price     price <= 0 (no venue we support prints at zero or below)
  bad_size      quantity <= 0
  bad_time      ts_exchange < 0 or > 2**62 (keeps every bar end far from int64 overflow)
  out_of_order  ts_exchange earlier than the latest accepted trade's (equal timestamps are fine)
  late          time bars: the trade's interval was already closed by on_time / flush
  overflow      the trade would overflow the bar's int64 raw volume
A skipped trade changes nothing else.

Kinds
-----
time      epoch-aligned intervals: a bar covers [k * interval, (k + 1) * interval) of ts_exchange.
          `size` = whole seconds from 1 to 86400, as an int, a timedelta, or "15s" / "5m" / "1h" / "1d".
          A bar closes on the first trade of a later interval (event-driven), or when on_time(now_us) /
          flush(now_us) is called with now_us at or past its end (so a timer closes a bar that no trade
          follows). Pass now_us on the exchange clock, minus any lateness you want to allow: a trade that
          arrives after its interval was closed is dropped (stats['late']), never re-opens a bar.
tick      every `size` accepted trades.
volume    when the bar's raw volume reaches `size` (raw int at size_precision, or a decimal string).
notional  when the bar's sum of price_raw * size_raw reaches `size` (raw int at price_precision +
          size_precision, or a decimal string in quote units such as "1000000").

Threshold crossing (volume and notional bars). The trade that reaches or crosses the threshold is
included whole and closes the bar; the next bar starts empty (the overshoot is not carried over). Why
not split it across bars: every trade then belongs to exactly one bar, so trade count, buy / sell volume,
OHLC and VWAP are facts about real prints (a split invents two prints at one price and time and counts
the trade twice); a notional split cannot be exact anyway (the remainder is rarely a whole number of lots
at that price), so "exact bar sizes" would only hold for volume bars; and one trade closes at most one
bar, so a block trade of 100x the threshold is one bar, not 100 identical ones. The cost: a bar's volume
overshoots the threshold by less than one trade's size, and the bar says by how much.

Empty intervals (time bars), `empty=`:
  "skip" (default)  an interval without trades produces no bar. A bar with no trades carries no market
                    information, and a grid of them multiplies what the engine routes (1 s bars over a
                    quiet weekend are 172,800 candles).
  "fill"            every interval between two bars, and every interval a timer closes, produces a flat
                    bar: open = high = low = close = VWAP = the previous bar's close, volume 0, trade
                    count 0 (Binance klines do the same). Nothing is filled before the first trade (no
                    previous close). A long gap can produce more flat bars than the caller's buffer holds:
                    they wait in the aggregator until drain_c writes them (the Python API does it).

Output: one candle = a CANDLE head + 1 CONTINUATION slot (layout in records.pyx)
    head: ts_exchange = open time, ts_local = ts_local of what closed the bar (the trade, or now_us of
          on_time / flush), sequence = trade count, price = open, quantity = volume, aux0 = high,
          aux1 = low, flags = 1 continuation (with_continuations(0, 1))
    cont: p0 = close, p1 = VWAP, p2 = buy volume, p3 = sell volume, p4 = close time (exclusive),
          p5 = quote volume, p6 = series id (the engine's number for the aggregator, 0 outside one)
Open / close time: time bars the interval's bounds; tick / volume / notional bars the first trade's
ts_exchange and the last trade's ts_exchange + 1, so every bar is the half-open [open_time, close_time).

Arithmetic: exact integers, no floats. Volume, buy and sell volume are int64 raw sums. Notional is
accumulated in 128 bits (unsigned __int128): one 64x64->128 multiply per trade, exact, so the notional
threshold is crossed on the same trade in live, backtest and the Python reference on every platform (a
double sum loses the low digits of raw products past 2**53 and its crossing would depend on summation
order). VWAP = notional / volume rounded half up to a raw price. Quote volume in the record is the
exact notional, saturated at int64 max (raw at price + size precision: ~9.2e18, e.g. 9.2e8 USDT at
precision 10); Bar / to_bars expose the same value.
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint32_t, INT64_MAX, INT64_MIN

import datetime
import decimal
import operator
import re

import numpy as np
cimport numpy as cnp

from extrema._core.types cimport (
    Record, KIND_TRADE, KIND_CANDLE, KIND_CONTINUATION, FLAG_ASK, FLAG_AGGRESSOR_UNKNOWN, CONT_SHIFT,
    CONT_MASK)
from extrema._core.ex_fixed cimport EX_MAX_PRECISION
from extrema._core.records cimport as_record_array, record_data
from extrema._core.records import RECORD_DTYPE, CONTINUATION_DTYPE

cnp.import_array()

cdef enum:
    OP_UPDATE = 0
    OP_ON_TIME = 1
    OP_FLUSH = 2
    MAX_INTERVAL_SECONDS = 86400

cdef int64_t US_PER_SECOND = 1000000
cdef int64_t MAX_TS = (<int64_t>1) << 62      # see the module doc, bad_time
cdef uint64_t U64_MASK = ~(<uint64_t>0)

_KINDS = {"time": BAR_TIME, "tick": BAR_TICK, "volume": BAR_VOLUME, "notional": BAR_NOTIONAL}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
_EMPTY = {"skip": EMPTY_SKIP, "fill": EMPTY_FILL}
_EMPTY_NAMES = {v: k for k, v in _EMPTY.items()}
_INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL_TEXT = re.compile(r"([0-9]+)([smhd])")

_PRICE_FIELDS = ("open", "high", "low", "close", "vwap")
_SIZE_FIELDS = ("volume", "buy_volume", "sell_volume")

# Bars as a table (to_bars / candles_to_bars): exact raw ints, or floats at the instrument's precisions.
BAR_RAW_DTYPE = np.dtype([
    ("instrument_id", "<u4"), ("open_time", "<i8"), ("close_time", "<i8"), ("ts_local", "<i8"),
    ("trade_count", "<i8"), ("open", "<i8"), ("high", "<i8"), ("low", "<i8"), ("close", "<i8"),
    ("vwap", "<i8"), ("volume", "<i8"), ("buy_volume", "<i8"), ("sell_volume", "<i8"),
    ("quote_volume", "<i8")])
BAR_DTYPE = np.dtype([
    ("instrument_id", "<u4"), ("open_time", "<i8"), ("close_time", "<i8"), ("ts_local", "<i8"),
    ("trade_count", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"),
    ("vwap", "<f8"), ("volume", "<f8"), ("buy_volume", "<f8"), ("sell_volume", "<f8"),
    ("quote_volume", "<f8")])


# ---------------------------------------------------------------------------------------------------
# Exact helpers
# ---------------------------------------------------------------------------------------------------

cdef inline int64_t saturate_i64(ex_u128 x) noexcept nogil:
    return INT64_MAX if x > <ex_u128>INT64_MAX else <int64_t>x


cdef inline int64_t vwap_raw(ex_u128 notional, int64_t volume) noexcept nogil:
    """notional / volume rounded half up: a raw price. volume > 0, and notional <= max price * volume
    keeps the quotient within int64. `//` is C division here (cdivision); `/` would be true division."""
    cdef ex_u128 v = <ex_u128>volume
    cdef ex_u128 q = notional // v
    cdef ex_u128 r = notional - q * v
    if r * 2 >= v:             # r < v < 2**63: no overflow
        q += 1
    return <int64_t>q


cdef object u128_to_int(ex_u128 x):
    return (int(<uint64_t>(x >> 64)) << 64) | int(<uint64_t>(x & U64_MASK))


cdef ex_u128 int_to_u128(object value) except? 0:
    """0 <= value < 2**128 as ex_u128 (the caller checks the range)."""
    cdef uint64_t hi = value >> 64
    cdef uint64_t lo = value & U64_MASK
    return ((<ex_u128>hi) << 64) | <ex_u128>lo


cdef inline double scaled(int64_t raw, int precision):
    return raw / (10.0 ** precision)


# ---------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------

def _interval_seconds(size):
    """`size` of a time bar -> whole seconds in 1..86400."""
    if isinstance(size, bool):
        raise TypeError("a time bar's size is seconds (int), a timedelta or text like '5m', got a bool")
    if isinstance(size, str):
        match = _INTERVAL_TEXT.fullmatch(size.strip())
        if match is None:
            raise ValueError(f"interval {size!r}: use a whole number and a unit s, m, h or d, e.g. '15s', "
                             f"'5m', '1h', '1d'")
        seconds = int(match[1]) * _INTERVAL_UNITS[match[2]]
    elif isinstance(size, datetime.timedelta):
        micros = size // datetime.timedelta(microseconds=1)
        if micros % US_PER_SECOND:
            raise ValueError(f"interval {size} is not a whole number of seconds")
        seconds = micros // US_PER_SECOND
    elif isinstance(size, float):
        raise TypeError(f"a time bar's size is whole seconds: pass an int or text like '1s', got {size!r}")
    else:
        seconds = operator.index(size)
    if not 1 <= seconds <= MAX_INTERVAL_SECONDS:
        raise ValueError(f"a time bar's interval must be 1 s to 1 day ({MAX_INTERVAL_SECONDS} s), "
                         f"got {seconds} s")
    return seconds


def _raw_threshold(size, int precision, str what, limit):
    """`size` of a volume / notional bar -> a positive raw int. An int is already raw; a str or Decimal
    is a decimal value converted exactly at `precision`. Floats are refused: they are not exact."""
    if isinstance(size, bool):
        raise TypeError(f"{what} threshold must be a raw int or a decimal string, got a bool")
    if isinstance(size, float):
        raise TypeError(f"{what} threshold must be a raw int or a decimal string (floats are not exact), "
                        f"got {size!r}")
    if isinstance(size, (str, decimal.Decimal)):
        ctx = decimal.Context(prec=200)
        try:
            value = ctx.create_decimal(size.strip() if isinstance(size, str) else size)
        except decimal.InvalidOperation:
            raise ValueError(f"{what} threshold {size!r} is not a decimal number") from None
        if not value.is_finite():
            raise ValueError(f"{what} threshold must be finite, got {size!r}")
        shifted = value.scaleb(precision, ctx)
        if shifted != shifted.to_integral_value(context=ctx):
            raise ValueError(f"{what} threshold {size!r} has more than {precision} decimals")
        raw = int(shifted)
    else:
        raw = operator.index(size)
    if not 1 <= raw <= limit:
        raise ValueError(f"{what} threshold must be between 1 and {limit} raw units, got {raw}")
    return raw


def _side_flags(side):
    """A trade's aggressor as record flags: 'buy' / 0, 'sell' / 1 (book.Side values), None = unknown."""
    if side is None:
        return FLAG_AGGRESSOR_UNKNOWN
    if isinstance(side, str):
        if side.lower() == "buy":
            return 0
        if side.lower() == "sell":
            return FLAG_ASK
    elif not isinstance(side, bool) and side in (0, 1):
        return FLAG_ASK if side == 1 else 0
    raise ValueError(f"side must be 'buy', 'sell', Side.BUY, Side.SELL or None (unknown), got {side!r}")


# ---------------------------------------------------------------------------------------------------
# A bar as a Python value
# ---------------------------------------------------------------------------------------------------

@cython.final
cdef class Bar:
    """One bar, copied out of a candle record or the aggregator's partial bar (so it stays valid).

    Exact raw ints (*_raw, times in µs, trade_count) and float properties at the instrument's
    precisions: open, high, low, close, vwap (price), volume, buy_volume, sell_volume (size), quote_volume
    (price * size). close_time is exclusive. Bars are equal when all their raw fields are equal.
    """
    cdef readonly uint32_t instrument_id
    cdef readonly int64_t open_time
    cdef readonly int64_t close_time
    cdef readonly int64_t ts_local
    cdef readonly int64_t trade_count
    cdef readonly int64_t open_raw
    cdef readonly int64_t high_raw
    cdef readonly int64_t low_raw
    cdef readonly int64_t close_raw
    cdef readonly int64_t vwap_raw
    cdef readonly int64_t volume_raw
    cdef readonly int64_t buy_volume_raw
    cdef readonly int64_t sell_volume_raw
    cdef readonly int64_t quote_volume_raw
    cdef readonly int price_precision
    cdef readonly int size_precision

    def __init__(self):
        raise TypeError("bars come from Bar.from_candle(), BarAggregator.partial or BarAggregator.bars()")

    @staticmethod
    def from_candle(records, Py_ssize_t index=0, *, int price_precision, int size_precision):
        """The bar of the candle whose head is records[index] (its continuation is records[index + 1])."""
        cdef cnp.ndarray arr = as_record_array(records, "Bar.from_candle")
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0)
        cdef const Record *head
        _check_precisions(price_precision, size_precision)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"candle index {index} out of range for {n} records")
        head = record_data(arr) + index
        _check_candle(head, n - index, index)
        return _bar_from_records(head, head + 1, price_precision, size_precision)

    @property
    def open(self):
        return scaled(self.open_raw, self.price_precision)

    @property
    def high(self):
        return scaled(self.high_raw, self.price_precision)

    @property
    def low(self):
        return scaled(self.low_raw, self.price_precision)

    @property
    def close(self):
        return scaled(self.close_raw, self.price_precision)

    @property
    def vwap(self):
        return scaled(self.vwap_raw, self.price_precision)

    @property
    def volume(self):
        return scaled(self.volume_raw, self.size_precision)

    @property
    def buy_volume(self):
        return scaled(self.buy_volume_raw, self.size_precision)

    @property
    def sell_volume(self):
        return scaled(self.sell_volume_raw, self.size_precision)

    @property
    def quote_volume(self):
        return scaled(self.quote_volume_raw, self.price_precision + self.size_precision)

    @property
    def is_empty(self):
        """A flat bar of an interval without trades (empty="fill")."""
        return self.trade_count == 0

    def to_dict(self):
        """The raw fields, named as in BAR_RAW_DTYPE."""
        return {"instrument_id": self.instrument_id, "open_time": self.open_time,
                "close_time": self.close_time, "ts_local": self.ts_local, "trade_count": self.trade_count,
                "open": self.open_raw, "high": self.high_raw, "low": self.low_raw, "close": self.close_raw,
                "vwap": self.vwap_raw, "volume": self.volume_raw, "buy_volume": self.buy_volume_raw,
                "sell_volume": self.sell_volume_raw, "quote_volume": self.quote_volume_raw}

    def __eq__(self, other):
        if not isinstance(other, Bar):
            return NotImplemented
        return (self.to_dict() == (<Bar>other).to_dict() and self.price_precision == (<Bar>other).price_precision
                and self.size_precision == (<Bar>other).size_precision)

    def __hash__(self):
        return hash(tuple(self.to_dict().values()))

    def __repr__(self):
        return (f"Bar(instrument_id={self.instrument_id}, open_time={self.open_time}, "
                f"close_time={self.close_time}, open={self.open}, high={self.high}, low={self.low}, "
                f"close={self.close}, volume={self.volume}, vwap={self.vwap}, trades={self.trade_count})")


cdef Bar _new_bar(uint32_t instrument_id, int price_precision, int size_precision):
    cdef Bar bar = Bar.__new__(Bar)
    bar.instrument_id = instrument_id
    bar.price_precision = price_precision
    bar.size_precision = size_precision
    return bar


cdef Bar _bar_from_records(const Record *head, const Record *cont, int price_precision, int size_precision):
    cdef Bar bar = _new_bar(head.instrument_id, price_precision, size_precision)
    bar.open_time = head.ts_exchange
    bar.ts_local = head.ts_local
    bar.trade_count = head.sequence
    bar.open_raw = head.price
    bar.volume_raw = head.quantity
    bar.high_raw = head.aux0
    bar.low_raw = head.aux1
    bar.close_raw = cont.ts_exchange        # p0
    bar.vwap_raw = cont.ts_local            # p1
    bar.buy_volume_raw = cont.sequence      # p2
    bar.sell_volume_raw = cont.price        # p3
    bar.close_time = cont.quantity          # p4
    bar.quote_volume_raw = cont.aux0        # p5
    return bar


cdef int _check_candle(const Record *head, Py_ssize_t available, Py_ssize_t index) except -1:
    if head.kind != KIND_CANDLE:
        raise ValueError(f"record {index} is not a CANDLE head (kind {head.kind})")
    if (head.flags & CONT_MASK) >> CONT_SHIFT != 1 or available < 2:
        raise ValueError(f"candle at record {index} must be followed by its one continuation slot")
    if head[1].kind != KIND_CONTINUATION or (head[1].flags & 0xFF) != 1:
        raise ValueError(f"record {index + 1} is not the continuation of the candle at {index}")
    return 0


cdef int _check_precisions(int price_precision, int size_precision) except -1:
    if not 0 <= price_precision <= EX_MAX_PRECISION or not 0 <= size_precision <= EX_MAX_PRECISION:
        raise ValueError(f"precisions must be between 0 and {EX_MAX_PRECISION}, "
                         f"got price {price_precision}, size {size_precision}")
    return 0


def candles_to_bars(records, int price_precision, int size_precision, *, bint raw=False):
    """The candles in a record array as a table: BAR_DTYPE (floats at the given precisions) or, with
    raw=True, BAR_RAW_DTYPE (exact ints). Other records (trades, ...) are skipped; a candle head whose
    continuation is missing or wrong raises ValueError."""
    cdef cnp.ndarray arr = as_record_array(records, "candles_to_bars")
    _check_precisions(price_precision, size_precision)
    kinds = arr["kind"]
    heads = np.flatnonzero(kinds == KIND_CANDLE)
    out = np.empty(len(heads), dtype=BAR_RAW_DTYPE if raw else BAR_DTYPE)
    if len(heads) == 0:
        return out
    conts = heads + 1
    if conts[len(conts) - 1] >= len(arr):
        raise ValueError(f"candle at record {heads[len(heads) - 1]} is missing its continuation slot")
    head_flags = arr["flags"][heads]
    cont_flags = arr["flags"][conts]
    bad = ((head_flags & CONT_MASK) >> CONT_SHIFT != 1) | (kinds[conts] != KIND_CONTINUATION) | \
          ((cont_flags & 0xFF) != 1)
    if bad.any():
        at = int(heads[np.argmax(bad)])
        raise ValueError(f"candle at record {at} is not followed by its one continuation slot")
    h = arr[heads]
    payload = arr[conts].view(CONTINUATION_DTYPE)["payload"]
    columns = {
        "instrument_id": h["instrument_id"], "open_time": h["ts_exchange"], "close_time": payload[:, 4],
        "ts_local": h["ts_local"], "trade_count": h["sequence"],
        "open": h["price"], "high": h["aux0"], "low": h["aux1"], "close": payload[:, 0],
        "vwap": payload[:, 1], "volume": h["quantity"], "buy_volume": payload[:, 2],
        "sell_volume": payload[:, 3], "quote_volume": payload[:, 5]}
    for name, values in columns.items():
        if raw or name not in _PRICE_FIELDS and name not in _SIZE_FIELDS and name != "quote_volume":
            out[name] = values
        elif name in _PRICE_FIELDS:
            out[name] = values / 10.0 ** price_precision
        elif name in _SIZE_FIELDS:
            out[name] = values / 10.0 ** size_precision
        else:
            out[name] = values / 10.0 ** (price_precision + size_precision)
    return out


# ---------------------------------------------------------------------------------------------------
# The aggregator
# ---------------------------------------------------------------------------------------------------

@cython.final
cdef class BarAggregator:
    """Bars of one instrument from its trades; see the module doc for every rule.

    BarAggregator(instrument_id, kind, size, *, price_precision, size_precision, empty="skip")

    kind: "time", "tick", "volume" or "notional". size: time: seconds (int, timedelta, "5m"); tick: trades;
    volume: raw size (int) or a decimal string; notional: raw price * size at price_precision +
    size_precision (int) or a decimal string in quote units. empty: "skip" or "fill" (time bars).
    One thread at a time: the engine thread owns an aggregator. Not picklable.
    """

    def __cinit__(self, uint32_t instrument_id, str kind, size, *, int price_precision, int size_precision,
                  str empty="skip"):
        _check_precisions(price_precision, size_precision)
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
        if empty not in _EMPTY:
            raise ValueError(f"empty must be one of {sorted(_EMPTY)}, got {empty!r}")
        self.instrument_id = instrument_id
        self.price_precision = price_precision
        self.size_precision = size_precision
        self._kind = _KINDS[kind]
        self._empty = _EMPTY[empty]
        if self._empty == EMPTY_FILL and self._kind != BAR_TIME:
            raise ValueError("empty='fill' applies to time bars only (other kinds have no empty intervals)")
        if self._kind == BAR_TIME:
            self._size_arg = _interval_seconds(size)
            self._interval_us = self._size_arg * US_PER_SECOND
        elif self._kind == BAR_TICK:
            if isinstance(size, (bool, float, str)):
                raise TypeError(f"a tick bar's size is a number of trades (int), got {size!r}")
            self._size_arg = operator.index(size)
            if not 1 <= self._size_arg <= INT64_MAX:
                raise ValueError(f"a tick bar needs at least 1 trade, got {self._size_arg}")
            self._threshold = self._size_arg
        elif self._kind == BAR_VOLUME:
            self._size_arg = _raw_threshold(size, size_precision, "volume", INT64_MAX)
            self._threshold = self._size_arg
        else:
            self._size_arg = _raw_threshold(size, price_precision + size_precision, "notional",
                                            (1 << 127) - 1)
            self._notional_threshold = int_to_u128(self._size_arg)
        self._next_start = INT64_MIN
        self._last_ts = INT64_MIN

    @classmethod
    def for_instrument(cls, instrument, str kind, size, **options):
        """An aggregator for an extrema.Instrument: its id and precisions."""
        return cls(instrument.id, kind, size, price_precision=instrument.price_precision,
                   size_precision=instrument.size_precision, **options)

    # ---- compiled API ----------------------------------------------------------------------------

    cdef Py_ssize_t update_c(self, const Record *trade, Record *out, Py_ssize_t out_cap) noexcept nogil:
        """Add one trade. Writes the bar it closes (time bars: the previous interval's; other kinds: the
        bar this trade completes) and, with empty="fill", flat bars for the intervals skipped over."""
        cdef BarState *b = &self._bar
        cdef int64_t ts = trade.ts_exchange
        cdef int64_t price = trade.price
        cdef int64_t qty = trade.quantity
        cdef int64_t start = 0
        cdef bint new_interval = False
        cdef Py_ssize_t written = 0
        if self._fill_next < self._fill_end:
            return BARS_PENDING
        if out_cap < CANDLE_SLOTS:
            return BARS_OUT_TOO_SMALL
        if trade.kind != KIND_TRADE or trade.instrument_id != self.instrument_id:
            self._n_ignored += 1
            return 0
        if price <= 0:
            self._n_bad_price += 1
            return 0
        if qty <= 0:
            self._n_bad_size += 1
            return 0
        if ts < 0 or ts > MAX_TS:
            self._n_bad_time += 1
            return 0
        if ts < self._last_ts:
            self._n_out_of_order += 1
            return 0
        if self._kind == BAR_TIME:
            if ts < self._next_start:
                self._n_late += 1
                return 0
            start = ts - ts % self._interval_us
            new_interval = self._has_bar and start != b.open_time
        # Checked before anything changes, so a rejected trade leaves the aggregator as it was.
        if self._has_bar and not new_interval and qty > INT64_MAX - b.volume:
            self._n_overflow += 1
            return 0

        if self._kind == BAR_TIME:
            if new_interval:
                written = self._close_bar(trade.ts_local, out)     # sets _next_start to its end
            if self._empty == EMPTY_FILL and self._has_last_close and self._next_start < start:
                self._fill_next = self._next_start
                self._fill_end = start
                self._fill_ts_local = trade.ts_local
            self._next_start = start

        if not self._has_bar:
            b.open_time = start if self._kind == BAR_TIME else ts
            b.close_time = start + self._interval_us       # time bars; others set below
            b.open = price
            b.high = price
            b.low = price
            b.volume = 0
            b.buy_volume = 0
            b.sell_volume = 0
            b.trade_count = 0
            b.notional = 0
            self._has_bar = True
        if price > b.high:
            b.high = price
        if price < b.low:
            b.low = price
        b.close = price
        b.volume += qty
        if not (trade.flags & FLAG_AGGRESSOR_UNKNOWN):
            if trade.flags & FLAG_ASK:
                b.sell_volume += qty
            else:
                b.buy_volume += qty
        b.trade_count += 1
        b.notional += <ex_u128>price * <ex_u128>qty
        self._last_ts = ts
        self._n_trades += 1

        if self._kind == BAR_TIME:
            if self._fill_next < self._fill_end:
                written += self._write_flat(out + written, out_cap - written)
            return written
        b.close_time = ts + 1
        if ((self._kind == BAR_TICK and b.trade_count >= self._threshold)
                or (self._kind == BAR_VOLUME and b.volume >= self._threshold)
                or (self._kind == BAR_NOTIONAL and b.notional >= self._notional_threshold)):
            return self._close_bar(trade.ts_local, out)
        return 0

    cdef Py_ssize_t on_time_c(self, int64_t now_us, Record *out, Py_ssize_t out_cap) noexcept nogil:
        """Time bars: close every interval that ended at or before now_us (the open bar, and with
        empty="fill" the empty intervals after it). Later trades in those intervals are late. Other
        kinds: nothing (they close on size, not time)."""
        cdef int64_t current_start
        cdef Py_ssize_t written = 0
        if self._fill_next < self._fill_end:
            return BARS_PENDING
        if out_cap < CANDLE_SLOTS:
            return BARS_OUT_TOO_SMALL
        if self._kind != BAR_TIME or now_us < 0:
            return 0
        current_start = now_us - now_us % self._interval_us      # the interval holding now_us is open
        if self._has_bar:
            if self._bar.close_time > now_us:
                return 0
            written = self._close_bar(now_us, out)
        if self._next_start < current_start:
            if self._empty == EMPTY_FILL and self._has_last_close:
                self._fill_next = self._next_start
                self._fill_end = current_start
                self._fill_ts_local = now_us
            self._next_start = current_start
        return written + self._write_flat(out + written, out_cap - written)

    cdef Py_ssize_t flush_c(self, int64_t now_us, Record *out, Py_ssize_t out_cap) noexcept nogil:
        """End of data: on_time_c(now_us), then close the partial bar whatever its size or interval (a
        time bar keeps its interval's bounds; trades before its end are then late)."""
        cdef Py_ssize_t written = self.on_time_c(now_us, out, out_cap)
        if written < 0:
            return written
        if self._has_bar:
            # on_time_c left the bar open, so it wrote nothing and queued no flat bars: out has room.
            written += self._close_bar(now_us, out + written)
        return written

    cdef Py_ssize_t drain_c(self, Record *out, Py_ssize_t out_cap) noexcept nogil:
        """Write the flat bars an earlier call could not fit; 0 when none wait."""
        if self._fill_next >= self._fill_end:
            return 0
        if out_cap < CANDLE_SLOTS:
            return BARS_OUT_TOO_SMALL
        return self._write_flat(out, out_cap)

    cdef bint has_pending_c(self) noexcept nogil:
        return self._fill_next < self._fill_end

    # ---- internals -------------------------------------------------------------------------------

    cdef Py_ssize_t _close_bar(self, int64_t ts_local, Record *out) noexcept nogil:
        """Emit the open bar (the caller guarantees CANDLE_SLOTS of room) and forget it."""
        self._write_candle(out, &self._bar, ts_local)
        self._last_close = self._bar.close
        self._has_last_close = True
        self._has_bar = False
        if self._kind == BAR_TIME:
            self._next_start = self._bar.close_time
        self._n_bars += 1
        return CANDLE_SLOTS

    cdef Py_ssize_t _write_flat(self, Record *out, Py_ssize_t out_cap) noexcept nogil:
        """As many pending flat bars as fit in out_cap, oldest first."""
        cdef BarState flat
        cdef Py_ssize_t written = 0
        flat.open = self._last_close
        flat.high = self._last_close
        flat.low = self._last_close
        flat.close = self._last_close
        flat.volume = 0
        flat.buy_volume = 0
        flat.sell_volume = 0
        flat.trade_count = 0
        flat.notional = 0
        while self._fill_next < self._fill_end and out_cap - written >= CANDLE_SLOTS:
            flat.open_time = self._fill_next
            flat.close_time = self._fill_next + self._interval_us
            self._write_candle(out + written, &flat, self._fill_ts_local)
            written += CANDLE_SLOTS
            self._fill_next += self._interval_us
            self._n_bars += 1
            self._n_flat += 1
        return written

    cdef void _write_candle(self, Record *out, const BarState *b, int64_t ts_local) noexcept nogil:
        cdef Record *head = out
        cdef Record *cont = out + 1
        head.kind = KIND_CANDLE
        head.flags = 1 << CONT_SHIFT               # one continuation slot follows
        head.instrument_id = self.instrument_id
        head.ts_exchange = b.open_time
        head.ts_local = ts_local
        head.sequence = b.trade_count
        head.price = b.open
        head.quantity = b.volume
        head.aux0 = b.high
        head.aux1 = b.low
        cont.kind = KIND_CONTINUATION
        cont.flags = 1                             # its index among the continuations
        cont.instrument_id = self.instrument_id
        cont.ts_exchange = b.close                 # p0
        cont.ts_local = vwap_raw(b.notional, b.volume) if b.volume > 0 else b.close   # p1
        cont.sequence = b.buy_volume               # p2
        cont.price = b.sell_volume                 # p3
        cont.quantity = b.close_time               # p4
        cont.aux0 = saturate_i64(b.notional)       # p5
        cont.aux1 = self.series_id                 # p6

    cdef object _run(self, const Record *trades, Py_ssize_t n, int64_t now_us, int op):
        """The engine's loop from Python: update_c over `trades` (or one on_time_c / flush_c), then
        drain_c; the output array grows (doubling) where the engine would route a full buffer."""
        cdef Py_ssize_t cap = 2 * n + 16
        cdef Py_ssize_t written = 0, i = 0, k
        cdef bint timer_done = op == OP_UPDATE
        cdef cnp.ndarray out = np.empty(cap, dtype=RECORD_DTYPE)
        cdef cnp.ndarray grown
        cdef Record *dst = <Record *>cnp.PyArray_DATA(out)
        while True:
            with nogil:
                while True:
                    if self._fill_next < self._fill_end:
                        k = self.drain_c(dst + written, cap - written)
                        if k > 0:
                            written += k
                        if self._fill_next < self._fill_end:
                            break                      # out of room
                        continue
                    if cap - written < CANDLE_SLOTS:
                        break
                    if not timer_done:
                        if op == OP_ON_TIME:
                            written += self.on_time_c(now_us, dst + written, cap - written)
                        else:
                            written += self.flush_c(now_us, dst + written, cap - written)
                        timer_done = True
                        continue
                    if i >= n:
                        break
                    # Never negative here: nothing is pending and there is room for a candle.
                    written += self.update_c(&trades[i], dst + written, cap - written)
                    i += 1
            if i >= n and timer_done and self._fill_next >= self._fill_end:
                break
            cap *= 2
            grown = np.empty(cap, dtype=RECORD_DTYPE)
            grown[:written] = out[:written]
            out = grown
            dst = <Record *>cnp.PyArray_DATA(out)
        return out[:written].copy() if written < cap else out

    # ---- Python API ------------------------------------------------------------------------------

    def update_records(self, trades):
        """Feed a RECORD_DTYPE array (trades of this instrument; other records are ignored and counted).
        Returns the candle records of the bars they closed: 2 slots per bar, in order."""
        cdef cnp.ndarray arr = as_record_array(trades, "update_records")
        return self._run(record_data(arr), cnp.PyArray_DIM(arr, 0), 0, OP_UPDATE)

    def update(self, int64_t price_raw, int64_t quantity_raw, int64_t ts_exchange, *, side=None,
               int64_t ts_local=0, int64_t trade_id=0):
        """Feed one trade given as raw values; side: 'buy' / 'sell' (the aggressor) or None (unknown).
        Returns the candle records of the bars it closed."""
        cdef Record trade
        trade.kind = KIND_TRADE
        trade.flags = _side_flags(side)
        trade.instrument_id = self.instrument_id
        trade.ts_exchange = ts_exchange
        trade.ts_local = ts_local
        trade.sequence = trade_id
        trade.price = price_raw
        trade.quantity = quantity_raw
        trade.aux0 = 0
        trade.aux1 = 0
        return self._run(&trade, 1, 0, OP_UPDATE)

    def on_time(self, int64_t now_us):
        """Close what time has closed (time bars): the bar whose interval ended at or before now_us and,
        with empty="fill", the empty intervals up to the one holding now_us. Returns candle records."""
        return self._run(NULL, 0, now_us, OP_ON_TIME)

    def flush(self, int64_t now_us):
        """End of data: on_time(now_us), then the partial bar (if any) is closed too. Returns candles.
        With empty="fill", pass the data's end time (a replay's last timestamp), not the wall clock:
        every interval up to now_us gets a flat bar."""
        return self._run(NULL, 0, now_us, OP_FLUSH)

    def to_bars(self, candles, *, bint raw=False):
        """candles_to_bars at this aggregator's precisions."""
        return candles_to_bars(candles, self.price_precision, self.size_precision, raw=raw)

    def bars(self, candles):
        """The candles in a record array as a list of Bar objects."""
        cdef cnp.ndarray arr = as_record_array(candles, "bars")
        cdef const Record *data = record_data(arr)
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0), i = 0
        cdef list result = []
        while i < n:
            if data[i].kind == KIND_CANDLE:
                _check_candle(&data[i], n - i, i)
                result.append(_bar_from_records(&data[i], &data[i + 1], self.price_precision,
                                                self.size_precision))
                i += 2
            else:
                i += 1
        return result

    @property
    def partial(self):
        """The bar being built, as a Bar (ts_local 0), or None. For time bars close_time is the interval
        end; for other kinds the latest trade's ts_exchange + 1."""
        cdef Bar bar
        cdef const BarState *b = &self._bar
        if not self._has_bar:
            return None
        bar = _new_bar(self.instrument_id, self.price_precision, self.size_precision)
        bar.open_time = b.open_time
        bar.close_time = b.close_time
        bar.trade_count = b.trade_count
        bar.open_raw = b.open
        bar.high_raw = b.high
        bar.low_raw = b.low
        bar.close_raw = b.close
        bar.vwap_raw = vwap_raw(b.notional, b.volume)
        bar.volume_raw = b.volume
        bar.buy_volume_raw = b.buy_volume
        bar.sell_volume_raw = b.sell_volume
        bar.quote_volume_raw = saturate_i64(b.notional)
        return bar

    @property
    def partial_notional_raw(self):
        """The partial bar's exact notional (Python int, never saturated), 0 without a partial bar."""
        return u128_to_int(self._bar.notional) if self._has_bar else 0

    @property
    def kind(self):
        return _KIND_NAMES[self._kind]

    @property
    def size(self):
        """The threshold as normalised: seconds (time), trades (tick), raw size (volume) or raw notional
        at price + size precision (notional)."""
        return self._size_arg

    @property
    def empty(self):
        return _EMPTY_NAMES[self._empty]

    @property
    def interval_us(self):
        """Time bars: the interval in µs; other kinds: None."""
        return self._interval_us if self._kind == BAR_TIME else None

    @property
    def last_trade_time(self):
        """ts_exchange of the latest accepted trade, or None."""
        return None if self._last_ts == INT64_MIN else self._last_ts

    @property
    def pending_slots(self):
        """Record slots of flat bars waiting for drain_c (always 0 between Python calls)."""
        if self._fill_next >= self._fill_end:
            return 0
        return (self._fill_end - self._fill_next) // self._interval_us * CANDLE_SLOTS

    @property
    def stats(self):
        """Counters: accepted trades, bars emitted (flat ones included), and every kind of skipped input."""
        return {"trades": self._n_trades, "bars": self._n_bars, "flat_bars": self._n_flat,
                "ignored": self._n_ignored, "bad_price": self._n_bad_price, "bad_size": self._n_bad_size,
                "bad_time": self._n_bad_time, "out_of_order": self._n_out_of_order, "late": self._n_late,
                "overflow": self._n_overflow}

    def __repr__(self):
        return (f"BarAggregator(instrument_id={self.instrument_id}, kind={self.kind!r}, size={self._size_arg!r}, "
                f"price_precision={self.price_precision}, size_precision={self.size_precision}, "
                f"empty={self.empty!r})")
