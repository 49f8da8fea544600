"""The Binance simulator in a child process for benchmarks: its own interpreter (no GIL shared with the
measured client), on the same machine, generated market, rate limits off (the benches measure the
client, not the venue's limits)."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

_SIM = r"""
import asyncio, faulthandler, json, signal, sys
faulthandler.register(signal.SIGUSR1, all_threads=True)   # the parent asks for the stacks of a stalled run
from extrema.sim import BinanceSimulator, GeneratedMarket, RateLimits
cfg = json.loads(sys.argv[1])
async def main():
    unlimited = RateLimits(weight_per_minute=10**9, orders_per_10s=10**9, orders_per_long=10**9)
    async with BinanceSimulator(market=cfg["market"],
                                source=GeneratedMarket(seed=cfg["seed"], symbols=cfg["symbols"], speed=cfg["speed"]),
                                api_keys=cfg["api_keys"], rate_limits=unlimited) as sim:
        print(json.dumps({"ws_url": sim.ws_url, "rest_url": sim.rest_url}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)   # until the parent closes it
asyncio.run(main())
"""


@contextlib.contextmanager
def simulator_process(*, market="spot", seed=5, symbols=("BTCUSDT",), speed=1.0, api_keys=None, who="bench",
                      cpus=None):
    """Start the simulator in a child process; yields {"ws_url", "rest_url"}; stops it on exit. `cpus`: pin
    every thread of the simulator to these CPUs (e.g. the core the engine thread is not pinned to)."""
    cfg = {"market": market, "seed": seed, "symbols": list(symbols), "speed": speed, "api_keys": api_keys}
    sim = subprocess.Popen([sys.executable, "-c", _SIM, json.dumps(cfg)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        line = sim.stdout.readline()
        if not line:
            raise SystemExit(f"{who}: the simulator process did not start")
        if cpus is not None:
            for tid in os.listdir(f"/proc/{sim.pid}/task"):
                os.sched_setaffinity(int(tid), set(cpus))
        urls = json.loads(line)
        urls["pid"] = sim.pid
        yield urls
    finally:
        sim.stdin.close()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
