"""The engine: routing, views, error policies, pinning, timers, tasks, graceful stop."""
import asyncio
import logging
import os
import threading
import time

import numpy as np
import pytest

import extrema
from extrema import (EngineBuilder, InstrumentRegistry, Market, RecordFlag, RecordKind, RecordSource,
                     RecordingExecutionClient, Strategy, ViewExpiredError)


@pytest.fixture
def registry():
    reg = InstrumentRegistry()
    reg.register("BTC_USDT", Market.SIM, "0.01", "0.001")
    reg.register("ETH_USDT", Market.SIM, "0.01", "0.001")
    return reg


def make(kind, instrument_id, n, *, flags=0, start=0, price=100_00):
    rec = extrema.empty_records(n)
    rec["kind"] = kind
    rec["instrument_id"] = instrument_id
    rec["flags"] = flags
    rec["sequence"] = np.arange(start, start + n)
    rec["price"] = price
    rec["quantity"] = 1_000
    return rec


def interleave(*arrays):
    out = np.concatenate(arrays)
    return out[np.argsort(out["sequence"], kind="stable")]


class Recorder(Strategy):
    def __init__(self, name=None, **kw):
        super().__init__(name, **kw)
        self.seen = []

    def on_trade(self, trade):
        self.seen.append(("trade", trade.instrument, trade.sequence, trade.price))

    def on_quote(self, quote):
        self.seen.append(("quote", quote.instrument, quote.sequence))

    def on_book(self, book):
        self.seen.append(("book", book.instrument, book.update_id, book.book.best_bid))


def test_each_record_reaches_exactly_its_subscribers(registry):
    a, b = Recorder("a"), Recorder("b")
    data = interleave(make(RecordKind.TRADE, 1, 50), make(RecordKind.QUOTE, 1, 50, start=50),
                      make(RecordKind.TRADE, 2, 50, start=100), make(RecordKind.QUOTE, 2, 50, start=150))
    engine = (EngineBuilder(registry).channel(RecordSource(data, batch=7))
              .strategy(a, subscribe={"BTC_USDT": ["trades", "quotes"]})
              .strategy(b, subscribe={"ETH_USDT": "trades", "BTC_USDT": "quotes"}).build())
    stats = engine.run(timeout=30)
    assert [e[:3] for e in a.seen] == ([("trade", "BTC_USDT", i) for i in range(50)]
                                       + [("quote", "BTC_USDT", i) for i in range(50, 100)])
    assert [e[:3] for e in b.seen] == ([("quote", "BTC_USDT", i) for i in range(50, 100)]
                                       + [("trade", "ETH_USDT", i) for i in range(100, 150)])
    assert a.seen[0][3] == 100.0
    assert stats["published"] == 200 and stats["dispatcher"]["delivered"] == 200
    assert stats["stop_reason"] == "sources finished"


def test_sources_get_the_merged_subscriptions_once(registry):
    class Probe:
        def __init__(self):
            self.subs = None

        async def run(self, emit, subscriptions):
            self.subs = subscriptions

    probe = Probe()
    engine = (EngineBuilder(registry).channel(probe)
              .strategy(Recorder("a"), subscribe={"BTC_USDT": ["trades", "book"]})
              .strategy(Recorder("b"), subscribe={"BTC_USDT": ["trades"]}).build())
    engine.run(timeout=30)
    assert probe.subs == {(1, RecordKind.TRADE): [0, 1], (1, RecordKind.BOOK_DELTA): [0]}


def test_on_book_once_per_venue_message_with_the_engine_book(registry):
    s = Recorder()
    msg1 = make(RecordKind.BOOK_DELTA, 1, 3, flags=RecordFlag.SNAPSHOT)
    msg1["flags"][-1] |= RecordFlag.LAST
    msg1["price"] = [100_00, 99_00, 101_00]
    msg1["flags"][2] |= RecordFlag.ASK
    msg1["sequence"] = 10
    msg2 = make(RecordKind.BOOK_DELTA, 1, 2, flags=RecordFlag.LAST)
    msg2["sequence"] = 11
    msg2["price"] = [100_50, 100_60]
    msg2["flags"][0] = 0
    engine = EngineBuilder(registry).channel(RecordSource(np.concatenate([msg1, msg2]), batch=1)) \
        .strategy(s, subscribe={"BTC_USDT": "book"}).build()
    engine.run(timeout=30)
    assert s.seen == [("book", "BTC_USDT", 10, 100.0), ("book", "BTC_USDT", 11, 100.6)]
    assert engine.dispatcher.book(1).levels(0, raw=True).tolist() == [[10060, 1000], [10050, 1000],
                                                                      [10000, 1000], [9900, 1000]]


