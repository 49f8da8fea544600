"""The backtest runner end to end: unmodified strategies through the engine against the simulated exchange."""
import time
from decimal import Decimal

import numpy as np
import pytest

import extrema
from extrema import OrderStatus, Strategy
from extrema.backtest import Backtest, ConservativeQueue, ConstantLatency, DataLatency, Fees, ProbabilisticQueue
from extrema.backtest.results import EQUITY_DTYPE, FILL_DTYPE, ORDER_DTYPE, BacktestResult

from backtest_tape import T0, Tape, registry

# prices raw at 1 decimal (tick 0.1), sizes raw at 3 decimals (lot 0.001)
P = lambda x: int(round(x * 10))          # noqa: E731
Q = lambda x: int(round(x * 1000))        # noqa: E731


class Scripted(Strategy):
    """Sends the orders of `plan` ({book event number: [(method, kwargs)]}), records everything it sees."""

    def __init__(self, plan=None, name="scripted"):
        super().__init__(name)
        self.plan = plan or {}
        self.books = 0
        self.seen = []          # (kind, context.now_us(), detail)
        self.orders = []
        self.fills = []
        self.ids = []

    def on_start(self):
        self.context.subscribe("BTC_USDT", "book", "trades")

    def on_book(self, book):
        self.books += 1
        self.seen.append(("book", self.context.now_us(), book.ts_local))
        for method, kwargs in self.plan.get(self.books, []):
            if method == "submit":
                self.ids.append(self.context.submit("BTC_USDT", **kwargs))
            elif method == "cancel":
                self.context.cancel(self.ids[kwargs["index"]])
            elif method == "replace":
                self.context.replace(self.ids[kwargs.pop("index")], **kwargs)

    def on_trade(self, trade):
        self.seen.append(("trade", self.context.now_us(), trade.ts_local))

    def on_order(self, order):
        self.orders.append((self.context.now_us(), order.client_order_id, order.status, order.filled))

    def on_fill(self, fill):
        pos = self.context.position("BTC_USDT")
        self.fills.append((self.context.now_us(), fill.price, fill.quantity, fill.maker, pos["quantity"]))

    def on_schedule(self, timer):
        self.seen.append(("timer", self.context.now_us(), timer.scheduled_us))


def book_tape():
    return Tape().snapshot(0, [(P(100.0), Q(2)), (P(99.9), Q(3))], [(P(100.1), Q(1)), (P(100.2), Q(2))])


def run(tape, strategy, **kw):
    return Backtest(registry(), tape.array(), [strategy], **kw).run()


def test_partial_fills_update_the_position():
    # A bid joins behind 2.0 at 100.0; trades at 100.0 eat the queue, then fill us 0.5 and 0.5 of 1.5.
    tape = book_tape().trade(1_000, P(100.0), Q(2.5), True).trade(2_000, P(100.0), Q(0.5), True) \
        .level(3_000, "bid", P(100.0), Q(1))
    s = Scripted({1: [("submit", dict(side="buy", quantity="1.5", price="100.0"))]})
    res = run(tape, s)
    assert [(f[2], f[3], f[4]) for f in s.fills] == [(0.5, True, Decimal("0.5")), (0.5, True, Decimal("1.0"))]
    assert s.orders[-1][2] == OrderStatus.PARTIALLY_FILLED and s.orders[-1][3] == 1.0
    assert res.positions["BTC_USDT"]["quantity"] == 1.0
    assert list(res.fills["quantity"]) == [0.5, 0.5] and set(res.fills["liquidity"]) == {1}
    assert res.orders["filled"][0] == 1.0 and res.orders["status"][0] == OrderStatus.PARTIALLY_FILLED


