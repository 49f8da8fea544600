"""extrema's engine in one run: a synthetic BTC_USDT feed, three strategies on one pinned engine
thread, and a second consumer reading the same broadcast ring from another thread.

    python examples/engine_demo.py [--seconds 3] [--cpu N]

The feed is a seeded random walk of the touch with depth updates and trades (the bundled exchange
simulator replaces it in a later release). Strategies: a book watcher (spread and imbalance), a
trade-flow meter that asks a task thread for statistics every 50,000 trades, and an EMA crossover
that logs its signals. At the end it prints what each saw and the engine's counters.
"""
import argparse
import asyncio
import threading
import time

import numpy as np

import extrema
from extrema import EngineBuilder, InstrumentRegistry, Market, RecordFlag, RecordKind, Strategy


def synthetic_feed(instrument, n, seed=11):
    """n records: depth updates (each its own venue message, flagged LAST) interleaved with trades."""
    rng = np.random.default_rng(seed)
    rec = extrema.empty_records(n)
    mid = np.cumsum(rng.integers(-2, 3, n)) + 6_000_000
    is_trade = rng.random(n) < 0.2
    offset = rng.geometric(0.25, n)
    ask = rng.random(n) < 0.5
    rec["instrument_id"] = instrument.id
    rec["kind"] = np.where(is_trade, int(RecordKind.TRADE), int(RecordKind.BOOK_DELTA))
    rec["price"] = np.where(is_trade, mid, mid + np.where(ask, offset, -offset)) * instrument.tick_raw
    rec["quantity"] = rng.integers(1, 20_000, n) * instrument.lot_raw * (rng.random(n) > 0.25)
    rec["quantity"][is_trade] = rng.integers(1, 5_000, is_trade.sum()) * instrument.lot_raw
    rec["flags"] = np.where(ask, int(RecordFlag.ASK), 0) | np.where(is_trade, 0, int(RecordFlag.LAST))
    rec["sequence"] = np.arange(n)
    now = extrema.time_us()
    rec["ts_exchange"] = now + np.arange(n) * 50
    rec["ts_local"] = rec["ts_exchange"] + 300
    return rec


class Feed:
    """A source that emits the synthetic feed for a fixed wall-clock time, in venue-sized batches."""

    def __init__(self, records, seconds):
        self.records = records
        self.seconds = seconds

    async def run(self, emit, subscriptions):
        deadline = time.monotonic() + self.seconds
        i = 0
        while time.monotonic() < deadline:
            j = min(i + 64, len(self.records))
            emit(self.records[i:j])
            i = 0 if j == len(self.records) else j
            await asyncio.sleep(0)


class BookWatcher(Strategy):
    def __init__(self):
        super().__init__("book-watcher")
        self.updates = 0
        self.crossed = 0
        self.spread_sum = 0.0

    def on_book(self, view):
        book = view.book
        self.updates += 1
        if book.is_crossed:
            self.crossed += 1
        elif book.bid_count and book.ask_count:
            self.spread_sum += book.spread

    def summary(self):
        n = self.updates - self.crossed
        return f"{self.updates:,} book messages, mean spread {self.spread_sum / max(n, 1):.4f}"


class TradeFlow(Strategy):
    def __init__(self):
        super().__init__("trade-flow")
        self.buy = self.sell = 0.0
        self.trades = 0
        self.answers = []

    def on_trade(self, trade):
        self.trades += 1
        if trade.aggressor == 1:
            self.sell += trade.size
        else:
            self.buy += trade.size
        if self.trades % 50_000 == 0:
            self.context.request("stats", (self.buy, self.sell))

    def on_response(self, response):
        self.answers.append(response.result)

    def summary(self):
        last = self.answers[-1] if self.answers else "none yet"
        return f"{self.trades:,} trades, {len(self.answers)} answers from the stats task, last {last}"


class EmaCross(Strategy):
    def __init__(self, fast=0.05, slow=0.01):
        super().__init__("ema-cross")
        self.fast_alpha, self.slow_alpha = fast, slow
        self.fast = self.slow = None
        self.signals = 0

    def on_trade(self, trade):
        p = trade.price
        if self.fast is None:
            self.fast = self.slow = p
            return
        above = self.fast > self.slow
        self.fast += self.fast_alpha * (p - self.fast)
        self.slow += self.slow_alpha * (p - self.slow)
        if (self.fast > self.slow) != above:
            self.signals += 1

    def summary(self):
        return f"{self.signals:,} EMA crossings"


def flow_stats(payload):
    buy, sell = payload
    return {"buy_ratio": round(buy / (buy + sell), 4) if buy + sell else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the engine thread to this CPU")
    args = parser.parse_args()

    registry = InstrumentRegistry()
    btc = registry.register("BTC_USDT", Market.SIM, "0.01", "0.00001", min_notional="5")
    strategies = [BookWatcher(), TradeFlow(), EmaCross()]
    builder = (EngineBuilder(registry)
               .channel(Feed(synthetic_feed(btc, 200_000), args.seconds))
               .task("stats", flow_stats)
               .strategy(strategies[0], subscribe={"BTC_USDT": "book"})
               .strategy(strategies[1], subscribe={"BTC_USDT": "trades"})
               .strategy(strategies[2], subscribe={"BTC_USDT": "trades"})
               .ring(capacity=1 << 16)
               # A synthetic feed leaves stale levels behind the moving touch: trust the newest level.
               .options(book_options={"crossed": "prune"}))
    if args.cpu is not None:
        builder.pin(args.cpu)
    engine = builder.build()

    # Another reader of the same broadcast ring, on its own thread (a recorder would sit here).
    tap = engine.ring.consumer("lossy")
    seen = {"records": 0}

    def count():
        for batch in tap:
            seen["records"] += len(batch)

    reader = threading.Thread(target=count, daemon=True)
    reader.start()
    started = time.perf_counter()
    stats = engine.run()
    elapsed = time.perf_counter() - started
    reader.join(5)

    print(f"engine ran {elapsed:.2f} s: {stats['published']:,} records published "
          f"({stats['published'] / elapsed / 1e6:.2f} M/s with Python strategies), "
          f"{stats['dispatcher']['delivered']:,} hook calls, stopped: {stats['stop_reason']}")
    for s in strategies:
        print(f"  {s.name:13s} {s.summary()}")
    print(f"  ring tap      {seen['records']:,} records read on another thread, {tap.lost:,} lost "
          f"(a lossy consumer never slows the engine)")
    print(f"  book          {engine.dispatcher.book(btc.id)!r}")


if __name__ == "__main__":
    main()
