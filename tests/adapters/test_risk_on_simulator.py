"""Pre-trade risk and the kill switch end to end: a strategy on the Binance venue, the simulator as the
venue, real sockets on 127.0.0.1. Refused orders never reach the venue and come back to the strategy
with the rule and the numbers; the kill switch cancels every live order at the venue."""
import threading
from decimal import Decimal

import pytest

from extrema import EngineBuilder, InstrumentRegistry, OrderStatus, Strategy
from extrema._core.risk import RiskRule as Rule
from extrema.adapters.binance.venue import BinanceVenue
from extrema.sim import BinanceSimulator, GeneratedMarket

from test_binance_e2e import tradable
from waiting import wait_for


class Actor(Strategy):
    def __init__(self):
        super().__init__("actor")
        self.lock = threading.Lock()
        self.actions, self.orders, self.last_bid = [], {}, None

    def on_book(self, view):
        self.last_bid = view.book.best_bid
        with self.lock:
            actions, self.actions = self.actions, []
        for action in actions:
            action(self.context, view.book)

    def on_order(self, order):
        with self.lock:
            self.orders[order.client_order_id] = (order.status, order.reason)

    def do(self, action):
        with self.lock:
            self.actions.append(action)

    def status(self, oid):
        with self.lock:
            return self.orders.get(oid, (None, None))[0]


@pytest.fixture
def running():
    sim = BinanceSimulator(market="spot", source=GeneratedMarket(seed=11, symbols=["BTCUSDT"], speed=10.0))
    sim.start_in_thread()
    registry = InstrumentRegistry()
    venue = BinanceVenue.for_simulator(sim)
    (inst,) = venue.load_instruments(registry, ["BTCUSDT"])
    actor = Actor()
    engine = (EngineBuilder(registry).venue(venue).strategy(actor, subscribe={inst: "book"})
              .options(stop_when_sources_done=False).build())
    engine.start()
    wait_for(lambda: actor.last_bid is not None and venue.execution.ready, what="the book and the order path")
    yield sim, engine, venue, actor, inst
    engine.stop()
    sim.stop_thread()


def venue_open_orders(sim):
    return sim.call(lambda: [o.client_id for o in sim.engine.orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")])


def test_each_limit_refuses_with_its_rule_and_nothing_reaches_the_venue(running):
    sim, engine, venue, actor, inst = running
    ids = {}
    qty, low = tradable(inst, actor.last_bid * 0.99)
    half = max(Decimal(qty) / 2 // inst.lot_size * inst.lot_size, inst.lot_size)
    engine.risk.set_limit("max_order_size", half, instrument_id=inst.id)
    engine.risk.set_limit("price_band_bps", 50)            # 0.5 % around the mid
    engine.risk.set_limit("max_open_orders", 1, strategy=0)

    def act(ctx, book):
        ids["too_big"] = ctx.submit(inst, "buy", qty, low)
        far_qty, far = tradable(inst, book.best_bid * 0.9)
        ids["fat_finger"] = ctx.submit(inst, "buy", str(half), far)       # within the size, 10 % off the mid
    actor.do(act)
    wait_for(lambda: len(ids) == 2 and all(actor.status(i) == OrderStatus.REJECTED for i in ids.values()),
             what="both refusals")
    assert actor.context.rejection(ids["too_big"]).rule == Rule.MAX_ORDER_SIZE
    assert actor.context.rejection(ids["fat_finger"]).rule == Rule.PRICE_BAND
    assert venue.execution.stats()["submitted"] == 0 and venue_open_orders(sim) == []
    # Within the limits: one resting order passes, a second is one open order too many.
    small = str(half)

    def two(ctx, book):
        _, near = tradable(inst, book.best_bid * 0.998)
        ids["ok"] = ctx.submit(inst, "buy", small, near)
        ids["second"] = ctx.submit(inst, "buy", small, near)
    actor.do(two)
    wait_for(lambda: actor.status(ids.get("ok")) == OrderStatus.ACCEPTED, what="the order within the limits")
    assert actor.context.rejection(ids["second"]).rule == Rule.MAX_OPEN_ORDERS
    assert venue.execution.stats()["submitted"] == 1
    assert venue_open_orders(sim) == [venue.execution.order_ids.text(ids["ok"])]


def test_kill_switch_cancels_everything_live_and_blocks_new_orders(running):
    sim, engine, venue, actor, inst = running
    ids = []

    def place(ctx, book):
        for k in (0.99, 0.985, 0.98):
            ids.append(ctx.submit(inst, "buy", *tradable(inst, book.best_bid * k)))
    actor.do(place)
    wait_for(lambda: len(ids) == 3 and all(actor.status(i) == OrderStatus.ACCEPTED for i in ids),
             what="three resting orders")
    assert len(venue_open_orders(sim)) == 3
    engine.kill(reason="test")
    wait_for(lambda: all(actor.status(i) == OrderStatus.CANCELLED for i in ids), what="every order cancelled")
    assert venue_open_orders(sim) == []
    actor.do(lambda ctx, book: ids.append(ctx.submit(inst, "buy", *tradable(inst, book.best_bid * 0.99))))
    wait_for(lambda: len(ids) == 4 and actor.status(ids[3]) == OrderStatus.REJECTED, what="a blocked order")
    assert actor.context.rejection(ids[3]).rule == Rule.KILL_SWITCH
    assert venue.execution.stats()["submitted"] == 3