def test_conservative_queue_ignores_cancels_but_probabilistic_moves_forward():
    # 2.0 ahead of us; the level shrinks to 0.4 by cancels (no trades), then a 0.6 trade prints there.
    def tape():
        return book_tape().level(1_000, "bid", P(100.0), Q(2.6)).level(2_000, "bid", P(100.0), Q(0.4)) \
            .trade(3_000, P(100.0), Q(0.6), True)
    plan = {1: [("submit", dict(side="buy", quantity="1", price="100.0"))]}
    cons, prob = Scripted(dict(plan)), Scripted(dict(plan))
    run(tape(), cons, queue=ConservativeQueue())
    run(tape(), prob, queue=ProbabilisticQueue("power", 2))
    # conservative: 2.0 ahead -> clamped to the level (0.4 after the cancels... still ahead) -> 0.2 fill
    assert [f[2] for f in cons.fills] == [0.2]
    # probabilistic: the cancels came mostly from ahead (we joined at the back): a larger fill
    assert prob.fills and prob.fills[0][2] > 0.2


def test_market_order_walks_the_book_with_taker_fees():
    s = Scripted({1: [("submit", dict(side="buy", quantity="2.5", order_type="market"))]})
    res = run(book_tape(), s, fees=Fees(maker=0.0001, taker=0.001))
    assert [(f[1], f[2], f[3]) for f in s.fills] == [(100.1, 1.0, False), (100.2, 1.5, False)]
    assert list(res.fills["liquidity"]) == [2, 2]
    assert res.fills["fee"] == pytest.approx([100.1 * 0.001, 100.2 * 1.5 * 0.001])
    assert res.positions["BTC_USDT"]["quantity"] == 2.5


def test_ioc_remainder_expires_and_fok_fills_nothing():
    s = Scripted({1: [("submit", dict(side="buy", quantity="5", price="100.2", time_in_force="IOC")),
                      ("submit", dict(side="buy", quantity="5", price="100.2", time_in_force="FOK"))]})
    res = run(book_tape(), s)
    ioc, fok = s.ids
    final = {coid: status for _, coid, status, _ in s.orders}
    assert final[ioc] == OrderStatus.EXPIRED and final[fok] == OrderStatus.EXPIRED
    assert sum(f[2] for f in s.fills) == 3.0            # the IOC took both levels within 100.2
    assert res.orders["filled"][1] == 0.0


def test_venue_rejections():
    # The engine's pre-trade checks refuse what they know (min notional, reduce-only on a flat position)
    # before anything is sent; the venue rejects post-only that would take and, for requests that reach
    # it unchecked, sizes off the lot grid and prices off the tick grid.
    from extrema.execution.client import OrderRequest

    class Direct(Scripted):
        def on_book(self, book):
            super().on_book(book)
            if self.books == 1:
                client = self.context._engine.execution_client()
                for k, (qty, price) in enumerate([(Decimal("1.0005"), Decimal("99")), (Decimal("1"), Decimal("99.05"))]):
                    coid = self.context._engine.next_client_order_id(self.context.index)
                    self.direct = getattr(self, "direct", []) + [coid]
                    client.submit(OrderRequest(coid, self.name, "BTC_USDT", "buy", qty, price))

    s = Direct({1: [("submit", dict(side="buy", quantity="1", price="100.1", post_only=True)),      # would take
                    ("submit", dict(side="buy", quantity="0.01", price="99.0")),                   # 0.99 < 5
                    ("submit", dict(side="sell", quantity="1", price="101.0", reduce_only=True))]})  # flat
    res = run(book_tape(), s)
    reasons = {int(r["client_order_id"]): int(r["reason"]) for r in res.orders}
    assert reasons == {s.ids[0]: int(extrema.OrderReason.POST_ONLY_WOULD_TAKE),
                       s.direct[0]: int(extrema.OrderReason.PRICE_QTY_LIMITS),
                       s.direct[1]: int(extrema.OrderReason.PRICE_QTY_LIMITS)}
    assert all(s.context.order(i)["status"] == OrderStatus.REJECTED for i in s.ids)
    seen = {coid: status for _, coid, status, _ in s.orders}
    assert all(seen[i] == OrderStatus.REJECTED for i in s.ids + s.direct)
    assert s.context.rejection(s.ids[1]).rule.name == "MIN_NOTIONAL"
    assert res.meta["exchange"]["rejects"] == 3 and len(res.fills) == 0


