"""Each pre-trade rule with the rejection it gives (rule, scope, numbers), its boundary, and the way out."""
import logging
import math

import numpy as np
import pytest

from extrema import InstrumentRegistry, Market, OrderBook, OrderStatus
from extrema._core.execution import ExecutionCore
from extrema._core.risk import REJECT_REASON_BASE, BreakerReason, RiskRejection, RiskRule as RR, estimate_fill
from order_records import fill, order_update, quote

T0 = 1_800_000_000_000_000
LIMIT, MARKET, STOP_MARKET, STOP_LIMIT = 2, 1, 3, 4


class Env:
    def __init__(self, method="average"):
        self.reg = InstrumentRegistry()
        # id 1: BTC_USDT spot, tick 0.01 (pp 2), lot 0.001 (sp 3), min notional 5
        self.btc = self.reg.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.001", min_notional="5")
        # id 2: ETH_USDT_PERP, tick 0.1 (pp 1), lot 0.01 (sp 2)
        self.eth = self.reg.register("ETH_USDT_PERP", Market.BINANCE_USDM, "0.1", "0.01")
        self.core = ExecutionCore(self.reg, method)
        self.risk = self.core.risk
        self.n = 0
        self.now = T0

    def submit(self, owner=0, iid=1, side="buy", qty=1_000, price=100_00, **kw):
        self.n += 1
        coid = (self.n << 6) | owner
        kw.setdefault("now", self.now)
        r = self.core.submit(owner, coid, iid, side, qty, price, **kw)
        return r if r is not None else coid

    def filled(self, coid, price=None, qty=None, trade_id=None):
        o = self.core.orders.get(coid)
        self.core.process(fill(o["instrument_id"], coid, trade_id or coid, price or o["price_raw"],
                               qty or o["quantity_raw"], side=0 if o["side"] == "buy" else 1))


def rejected(r, rule, scope=None, value=None, limit=None):
    assert isinstance(r, RiskRejection), f"expected a {rule.name} rejection, the order passed"
    assert r.rule == rule, r
    if scope is not None:
        assert r.scope == scope, r
    if value is not None:
        assert (math.isnan(value) and math.isnan(r.value)) or r.value == pytest.approx(value), r
    if limit is not None:
        assert r.limit == pytest.approx(limit), r
    return r


@pytest.fixture
def env():
    return Env()


def test_a_passing_order_is_registered_and_counted(env):
    coid = env.submit()
    o = env.core.orders.get(coid)
    assert o["status"] == OrderStatus.SUBMITTED and env.core.orders.open_quantity(0, 1) == (1_000, 0)
    assert env.core.portfolio.active_instruments(0) == [1]
    assert env.risk.state(0)["passed"] == 1


def test_a_rejected_order_is_closed_with_the_rule_as_reason(env):
    r = rejected(env.submit(qty=1), RR.MIN_NOTIONAL)
    o = env.core.orders.get(r.client_order_id)
    assert o["status"] == OrderStatus.REJECTED and o["reason"] == REJECT_REASON_BASE + RR.MIN_NOTIONAL
    assert r.reason_code == o["reason"]
    assert env.core.orders.open_count() == 0 and env.risk.state(0)["rejected"] == {"MIN_NOTIONAL": 1}
    assert "MIN_NOTIONAL (order check) on 1: notional 0.1 is below the minimum 5" == r.message
    assert r.as_dict()["rule"] == "MIN_NOTIONAL"


def test_kill_switch_blocks_and_cancels(env):
    a = env.submit(owner=0)
    b = env.submit(owner=1)
    env.core.process(order_update(1, a, OrderStatus.ACCEPTED, price=100_00, quantity=1_000))
    to_cancel = env.core.kill(0, reason="test")
    assert to_cancel == [a] and env.core.orders.status(a) == OrderStatus.PENDING_CANCEL
    rejected(env.submit(owner=0), RR.KILL_SWITCH, scope=0)
    c = env.submit(owner=1)
    assert not isinstance(c, RiskRejection)
    # the global switch cancels the rest (a is already pending its cancel)
    assert sorted(env.core.kill()) == sorted([b, c])
    rejected(env.submit(owner=1), RR.KILL_SWITCH, scope="global")
    env.risk.release()
    env.risk.release(0)
    assert not isinstance(env.submit(owner=0), RiskRejection)
    kinds = [e["event"] for e in env.risk.events()]
    assert kinds == ["kill", "kill", "release", "release"]


