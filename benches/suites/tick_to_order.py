"""Tick-to-order suite: a market frame in, an order's bytes out, through the whole engine, in process.

Figure (see benches/README.md, "The tick_to_order suite"): the time from a trade frame's arrival (the
websocket session hands the reassembled message to the Binance market-data source) to the moment the
order it triggered has been written to the order connection's socket:

    frame -> compiled decode (simdjson) -> depth sync pass-through -> ring publish -> dispatcher ->
    Python strategy hook (on_trade) -> context.submit (order id, request, pre-trade hook of the
    execution path) -> BinanceExecution.submit -> WebSocket API order.place signed (HMAC) and written

p50 / p99 / p99.9 in µs over the measured orders, with the split at the hook's entry. Everything runs in
the engine thread of one process; the simulator (generated market, matching engine, servers) runs in a
child process on the same 2 cores, as a venue would run elsewhere. Orders rest far below the market
and are cancelled in batches (the cancels are sent after the measurement of the hook that sends them).
The peer is the same path with REST order entry (aiohttp), timed to its request's last socket write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

PEERS: list[str] = []

FULL = dict(orders=3_000, rest_orders=600)
QUICK = dict(orders=400, rest_orders=100)
QUANTILES = (50, 99, 99.9)

_SIM = r"""
import asyncio, json, sys
from extrema.sim import BinanceSimulator, GeneratedMarket, RateLimits
async def main():
    unlimited = RateLimits(weight_per_minute=10**9, orders_per_10s=10**9, orders_per_long=10**9)
    async with BinanceSimulator(market="spot", source=GeneratedMarket(seed=5, symbols=["BTCUSDT"], speed=30.0),
                                rate_limits=unlimited) as sim:
        print(json.dumps({"ws_url": sim.ws_url, "rest_url": sim.rest_url}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)   # until the parent closes it
asyncio.run(main())
"""


def _pct(samples_ns):
    a = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return [float(np.percentile(a, q)) for q in QUANTILES]


class _AiohttpWriteClock:
    """The time of aiohttp's last transport write (StreamWriter._write / _writelines), patched on the class."""

    def __init__(self):
        from aiohttp.http_writer import StreamWriter
        self.cls = StreamWriter
        self.orig = (StreamWriter._write, StreamWriter._writelines)
        self.last_ns = 0
        clock = self

        def _write(self_, chunk, *a, **kw):
            r = clock.orig[0](self_, chunk, *a, **kw)
            clock.last_ns = time.perf_counter_ns()
            return r

        def _writelines(self_, chunks, *a, **kw):
            r = clock.orig[1](self_, chunks, *a, **kw)
            clock.last_ns = time.perf_counter_ns()
            return r
        StreamWriter._write, StreamWriter._writelines = _write, _writelines

    def restore(self):
        self.cls._write, self.cls._writelines = self.orig


def _measure(urls, order_entry, n_orders, log):
    from decimal import Decimal

    from extrema import EngineBuilder, InstrumentRegistry, Strategy
    from extrema.adapters.binance.venue import BinanceVenue

    class Sim:                       # what BinanceVenue.for_simulator reads
        market = "spot"
        rest_url = urls["rest_url"]
        ws_url = urls["ws_url"]

    registry = InstrumentRegistry()
    venue = BinanceVenue.for_simulator(Sim, order_entry=order_entry)
    (inst,) = venue.load_instruments(registry, ["BTCUSDT"])
    frame_ns = [0]
    md = venue.market_data
    decode = md._on_message

    def stamped(payload, ts_local):          # the frame's arrival, in the clock the samples use
        frame_ns[0] = time.perf_counter_ns()
        decode(payload, ts_local)
    md._on_message = stamped
    write_clock = _AiohttpWriteClock() if order_entry == "rest" else None

    class TickToOrder(Strategy):
        def __init__(self):
            super().__init__("tick_to_order")
            self.total, self.to_hook, self.pending = [], [], []
            self.skip = 50                   # warm-up orders, not measured

        def on_trade(self, trade):
            t_hook = time.perf_counter_ns()
            t_frame = frame_ns[0]
            price = Decimal(int(trade.price * 0.5))      # far below the market: the order rests
            oid = self.context.submit(inst, "buy", "0.001", price)
            t_out = time.perf_counter_ns() if write_clock is None else None
            self.pending.append(oid)
            if self.skip:
                self.skip -= 1
            elif t_out is not None:
                self.total.append(t_out - t_frame)
                self.to_hook.append(t_hook - t_frame)
            else:
                self.rest_marks.append((t_frame, t_hook))
            if len(self.pending) >= 50:
                for o in self.pending:
                    self.context.cancel(o)
                self.pending.clear()
            if len(self.total) + len(getattr(self, "rest_marks", ())) >= n_orders:
                self.context.stop_engine("measured")

    strategy = TickToOrder()
    strategy.rest_marks = []
    engine = (EngineBuilder(registry).venue(venue).strategy(strategy, subscribe={inst: "trades"})
              .options(stop_when_sources_done=False).build())
    if write_clock is not None:
        # REST: the order's bytes go out in a task after the hook; note each write as it happens.
        writes = []
        orig_write = write_clock.orig

        def remember():
            writes.append(write_clock.last_ns)
        import aiohttp.http_writer as hw
        inner_write, inner_lines = hw.StreamWriter._write, hw.StreamWriter._writelines

        def w(self_, chunk, *a, **kw):
            r = inner_write(self_, chunk, *a, **kw)
            remember()
            return r

        def wl(self_, chunks, *a, **kw):
            r = inner_lines(self_, chunks, *a, **kw)
            remember()
            return r
        hw.StreamWriter._write, hw.StreamWriter._writelines = w, wl
        del orig_write
    t0 = time.monotonic()
    try:
        engine.run(timeout=600)
    finally:
        if write_clock is not None:
            write_clock.restore()
    log(f"{order_entry}: {max(len(strategy.total), len(strategy.rest_marks))} orders in "
        f"{time.monotonic() - t0:.1f} s; engine stop: {engine.stop_reason}")
    if write_clock is None:
        return strategy.total, strategy.to_hook
    # REST: pair each measured order with the first write after its hook (orders go out one per task).
    total, to_hook = [], []
    writes.sort()
    j = 0
    for t_frame, t_hook in strategy.rest_marks:
        while j < len(writes) and writes[j] < t_hook:
            j += 1
        if j < len(writes):
            total.append(writes[j] - t_frame)
            to_hook.append(t_hook - t_frame)
            j += 1
    return total, to_hook


def run(ctx) -> list[dict]:
    try:
        import extrema.adapters.binance.venue  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"tick_to_order suite: extrema is not importable ({type(exc).__name__}: {exc}); "
                         "build it first: pip install -e .") from exc
    p = QUICK if ctx.quick else FULL
    sim = subprocess.Popen([sys.executable, "-c", _SIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True, env=os.environ.copy())
    try:
        line = sim.stdout.readline()
        if not line:
            raise SystemExit("tick_to_order suite: the simulator process did not start")
        urls = json.loads(line)
        ws_total, ws_hook = _measure(urls, "ws_api", p["orders"], ctx.log)
        rest_total, _ = _measure(urls, "rest", p["rest_orders"], ctx.log)
    finally:
        sim.stdin.close()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
    rows = []
    for q, v, peer in zip(QUANTILES, _pct(ws_total), _pct(rest_total)):
        rows.append(ctx.row(f"tick-to-order p{q:g} (frame -> order bytes written, WebSocket API)", v, "µs",
                            "same path, REST order entry (aiohttp) -> last request write", peer,
                            target="p50 <= 20 µs" if q == 50 else None,
                            target_met=(v <= 20.0) if q == 50 else None,
                            note=f"{len(ws_total)} orders from a Python on_trade hook; simulator in a child "
                                 f"process on the same 2 cores"))
    for q, v in zip(QUANTILES, _pct(ws_hook)):
        rows.append(ctx.row(f"  of which frame -> hook entry p{q:g} (decode, sync, ring, dispatch)", v, "µs"))
    return rows