def test_views_expire_after_the_hook_and_copies_do_not(registry):
    class Keeper(Strategy):
        def on_trade(self, trade):
            self.kept = trade
            self.copied = trade.copy()
            self.record = trade.record()

    k = Keeper()
    EngineBuilder(registry).channel(RecordSource(make(RecordKind.TRADE, 1, 1, start=5))) \
        .strategy(k, subscribe={"BTC_USDT": "trades"}).build().run(timeout=30)
    with pytest.raises(ViewExpiredError, match="valid only during the hook call"):
        k.kept.price
    assert "expired" in repr(k.kept)
    assert (k.copied.price, k.copied.trade_id, k.copied.instrument) == (100.0, 5, "BTC_USDT")
    assert k.record["sequence"] == 5


class Boom(Strategy):
    def __init__(self, name="boom", **kw):
        super().__init__(name, **kw)
        self.calls = 0
        self.stopped = False

    def on_trade(self, trade):
        self.calls += 1
        raise ValueError("strategy bug")

    def on_stop(self):
        self.stopped = True


@pytest.mark.parametrize("policy, expect_calls", [("continue", 20), ("disable", 1), ("stop", 1)])
def test_error_policies(registry, caplog, policy, expect_calls):
    boom, other = Boom(), Recorder("other")
    engine = (EngineBuilder(registry).channel(RecordSource(make(RecordKind.TRADE, 1, 20), batch=5))
              .strategy(boom, subscribe={"BTC_USDT": "trades"})
              .strategy(other, subscribe={"BTC_USDT": "trades"}).on_error(policy).build())
    with caplog.at_level(logging.ERROR, logger="extrema.engine"):
        stats = engine.run(timeout=30)
    assert boom.calls == expect_calls
    assert "strategy 'boom' raised ValueError in on_trade on <TradeView BTC_USDT" in caplog.text
    if policy == "stop":
        assert stats["stop_reason"] == "a strategy's error policy is 'stop'"
        assert len(other.seen) == 0          # the failing strategy came first for record 0
    else:
        assert len(other.seen) == 20         # the other strategy never notices
    assert boom.stopped                      # on_stop still runs on a graceful stop
    if policy == "disable":
        assert stats["dispatcher"]["disabled"] == ["boom"]


def test_per_strategy_policy_overrides_the_engine_policy(registry):
    boom = Boom(on_error="disable")
    engine = (EngineBuilder(registry).channel(RecordSource(make(RecordKind.TRADE, 1, 10)))
              .strategy(boom, subscribe={"BTC_USDT": "trades"}).on_error("continue").build())
    engine.run(timeout=30)
    assert boom.calls == 1


def test_failing_on_start_follows_the_policy(registry):
    class BadStart(Recorder):
        def on_start(self):
            raise RuntimeError("no config")

    s = BadStart()
    engine = (EngineBuilder(registry).channel(RecordSource(make(RecordKind.TRADE, 1, 10)))
              .strategy(s, subscribe={"BTC_USDT": "trades"}).on_error("disable").build())
    engine.run(timeout=30)
    assert s.seen == []


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning is only observable with 2+ CPUs")
def test_engine_thread_is_pinned(registry):
    cpu = max(os.sched_getaffinity(0))

    class Where(Strategy):
        def on_start(self):
            self.affinity = os.sched_getaffinity(0)
            self.thread = threading.current_thread().name

    w = Where()
    engine = EngineBuilder(registry).strategy(w).pin(cpu).options(stop_when_sources_done=False).build()
    engine.start()
    engine.stop()
    assert w.affinity == {cpu} and w.thread == "extrema-engine"
    assert os.sched_getaffinity(0) != {cpu} or len(os.sched_getaffinity(0)) == 1   # the caller is not pinned


def test_pinning_to_a_cpu_we_do_not_have_is_refused(registry):
    with pytest.raises(ValueError, match="cannot pin the engine to CPU 9999"):
        EngineBuilder(registry).pin(9999).build()


