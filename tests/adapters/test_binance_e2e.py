"""The Binance adapter end to end against the bundled simulator, over real sockets on 127.0.0.1.

Engine thread (picows streams, aiohttp REST, compiled decode + depth sync + book) <-> simulator thread
(aiohttp servers, matching engine, queue-reactive market). Each test checks what a user relies on:
the book equals the venue's, a gap resets and resyncs it, orders fill and their updates reach the
owning strategy, a forced disconnect loses and duplicates nothing, bad frames are counted and dropped.
"""
import threading
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np
import pytest

from extrema import BookSide, EngineBuilder, InstrumentRegistry, Market, OrderStatus, ResetReason, Strategy
from extrema.adapters.binance.venue import BinanceVenue
from extrema.sim import BinanceSimulator, Faults, GeneratedMarket
from waiting import wait_for


@pytest.fixture(params=["spot", "usdm"])
def sim(request):
    s = BinanceSimulator(market=request.param, source=GeneratedMarket(seed=7, symbols=["BTCUSDT"], speed=20.0),
                         faults=Faults())
    s.start_in_thread()
    yield s
    s.stop_thread()


class Watcher(Strategy):
    """Remembers what it saw; the engine thread writes, the test thread reads under the lock."""

    def __init__(self):
        super().__init__("watcher")
        self.lock = threading.Lock()
        self.book_updates = 0
        self.last_update_id = 0
        self.resets = []
        self.trades = 0
        self.orders = []
        self.fills = []
        self.actions = []          # callables run on the engine thread at the next book update

    def on_book(self, book):
        with self.lock:
            self.book_updates += 1
            self.last_update_id = book.update_id
            actions, self.actions = self.actions, []
        for action in actions:
            action(self.context, book)

    def on_book_reset(self, reset):
        with self.lock:
            self.resets.append(reset.reason)

    def on_trade(self, trade):
        with self.lock:
            self.trades += 1

    def on_order(self, order):
        with self.lock:
            self.orders.append((order.client_order_id, order.status, order.filled))

    def on_fill(self, fill):
        with self.lock:
            self.fills.append((fill.client_order_id, fill.trade_id, fill.quantity, fill.price))

    def do(self, action):
        with self.lock:
            self.actions.append(action)


def start_engine(sim, venue_options=None):
    registry = InstrumentRegistry()
    venue = BinanceVenue.for_simulator(sim, **(venue_options or {}))
    (inst,) = venue.load_instruments(registry, ["BTCUSDT"])
    watcher = Watcher()
    engine = (EngineBuilder(registry).venue(venue)
              .strategy(watcher, subscribe={inst: ["book", "trades"]})
              .options(stop_when_sources_done=False).build())
    engine.start()
    return engine, venue, watcher, inst


def tradable(inst, price, notional=150):
    """(quantity, price) on the instrument's grid with at least `notional` of value (USD-M wants 100)."""
    tick, lot = inst.tick_size, inst.lot_size
    px = (Decimal(repr(price)) / tick).to_integral_value(ROUND_FLOOR) * tick
    qty = max((Decimal(notional) / px / lot).to_integral_value(ROUND_CEILING) * lot, lot)
    return str(qty), str(px)


def book_bid(engine, inst):
    return engine.dispatcher.book(inst.id).best_bid


def sim_book(sim, n=10_000):
    return sim.call(lambda: sim.engine.book_snapshot("BTCUSDT", n))


