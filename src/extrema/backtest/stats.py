"""Statistics of a backtest: P&L, returns, Sharpe / Sortino, drawdown, turnover, fill ratio, round trips,
maker / taker share, latency-adjusted figures and exposure.

Everything is computed from the result's own arrays (fills, orders, equity curve), so the figures can
be checked by hand and do not depend on how the engine's portfolio books P&L. The definitions:

P&L (from fills)
    Each (strategy, instrument) pair is its own position, matched FIFO: a fill that reduces the
    position closes the oldest open lots first; a fill that crosses zero closes everything and opens
    the remainder on the other side. ``realized`` is the gross P&L of the closed quantity,
    ``unrealized`` marks the open lots at the instrument's mark, ``fees`` is the sum of fill fees
    (negative for rebates), and ``pnl = realized + unrealized - fees``. This equals the cash flow of
    the fills plus the final position at the mark (``sum(-side * price * qty) + position * mark - fees``)
    exactly, whatever the matching order; only the split between realized and unrealized depends on
    FIFO. Per-instrument figures are sums over the strategies trading the instrument.
    Amounts are ``price * quantity * multiplier`` (linear contracts; ``meta["multipliers"]`` gives
    the multiplier by instrument name, default 1). Inverse contracts are not modelled here.

Marks
    ``meta["marks"][name]`` when the runner recorded it; else derived from ``positions[name]``
    (``avg_price + unrealized / (quantity * multiplier)``) when that position is open; else the last
    fill price of the instrument. ``pnl.by_instrument[name].mark_source`` says which was used.

Round trips
    A round trip is one closing fill together with the opening lots it closed (FIFO). Its P&L is the
    gross P&L of the closed quantity minus the fees of that quantity: the closing fill's fee pro rata
    and the opening fills' fees pro rata. Win rate = round trips with net P&L > 0 / round trips.

Returns, Sharpe, Sortino
    Simple returns between consecutive equity samples (samples with the same timestamp keep the last).
    Annualised with ``periods_per_year = 365 * 86400 s / interval``, where ``interval`` is the median
    spacing of the samples (the runner samples every ``equity_interval_us`` and once more at the end;
    the median ignores that shorter last step). 365 days because crypto venues trade every day.
    ``sharpe = mean(r) / std(r, ddof=1) * sqrt(periods_per_year)`` (risk-free rate 0);
    ``sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(periods_per_year)``. None when undefined
    (fewer than two returns, zero dispersion, no losing period for Sortino, or equity <= 0).

Drawdown
    ``drawdown_t = equity_t - max(equity_0..t)`` (never positive); the percentage is relative to the
    running peak. ``max_drawdown`` is the most negative value; its ``start_ts`` is the last sample at
    the peak, ``trough_ts`` the bottom and ``recovery_ts`` the first sample back at the peak (None if
    never). A drawdown's duration runs from its peak to its recovery (or to the last sample).

Turnover = notional traded / mean equity. Fill ratio = filled quantity / submitted quantity over all
orders, and orders with any fill / orders. Maker share by fill count and by notional.

Latency-adjusted
    The submit -> fill latency distribution (p50 / p90 / p99 / max), and the P&L of fills bucketed by
    that latency. A fill's P&L is its mark-out to the final mark,
    ``side * (mark - price) * qty * multiplier - fee``; these add up to the total P&L exactly, so the
    buckets show where the P&L came from (slow fills picked off by the market show up as the losing
    bucket).
"""
from __future__ import annotations

import collections
import datetime
import math

import numpy as np

SECONDS_PER_YEAR = 365 * 86400
# Bucket edges in microseconds for P&L by latency: < 100 µs, < 1 ms, < 10 ms, < 100 ms, < 1 s, >= 1 s.
DEFAULT_LATENCY_EDGES_US = (100, 1_000, 10_000, 100_000, 1_000_000)
# Fill quantities are floats converted from fixed point; partial closes leave residues like 3e-17 that
# must not open a phantom lot. Quantities below this fraction of the fill / lot are dust.
_DUST = 1e-9

