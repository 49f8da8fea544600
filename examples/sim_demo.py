"""Paper trading on the bundled Binance simulator: real sockets, real wire formats, real strategies.

    python examples/sim_demo.py [--seconds 20] [--market spot|usdm] [--symbols BTCUSDT,ETHUSDT]

What runs:
* the simulator (extrema.sim) on 127.0.0.1 in its own thread: a queue-reactive order-book model per
  symbol (Huang, Lehalle & Rosenbaum 2015) driving a matching engine, served as Binance's REST API,
  market streams, WebSocket API and user data stream;
* one extrema engine on a pinned thread with the Binance venue pointed at it: market data through the
  compiled decoder and Binance's book-sync rule, orders over the WebSocket API, fills from the user
  data stream - exactly the code path that trades live;
* three strategies sharing that feed: a market maker quoting around the touch with an inventory skew,
  an EMA crossover that crosses the spread on signals, and a monitor that prints a summary line every
  few seconds.
At the end it prints each strategy's orders, fills and position, and the engine's counters.
"""
import argparse
import logging
import time
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from extrema import EngineBuilder, InstrumentRegistry, OrderStatus, Strategy, features
from extrema.adapters.binance.venue import BinanceVenue
from extrema.sim import BinanceSimulator, GeneratedMarket


def on_grid(value, step):
    """`value` rounded down to a multiple of `step` (a Decimal), as text."""
    return str((Decimal(repr(value)) / step).to_integral_value(ROUND_FLOOR) * step)


def min_size(inst, price):
    """The smallest size on the lot grid worth the instrument's minimum notional (with 20 % room)."""
    lots = (Decimal(inst.min_notional) * Decimal("1.2") / Decimal(repr(price)) / inst.lot_size)
    return max(lots.to_integral_value(ROUND_CEILING), 1) * inst.lot_size


class Book:
    """What a strategy knows about its own orders and position, from on_order / on_fill."""

    def __init__(self):
        self.open = {}
        self.position = 0.0
        self.cash = 0.0
        self.fills = 0
        self.orders = 0
        self.rejects = 0

    def order(self, o):
        if o.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            self.open[o.client_order_id] = o.side
        else:
            self.open.pop(o.client_order_id, None)
            self.rejects += o.status == OrderStatus.REJECTED

    def fill(self, f):
        sign = 1 if f.side == "buy" else -1
        self.position += sign * f.quantity
        self.cash -= sign * f.quantity * f.price
        self.fills += 1

    def pnl(self, mid):
        return self.cash + self.position * mid


class Trader(Strategy):
    """A strategy that keeps its own order / position book from its order updates and fills."""

    def __init__(self, name):
        super().__init__(name)
        self.me = Book()

    def on_order(self, order):
        self.me.order(order)

    def on_fill(self, fill):
        self.me.fill(fill)


class MarketMaker(Trader):
    """Quotes one lot each side, `edge` ticks outside the touch, skewed against inventory; requotes
    when the touch moves (cancel both, place both), at most every `every` seconds."""

    def __init__(self, inst, edge=0, max_position=10, every=0.25):
        super().__init__("market_maker")
        self.inst, self.edge, self.max_position, self.every = inst, edge, max_position, every
        self.last = 0.0
        self.quoted = None

    def on_book(self, view):
        book = view.book
        now = time.monotonic()
        if book.best_bid != book.best_bid or now - self.last < self.every:     # NaN: one side empty
            return
        touch = (book.best_bid, book.best_ask)
        if touch == self.quoted:
            return
        self.last, self.quoted = now, touch
        for oid in list(self.me.open):
            self.context.cancel(oid)
        tick = float(self.inst.tick_size)
        size = min_size(self.inst, touch[1])
        inventory = self.me.position / float(size)
        skew = round(inventory) * tick                      # long: quote lower, sell sooner
        bid = touch[0] - self.edge * tick - skew
        ask = touch[1] + self.edge * tick - skew
        if self.me.position < self.max_position * float(size):
            self.context.submit(self.inst, "buy", str(size), on_grid(bid, self.inst.tick_size), post_only=True)
            self.me.orders += 1
        if self.me.position > -self.max_position * float(size):
            self.context.submit(self.inst, "sell", str(size), on_grid(ask, self.inst.tick_size), post_only=True)
            self.me.orders += 1


