"""What a backtest produces: orders, fills, the equity curve, final positions, and the run's facts.

The three record layouts are numpy structured dtypes so that a run of millions of fills stays a few
arrays (no object per fill) and the statistics are vectorised. Floats are fine here: results are the
user boundary (DESIGN.md section 2), the exact fixed-point values stay inside the engine.

Conventions every producer (the backtest runner) and consumer (stats, report, sweep) relies on:

* Times are int64 microseconds since the Unix epoch, UTC, in the data's clock (the replay clock).
* ``side`` is +1 for a buy and -1 for a sell. ``quantity`` is always positive.
* ``fee`` is what the fill cost in the quote currency: positive when paid, negative for a rebate.
* ``liquidity`` is 1 (maker) or 2 (taker); 0 when the venue model did not say.
* ``latency_us`` is the time from the order's submission (strategy time) to this fill.
* ``strategy`` indexes ``BacktestResult.strategies``; ``instrument_id`` is a key of
  ``BacktestResult.instruments``.
* ``meta`` is free-form run facts. Keys the statistics read when present: ``"marks"``
  (instrument name -> the last mark price, used for unrealized P&L; see `extrema.backtest.stats`) and
  ``"multipliers"`` (instrument name -> contract multiplier of a linear contract, default 1).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from extrema._core.portfolio import ALL as OWNER_ALL     # the portfolio's account-wide owner

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

LIQUIDITY_MAKER = 1
LIQUIDITY_TAKER = 2

POSITION_KEYS = ("quantity", "avg_price", "realized", "unrealized")


def empty_fills(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=FILL_DTYPE)


def empty_orders(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=ORDER_DTYPE)


def empty_equity(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=EQUITY_DTYPE)


def _check_array(name: str, array, dtype: np.dtype) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"BacktestResult.{name} must be a numpy array of extrema.backtest.results."
                        f"{name.upper().rstrip('S')}_DTYPE, got {type(array).__name__}")
    if array.dtype != dtype:
        raise TypeError(f"BacktestResult.{name} has dtype {array.dtype}; expected {dtype} "
                        f"(build it with np.zeros(n, dtype=...) from extrema.backtest.results)")
    if array.ndim != 1:
        raise ValueError(f"BacktestResult.{name} must be one-dimensional, got shape {array.shape}")
    return array


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def equity_row(portfolio, ts, *, capital=0.0, multipliers=None) -> tuple:
    """One EQUITY_DTYPE row from the portfolio's account-wide positions: equity = capital + realized +
    unrealized - fees; gross exposure = sum of |size| x mark (the average price before any mark) x the
    contract multiplier. The backtest's curve and the live run's report both come from here."""
    pos = portfolio.positions(owner=OWNER_ALL)
    if not len(pos):
        return (ts, capital, 0.0, 0.0, 0.0, 0.0)
    realized = float(pos["realized"].sum())
    unrealized = float(np.nansum(pos["unrealized"]))
    fees = float(pos["fees"].sum() + pos["fees_other"].sum())
    mark = np.where(np.isnan(pos["mark"]), pos["avg_price"], pos["mark"])
    mult = np.array([(multipliers or {}).get(int(i), 1.0) for i in pos["instrument_id"]])
    gross = float(np.nansum(np.abs(pos["quantity"]) * mark * mult))
    return (ts, capital + realized + unrealized - fees, realized, unrealized, fees, gross)


def final_positions(portfolio, names) -> tuple[dict, dict]:
    """({instrument name: quantity / avg_price / realized / unrealized}, {instrument name: mark}) of the
    account-wide positions; `names` maps instrument id -> name."""
    positions, marks = {}, {}
    for row in portfolio.positions(owner=OWNER_ALL):
        name = names[int(row["instrument_id"])]
        positions[name] = {"quantity": float(row["quantity"]), "avg_price": float(row["avg_price"]),
                           "realized": float(row["realized"]), "unrealized": float(row["unrealized"])}
        if row["mark"] == row["mark"]:
            marks[name] = float(row["mark"])
    return positions, marks


@dataclasses.dataclass
class BacktestResult:
    """A finished backtest. Build it from the three arrays; `stats()` and `write()` read it.

    The arrays are validated on construction (dtype, sides, finite positive fill sizes, known strategy
    and instrument indexes) so that a malformed result fails here with the offending row, not later
    inside a statistic.
    """
    orders: np.ndarray      # ORDER_DTYPE
    fills: np.ndarray       # FILL_DTYPE
    equity: np.ndarray      # EQUITY_DTYPE, sampled every equity_interval_us and at the end
    positions: dict         # instrument name -> {"quantity", "avg_price", "realized", "unrealized"}
    instruments: dict       # instrument_id -> name
    strategies: list        # index -> strategy name
    meta: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        _check_array("orders", self.orders, ORDER_DTYPE)
        _check_array("fills", self.fills, FILL_DTYPE)
        _check_array("equity", self.equity, EQUITY_DTYPE)
        self.instruments = {int(k): str(v) for k, v in dict(self.instruments).items()}
        self.strategies = [str(s) for s in self.strategies]
        self.positions = {str(k): dict(v) for k, v in dict(self.positions).items()}
        self.meta = dict(self.meta or {})
        for name, pos in self.positions.items():
            missing = [k for k in POSITION_KEYS if k not in pos]
            if missing:
                raise ValueError(f"BacktestResult.positions[{name!r}] lacks {missing} "
                                 f"(each position needs {list(POSITION_KEYS)})")

        fills = self.fills
        if len(fills):
            bad = (fills["side"] != 1) & (fills["side"] != -1)
            if bad.any():
                i = _first_bad(bad)
                raise ValueError(f"fill {i} has side {fills['side'][i]}; sides are +1 (buy) or -1 (sell)")
            bad = ~np.isfinite(fills["price"]) | ~np.isfinite(fills["quantity"]) | ~np.isfinite(fills["fee"])
            if bad.any():
                raise ValueError(f"fill {_first_bad(bad)} has a non-finite price, quantity or fee")
            bad = fills["quantity"] <= 0
            if bad.any():
                i = _first_bad(bad)
                raise ValueError(f"fill {i} has quantity {fills['quantity'][i]}; fill quantities are > 0")
        self._check_indexes("fills", fills)
        self._check_indexes("orders", self.orders)
        if len(self.equity) and not np.isfinite(self.equity["equity"]).all():
            raise ValueError(f"equity sample {_first_bad(~np.isfinite(self.equity['equity']))} is not finite")
        if len(self.equity) > 1 and (np.diff(self.equity["ts"]) < 0).any():
            raise ValueError(f"equity samples go back in time at index "
                             f"{_first_bad(np.diff(self.equity['ts']) < 0) + 1}; they must be in time order")

    def _check_indexes(self, name: str, array: np.ndarray):
        if not len(array):
            return
        strategy = array["strategy"]
        bad = (strategy < 0) | (strategy >= len(self.strategies))
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(f"{name}[{i}] names strategy index {strategy[i]} but the result has "
                             f"{len(self.strategies)} strategies")
        unknown = set(np.unique(array["instrument_id"]).tolist()) - set(self.instruments)
        if unknown:
            raise ValueError(f"{name} name instrument ids {sorted(unknown)} missing from "
                             f"BacktestResult.instruments")

    def stats(self, **options) -> dict:
        """P&L, returns, Sharpe / Sortino, drawdown, turnover, fill ratio, round trips, latency-adjusted
        figures and exposure, as a JSON-ready dict (see `extrema.backtest.stats.compute_stats`)."""
        from extrema.backtest.stats import compute_stats
        return compute_stats(self, **options)

    def write(self, directory) -> Path:
        """Write orders.csv, fills.csv, equity.csv, stats.json, equity.png (when matplotlib is installed)
        and a self-contained report.html into `directory` (created if needed); returns the directory."""
        from extrema.backtest.report import write_report
        return write_report(self, directory)
