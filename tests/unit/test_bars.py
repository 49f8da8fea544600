"""extrema._core.bars: hand-checked bars of every kind, the empty-interval and threshold rules, bad input,
the candle record layout, and the compiled aggregator against tests/models/bars_reference.py on
hypothesis-generated trade streams (gaps, bursts, equal timestamps, threshold crossings, timers)."""
import datetime
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import extrema
from extrema import RecordFlag, RecordKind, with_continuations
from extrema._core import bars as core_bars
from extrema._core.bars import (BAR_DTYPE, BAR_RAW_DTYPE, Bar, BarAggregator, candles_to_bars)

from models.bars_reference import INT64_MAX, ReferenceBars, candles_as_dicts

S = 1_000_000          # µs per second
ASK = int(RecordFlag.ASK)
UNKNOWN = int(RecordFlag.AGGRESSOR_UNKNOWN)


def trades(rows, instrument_id=1):
    """rows of (ts_exchange, price_raw, qty_raw[, flags[, ts_local]]) -> TRADE records."""
    rec = extrema.empty_records(len(rows))
    for i, row in enumerate(rows):
        ts, price, qty = row[:3]
        rec[i]["kind"] = RecordKind.TRADE
        rec[i]["instrument_id"] = instrument_id
        rec[i]["ts_exchange"] = ts
        rec[i]["price"] = price
        rec[i]["quantity"] = qty
        rec[i]["flags"] = row[3] if len(row) > 3 else 0
        rec[i]["ts_local"] = row[4] if len(row) > 4 else ts + 7
        rec[i]["sequence"] = i + 1
    return rec


def agg(kind="time", size="1s", **kw):
    kw.setdefault("price_precision", 2)
    kw.setdefault("size_precision", 3)
    return BarAggregator(1, kind, size, **kw)


def bars_of(candles):
    return candles_as_dicts(candles)


# ------------------------------------------------------------------------------------ the module

def test_the_compiled_module_is_what_ran():
    path = Path(core_bars.__file__)
    assert path.name.endswith(sysconfig.get_config_var("EXT_SUFFIX")) and path.suffix == ".so"
    assert not hasattr(agg(), "__dict__")                                        # an extension type
    for cls in (BarAggregator, Bar):
        with pytest.raises(TypeError):
            type("Sub", (cls,), {})                                              # @cython.final
    with pytest.raises(TypeError, match="Bar.from_candle"):
        Bar()


# ------------------------------------------------------------------------------------ time bars

def test_time_bars_hand_checked():
    a = agg("time", "1s")
    stream = trades([
        (10 * S + 100, 10_000, 2_000, 0),            # buyer aggressor
        (10 * S + 900_000, 10_050, 1_000, ASK),      # seller aggressor
        (10 * S + 900_000, 9_990, 3_000, UNKNOWN),   # equal timestamp, unknown aggressor
        (11 * S + 5, 10_020, 500, 0),                # closes the 10 s bar
    ])
    candles = a.update_records(stream)
    assert len(candles) == 2
    head, cont = candles
    assert head["kind"] == RecordKind.CANDLE and cont["kind"] == RecordKind.CONTINUATION
    assert head["flags"] == with_continuations(0, 1) and cont["flags"] == 1
    assert head["instrument_id"] == cont["instrument_id"] == 1
    # head: open time, ts_local of the trade that closed it, trade count, open, volume, high, low
    assert (head["ts_exchange"], head["ts_local"], head["sequence"]) == (10 * S, 11 * S + 5 + 7, 3)
    assert (head["price"], head["quantity"], head["aux0"], head["aux1"]) == (10_000, 6_000, 10_050, 9_990)
    # cont p0..p6 = close, VWAP, buy volume, sell volume, close time, quote volume, 0
    notional = 10_000 * 2_000 + 10_050 * 1_000 + 9_990 * 3_000
    assert notional == 60_020_000
    assert (cont["ts_exchange"], cont["ts_local"], cont["sequence"], cont["price"]) == (9_990, 10_003, 2_000, 1_000)
    assert (cont["quantity"], cont["aux0"], cont["aux1"]) == (11 * S, notional, 0)
    (bar,) = a.bars(candles)
    assert (bar.open, bar.high, bar.low, bar.close, bar.vwap) == (100.0, 100.5, 99.9, 99.9, 100.03)
    assert (bar.volume, bar.buy_volume, bar.sell_volume, bar.quote_volume) == (6.0, 2.0, 1.0, 600.2)
    assert (bar.open_time, bar.close_time, bar.trade_count, bar.is_empty) == (10 * S, 11 * S, 3, False)
    part = a.partial
    assert (part.open_time, part.close_time, part.open_raw, part.volume_raw, part.trade_count) == \
        (11 * S, 12 * S, 10_020, 500, 1)
    assert a.stats["trades"] == 4 and a.stats["bars"] == 1