class EmaCross(Trader):
    """Fast / slow EMA of trade prices (compiled kernels the engine updates before the hook); on a cross
    it buys or sells a few lots at the far touch (a marketable limit order)."""

    def __init__(self, inst, fast=5, slow=20):
        super().__init__("ema_cross")
        self.inst = inst
        self.fast_n, self.slow_n = fast, slow
        self.state = 0

    def on_start(self):
        self.fast = self.context.attach(self.inst, features.Ema(self.fast_n), "trade.price")
        self.slow = self.context.attach(self.inst, features.Ema(self.slow_n), "trade.price")

    def on_trade(self, trade):
        if not self.slow.is_ready:
            return
        state = 1 if self.fast.value > self.slow.value else -1
        if state == self.state:
            return
        first, self.state = self.state == 0, state
        if first:
            return
        book = self.context.book(self.inst)
        side, price = ("buy", book.best_ask) if state > 0 else ("sell", book.best_bid)
        if price != price:
            return
        self.context.submit(self.inst, side, str(2 * min_size(self.inst, price)), on_grid(price, self.inst.tick_size))
        self.me.orders += 1


class Monitor(Strategy):
    def __init__(self, inst, traders, every=5.0):
        super().__init__("monitor")
        self.inst, self.traders, self.every = inst, traders, every
        self.trades = self.books = self.resets = 0

    def on_start(self):
        self.context.schedule(every=self.every)

    def on_trade(self, trade):
        self.trades += 1

    def on_book(self, view):
        self.books += 1

    def on_book_reset(self, reset):
        self.resets += 1

    def on_schedule(self, timer):
        book = self.context.book(self.inst)
        mid = (book.best_bid + book.best_ask) / 2
        parts = [f"{self.inst.name} {book.best_bid:.2f} / {book.best_ask:.2f}", f"{self.trades} trades",
                 f"{self.books} book updates"]
        for t in self.traders:
            parts.append(f"{t.name}: pos {t.me.position:+.4f} fills {t.me.fills} P&L {t.me.pnl(mid):+.2f}")
        print(" | ".join(parts), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--market", choices=("spot", "usdm"), default="spot")
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    sim = BinanceSimulator(market=args.market, source=GeneratedMarket(seed=args.seed, symbols=[args.symbol],
                                                                      speed=3.0)).start_in_thread()
    try:
        registry = InstrumentRegistry()
        venue = BinanceVenue.for_simulator(sim)
        (inst,) = venue.load_instruments(registry, [args.symbol])
        print(f"simulator: REST {sim.rest_url}, streams {sim.ws_url}; trading {inst.name} on {inst.market.name} "
              f"(tick {inst.tick_size}, lot {inst.lot_size})", flush=True)
        mm, ema = MarketMaker(inst), EmaCross(inst)
        monitor = Monitor(inst, [mm, ema])
        engine = (EngineBuilder(registry).venue(venue)
                  .strategy(mm, subscribe={inst: "book"})
                  .strategy(ema, subscribe={inst: ["book", "trades"]})
                  .strategy(monitor, subscribe={inst: ["book", "trades"]})
                  .options(stop_when_sources_done=False)
                  .build())
        engine.start()
        time.sleep(args.seconds)
        engine.stop("demo time is up")
        book = engine.dispatcher.book(inst.id)
        mid = (book.best_bid + book.best_ask) / 2
        print("\nsummary")
        for t in (mm, ema):
            print(f"  {t.name:13s} orders {t.me.orders:5d}  fills {t.me.fills:4d}  rejected {t.me.rejects:3d}  "
                  f"position {t.me.position:+.5f}  P&L at mid {t.me.pnl(mid):+.2f}")
        stats = engine.stats()
        md = venue.market_data.stats()
        print(f"  engine        records {stats['published']:,}  delivered {stats['dispatcher']['delivered']:,}  "
              f"hook errors {stats['dispatcher']['hook_errors']}  book errors {stats['dispatcher']['book_errors']}")
        print(f"  market data   frames {md['decoder']['frames']:,}  dropped {md['decoder']['dropped']}  "
              f"snapshots {md['snapshots']}  resyncs {md['resyncs']}  book resets seen {monitor.resets}")
        print(f"  execution     {venue.execution.stats()['submitted']} orders sent over the WebSocket API, "
              f"{venue.execution.stats()['rejected']} rejected")
        if stats["dispatcher"]["hook_errors"] or stats["dispatcher"]["book_errors"]:
            raise SystemExit("the demo saw errors (see above)")
    finally:
        sim.stop_thread()


if __name__ == "__main__":
    main()
