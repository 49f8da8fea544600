"""Tick-to-order suite: a market frame in, an order's bytes out, through the whole engine, in process.

Figure (see benches/README.md, "The tick_to_order suite"): the time from a trade frame's arrival (picows
hands the frame to the connection's listener, which stamps it first) to the moment `submit` returns, the
order it triggered written to the order connection's socket and booked (the targeted figure, the stricter
one); and, per mode, to the moment the write returned (the bookkeeping after it not counted):

    frame -> listener -> compiled decode (simdjson) -> depth sync pass-through -> execution core ->
    ring publish -> dispatcher ->
    Python strategy hook (on_trade) -> context.submit (order id, raw numbers, compiled risk chain) ->
    the WebSocket API's compiled order sink (BinanceExecution.order_sink) -> order.place written, signed (HMAC)
    and sent in C

Modes: the engine loop sleeping in epoll (the default), busy-polling, and busy-polling pinned to a CPU; the
busy-poll modes warm the hot path up between frames (EngineBuilder.options(warm_up=True), the default:
extrema.engine.warm). Three more runs of the pinned mode: its baselines in the same run (without the
warm-up; the hook computing a Decimal price instead of a float) and the same engine in a busier market
(the simulator's generated flow 5x faster: on a shared VM a path that ran a few hundred µs ago is still
cached, one that ran milliseconds ago is not - the machine suite measures that).

p50 / p99 / p99.9 in µs over the measured orders, with the split at the hook's entry. Everything runs in
the engine thread of one process; the simulator (generated market, matching engine, servers) runs in a
child process on the same 2 cores, as a venue would run elsewhere. Orders rest far below the market
and are cancelled in batches (the cancels are sent after the measurement of the hook that sends them).
No peer runs this path here (NautilusTrader's Binance adapter cannot be pointed at a local venue);
the order_entry suite compares the order write itself with the REST client.
"""

from __future__ import annotations

import gc
import os
import signal
import time

import numpy as np

from workloads.binance_sim import simulator_process

PEERS: list[str] = []

FULL = dict(orders=3_000)
QUICK = dict(orders=400)
QUANTILES = (50, 99, 99.9)


def _pct(samples_ns):
    a = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return [float(np.percentile(a, q)) for q in QUANTILES]


STALL_S = 20.0          # no trade frame for this long: the run fails instead of hanging
RUN_LIMIT_S = 600.0


def _watch_progress(engine, frame_ns, sim_pid):
    """Wait for the engine to stop; stop it and say why when the trade feed stalls (the simulator prints at
    least one trade a second at speed 30) or the run takes longer than RUN_LIMIT_S. Returns "" or the reason."""
    start = last_change = time.monotonic()
    last = frame_ns()
    while not engine.wait(1.0):
        now = time.monotonic()
        if frame_ns() != last:
            last, last_change = frame_ns(), now
        reason = ""
        if now - last_change >= STALL_S:
            reason = f"no trade frame reached the engine for {now - last_change:.0f} s (the feed or the engine stalled)"
        elif now - start >= RUN_LIMIT_S:
            reason = f"the run took longer than {RUN_LIMIT_S:.0f} s"
        if reason:
            if sim_pid is not None:
                try:
                    os.kill(sim_pid, signal.SIGUSR1)        # the simulator dumps its threads' stacks
                except ProcessLookupError:
                    reason += "; the simulator process is gone"
            engine.stop(reason=reason, timeout=10.0)
            return reason
    return ""