def test_vwap_is_rounded_half_up_to_a_raw_price():
    a = agg("tick", 2)
    assert bars_of(a.update_records(trades([(1, 100, 1), (2, 101, 1)])))[0]["vwap"] == 101    # 100.5
    assert bars_of(a.update_records(trades([(3, 100, 2), (4, 101, 1)])))[0]["vwap"] == 100    # 100.33
    assert bars_of(a.update_records(trades([(5, 100, 1), (6, 101, 2)])))[0]["vwap"] == 101    # 100.67


@pytest.mark.parametrize("size, seconds", [
    ("1s", 1), ("15s", 15), ("5m", 300), ("1h", 3600), ("4h", 14400), ("1d", 86400), (60, 60),
    (np.int64(30), 30), (datetime.timedelta(minutes=2), 120)])
def test_intervals(size, seconds):
    a = agg("time", size)
    assert a.size == seconds and a.interval_us == seconds * S and a.kind == "time"


@pytest.mark.parametrize("size, error", [
    ("0s", ValueError), ("2d", ValueError), (0, ValueError), (86401, ValueError), (-5, ValueError),
    ("1M", ValueError), ("5 minutes", ValueError), ("1.5s", ValueError), (1.0, TypeError), (True, TypeError),
    (datetime.timedelta(milliseconds=1500), ValueError), (None, TypeError)])
def test_bad_intervals(size, error):
    with pytest.raises(error):
        agg("time", size)


def test_time_bars_are_aligned_to_the_epoch():
    day = 86_400 * S
    t0 = 19_000 * day + 3_723 * S + 123_456            # 01:02:03.123456 on some day
    for size, start in (("5m", 19_000 * day + 3_600 * S), ("1h", 19_000 * day + 3_600 * S),
                        ("1d", 19_000 * day), (7, t0 - t0 % (7 * S))):
        a = agg("time", size)
        a.update_records(trades([(t0, 100, 1)]))
        part = a.partial
        assert part.open_time == start and part.close_time == start + a.interval_us
        assert part.open_time % a.interval_us == 0


def test_empty_intervals_skip_by_default_and_fill_on_request():
    stream = trades([(0, 100, 1), (500_000, 105, 1), (3 * S + 1, 90, 2), (3 * S + 2, 95, 1)])
    skip = agg("time", "1s")
    assert skip.empty == "skip"
    out = bars_of(skip.update_records(stream))
    assert [b["open_time"] for b in out] == [0]
    fill = agg("time", "1s", empty="fill")
    out = bars_of(fill.update_records(stream))
    assert [b["open_time"] for b in out] == [0, 1 * S, 2 * S]
    real, flat1, flat2 = out
    assert (real["close"], real["trade_count"]) == (105, 2)
    for flat, start in ((flat1, S), (flat2, 2 * S)):
        assert flat == {"instrument_id": 1, "open_time": start, "close_time": start + S,
                        "ts_local": 3 * S + 1 + 7, "trade_count": 0, "open": 105, "high": 105, "low": 105,
                        "close": 105, "vwap": 105, "volume": 0, "buy_volume": 0, "sell_volume": 0,
                        "quote_volume": 0}
    assert fill.stats["flat_bars"] == 2 and fill.stats["bars"] == 3
    assert Bar.from_candle(fill.update_records(trades([(5 * S, 1, 1)])), 2, price_precision=2,
                           size_precision=3).is_empty


