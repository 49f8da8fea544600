"""Plain-Python reference for extrema._core.bars.BarAggregator (the oracle of the differential tests).

The rules are the ones in the module doc of src/extrema/_core/bars.pyx. This model keeps the open bar as
a list of its trades and computes every field from that list when the bar closes (max, min, sums with
Python's unbounded ints), where the compiled aggregator updates running int64 / 128-bit accumulators
per trade: the two agree only if the incremental arithmetic is exact.

Bars are dicts with the keys of BAR_FIELDS (raw ints, times in µs). `candles_as_dicts` turns compiled
candle records into the same dicts, checking the multi-slot layout on the way.
"""
from dataclasses import dataclass

KIND_TRADE = 2
KIND_CANDLE = 5
KIND_CONTINUATION = 15
FLAG_ASK = 0x0001
FLAG_AGGRESSOR_UNKNOWN = 0x0008
CONT_SHIFT = 12

INT64_MAX = 2**63 - 1
MAX_TS = 2**62

BAR_FIELDS = ("instrument_id", "open_time", "close_time", "ts_local", "trade_count", "open", "high", "low",
              "close", "vwap", "volume", "buy_volume", "sell_volume", "quote_volume")

STAT_KEYS = ("trades", "bars", "flat_bars", "ignored", "bad_price", "bad_size", "bad_time", "out_of_order",
             "late", "overflow")


@dataclass(frozen=True)
class Trade:
    ts: int
    ts_local: int
    price: int
    qty: int
    flags: int