# The columns `summary` holds, in the order the report and the sweep table show them.
SUMMARY_KEYS = (
    "start_ts", "end_ts", "duration_s", "equity_start", "equity_end", "equity_pnl", "return_pct",
    "pnl", "realized", "unrealized", "fees", "sharpe", "sortino", "max_drawdown", "max_drawdown_pct",
    "max_drawdown_duration_s", "turnover", "notional", "trades", "orders", "round_trips", "win_rate",
    "avg_win", "avg_loss", "profit_factor", "fill_ratio_qty", "fill_ratio_orders", "maker_share",
    "latency_p50_us", "latency_p99_us", "mean_gross_exposure", "max_gross_exposure", "events",
    "events_per_second", "wall_seconds",
)


def format_ts(ts_us) -> str | None:
    """ISO-8601 UTC text for a µs timestamp (None stays None)."""
    if ts_us is None:
        return None
    return datetime.datetime.fromtimestamp(ts_us / 1e6, tz=datetime.timezone.utc).isoformat(
        timespec="microseconds").replace("+00:00", "Z")


def _f(x):
    """A JSON-safe float: NaN / inf -> None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _ratio(num, den):
    return _f(num / den) if den else None


def _clean(obj):
    """numpy scalars -> Python, non-finite floats -> None, tuple -> list: json.dumps(allow_nan=False)-safe."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _f(obj)
    return obj


# ---------------------------------------------------------------------------------------------- marks
def multipliers_of(result) -> dict:
    configured = result.meta.get("multipliers") or {}
    return {name: float(configured.get(name, 1.0)) for name in result.instruments.values()}


def marks_of(result, fills=None) -> tuple[dict, dict]:
    """(instrument name -> mark price, instrument name -> where the mark came from)."""
    fills = result.fills if fills is None else fills
    configured = result.meta.get("marks") or {}
    multipliers = multipliers_of(result)
    last_fill = {}
    if len(fills):
        order = np.argsort(fills["ts"], kind="stable")
        for iid, price in zip(fills["instrument_id"][order].tolist(), fills["price"][order].tolist()):
            last_fill[iid] = price
    marks, sources = {}, {}
    for iid, name in result.instruments.items():
        mark = configured.get(name)
        if mark is not None and math.isfinite(float(mark)):
            marks[name], sources[name] = float(mark), "meta"
            continue
        pos = result.positions.get(name)
        if pos is not None and float(pos["quantity"]) != 0.0:
            mark = float(pos["avg_price"]) + float(pos["unrealized"]) / (float(pos["quantity"]) * multipliers[name])
            if math.isfinite(mark):
                marks[name], sources[name] = mark, "positions"
                continue
        if iid in last_fill:
            marks[name], sources[name] = last_fill[iid], "last_fill"
    return marks, sources


# ------------------------------------------------------------------------------------- FIFO matching
class FifoBook:
    """One (strategy, instrument) position, matched FIFO. Lots are [quantity, price, fee per unit, ts]."""
    __slots__ = ("multiplier", "lots", "sign", "realized", "fees", "round_trips")

    def __init__(self, multiplier: float = 1.0):
        self.multiplier = multiplier
        self.lots = collections.deque()
        self.sign = 0            # +1 long, -1 short, 0 flat
        self.realized = 0.0      # gross, before fees
        self.fees = 0.0
        self.round_trips = []    # (open_ts, close_ts, direction, quantity, entry_price, exit_price, gross, fees)

    def fill(self, ts: int, side: int, price: float, quantity: float, fee: float):
        self.fees += fee
        fee_per_unit = fee / quantity
        remaining = quantity
        if self.sign == -side and self.lots:
            direction = self.sign
            gross = closed_fees = closed = cost = 0.0
            open_ts = None
            while self.lots and remaining > _DUST * quantity:
                lot = self.lots[0]
                take = min(lot[0], remaining)
                gross += (price - lot[1]) * take * direction * self.multiplier
                closed_fees += take * (lot[2] + fee_per_unit)
                cost += lot[1] * take
                closed += take
                open_ts = lot[3] if open_ts is None else min(open_ts, lot[3])
                lot[0] -= take
                remaining -= take
                if lot[0] <= _DUST * max(take, lot[0] + take):
                    self.lots.popleft()
            if remaining <= _DUST * quantity:
                remaining = 0.0
            self.realized += gross
            self.round_trips.append((open_ts, ts, direction, closed, cost / closed, price, gross, closed_fees))
            if not self.lots:
                self.sign = 0
        if remaining > 0.0:
            self.lots.append([remaining, price, fee_per_unit, ts])
            self.sign = side

    @property
    def position(self) -> float:
        return self.sign * sum(lot[0] for lot in self.lots)

    def unrealized(self, mark: float) -> float:
        return sum((mark - lot[1]) * lot[0] for lot in self.lots) * self.sign * self.multiplier