def test_timers_and_command_channels(registry):
    class Worker(Strategy):
        def __init__(self):
            super().__init__()
            self.ticks = []
            self.answers = []

        def on_start(self):
            self.periodic = self.context.schedule(every=0.005)
            self.once = self.context.schedule(delay=0.0)
            self.asked = [self.context.request("square", 12), self.context.request("square", "bad")]

        def on_schedule(self, timer):
            self.ticks.append(timer.timer_id)
            assert timer.scheduled_us > 0
            if self.ticks.count(self.periodic) == 3:
                assert self.context.cancel_schedule(self.periodic)

        def on_response(self, response):
            self.answers.append(response)
            if len(self.answers) == 2:
                self.context.schedule(delay=0.05)

    def square(x):
        return x * x if isinstance(x, int) else (_ for _ in ()).throw(TypeError("not a number"))

    w = Worker()
    engine = (EngineBuilder(registry).task("square", square).strategy(w)
              .options(stop_when_sources_done=False).build())
    engine.start()
    deadline = time.time() + 20
    while (len(w.answers) < 2 or w.ticks.count(w.periodic) < 3) and time.time() < deadline:
        time.sleep(0.01)
    engine.stop()
    assert w.ticks.count(w.periodic) == 3 and w.ticks.count(w.once) == 1
    by_id = {r.request_id: r for r in w.answers}
    assert by_id[w.asked[0]].result == 144 and by_id[w.asked[0]].ok and by_id[w.asked[0]].task == "square"
    assert isinstance(by_id[w.asked[1]].error, TypeError) and not by_id[w.asked[1]].ok
    with pytest.raises(KeyError, match="no task named 'nope'"):
        engine.request(0, "nope", 1)


def test_graceful_stop_dispatches_everything_accepted(registry):
    class Endless:
        async def run(self, emit, subscriptions):
            n = 0
            while True:
                emit(make(RecordKind.TRADE, 1, 100, start=n))
                n += 100
                await asyncio.sleep(0)

    class Slow(Recorder):
        def __init__(self):
            super().__init__()
            self.order = []

        def on_trade(self, trade):
            super().on_trade(trade)
            if len(self.seen) == 1:
                self.rid = self.context.request("slow", 0.2)

        def on_response(self, response):
            self.order.append("response")

        def on_stop(self):
            self.order.append("stop")

    s = Slow()
    engine = (EngineBuilder(registry).channel(Endless()).task("slow", lambda d: time.sleep(d) or d)
              .strategy(s, subscribe={"BTC_USDT": "trades"}).build())
    engine.start()
    while len(s.seen) < 1000:
        time.sleep(0.001)
    engine.stop()
    stats = engine.stats()
    assert stats["dispatcher"]["delivered"] == stats["published"] == len(s.seen)
    assert [e[2] for e in s.seen] == list(range(len(s.seen)))       # nothing lost or reordered
    assert s.order == ["response", "stop"]                            # accepted request answered first
    assert engine.ring.closed


def test_async_form(registry):
    s = Recorder()
    engine = EngineBuilder(registry).channel(RecordSource(make(RecordKind.TRADE, 1, 10))) \
        .strategy(s, subscribe={"BTC_USDT": "trades"}).build()
    stats = asyncio.run(engine.run_async())
    assert stats["published"] == 10 and len(s.seen) == 10


def test_orders_go_through_the_execution_client(registry):
    class Trader(Strategy):
        oid = None

        def on_trade(self, trade):
            if self.oid is not None:
                return          # stop_engine is graceful: the rest of the published batch still arrives
            self.oid = self.context.submit("BTC_USDT", "buy", "0.5", trade.price - 1)
            self.context.replace(self.oid, price="98.5")
            self.context.cancel(self.oid)
            self.context.stop_engine("done")

    client = RecordingExecutionClient()
    t = Trader()
    engine = (EngineBuilder(registry).channel(RecordSource(make(RecordKind.TRADE, 1, 5)))
              .strategy(t, subscribe={"BTC_USDT": "trades"}).execution(client).build())
    engine.run(timeout=30)
    order, replace, cancel = client.requests
    assert (order.instrument, order.side, str(order.quantity), str(order.price), order.order_type) == \
        ("BTC_USDT", "buy", "0.5", "99.0", "limit")
    assert replace.client_order_id == cancel.client_order_id == order.client_order_id == t.oid
    assert engine.stop_reason == "done"