def _measure(urls, n_orders, log, busy_poll=False, cpu=None, freeze_gc=False, warm_up=True, decimal_price=False):
    from decimal import Decimal

    from extrema import EngineBuilder, InstrumentRegistry, Strategy
    from extrema.adapters.binance.venue import BinanceVenue

    class Sim:                       # what BinanceVenue.for_simulator reads
        market = "spot"
        rest_url = urls["rest_url"]
        ws_url = urls["ws_url"]

    registry = InstrumentRegistry()
    venue = BinanceVenue.for_simulator(Sim)
    (inst,) = venue.load_instruments(registry, ["BTCUSDT"])
    md = venue.market_data

    def frame_ns():
        # The frame's arrival: the market-data connection's listener stamps every data frame first thing
        # (extrema._core.wsframes.FrameListener.frame_ns, CLOCK_MONOTONIC = perf_counter_ns' clock), before
        # its own work and the decode. (Until session 3 a wrapper of the Python message handler took this
        # stamp, after the Python listener and the session's delivery: the start point is now earlier.)
        listener = md.session.listener if md.session is not None else None
        return listener.frame_ns if listener is not None else 0

    # Where the time goes: the compiled order sink stamps its entry (CLOCK_MONOTONIC, perf_counter_ns' clock)
    # - the split between Context.submit and the writer, with no wrapper in the path. (Until session 3 a
    # Python wrapper around BinanceWsApi.send_raw took this stamp and added ~0.3 µs to the total.)
    execution = venue.execution
    assert execution.compiled_orders, "the bench measures the compiled order path (HMAC key, WebSocket API)"
    sink = execution.ws_api.order_sink

    class TickToOrder(Strategy):
        def __init__(self):
            super().__init__("tick_to_order")
            self.total, self.to_hook, self.pending = [], [], []
            self.to_send, self.write, self.to_written = [], [], []
            self.skip = 50                   # warm-up orders, not measured
            self.offset = None

        def on_start(self):
            if freeze_gc:
                # Everything built at start (modules, the engine, sessions) leaves the collector's young
                # generations: the collections the order path's allocations trigger walk only new objects.
                gc.collect()
                gc.freeze()

        def on_trade(self, trade):
            t_hook = time.perf_counter_ns()
            # Far below the market, so the order rests. By default float arithmetic on the trade's price, as
            # a latency-minded Python strategy writes it (the engine takes a float that is the nearest double
            # to a price on the tick grid: a 2-decimal price minus a whole number is, within far less than
            # its tolerance); the "Decimal price" mode measures the same hook computing a Decimal instead.
            if decimal_price:
                price = Decimal(int(trade.price * 0.5))
            else:
                if self.offset is None:
                    self.offset = float(int(trade.price * 0.5))
                price = trade.price - self.offset
            oid = self.context.submit(inst, "buy", "0.001", price)     # written when submit returns
            t_out = time.perf_counter_ns()
            t_frame = frame_ns()                         # the stamp of the frame being handled
            self.pending.append(oid)
            if self.skip:
                self.skip -= 1
            else:
                self.total.append(t_out - t_frame)
                self.to_hook.append(t_hook - t_frame)
                self.to_send.append(sink.entry_ns - t_hook)
                self.write.append(sink.write_ns)
                self.to_written.append(sink.written_ns - t_frame)
            if len(self.pending) >= 50:
                for o in self.pending:
                    self.context.cancel(o)
                self.pending.clear()
            if len(self.total) >= n_orders:
                self.context.stop_engine("measured")

    strategy = TickToOrder()
    builder = (EngineBuilder(registry).venue(venue).strategy(strategy, subscribe={inst: "trades"})
               .options(stop_when_sources_done=False, busy_poll=busy_poll, warm_up=warm_up))
    if cpu is not None:
        builder.pin(cpu)
    engine = builder.build()
    t0 = time.monotonic()
    engine.start()
    stalled = _watch_progress(engine, frame_ns, urls.get("pid"))
    if engine.error is not None:
        raise RuntimeError("tick_to_order: the engine stopped on an internal error") from engine.error
    if stalled:
        s = md.session.stats if md.session is not None else None
        raise SystemExit(
            f"tick_to_order suite: {stalled}; {len(strategy.total)} of {n_orders} orders measured. "
            f"Market-data session: connects={getattr(s, 'connects', '?')} stale_drops={getattr(s, 'stale_drops', '?')} "
            f"messages={getattr(s, 'messages', '?')}; the simulator's thread stacks are on stderr above (SIGUSR1)")
    took = time.monotonic() - t0
    log(f"{len(strategy.total)} orders in {took:.1f} s; engine stop: {engine.stop_reason}")
    split = {"hook": strategy.to_hook, "context": strategy.to_send,
             "place": [t - h - c for t, h, c in zip(strategy.total, strategy.to_hook, strategy.to_send)],
             "write": strategy.write, "written": strategy.to_written}
    return strategy.total, split, len(strategy.total) / took


