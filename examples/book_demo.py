"""extrema's foundation in one run: instruments, exact decimals, records and the compiled order book.

    python examples/book_demo.py

Generates a seeded stream of Binance-style depth updates for BTC_USDT (a random walk of the touch with
adds, changes and deletes around it), replays it into an OrderBook through the 64-byte record array
without the GIL, and prints what a strategy would read.
"""
import time

import numpy as np

import extrema
from extrema import BookSide, InstrumentRegistry, Market, OrderBook, RecordFlag, RecordKind, Side


def synthetic_depth_records(instrument, n, seed=7):
    """n BOOK_DELTA records: levels around a random-walking mid, one update id per 10-record message."""
    rng = np.random.default_rng(seed)
    rec = extrema.empty_records(n)
    mid = np.cumsum(rng.integers(-3, 4, n)) + 6_000_000          # ticks of 0.01 around 60,000.00
    offset = rng.geometric(0.15, n)                                # distance from the mid, in ticks
    ask = rng.random(n) < 0.5
    deleting = rng.random(n) < 0.3
    rec["kind"] = RecordKind.BOOK_DELTA
    rec["instrument_id"] = instrument.id
    rec["flags"] = np.where(ask, int(RecordFlag.ASK), 0)
    rec["flags"][9::10] |= np.uint16(RecordFlag.LAST)
    rec["sequence"] = np.arange(n) // 10 + 1
    rec["price"] = (mid + np.where(ask, offset, -offset)) * instrument.tick_raw
    rec["quantity"] = np.where(deleting, 0, rng.integers(1, 50_000, n) * instrument.lot_raw)
    now = extrema.time_us()
    rec["ts_exchange"] = now + np.arange(n) * 100
    rec["ts_local"] = rec["ts_exchange"] + 350
    return rec


def main():
    registry = InstrumentRegistry()
    btc = registry.register("BTC_USDT", Market.BINANCE_SPOT, tick_size="0.01", lot_size="0.00001",
                            min_notional="5", venue_symbol="BTCUSDT")
    print(f"instrument: {btc}")
    print(f"from the venue's symbol: {registry.by_venue_symbol(Market.BINANCE_SPOT, 'BTCUSDT').name}")

    book = OrderBook.for_instrument(btc, crossed="prune")
    # A REST snapshot, decoded exactly from the venue's decimal strings.
    book.apply_snapshot(bids=[("59999.99", "0.50000"), ("59999.50", "1.25000")],
                        asks=[("60000.01", "0.75000"), ("60000.40", "2.00000")], update_id=0)
    print(f"after the snapshot: {book!r}")

    records = synthetic_depth_records(btc, 1_000_000)
    t0 = time.perf_counter()
    applied = book.apply_records(records)
    elapsed = time.perf_counter() - t0
    print(f"applied {applied:,} depth records in {elapsed * 1e3:.1f} ms "
          f"({applied / elapsed / 1e6:.1f} M updates/s, crossed policy {book.crossed_policy!r})")

    print(f"book: {book!r}")
    print(f"best bid {book.best_bid:.2f} x {book.best_bid_size}, best ask {book.best_ask:.2f} x {book.best_ask_size}")
    print(f"spread {book.spread:.2f}  mid {book.mid:.3f}  microprice {book.microprice:.3f}  "
          f"imbalance(5) {book.imbalance(5):+.3f}")
    for size in (0.5, 2.0):
        print(f"buy {size} BTC: VWAP {book.vwap(Side.BUY, size):.4f}, slippage {book.slippage(Side.BUY, size):.4f}")
    np.set_printoptions(suppress=True, precision=5)
    print("top 5 levels [bid px, bid sz, ask px, ask sz]:")
    print(book.top(5))
    print(f"cumulative bid depth over 10 levels: {book.depth(BookSide.BID, 10):.5f} BTC")
    print(f"stats: {book.stats}")


if __name__ == "__main__":
    main()