def test_nothing_is_filled_before_the_first_trade():
    a = agg("time", "1s", empty="fill")
    assert len(a.on_time(100 * S)) == 0
    assert len(a.update_records(trades([(100 * S + 5, 100, 1)]))) == 0


def test_a_long_gap_fills_more_bars_than_one_buffer_and_all_arrive_in_order():
    a = agg("time", "1s", empty="fill")
    gap = 10_000
    out = bars_of(a.update_records(trades([(0, 100, 1), (gap * S, 101, 1)])))
    assert len(out) == gap                              # the real bar + 9,999 flat ones
    assert [b["open_time"] for b in out] == [i * S for i in range(gap)]
    assert all(b["trade_count"] == 0 and b["close"] == 100 for b in out[1:])
    assert a.pending_slots == 0 and a.stats["flat_bars"] == gap - 1


def test_a_timer_closes_a_bar_no_trade_follows():
    a = agg("time", "1s")
    a.update_records(trades([(5 * S + 10, 100, 1), (5 * S + 20, 101, 1)]))
    assert len(a.on_time(5 * S + 999_999)) == 0         # the interval has not ended
    out = bars_of(a.on_time(6 * S))                     # close time is exclusive: ended at 6 s
    assert len(out) == 1 and out[0]["ts_local"] == 6 * S and out[0]["close"] == 101
    assert a.partial is None and len(a.on_time(6 * S)) == 0
    # a trade of an interval the timer closed is late: dropped and counted, never re-opens a bar
    assert len(a.update_records(trades([(5 * S + 30, 102, 1)]))) == 0
    assert a.stats["late"] == 1 and a.partial is None


def test_a_timer_fills_empty_intervals_up_to_now():
    a = agg("time", "1s", empty="fill")
    a.update_records(trades([(0, 100, 1)]))
    out = bars_of(a.on_time(3 * S + 500))
    assert [(b["open_time"], b["trade_count"]) for b in out] == [(0, 1), (S, 0), (2 * S, 0)]
    assert all(b["ts_local"] == 3 * S + 500 for b in out)
    # the interval holding `now` is still open: a trade there starts a bar, with no flat bar before it
    assert len(a.update_records(trades([(3 * S + 600, 99, 1)]))) == 0
    assert a.partial.open_time == 3 * S


def test_flush_closes_the_partial_bar_of_every_kind():
    t = agg("time", "1m")
    t.update_records(trades([(10 * S, 100, 1)]))
    out = bars_of(t.flush(20 * S))
    assert len(out) == 1 and (out[0]["open_time"], out[0]["close_time"]) == (0, 60 * S)
    assert len(t.update_records(trades([(30 * S, 100, 1)]))) == 0 and t.stats["late"] == 1
    v = agg("volume", 100)
    v.update_records(trades([(1, 100, 30), (2, 100, 30)]))
    out = bars_of(v.flush(99))
    assert len(out) == 1 and out[0]["volume"] == 60 and out[0]["close_time"] == 3 and out[0]["ts_local"] == 99
    assert len(v.flush(100)) == 0


# ------------------------------------------------------------------------ tick / volume / notional

def test_tick_bars():
    a = agg("tick", 3)
    out = bars_of(a.update_records(trades([(i, 100 + i, 1) for i in range(10)])))
    assert [(b["open"], b["close"], b["trade_count"]) for b in out] == [(100, 102, 3), (103, 105, 3), (106, 108, 3)]
    assert [(b["open_time"], b["close_time"]) for b in out] == [(0, 3), (3, 6), (6, 9)]
    assert a.partial.trade_count == 1