def run(ctx) -> list[dict]:
    try:
        import extrema.adapters.binance.venue  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"tick_to_order suite: extrema is not importable ({type(exc).__name__}: {exc}); "
                         "build it first: pip install -e .") from exc
    p = QUICK if ctx.quick else FULL
    cpus = sorted(os.sched_getaffinity(0))
    # Engine thread on the last CPU, the simulator on the others (when there are two or more).
    engine_cpu, sim_cpus = (cpus[-1], cpus[:-1]) if len(cpus) > 1 else (None, None)
    pinned = dict(busy_poll=True, cpu=engine_cpu, freeze_gc=True)
    modes = {"epoll": dict(), "busy-poll": dict(busy_poll=True), "busy-poll pinned": pinned,
             # the same run's baselines of the pinned mode: without the warm-up, with a Decimal price
             "pinned, no warm-up": dict(pinned, warm_up=False),
             "pinned, Decimal price": dict(pinned, decimal_price=True),
             # and in a busier market: the simulator's generated flow 5x faster (see the machine suite)
             "pinned, 5x trade rate": dict(pinned, speed=150.0)}
    runs = {}
    for mode, options in modes.items():
        options = dict(options)
        speed = options.pop("speed", 30.0)
        # One simulator per mode: the pinned mode pins the simulator too.
        pin_sim = sim_cpus if options.get("cpu") is not None else None
        with simulator_process(speed=speed, who="tick_to_order suite", cpus=pin_sim) as urls:
            runs[mode] = _measure(urls, p["orders"], ctx.log, **options)
    rows = []
    for mode, (total, split, rate) in runs.items():
        pinned_text = (f"busy-poll, engine thread pinned to CPU {engine_cpu} (EngineBuilder.pin), simulator to "
                       f"CPU(s) {sim_cpus}, gc.freeze() at start")
        loop = {"epoll": "engine loop sleeps in epoll between frames (default)",
                "busy-poll": "engine loop busy-polls (EngineBuilder.options(busy_poll=True)), warm-up on (default)",
                "busy-poll pinned": pinned_text + ", warm-up on",
                "pinned, no warm-up": pinned_text + ", warm_up=False (engine.warm)",
                "pinned, Decimal price": pinned_text + ", warm-up on, the hook computes a Decimal price",
                "pinned, 5x trade rate": pinned_text + ", warm-up on, the simulator's market 5x faster"}[mode]
        for q, v in zip(QUANTILES, _pct(total)):
            rows.append(ctx.row(f"tick-to-order p{q:g}, {mode} (frame -> order written, submit returned)", v,
                                "µs", target="p50 <= 20 µs" if q == 50 else None,
                                target_met=(v <= 20.0) if q == 50 else None,
                                note=f"{len(total)} orders from a Python on_trade hook, {rate:.0f} a second; {loop}; "
                                     f"simulator in a child process on the same 2 cores"))
        parts = {"hook": "frame -> hook entry (decode, sync, ring, dispatch)",
                 "context": "hook -> order sink (strategy code, context.submit: id, raw numbers, risk chain)",
                 "place": "order sink -> submit returned (budget, compiled id text + format + HMAC, picows write, "
                          "the bookkeeping after it)",
                 "write": "the socket write alone (picows framing + send(2) on loopback)"}
        for key, label in parts.items():
            rows.append(ctx.row(f"  {mode}: of which {label} p50", _pct(split[key])[0], "µs"))
        rows.append(ctx.row(f"  {mode}: frame -> the order's write returned (the bookkeeping after it not counted) "
                            f"p50", _pct(split["written"])[0], "µs"))
    return rows
