"""Venue-side conditional orders in the simulated exchange: stop-market, stop-limit, take-profit market /
limit, triggered by the replayed last trade price (or the mark price), then matched like the market /
limit order they carry arriving at the trigger."""
import numpy as np
import pytest

import extrema
from extrema import OrderReason, OrderStatus, RecordKind
from extrema.backtest import Backtest, ConstantLatency

from backtest_tape import T0, Tape, registry

P = lambda x: int(round(x * 10))          # noqa: E731
Q = lambda x: int(round(x * 1000))        # noqa: E731


class Orders(extrema.Strategy):
    """Sends `plan` ({book event number: [submit kwargs or ("cancel"|"replace", index, kwargs)]})."""

    def __init__(self, plan):
        super().__init__("cond")
        self.plan = plan
        self.books = 0
        self.ids = []
        self.fills = []
        self.updates = []

    def on_start(self):
        self.context.subscribe("BTC_USDT", "book", "trades")

    def on_book(self, book):
        self.books += 1
        for item in self.plan.get(self.books, []):
            if isinstance(item, dict):
                self.ids.append(self.context.submit("BTC_USDT", **item))
            elif item[0] == "cancel":
                self.context.cancel(self.ids[item[1]])
            else:
                self.context.replace(self.ids[item[1]], **item[2])

    def on_order(self, order):
        self.updates.append((self.context.now_us() - T0, order.client_order_id, order.status, order.reason))

    def on_fill(self, fill):
        self.fills.append((self.context.now_us() - T0, fill.client_order_id, float(fill.price),
                           float(fill.quantity), fill.maker))


def book():
    return Tape().snapshot(0, [(P(100.0), Q(2)), (P(99.9), Q(3))], [(P(100.1), Q(1)), (P(100.2), Q(2))])


def final(s, coid):
    return [u for u in s.updates if u[1] == coid][-1]


def run(tape, s, **kw):
    return Backtest(registry(), tape.array(), [s], **kw).run()


def test_stop_market_sell_triggers_on_the_last_price_and_walks_the_book():
    # long 2 first (a market buy), then a stop-market sell 2 at 99.9: a 100.0 trade does not trigger it,
    # the 99.9 trade does; it sells into the bids 100.0 x 2 as a taker at the trigger's exchange time.
    tape = book().trade(1_000, P(100.0), Q(0.1), True).trade(2_000, P(99.9), Q(0.1), True) \
        .level(3_000, "bid", P(99.8), Q(1))
    s = Orders({1: [dict(side="buy", quantity="2", order_type="market"),
                    dict(side="sell", quantity="2", order_type="stop_market", stop_price="99.9")]})
    res = run(tape, s)
    buy, stop = s.ids
    assert [(t, c, p, q, m) for t, c, p, q, m in s.fills if c == stop] == [(2_000, stop, 100.0, 2.0, False)]
    assert final(s, stop)[2] == OrderStatus.FILLED
    assert res.positions["BTC_USDT"]["quantity"] == 0.0
    assert res.meta["exchange"]["triggered"] == 1
    row = res.orders[res.orders["client_order_id"] == stop][0]
    assert row["order_type"] == int(extrema.OrderType.STOP_MARKET) and row["filled"] == 2.0


def test_stop_limit_buy_takes_what_crosses_and_rests_the_rest():
    # stop 100.1, limit 100.1, 3 lots: the 100.1 trade triggers it; it takes the 1.0 at 100.1 and rests 2.0
    # behind nothing (no bid at 100.1); a later sell trade at 100.1 fills 1.5 of it as a maker.
    tape = book().trade(1_000, P(100.0), Q(0.1), False).trade(2_000, P(100.1), Q(0.2), False) \
        .trade(3_000, P(100.1), Q(1.5), True).level(4_000, "bid", P(99.8), Q(1))
    s = Orders({1: [dict(side="buy", quantity="3", price="100.1", order_type="stop_limit", stop_price="100.1")]})
    res = run(tape, s)
    (coid,) = s.ids
    assert [f[2:] for f in s.fills] == [(100.1, 1.0, False), (100.1, 1.5, True)]
    assert final(s, coid)[2] == OrderStatus.PARTIALLY_FILLED
    assert res.positions["BTC_USDT"]["quantity"] == 2.5


