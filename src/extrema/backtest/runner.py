"""Backtest: unmodified strategies over recorded data, through the same Engine, dispatcher, features,
bars, risk and portfolio that run live, against the compiled simulated exchange (_core/backtest.pyx).

    bt = Backtest(registry, source, [MyStrategy()], latency=ConstantLatency(entry_us=500, response_us=500),
                  queue=ProbabilisticQueue(), fees=Fees(maker=0.0002, taker=0.0005), balances={"USDT": 100_000})
    result = bt.run()            # extrema.backtest.results.BacktestResult

The run is synchronous, in the caller's thread: no event loop, no sleeps (unless realtime=True: then the
data is handed over at `speed` x the pace its timestamps say, for watching a replay; results are the same). The engine's clock is the
replay clock (the local time of the event being handled), so context.now_us(), schedule() timers, the
bar clock and the risk clock follow the data. Same inputs, same results, bit for bit.

Tasks (Backtest(tasks={"name": Task or function})) still run on their own threads, but their answers do
not arrive whenever the thread finishes (as live, where that makes a run depend on the machine's
timing): a request sent at replay time t is answered at t + task_latency_us (a modelled task latency,
default 0 - right after the hook that asked, before the next event). When the replay clock reaches that
time it waits for the task's answer (up to task_timeout seconds of wall time, then the run fails naming
the task) and delivers it to on_response then, ordered with timers and data like any event of that
time. So a run with tasks gives the same results every time, provided the tasks themselves are
deterministic (a task handles its requests one at a time, in the order they were sent).
"""
from __future__ import annotations

import heapq
import logging
import sys
import threading
import time
from collections.abc import Iterable

import numpy as np

from extrema._core.backtest import SimExchange
from extrema._core.records import RECORD_DTYPE, OrderType, RecordKind, TimeInForce
from extrema.backtest.models import ConservativeQueue, ConstantLatency, DataLatency, Fees, ProbabilisticQueue
from extrema.backtest.results import (EQUITY_DTYPE, FILL_DTYPE, ORDER_DTYPE, BacktestResult, equity_row,
                                      final_positions)
from extrema.engine.engine import Engine
from extrema.engine.sources import paced
from extrema.execution.client import ExecutionClient

log = logging.getLogger("extrema.backtest")

NEVER = (1 << 63) - 1
_GTC = int(TimeInForce.GTC)
_ORDER_TYPES = {"limit": int(OrderType.LIMIT), "market": int(OrderType.MARKET),
                "stop_market": int(OrderType.STOP_MARKET), "stop_limit": int(OrderType.STOP_LIMIT),
                "take_profit_market": int(OrderType.TAKE_PROFIT_MARKET),
                "take_profit_limit": int(OrderType.TAKE_PROFIT_LIMIT)}
# What triggers the venue's stop / take-profit orders (Binance USD-M workingType): "last" = the last trade
# price (CONTRACT_PRICE, the default; spot's only one), "mark" = the mark price records in the data.
_STOP_TRIGGERS = {"last": 0, "mark": 1}
_HOUSE_TIMER, _HOUSE_BARS, _HOUSE_RISK, _HOUSE_EQUITY, _HOUSE_REPLY = 0, 1, 2, 3, 4


def _exact_raw(value, precision):
    """A Decimal as a raw int at `precision`; -1 (off the grid: the venue rejects it) when it has more decimals."""
    scaled = value.scaleb(precision)
    return int(scaled) if scaled == scaled.to_integral_value() else -1