def test_latency_orders_the_answers_and_the_cancel_race():
    # entry 1 ms, response 1 ms: the order lands at +1 ms; a trade through it at +1.5 ms fills it before
    # the cancel sent at +1.2 ms (arrives +2.2 ms) - the cancel loses the race.
    tape = book_tape().level(1_200, "bid", P(99.9), Q(3.5)).trade(1_500, P(99.8), Q(5), True) \
        .level(5_000, "bid", P(99.9), Q(3.5))
    s = Scripted({1: [("submit", dict(side="buy", quantity="1", price="99.9"))], 2: [("cancel", dict(index=0))]})
    res = run(tape, s, latency=ConstantLatency(entry_us=1_000, response_us=1_000))
    assert s.orders[0][0] == T0 + 2_000 and s.orders[0][2] == OrderStatus.ACCEPTED     # ack: +1 ms +1 ms
    assert s.fills and s.fills[0][0] == T0 + 2_500                                    # fill: trade +1 ms
    assert res.fills["latency_us"][0] == 2_500
    assert res.meta["exchange"]["cancel_rejects"] == 1
    assert res.orders["ack_ts"][0] == T0 + 2_000 and res.orders["done_ts"][0] == T0 + 2_500


def test_replay_clock_and_timers_interleave_with_data():
    class Timed(Scripted):
        def on_start(self):
            super().on_start()
            self.start_us = self.context.now_us()
            self.context.schedule(delay=0.0015)
            self.context.schedule(every=0.001)
    s = Timed()
    tape = book_tape().level(1_000, "bid", P(99.9), Q(1)).level(2_000, "bid", P(99.9), Q(2)) \
        .level(3_200, "bid", P(99.9), Q(3))
    run(tape, s)
    assert s.start_us == T0
    times = [t for _, t, _ in s.seen]
    assert times == sorted(times)
    assert [(k, t - T0) for k, t, _ in s.seen] == [
        ("book", 0), ("timer", 1_000), ("book", 1_000), ("timer", 1_500), ("timer", 2_000), ("book", 2_000),
        ("timer", 3_000), ("book", 3_200)]
    assert all(t == ts for k, t, ts in s.seen if k == "book")


def test_same_inputs_same_results_bit_for_bit_paced_or_not():
    rng = np.random.default_rng(7)

    def tape():
        t = book_tape()
        for k in range(400):
            ms = 1_000 * (k + 1)
            if rng.random() < 0.5:
                t.trade(ms, P(100.0) + int(rng.integers(-2, 3)), Q(float(rng.integers(1, 20)) / 10),
                        bool(rng.random() < 0.5))
            else:
                side = "bid" if rng.random() < 0.5 else "ask"
                base = P(100.0) - int(rng.integers(0, 3)) if side == "bid" else P(100.1) + int(rng.integers(0, 3))
                t.level(ms, side, base, Q(float(rng.integers(0, 30)) / 10))
        return t

    class MM(Strategy):
        def on_start(self):
            self.context.subscribe("BTC_USDT", "book")
            self.n = 0

        def on_book(self, book):
            self.n += 1
            b = book.book
            if self.n % 7 == 0 and b.best_bid_raw is not None and b.best_ask_raw is not None:
                for coid in self.context.open_orders("BTC_USDT"):
                    self.context.cancel(coid)
                self.context.submit("BTC_USDT", "buy", "0.5", str(Decimal(b.best_bid_raw).scaleb(-1)))
                self.context.submit("BTC_USDT", "sell", "0.5", str(Decimal(b.best_ask_raw).scaleb(-1)))

    arrays = tape().array()
    span_s = (int(arrays["ts_local"].max()) - int(arrays["ts_local"].min())) / 1e6
    results, walls = [], []
    for pacing in ({}, {}, {"realtime": True, "speed": 4.0}):
        began = time.monotonic()
        results.append(Backtest(registry(), arrays.copy(), [MM("mm")], latency=ConstantLatency(100, 300, 300),
                                queue=ProbabilisticQueue(), fees=Fees(0.0002, 0.0005), equity_interval_us=10_000,
                                **pacing).run())
        walls.append(time.monotonic() - began)
    a = results[0]
    assert len(a.fills) > 5
    for b in results[1:]:
        for name in ("orders", "fills", "equity"):
            assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
        assert a.positions == b.positions
    # --realtime --speed 4 hands the data over no faster than a quarter of its own span (a lower bound:
    # sleeping never returns early, so this holds however loaded the machine is)
    assert walls[2] >= span_s / 4


