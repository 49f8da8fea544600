"""Bars inside the engine: aggregators fed by trades, candles routed to on_candle, kernels fed by bars,
time bars closed by the engine's clock."""
import asyncio
import time

import numpy as np
import pytest

import extrema
from extrema import (BarAggregator, EngineBuilder, InstrumentRegistry, Market, RecordKind, RecordSource,
                     Strategy, features as F)


@pytest.fixture
def registry():
    reg = InstrumentRegistry()
    reg.register("BTC_USDT", Market.SIM, "0.01", "0.001")
    return reg


def trades(n, seed=5, start_us=1_700_000_000_000_000):
    rng = np.random.default_rng(seed)
    rec = extrema.empty_records(n)
    rec["kind"] = RecordKind.TRADE
    rec["instrument_id"] = 1
    rec["price"] = 1_000_000 + np.cumsum(rng.integers(-50, 51, n))
    rec["quantity"] = rng.integers(1, 5_000, n)
    rec["flags"] = np.where(rng.random(n) < 0.5, int(extrema.RecordFlag.ASK), 0)
    rec["ts_exchange"] = start_us + np.cumsum(rng.integers(0, 400_000, n))
    rec["sequence"] = np.arange(n)
    return rec


class BarWatcher(Strategy):
    def __init__(self, kind, size):
        super().__init__()
        self.kind, self.size = kind, size
        self.candles = []

    def on_start(self):
        self.series = self.context.bars("BTC_USDT", self.kind, self.size)
        self.atr = self.context.attach_to_bars(self.series, F.Atr(3), "candle")
        self.sma = self.context.attach_to_bars(self.series, F.Sma(2), "candle.close")
        self.atr_seen = []

    def on_candle(self, candle):
        assert candle.series is self.series and candle.series_id == self.series.series_id
        self.candles.append(candle.copy())
        self.atr_seen.append((self.atr.value, self.sma.value))


@pytest.mark.parametrize("kind, size", [("tick", 7), ("volume", "12.5"), ("time", "5s"), ("notional", "50000")])
def test_engine_bars_equal_the_aggregator_and_feed_kernels(registry, kind, size):
    data = trades(600)
    s = BarWatcher(kind, size)
    engine = EngineBuilder(registry).channel(RecordSource(data, batch=50)).strategy(s).build()
    stats = engine.run(timeout=60)
    reference = BarAggregator.for_instrument(registry[1], kind, size)
    want = extrema.candles_to_bars(reference.update_records(data), 2, 3)
    got = [(c.open, c.high, c.low, c.close, c.volume, c.trade_count, c.open_time, c.close_time) for c in s.candles]
    assert len(got) == len(want) > 5 and stats["dispatcher"]["candles"] == len(want)
    assert got == [(b["open"], b["high"], b["low"], b["close"], b["volume"], b["trade_count"], b["open_time"],
                    b["close_time"]) for b in want]
    high, low, close = (np.array([b[f] for b in want]) for f in ("high", "low", "close"))
    np.testing.assert_array_equal([a for a, _ in s.atr_seen], F.atr(high, low, close, 3))
    np.testing.assert_array_equal([m for _, m in s.atr_seen], F.sma(close, 2))


def test_bars_make_the_sources_subscribe_to_trades(registry):
    class Probe:
        async def run(self, emit, subscriptions):
            self.subs = subscriptions

    probe = Probe()
    s = BarWatcher("tick", 10)
    EngineBuilder(registry).channel(probe).strategy(s).build().run(timeout=30)
    assert probe.subs == {(1, RecordKind.TRADE): []}


def test_time_bars_close_on_the_clock_without_another_trade(registry):
    class Live:
        """A few trades stamped now, then silence: only the engine's bar clock can close the bar."""
        async def run(self, emit, subscriptions):
            now = extrema.time_us()
            rec = trades(5, start_us=now)
            rec["ts_exchange"] = now
            emit(rec)
            await asyncio.sleep(3600)

    class Closer(BarWatcher):
        def on_candle(self, candle):
            super().on_candle(candle)
            self.context.stop_engine("got a bar")

    s = Closer("time", "1s")
    engine = (EngineBuilder(registry).channel(Live()).strategy(s)
              .options(stop_when_sources_done=False, bar_close_grace=0.05).build())
    started = time.monotonic()
    engine.run(timeout=20)
    assert engine.stop_reason == "got a bar" and time.monotonic() - started < 10
    (bar,) = s.candles
    assert bar.trade_count == 5 and bar.close_time - bar.open_time == 1_000_000


def test_bad_bar_set_up(registry):
    d = extrema.Dispatcher(registry)
    with pytest.raises(ValueError, match="needs series="):
        d.attach_feature(1, F.Sma(3), "candle.close")
    agg = BarAggregator.for_instrument(registry[1], "tick", 5)
    sid = d.add_bars(agg)
    with pytest.raises(ValueError, match="already part of the engine"):
        d.add_bars(agg)
    with pytest.raises(TypeError, match="Ema cannot be fed from 'candle'"):
        d.attach_feature(1, F.Ema(3), "candle", series=sid)
    with pytest.raises(KeyError, match="no bar series 9"):
        d.add_strategy(Strategy()) is not None and d.subscribe_bars(0, 9)