def test_global_kill_cancels_every_live_order_of_the_engine(env):
    ids = [env.submit(owner=k) for k in (0, 1, 2)]
    foreign = (1 << 62) + 5
    env.core.process(order_update(1, foreign, OrderStatus.ACCEPTED, price=100_00, quantity=1_000))
    assert sorted(env.core.kill()) == sorted(ids)
    assert all(env.core.orders.status(i) == OrderStatus.PENDING_CANCEL for i in ids)
    assert env.core.orders.status(foreign) == OrderStatus.ACCEPTED


def test_drawdown_breaker(env):
    env.risk.set_limit("max_drawdown", 10.0)
    coid = env.submit(qty=1_000, price=100_00)
    env.filled(coid)                                   # long 1 BTC at 100
    env.core.portfolio.set_mark(1, 95_00)              # -5: fine
    assert not isinstance(env.submit(qty=100), RiskRejection)
    env.core.portfolio.set_mark(1, 90_00)              # -10 from the peak: trips (the limit is reached)
    rejected(env.submit(qty=100), RR.CIRCUIT_BREAKER, scope="global", value=10.0, limit=10.0)
    env.core.portfolio.set_mark(1, 100_00)             # recovering does not clear it
    rejected(env.submit(qty=100), RR.CIRCUIT_BREAKER)
    assert env.risk.breaker()[0] == BreakerReason.DRAWDOWN
    env.risk.reset_breaker()
    assert not isinstance(env.submit(qty=100), RiskRejection)
    assert [e["event"] for e in env.risk.events()] == ["breaker_trip", "breaker_reset"]


def test_reject_burst_breaker_with_cooldown(env):
    env.risk.set_limit("reject_burst", (3, 1.0), strategy=0)
    env.risk.set_limit("breaker_cooldown", 5.0, strategy=0)
    ids = [env.submit() for _ in range(4)]
    for k, coid in enumerate(ids[:3]):
        env.core.process(order_update(1, coid, OrderStatus.REJECTED, price=100_00, quantity=1_000,
                                      ts_local=T0 + k * 400_000))
    assert env.core.venue_rejects == 3
    # 3 rejects within 0.8 s: tripped until T0 + 0.8 s + 5 s
    rejected(env.submit(), RR.CIRCUIT_BREAKER, scope=0, value=3, limit=3)
    env.now = T0 + 800_000 + 5_000_000
    assert not isinstance(env.submit(), RiskRejection)
    # rejects spread wider than the window do not trip it
    for k, coid in enumerate([env.submit() for _ in range(3)]):
        env.core.process(order_update(1, coid, OrderStatus.REJECTED, price=100_00, quantity=1_000,
                                      ts_local=env.now + k * 600_000))
    assert env.risk.breaker(0)[0] == BreakerReason.NONE


def test_manual_breaker(env):
    env.risk.trip(1, "maintenance")
    rejected(env.submit(owner=1), RR.CIRCUIT_BREAKER, scope=1)
    assert not isinstance(env.submit(owner=0), RiskRejection)
    env.risk.reset_breaker(1)
    assert not isinstance(env.submit(owner=1), RiskRejection)


@pytest.mark.parametrize("kw, value", [
    (dict(iid=99), 99), (dict(qty=0), 0), (dict(qty=-5), -0.005), (dict(price=0, order_type=LIMIT), 0),
    (dict(order_type=MARKET, price=100_00), 100), (dict(order_type=STOP_MARKET, price=0), 0),
    (dict(order_type=17), 1), (dict(side="both"), 1)])
def test_invalid_orders(env, kw, value):
    rejected(env.submit(**kw), RR.INVALID_ORDER, value=value)