def fifo_books(result, fills=None) -> dict:
    """(strategy index, instrument id) -> FifoBook, after every fill in time order."""
    fills = result.fills if fills is None else fills
    multipliers = multipliers_of(result)
    books = {}
    order = np.argsort(fills["ts"], kind="stable")
    f = fills[order]
    for ts, strategy, iid, side, price, qty, fee in zip(
            f["ts"].tolist(), f["strategy"].tolist(), f["instrument_id"].tolist(), f["side"].tolist(),
            f["price"].tolist(), f["quantity"].tolist(), f["fee"].tolist()):
        book = books.get((strategy, iid))
        if book is None:
            book = books[(strategy, iid)] = FifoBook(multipliers[result.instruments[iid]])
        book.fill(ts, side, price, qty, fee)
    return books


def round_trips(result) -> np.ndarray:
    """Every round trip as a structured array (see the module doc for the definition)."""
    rows = []
    for (strategy, iid), book in fifo_books(result).items():
        for open_ts, close_ts, direction, qty, entry, exit_, gross, fees in book.round_trips:
            rows.append((strategy, iid, open_ts, close_ts, direction, qty, entry, exit_, gross, fees,
                         gross - fees))
    out = np.array(rows, dtype=ROUND_TRIP_DTYPE)
    return out[np.argsort(out["close_ts"], kind="stable")]


ROUND_TRIP_DTYPE = np.dtype([
    ("strategy", "i4"), ("instrument_id", "i4"), ("open_ts", "i8"), ("close_ts", "i8"),
    ("direction", "i1"), ("quantity", "f8"), ("entry_price", "f8"), ("exit_price", "f8"),
    ("gross", "f8"), ("fees", "f8"), ("pnl", "f8"),
])


def _round_trip_stats(pnl: np.ndarray) -> dict:
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    return {
        "count": int(len(pnl)),
        "wins": int(len(wins)),
        "losses": int(len(losses)),
        "win_rate": _ratio(len(wins), len(pnl)),
        "avg_win": _f(wins.mean()) if len(wins) else None,
        "avg_loss": _f(losses.mean()) if len(losses) else None,
        "avg_pnl": _f(pnl.mean()) if len(pnl) else None,
        "profit_factor": _ratio(wins.sum(), -losses.sum()) if len(losses) else None,
    }


# ------------------------------------------------------------------------------- equity curve maths
def _dedup_equity(equity: np.ndarray) -> np.ndarray:
    """Samples with the same timestamp keep the last (the runner's final sample may repeat a tick)."""
    if len(equity) < 2:
        return equity
    keep = np.ones(len(equity), dtype=bool)
    keep[:-1] = equity["ts"][1:] != equity["ts"][:-1]
    return equity[keep]


def returns_stats(equity: np.ndarray, *, periods_per_year: float | None = None) -> dict:
    equity = _dedup_equity(equity)
    values = equity["equity"]
    out = {"samples": int(len(equity)), "interval_s": None, "periods_per_year": None, "mean": None,
           "std": None, "total_return": None, "sharpe": None, "sortino": None,
           "annualisation": "sqrt(periods_per_year), periods_per_year = 365 days / median sample interval"}
    if len(values) < 2:
        return out
    interval_us = float(np.median(np.diff(equity["ts"])))
    out["interval_s"] = interval_us / 1e6
    if periods_per_year is None:
        periods_per_year = SECONDS_PER_YEAR * 1e6 / interval_us
    else:
        out["annualisation"] = "sqrt(periods_per_year), periods_per_year given by the caller"
    out["periods_per_year"] = float(periods_per_year)
    if (values[:-1] <= 0).any():
        out["note"] = "equity is not positive at some sample: returns are undefined"
        return out
    r = values[1:] / values[:-1] - 1.0
    out["total_return"] = _f(values[-1] / values[0] - 1.0)
    out["mean"] = _f(r.mean())
    if len(r) >= 2:
        std = float(r.std(ddof=1))
        out["std"] = std
        if std > 0:
            out["sharpe"] = _f(r.mean() / std * math.sqrt(periods_per_year))
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside > 0:
        out["sortino"] = _f(r.mean() / downside * math.sqrt(periods_per_year))
    return out


