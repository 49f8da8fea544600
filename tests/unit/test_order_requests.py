"""Order requests of every type: validated before anything leaves the process, checked by the core with
their stop price, and mapped onto Binance's order types."""
from decimal import Decimal

import numpy as np
import pytest

import extrema
from extrema import (EngineBuilder, InstrumentRegistry, Market, OrderStatus, RecordKind, RecordSource,
                     RecordingExecutionClient, Strategy)
from extrema.adapters.binance.execution import binance_order_args
from extrema.execution.client import OrderRequest

D = Decimal


def request(**kw):
    base = dict(client_order_id=1, strategy="s", instrument="BTC_USDT", side="buy", quantity=D("0.5"))
    base.update(kw)
    return OrderRequest(**base)


@pytest.mark.parametrize("kw, error", [
    (dict(order_type="stop_market"), "needs a positive stop_price"),
    (dict(order_type="stop_market", stop_price=D(100), price=D(100)), "has no price"),
    (dict(order_type="stop_limit", stop_price=D(100)), "needs a positive price"),
    (dict(order_type="take_profit_limit", price=D(0), stop_price=D(1)), "needs a positive price"),
    (dict(order_type="limit", price=D(1), stop_price=D(1)), "has no stop_price"),
    (dict(order_type="market", post_only=True), "post_only applies to limit orders"),
    (dict(order_type="limit", price=D(1), time_in_force="GTD"), "GTD goes with expire_time_us"),
    (dict(order_type="limit", price=D(1), expire_time_us=5), "GTD goes with expire_time_us"),
    (dict(order_type="iceberg", price=D(1)), "order_type must be one of"),
])
def test_requests_that_cannot_be_sent_are_refused_with_the_reason(kw, error):
    with pytest.raises(ValueError, match=error):
        request(**kw)


def test_every_type_maps_onto_binance():
    cases = {
        "stop_market": dict(stop_price=D(90)),
        "stop_limit": dict(price=D(89), stop_price=D(90)),
        "take_profit_market": dict(stop_price=D(110)),
        "take_profit_limit": dict(price=D(111), stop_price=D(110)),
    }
    spot = {k: binance_order_args(Market.BINANCE_SPOT, request(order_type=k, **v), "x1")[0] for k, v in cases.items()}
    usdm = {k: binance_order_args(Market.BINANCE_USDM, request(order_type=k, **v), "x1")[0] for k, v in cases.items()}
    assert spot == {"stop_market": "STOP_LOSS", "stop_limit": "STOP_LOSS_LIMIT", "take_profit_market": "TAKE_PROFIT",
                    "take_profit_limit": "TAKE_PROFIT_LIMIT"}
    assert usdm == {"stop_market": "STOP_MARKET", "stop_limit": "STOP", "take_profit_market": "TAKE_PROFIT_MARKET",
                    "take_profit_limit": "TAKE_PROFIT"}
    _, args = binance_order_args(Market.BINANCE_SPOT, request(order_type="stop_limit", **cases["stop_limit"]), "x1")
    assert (args["stop_price"], args["price"], args["time_in_force"]) == (D(90), D(89), "GTC")
    _, args = binance_order_args(Market.BINANCE_SPOT, request(order_type="stop_market", **cases["stop_market"]), "x1")
    assert args["price"] is None and args["time_in_force"] is None
    gtd = request(order_type="limit", price=D(100), time_in_force="GTD", expire_time_us=1_800_000_000_123_456)
    assert binance_order_args(Market.BINANCE_USDM, gtd, "x1")[1]["extra"] == {"goodTillDate": 1_800_000_000_123}
    with pytest.raises(ValueError, match="spot has no GTD"):
        binance_order_args(Market.BINANCE_SPOT, gtd, "x1")
    with pytest.raises(ValueError, match="reduce-only"):
        binance_order_args(Market.BINANCE_SPOT, request(order_type="market", reduce_only=True), "x1")


def test_stop_orders_pass_the_core_with_their_stop_price_and_reach_the_client():
    reg = InstrumentRegistry()
    inst = reg.register("BTC_USDT", Market.SIM, "0.01", "0.001")
    rec = extrema.empty_records(3)
    rec["kind"] = RecordKind.TRADE
    rec["instrument_id"] = inst.id
    rec["price"] = 100_00
    rec["quantity"] = 1_000
    rec["sequence"] = np.arange(3)

    class Stops(Strategy):
        def on_trade(self, trade):
            if trade.sequence == 0:
                self.stop = self.context.submit(inst, "sell", "0.5", "94.5", order_type="stop_limit", stop_price="95")
                self.tp = self.context.submit(inst, "sell", "0.5", order_type="take_profit_market", stop_price="110")
                # A stop price off the tick grid raises in the hook: nothing is sent.
                self.context.submit(inst, "sell", "0.5", order_type="stop_market", stop_price="95.001")

    client, s = RecordingExecutionClient(), Stops()
    engine = (EngineBuilder(reg).channel(RecordSource(rec)).strategy(s, subscribe={inst: "trades"})
              .execution(client).build())
    engine.run(timeout=30)
    sent = {r.client_order_id: r for r in client.requests}
    assert set(sent) == {s.stop, s.tp}
    assert engine.stats()["dispatcher"]["hook_errors"] == 1
    assert (sent[s.stop].order_type, sent[s.stop].stop_price, sent[s.stop].price) == ("stop_limit", D("95"), D("94.5"))
    assert sent[s.tp].order_type == "take_profit_market" and sent[s.tp].price is None
    assert engine.orders.status(s.stop) == OrderStatus.SUBMITTED
    entry = engine.orders.get(s.stop)
    assert (entry["stop_price_raw"], entry["price_raw"], entry["order_type"]) == (95_00, 94_50, int(extrema.OrderType.STOP_LIMIT))