def assert_books_equal(engine, sim, inst, watcher):
    """Pause the market, let the last diffs arrive, then compare every level."""
    sim.call(sim.pause_feed)
    last_id, bids, asks = sim_book(sim)
    wait_for(lambda: watcher.last_update_id >= last_id, what=f"the engine book to reach update {last_id}")
    book = engine.dispatcher.book(inst.id)
    spec = sim.call(lambda: sim.engine.specs["BTCUSDT"])
    # The simulator keeps raw ints at its own precision: bring them to the instrument's (exact integers).
    conv = lambda levels: [(p * 10 ** inst.price_precision // 10 ** spec.price_dp,  # noqa: E731
                            q * 10 ** inst.size_precision // 10 ** spec.qty_dp) for p, q in levels]
    as_pairs = lambda levels: [(int(p), int(q)) for p, q in levels]  # noqa: E731
    assert as_pairs(book.levels(BookSide.BID, raw=True)) == conv(bids)
    assert as_pairs(book.levels(BookSide.ASK, raw=True)) == conv(asks)
    sim.call(sim.resume_feed)


def test_books_follow_the_venue_and_a_gap_resets_and_resyncs(sim):
    engine, venue, watcher, inst = start_engine(sim)
    try:
        wait_for(lambda: watcher.book_updates >= 20 and watcher.trades >= 1, what="book updates and trades")
        assert_books_equal(engine, sim, inst, watcher)
        # One depth frame withheld: the chain breaks, strategies get a reset, the book comes back.
        snapshots = venue.market_data.counters["snapshots"]
        sim.call(lambda: sim.faults.inject("gap", n=1))
        wait_for(lambda: ResetReason.SEQUENCE_GAP in watcher.resets, what="a SEQUENCE_GAP reset")
        wait_for(lambda: venue.market_data.counters["snapshots"] > snapshots, what="a new snapshot")
        assert_books_equal(engine, sim, inst, watcher)
    finally:
        engine.stop()
    assert engine.dispatcher.book_errors == 0
    assert engine.stats()["dispatcher"]["hook_errors"] == 0


@pytest.mark.parametrize("order_entry", ["ws_api", "rest"])
def test_orders_fill_and_updates_reach_the_owner(sim, order_entry):
    engine, venue, watcher, inst = start_engine(sim, {"order_entry": order_entry})
    ids = {}
    try:
        wait_for(lambda: watcher.book_updates >= 5, what="the book")
        sim.call(sim.pause_feed)        # a quiet market: only our orders move it

        def trade(ctx, book):
            qty, ask = tradable(inst, book.book.best_ask)
            ids["taker"] = ctx.submit(inst, "buy", qty, ask)              # marketable: fills
            qty, low = tradable(inst, book.book.best_bid * 0.9)
            ids["resting"] = ctx.submit(inst, "buy", qty, low)            # rests far below
        watcher.do(trade)
        sim.call(sim.resume_feed)
        wait_for(lambda: len(ids) == 2, what="the orders to be sent")
        wait_for(lambda: any(o[0] == ids["taker"] and o[1] == OrderStatus.FILLED for o in watcher.orders),
                 what="the taker order to fill",
                 detail=lambda: f": orders {watcher.orders}, rejections {venue.execution.rejections}, "
                                f"stats {venue.execution.stats()}")
        wait_for(lambda: any(o[0] == ids["resting"] and o[1] == OrderStatus.ACCEPTED for o in watcher.orders),
                 what="the resting order to be accepted")
        watcher.do(lambda ctx, book: ctx.cancel(ids["resting"]))
        wait_for(lambda: any(o[0] == ids["resting"] and o[1] == OrderStatus.CANCELLED for o in watcher.orders),
                 what="the cancel")
        # An order the account cannot pay for passes the local checks and is refused by the venue: the
        # strategy hears REJECTED, the venue's code and message are kept.
        qty, low = tradable(inst, book_bid(engine, inst) * 0.9, notional=50_000_000)
        watcher.do(lambda ctx, book: ids.__setitem__("bad", ctx.submit(inst, "buy", qty, low)))
        wait_for(lambda: any(o[0] == ids.get("bad") and o[1] == OrderStatus.REJECTED for o in watcher.orders),
                 what="the rejection")
    finally:
        engine.stop()
    fills = [f for f in watcher.fills if f[0] == ids["taker"]]
    filled = [o[2] for o in watcher.orders if o[0] == ids["taker"] and o[1] == OrderStatus.FILLED][0]
    assert fills and abs(sum(f[2] for f in fills) - filled) < 1e-9
    # The engine's order table read every venue report as a legal step of its state machine, and the
    # portfolio holds the taker fill.
    updates = engine.orders.stats()["updates"]
    assert not {"illegal", "invalid", "overfill"} & set(updates), updates
    assert updates.get("ok", 0) >= 4, updates
    assert engine.orders.status(ids["taker"]) == OrderStatus.FILLED
    assert engine.orders.status(ids["resting"]) == OrderStatus.CANCELLED
    position = watcher.context.position(inst)
    assert position is not None and float(position["quantity"]) == pytest.approx(filled)
    assert ids["bad"] in venue.execution.rejections


def test_forced_disconnect_loses_and_duplicates_nothing(sim):
    engine, venue, watcher, inst = start_engine(sim)
    ids = []
    try:
        wait_for(lambda: watcher.book_updates >= 5, what="the book")

        def place(ctx, book):
            ids.append(ctx.submit(inst, "buy", *tradable(inst, book.book.best_ask)))
        watcher.do(place)
        wait_for(lambda: len(watcher.fills) >= 1, what="a fill")
        sim.call(sim.disconnect_all)
        wait_for(lambda: ResetReason.RECONNECT in watcher.resets, what="a reconnect reset")
        wait_for(lambda: venue.execution.user_stream_connects >= 2 and venue.execution.ready,
                 what="the user stream and the order connection to come back")
        watcher.do(place)
        wait_for(lambda: len({f[0] for f in watcher.fills}) >= 2, what="a fill after the reconnect")
        assert_books_equal(engine, sim, inst, watcher)
    finally:
        engine.stop()
    trade_ids = [f[1] for f in watcher.fills]
    assert len(trade_ids) == len(set(trade_ids)), "a fill was delivered twice"
    # Reconciliation ran at start and after the reconnect and found nothing it could not merge.
    assert venue.execution.counters["reconciled"] >= 2
    kinds = {e.kind for e in venue.execution.reconcile_events}
    assert "ORDER_CONFLICT" not in kinds, venue.execution.reconcile_events
    # The venue holds exactly the orders the strategy placed: nothing was resent.
    venue_orders = sim.call(lambda: [o.client_id for o in sim.engine.orders.values()])
    assert sorted(venue_orders) == sorted(venue.execution.order_ids.text(i) for i in ids)


def test_malformed_frames_are_counted_and_the_book_stays_right(sim):
    engine, venue, watcher, inst = start_engine(sim)
    try:
        wait_for(lambda: watcher.book_updates >= 5, what="the book")
        sim.call(lambda: setattr(sim.faults, "malformed_rate", 0.2))
        wait_for(lambda: venue.market_data.decoder.stats()["dropped"] >= 3, what="malformed frames to be counted",
                 detail=lambda: f": {venue.market_data.decoder.stats()}")
        sim.call(lambda: setattr(sim.faults, "malformed_rate", 0.0))
        assert_books_equal(engine, sim, inst, watcher)
    finally:
        engine.stop()
    assert engine.error is None


def test_usdm_mark_prices_reach_their_subscribers():
    sim = BinanceSimulator(market="usdm", source=GeneratedMarket(seed=3, symbols=["BTCUSDT"], speed=5.0))
    sim.start_in_thread()
    marks = []

    class Marks(Strategy):
        def on_mark_price(self, m):
            marks.append((m.instrument, m.mark_price, m.index_price, m.funding_rate, m.next_funding_us))
    try:
        registry = InstrumentRegistry()
        venue = BinanceVenue.for_simulator(sim)
        (inst,) = venue.load_instruments(registry, ["BTCUSDT"])
        engine = (EngineBuilder(registry).venue(venue).strategy(Marks(), subscribe={inst: "mark_price"})
                  .options(stop_when_sources_done=False).build())
        engine.start()
        try:
            wait_for(lambda: len(marks) >= 2, what="two mark price updates (one a second)")
        finally:
            engine.stop()
    finally:
        sim.stop_thread()
    name, mark, index, funding, next_funding = marks[-1]
    assert name == "BTC_USDT_PERP" and mark > 0 and index > 0
    assert funding == pytest.approx(0.0001) and next_funding > 1_700_000_000_000_000


def test_orders_already_open_at_the_venue_are_adopted_at_start(sim):
    """A restart: the venue holds an open order this engine did not place (or placed in an earlier run);
    reconciliation at start brings it into the order table, reported as an event."""
    import asyncio

    from extrema.adapters.binance import BinanceCredentials, BinanceRest
    from extrema.sim import DEFAULT_API_KEY, DEFAULT_API_SECRET
    market = Market.BINANCE_SPOT if sim.market == "spot" else Market.BINANCE_USDM
    registry = InstrumentRegistry()
    venue = BinanceVenue.for_simulator(sim)
    (inst,) = venue.load_instruments(registry, ["BTCUSDT"])
    bid = sim.call(lambda: sim.engine.book_snapshot("BTCUSDT", 1))[1][0][0]
    spec = sim.call(lambda: sim.engine.specs["BTCUSDT"])
    qty, low = tradable(inst, bid / 10 ** spec.price_dp * 0.9)

    async def place():
        async with BinanceRest(market, sim.rest_url, BinanceCredentials(DEFAULT_API_KEY, DEFAULT_API_SECRET)) as rest:
            await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="manual-1", quantity=qty, price=low)
    asyncio.run(place())
    watcher = Watcher()
    engine = (EngineBuilder(registry).venue(venue).strategy(watcher, subscribe={inst: "book"})
              .options(stop_when_sources_done=False).build())
    engine.start()
    try:
        wait_for(lambda: venue.execution.counters["reconciled"] >= 1, what="reconciliation at start")
    finally:
        engine.stop()
    adopted = [e for e in venue.execution.reconcile_events if e.kind == "ORDER_ADOPTED"]
    assert len(adopted) == 1 and adopted[0].client_order_id >= 1 << 62          # a foreign id
    assert engine.orders.status(adopted[0].client_order_id) == OrderStatus.ACCEPTED