def test_volume_bars_close_whole_on_the_crossing_trade_without_carry_over():
    a = agg("volume", 10)
    out = bars_of(a.update_records(trades([
        (1, 100, 4), (2, 101, 6),          # exactly 10: closes
        (3, 102, 7), (4, 103, 5),          # 12: the crossing trade is included whole
        (5, 104, 95),                      # one block trade of 9.5 thresholds: one bar, not nine
        (6, 105, 3)])))
    assert [b["volume"] for b in out] == [10, 12, 95]
    assert [b["trade_count"] for b in out] == [2, 2, 1]
    assert a.partial.volume_raw == 3                  # the next bar starts empty: no overshoot carried


def test_volume_threshold_as_a_decimal_string():
    a = agg("volume", "1.5")                          # size precision 3
    assert a.size == 1_500
    with pytest.raises(ValueError, match="decimals"):
        agg("volume", "1.0005")
    with pytest.raises(TypeError, match="exact"):
        agg("volume", 1.5)


def test_notional_bars_are_exact_in_128_bits():
    # price 1e17 raw * size 1e12 raw = 1e29 per trade: far beyond 64 bits (1.8e19)
    a = BarAggregator(1, "notional", 3 * 10**29, price_precision=2, size_precision=3)
    a.update_records(trades([(1, 10**17, 10**12), (2, 10**17 + 1, 10**12)]))
    assert a.partial_notional_raw == 2 * 10**29 + 10**12
    assert a.partial.quote_volume_raw == INT64_MAX               # the record field saturates
    assert len(a.update_records(trades([(3, 10**17 - 1, 10**12 - 1)]))) == 0   # 3e29 - 1e17 + 1: short
    assert a.partial_notional_raw == 3 * 10**29 - 10**17 + 1
    out = bars_of(a.update_records(trades([(4, 1, 10**17)])))                # + 1e17: exactly 3e29 + 1
    assert len(out) == 1 and out[0]["trade_count"] == 4
    notional, volume = 3 * 10**29 + 1, 3 * 10**12 - 1 + 10**17
    assert out[0]["volume"] == volume and out[0]["vwap"] == (2 * notional + volume) // (2 * volume)
    assert out[0]["quote_volume"] == INT64_MAX and a.partial_notional_raw == 0


def test_notional_threshold_just_below_and_at():
    # 1.00 * 2.500 = 2.5 quote units; precision 2 + 3: raw notional 100 * 2500 = 250_000
    a = agg("notional", "5")                           # 5 quote units = 500_000 raw
    assert a.size == 500_000
    assert len(a.update_records(trades([(1, 100, 2_500), (2, 100, 2_499)]))) == 0   # 499_900
    assert a.partial_notional_raw == 499_900
    out = bars_of(a.update_records(trades([(3, 100, 1)])))                          # 500_000
    assert len(out) == 1 and out[0]["quote_volume"] == 500_000 and out[0]["trade_count"] == 3


# -------------------------------------------------------------------------------------- bad input

def test_bad_trades_are_counted_and_change_nothing():
    a = agg("volume", 1_000)
    a.update_records(trades([(100, 500, 10)]))
    before = a.partial
    bad = trades([
        (101, 0, 1), (101, -5, 1),                  # bad price
        (101, 500, 0), (101, 500, -3),              # bad size
        (-1, 500, 1), (2**62 + 1, 500, 1),          # bad time
        (99, 500, 1),                               # earlier than the latest trade
        (101, 500, INT64_MAX),                      # would overflow the bar's volume
    ])
    other = trades([(101, 500, 1)], instrument_id=2)
    book = trades([(101, 500, 1)])
    book["kind"] = RecordKind.BOOK_DELTA
    for batch in (bad, other, book):
        assert len(a.update_records(batch)) == 0
    assert a.partial == before
    assert a.stats == {"trades": 1, "bars": 0, "flat_bars": 0, "ignored": 2, "bad_price": 2, "bad_size": 2,
                       "bad_time": 2, "out_of_order": 1, "late": 0, "overflow": 1}
    assert len(a.update_records(trades([(100, 500, 990)]))) == 2   # an equal timestamp is fine
    assert a.stats["trades"] == 2