class SimulatedExecutionClient(ExecutionClient):
    """The engine's execution client in a backtest: requests go to the simulated exchange, which answers
    with ORDER_UPDATE / FILL records after the latency model's delays."""

    def __init__(self):
        self.sim = None
        self._engine = None
        self._by_name = {}

    def bind_engine(self, engine):
        self._engine = engine
        self._by_name = {inst.name: inst for inst in engine.registry}

    def submit(self, order):
        inst = self._by_name.get(order.instrument)
        if inst is None:
            inst = self._engine.find_instrument(order.instrument)   # raises UnknownInstrumentError
        price = 0 if order.price is None else _exact_raw(order.price, inst.price_precision)
        qty = _exact_raw(order.quantity, inst.size_precision)
        stop = 0 if order.stop_price is None else _exact_raw(order.stop_price, inst.price_precision)
        flags = (1 if order.reduce_only else 0) | (2 if order.post_only else 0)
        self.sim.submit_raw(order.client_order_id, order.client_order_id & 63, inst.id,
                            0 if order.side == "buy" else 1, _ORDER_TYPES[order.order_type],
                            int(TimeInForce[order.time_in_force]), flags, price, qty, order.expire_time_us or 0,
                            stop)

    # Context.submit's fast path (engine/context.py _submit_raw): a plain limit (GTC / IOC / FOK) or market
    # order comes as raw numbers, already through the compiled pre-trade checks; no OrderRequest, no Decimal
    # round trip. The simulated venue receives exactly what submit() would give it.
    compiled_orders = True

    def submit_raw(self, client_order_id, strategy, inst, side, order_type, time_in_force, quantity_raw, price_raw):
        # a market order comes without a time in force; submit() would give it the request's default, GTC
        self.sim.submit_raw(client_order_id, client_order_id & 63, inst.id, side, order_type,
                            time_in_force or _GTC, 0, price_raw, quantity_raw)

    def cancel(self, request):
        if not self.sim.cancel_raw(request.client_order_id):
            log.info("cancel of order %d: the simulated venue never received it", request.client_order_id)

    def replace(self, request):
        o = self._engine.orders.get(request.client_order_id)
        inst = self._engine.registry[o["instrument_id"]] if o is not None else None
        price = 0 if request.price is None or inst is None else _exact_raw(request.price, inst.price_precision)
        qty = 0 if request.quantity is None or inst is None else _exact_raw(request.quantity, inst.size_precision)
        if not self.sim.replace_raw(request.client_order_id, price, qty):
            log.info("replace of order %d: the simulated venue never received it", request.client_order_id)


