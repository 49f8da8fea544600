"""The engine's order path end to end: context.submit -> pre-trade risk -> order table -> execution
client; venue updates and fills -> order table and positions -> the strategy; the kill switch; engine-side
stops. The venue is a paper execution client that acknowledges every order and fills crossing ones
(through the engine's record stream, as a venue adapter does)."""
from decimal import Decimal

import numpy as np
import pytest

import extrema
from extrema import (EngineBuilder, InstrumentRegistry, Market, OrderStatus, RecordKind, RecordSource, Strategy)
from extrema.execution import CancelRequest, ExecutionClient, OrderRequest, REJECT_REASON_BASE, RiskRule
from order_records import fill, order_update, trade


class PaperVenue(ExecutionClient):
    """Acknowledges every order and fills what is marketable against a fixed `touch` price; answers
    cancels. Its reports reach the engine as records after the calling hook, as a venue adapter's do."""

    def __init__(self, touch=100_00):
        self.touch = touch
        self.requests = []
        self.trade_id = 0

    def bind_engine(self, engine):
        self.engine = engine

    def _later(self, *recs):
        self.engine._loop.call_soon(self.engine._emit, np.concatenate(recs))

    def submit(self, order: OrderRequest):
        self.requests.append(order)
        inst = self.engine.registry.get(Market.SIM, order.instrument)
        side = 0 if order.side == "buy" else 1
        price = int(order.price.scaleb(inst.price_precision)) if order.price is not None else self.touch
        qty = int(order.quantity.scaleb(inst.size_precision))
        recs = [order_update(inst.id, order.client_order_id, OrderStatus.ACCEPTED, side=side, price=price,
                             quantity=qty)]
        marketable = order.price is None or (side == 0 and price >= self.touch) or (side == 1 and price <= self.touch)
        if marketable:
            self.trade_id += 1
            recs.append(fill(inst.id, order.client_order_id, self.trade_id, self.touch, qty, side=side, fee=1))
            recs.append(order_update(inst.id, order.client_order_id, OrderStatus.FILLED, side=side, price=price,
                                     quantity=qty, cum_filled=qty))
        self._later(*recs)

    def cancel(self, request: CancelRequest):
        self.requests.append(request)
        o = self.engine.orders.get(request.client_order_id)
        self._later(order_update(o["instrument_id"], request.client_order_id, OrderStatus.CANCELLED,
                                 side=0 if o["side"] == "buy" else 1, price=o["price_raw"],
                                 quantity=o["quantity_raw"], cum_filled=o["filled_raw"]))

    def replace(self, request):
        self.requests.append(request)


def trades(n, price=100_00):
    return np.concatenate([trade(1, price, 1_000, trade_id=k, ts=k) for k in range(n)])


@pytest.fixture
def registry():
    reg = InstrumentRegistry()
    reg.register("BTC_USDT", Market.SIM, "0.01", "0.001", min_notional="10")
    return reg


class Scripted(Strategy):
    """Runs `script(self, k)` on the k-th trade; records order updates, fills and rejections."""

    def __init__(self, script, name="scripted"):
        super().__init__(name)
        self.script = script
        self.k = 0
        self.updates = []
        self.fills = []
        self.ids = {}

    def on_trade(self, t):
        self.script(self, self.k)
        self.k += 1

    def on_order(self, o):
        self.updates.append((o.client_order_id, o.status, o.reason))

    def on_fill(self, f):
        self.fills.append((f.client_order_id, f.quantity, f.price))


def run(registry, strategy, n_trades=6, venue=None, setup=None):
    venue = venue or PaperVenue()
    engine = (EngineBuilder(registry).channel(RecordSource(trades(n_trades), batch=1))
              .strategy(strategy, subscribe={"BTC_USDT": "trades"}).execution(venue)
              .options(risk_interval=0).build())
    if setup:
        setup(engine)
    engine.run(timeout=30)
    return engine, venue