def test_result_layout_and_equity_curve():
    tape = book_tape().trade(1_000, P(100.0), Q(3), True).level(2_500_000, "bid", P(100.0), Q(1))
    s = Scripted({1: [("submit", dict(side="buy", quantity="1", price="100.0"))]})
    res = run(tape, s, balances={"USDT": 1000}, equity_interval_us=1_000_000)
    assert isinstance(res, BacktestResult)
    assert res.orders.dtype == ORDER_DTYPE and res.fills.dtype == FILL_DTYPE and res.equity.dtype == EQUITY_DTYPE
    assert list(res.equity["ts"] - T0) == [1_000_000, 2_000_000, 2_500_000]
    assert res.equity["equity"][-1] == pytest.approx(1000.0 + 0.05)     # long 1 at 100.0, mid 100.05
    assert res.instruments[1] == "BTC_USDT" and res.strategies == ["scripted"]
    assert res.meta["events"] == len(tape.rows) and res.meta["records_delivered"] == len(tape.rows) + 6 and res.meta["events_per_second"] > 0


def test_data_latency_uses_the_exchange_timestamps():
    # exchange time 300 µs before ts_local; entry / response = the observed feed latency
    tape = Tape().snapshot(0, [(P(100.0), Q(1))], [(P(100.1), Q(1))])
    tape.rows = [r[:3] + (r[4] - 300,) + r[4:] for r in tape.rows]
    tape.level(1_000, "bid", P(99.9), Q(1), exch=700)
    s = Scripted({1: [("submit", dict(side="buy", quantity="0.1", order_type="market"))]})
    run(tape, s, latency=DataLatency())
    assert s.orders[0][0] == T0 + 600          # sent at 0, +300 entry, +300 response


def test_a_strategy_that_raises_does_not_stop_the_run():
    class Bad(Scripted):
        def on_trade(self, trade):
            raise RuntimeError("boom")
    tape = book_tape().trade(1_000, P(100.0), Q(1), True).level(2_000, "bid", P(99.9), Q(1))
    s = Bad()
    res = run(tape, s)
    assert s.books == 2 and res.meta["engine"]["dispatcher"]["hook_errors"] == 1


class Asker(Strategy):
    """Asks a task for a quote size on every book message; trades what it answers."""

    def on_start(self):
        self.context.subscribe("BTC_USDT", "book")
        self.sent, self.answers = {}, []

    def on_book(self, book):
        b = book.book
        if b.best_bid_raw is not None:
            rid = self.context.request("sizer", (len(self.sent), b.best_bid_raw))
            self.sent[rid] = self.context.now_us()

    def on_response(self, response):
        self.answers.append((response.request_id, self.context.now_us(), response.result))
        qty, price_raw = response.result
        for coid in self.context.open_orders("BTC_USDT"):
            self.context.cancel(coid)
        self.context.submit("BTC_USDT", "buy" if qty % 2 else "sell", f"{qty / 1000:.3f}",
                            str(Decimal(price_raw).scaleb(-1)))


def sizer(payload):
    # uneven thread timing: the answer must still land at the same replay time in every run
    k, price_raw = payload
    time.sleep((k * 7919 % 5) / 10_000)
    return 100 + k % 7, price_raw


def test_task_answers_arrive_at_a_modelled_time_and_runs_repeat():
    rng = np.random.default_rng(3)
    t = book_tape()
    for k in range(60):
        ms = 1_000 * (k + 1)
        t.level(ms, "bid", P(100.0) - int(rng.integers(0, 3)), Q(float(rng.integers(1, 30)) / 10))
        if k % 3 == 0:
            t.trade(ms + 10, P(100.0) - int(rng.integers(0, 3)), Q(2), True)
    runs = []
    for _ in range(2):
        s = Asker("asker")
        res = Backtest(registry(), t.array(), [s], tasks={"sizer": sizer}, task_latency_us=400,
                       equity_interval_us=5_000).run()
        runs.append((s, res))
    (a, ra), (b, rb) = runs
    assert len(a.answers) == len(a.sent) == 61
    # each answer at its request's time + the modelled task latency, in request order
    assert [(rid, ts) for rid, ts, _ in a.answers] == [(rid, ts + 400) for rid, ts in a.sent.items()]
    assert a.answers == b.answers and len(ra.fills) > 0
    for name in ("orders", "fills", "equity"):
        assert getattr(ra, name).tobytes() == getattr(rb, name).tobytes()
    assert ra.meta["task_latency_us"] == 400


