"""NautilusTrader's BacktestEngine running the benchmark's trivial market maker as a Python Strategy.

The way a NautilusTrader user runs it: a venue with an L2_MBP book (the matching engine fills resting
limit orders against the replayed book and, with trade_execution=True, against the trades), a
CurrencyPair with the benchmark's spec (tick 0.01, lot 0.001), a cash account, zero fees, an entry
latency model, logging at ERROR and the post-run analysis off (neither is part of the replay). The
strategy subscribes to the book deltas; the DataEngine maintains the cache's order book, which the
strategy reads in `on_order_book_deltas` (once per venue message, as extrema's on_book).

The logic is the suite's (benches/suites/backtest.py, MM_PARAMS): with no resting order, quote one bid
k ticks below the best bid and one ask k ticks above the best ask (size fixed; a side is skipped when the
position is at the limit that way); when the mid has moved more than m ticks from where the quotes were
placed, cancel them (new quotes follow once both are gone).
"""

from __future__ import annotations

import time

NAME = "nautilus-trader"

try:
    import nautilus_trader
    from nautilus_trader.backtest.config import BacktestEngineConfig
    from nautilus_trader.backtest.engine import BacktestEngine
    from nautilus_trader.backtest.models import LatencyModel
    from nautilus_trader.common.config import LoggingConfig
    from nautilus_trader.config import StrategyConfig
    from nautilus_trader.model.currencies import ETH, USDT
    from nautilus_trader.model.enums import AccountType, BookType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId, Venue
    from nautilus_trader.model.objects import FIXED_PRECISION, Money, Price, Quantity
    from nautilus_trader.risk.config import RiskEngineConfig
    from nautilus_trader.trading.strategy import Strategy

    VERSION = nautilus_trader.__version__
    IMPORT_ERROR = None
except Exception as exc:  # noqa: BLE001 - any failure means "peer unavailable", reported by the suite
    VERSION = None
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

AVAILABLE = IMPORT_ERROR is None


if AVAILABLE:
    class MMConfig(StrategyConfig, frozen=True):
        instrument_id: InstrumentId
        k_ticks: int
        size_lots: int
        requote_ticks: int
        max_position_lots: int
        price_precision: int
        size_precision: int

    class NautilusMarketMaker(Strategy):
        def __init__(self, config: MMConfig):
            super().__init__(config)
            self.iid = config.instrument_id
            self.k = config.k_ticks
            self.m2 = 2 * config.requote_ticks          # mid moves compared as bid + ask (half ticks)
            self.size_lots = config.size_lots
            self.max_lots = config.max_position_lots
            self.pscale = 10 ** (FIXED_PRECISION - config.price_precision)
            self.sscale = 10 ** (FIXED_PRECISION - config.size_precision)
            self.pp = config.price_precision
            self.qty = Quantity.from_raw(config.size_lots * self.sscale, config.size_precision)
            self.bid = None
            self.ask = None
            self.quoted = 0
            self.cancelling = False
            self.position_lots = 0
            self.book = None
            self.books = 0
            self.orders = 0
            self.cancels = 0
            self.fills = 0

        def on_start(self):
            self.subscribe_order_book_deltas(self.iid, book_type=BookType.L2_MBP)
            self.book = self.cache.order_book(self.iid)

        def on_order_book_deltas(self, deltas):
            self.books += 1
            book = self.book
            if book is None:
                book = self.book = self.cache.order_book(self.iid)
            bid_px = book.best_bid_price()
            ask_px = book.best_ask_price()
            if bid_px is None or ask_px is None:
                return
            bb = bid_px.raw // self.pscale
            ba = ask_px.raw // self.pscale
            bid, ask = self.bid, self.ask
            if bid is not None and bid.is_closed:
                bid = self.bid = None
            if ask is not None and ask.is_closed:
                ask = self.ask = None
            if bid is not None or ask is not None:
                if not self.cancelling and abs(bb + ba - self.quoted) > self.m2:
                    self.cancelling = True
                    for o in (bid, ask):
                        if o is not None:
                            self.cancel_order(o)
                            self.cancels += 1
                return
            self.cancelling = False
            self.quoted = bb + ba
            factory, pscale, pp = self.order_factory, self.pscale, self.pp
            if self.position_lots < self.max_lots:
                self.bid = factory.limit(self.iid, OrderSide.BUY, self.qty, Price.from_raw((bb - self.k) * pscale, pp))
                self.submit_order(self.bid)
                self.orders += 1
            if self.position_lots > -self.max_lots:
                self.ask = factory.limit(self.iid, OrderSide.SELL, self.qty,
                                         Price.from_raw((ba + self.k) * pscale, pp))
                self.submit_order(self.ask)
                self.orders += 1

        def on_order_filled(self, event):
            self.fills += 1
            lots = event.last_qty.raw // self.sscale
            self.position_lots += lots if event.order_side == OrderSide.BUY else -lots


def build(data, instrument, params: dict, *, entry_latency_us: int):
    """A ready BacktestEngine holding the data and the strategy: (engine, strategy). Untimed."""
    config = BacktestEngineConfig(
        logging=LoggingConfig(log_level="ERROR"),
        risk_engine=RiskEngineConfig(max_order_submit_rate="100000/00:00:01",
                                     max_order_modify_rate="100000/00:00:01"),
        run_analysis=False,
    )
    engine = BacktestEngine(config=config)
    engine.add_venue(
        venue=Venue(instrument.id.venue.value),
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=None,
        starting_balances=[Money(1_000_000, USDT), Money(1_000, ETH)],
        book_type=BookType.L2_MBP,
        trade_execution=True,
        latency_model=LatencyModel(base_latency_nanos=entry_latency_us * 1000),
    )
    engine.add_instrument(instrument)
    engine.add_data(data, validate=False, sort=False)      # already in ts_init order
    strategy = NautilusMarketMaker(MMConfig(instrument_id=instrument.id, k_ticks=params["k_ticks"],
                                            size_lots=params["size_lots"], requote_ticks=params["requote_ticks"],
                                            max_position_lots=params["max_position_lots"],
                                            price_precision=instrument.price_precision,
                                            size_precision=instrument.size_precision))
    engine.add_strategy(strategy)
    return engine, strategy


def run(state) -> dict:
    """Timed part: replay everything. Returns the work done (orders, cancels, fills, book callbacks)."""
    engine, strategy = state
    t0 = time.perf_counter()
    engine.run()
    wall = time.perf_counter() - t0
    out = dict(wall_s=wall, orders=strategy.orders, cancels=strategy.cancels, fills=strategy.fills,
               book_callbacks=strategy.books, position_lots=strategy.position_lots)
    engine.dispose()
    return out