def drawdown_series(equity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(absolute drawdown, drawdown as a fraction of the running peak); both <= 0."""
    values = equity["equity"]
    if not len(values):
        return np.zeros(0), np.zeros(0)
    peak = np.maximum.accumulate(values)
    absolute = values - peak      # peak is one of the values, so this is exactly <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(peak > 0, values / peak - 1.0, np.nan)
    return absolute, np.minimum(pct, 0.0)


def drawdown_stats(equity: np.ndarray) -> dict:
    out = {"max_drawdown": 0.0, "max_drawdown_pct": 0.0, "start_ts": None, "trough_ts": None,
           "recovery_ts": None, "max_duration_s": 0.0, "underwater_fraction": 0.0, "episodes": 0}
    if len(equity) < 2:
        return out
    ts, values = equity["ts"], equity["equity"]
    absolute, pct = drawdown_series(equity)
    trough = int(np.argmin(absolute))
    out["max_drawdown"] = float(absolute[trough])
    out["max_drawdown_pct"] = _f(np.nanmin(pct)) if np.isfinite(pct).any() else None
    under = absolute < 0
    if absolute[trough] < 0:
        peak_value = np.maximum.accumulate(values[:trough + 1])[-1]   # exact: one of the samples
        start = int(np.flatnonzero(values[:trough + 1] >= peak_value)[-1])
        out["start_ts"], out["trough_ts"] = int(ts[start]), int(ts[trough])
        back = np.flatnonzero(values[trough:] >= peak_value)
        out["recovery_ts"] = int(ts[trough + back[0]]) if len(back) else None
    # Underwater episodes: runs of samples below the running peak. Sample 0 is never under water.
    starts = np.flatnonzero(under & ~np.r_[False, under[:-1]])
    ends = np.flatnonzero(under & ~np.r_[under[1:], False])
    longest = 0
    for s, e in zip(starts.tolist(), ends.tolist()):
        finish = ts[e + 1] if e + 1 < len(ts) else ts[e]
        longest = max(longest, int(finish - ts[s - 1]))
    out["max_duration_s"] = longest / 1e6
    out["episodes"] = int(len(starts))
    span = int(ts[-1] - ts[0])
    if span > 0:
        # Time-weighted: each sample holds until the next one.
        out["underwater_fraction"] = float(np.sum(np.diff(ts)[under[:-1]]) / span)
    return out


def exposure_stats(equity: np.ndarray) -> dict:
    out = {"mean_gross_exposure": None, "max_gross_exposure": None, "mean_leverage": None,
           "max_leverage": None, "time_in_market": None}
    if not len(equity):
        return out
    gross, values = equity["gross_exposure"], equity["equity"]
    out["mean_gross_exposure"] = _f(gross.mean())
    out["max_gross_exposure"] = _f(gross.max())
    positive = values > 0
    if positive.any():
        leverage = gross[positive] / values[positive]
        out["mean_leverage"], out["max_leverage"] = _f(leverage.mean()), _f(leverage.max())
    out["time_in_market"] = _f(np.mean(gross > 0))
    return out


# ---------------------------------------------------------------------------------- orders, latency
def _enum_name(enum_type, value: int) -> str:
    try:
        return enum_type(value).name
    except ValueError:
        return str(value)


def order_stats(orders: np.ndarray) -> dict:
    from extrema import OrderReason, OrderStatus
    submitted = float(orders["quantity"].sum())
    filled = float(orders["filled"].sum())
    n = len(orders)
    any_fill = orders["filled"] > 0
    full = any_fill & (orders["filled"] >= orders["quantity"] * (1 - _DUST))
    status = collections.Counter(_enum_name(OrderStatus, s) for s in orders["status"].tolist())
    rejected = orders["status"] == int(OrderStatus.REJECTED)
    reasons = collections.Counter(_enum_name(OrderReason, r) for r in orders["reason"][rejected].tolist())
    acked = (orders["ack_ts"] > 0) & (orders["submit_ts"] > 0)
    ack = (orders["ack_ts"][acked] - orders["submit_ts"][acked]).astype(np.float64)
    return {
        "orders": n,
        "submitted_quantity": submitted,
        "filled_quantity": filled,
        "fill_ratio_qty": _ratio(filled, submitted),
        "orders_with_fills": int(any_fill.sum()),
        "orders_fully_filled": int(full.sum()),
        "fill_ratio_orders": _ratio(int(any_fill.sum()), n),
        "by_status": dict(sorted(status.items())),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "ack_latency_us": _distribution(ack),
    }


def _distribution(values: np.ndarray) -> dict:
    if not len(values):
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"count": int(len(values)), "mean": _f(values.mean()), "p50": _f(p50), "p90": _f(p90),
            "p99": _f(p99), "max": _f(values.max())}


def _bucket_label(lo, hi) -> str:
    def unit(us):
        if us >= 1_000_000 and us % 1_000_000 == 0:
            return f"{us // 1_000_000}s"
        if us >= 1_000 and us % 1_000 == 0:
            return f"{us // 1_000}ms"
        return f"{us}us"
    if lo is None:
        return f"<{unit(hi)}"
    if hi is None:
        return f">={unit(lo)}"
    return f"{unit(lo)}-{unit(hi)}"


def fill_markouts(result, fills: np.ndarray, marks: dict) -> np.ndarray:
    """Each fill's P&L marked to the final mark: side * (mark - price) * qty * multiplier - fee."""
    multipliers = multipliers_of(result)
    ids = fills["instrument_id"]
    mark = np.empty(len(fills))
    mult = np.empty(len(fills))
    for iid, name in result.instruments.items():
        sel = ids == iid
        mark[sel] = marks.get(name, np.nan)
        mult[sel] = multipliers[name]
    return fills["side"] * (mark - fills["price"]) * fills["quantity"] * mult - fills["fee"]


def latency_stats(result, fills, notional, markout, edges_us) -> dict:
    latency = fills["latency_us"].astype(np.float64)
    edges = sorted(int(e) for e in edges_us)
    bucket = np.digitize(latency, edges, right=False)   # 0: < edges[0]; len(edges): >= edges[-1]
    bounds = [None] + edges + [None]
    buckets = []
    for b in range(len(edges) + 1):
        sel = bucket == b
        if not sel.any():
            continue
        n_notional = float(notional[sel].sum())
        pnl = float(markout[sel].sum())
        buckets.append({
            "bucket": _bucket_label(bounds[b], bounds[b + 1]),
            "min_us": bounds[b], "max_us": bounds[b + 1],
            "fills": int(sel.sum()),
            "quantity": float(fills["quantity"][sel].sum()),
            "notional": n_notional,
            "pnl": pnl,
            "pnl_bps": _ratio(pnl * 1e4, n_notional),
            "maker_share": _f(np.mean(fills["liquidity"][sel] == 1)),
        })
    return {"fill_latency_us": _distribution(latency), "pnl_by_latency": buckets,
            "pnl_definition": "fill mark-out to the final mark, net of its fee; buckets add up to the total P&L"}


# --------------------------------------------------------------------------------------- the whole
def compute_stats(result, *, latency_edges_us=DEFAULT_LATENCY_EDGES_US, periods_per_year=None) -> dict:
    """All statistics of `result` as a JSON-ready dict: ``summary`` (one flat row, what a sweep keeps),
    then ``pnl`` (total, by_strategy, by_instrument), ``returns``, ``drawdown``, ``trading``,
    ``orders``, ``round_trips``, ``liquidity``, ``latency``, ``exposure`` and ``meta``."""
    fills = result.fills[np.argsort(result.fills["ts"], kind="stable")]
    orders, equity = result.orders, result.equity
    multipliers = multipliers_of(result)
    marks, mark_sources = marks_of(result, fills)
    books = fifo_books(result, fills)

    mult_of_fill = np.ones(len(fills))
    for iid, name in result.instruments.items():
        mult_of_fill[fills["instrument_id"] == iid] = multipliers[name]
    notional = fills["price"] * fills["quantity"] * mult_of_fill
    markout = fill_markouts(result, fills, marks)
    maker = fills["liquidity"] == 1
    taker = fills["liquidity"] == 2

    # P&L by (strategy, instrument), then grouped.
    def empty_group():
        return {"realized": 0.0, "unrealized": 0.0, "fees": 0.0, "pnl": 0.0, "fills": 0, "quantity": 0.0,
                "notional": 0.0, "maker_share": None, "round_trips": 0, "win_rate": None}
    by_strategy = {name: empty_group() for name in result.strategies}
    by_instrument = {}
    trips_by = collections.defaultdict(list)
    for (s, iid), book in books.items():
        iname = result.instruments[iid]
        unreal = book.unrealized(marks[iname]) if book.lots else 0.0
        trip_pnl = [t[6] - t[7] for t in book.round_trips]
        for key, group in ((("s", s), by_strategy.setdefault(result.strategies[s], empty_group())),
                           (("i", iid), by_instrument.setdefault(iname, empty_group()))):
            group["realized"] += book.realized
            group["unrealized"] += unreal
            group["fees"] += book.fees
            trips_by[key].extend(trip_pnl)
    for key_name, groups, column in (("s", by_strategy, "strategy"), ("i", by_instrument, "instrument_id")):
        for gid in np.unique(fills[column]).tolist() if len(fills) else []:
            name = result.strategies[gid] if key_name == "s" else result.instruments[gid]
            sel = fills[column] == gid
            g = groups[name]
            g["fills"] = int(sel.sum())
            g["quantity"] = float(fills["quantity"][sel].sum())
            g["notional"] = float(notional[sel].sum())
            g["maker_share"] = _f(np.mean(maker[sel]))
            trips = np.asarray(trips_by[(key_name, gid)], dtype=np.float64)
            g["round_trips"] = int(len(trips))
            g["win_rate"] = _ratio(int((trips > 0).sum()), len(trips))
        for g in groups.values():
            g["pnl"] = g["realized"] + g["unrealized"] - g["fees"]
    for s_index, name in enumerate(result.strategies):
        sel = orders["strategy"] == s_index
        submitted = float(orders["quantity"][sel].sum())
        by_strategy[name]["orders"] = int(sel.sum())
        by_strategy[name]["fill_ratio_qty"] = _ratio(float(orders["filled"][sel].sum()), submitted)
    for iid, name in result.instruments.items():
        if name not in by_instrument:
            continue
        g = by_instrument[name]
        sel = fills["instrument_id"] == iid
        path = np.cumsum(fills["side"][sel] * fills["quantity"][sel])
        g["position"] = float(path[-1]) if len(path) else 0.0
        g["max_abs_position"] = float(np.abs(path).max()) if len(path) else 0.0
        g["mark"] = marks.get(name)
        g["mark_source"] = mark_sources.get(name)

    # Instruments in id order, whatever order their first fills came in.
    by_instrument = {name: by_instrument[name] for _, name in sorted(result.instruments.items())
                     if name in by_instrument}

    realized = sum(b.realized for b in books.values())
    unrealized = sum(b.unrealized(marks[result.instruments[k[1]]]) for k, b in books.items() if b.lots)
    fees = float(fills["fee"].sum())
    total_pnl = realized + unrealized - fees

    trip_pnl = np.asarray([t[6] - t[7] for b in books.values() for t in b.round_trips], dtype=np.float64)
    trips = _round_trip_stats(trip_pnl)
    returns = returns_stats(equity, periods_per_year=periods_per_year)
    drawdown = drawdown_stats(equity)
    exposure = exposure_stats(equity)
    order_summary = order_stats(orders)
    latency = latency_stats(result, fills, notional, markout, latency_edges_us)
    total_notional = float(notional.sum())
    mean_equity = float(equity["equity"].mean()) if len(equity) else 0.0
    liquidity = {
        "maker_fills": int(maker.sum()), "taker_fills": int(taker.sum()),
        "unknown_fills": int(len(fills) - maker.sum() - taker.sum()),
        "maker_share": _ratio(int(maker.sum()), len(fills)),
        "maker_share_notional": _ratio(float(notional[maker].sum()), total_notional),
        "maker_fees": float(fills["fee"][maker].sum()), "taker_fees": float(fills["fee"][taker].sum()),
    }
    trading = {
        "trades": int(len(fills)), "quantity": float(fills["quantity"].sum()), "notional": total_notional,
        "buy_notional": float(notional[fills["side"] > 0].sum()),
        "sell_notional": float(notional[fills["side"] < 0].sum()),
        "turnover": _ratio(total_notional, mean_equity) if mean_equity > 0 else None,
        "mean_equity": _f(mean_equity) if len(equity) else None,
    }

    ts_candidates = [int(x) for x in (equity["ts"][[0, -1]] if len(equity) else [])]
    ts_candidates += [int(x) for x in (fills["ts"][[0, -1]] if len(fills) else [])]
    start_ts = min(ts_candidates) if ts_candidates else None
    end_ts = max(ts_candidates) if ts_candidates else None
    equity_start = float(equity["equity"][0]) if len(equity) else None
    equity_end = float(equity["equity"][-1]) if len(equity) else None
    meta = result.meta
    summary = {
        "start_ts": start_ts, "end_ts": end_ts,
        "duration_s": (end_ts - start_ts) / 1e6 if start_ts is not None else None,
        "equity_start": equity_start, "equity_end": equity_end,
        "equity_pnl": equity_end - equity_start if len(equity) else None,
        "return_pct": (_ratio(equity_end - equity_start, equity_start) * 100
                       if len(equity) and equity_start > 0 else None),
        "pnl": total_pnl, "realized": realized, "unrealized": unrealized, "fees": fees,
        "sharpe": returns["sharpe"], "sortino": returns["sortino"],
        "max_drawdown": drawdown["max_drawdown"], "max_drawdown_pct": drawdown["max_drawdown_pct"],
        "max_drawdown_duration_s": drawdown["max_duration_s"],
        "turnover": trading["turnover"], "notional": total_notional, "trades": int(len(fills)),
        "orders": int(len(orders)), "round_trips": trips["count"], "win_rate": trips["win_rate"],
        "avg_win": trips["avg_win"], "avg_loss": trips["avg_loss"], "profit_factor": trips["profit_factor"],
        "fill_ratio_qty": order_summary["fill_ratio_qty"],
        "fill_ratio_orders": order_summary["fill_ratio_orders"],
        "maker_share": liquidity["maker_share"],
        "latency_p50_us": latency["fill_latency_us"]["p50"], "latency_p99_us": latency["fill_latency_us"]["p99"],
        "mean_gross_exposure": exposure["mean_gross_exposure"],
        "max_gross_exposure": exposure["max_gross_exposure"],
        "events": meta.get("events"), "events_per_second": meta.get("events_per_second"),
        "wall_seconds": meta.get("wall_seconds"),
    }
    assert tuple(summary) == SUMMARY_KEYS
    return _clean({
        "summary": summary,
        "pnl": {"realized": realized, "unrealized": unrealized, "fees": fees, "pnl": total_pnl,
                "method": "FIFO per (strategy, instrument)", "by_strategy": by_strategy,
                "by_instrument": by_instrument},
        "returns": returns,
        "drawdown": drawdown,
        "trading": trading,
        "orders": order_summary,
        "round_trips": trips,
        "liquidity": liquidity,
        "latency": latency,
        "exposure": exposure,
        "meta": _json_meta(meta),
    })


def _json_meta(meta: dict) -> dict:
    """The run facts, reduced to what JSON can hold (anything else by its repr)."""
    def convert(v):
        if isinstance(v, dict):
            return {str(k): convert(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if v is None or isinstance(v, (str, bool, int, float, np.integer, np.floating, np.bool_)):
            return v
        return repr(v)
    return convert(meta)


def flat_summary(stats: dict) -> dict:
    """The one-row view of a stats dict (its ``summary``) — what a sweep keeps per run."""
    return dict(stats["summary"]) if "summary" in stats else dict(stats)


def summary_text(stats: dict, keys=SUMMARY_KEYS) -> str:
    """The summary as aligned ``key  value`` lines for a terminal (timestamps as UTC text, ratios as %)."""
    summary = stats["summary"] if "summary" in stats else stats
    percent = {"win_rate", "fill_ratio_qty", "fill_ratio_orders", "maker_share", "max_drawdown_pct"}
    width = max(len(k) for k in keys)
    lines = []
    for key in keys:
        value = summary.get(key)
        if value is None:
            text = "-"
        elif key.endswith("_ts"):
            text = format_ts(value)
        elif key in percent:
            text = f"{value * 100:.2f}%"
        elif isinstance(value, float):
            text = f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.6g}"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = str(value)
        lines.append(f"{key.ljust(width)}  {text}")
    return "\n".join(lines) + "\n"
