"""Synthetic BacktestResult objects for the results / report / sweep tests (and the functions the sweep
tests run in spawned worker processes, which must be importable top-level functions)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from extrema import OrderReason, OrderStatus, OrderType, TimeInForce
from extrema.backtest.results import (
    BacktestResult, empty_equity, empty_fills, empty_orders)

T0 = 1_767_225_600_000_000      # 2026-01-01T00:00:00Z in µs
SECOND = 1_000_000


def fills_array(rows) -> np.ndarray:
    """rows: (ts, strategy, instrument_id, side, price, quantity, fee, liquidity, latency_us)."""
    out = empty_fills(len(rows))
    for i, (ts, s, iid, side, price, qty, fee, liq, lat) in enumerate(rows):
        out[i] = (ts, 1000 + i, s, iid, side, price, qty, fee, liq, lat)
    return out


def equity_array(values, *, start=T0, step=SECOND, exposure=None) -> np.ndarray:
    out = empty_equity(len(values))
    out["ts"] = start + step * np.arange(len(values))
    out["equity"] = values
    if exposure is not None:
        out["gross_exposure"] = exposure
    return out


def hand_result(**meta) -> BacktestResult:
    """The hand-computed case of test_results.py.

    mm on BTC_USDT (id 7): buy 2 @ 100 (fee 0.2, taker), sell 1 @ 110 (fee 0.1, maker),
    sell 2 @ 105 (fee 0.2, maker) -> closes the last long 1 and opens a short 1 @ 105.
    momo on ETH_USDT (id 9): sell 1 @ 50, buy 1 @ 52 (no fees) -> one losing round trip.
    Marks: BTC 100 (meta), ETH none needed (flat).
    """
    fills = fills_array([
        (T0 + 1 * SECOND, 0, 7, +1, 100.0, 2.0, 0.2, 2, 50),
        (T0 + 2 * SECOND, 0, 7, -1, 110.0, 1.0, 0.1, 1, 500),
        (T0 + 3 * SECOND, 1, 9, -1, 50.0, 1.0, 0.0, 2, 5_000),
        (T0 + 4 * SECOND, 0, 7, -1, 105.0, 2.0, 0.2, 1, 2_000_000),
        (T0 + 5 * SECOND, 1, 9, +1, 52.0, 1.0, 0.0, 2, 20_000),
    ])
    orders = empty_orders(5)
    #            coid  s  iid side type                 tif               price  qty filled status                       reason
    specs = [(1000, 0, 7, +1, OrderType.MARKET, TimeInForce.IOC, 0.0, 2.0, 2.0, OrderStatus.FILLED, OrderReason.NONE),
             (1001, 0, 7, -1, OrderType.LIMIT, TimeInForce.GTC, 110.0, 2.0, 1.0, OrderStatus.CANCELLED, OrderReason.NONE),
             (1002, 1, 9, -1, OrderType.MARKET, TimeInForce.IOC, 0.0, 1.0, 1.0, OrderStatus.FILLED, OrderReason.NONE),
             (1003, 0, 7, -1, OrderType.LIMIT, TimeInForce.GTX, 105.0, 4.0, 2.0, OrderStatus.PARTIALLY_FILLED,
              OrderReason.NONE),
             (1004, 1, 9, +1, OrderType.LIMIT, TimeInForce.GTX, 60.0, 1.0, 0.0, OrderStatus.REJECTED,
              OrderReason.POST_ONLY_WOULD_TAKE)]
    for i, (coid, s, iid, side, otype, tif, price, qty, filled, status, reason) in enumerate(specs):
        orders[i] = (coid, s, iid, side, int(otype), int(tif), price, qty, filled, int(status), int(reason),
                     T0 + i * SECOND, T0 + i * SECOND + 300, T0 + (i + 1) * SECOND)
    equity = equity_array([1000.0, 1000.0, 1009.8, 1009.0, 1014.3, 1019.5],
                          exposure=[0.0, 200.0, 110.0, 160.0, 105.0, 100.0])
    positions = {"BTC_USDT": {"quantity": -1.0, "avg_price": 105.0, "realized": 15.0, "unrealized": 5.0},
                 "ETH_USDT": {"quantity": 0.0, "avg_price": 0.0, "realized": -2.0, "unrealized": 0.0}}
    meta = {"marks": {"BTC_USDT": 100.0, "ETH_USDT": 52.0}, "events": 1234, "wall_seconds": 0.5,
            "events_per_second": 2468.0, **meta}
    return BacktestResult(orders=orders, fills=fills, equity=equity, positions=positions,
                          instruments={7: "BTC_USDT", 9: "ETH_USDT"}, strategies=["mm", "momo"], meta=meta)


def random_result(seed: int = 0, *, n_equity: int = 2_000, n_fills: int = 500, n_orders: int = 600,
                  strategies=("mm", "momo", "ml"), instruments=None) -> BacktestResult:
    """A plausible run: random-walk prices, random fills around them, an equity curve of the same span."""
    rng = np.random.default_rng(seed)
    instruments = instruments or {1: "BTC_USDT_PERP", 2: "ETH_USDT_PERP"}
    ids = np.array(sorted(instruments))
    span = n_equity * SECOND
    fills = empty_fills(n_fills)
    fills["ts"] = np.sort(T0 + rng.integers(0, span, n_fills))
    fills["client_order_id"] = rng.integers(1, n_orders + 1, n_fills)
    fills["strategy"] = rng.integers(0, len(strategies), n_fills)
    fills["instrument_id"] = rng.choice(ids, n_fills)
    fills["side"] = rng.choice([-1, 1], n_fills)
    base = np.where(fills["instrument_id"] == ids[0], 60_000.0, 3_000.0)
    fills["price"] = np.round(base * (1 + 0.01 * np.sin(np.arange(n_fills) / 50) + rng.normal(0, 0.001, n_fills)), 2)
    fills["quantity"] = np.round(rng.uniform(0.001, 0.5, n_fills), 3)
    fills["liquidity"] = rng.choice([1, 2], n_fills, p=[0.7, 0.3])
    fills["fee"] = fills["price"] * fills["quantity"] * np.where(fills["liquidity"] == 1, -0.0001, 0.0004)
    fills["latency_us"] = rng.lognormal(8, 1.5, n_fills).astype(np.int64)
    orders = empty_orders(n_orders)
    orders["client_order_id"] = np.arange(1, n_orders + 1)
    orders["strategy"] = rng.integers(0, len(strategies), n_orders)
    orders["instrument_id"] = rng.choice(ids, n_orders)
    orders["side"] = rng.choice([-1, 1], n_orders)
    orders["order_type"] = int(OrderType.LIMIT)
    orders["time_in_force"] = int(TimeInForce.GTC)
    orders["price"] = 100.0
    orders["quantity"] = 1.0
    orders["filled"] = np.round(rng.uniform(0, 1, n_orders) * (rng.uniform(size=n_orders) < 0.6), 3)
    orders["status"] = np.where(orders["filled"] >= 1, int(OrderStatus.FILLED), int(OrderStatus.CANCELLED))
    orders["submit_ts"] = T0 + rng.integers(0, span, n_orders)
    orders["ack_ts"] = orders["submit_ts"] + rng.integers(100, 5_000, n_orders)
    orders["done_ts"] = orders["ack_ts"] + 1_000
    values = 100_000 + np.cumsum(rng.normal(0.5, 40, n_equity))
    equity = equity_array(values, exposure=np.abs(rng.normal(20_000, 5_000, n_equity)))
    return BacktestResult(orders=orders, fills=fills, equity=equity, positions={},
                          instruments=dict(instruments), strategies=list(strategies),
                          meta={"events": n_equity * 100, "wall_seconds": 1.5, "seed": seed,
                                "models": {"latency": "ConstantLatency(feed_us=0)", "queue": "ConservativeQueue()"}})


# ----------------------------------------------------------------------- run in sweep worker processes
def run_random(seed: int, n_fills: int = 200):
    """A sweep run that returns a BacktestResult."""
    return random_result(seed, n_equity=500, n_fills=n_fills, n_orders=250)


def run_rendezvous(seed: int, directory: str, expected: int = 2):
    """Announce this worker's pid in `directory` and wait until `expected` distinct workers did: if the
    sweep ran everything in one process this run fails instead of passing by luck."""
    Path(directory, str(os.getpid())).touch()
    deadline = time.monotonic() + 120
    while len(os.listdir(directory)) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(os.listdir(directory))} worker process(es) ran concurrently")
        time.sleep(0.01)
    return run_random(seed)


def run_failing(seed: int, **_):
    raise ValueError(f"bad parameter set {seed}")


def run_dict(seed: int, **_):
    """A sweep run that returns a stats dict rather than a result."""
    return random_result(seed, n_equity=200, n_fills=50, n_orders=60).stats()


def run_dying(seed: int, **_):
    """Kills its worker process outright (as a crash in native code would)."""
    if seed == 13:
        os._exit(3)
    return run_dict(seed)


def run_rendezvous_or_fail(seed: int, directory: str):
    """Parameter set 99 fails; the others meet in `directory` (see run_rendezvous)."""
    if seed == 99:
        return run_failing(seed)
    return run_rendezvous(seed, directory)