def test_each_limit_refuses_with_its_rule_and_the_strategy_hears_why(registry):
    def script(s, k):
        c = s.context
        if k == 0:
            s.ids["ok"] = c.submit("BTC_USDT", "buy", "0.5", "99")             # rests (below the touch)
            s.ids["tiny"] = c.submit("BTC_USDT", "buy", "0.05", "99")          # 4.95 < min notional 10
            s.ids["big"] = c.submit("BTC_USDT", "buy", "2", "99")              # max order size 1
            s.ids["far"] = c.submit("BTC_USDT", "buy", "0.5", "90")            # 10 % from the mark, band 5 %
            s.ids["pos"] = c.submit("BTC_USDT", "buy", "0.6", "99")            # 0.5 open + 0.6 > max position 1
            s.ids["second"] = c.submit("BTC_USDT", "sell", "0.2", "101")       # 2nd open order: the max
            s.ids["many"] = c.submit("BTC_USDT", "sell", "0.2", "102")         # a 3rd is one too many
        elif k == 1:
            s.details = {name: c.rejection(coid) for name, coid in s.ids.items()}

    def limits(engine):
        iid = engine.registry.get(Market.SIM, "BTC_USDT").id
        engine.risk.set_limit("max_order_size", "1", strategy=0, instrument_id=iid)
        engine.risk.set_limit("price_band_bps", 500)
        engine.risk.set_limit("max_position", "1", instrument_id=iid)
        engine.risk.set_limit("max_open_orders", 2, strategy=0)

    s = Scripted(script)
    engine, venue = run(registry, s, setup=limits)
    assert [r.client_order_id for r in venue.requests] == [s.ids["ok"], s.ids["second"]]
    want = {"tiny": RiskRule.MIN_NOTIONAL, "big": RiskRule.MAX_ORDER_SIZE, "far": RiskRule.PRICE_BAND,
            "pos": RiskRule.MAX_POSITION, "many": RiskRule.MAX_OPEN_ORDERS}
    rejected = {coid: reason for coid, status, reason in s.updates if status == OrderStatus.REJECTED}
    for name, rule in want.items():
        assert rejected[s.ids[name]] == REJECT_REASON_BASE + rule, name
        r = s.details[name]
        assert r.rule == rule and r.strategy == "scripted" and r.instrument == "BTC_USDT"
    assert s.details["pos"].value == 1.1 and s.details["pos"].limit == 1.0
    assert s.details["far"].scope == "global" and s.details["big"].scope == 0
    assert s.details["ok"] is None and s.details["second"] is None
    assert (s.ids["ok"], OrderStatus.ACCEPTED, 0) in s.updates
    assert engine.stats()["risk"]["rejected"] == {"PRICE_BAND": 1, "MAX_POSITION": 1}


def test_fills_update_positions_before_the_strategy_hears_of_them(registry):
    seen = []

    class Buyer(Scripted):
        def on_fill(self, f):
            super().on_fill(f)
            seen.append(self.context.position("BTC_USDT")["quantity"])

    def script(s, k):
        if k == 0:
            s.context.submit("BTC_USDT", "buy", "0.3", "100")                  # marketable: fills at 100
        if k == 1:
            s.context.submit("BTC_USDT", "buy", "0.2")                         # market order
        if k == 3:
            s.pos = s.context.position("BTC_USDT")

    s = Buyer(script)
    engine, _ = run(registry, s)
    assert seen == [Decimal("0.3"), Decimal("0.5")]
    assert s.pos["quantity"] == Decimal("0.5") and s.pos["fees"] == Decimal("0.02")
    assert engine.portfolio.position(65, 1)["quantity_raw"] == 500
    assert s.context.equity() == pytest.approx(-0.02)


