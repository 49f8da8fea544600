"""The engine: one thread, pinned to a CPU, running the asyncio loop that owns the sources and the
dispatcher.

    engine = (EngineBuilder(registry)
              .channel(source)                              # where records come from
              .task("model", ModelTask())                   # work on other threads
              .strategy(MyStrategy(), subscribe={"BTC_USDT": ["trades", "book"]})
              .pin(cpu=1)
              .build())
    engine.run()                                            # or: await engine.run_async()

Data path: a source emits records -> the execution core applies order updates and fills to the order table
and the portfolio -> the engine publishes them into its ring -> the dispatcher, the ring's first
(back-pressure) consumer, routes them at once on the same thread -> strategies' hooks (which see the
positions already updated). Orders go the other way: context.submit -> the compiled pre-trade risk chain
(engine.risk) -> the order table -> the market's execution client; a refused order comes back to its
strategy as a REJECTED order update (reason REJECT_REASON_BASE + rule; context.rejection(id) has the
numbers).
Other consumers (recorder, other processes through a named shared-memory ring, dashboards) read the
same ring without touching the hot path.

Stopping is graceful: sources stop producing, every record already published is dispatched, requests
already accepted by tasks are answered and delivered, then each strategy's on_stop runs and the ring
is closed.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading

import numpy as np

from extrema._core.clock import time_us
from extrema._core.dispatch import Dispatcher
from extrema._core.execution import ExecutionCore
from extrema._core.emit import Emitter
from extrema._core.instruments import InstrumentRegistry
from extrema._core.records import RECORD_DTYPE, RecordKind
from extrema._core.ring import Ring
from extrema.engine.context import Context
from extrema.engine.tasks import FunctionTask, Task, TaskRunner
from extrema.engine.warm import WarmUp
from extrema.execution.client import CancelRequest
from extrema.execution.orders import ClientOrderIds

log = logging.getLogger("extrema.engine")

ERROR_POLICIES = ("continue", "disable", "stop")


def _new_event_loop(use_uvloop):
    if use_uvloop:
        try:
            import uvloop
            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()


class Engine:
    """Built by EngineBuilder; see the module doc."""

    def __init__(self, registry, *, sources=(), strategies=(), tasks=None, ring_capacity=1 << 16,
                 ring_name=None, cpu=None, execution=None, on_error="continue", use_uvloop=True,
                 busy_poll=False, warm_up=True, stop_when_sources_done=True, book_options=None, bar_close_grace=0.25,
                 engine_tag=None, pnl_method="average", assets=None, risk_interval=1.0):
        if on_error not in ERROR_POLICIES:
            raise ValueError(f"on_error must be one of {ERROR_POLICIES}, got {on_error!r}")
        if cpu is not None and cpu not in os.sched_getaffinity(0):
            raise ValueError(f"cannot pin the engine to CPU {cpu}: this process may use CPUs "
                             f"{sorted(os.sched_getaffinity(0))}")
        self.registry = registry if registry is not None else InstrumentRegistry()
        self.on_error = on_error
        self.cpu = cpu
        self.use_uvloop = use_uvloop
        self.busy_poll = busy_poll
        self.warm_up = warm_up
        self.stop_when_sources_done = stop_when_sources_done
        # Time bars close by the clock this long after their end, so trades stamped just before the
        # boundary that arrive a little late still count.
        self.bar_close_grace_us = int(bar_close_grace * 1e6)
        self._bar_clock = None
        self.sources = list(sources)
        self.ring = Ring(ring_capacity, name=ring_name)
        self._consumer = self.ring.consumer("block")
        self.dispatcher = Dispatcher(self.registry, error_handler=self._hook_error, book_options=book_options)
        # Where orders go: one client per market (None = the client for every market without its own).
        if execution is None:
            self._execution = {}
        elif isinstance(execution, dict):
            self._execution = dict(execution)
        else:
            self._execution = {None: execution}
        # Client order ids carry their strategy (routing) and this engine's tag (see execution.orders).
        self.order_ids = ClientOrderIds(engine_tag)
        # Order table, pre-trade risk, portfolio and engine-side stops (compiled, venue-independent).
        # Decoders take fee asset ids from engine.assets.
        self.execution_core = ExecutionCore(self.registry, pnl_method, assets)
        self.risk = self.execution_core.risk
        self.portfolio = self.execution_core.portfolio
        self.orders = self.execution_core.orders
        self.assets = self.portfolio.assets
        self.risk_interval = risk_interval
        self._risk_clock = None
        self._runners = {}
        for name, task in (tasks or {}).items():
            if callable(task) and not isinstance(task, Task):
                task = FunctionTask(task)
            if not isinstance(task, Task):
                raise TypeError(f"task {name!r} must be an extrema Task or a function, got {task!r}")
            self._runners[name] = TaskRunner(name, task, self._reply_from_task)
        self._request_ids = itertools.count(1)
        self._pending_replies = 0             # answers posted by task threads, not yet delivered
        self._replies_lock = threading.Lock()
        self._timer_ids = itertools.count(1)
        self._timers = {}                 # timer id -> asyncio handle
        self._thread = None
        self._loop = None
        self._stop_event = None
        self._started = threading.Event()
        self._done = threading.Event()
        self.stop_reason = None
        self.error = None
        self.native_thread_id = None
        # The record path every batch takes (compiled): execution core, ring, dispatcher, stops.
        self._emit = Emitter(self)
        # The engine's clock: the wall clock live; a backtest replaces it with its replay clock (the time
        # the strategy sees the current event), which context.now_us(), timers, the bar clock, the risk
        # clock and order timestamps follow.
        self.clock = time_us
        self._replay = None
        for strategy, subscriptions in strategies:
            self.add_strategy(strategy, subscriptions)
        # Venue adapters learn the engine they serve (its registry, its client order ids, its loop).
        for part in {id(p): p for p in [*self.sources, *self._execution.values()]}.values():
            bind = getattr(part, "bind_engine", None)
            if bind is not None:
                bind(self)

    # ---- set-up -------------------------------------------------------------------------------------

    def add_strategy(self, strategy, subscribe=None):
        """Register a strategy (before run) with optional {instrument: [kinds]} subscriptions."""
        if self._thread is not None:
            raise RuntimeError("add strategies before the engine starts")
        index = self.dispatcher.add_strategy(strategy)
        strategy.context = Context(self, strategy, index)
        for instrument, kinds in (subscribe or {}).items():
            strategy.context.subscribe(instrument, *([kinds] if isinstance(kinds, str) else kinds))
        return index

    def find_instrument(self, instrument, market=None):
        if hasattr(instrument, "id") and hasattr(instrument, "market"):
            return instrument
        return self.registry.find(instrument, market)

    def subscriptions_changed(self):
        # positions are marked from the books strategies subscribed to
        self.execution_core.sync_books(self.dispatcher)
        if self._loop is None:
            return
        subs = self.dispatcher.subscriptions()
        for source in self.sources:
            update = getattr(source, "subscriptions_changed", None)
            if update is not None:
                update(subs)

    def now_us(self):
        """The engine's time (µs since the epoch): wall clock live, the replay clock in a backtest."""
        return self.clock()

    def bars_changed(self):
        """A bar series was added: make sure the bar clock runs when the engine does."""
        if self._replay is not None:
            self._replay.bars_changed()
            return
        if self._loop is not None and self._bar_clock is None and self.dispatcher.time_bar_intervals():
            self._bar_clock = self._loop.create_task(self._run_bar_clock())

    async def _run_bar_clock(self):
        """Close time bars at their interval ends (plus a grace for late trades) when no trade does."""
        while True:
            intervals = self.dispatcher.time_bar_intervals()
            if not intervals:
                return
            now = self.clock()
            boundary = min(now - now % iv + iv for iv in intervals)
            await asyncio.sleep(max(boundary + self.bar_close_grace_us - now, 0) / 1e6)
            self.dispatcher.bars_on_time(boundary)
            if self.dispatcher.stop_requested:
                self._request_stop("a strategy's error policy is 'stop'")

    def execution_client(self, market=None):
        """The execution client orders for `market` go to."""
        client = self._execution.get(market) or self._execution.get(None)
        if client is None:
            where = f" for {market.name}" if market is not None else ""
            raise RuntimeError(f"no execution client configured{where}: EngineBuilder(...).execution(client) "
                               f"or .venue(adapter)")
        return client

    def next_client_order_id(self, strategy_index):
        return self.order_ids.next(strategy_index)

    # ---- risk ----------------------------------------------------------------------------------------

    def deliver_order_state(self, client_order_id):
        """Send an order's current state (e.g. a risk rejection) to its strategy as an ORDER_UPDATE,
        after the hook that is running returns (never re-entrantly)."""
        rec = self.orders.record(client_order_id)
        if rec is None:
            return
        if self._replay is not None:
            self._replay.post(rec)
            return
        loop = self._loop
        if loop is None:
            log.warning("order %d: the engine is not running, its state is not delivered", client_order_id)
            return
        if threading.current_thread() is self._thread:
            loop.call_soon(self._emit, rec)
        else:
            loop.call_soon_threadsafe(self._emit, rec)

    def kill(self, strategy=None, reason="", include_external=False):
        """The kill switch: no new orders (of one strategy by name or index, or of the whole engine), and
        a cancel for every live order. Safe from any thread (runs on the engine thread)."""
        if self._loop is not None and threading.current_thread() is not self._thread:
            self._loop.call_soon_threadsafe(self.kill, strategy, reason, include_external)
            return
        index = self._strategy_index(strategy)
        for coid in self.execution_core.kill(index, reason, include_external):
            self._send_cancel(coid)

    def _strategy_index(self, strategy):
        if strategy is None or isinstance(strategy, int):
            return strategy
        for i, s in enumerate(self.dispatcher.strategies):
            if s.name == strategy or s is strategy:
                return i
        raise KeyError(f"no strategy {strategy!r}")

    def execution_client_of(self, client_order_id):
        """The execution client of an order's market (from the order table; the default client for an
        order the table does not hold)."""
        o = self.orders.get(client_order_id)
        return self.execution_client(self.registry[o["instrument_id"]].market if o is not None else None)

    def _send_cancel(self, coid):
        o = self.orders.get(coid)
        owner = o["owner"] if o is not None else -1
        name = self.dispatcher.strategies[owner].name if 0 <= owner < len(self.dispatcher.strategies) else ""
        try:
            self.execution_client_of(coid).cancel(CancelRequest(coid, name))
        except Exception:                          # one failed cancel must not stop the others
            log.exception("kill switch: the cancel of order %d failed", coid)

    def _submit_fired_stops(self):
        for stop in self.execution_core.stops.drain():
            owner = stop["owner"]
            strategies = self.dispatcher.strategies
            if not 0 <= owner < len(strategies):
                log.error("stop %d fired for strategy index %d, which does not exist", stop["stop_id"], owner)
                continue
            try:
                strategies[owner].context._submit_stop(stop)
            except Exception:
                log.exception("stop %d fired but its order could not be submitted", stop["stop_id"])

    async def _run_risk_clock(self):
        """Periodic risk evaluation: drawdown breakers, breaker cool-downs, the start of a new day."""
        while True:
            await asyncio.sleep(self.risk_interval)
            self.execution_core.evaluate(self.clock())

    # ---- running ------------------------------------------------------------------------------------

    def start(self):
        """Start the engine thread and return once it runs."""
        if self._thread is not None:
            raise RuntimeError("an engine runs once; build a new one")
        self._thread = threading.Thread(target=self._thread_main, name="extrema-engine", daemon=True)
        self._thread.start()
        self._started.wait()

    def wait(self, timeout=None):
        """Wait for the engine to stop; returns True if it did."""
        return self._done.wait(timeout)

    def run(self, timeout=None):
        """Run until the sources are done or stop() is called (or `timeout` seconds); returns stats()."""
        self.start()
        if not self.wait(timeout):
            self.stop(reason="timeout")
        if self.error is not None:
            raise RuntimeError("the engine stopped on an internal error") from self.error
        return self.stats()

    async def run_async(self):
        """The async form of run(): the engine keeps its own thread; the caller's loop just awaits it."""
        self.start()
        await asyncio.get_running_loop().run_in_executor(None, self._done.wait)
        if self.error is not None:
            raise RuntimeError("the engine stopped on an internal error") from self.error
        return self.stats()

    def stop(self, reason="stop() called", wait=True, timeout=30.0):
        """Ask the engine to stop gracefully (from any thread)."""
        loop = self._loop
        if loop is not None and not self._done.is_set():
            try:
                loop.call_soon_threadsafe(self._request_stop, reason)
            except RuntimeError:
                pass                           # the loop already closed
        if wait and self._thread is not None and threading.current_thread() is not self._thread:
            self._done.wait(timeout)

    # ---- replay (backtests) -------------------------------------------------------------------------

    def begin_replay(self, replay):
        """Run in the caller's thread on a replay clock instead of the engine thread (extrema.backtest):
        `replay` provides now_us() (the clock), post(records), arm_timer / cancel_timer, bars_changed().
        Strategies' on_start runs here; the replay then feeds records into the engine's _emit path."""
        if self._thread is not None:
            raise RuntimeError("an engine runs once; build a new one")
        self._thread = threading.current_thread()
        self._replay = replay
        self.clock = replay.now_us
        # Order ids from the data clock too: the same run gives the same ids (and results) whenever it runs.
        self.order_ids.restart(lambda: replay.now_us() / 1e6)
        for runner in self._runners.values():
            runner.start()
        for index, strategy in enumerate(self.dispatcher.strategies):
            self._lifecycle(index, strategy, "on_start")
        self._started.set()
        self.execution_core.sync_books(self.dispatcher)
        self.bars_changed()

    def end_replay(self, reason="data finished"):
        """The end of a replay: answers of tasks, each strategy's on_stop, the ring closed."""
        self.stop_reason = self.stop_reason or reason
        for runner in self._runners.values():
            runner.stop()
        self._replay.deliver_replies()          # answers still owed, in request order
        for index, strategy in enumerate(self.dispatcher.strategies):
            self._lifecycle(index, strategy, "on_stop")
        self.ring.close()
        self._done.set()

    def _thread_main(self):
        self.native_thread_id = threading.get_native_id()
        if self.cpu is not None:
            os.sched_setaffinity(self.native_thread_id, {self.cpu})
        loop = _new_event_loop(self.use_uvloop)
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._stop_event = asyncio.Event()
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:             # an engine bug, not a strategy's: report it
            log.exception("engine thread failed")
            self.error = exc
        finally:
            self._started.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._loop = None
                self._done.set()

    async def _main(self):
        loop = asyncio.get_running_loop()
        for runner in self._runners.values():
            runner.start()
        for index, strategy in enumerate(self.dispatcher.strategies):
            self._lifecycle(index, strategy, "on_start")
        self._started.set()
        spinner = loop.create_task(self._spin()) if self.busy_poll else None
        self.bars_changed()
        self.execution_core.sync_books(self.dispatcher)
        if self.risk_interval:
            self._risk_clock = loop.create_task(self._run_risk_clock())
        subs = self.dispatcher.subscriptions()
        source_tasks = [loop.create_task(src.run(self._emit, subs), name=f"source-{i}")
                        for i, src in enumerate(self.sources)]
        stop_wait = loop.create_task(self._stop_event.wait())
        waiting = set(source_tasks) | {stop_wait}
        while not self._stop_event.is_set():
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stop_wait and not t.cancelled() and t.exception() is not None:
                    log.error("source %s failed", t.get_name(), exc_info=t.exception())
            if self.stop_when_sources_done and waiting == {stop_wait} and self.sources:
                self.stop_reason = self.stop_reason or "sources finished"
                break
        # Graceful stop: no new records, everything published is dispatched, accepted requests answered.
        for t in source_tasks:
            t.cancel()
        await asyncio.gather(*source_tasks, return_exceptions=True)
        # Sources and execution clients release what they hold on this loop (sessions, sockets).
        for part in {id(p): p for p in [*self.sources, *self._execution.values()]}.values():
            aclose = getattr(part, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.exception("closing %r failed", part)
        stop_wait.cancel()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.dispatcher.pump(self._consumer)
        for runner in self._runners.values():
            await loop.run_in_executor(None, runner.stop)
        await asyncio.sleep(0)                     # deliver the answers the runners just posted
        while self._pending_replies:
            await asyncio.sleep(0.001)
        if spinner is not None:
            spinner.cancel()
        if self._bar_clock is not None:
            self._bar_clock.cancel()
        if self._risk_clock is not None:
            self._risk_clock.cancel()
        for index, strategy in enumerate(self.dispatcher.strategies):
            self._lifecycle(index, strategy, "on_stop")
        self.ring.close()

    async def _spin(self):
        # busy_poll: keep the loop from sleeping in epoll, so a frame is picked up without a wake-up.
        # warm_up: and between events, take the hot path through its steps without effect (extrema.engine.warm).
        if not self.warm_up:
            while True:
                await asyncio.sleep(0)
        warm = WarmUp([*self.sources, *self._execution.values(), *(s.context for s in self.dispatcher.strategies)])
        try:
            while True:
                warm()
                await asyncio.sleep(0)
        finally:
            warm.close()

    # _emit(records): publish records into the ring and dispatch them (engine thread) - the compiled
    # Emitter (extrema._core.emit) made in __init__; sources are handed it.

    @property
    def published(self):
        """Records that went through the engine's record path."""
        return self._emit.published

    @published.setter
    def published(self, n):
        self._emit.published = n

    def _request_stop(self, reason):
        if self.stop_reason is None:
            self.stop_reason = reason
        self._emit.stopping = True
        self._stop_event.set()

    # ---- error policy ------------------------------------------------------------------------------

    def _hook_error(self, strategy, hook, exc, event):
        policy = strategy.on_error or self.on_error
        log.error("strategy %r raised %s in %s on %s; policy %r", strategy.name, type(exc).__name__, hook,
                  event, policy, exc_info=exc)
        return policy

    def _lifecycle(self, index, strategy, hook):
        # on_stop runs for disabled strategies too: it is where they release what they hold.
        if hook != "on_stop" and self.dispatcher.is_disabled(index):
            return
        try:
            getattr(strategy, hook)()
        except Exception as exc:
            policy = self._hook_error(strategy, hook, exc, hook)
            if policy == "disable":
                self.dispatcher.disable(index)
            elif policy == "stop":
                self._request_stop(f"{strategy.name} raised in {hook}")

    # ---- timers ------------------------------------------------------------------------------------

    def schedule(self, index, *, every=None, delay=None, at_us=None):
        given = [x is not None for x in (every, delay, at_us)]
        if sum(given) != 1:
            raise ValueError("schedule takes exactly one of every=, delay=, at_us=")
        if every is not None and every <= 0:
            raise ValueError(f"every must be > 0 seconds, got {every}")
        if self._loop is None and self._replay is None:
            raise RuntimeError("schedule from on_start or later, when the engine runs")
        timer_id = next(self._timer_ids)
        now = self.clock()
        if every is not None:
            due = now + int(every * 1e6)
        elif delay is not None:
            due = now + int(max(delay, 0) * 1e6)
        else:
            due = int(at_us)
        if self._replay is not None:
            self._replay.arm_timer(timer_id, index, due, None if every is None else int(every * 1e6))
        else:
            self._arm(timer_id, index, due, None if every is None else int(every * 1e6))
        return timer_id

    def _arm(self, timer_id, index, due_us, period_us):
        delay = max(due_us - self.clock(), 0) / 1e6
        self._timers[timer_id] = self._loop.call_later(delay, self._fire, timer_id, index, due_us, period_us)

    def _fire(self, timer_id, index, due_us, period_us):
        if period_us is not None:
            # Fixed rate: the next due time follows the schedule, not the (late) firing time.
            self._arm(timer_id, index, due_us + period_us, period_us)
        else:
            self._timers.pop(timer_id, None)
        rec = np.zeros(1, dtype=RECORD_DTYPE)
        now = self.clock()
        rec[0] = (RecordKind.TIMER, 0, 0, now, now, timer_id, 0, 0, due_us, index)
        self._emit(rec)

    def cancel_schedule(self, timer_id):
        if self._replay is not None:
            return self._replay.cancel_timer(timer_id)
        handle = self._timers.pop(timer_id, None)
        if handle is None:
            return False
        handle.cancel()
        return True

    # ---- tasks -------------------------------------------------------------------------------------

    def request(self, index, task, payload):
        runner = self._runners.get(task)
        if runner is None:
            raise KeyError(f"no task named {task!r} (tasks: {sorted(self._runners) or 'none'})")
        request_id = next(self._request_ids)
        if self._replay is not None:
            # a backtest delivers the answer at a modelled time, not when the thread happens to finish
            self._replay.request_sent(request_id, index)
        runner.submit(request_id, index, payload)
        return request_id

    def _reply_from_task(self, response, index):
        if self._replay is not None:
            self._replay.post_reply(response, index)
            return
        loop = self._loop
        if loop is None:
            log.warning("dropping the answer to request %d: the engine has stopped", response.request_id)
            return
        with self._replies_lock:
            self._pending_replies += 1
        loop.call_soon_threadsafe(self._deliver_reply, response, index)

    def _deliver_reply(self, response, index):
        with self._replies_lock:
            self._pending_replies -= 1
        self.dispatcher.deliver(index, "on_response", response)
        if self.dispatcher.stop_requested:
            self._request_stop("a strategy's error policy is 'stop'")

    # ---- introspection -----------------------------------------------------------------------------

    def stats(self):
        return {"published": self.published, "stop_reason": self.stop_reason,
                "dispatcher": self.dispatcher.stats(), "ring": self.ring.stats(),
                "orders": self.orders.stats(), "risk": self.risk.state()}


class EngineBuilder:
    """Assembles an engine in the seeds' vocabulary: channels (sources), tasks, strategies; then build()."""

    def __init__(self, registry=None):
        self._registry = registry if registry is not None else InstrumentRegistry()
        self._sources = []
        self._tasks = {}
        self._strategies = []
        self._options = {}

    @property
    def registry(self):
        return self._registry

    def instrument(self, name, market, tick_size, lot_size, **spec):
        """Register an instrument in the engine's registry."""
        self._registry.register(name, market, tick_size, lot_size, **spec)
        return self

    def channel(self, source):
        """Add a source of records (a live adapter, the simulator feed, a replay)."""
        if not hasattr(source, "run"):
            raise TypeError(f"a channel needs an async run(emit, subscriptions) method: {source!r}")
        self._sources.append(source)
        return self

    def task(self, name, task):
        """Add a task (a Task or a function) that strategies reach with context.request(name, payload)."""
        if name in self._tasks:
            raise ValueError(f"there is already a task named {name!r}")
        self._tasks[name] = task
        return self

    def strategy(self, strategy, subscribe=None):
        """Add a strategy, with optional subscriptions {instrument name: "trades" | "quotes" | "book" | [...]}."""
        self._strategies.append((strategy, subscribe))
        return self

    def ring(self, capacity=1 << 16, name=None):
        """The engine's broadcast ring: capacity in records; a name puts it in shared memory."""
        self._options.update(ring_capacity=capacity, ring_name=name)
        return self

    def pin(self, cpu):
        """Pin the engine thread to one CPU."""
        self._options["cpu"] = cpu
        return self

    def execution(self, client, market=None):
        """Where orders go: one client for every market, or (market=...) the client of one market."""
        clients = self._options.setdefault("execution", {})
        clients[None if market is None else market] = client
        return self

    def venue(self, adapter):
        """A venue adapter: its sources (market data, user data) and, for its markets, its execution."""
        for source in adapter.sources():
            self.channel(source)
        client = adapter.execution_client()
        if client is not None:
            for market in adapter.markets():
                self.execution(client, market)
        return self

    def on_error(self, policy):
        """What happens when a strategy's hook raises: "continue", "disable" or "stop"."""
        self._options["on_error"] = policy
        return self

    def options(self, **options):
        """Any other Engine option (use_uvloop, busy_poll, warm_up (with busy_poll: keep the hot path's caches
        warm between events; default on), stop_when_sources_done, book_options, pnl_method
        ("average" | "fifo" | "lifo"), assets, risk_interval (seconds between risk evaluations; 0: none))."""
        self._options.update(options)
        return self

    def build(self):
        return Engine(self._registry, sources=self._sources, strategies=self._strategies,
                      tasks=self._tasks, **self._options)
