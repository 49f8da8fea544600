"""The example strategies of `extrema demo`, `examples/sim_demo.py` and `examples/config.toml`.

They are plain `extrema.Strategy` subclasses that run unchanged live, on the simulator and in a
backtest. Each takes its instrument as a normalised name (``"BTC_USDT"``, ``"BTC_USDT_PERP"``) or an
`Instrument`, resolved when the engine starts, and subscribes to what it needs itself, so a config
file only names the class and its parameters:

    [[strategies]]
    class = "extrema.examples:MarketMaker"
    params = { instrument = "BTC_USDT", edge = 1 }

* `MarketMaker` quotes one minimum-size order each side around the touch, skewed against inventory.
* `EmaCross` crosses the spread when a fast EMA of trade prices crosses a slow one (momentum).
* `Monitor` counts market events and, with `every` > 0, prints a summary line that often.
"""
from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from extrema import OrderStatus, Strategy, features

__all__ = ["Trader", "MarketMaker", "EmaCross", "Monitor", "on_grid", "min_size"]


def on_grid(value, step) -> str:
    """`value` rounded down to a multiple of `step` (a Decimal), as text."""
    return str((Decimal(repr(float(value))) / step).to_integral_value(ROUND_FLOOR) * step)


def min_size(inst, price) -> Decimal:
    """The smallest size on the lot grid worth the instrument's minimum notional (with 20 % room)."""
    notional = max(Decimal(inst.min_notional), Decimal(0))
    lots = notional * Decimal("1.2") / Decimal(repr(float(price))) / inst.lot_size
    return max(lots.to_integral_value(ROUND_CEILING), 1) * inst.lot_size


class Ledger:
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

    def pnl(self, mid) -> float:
        return self.cash + self.position * mid


class Trader(Strategy):
    """A strategy on one instrument that keeps its own order / position ledger (`self.me`)."""

    def __init__(self, name, instrument):
        super().__init__(name)
        self.instrument = instrument
        self.inst = None if isinstance(instrument, str) else instrument
        self.me = Ledger()

    def resolve(self):
        """The Instrument (looked up by name in the engine's registry when given as a name)."""
        if self.inst is None or isinstance(self.instrument, str):
            self.inst = self.context.instrument(self.instrument)
        return self.inst

    def on_order(self, order):
        self.me.order(order)

    def on_fill(self, fill):
        self.me.fill(fill)


class MarketMaker(Trader):
    """Quotes one minimum-size order each side, `edge` ticks outside the touch, skewed against inventory
    (one tick per `size` of position); requotes when the touch moves (cancel both, place both), at most
    every `every` seconds; stops adding to a side at `max_position` sizes."""

    def __init__(self, instrument, edge: int = 0, max_position: int = 10, every: float = 0.25, *,
                 name: str = "market_maker"):
        super().__init__(name, instrument)
        if edge < 0 or max_position < 1 or every < 0:
            raise ValueError("edge >= 0, max_position >= 1 and every >= 0 seconds, please")
        self.edge, self.max_position, self.every = edge, max_position, every
        self.last = 0.0
        self.quoted = None

    def on_start(self):
        self.context.subscribe(self.resolve(), "book")

    def on_book(self, view):
        book = view.book
        now = self.context.now_us() / 1e6              # the engine clock: wall time live, data time in a backtest
        if book.best_bid != book.best_bid or book.best_ask != book.best_ask or now - self.last < self.every:
            return                                          # NaN: one side empty
        touch = (book.best_bid, book.best_ask)
        if touch == self.quoted:
            return
        self.last, self.quoted = now, touch
        for oid in list(self.me.open):
            self.context.cancel(oid)
        inst = self.inst
        tick = float(inst.tick_size)
        size = min_size(inst, touch[1])
        inventory = self.me.position / float(size)
        skew = round(inventory) * tick                      # long: quote lower, sell sooner
        bid = touch[0] - self.edge * tick - skew
        ask = touch[1] + self.edge * tick - skew
        if self.me.position < self.max_position * float(size):
            self.context.submit(inst, "buy", str(size), on_grid(bid, inst.tick_size), post_only=True)
            self.me.orders += 1
        if self.me.position > -self.max_position * float(size):
            self.context.submit(inst, "sell", str(size), on_grid(ask, inst.tick_size), post_only=True)
            self.me.orders += 1


class EmaCross(Trader):
    """Fast / slow EMA of trade prices (compiled kernels the engine updates before the hook); on a cross
    it buys or sells `lots` minimum sizes at the far touch (a marketable limit order)."""

    def __init__(self, instrument, fast: int = 5, slow: int = 20, lots: int = 2, *, name: str = "ema_cross"):
        super().__init__(name, instrument)
        if not 1 <= fast < slow or lots < 1:
            raise ValueError(f"need 1 <= fast < slow and lots >= 1, got fast={fast} slow={slow} lots={lots}")
        self.fast_n, self.slow_n, self.lots = fast, slow, lots
        self.state = 0

    def on_start(self):
        inst = self.resolve()
        self.context.subscribe(inst, "book", "trades")
        self.fast = self.context.attach(inst, features.Ema(self.fast_n), "trade.price")
        self.slow = self.context.attach(inst, features.Ema(self.slow_n), "trade.price")

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
        self.context.submit(self.inst, side, str(self.lots * min_size(self.inst, price)),
                            on_grid(price, self.inst.tick_size))
        self.me.orders += 1


class Monitor(Strategy):
    """Counts trades, book updates and book resets of one instrument; with `every` > 0 prints a line
    that often with the touch and each trader's (`traders`: strategies with a ledger) position and P&L."""

    def __init__(self, instrument, traders=(), every: float = 0.0, *, name: str = "monitor"):
        super().__init__(name)
        self.instrument = instrument
        self.inst = None if isinstance(instrument, str) else instrument
        self.traders, self.every = list(traders), every
        self.trades = self.books = self.resets = 0

    def on_start(self):
        if self.inst is None:
            self.inst = self.context.instrument(self.instrument)
        self.context.subscribe(self.inst, "book", "trades")
        if self.every > 0:
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