def test_tick_lot_and_min_notional(env):
    env2 = Env()
    env2.reg.register("SOL_USDT", Market.BINANCE_SPOT, "0.05", "0.002", min_notional="5")     # id 3
    rejected(env2.submit(iid=3, price=10_003, qty=1_000), RR.TICK_SIZE, value=100.03, limit=0.05)
    rejected(env2.submit(iid=3, price=10_005, qty=1_001), RR.LOT_SIZE, value=1.001, limit=0.002)
    rejected(env2.submit(iid=3, order_type=STOP_LIMIT, price=10_005, stop_price_raw=9_999), RR.TICK_SIZE, value=99.99)
    # min notional 5: 100.00 x 0.050 = 5.0 passes (the minimum is allowed), 0.048 does not
    assert not isinstance(env2.submit(iid=3, price=100_00, qty=50), RiskRejection)
    rejected(env2.submit(iid=3, price=100_00, qty=48), RR.MIN_NOTIONAL, value=4.8, limit=5)
    # a market order is valued at the mark; without any price it is left to the venue (counted)
    assert not isinstance(env2.submit(iid=3, price=0, qty=2), RiskRejection)
    assert env2.risk.state()["min_notional_unchecked"] == 1
    env2.core.process(quote(3, 100_00, 1_000, 100_10, 1_000))
    rejected(env2.submit(iid=3, price=0, qty=2), RR.MIN_NOTIONAL, value=0.2001)


def test_max_order_size(env):
    env.risk.set_limit("max_order_size", "0.5", strategy=0, instrument_id=1)
    assert not isinstance(env.submit(qty=500), RiskRejection)          # equal to the limit: allowed
    rejected(env.submit(qty=501), RR.MAX_ORDER_SIZE, scope=0, value=0.501, limit=0.5)
    assert not isinstance(env.submit(owner=1, qty=501), RiskRejection)  # another strategy's limit
    env.risk.set_limit("max_order_size", "0.2", instrument_id=1)
    rejected(env.submit(owner=1, qty=201), RR.MAX_ORDER_SIZE, scope="global")


def test_max_order_notional(env):
    env.risk.set_limit("max_order_notional", 150.0)
    assert not isinstance(env.submit(qty=1_000, price=150_00), RiskRejection)
    rejected(env.submit(qty=1_001, price=150_00), RR.MAX_ORDER_NOTIONAL, value=150.15, limit=150.0)
    rejected(env.submit(qty=1_000, price=0), RR.MAX_ORDER_NOTIONAL, value=float("nan"))   # nothing to value it at
    env.core.portfolio.set_mark(1, 200_00)
    rejected(env.submit(qty=1_000, price=0), RR.MAX_ORDER_NOTIONAL, value=200.0)


def test_price_band_for_limit_orders(env):
    env.risk.set_limit("price_band_bps", 100, strategy=0)
    rejected(env.submit(), RR.PRICE_BAND, value=float("nan"), limit=100)     # no mark: refused
    book = OrderBook(2, 3, instrument_id=1)
    book.apply_snapshot([(99.99, 1)], [(100.01, 1)])                        # mid 100.00
    env.core.portfolio.set_book(1, book)
    assert not isinstance(env.submit(price=101_00), RiskRejection)          # exactly 100 bps: inside
    assert env.risk.check_order(0, 1, "buy", 1_000, 101_00, now=env.now) is None     # the chain alone, too
    rejected(env.submit(price=101_01), RR.PRICE_BAND, scope=0, value=101, limit=100)
    rejected(env.submit(side="sell", price=98_99), RR.PRICE_BAND, value=101)
    # stops trigger later: not banded
    assert not isinstance(env.submit(order_type=STOP_LIMIT, price=120_00, stop_price_raw=119_00), RiskRejection)


def test_price_band_for_market_orders_walks_the_book(env):
    env.risk.set_limit("price_band_bps", 50)
    book = OrderBook(2, 3, instrument_id=1)
    book.apply_snapshot([(99.90, 1)], [(100.10, 0.5), (100.40, 0.5), (101.00, 5)])
    env.core.portfolio.set_book(1, book)                                    # mid 100.00
    assert not isinstance(env.submit(price=0, qty=1_000), RiskRejection)    # avg 100.25: 25 bps
    rejected(env.submit(price=0, qty=2_000), RR.PRICE_BAND, scope="global", value=62.5, limit=50)
    rejected(env.submit(price=0, qty=7_000), RR.PRICE_BAND, value=float("inf"))   # the book cannot fill it
    assert not isinstance(env.submit(price=0, qty=1_000, side="sell"), RiskRejection)  # 10 bps


