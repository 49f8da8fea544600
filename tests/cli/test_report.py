"""A live run on the simulator becomes the pinned backtest result arrays (extrema.cli.report)."""
import time

import numpy as np
import pytest

from extrema import EngineBuilder, InstrumentRegistry, Strategy
from extrema.adapters.binance.venue import BinanceVenue
from extrema.backtest.results import EQUITY_DTYPE, FILL_DTYPE, ORDER_DTYPE
from extrema.cli.report import LiveTape, live_arrays
from extrema.examples import min_size, on_grid
from extrema.sim import BinanceSimulator, GeneratedMarket


class RoundTrips(Strategy):
    """Buys the minimum size at the ask, sells it back at the bid, a few times: fills for sure."""

    def __init__(self, inst, trips=3):
        super().__init__("round_trips")
        self.inst, self.left, self.busy, self.done = inst, 2 * trips, False, 0

    def on_start(self):
        self.context.subscribe(self.inst, "book")

    def on_book(self, view):
        book = view.book
        if self.busy or not self.left or book.best_bid != book.best_bid or book.best_ask != book.best_ask:
            return
        side, price = ("buy", book.best_ask) if self.left % 2 == 0 else ("sell", book.best_bid)
        size = min_size(self.inst, book.best_ask)
        self.context.submit(self.inst, side, str(size), on_grid(price, self.inst.tick_size), time_in_force="IOC")
        self.busy = True
        self.left -= 1

    def on_order(self, order):
        if order.status.name in ("FILLED", "CANCELLED", "EXPIRED", "REJECTED"):
            self.busy = False
            self.done += 1


@pytest.fixture(scope="module")
def live_run():
    sim = BinanceSimulator(market="spot", source=GeneratedMarket(seed=3, symbols=["BTCUSDT"], speed=3.0))
    sim.start_in_thread()
    try:
        registry = InstrumentRegistry()
        venue = BinanceVenue.for_simulator(sim)
        (inst,) = venue.load_instruments(registry, ["BTCUSDT"])
        strategy = RoundTrips(inst)
        engine = EngineBuilder(registry).venue(venue).strategy(strategy).options(stop_when_sources_done=False).build()
        tape = LiveTape(engine, equity_interval=0.2)
        engine.start()
        deadline = time.monotonic() + 30        # not a timing assertion: a bound on a stuck run
        while strategy.done < 6 and time.monotonic() < deadline and not engine.wait(0.1):
            pass
        engine.wait(0.5)                         # a few more equity samples
        engine.stop("test done")
        tape.close()
        yield engine, tape, live_arrays(engine, tape), strategy
    finally:
        sim.stop_thread()


def test_arrays_have_the_pinned_layouts(live_run):
    engine, tape, r, strategy = live_run
    assert r["orders"].dtype == ORDER_DTYPE and r["fills"].dtype == FILL_DTYPE and r["equity"].dtype == EQUITY_DTYPE
    assert r["strategies"] == ["round_trips"]
    assert set(r["instruments"].values()) == {"BTC_USDT"}


def test_orders_and_fills_agree_with_the_engine(live_run):
    engine, tape, r, strategy = live_run
    orders, fills = r["orders"], r["fills"]
    assert strategy.done == 6, "the round trips did not complete"
    assert len(orders) == 6 and len(fills) >= 1
    table = {int(o["client_order_id"]): o for o in engine.orders.to_numpy()}
    for o in orders:
        t = table[int(o["client_order_id"])]
        assert o["side"] == (-1 if t["side"] else 1)
        assert o["submit_ts"] == t["ts_created"] and o["ack_ts"] >= o["submit_ts"] > 0
        assert o["done_ts"] >= o["submit_ts"]
        mine = fills[fills["client_order_id"] == o["client_order_id"]]
        assert abs(mine["quantity"].sum() - o["filled"]) < 1e-12, "fills sum to the order's filled size"
        assert (mine["side"] == o["side"]).all()
    assert (fills["latency_us"] >= 0).all() and (fills["liquidity"] == 2).all()      # IOC at the touch: taker
    assert (fills["fee"] > 0).all()                 # the simulator charges 0.1 % on spot


def test_positions_and_equity_match_the_portfolio(live_run):
    engine, tape, r, strategy = live_run
    fills = r["fills"]
    net = float((fills["side"] * fills["quantity"]).sum())
    assert abs(r["positions"]["BTC_USDT"]["quantity"] - net) < 1e-12
    eq = r["equity"]
    assert len(eq) >= 2 and (np.diff(eq["ts"]) >= 0).all()
    assert abs(eq["equity"][-1] - engine.portfolio.equity(65)) < 1e-9
    assert abs(eq["fees"][-1] - fills["fee"].sum()) < 1e-6
    assert r["meta"]["events"] == engine.published > 0


@pytest.mark.parametrize("singles", range(8))
def test_the_tape_keeps_events_the_ring_wraps_whole(singles):
    """The tape reads whole events from its consumer (RingConsumer.read joins the ones the ring's end cuts):
    every FILL / ORDER_UPDATE it keeps comes with its own continuation, at every wrap position."""
    from types import SimpleNamespace

    from extrema import Engine, RecordKind, Ring, empty_records

    engine = Engine(InstrumentRegistry())
    ring = Ring(8)
    tape = LiveTape(SimpleNamespace(ring=ring, portfolio=engine.portfolio, registry=engine.registry),
                    equity_interval=60.0)
    want = []
    for k in range(14):
        rec = empty_records(1 if k < singles else 2)
        rec["sequence"] = k
        if k < singles:
            rec[0]["kind"] = RecordKind.TRADE
        else:
            rec[0]["kind"] = RecordKind.FILL if k % 2 else RecordKind.ORDER_UPDATE
            rec[0]["flags"] = 1 << 12
            rec[1]["kind"] = RecordKind.CONTINUATION
            rec[1]["price"] = 1000 + k
            want.append((k, 1000 + k))
        ring.publish(rec, timeout=10)
    ring.close()
    tape.close()
    got = tape.records()
    assert list(got["kind"][1::2]) == [RecordKind.CONTINUATION] * len(want)
    assert list(zip(got["sequence"][0::2].tolist(), got["price"][1::2].tolist())) == want
    engine.ring.close()