@pytest.mark.parametrize("args, kwargs, error", [
    ((1, "renko", 5), {}, ValueError),
    ((1, "tick", 0), {}, ValueError),
    ((1, "tick", 2.0), {}, TypeError),
    ((1, "volume", -1), {}, ValueError),
    ((1, "volume", 2**63), {}, ValueError),
    ((1, "volume", "abc"), {}, ValueError),
    ((1, "volume", "inf"), {}, ValueError),
    ((1, "notional", 0), {}, ValueError),
    ((1, "tick", 5), {"empty": "fill"}, ValueError),
    ((1, "time", 5), {"empty": "zero"}, ValueError),
    ((1, "time", 5), {"price_precision": 19}, ValueError),
])
def test_bad_arguments(args, kwargs, error):
    kwargs = {"price_precision": 2, "size_precision": 3, **kwargs}
    with pytest.raises(error):
        BarAggregator(*args, **kwargs)


def test_bad_record_arrays():
    a = agg()
    with pytest.raises(TypeError):
        a.update_records(np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError):
        a.update_records([1, 2])


# ------------------------------------------------------------------------------- Python surface

def test_update_one_trade_with_a_side():
    a = agg("tick", 3)
    a.update(100, 5, 1, side="buy")
    a.update(100, 7, 2, side=extrema.Side.SELL)
    (bar,) = a.bars(a.update(100, 11, 3, side=None, ts_local=42))
    assert (bar.buy_volume_raw, bar.sell_volume_raw, bar.volume_raw, bar.ts_local) == (5, 7, 23, 42)
    with pytest.raises(ValueError):
        a.update(100, 1, 4, side="long")


def test_candles_to_bars_raw_and_float_skip_other_records():
    a = agg("tick", 2)
    candles = a.update_records(trades([(1, 12_345, 1_500, ASK), (2, 12_355, 500), (3, 1, 1), (4, 2, 1)]))
    mixed = np.concatenate([trades([(9, 1, 1)]), candles[:2], trades([(9, 1, 1)]), candles[2:]])
    raw = candles_to_bars(mixed, 2, 3, raw=True)
    assert raw.dtype == BAR_RAW_DTYPE and len(raw) == 2
    assert raw[0]["open"] == 12_345 and raw[0]["vwap"] == (12_345 * 1_500 + 12_355 * 500 + 1_000) // 2_000
    assert raw[0]["sell_volume"] == 1_500 and raw[0]["buy_volume"] == 500
    flt = a.to_bars(mixed)
    assert flt.dtype == BAR_DTYPE
    assert flt[0]["open"] == 123.45 and flt[0]["volume"] == 2.0
    assert flt[0]["quote_volume"] == (12_345 * 1_500 + 12_355 * 500) / 1e5
    assert [b.to_dict() for b in a.bars(mixed)] == [dict(zip(BAR_RAW_DTYPE.names, r.tolist())) for r in raw]
    assert len(candles_to_bars(trades([(1, 1, 1)]), 2, 3)) == 0
    with pytest.raises(ValueError, match="continuation"):
        candles_to_bars(candles[:1], 2, 3)
    broken = candles.copy()
    broken[1]["kind"] = RecordKind.TRADE
    with pytest.raises(ValueError, match="continuation"):
        candles_to_bars(broken, 2, 3)
    with pytest.raises(ValueError, match="continuation"):
        a.bars(broken)


def test_for_instrument():
    reg = extrema.InstrumentRegistry()
    inst = reg.register("BTC_USDT", extrema.Market.SIM, "0.01", "0.001")
    a = BarAggregator.for_instrument(inst, "notional", "1000", empty="skip")
    assert (a.instrument_id, a.price_precision, a.size_precision, a.size) == (inst.id, 2, 3, 1000 * 10**5)
    assert "notional" in repr(a)


# ------------------------------------------------------------------- compiled == reference (hypothesis)