def test_orders_go_to_the_client_of_their_market_and_adapters_bind_to_the_engine(registry):
    registry.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.00001", venue_symbol="BTCUSDT")

    class Trader(Strategy):
        def on_trade(self, trade):
            if trade.sequence == 0:
                self.sim = self.context.submit(self.context.instrument("BTC_USDT", Market.SIM), "buy", 1, 100)
                self.binance = self.context.submit(self.context.instrument("BTC_USDT", Market.BINANCE_SPOT),
                                                   "sell", 1, 101)
                self.context.cancel(self.binance)
                self.context.stop_engine("done")

    class Adapter:
        """The shape EngineBuilder.venue expects from a venue adapter."""
        def __init__(self):
            self.client = RecordingExecutionClient()
            self.client.bind_engine = lambda engine: setattr(self, "engine", engine)

        def sources(self):
            return [RecordSource(make(RecordKind.TRADE, 1, 3))]

        def execution_client(self):
            return self.client

        def markets(self):
            return [Market.BINANCE_SPOT]

    default, adapter, t = RecordingExecutionClient(), Adapter(), Trader()
    sim_btc = registry.get(Market.SIM, "BTC_USDT")
    engine = (EngineBuilder(registry).venue(adapter).execution(default)
              .strategy(t, subscribe={sim_btc: "trades"}).build())
    assert adapter.engine is engine
    engine.run(timeout=30)
    assert [r.client_order_id for r in default.requests] == [t.sim]
    assert [(type(r).__name__, r.client_order_id) for r in adapter.client.requests] == \
        [("OrderRequest", t.binance), ("CancelRequest", t.binance)]
    assert extrema.execution.orders.owner_of(t.binance) == 0


def test_no_execution_client_is_a_clear_error(registry):
    class Trader(Strategy):
        def on_trade(self, trade):
            self.context.submit("BTC_USDT", "buy", 1, 100)

    engine = (EngineBuilder(registry).channel(RecordSource(make(RecordKind.TRADE, 1, 1)))
              .strategy(Trader(), subscribe={"BTC_USDT": "trades"}).build())
    engine.run(timeout=30)
    assert engine.stats()["dispatcher"]["hook_errors"] == 1


def test_bad_subscriptions_and_set_up(registry):
    with pytest.raises(ValueError, match="unknown event kind 'bars'"):
        EngineBuilder(registry).strategy(Recorder(), subscribe={"BTC_USDT": "bars"}).build()
    with pytest.raises(extrema.UnknownInstrumentError, match="SOL_USDT"):
        EngineBuilder(registry).strategy(Recorder(), subscribe={"SOL_USDT": "trades"}).build()
    with pytest.raises(ValueError, match="on_error must be one of"):
        EngineBuilder(registry).on_error("ignore").build()
    with pytest.raises(TypeError, match="run\\(emit, subscriptions\\)"):
        EngineBuilder(registry).channel(object())

    class NoInit(Strategy):
        def __init__(self):
            pass

    with pytest.raises(TypeError, match="must call Strategy.__init__"):
        EngineBuilder(registry).strategy(NoInit()).build()


def test_records_of_unknown_instruments_are_counted_not_fatal(registry):
    s = Recorder()
    data = np.concatenate([make(RecordKind.TRADE, 77, 3), make(RecordKind.TRADE, 1, 2, start=3)])
    engine = EngineBuilder(registry).channel(RecordSource(data)).strategy(s, subscribe={"BTC_USDT": "trades"}).build()
    stats = engine.run(timeout=30)
    assert stats["dispatcher"]["unknown_instrument"] == 3 and len(s.seen) == 2


def test_override_detection():
    class P(Strategy):
        def on_trade(self, t):
            pass

    p = P()
    assert p._bind_hooks() == {"on_trade": "python"}
    p.on_quote = lambda q: None              # set on the instance: also honoured
    assert p._bind_hooks() == {"on_trade": "python", "on_quote": "python"}
    assert Strategy()._bind_hooks() == {}


@pytest.mark.parametrize("use_uvloop", [True, False])
def test_event_loop_is_uvloop_when_installed_and_wanted(registry, use_uvloop):
    pytest.importorskip("uvloop") if use_uvloop else None

    class Loop(Strategy):
        def on_start(self):
            self.loop_module = type(asyncio.get_running_loop()).__module__

    s = Loop()
    engine = EngineBuilder(registry).strategy(s).options(use_uvloop=use_uvloop, stop_when_sources_done=False).build()
    engine.start()
    engine.stop()
    assert s.loop_module.startswith("uvloop") == use_uvloop


def test_a_strategy_registered_twice_does_not_break_the_first_dispatcher(registry):
    """Registering rebinds the strategy's hooks; the first dispatcher keeps its own references."""
    import gc

    class Counter(Strategy):
        n = 0

        def on_trade(self, trade):
            self.n += 1

    s = Counter()
    first = extrema.Dispatcher(registry)
    first.subscribe(first.add_strategy(s), 1, RecordKind.TRADE)
    extrema.Dispatcher(registry).add_strategy(s)
    gc.collect()
    junk = [object() for _ in range(10_000)]
    first.dispatch(make(RecordKind.TRADE, 1, 100))
    assert s.n == 100 and len(junk) == 10_000
