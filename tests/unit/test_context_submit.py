"""Context.submit's compiled fast path (extrema._core.order_entry) against the general path it stands in for.

The reference is the general path itself (Context._submit_general: OrderRequest, Decimal, the keyword
risk-chain call, ExecutionClient.submit), plain Python: hypothesis draws orders - valid ones and every kind
of value the fast path must hand back (off the grid, negative, zero, NaN, unknown side, a time in force it
does not take) - and each is submitted twice in the same engine, once as a strategy writes it (fast path
where it applies) and once with its order type spelled out (always the general path). Both must end the
same: the same exception, or an order with the same numbers at the client and in the order table.
"""
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

import extrema
from extrema import EngineBuilder, InstrumentRegistry, Market, RecordKind, RecordSource, Strategy
from extrema._core.fixedpoint import to_raw
from extrema._core.order_entry import OrderSink
from extrema.execution.client import ExecutionClient


class TwoDoorClient(ExecutionClient):
    """Takes orders by both doors and writes down what each order looked like at the venue."""
    compiled_orders = True

    def __init__(self, inst):
        self.inst = inst
        self.seen = {}              # client order id -> (door, side, order type, tif, qty raw, price raw)

    def submit(self, order):
        market = order.order_type == "market"
        self.seen[order.client_order_id] = (
            "general", 0 if order.side == "buy" else 1, 1 if market else 2,
            0 if market else int(extrema.TimeInForce[order.time_in_force]),
            to_raw(order.quantity, self.inst.size_precision),
            0 if order.price is None else to_raw(order.price, self.inst.price_precision))

    def submit_raw(self, client_order_id, strategy, inst, side, order_type, time_in_force, quantity_raw, price_raw):
        assert inst is self.inst and strategy == "twice"
        self.seen[client_order_id] = ("fast", side, order_type, time_in_force, quantity_raw, price_raw)

    def cancel(self, request):
        pass

    def replace(self, request):
        pass


def _one_trade(inst):
    rec = extrema.empty_records(1)
    rec["kind"] = RecordKind.TRADE
    rec["instrument_id"] = inst.id
    rec["price"] = 100_00
    rec["quantity"] = 1_000
    return rec


numbers = st.one_of(
    st.decimals(min_value=-5, max_value=500, places=4, allow_nan=False),     # off the grid at 4 places too
    st.decimals(allow_nan=True, allow_infinity=True, places=2),
    st.integers(-3, 10**6),
    st.floats(min_value=-1, max_value=1e4),
    st.sampled_from([float("nan"), float("inf"), 0.1, 0.15, 100.005]),
    st.decimals(min_value=0, max_value=500, places=3, allow_nan=False).map(str),
    st.sampled_from(["1e2", "0.0001", "abc", "", " 1", "-0.5"]),
)
orders = st.tuples(st.sampled_from(["buy", "sell", "BUY", "hold"]), numbers,
                   st.one_of(st.none(), numbers), st.sampled_from(["GTC", "IOC", "FOK", "GTX"]))


def _outcome(ctx, engine, client, side, qty, price, tif, explicit):
    kw = {"time_in_force": tif}
    if explicit:
        kw["order_type"] = "market" if price is None else "limit"
    try:
        coid = ctx.submit(ctx._engine.registry[1], side, qty, price, **kw)
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
        return ("raised", type(exc).__name__)
    entry = engine.orders.get(coid)
    fields = None if entry is None else tuple(str(entry[k]) for k in (
        "side", "order_type", "time_in_force", "quantity_raw", "price_raw", "status"))
    at_venue = client.seen.get(coid)
    return ("order", at_venue and at_venue[1:], fields, at_venue and at_venue[0])


@settings(max_examples=25, deadline=None)
@given(st.lists(orders, min_size=1, max_size=25))
def test_fast_path_ends_as_the_general_path(plan):
    reg = InstrumentRegistry()
    inst = reg.register("BTC_USDT", Market.SIM, "0.01", "0.001")
    client = TwoDoorClient(inst)
    results = []

    class Twice(Strategy):
        def __init__(self):
            super().__init__("twice")

        def on_trade(self, trade):
            ctx = self.context
            for side, qty, price, tif in plan:
                fast = _outcome(ctx, engine, client, side, qty, price, tif, False)
                general = _outcome(ctx, engine, client, side, qty, price, tif, True)
                results.append(((side, qty, price, tif), fast, general))

    strategy = Twice()
    engine = (EngineBuilder(reg).channel(RecordSource(_one_trade(inst))).strategy(strategy, subscribe={inst: "trades"})
              .execution(client).build())
    engine.run(timeout=30)
    assert len(results) == len(plan), engine.stats()["dispatcher"]
    for order, fast, general in results:
        if fast[0] == "raised":
            assert fast == general, order
            continue
        assert fast[:3] == general[:3], order
        if fast[1] is not None:          # sent (not refused by the risk chain)
            assert general[3] == "general", order
            side, qty, price, tif = order
            plain = side in ("buy", "sell") and tif != "GTX"
            if not plain:
                assert fast[3] == "general", order
            elif isinstance(qty, (Decimal, int)) and isinstance(price, (Decimal, int, type(None))):
                # Text the general path reads more loosely than the compiled parser (" 1") may go either way.
                assert fast[3] == "fast", order


def test_a_sink_without_a_writer_is_refused():
    with pytest.raises(TypeError, match="submit_raw"):
        OrderSink()