@st.composite
def scenarios(draw):
    kind = draw(st.sampled_from(["time", "tick", "volume", "notional"]))
    empty = "skip"
    if kind == "time":
        seconds = draw(st.sampled_from([1, 2, 5, 60]))
        size, threshold = seconds, seconds * S
        empty = draw(st.sampled_from(["skip", "fill"]))
        step = seconds * S
    elif kind == "tick":
        size = threshold = draw(st.integers(1, 6))
        step = S
    elif kind == "volume":
        size = threshold = draw(st.integers(1, 60))
        step = S
    else:
        size = threshold = draw(st.integers(1, 6_000))
        step = S
    delta = st.one_of(
        st.just(0),                                       # bursts at one timestamp
        st.integers(1, step // 3),                        # within an interval
        st.integers(step // 2, 3 * step),                 # into the next ones
        st.integers(5 * step, 400 * step),                # gaps (fills beyond the first buffer)
        st.integers(-2 * step, -1),                       # out of order / late
    )
    trade = st.tuples(
        delta,
        st.one_of(st.integers(1, 150), st.integers(1, 150), st.integers(-3, 0)),      # price raw
        st.one_of(st.integers(1, 25), st.integers(1, 25), st.integers(-2, 0),
                  st.just(INT64_MAX - 5)),                                          # size raw
        st.sampled_from([0, ASK, UNKNOWN, ASK | UNKNOWN, 0, ASK]),
        st.sampled_from([(2, 1), (2, 1), (2, 1), (2, 1), (2, 7), (1, 1)]),          # (kind, instrument)
    )
    op = st.one_of(
        st.tuples(st.just("trades"), st.lists(trade, min_size=1, max_size=25)),
        st.tuples(st.just("on_time"), st.integers(-step, 3 * step)),
        st.tuples(st.just("flush"), st.integers(-step, 2 * step)),
    )
    ops = draw(st.lists(op, min_size=1, max_size=10))
    return kind, size, threshold, empty, ops


def run_both(kind, size, threshold, empty, ops):
    compiled = BarAggregator(1, kind, size, price_precision=2, size_precision=3, empty=empty)
    reference = ReferenceBars(1, kind, threshold, empty)
    clock = 10**12 + 123
    emitted = 0
    for name, arg in ops:
        if name == "trades":
            rows = []
            for delta, price, qty, flags, (rec_kind, iid) in arg:
                clock = max(clock + delta, 0)
                rows.append((clock, price, qty, flags, clock + 5, rec_kind, iid))
            rec = trades([r[:5] for r in rows])
            rec["kind"] = [r[5] for r in rows]
            rec["instrument_id"] = [r[6] for r in rows]
            got = candles_as_dicts(compiled.update_records(rec))
            want = reference.update_records(rec)
        else:
            now = clock + arg
            got = candles_as_dicts(getattr(compiled, name)(now))
            want = getattr(reference, name)(now)
        assert got == want, (name, arg)
        emitted += len(got)
        assert compiled.stats == reference.stats
        assert compiled.pending_slots == 0
        part = compiled.partial
        assert (part.to_dict() if part else None) == reference.partial()
    return compiled, emitted


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_compiled_matches_the_reference(scenario):
    run_both(*scenario)


def test_the_differential_harness_sees_bars():
    """The generated streams are not vacuous: a fixed scenario of each kind emits bars through run_both."""
    burst = [(0, 100 + i % 7, 3 + i % 5, [0, ASK, UNKNOWN][i % 3], (2, 1)) for i in range(20)]
    spread = [(S // 2, 100 + i % 7, 3 + i % 5, 0, (2, 1)) for i in range(20)]
    gap = [(50 * S, 90, 4, ASK, (2, 1))]
    for kind, size, threshold, empty in (("time", 1, S, "fill"), ("time", 5, 5 * S, "skip"),
                                         ("tick", 4, 4, "skip"), ("volume", 17, 17, "skip"),
                                         ("notional", 2_000, 2_000, "skip")):
        ops = [("trades", burst), ("trades", spread + gap + spread), ("on_time", 3 * S), ("flush", 0)]
        compiled, emitted = run_both(kind, size, threshold, empty, ops)
        assert emitted >= 4, kind
        assert compiled.stats["trades"] == 61


# --------------------------------------------------------------------- the engine's Cython API (nogil)

ENGINE_LOOP = r'''
# cython: language_level=3
from libc.string cimport memcpy
from libc.stdint cimport int64_t
from extrema._core.types cimport Record
from extrema._core.bars cimport BarAggregator, BARS_PENDING, BARS_OUT_TOO_SMALL

cdef Py_ssize_t route(Record *dst, Py_ssize_t at, const Record *buf, Py_ssize_t k) noexcept nogil:
    memcpy(dst + at, buf, k * sizeof(Record))
    return at + k

def engine_loop(BarAggregator agg, const unsigned char[::1] trades, unsigned char[::1] out,
                Py_ssize_t cap, int64_t end_us):
    """What the engine does per trade, without the GIL: update_c into a `cap`-slot buffer, route it,
    drain_c until 0; flush_c at the end. Returns (slots routed, refusals while pending, too-small code)."""
    cdef const Record *t = <const Record *>&trades[0]
    cdef Record *dst = <Record *>&out[0]
    cdef Record buf[16]
    cdef Py_ssize_t n = trades.shape[0] // sizeof(Record), i, k, routed = 0, refused = 0
    with nogil:
        for i in range(n):
            k = agg.update_c(&t[i], buf, cap)
            while k > 0:
                routed = route(dst, routed, buf, k)
                if agg.has_pending_c() and agg.update_c(&t[i], buf, cap) == BARS_PENDING:
                    refused += 1                     # nothing is consumed while flat bars wait
                k = agg.drain_c(buf, cap)
        k = agg.flush_c(end_us, buf, cap)
        while k > 0:
            routed = route(dst, routed, buf, k)
            k = agg.drain_c(buf, cap)
    return routed, refused, agg.update_c(&t[0], buf, 1) == BARS_OUT_TOO_SMALL
'''


def compile_against_extrema(source, name, work):
    """Cythonize and build a module the way a downstream project (or the engine) cimports bars.pxd."""
    import importlib.util
    import subprocess
    import sys
    pkg_dir = Path(extrema.__file__).parent
    pyx, c_file = work / f"{name}.pyx", work / f"{name}.c"
    pyx.write_text(source)
    subprocess.run([sys.executable, "-m", "cython", "-3", "-I", str(pkg_dir.parent), str(pyx), "-o", str(c_file)],
                   check=True, capture_output=True, text=True)
    so = work / (name + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(sysconfig.get_config_var("CC").split() + [
        "-shared", "-fPIC", "-O1", f"-I{sysconfig.get_paths()['include']}", f"-I{pkg_dir / '_core'}",
        str(c_file), "-o", str(so)], check=True, capture_output=True, text=True)
    spec = importlib.util.spec_from_file_location(name, so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_engine_loop_from_cython_with_a_one_candle_buffer(tmp_path):
    module = compile_against_extrema(ENGINE_LOOP, "bars_engine_loop", tmp_path)
    stream = trades([(0, 100, 1), (500_000, 101, 2, ASK), (40 * S, 99, 1), (40 * S + 1, 98, 3),
                     (45 * S, 97, 1), (45 * S, 96, 0), (44 * S, 95, 1), (300 * S + 5, 100, 2)])
    for cap in (2, 3, 7, 16):
        engine = agg("time", "1s", empty="fill")
        out = extrema.empty_records(1_000)
        routed, refused, too_small = module.engine_loop(engine, stream.view(np.uint8), out.view(np.uint8),
                                                        cap, 400 * S)
        python = agg("time", "1s", empty="fill")
        want = np.concatenate([python.update_records(stream), python.flush(400 * S)])
        assert routed == len(want) == 2 * 400 and (out[:routed] == want).all(), cap
        assert refused > 0 and too_small
        assert engine.stats == python.stats and engine.stats["flat_bars"] == 396   # 400 intervals, 4 with trades