def test_max_open_orders(env):
    env.risk.set_limit("max_open_orders", 2, strategy=0)
    a, b = env.submit(), env.submit()
    rejected(env.submit(), RR.MAX_OPEN_ORDERS, scope=0, value=3, limit=2)
    env.core.process(order_update(1, a, OrderStatus.CANCELLED, price=100_00, quantity=1_000))
    assert not isinstance(env.submit(), RiskRejection)
    env.risk.set_limit("max_open_orders", 3)
    env.submit(owner=1)
    rejected(env.submit(owner=1), RR.MAX_OPEN_ORDERS, scope="global", value=4, limit=3)


def test_reduce_only(env):
    rejected(env.submit(side="sell", reduce_only=True), RR.REDUCE_ONLY, value=1, limit=0)
    env.filled(env.submit(qty=600))
    assert not isinstance(env.submit(side="sell", qty=600, reduce_only=True), RiskRejection)
    rejected(env.submit(side="sell", qty=700, reduce_only=True), RR.REDUCE_ONLY, value=0.7, limit=0.6)
    rejected(env.submit(side="buy", qty=100, reduce_only=True), RR.REDUCE_ONLY, limit=0)


def test_max_position_counts_open_orders_and_lets_reductions_through(env):
    eth = dict(iid=2, price=2000_0)                      # sizes at 2 decimals: 100 = 1 ETH
    env.risk.set_limit("max_position", "1", strategy=0, instrument_id=2)
    env.filled(env.submit(qty=60, **eth))                # long 0.6
    assert not isinstance(env.submit(qty=30, **eth), RiskRejection)    # + 0.3 open: worst case 0.9
    assert not isinstance(env.submit(qty=10, **eth), RiskRejection)    # exactly 1.0
    rejected(env.submit(qty=1, **eth), RR.MAX_POSITION, scope=0, value=1.01, limit=1)
    # the limit is lowered below the position: orders that bring it closer to zero still pass
    env.risk.set_limit("max_position", "0.2", strategy=0, instrument_id=2)
    assert not isinstance(env.submit(side="sell", qty=30, **eth), RiskRejection)   # worst sell case 0.3
    assert not isinstance(env.submit(side="sell", qty=50, **eth), RiskRejection)   # -0.2
    rejected(env.submit(side="sell", qty=10, **eth), RR.MAX_POSITION, value=0.3, limit=0.2)
    # each side's worst case is its own: the buy side is at 1.0
    rejected(env.submit(side="buy", qty=1, **eth), RR.MAX_POSITION, value=1.01)
    env.risk.set_limit("max_position", "0.05", instrument_id=2)
    rejected(env.submit(owner=1, qty=6, **eth), RR.MAX_POSITION, scope="global")


def test_max_exposure_over_instruments(env):
    env.risk.set_limit("max_exposure", 1000.0, strategy=0)
    env.core.portfolio.set_mark(1, 100_00)
    env.core.portfolio.set_mark(2, 2000_0)
    env.filled(env.submit(iid=1, qty=5_000))            # 5 BTC: 500
    assert not isinstance(env.submit(iid=2, qty=20, price=2000_0, side="sell"), RiskRejection)   # + 400 open
    assert not isinstance(env.submit(iid=2, qty=5, price=2000_0, side="sell"), RiskRejection)    # 1000: allowed
    rejected(env.submit(iid=1, qty=100), RR.MAX_EXPOSURE, scope=0, value=1010.0, limit=1000.0)
    assert not isinstance(env.submit(iid=1, side="sell", qty=1_000), RiskRejection)   # BTC worst case stays 5
    env.core.portfolio.set_mark(1, 120_00)              # marks move: 600 + 500 is over the limit now
    assert not isinstance(env.submit(iid=1, side="sell", qty=100), RiskRejection)     # does not add exposure
    rejected(env.submit(iid=1, side="buy", qty=100), RR.MAX_EXPOSURE, value=1112.0)


