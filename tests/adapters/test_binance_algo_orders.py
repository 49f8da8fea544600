"""USD-M conditional orders through Binance's algo-order API, end to end over real sockets: the
simulator refuses them on /fapi/v1/order (-4120) like Binance; placed by a strategy they go to
POST /fapi/v1/algoOrder, wait for their trigger, then trade in the matching engine under the same client
id, and the strategy sees the order accepted, its fill, and the order FILLED."""
import asyncio
from decimal import Decimal

import pytest

from extrema import Market
from extrema.adapters.binance.errors import BinanceAPIError
from extrema.adapters.binance.rest import BinanceRest
from extrema.adapters.binance.signing import BinanceCredentials
from extrema.sim import DEFAULT_API_KEY, DEFAULT_API_SECRET, BinanceSimulator, GeneratedMarket
from extrema.sim.matching import BUY, SELL

from test_binance_e2e import start_engine, tradable, wait_for


@pytest.fixture
def sim():
    s = BinanceSimulator(market="usdm", source=GeneratedMarket(seed=9, symbols=["BTCUSDT"], speed=5.0))
    s.start_in_thread()
    yield s
    s.stop_thread()


def test_conditional_types_are_refused_on_the_order_endpoint(sim):
    async def go():
        async with BinanceRest(Market.BINANCE_USDM, sim.rest_url,
                               BinanceCredentials(DEFAULT_API_KEY, secret=DEFAULT_API_SECRET)) as rest:
            with pytest.raises(BinanceAPIError) as err:
                await rest.new_order("BTCUSDT", "BUY", "STOP_MARKET", client_order_id="x1", quantity="0.01",
                                     stop_price="1000000")
            return err.value.code
    assert asyncio.run(go()) == -4120


def test_strategy_stop_market_triggers_and_fills(sim):
    engine, venue, watcher, inst = start_engine(sim)
    ex = venue.execution
    ids, trigger = [], []
    try:
        wait_for(lambda: watcher.book_updates >= 3 and ex.ready, what="the book and the order path")

        def place(ctx, book):
            qty, px = tradable(inst, book.book.best_ask * 1.01)      # 1 % above the ask: waits
            trigger.append(px)
            ids.append(ctx.submit(inst, "buy", qty, order_type="stop_market", stop_price=px))
        watcher.do(place)
        wait_for(lambda: ids and engine.orders.status(ids[0]) == 2, what="the algo order accepted")   # ACCEPTED
        text = ex.order_ids.text(ids[0])
        assert sim.call(lambda: [a.client_id for a in sim.algo.open()]) == [text]
        assert not watcher.fills

        def lift():                       # buy flow through the trigger price
            spec = sim.engine.specs["BTCUSDT"]
            target = int(Decimal(trigger[0]).scaleb(spec.price_dp))
            lot = 100 * spec.step_raw
            sim.engine.add_liquidity("BTCUSDT", SELL, target, lot)                     # a print at the trigger
            sim.engine.add_liquidity("BTCUSDT", SELL, target + spec.tick_raw, 10 * lot)  # what the stop buys
            depth = sum(q for p, q in sim.engine.books["BTCUSDT"].top(SELL, 10_000) if p <= target)
            sim.engine.market_flow("BTCUSDT", BUY, depth)
            sim._pump()
        sim.call(lift)
        wait_for(lambda: engine.orders.status(ids[0]) == 4, what="the triggered order FILLED",
                 detail=lambda: f": {engine.orders.get(ids[0])}")
        wait_for(lambda: watcher.fills, what="the fill")
    finally:
        engine.stop()
    algo = sim.call(lambda: sim.algo.find(client_id=text))
    assert algo.status == "FINISHED" and algo.order_id
    venue_order = sim.call(lambda: sim.engine.orders[algo.order_id])
    assert venue_order.client_id == text and venue_order.status == "FILLED"
    assert sum(Decimal(str(f[2])) for f in watcher.fills) == Decimal(venue_order.filled).scaleb(
        -sim.engine.specs["BTCUSDT"].qty_dp)
    assert {f[0] for f in watcher.fills} == {ids[0]}