def test_take_profit_triggers_the_other_way_round():
    # take-profit sell at 100.2 (price rising to it), take-profit buy at 99.9 (price falling to it)
    tape = book().trade(1_000, P(100.1), Q(0.1), False).trade(2_000, P(100.2), Q(0.1), False) \
        .trade(3_000, P(99.9), Q(0.1), True).level(4_000, "bid", P(99.8), Q(1))
    s = Orders({1: [dict(side="sell", quantity="1", order_type="take_profit_market", stop_price="100.2"),
                    dict(side="buy", quantity="1", price="100.1", order_type="take_profit_limit",
                         stop_price="99.9")]})
    run(tape, s)
    tp_sell, tp_buy = s.ids
    assert [(t, c, p, q) for t, c, p, q, _ in s.fills] == [(2_000, tp_sell, 100.0, 1.0), (3_000, tp_buy, 100.1, 1.0)]


def test_a_stop_that_would_trigger_at_once_is_rejected():
    tape = book().trade(1_000, P(100.0), Q(0.1), True).level(2_000, "bid", P(99.8), Q(1)) \
        .level(3_000, "bid", P(99.7), Q(1))
    s = Orders({2: [dict(side="sell", quantity="1", order_type="stop_market", stop_price="100.0"),   # last 100.0
                    dict(side="buy", quantity="1", order_type="stop_market", stop_price="100.0"),
                    dict(side="sell", quantity="1", order_type="stop_market", stop_price="99.9")]})    # fine
    res = run(tape, s)
    a, b, c = s.ids
    assert final(s, a)[2:] == (OrderStatus.REJECTED, OrderReason.OTHER)
    assert final(s, b)[2:] == (OrderStatus.REJECTED, OrderReason.OTHER)
    assert final(s, c)[2] == OrderStatus.ACCEPTED
    assert res.meta["exchange"]["rejects"] == 2 and not s.fills


def test_mark_price_working_type():
    # with stop_trigger="mark" trades do not trigger; the mark price record does
    t = book().trade(1_000, P(99.0), Q(0.1), True)
    t._add(RecordKind.MARK_PRICE, 0, 2_000, P(99.5), 0)
    t.level(3_000, "bid", P(99.8), Q(1))
    s = Orders({1: [dict(side="sell", quantity="1", order_type="stop_market", stop_price="99.6")]})
    res = run(t, s, stop_trigger="mark")
    assert [(f[0], f[2]) for f in s.fills] == [(2_000, 100.0)]
    s2 = Orders({1: [dict(side="sell", quantity="1", order_type="stop_market", stop_price="99.6")]})
    run(t, s2)                                                  # last price: the 99.0 trade triggers it
    assert [(f[0], f[2]) for f in s2.fills] == [(1_000, 100.0)]
    with pytest.raises(ValueError, match="stop_trigger"):
        Backtest(registry(), t.array(), [], stop_trigger="index")
    assert res.meta["stop_trigger"] == "mark"


def test_cancel_and_replace_of_an_armed_order():
    tape = book().level(1_000, "bid", P(99.8), Q(1)).level(2_000, "bid", P(99.7), Q(1)) \
        .trade(3_000, P(99.0), Q(1), True).level(4_000, "bid", P(99.6), Q(1))
    s = Orders({1: [dict(side="sell", quantity="1", order_type="stop_market", stop_price="99.5"),
                    dict(side="sell", quantity="1", price="99.0", order_type="stop_limit", stop_price="99.5")],
                2: [("cancel", 0, {}), ("replace", 1, dict(quantity="0.5"))]})
    res = run(tape, s, latency=ConstantLatency(entry_us=100, response_us=100))
    a, b = s.ids
    assert final(s, a)[2] == OrderStatus.CANCELLED
    # the replace is refused (an armed order cannot be modified); the order keeps its size and triggers
    assert [f[1:4] for f in s.fills] == [(b, 100.0, 1.0)]
    assert res.orders[res.orders["client_order_id"] == b]["quantity"][0] == 1.0


def test_reduce_only_stop_is_checked_at_the_trigger():
    # reduce-only stops sent after the entry: at the trigger the first (oldest) closes the long, the second
    # finds nothing left to reduce and expires (the venue checks reduce-only when the order triggers)
    s = Orders({1: [dict(side="buy", quantity="1", order_type="market")],
                2: [dict(side="sell", quantity="1", order_type="stop_market", stop_price="99.5", reduce_only=True),
                    dict(side="sell", quantity="1", order_type="stop_market", stop_price="99.4", reduce_only=True)]})
    tape = book().level(1_000, "bid", P(99.8), Q(1)).trade(2_000, P(99.4), Q(0.1), True) \
        .level(3_000, "bid", P(99.7), Q(1))
    res = run(tape, s)
    entry, first, second = s.ids
    assert [f[1:4] for f in s.fills] == [(entry, 100.1, 1.0), (first, 100.0, 1.0)]
    assert final(s, second)[2] == OrderStatus.EXPIRED
    assert res.positions["BTC_USDT"]["quantity"] == 0.0