class ReferenceBars:
    """kind: "time" (threshold = interval in µs), "tick" (trades), "volume" (raw size), "notional" (raw
    price * size). empty: "skip" or "fill" (time bars)."""

    def __init__(self, instrument_id, kind, threshold, empty="skip"):
        assert kind in ("time", "tick", "volume", "notional") and threshold >= 1
        self.instrument_id = instrument_id
        self.kind = kind
        self.threshold = threshold
        self.fill = empty == "fill"
        self.trades = []            # the open bar's trades, in arrival order
        self.bar_start = None       # time bars: the open bar's interval start
        self.closed_until = None    # time bars: every interval before this is closed
        self.last_ts = None
        self.last_close = None
        self.stats = dict.fromkeys(STAT_KEYS, 0)

    # ---- bars ------------------------------------------------------------------------------------

    def _bar(self, open_time, close_time, ts_local):
        trades = self.trades
        volume = sum(t.qty for t in trades)
        notional = sum(t.price * t.qty for t in trades)
        return {
            "instrument_id": self.instrument_id, "open_time": open_time, "close_time": close_time,
            "ts_local": ts_local, "trade_count": len(trades),
            "open": trades[0].price, "high": max(t.price for t in trades),
            "low": min(t.price for t in trades), "close": trades[-1].price,
            "vwap": (2 * notional + volume) // (2 * volume),          # notional / volume, half up
            "volume": volume,
            "buy_volume": sum(t.qty for t in trades if not t.flags & (FLAG_ASK | FLAG_AGGRESSOR_UNKNOWN)),
            "sell_volume": sum(t.qty for t in trades
                               if t.flags & FLAG_ASK and not t.flags & FLAG_AGGRESSOR_UNKNOWN),
            "quote_volume": min(notional, INT64_MAX),
        }

    def _flat(self, open_time, ts_local):
        p = self.last_close
        return {"instrument_id": self.instrument_id, "open_time": open_time,
                "close_time": open_time + self.threshold, "ts_local": ts_local, "trade_count": 0,
                "open": p, "high": p, "low": p, "close": p, "vwap": p, "volume": 0, "buy_volume": 0,
                "sell_volume": 0, "quote_volume": 0}

    def _open_bounds(self):
        if self.kind == "time":
            return self.bar_start, self.bar_start + self.threshold
        return self.trades[0].ts, self.trades[-1].ts + 1

    def _close(self, ts_local):
        bar = self._bar(*self._open_bounds(), ts_local)
        if self.kind == "time":
            self.closed_until = self.bar_start + self.threshold
        self.last_close = self.trades[-1].price
        self.trades = []
        self.bar_start = None
        self.stats["bars"] += 1
        return bar

    def _flats(self, start, end, ts_local):
        out = []
        if self.fill and self.last_close is not None:
            for t in range(start, end, self.threshold):
                out.append(self._flat(t, ts_local))
                self.stats["bars"] += 1
                self.stats["flat_bars"] += 1
        return out

    def _reached(self):
        if self.kind == "tick":
            return len(self.trades) >= self.threshold
        if self.kind == "volume":
            return sum(t.qty for t in self.trades) >= self.threshold
        if self.kind == "notional":
            return sum(t.price * t.qty for t in self.trades) >= self.threshold
        return False

    # ---- input -----------------------------------------------------------------------------------

    def update(self, kind, instrument_id, flags, ts, ts_local, price, qty):
        """One record; returns the bars it closed, in order."""
        if kind != KIND_TRADE or instrument_id != self.instrument_id:
            self.stats["ignored"] += 1
            return []
        if price <= 0:
            self.stats["bad_price"] += 1
            return []
        if qty <= 0:
            self.stats["bad_size"] += 1
            return []
        if not 0 <= ts <= MAX_TS:
            self.stats["bad_time"] += 1
            return []
        if self.last_ts is not None and ts < self.last_ts:
            self.stats["out_of_order"] += 1
            return []
        if self.kind == "time":
            if self.closed_until is not None and ts < self.closed_until:
                self.stats["late"] += 1
                return []
            start = ts - ts % self.threshold
            joins_open_bar = bool(self.trades) and start == self.bar_start
        else:
            joins_open_bar = bool(self.trades)
        if joins_open_bar and sum(t.qty for t in self.trades) + qty > INT64_MAX:
            self.stats["overflow"] += 1
            return []

        out = []
        if self.kind == "time":
            if self.trades and not joins_open_bar:
                out.append(self._close(ts_local))
            if self.closed_until is not None and self.closed_until < start:
                out += self._flats(self.closed_until, start, ts_local)
            self.closed_until = start
            self.bar_start = start
        self.trades.append(Trade(ts, ts_local, price, qty, flags))
        self.last_ts = ts
        self.stats["trades"] += 1
        if self._reached():
            out.append(self._close(ts_local))
        return out

    def update_records(self, records):
        out = []
        for r in records:
            out += self.update(int(r["kind"]), int(r["instrument_id"]), int(r["flags"]), int(r["ts_exchange"]),
                               int(r["ts_local"]), int(r["price"]), int(r["quantity"]))
        return out

    def on_time(self, now):
        if self.kind != "time" or now < 0:
            return []
        out = []
        current_start = now - now % self.threshold
        if self.trades:
            if self.bar_start + self.threshold > now:
                return []
            out.append(self._close(now))
        if self.closed_until is None or self.closed_until < current_start:
            if self.closed_until is not None:
                out += self._flats(self.closed_until, current_start, now)
            self.closed_until = current_start
        return out

    def flush(self, now):
        out = self.on_time(now)
        if self.trades:
            out.append(self._close(now))
        return out

    def partial(self):
        """The open bar (ts_local 0), or None."""
        if not self.trades:
            return None
        return self._bar(*self._open_bounds(), 0)


def candles_as_dicts(records):
    """Compiled candle records (RECORD_DTYPE, head + 1 continuation each) -> bar dicts, asserting the
    documented layout of every slot."""
    assert len(records) % 2 == 0, f"{len(records)} slots is not a whole number of candles"
    out = []
    for i in range(0, len(records), 2):
        head, cont = records[i], records[i + 1]
        assert int(head["kind"]) == KIND_CANDLE, head
        assert int(head["flags"]) == 1 << CONT_SHIFT, head            # one continuation, no other flag
        assert int(cont["kind"]) == KIND_CONTINUATION and int(cont["flags"]) == 1, cont
        assert cont["instrument_id"] == head["instrument_id"]
        assert int(cont["aux1"]) == 0                                  # p6 unused
        out.append({
            "instrument_id": int(head["instrument_id"]), "open_time": int(head["ts_exchange"]),
            "close_time": int(cont["quantity"]), "ts_local": int(head["ts_local"]),
            "trade_count": int(head["sequence"]), "open": int(head["price"]), "high": int(head["aux0"]),
            "low": int(head["aux1"]), "close": int(cont["ts_exchange"]), "vwap": int(cont["ts_local"]),
            "volume": int(head["quantity"]), "buy_volume": int(cont["sequence"]),
            "sell_volume": int(cont["price"]), "quote_volume": int(cont["aux0"]),
        })
    return out
