"""How the data reaches the simulated exchange must not change what it does: the same records in batches of
any size (the exchange side reads ahead of the strategy across batch ends) give the same run bit for bit,
and a marketable order walks as deep into the book as it needs."""
import numpy as np
import pytest

import extrema
from extrema import OrderStatus, RecordKind, Strategy
from extrema.backtest import Backtest, ConstantLatency, Fees, ProbabilisticQueue

from backtest_tape import T0, Tape, registry

P = lambda x: int(round(x * 10))          # noqa: E731  (tick 0.1)
Q = lambda x: int(round(x * 1000))        # noqa: E731  (lot 0.001)


class Taker(Strategy):
    """Every few book updates: a market order, an IOC and a FOK through the touch, a resting limit; cancels."""

    def on_start(self):
        self.context.subscribe("BTC_USDT", "book")
        self.n = 0

    def on_book(self, view):
        self.n += 1
        b = view.book
        if b.best_bid_raw is None or b.best_ask_raw is None:
            return
        ctx = self.context
        side = "buy" if self.n % 2 else "sell"
        if self.n % 5 == 0:
            ctx.submit("BTC_USDT", side, "0.7", order_type="market")
        elif self.n % 5 == 1:
            through = b.best_ask_raw + 2 if side == "buy" else b.best_bid_raw - 2
            ctx.submit("BTC_USDT", side, "0.9", f"{through / 10:.1f}", time_in_force="IOC")
        elif self.n % 5 == 2:
            through = b.best_ask_raw + 1 if side == "buy" else b.best_bid_raw - 1
            ctx.submit("BTC_USDT", side, "0.4", f"{through / 10:.1f}", time_in_force="FOK")
        elif self.n % 5 == 3:
            for coid in ctx.open_orders("BTC_USDT"):
                ctx.cancel(coid)
            ctx.submit("BTC_USDT", side, "0.5", f"{b.best_bid_raw / 10:.1f}" if side == "buy"
                       else f"{b.best_ask_raw / 10:.1f}")


def tape(seed=3, n=500):
    """A five-level book moving at random, trades, and recorded two-slot account records mixed in (they are
    not replayed: the exchange drops them, wherever a batch cuts them)."""
    rng = np.random.default_rng(seed)
    t = Tape().snapshot(0, [(P(100.0 - k / 10), Q(0.3 + k / 10)) for k in range(5)],
                        [(P(100.1 + k / 10), Q(0.3 + k / 10)) for k in range(5)])
    for k in range(n):
        us = 1_000 * (k + 1)
        if rng.random() < 0.3:
            t.trade(us, P(100.0) + int(rng.integers(-2, 4)), Q(float(rng.integers(1, 9)) / 10), bool(rng.random() < .5))
        else:
            side = "bid" if rng.random() < 0.5 else "ask"
            price = P(100.0) - int(rng.integers(0, 6)) if side == "bid" else P(100.1) + int(rng.integers(0, 6))
            t.level(us, side, price, Q(float(rng.integers(0, 12)) / 10))
    arr = t.array()
    account = np.zeros(2, extrema.RECORD_DTYPE)
    account[0] = (RecordKind.ORDER_UPDATE, 1 << 12, 1, 0, 0, 42, P(100.0), Q(1), 0, 7)
    account[1]["kind"] = RecordKind.CONTINUATION
    out = []
    for k in range(0, len(arr), 37):               # a recorded order update every 37 market records
        out.append(arr[k:k + 37])
        head = account.copy()
        head["ts_local"] = arr[min(k + 36, len(arr) - 1)]["ts_local"]
        out.append(head)
    return np.concatenate(out)


def run(batches):
    res = Backtest(registry(), batches, [Taker("taker")], latency=ConstantLatency(2_500, 700, 900),
                   queue=ProbabilisticQueue(), fees=Fees(0.0002, 0.0005), equity_interval_us=20_000)
    out = res.run()
    return out, res.sim.stats()


def same_run(a, b):
    """Orders, fills and equity identical byte for byte, client order ids aside (they carry the wall-clock
    second the engine started in): those must name the same orders."""
    rank = lambda res: {int(c): i for i, c in enumerate(res.orders["client_order_id"])}      # noqa: E731
    out = []
    for res in (a, b):
        orders, fills = res.orders.copy(), res.fills.copy()
        ids = rank(res)
        orders["client_order_id"] = np.arange(len(orders))
        fills["client_order_id"] = [ids[int(c)] for c in fills["client_order_id"]]
        out.append((orders.tobytes(), fills.tobytes(), res.equity.tobytes(), res.positions))
    return out[0] == out[1]