def test_the_kill_switch_cancels_everything_live_and_blocks_new_orders(registry):
    def script(s, k):
        c = s.context
        if k == 0:
            s.live = [c.submit("BTC_USDT", "buy", "0.2", p) for p in ("99", "98", "97")]
            s.filled = c.submit("BTC_USDT", "buy", "0.2", "100")
        elif k == 2:
            c.kill("test")
        elif k == 3:
            s.after = c.submit("BTC_USDT", "buy", "0.2", "99")

    s = Scripted(script)
    engine, venue = run(registry, s)
    cancels = [r.client_order_id for r in venue.requests if isinstance(r, CancelRequest)]
    assert sorted(cancels) == sorted(s.live)
    assert all(engine.orders.status(c) == OrderStatus.CANCELLED for c in s.live)
    assert engine.orders.status(s.filled) == OrderStatus.FILLED
    assert s.context.rejection(s.after).rule == RiskRule.KILL_SWITCH
    assert engine.risk.is_killed(0) and not engine.risk.is_killed()


def test_an_engine_side_stop_fires_into_an_order(registry):
    def script(s, k):
        if k == 0:
            s.stop = s.context.stop_order("BTC_USDT", "sell", "0.2", kind="trailing", trail="1.5")

    prices = [100_00, 101_00, 102_00, 101_00, 100_50, 100_40, 99_00]
    data = np.concatenate([trade(1, p, 1_000, trade_id=k, ts=k) for k, p in enumerate(prices)])
    s = Scripted(script)
    venue = PaperVenue(touch=100_40)
    engine = (EngineBuilder(registry).channel(RecordSource(data, batch=1))
              .strategy(s, subscribe={"BTC_USDT": "trades"}).execution(venue).options(risk_interval=0).build())
    engine.run(timeout=30)
    (order,) = [r for r in venue.requests if isinstance(r, OrderRequest)]
    assert (order.side, order.quantity, order.order_type) == ("sell", Decimal("0.2"), "market")
    assert s.context.position("BTC_USDT")["quantity"] == Decimal("-0.2")


def test_a_refused_send_closes_the_order(registry):
    class Broken(PaperVenue):
        def submit(self, order):
            raise ConnectionError("not connected")

    def script(s, k):
        if k == 0:
            s.oid = None
            try:
                s.context.submit("BTC_USDT", "buy", "0.2", "99")
            except ConnectionError:
                s.oid = s.context.open_orders()
                s.closed = s.context._engine.orders.to_numpy()

    s = Scripted(script)
    engine, _ = run(registry, s, venue=Broken())
    assert s.oid == [] and len(s.closed) == 1
    assert s.closed[0]["status"] == OrderStatus.REJECTED and s.closed[0]["reason"] == 3000


def test_slippage_estimate_from_the_live_book(registry):
    book = extrema.empty_records(3)
    book[:] = [(RecordKind.BOOK_DELTA, extrema.RecordFlag.SNAPSHOT, 1, 0, 0, 1, 99_00, 1_000, 0, 0),
               (RecordKind.BOOK_DELTA, extrema.RecordFlag.SNAPSHOT | extrema.RecordFlag.ASK, 1, 0, 0, 1, 101_00, 500,
                0, 0),
               (RecordKind.BOOK_DELTA, extrema.RecordFlag.SNAPSHOT | extrema.RecordFlag.ASK | extrema.RecordFlag.LAST, 1,
                0, 0, 1, 102_00, 500, 0, 0)]
    out = {}

    class Estimator(Strategy):
        def on_book(self, b):
            out["est"] = self.context.estimate_slippage("BTC_USDT", "buy", "1")
            out["mark"] = self.context._engine.portfolio.mark(1)

    engine = (EngineBuilder(registry).channel(RecordSource(book))
              .strategy(Estimator("e"), subscribe={"BTC_USDT": "book"}).options(risk_interval=0).build())
    engine.run(timeout=30)
    assert out["est"]["vwap"] == 101.5 and out["est"]["slippage"] == 0.5 and out["est"]["fillable"]
    assert out["mark"] == 100.0                        # positions are marked at the engine's book mid