class _Replay:
    """What the engine calls in replay mode (Engine.begin_replay): the clock, timers, posted records, and
    the housekeeping events (timers, bar clock, risk clock, equity samples) the simulated exchange runs
    when their data time comes."""

    def __init__(self, backtest, engine, sim):
        self._bt = backtest
        self._engine = engine
        self.sim = sim
        self.now_us = sim.now_us
        self.post = sim.post
        self._heap = []
        self._seq = 0
        self._timers = {}            # timer id -> (index, period) of live timers
        self._bars_armed = False
        self._answers = {}           # request id -> (CommandResponse, strategy index), posted by task threads
        self._owed = {}              # request id -> strategy index: sent, answer not delivered yet
        self._answered = threading.Condition()
        self.equity_rows = []

    def push(self, due, kind, payload=None):
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, kind, payload))
        if due < self.sim.house_due:
            self.sim.set_house_due(due)

    # ---- engine-facing ----
    def arm_timer(self, timer_id, index, due_us, period_us):
        self._timers[timer_id] = (index, period_us)
        self.push(max(due_us, self.sim.now), _HOUSE_TIMER, (timer_id, due_us))

    def cancel_timer(self, timer_id):
        return self._timers.pop(timer_id, None) is not None

    def bars_changed(self):
        if not self._bars_armed and self._engine.dispatcher.time_bar_intervals():
            self._bars_armed = True
            self._arm_bars(self.sim.now)

    def _arm_bars(self, now):
        intervals = self._engine.dispatcher.time_bar_intervals()
        if not intervals:
            self._bars_armed = False
            return
        boundary = min(now - now % iv + iv for iv in intervals)
        self.push(boundary + self._engine.bar_close_grace_us, _HOUSE_BARS, boundary)

    def request_sent(self, request_id, index):
        """A strategy sent a task request now: its answer is due task_latency_us later (module doc)."""
        self._owed[request_id] = index
        self.push(self.sim.now + self._bt.task_latency_us, _HOUSE_REPLY, request_id)

    def post_reply(self, response, index):
        """Called on a task's thread with its answer; kept until the answer's modelled time."""
        with self._answered:
            self._answers[response.request_id] = (response, index)
            self._answered.notify_all()

    def _wait_answer(self, request_id):
        timeout = self._bt.task_timeout
        with self._answered:
            if not self._answered.wait_for(lambda: request_id in self._answers, timeout):
                name = next((r.name for r in self._engine._runners.values() if r.pending), "?")
                raise RuntimeError(f"task {name!r} did not answer request {request_id} within {timeout} s of wall "
                                   f"time; a backtest waits for every answer to keep runs deterministic "
                                   f"(raise Backtest(task_timeout=...) for slow tasks)")
            return self._answers.pop(request_id)

    def _deliver_answer(self, request_id):
        response, index = self._wait_answer(request_id)
        del self._owed[request_id]
        self._engine.dispatcher.deliver(index, "on_response", response)
        self.sim.flush_posted()               # what the hook left to deliver (e.g. a risk rejection)

    def owed_due(self):
        """The latest due time of the answers still owed (None when none is)."""
        dues = [due for due, _, kind, _ in self._heap if kind == _HOUSE_REPLY]
        return max(dues) if dues else None

    def deliver_replies(self):
        """End of the run (the task threads have finished): the answers still owed, in request order."""
        for request_id in sorted(self._owed):
            self._deliver_answer(request_id)

    # ---- the simulated exchange calls this when house_due is reached ----
    def __call__(self, now):
        heap = self._heap
        while heap and heap[0][0] <= now and not self.sim.stopped:
            due, _, kind, payload = heapq.heappop(heap)
            if kind == _HOUSE_TIMER:
                timer_id, due_us = payload
                live = self._timers.get(timer_id)
                if live is None:
                    continue
                index, period = live
                if period is None:
                    del self._timers[timer_id]
                else:
                    self.push(due_us + period, _HOUSE_TIMER, (timer_id, due_us + period))
                rec = np.zeros(1, dtype=RECORD_DTYPE)
                rec[0] = (RecordKind.TIMER, 0, 0, now, now, timer_id, 0, 0, due_us, index)
                self.sim.deliver_records(rec)
            elif kind == _HOUSE_BARS:
                self._engine.dispatcher.bars_on_time(payload)
                self._arm_bars(payload)
            elif kind == _HOUSE_RISK:
                self._engine.execution_core.evaluate(now)
                self.push(now + self._bt._risk_interval_us, _HOUSE_RISK)
            elif kind == _HOUSE_EQUITY:
                self.equity_rows.append(self._bt._equity_row(now))
                self.push(now + self._bt.equity_interval_us, _HOUSE_EQUITY)
            elif kind == _HOUSE_REPLY:
                self._deliver_answer(payload)
            if self._engine.dispatcher.stop_requested:
                self.sim.request_stop()
        return heap[0][0] if heap else NEVER


def _batches(source):
    if isinstance(source, np.ndarray):
        return iter([source])
    if isinstance(source, (list, tuple)):
        if all(isinstance(s, np.ndarray) for s in source):
            return iter(source)
        try:
            from extrema.backtest.sources import merge
        except ImportError as exc:
            raise TypeError("several sources need extrema.backtest.sources.merge") from exc
        return merge(*source).batches()
    if hasattr(source, "batches"):
        return iter(source.batches())
    if isinstance(source, Iterable):
        return iter(source)
    raise TypeError(f"a backtest source has batches() (extrema.backtest.sources) or is an iterable of "
                    f"RECORD_DTYPE arrays, got {type(source).__name__}")