def test_a_task_that_never_answers_fails_the_run_clearly():
    import threading
    gate = threading.Event()

    class Once(Asker):
        def on_book(self, book):
            if not self.sent:
                super().on_book(book)
    try:
        with pytest.raises(RuntimeError, match="did not answer request 1"):
            Backtest(registry(), book_tape().level(1_000, "bid", P(99.9), Q(1)).array(), [Once("once")],
                     tasks={"sizer": lambda payload: gate.wait()}, task_timeout=0.05).run()
    finally:
        gate.set()


class Churner(Strategy):
    """Quotes far from the market on one book update and cancels on the next: order updates (two-slot
    records) are about half of what the engine delivers. Keeps the last status it saw per order."""

    def __init__(self):
        super().__init__("churner")
        self.live = 0
        self.seen = {}

    def on_start(self):
        self.context.subscribe("BTC_USDT", "book")

    def on_book(self, book):
        if self.live:
            self.context.cancel(self.live)
            self.live = 0
        else:
            self.live = self.context.submit("BTC_USDT", "buy", Decimal("0.2"), Decimal("50.0"))

    def on_order(self, order):
        self.seen[order.client_order_id] = order.status


def test_every_order_update_reaches_the_strategy_whole():
    """Multi-slot records (ORDER_UPDATE and its continuation) must reach the hooks whole. A ring batch
    ends at the ring's last slot; a record cut there showed the strategy an ORDER_UPDATE whose status
    (read from the continuation) was garbage, and the strategy never learned its order was cancelled.
    ~20 passes over the backtest's ring with half of the slots order updates: a cut would happen."""
    tape = book_tape()
    for k in range(1, 8_001):
        tape.level(k * 1_000, "bid", P(99.8), Q(1 + k % 5))
    strategy = Churner()
    result = run(tape, strategy, latency=ConstantLatency(entry_us=100, response_us=100),
                 balances={"USDT": 1_000_000})
    final = {int(o["client_order_id"]): int(o["status"]) for o in result.orders}
    assert len(final) == 4_001     # one per two book updates; the last one is sent at the last record
    answered = dict(list(final.items())[:-1])
    assert set(answered.values()) == {int(OrderStatus.CANCELLED)}
    assert {k: int(v) for k, v in strategy.seen.items()} == answered


def test_submit_fast_path_gives_the_venue_what_the_general_path_gives():
    """context.submit of a plain limit / market order takes the raw-number path (the simulated client's
    submit_raw); an explicit order_type takes the general one (OrderRequest). Same orders, same results."""
    def tape():
        return book_tape().trade(1_000, P(100.0), Q(2.5), True).trade(2_000, P(100.0), Q(0.5), True) \
            .level(3_000, "bid", P(100.0), Q(1)).level(4_000, "ask", P(100.1), Q(3))

    def plan(explicit):
        def o(kind, **kw):
            return ("submit", dict(kw, order_type=kind) if explicit else kw)
        return {1: [o("limit", side="buy", quantity="1.5", price="100.0"),
                    o("limit", side="buy", quantity="5", price="100.2", time_in_force="IOC"),
                    o("limit", side="buy", quantity="5", price="100.2", time_in_force="FOK"),
                    o("market", side="sell", quantity="0.5")],
                3: [o("limit", side="sell", quantity="0.7", price="100.3"), ("cancel", dict(index=0))]}

    fast, general = Scripted(plan(False)), Scripted(plan(True))
    a = run(tape(), fast, fees=Fees(maker=0.0001, taker=0.001))
    b = run(tape(), general, fees=Fees(maker=0.0001, taker=0.001))
    assert len(a.orders) == 5 and len(a.fills) >= 3
    assert a.orders.tobytes() == b.orders.tobytes()
    assert a.fills.tobytes() == b.fills.tobytes()
    assert fast.orders == general.orders and fast.fills == general.fills
