"""What a backtest produces: orders, fills, the equity curve, final positions, and the run's facts.

(The REPORT part owns this module and adds statistics, files and plots; the dtypes and fields below are
the interface pinned in the issue.) Times are int64 µs since the epoch in the data's clock; side +1 buy,
-1 sell; quantity positive; fee in the quote currency (positive = paid); liquidity 1 maker, 2 taker.
"""
from __future__ import annotations

import dataclasses

import numpy as np

FILL_DTYPE = np.dtype([
    ("ts", "i8"), ("client_order_id", "i8"), ("strategy", "i4"), ("instrument_id", "i4"),
    ("side", "i1"),  # +1 buy, -1 sell
    ("price", "f8"), ("quantity", "f8"), ("fee", "f8"), ("liquidity", "i1"),  # 1 maker, 2 taker
    ("latency_us", "i8"),  # order submit (strategy time) -> this fill
])
ORDER_DTYPE = np.dtype([
    ("client_order_id", "i8"), ("strategy", "i4"), ("instrument_id", "i4"), ("side", "i1"),
    ("order_type", "i1"), ("time_in_force", "i1"), ("price", "f8"), ("quantity", "f8"),
    ("filled", "f8"), ("status", "i1"), ("reason", "i4"), ("submit_ts", "i8"),
    ("ack_ts", "i8"), ("done_ts", "i8"),
])
EQUITY_DTYPE = np.dtype([
    ("ts", "i8"), ("equity", "f8"), ("realized", "f8"), ("unrealized", "f8"),
    ("fees", "f8"), ("gross_exposure", "f8"),
])


@dataclasses.dataclass
class BacktestResult:
    orders: np.ndarray      # ORDER_DTYPE
    fills: np.ndarray       # FILL_DTYPE
    equity: np.ndarray      # EQUITY_DTYPE, sampled every equity_interval_us and at the end
    positions: dict         # instrument name -> {"quantity", "avg_price", "realized", "unrealized"}
    instruments: dict       # instrument_id -> name
    strategies: list        # index -> strategy name
    meta: dict              # run facts: events, wall seconds, events_per_second, models used, data span