def test_daily_loss_only_lets_reducing_orders_through_then_resets_the_next_day(env):
    env.risk.set_limit("daily_loss", 50.0, now=T0)
    env.filled(env.submit(qty=10_000, price=100_00))    # long 10 at 100
    env.core.portfolio.set_mark(1, 95_00)               # -50: the limit is reached
    rejected(env.submit(qty=100), RR.DAILY_LOSS, scope="global", value=50.0, limit=50.0)
    assert not isinstance(env.submit(side="sell", qty=4_000, price=95_00), RiskRejection)
    rejected(env.submit(side="sell", qty=10_001, price=95_00), RR.DAILY_LOSS)   # would flip the position
    env.now = T0 + 86_400_000_000                       # a new day: the baseline is today's equity
    assert not isinstance(env.submit(qty=100), RiskRejection)
    env.core.portfolio.set_mark(1, 90_00)               # -50 more today
    rejected(env.submit(qty=100), RR.DAILY_LOSS, value=50.0)


def test_venue_rate_limit(env):
    env.risk.set_rate_limit(Market.BINANCE_SPOT, 3, 1.0)
    env.risk._set_bucket_clock(Market.BINANCE_SPOT, T0)
    for _ in range(3):
        assert not isinstance(env.submit(), RiskRejection)
    rejected(env.submit(), RR.RATE_LIMIT, scope="global", value=0, limit=3)
    assert not isinstance(env.submit(iid=2, price=1000_0, qty=1), RiskRejection)   # another venue
    env.now = T0 + 333_334                              # 1/3 s later: one token back
    assert not isinstance(env.submit(), RiskRejection)
    rejected(env.submit(), RR.RATE_LIMIT)
    assert env.risk.rate_tokens(Market.BINANCE_SPOT, now=T0 + 10_000_000) == [3.0]
    # a second window (10 per minute) also applies
    env.risk.set_rate_limit(Market.BINANCE_SPOT, 4, 60.0)
    env.now = T0 + 20_000_000
    for _ in range(3):
        assert not isinstance(env.submit(), RiskRejection)
    env.now += 2_000_000
    assert not isinstance(env.submit(), RiskRejection)
    rejected(env.submit(), RR.RATE_LIMIT, limit=4 / 60)


def test_limit_changes_are_logged_and_kept(env, caplog):
    with caplog.at_level(logging.WARNING, logger="extrema.risk"):
        assert env.risk.set_limit("max_open_orders", 5, strategy=3, who="ops") is None
        assert env.risk.set_limit("max_open_orders", 7, strategy=3, who="ops") == 5
        env.risk.set_limit("max_position", "0.25", instrument_id=1)
    assert "risk limit max_open_orders (strategy 3) changed from 5 to 7 by ops" in caplog.text
    assert [c["new"] for c in env.risk.changes] == [5, 7, "0.25"]
    assert env.risk.limits(3)["max_open_orders"] == 7
    assert str(env.risk.limits()["instruments"][1]["max_position"]) == "0.250"
    with pytest.raises(ValueError, match="unknown risk limit"):
        env.risk.set_limit("max_leverage", 3)
    with pytest.raises(ValueError, match="per instrument"):
        env.risk.set_limit("max_position", 1)
    with pytest.raises(ValueError):
        env.risk.set_limit("max_exposure", -1)


def test_fills_feed_positions_once(env):
    coid = env.submit(qty=1_000)
    f = fill(1, coid, 42, 100_00, 400)
    env.core.process(np.concatenate([f, f]))
    env.core.process(f)
    assert env.core.portfolio.position(0, 1)["quantity_raw"] == 400
    assert env.core.orders.stats()["fills"] == {"ok": 1, "duplicate": 2}


def test_estimate_fill():
    book = OrderBook(2, 3, instrument_id=1)
    book.apply_snapshot([(99.0, 2)], [(100.0, 1), (101.0, 1)])
    e = estimate_fill(book, "buy", 1_500)
    assert e["fillable"] and e["vwap"] == pytest.approx(100 + 1 / 3) and e["worst"] == 101.0
    assert e["slippage"] == pytest.approx(1 / 3) and e["slippage_bps"] == pytest.approx(100 / 3)
    thin = estimate_fill(book, "buy", 5_000)
    assert not thin["fillable"] and thin["filled_raw"] == 2_000 and thin["vwap"] == 100.5
    assert estimate_fill(book, "sell", 1_000)["slippage"] == 0.0
    assert math.isnan(estimate_fill(OrderBook(2, 3), "sell", 1)["vwap"])
    deep = OrderBook(2, 3, instrument_id=1)
    deep.apply_snapshot([], [(100.0 + k, 1) for k in range(50)])
    assert estimate_fill(deep, "buy", 40_000)["worst"] == 139.0