class Backtest:
    """See the module doc. strategies: extrema.Strategy objects, or (strategy, {instrument: kinds}) pairs."""

    def __init__(self, registry, source, strategies, *, latency=None, queue=None, fees=None, balances=None,
                 risk=None, equity_interval_us=1_000_000, progress=False, pnl_method="average",
                 risk_interval=1.0, bar_close_grace=0.25, book_options=None, on_error="continue",
                 engine_tag="bt00", stop_trigger="last", tasks=None, task_latency_us=0, task_timeout=60.0,
                 realtime=False, speed=1.0):
        self.registry = registry
        self.source = source
        self.strategies = [s if isinstance(s, tuple) else (s, None) for s in strategies]
        self.latency = latency if latency is not None else ConstantLatency()
        if not isinstance(self.latency, (ConstantLatency, DataLatency)):
            raise TypeError(f"latency must be ConstantLatency or DataLatency, got {self.latency!r}")
        self.queue = queue if queue is not None else ConservativeQueue()
        if not isinstance(self.queue, (ConservativeQueue, ProbabilisticQueue)):
            raise TypeError(f"queue must be ConservativeQueue or ProbabilisticQueue, got {self.queue!r}")
        self.fees = fees if fees is not None else Fees()
        if not isinstance(self.fees, (Fees, dict)):
            raise TypeError(f"fees must be Fees or {{instrument name: Fees}}, got {self.fees!r}")
        self.balances = dict(balances or {})
        self.risk = risk
        if int(equity_interval_us) <= 0:
            raise ValueError(f"equity_interval_us must be > 0, got {equity_interval_us}")
        self.equity_interval_us = int(equity_interval_us)
        self.progress = progress
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        # Pacing changes when the data is handed over in wall time, never what happens in data time:
        # a paced run gives the same results as an unpaced one.
        self.realtime = bool(realtime)
        self.speed = float(speed)
        if stop_trigger not in _STOP_TRIGGERS:
            raise ValueError(f"stop_trigger must be one of {sorted(_STOP_TRIGGERS)}, got {stop_trigger!r}")
        self.stop_trigger = stop_trigger
        if not isinstance(task_latency_us, int) or task_latency_us < 0:
            raise ValueError(f"task_latency_us must be an int >= 0 (microseconds), got {task_latency_us!r}")
        if not task_timeout > 0:
            raise ValueError(f"task_timeout must be > 0 seconds, got {task_timeout!r}")
        self.tasks = dict(tasks or {})
        self.task_latency_us = task_latency_us
        self.task_timeout = float(task_timeout)
        self._risk_interval_us = int(risk_interval * 1e6) if risk_interval else 0
        self._engine_options = dict(pnl_method=pnl_method, risk_interval=0, bar_close_grace=bar_close_grace,
                                    book_options=book_options, on_error=on_error, engine_tag=engine_tag,
                                    ring_capacity=1 << 12)
        self.engine = None
        self.sim = None
        self._ran = False

    def _fee_table(self):
        out = {}
        for inst in self.registry:
            f = self.fees if isinstance(self.fees, Fees) else self.fees.get(inst.name)
            if f is not None:
                out[inst.id] = (float(f.maker), float(f.taker))
        return out

    def _equity_row(self, now):
        return equity_row(self.engine.portfolio, now, capital=self._capital, multipliers=self._multipliers)

    def run(self):
        """Replay the whole source; returns a BacktestResult."""
        if self._ran:
            raise RuntimeError("a Backtest runs once; build a new one")
        self._ran = True
        client = SimulatedExecutionClient()
        engine = Engine(self.registry, strategies=self.strategies, execution=client, tasks=self.tasks,
                        **self._engine_options)
        self.engine = engine
        replay = None
        sim = SimExchange(engine, fees=self._fee_table(), house=lambda now: replay(now),
                          stop_trigger=_STOP_TRIGGERS[self.stop_trigger],
                          **self.latency._sim_kwargs(), **self.queue._sim_kwargs())
        self.sim = client.sim = sim
        replay = _Replay(self, engine, sim)
        self._multipliers = {inst.id: float(inst.multiplier) for inst in self.registry}
        quotes = {inst.quote for inst in self.registry}
        markets = {inst.market for inst in self.registry}
        self._capital = 0.0
        for asset, amount in self.balances.items():
            for market in markets:
                engine.portfolio.set_balance(market, asset, amount)
            if asset in quotes:
                self._capital += float(amount)
        if self.risk is not None:
            self.risk(engine)

        batches = _batches(self.source)
        if self.realtime:
            batches = paced(batches, speed=self.speed)
        first = None
        for batch in batches:
            if len(batch):
                first = batch
                break
        t0 = int(first["ts_local"][0]) if first is not None else 0
        sim.set_now(t0)
        wall = time.perf_counter()
        engine.begin_replay(replay)
        replay.push(t0 - t0 % self.equity_interval_us + self.equity_interval_us, _HOUSE_EQUITY)
        if self._risk_interval_us:
            replay.push(t0 + self._risk_interval_us, _HOUSE_RISK)
        progress = _Progress(self.progress)
        try:
            if first is not None:
                sim.feed(first)
                progress.update(sim)
                for batch in batches:
                    if sim.stopped:
                        break
                    if len(batch):
                        sim.feed(batch)
                        progress.update(sim)
            sim.finish()
            # answers owed at the end of the data arrive at their modelled time too (requests their hooks
            # send in turn are answered at the end of the run, in request order: end_replay)
            due = replay.owed_due()
            if due is not None and not sim.stopped:
                sim.drain(due)
        finally:
            progress.close()
        end = sim.now
        replay.equity_rows.append(self._equity_row(end))
        engine.published = sim.events
        engine.end_replay("a strategy's error policy is 'stop'" if sim.stopped else "data finished")
        wall = time.perf_counter() - wall
        return self._result(replay, t0, end, wall)

    def _result(self, replay, t0, end, wall):
        engine, sim = self.engine, self.sim
        insts = {inst.id: inst for inst in self.registry}
        pp = {i: 10.0 ** inst.price_precision for i, inst in insts.items()}
        sp = {i: 10.0 ** inst.size_precision for i, inst in insts.items()}
        fee_scale = {}
        for i, inst in insts.items():
            aid = engine.assets.get(inst.quote) if inst.quote else None
            fee_scale[i] = 10.0 ** (engine.assets.precision(aid) if aid else inst.price_precision)

        raw = sim.orders_array()
        orders = np.zeros(len(raw), dtype=ORDER_DTYPE)
        for name in ("client_order_id", "strategy", "instrument_id", "side", "order_type", "time_in_force",
                     "status", "reason", "submit_ts", "ack_ts", "done_ts"):
            orders[name] = raw[name]
        if len(raw):
            p = np.array([pp.get(int(i), 1.0) for i in raw["instrument_id"]])
            s = np.array([sp.get(int(i), 1.0) for i in raw["instrument_id"]])
            orders["price"] = raw["price_raw"] / p
            orders["quantity"] = raw["quantity_raw"] / s
            orders["filled"] = raw["filled_raw"] / s

        raw = sim.fills_array()
        fills = np.zeros(len(raw), dtype=FILL_DTYPE)
        for name in ("ts", "client_order_id", "strategy", "instrument_id", "side", "liquidity", "latency_us"):
            fills[name] = raw[name]
        if len(raw):
            ids = [int(i) for i in raw["instrument_id"]]
            fills["price"] = raw["price_raw"] / np.array([pp[i] for i in ids])
            fills["quantity"] = raw["quantity_raw"] / np.array([sp[i] for i in ids])
            fills["fee"] = raw["fee_raw"] / np.array([fee_scale[i] for i in ids])

        equity = np.array(replay.equity_rows, dtype=EQUITY_DTYPE)
        positions, marks = final_positions(engine.portfolio, {i: inst.name for i, inst in insts.items()})
        events = sim.market_events
        meta = {"events": events, "records_delivered": sim.events, "wall_seconds": wall, "events_per_second": events / wall if wall > 0 else 0.0,
                "start_us": t0, "end_us": end, "latency": repr(self.latency), "queue": repr(self.queue),
                "fees": repr(self.fees), "stop_trigger": self.stop_trigger, "task_latency_us": self.task_latency_us, "balances": {k: float(v) for k, v in self.balances.items()},
                "exchange": sim.stats(), "engine": engine.stats(), "stop_reason": engine.stop_reason,
                "marks": marks, "multipliers": {inst.name: float(inst.multiplier) for inst in insts.values()},
                "equity_interval_us": self.equity_interval_us}
        return BacktestResult(orders=orders, fills=fills, equity=equity, positions=positions,
                              instruments={i: inst.name for i, inst in insts.items()},
                              strategies=[s.name for s in engine.dispatcher.strategies], meta=meta)


class _Progress:
    """A one-line progress report on stderr (records replayed, data time, records per second)."""

    def __init__(self, enabled):
        self.enabled = bool(enabled)
        self._start = time.perf_counter()
        self._last = 0.0

    def update(self, sim):
        if not self.enabled:
            return
        t = time.perf_counter()
        if t - self._last < 0.5:
            return
        self._last = t
        rate = sim.market_events / max(t - self._start, 1e-9)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sim.now / 1e6))
        sys.stderr.write(f"\rbacktest: {sim.market_events:,} records, data time {stamp} UTC, {rate:,.0f} records/s ")
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")