def split(arr, sizes):
    out, i, k = [], 0, 0
    while i < len(arr):
        n = sizes[k % len(sizes)]
        out.append(arr[i:i + n].copy())
        i += n
        k += 1
    return out


def test_batch_boundaries_do_not_change_the_run():
    arr = tape()
    whole, stats = run([arr.copy()])
    assert stats["taker_fills"] > 20 and stats["maker_fills"] > 5 and stats["dropped_account_records"] >= 13
    assert (whole.orders["status"] == OrderStatus.EXPIRED).any()
    rng = np.random.default_rng(11)
    for sizes in ([1], [2], [3], [1, 2, 7], [64], list(rng.integers(1, 40, 50))):
        batches = split(arr, sizes)
        # the exchange reads ahead of the strategy past every batch end, and some batches end between a
        # two-slot record's head and its continuation
        got, got_stats = run(batches)
        assert same_run(got, whole) and got_stats == stats, sizes


def test_a_batch_array_reused_by_its_source_does_not_change_the_run():
    """The exchange keeps what it has not replayed yet of a batch: a source may overwrite its array."""
    arr = tape(seed=5, n=200)
    want, _ = run([arr.copy()])

    def reused():
        buf = np.zeros(5, extrema.RECORD_DTYPE)
        for k in range(0, len(arr), 5):
            part = arr[k:k + 5]
            buf[:len(part)] = part
            yield buf[:len(part)]
            buf[:] = 0
    got, _ = run(reused())
    assert same_run(got, want)


@pytest.mark.parametrize("levels", [1, 3, 4, 5, 17, 300])
def test_a_market_order_walks_as_deep_as_it_needs(levels):
    """One fill per level, best first, however many levels the order reaches (the walk reads the book a
    prefix at a time); a FOK sees exactly the size within its price."""
    asks = [(P(100.1) + k, Q(0.06 * (1 + k % 3))) for k in range(320)]
    t = Tape().snapshot(0, [(P(100.0), Q(1))], asks).level(1_000, "bid", P(100.0), Q(2))
    want = sum(q for _, q in asks[:levels])
    limit = asks[levels - 1][0]

    class Walk(Strategy):
        def on_start(self):
            self.context.subscribe("BTC_USDT", "book")
            self.sent = False

        def on_book(self, view):
            if self.sent:
                return
            self.sent = True
            ctx = self.context
            ctx.submit("BTC_USDT", "buy", f"{(want + 1) / 1000:.3f}", f"{limit / 10:.1f}", time_in_force="FOK")
            ctx.submit("BTC_USDT", "buy", f"{want / 1000:.3f}", f"{limit / 10:.1f}", time_in_force="FOK")
            ctx.submit("BTC_USDT", "buy", f"{want / 1000:.3f}", order_type="market")

    res = Backtest(registry(), t.array(), [Walk("walk")]).run()
    fok_short, fok, market = res.orders[:3]
    assert fok_short["status"] == OrderStatus.EXPIRED and fok_short["filled"] == 0
    expected = [(p / 10, q / 1000) for p, q in asks[:levels]]
    for order in (fok, market):
        fills = res.fills[res.fills["client_order_id"] == order["client_order_id"]]
        assert [(round(float(f["price"]), 1), round(float(f["quantity"]), 3)) for f in fills] == expected
        assert order["status"] == OrderStatus.FILLED


def test_hundreds_of_requests_in_flight_are_answered_in_the_order_they_were_sent():
    """More arrivals and responses queued at once than the queues first hold: ties in time go by the order
    they were sent, as for a handful."""
    t = Tape().snapshot(0, [(P(100.0), Q(1))], [(P(100.1), Q(1))]).level(1_000, "bid", P(100.0), Q(2))
    t.level(2_000, "bid", P(100.0), Q(3))

    class Burst(Strategy):
        def on_start(self):
            self.context.subscribe("BTC_USDT", "book")
            self.k = 0
            self.ids, self.seen = [], []

        def on_book(self, view):
            self.k += 1
            if self.k == 1:
                for i in range(700):
                    self.ids.append(self.context.submit("BTC_USDT", "buy", "0.06", f"{90 + i % 9}.{i % 10}"))
            elif self.k == 2:
                for coid in self.ids:
                    self.context.cancel(coid)

        def on_order(self, order):
            self.seen.append((order.client_order_id, order.status))

    s = Burst("burst")
    res = Backtest(registry(), t.array(), [s], latency=ConstantLatency(0, 300, 300)).run()
    assert [c for c, st in s.seen if st == OrderStatus.ACCEPTED] == s.ids
    assert [c for c, st in s.seen if st == OrderStatus.CANCELLED] == s.ids
    assert (res.orders["status"] == OrderStatus.CANCELLED).all() and len(res.orders) == 700
