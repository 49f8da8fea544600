"""USD-M conditional orders through Binance's algo-order API, end to end over real sockets: the
simulator refuses them on /fapi/v1/order (-4120) like Binance; placed by a strategy they go to
POST /fapi/v1/algoOrder (REST order entry) or algoOrder.place (WebSocket API), wait for their trigger,
then trade in the matching engine under the same client id, and the strategy sees the order accepted, its
fill, and the order FILLED. A reconnect while one waits reports nothing missing; fills of a triggered one
made while the user stream was down are recovered once."""
import asyncio
from decimal import Decimal

import pytest

from extrema import Market
from extrema.adapters.binance.errors import BinanceAPIError
from extrema.adapters.binance.rest import BinanceRest
from extrema.adapters.binance.signing import BinanceCredentials
from extrema.adapters.binance.ws_api import BinanceWsApi
from extrema.sim import DEFAULT_API_KEY, DEFAULT_API_SECRET, BinanceSimulator, GeneratedMarket
from extrema.sim.matching import BUY, SELL

from test_binance_e2e import start_engine, tradable
from waiting import wait_for


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


def place_stop(watcher, inst, ids, trigger):
    def place(ctx, book):
        qty, px = tradable(inst, book.book.best_ask * 1.01)      # 1 % above the ask: waits
        trigger.append(px)
        ids.append(ctx.submit(inst, "buy", qty, order_type="stop_market", stop_price=px))
    watcher.do(place)


def lift(sim, trigger):
    """Buy flow through the trigger price (run on the simulator's thread)."""
    spec = sim.engine.specs["BTCUSDT"]
    target = int(Decimal(trigger).scaleb(spec.price_dp))
    lot = 100 * spec.step_raw
    sim.engine.add_liquidity("BTCUSDT", SELL, target, lot)                     # a print at the trigger
    sim.engine.add_liquidity("BTCUSDT", SELL, target + spec.tick_raw, 10 * lot)  # what the stop buys
    depth = sum(q for p, q in sim.engine.books["BTCUSDT"].top(SELL, 10_000) if p <= target)
    sim.engine.market_flow("BTCUSDT", BUY, depth)
    sim._pump()


@pytest.mark.parametrize("order_entry", ["rest", "ws_api"])
def test_strategy_stop_market_triggers_and_fills(sim, order_entry):
    engine, venue, watcher, inst = start_engine(sim, {"order_entry": order_entry})
    ex = venue.execution
    ids, trigger = [], []
    try:
        wait_for(lambda: watcher.book_updates >= 3 and ex.ready, what="the book and the order path")
        ws_api_requests = sim.counters["ws_api_requests"]
        place_stop(watcher, inst, ids, trigger)
        wait_for(lambda: ids and engine.orders.status(ids[0]) == 2, what="the algo order accepted")   # ACCEPTED
        text = ex.order_ids.text(ids[0])
        assert sim.call(lambda: [a.client_id for a in sim.algo.open()]) == [text]
        assert (sim.counters["ws_api_requests"] > ws_api_requests) == (order_entry == "ws_api")
        assert not watcher.fills
        sim.call(lift, sim, trigger[0])
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


def test_ws_api_places_and_cancels_algo_orders(sim):
    """algoOrder.place / algoOrder.cancel on the USD-M WebSocket API (Binance offers both)."""
    async def go():
        api = BinanceWsApi(Market.BINANCE_USDM, sim.ws_url + "/ws-fapi/v1",
                           BinanceCredentials(DEFAULT_API_KEY, secret=DEFAULT_API_SECRET))
        runner = asyncio.ensure_future(api.run())
        try:
            await api.wait_ready(10)
            placed = await api.result(api.place_algo_order("BTCUSDT", "BUY", "STOP_MARKET", client_algo_id="wsalgo1",
                                                           quantity="0.01", trigger_price="1000000"), timeout=5)
            with pytest.raises(ValueError, match="trigger_price"):
                api.place_algo_order("BTCUSDT", "BUY", "STOP_MARKET", client_algo_id="wsalgo2", quantity="0.01")
            cancelled = await api.result(api.cancel_algo_order(client_algo_id="wsalgo1"), timeout=5)
            with pytest.raises(BinanceAPIError):
                await api.result(api.cancel_algo_order(client_algo_id="wsalgo1"), timeout=5)
            return placed, cancelled
        finally:
            api.stop()
            await runner
    placed, cancelled = asyncio.run(go())
    assert placed["clientAlgoId"] == "wsalgo1" and placed["algoStatus"] == "NEW" and placed["algoId"] > 0
    assert cancelled["algoId"] == placed["algoId"]
    algo = sim.call(lambda: sim.algo.find(client_id="wsalgo1"))
    assert algo.status == "CANCELED"


def test_a_waiting_algo_order_is_open_and_its_missed_fills_are_recovered(sim):
    engine, venue, watcher, inst = start_engine(sim, {"order_entry": "rest"})
    ex = venue.execution
    ids, trigger = [], []
    try:
        wait_for(lambda: watcher.book_updates >= 3 and ex.ready, what="the book and the order path")
        place_stop(watcher, inst, ids, trigger)
        wait_for(lambda: ids and engine.orders.status(ids[0]) == 2, what="the algo order accepted")
        text = ex.order_ids.text(ids[0])
        # A reconnect while it waits: the venue lists it open (openAlgoOrders), nothing is missing.
        reconciled = ex.counters["reconciled"]
        sim.call(sim.disconnect_all)
        wait_for(lambda: ex.counters["reconciled"] > reconciled and ex.ready, what="the reconciliation")
        assert not [e for e in ex.reconcile_events if e.kind in ("ORDER_NOT_OPEN", "ORDER_CONFLICT")], \
            ex.reconcile_events
        assert engine.orders.status(ids[0]) == 2
        # It triggers and fills while the user stream is down: the fills come back once, by the triggered
        # order's id (not the algo id the ALGO_UPDATE named).
        connects = ex.user_stream_connects
        sim.call(lambda: setattr(sim.faults, "refuse_connections", True))
        sim.call(sim.disconnect_all)
        wait_for(lambda: not ex.ready, what="the client to notice the disconnect")
        sim.call(lift, sim, trigger[0])
        algo = sim.call(lambda: sim.algo.find(client_id=text))
        assert algo.status == "FINISHED" and algo.order_id and algo.order_id != algo.algo_id
        assert not watcher.fills
        sim.call(lambda: setattr(sim.faults, "refuse_connections", False))
        wait_for(lambda: ex.user_stream_connects > connects and engine.orders.status(ids[0]) == 4,
                 what="the reconnect and the order FILLED")
        wait_for(lambda: watcher.fills, what="the recovered fills")
    finally:
        engine.stop()
    venue_order = sim.call(lambda: sim.engine.orders[algo.order_id])
    assert venue_order.status == "FILLED"
    assert ex.counters["fills_recovered"] == len(watcher.fills)
    updates = engine.orders.stats()["updates"]
    assert not {"illegal", "invalid", "overfill"} & set(updates), updates
    assert len({f[1] for f in watcher.fills}) == len(watcher.fills)              # each trade once
    assert sum(Decimal(str(f[2])) for f in watcher.fills) == Decimal(venue_order.filled).scaleb(
        -sim.engine.specs["BTCUSDT"].qty_dp)
