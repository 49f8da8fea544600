"""Fills made while the user data stream is down are fetched back after the reconnect (GET myTrades /
userTrades), end to end over real sockets: the strategy receives each such fill exactly once, position
and fees equal the venue's, and a further reconnect adds nothing."""
from decimal import Decimal

import pytest

from extrema.sim import BinanceSimulator, GeneratedMarket
from extrema.sim.matching import BUY, SELL

from test_binance_e2e import start_engine, tradable
from waiting import wait_for


@pytest.fixture(params=["spot", "usdm"])
def sim(request):
    s = BinanceSimulator(market=request.param, source=GeneratedMarket(seed=5, symbols=["BTCUSDT"], speed=5.0))
    s.start_in_thread()
    yield s
    s.stop_thread()


def fill_while_down(sim, client_id):
    """Trade the resting user order completely at its price (a print through it) while nobody listens."""
    o = sim.engine.find("BTCUSDT", client_id=client_id)
    sim.engine.replay_trade("BTCUSDT", SELL if o.side == BUY else BUY, o.price, o.remaining)
    sim._pump()
    return o.filled, o.status


def test_fill_missed_while_disconnected_arrives_once(sim):
    engine, venue, watcher, inst = start_engine(sim)
    ex = venue.execution
    ids = []
    try:
        wait_for(lambda: watcher.book_updates >= 3 and ex.ready, what="the book and the order path")

        def place(ctx, book):                        # 3 % under the bid: the generated flow never reaches it
            ids.append(ctx.submit(inst, "buy", *tradable(inst, book.book.best_bid * 0.97)))
        watcher.do(place)
        wait_for(lambda: ids and engine.orders.status(ids[0]) == 2, what="the resting order")   # ACCEPTED
        text = ex.order_ids.text(ids[0])
        connects = ex.user_stream_connects
        sim.call(lambda: setattr(sim.faults, "refuse_connections", True))
        sim.call(sim.disconnect_all)
        wait_for(lambda: not ex.ready, what="the client to notice the disconnect")
        filled, status = sim.call(fill_while_down, sim, text)
        assert status == "FILLED" and filled > 0
        assert not watcher.fills
        sim.call(lambda: setattr(sim.faults, "refuse_connections", False))
        wait_for(lambda: ex.user_stream_connects > connects and ex.counters["reconciled"] >= 2,
                 what="the reconnect and its reconciliation")
        wait_for(lambda: engine.orders.status(ids[0]) == 4, what="the order to be FILLED")
        recovered = ex.counters["fills_recovered"]
        assert recovered >= 1
        fills = list(watcher.fills)
        assert len({f[1] for f in fills}) == len(fills) == recovered, fills
        assert sum(Decimal(str(f[2])) for f in fills) == Decimal(filled).scaleb(-sim.engine.specs["BTCUSDT"].qty_dp)

        # a second reconnect (the venue reachable throughout) recovers nothing more
        sim.call(sim.disconnect_all)
        wait_for(lambda: ex.counters["reconciled"] >= 3 and ex.ready, what="the second reconciliation")
    finally:
        engine.stop()
    assert list(watcher.fills) == fills and ex.counters["fills_recovered"] == recovered
    assert "ORDER_CONFLICT" not in {e.kind for e in ex.reconcile_events}
    # the engine counts each trade once: fees and position as the venue has them
    venue_order = sim.call(lambda: sim.engine.find("BTCUSDT", client_id=text))
    qty_dp = sim.engine.specs["BTCUSDT"].qty_dp
    pos = engine.portfolio.position(65, inst.id)
    if sim.market == "usdm":                         # USD-M fees are USDT; spot ones are in the asset bought
        assert pos["fees"] == Decimal(venue_order.commission).scaleb(-8)
        assert pos["quantity_raw"] * 10 ** qty_dp == sim.engine.positions["BTCUSDT"].amount * 10 ** inst.size_precision
        assert pos["realized"] == 0
    else:
        assert Decimal(pos["quantity_raw"]).scaleb(-inst.size_precision) == Decimal(filled).scaleb(-qty_dp)
