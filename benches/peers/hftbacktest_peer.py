"""hftbacktest running the benchmark's trivial market maker as its compiled (numba @njit) strategy.

The way hftbacktest's own examples run a market maker: a `BacktestAsset` over the event array
(nanosecond timestamps), a linear asset, constant order entry / response latency, the risk-averse
queue model (conservative: only trades at the order's price advance it), the partial-fill exchange
model (or, partial_fills=False, the no-partial-fill one: 2.4.4's PartialFillExchange stops the suite's
1M-event stream with InvalidOrderStatus), zero fees, the tick / lot of the benchmark instrument, and a `ROIVectorMarketDepthBacktest`
(its fastest depth: a price-indexed vector over a region of interest that covers the data). The
strategy is an @njit loop over `wait_next_feed`, which returns after each market event: the logic runs
on every event (hftbacktest's data has no venue-message boundary).

Same logic as the suite's MM_PARAMS (benches/suites/backtest.py): with no resting order, quote one bid
k ticks below the best bid and one ask k ticks above the best ask; when the mid has moved more than m
ticks from where the quotes were placed, cancel them; a side is skipped at the position limit.
"""

from __future__ import annotations

import time

import numpy as np

NAME = "hftbacktest"

try:
    import hftbacktest
    from hftbacktest import (GTC, LIMIT, BacktestAsset, ROIVectorMarketDepthBacktest)
    from hftbacktest.order import CANCELED, EXPIRED, FILLED, REJECTED
    from numba import njit

    VERSION = hftbacktest.__version__
    IMPORT_ERROR = None
except Exception as exc:  # noqa: BLE001 - any failure means "peer unavailable", reported by the suite
    VERSION = None
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

AVAILABLE = IMPORT_ERROR is None

# wait_next_feed's error codes (py-hftbacktest maps its BacktestError variants to these)
ERRORS = {10: "OrderIdExist", 11: "OrderRequestInProcess", 12: "OrderNotFound", 13: "InvalidOrderRequest",
          14: "InvalidOrderStatus", 15: "DataError"}

if AVAILABLE:
    @njit
    def _is_live(orders, order_id):
        if order_id == 0:
            return False
        o = orders.get(order_id)
        if o is None:
            return False
        st = o.status
        return not (st == FILLED or st == CANCELED or st == EXPIRED or st == REJECTED)

    @njit
    def market_maker(hbt, k_ticks, size, requote_ticks, max_position, out):
        """out[0..4] = orders, cancels, feed callbacks, fills (num_trades), final position (lots)."""
        tick = hbt.depth(0).tick_size
        m2 = 2 * requote_ticks
        bid_id = np.uint64(0)
        ask_id = np.uint64(0)
        next_id = np.uint64(1)
        quoted = np.int64(0)
        cancelling = False
        n_orders = 0
        n_cancels = 0
        n_feeds = 0
        rc = 0
        while True:
            rc = hbt.wait_next_feed(False, 1_000_000_000_000)
            if rc == 1:
                break
            if rc == 0:                 # timeout: no feed within the window, wait again
                continue
            if rc != 2:                 # an error code (see ERRORS): stop instead of spinning on it
                break
            n_feeds += 1
            depth = hbt.depth(0)
            bb = depth.best_bid_tick
            ba = depth.best_ask_tick
            if bb == -9223372036854775807 - 1 or ba == 9223372036854775807:   # an empty side
                continue
            orders = hbt.orders(0)
            bid_live = _is_live(orders, bid_id)
            ask_live = _is_live(orders, ask_id)
            if bid_live or ask_live:
                if not cancelling and abs(bb + ba - quoted) > m2:
                    cancelling = True
                    if bid_live:
                        hbt.cancel(0, bid_id, False)
                        n_cancels += 1
                    if ask_live:
                        hbt.cancel(0, ask_id, False)
                        n_cancels += 1
                continue
            if bid_id != 0 or ask_id != 0:
                hbt.clear_inactive_orders(0)
            bid_id = np.uint64(0)
            ask_id = np.uint64(0)
            cancelling = False
            quoted = bb + ba
            position = hbt.position(0)
            if position < max_position - 1e-9:
                bid_id = next_id
                next_id += np.uint64(1)
                hbt.submit_buy_order(0, bid_id, (bb - k_ticks) * tick, size, GTC, LIMIT, False)
                n_orders += 1
            if position > -max_position + 1e-9:
                ask_id = next_id
                next_id += np.uint64(1)
                hbt.submit_sell_order(0, ask_id, (ba + k_ticks) * tick, size, GTC, LIMIT, False)
                n_orders += 1
        out[0] = n_orders
        out[1] = n_cancels
        out[2] = n_feeds
        out[3] = hbt.state_values(0).num_trades
        out[4] = np.int64(np.round(hbt.position(0) / hbt.depth(0).lot_size))
        out[5] = hbt.current_timestamp
        return rc


def build(events: np.ndarray, *, tick: float, lot: float, entry_latency_us: int, response_latency_us: int,
          roi: tuple[float, float], partial_fills: bool = True):
    """A ready backtest over `events` (hftbacktest event_dtype, timestamps in ns). Untimed.

    hftbacktest reads `events` through its address (BacktestAsset.add_data passes `ctypes.data`, no copy,
    no reference kept): the caller must keep the array alive until the backtest is closed, or the replay
    reads freed memory (garbage timestamps and order-response warnings)."""
    asset = (BacktestAsset()
             .data([events])
             .linear_asset(1.0)
             .constant_latency(entry_latency_us * 1000, response_latency_us * 1000)
             .risk_adverse_queue_model())
    asset = asset.partial_fill_exchange() if partial_fills else asset.no_partial_fill_exchange()
    asset = (asset
             .trading_value_fee_model(0.0, 0.0)
             .tick_size(tick)
             .lot_size(lot)
             .roi_lb(roi[0])
             .roi_ub(roi[1])
             .last_trades_capacity(0))
    return ROIVectorMarketDepthBacktest([asset])


def run(hbt, params: dict, *, lot: float) -> dict:
    """Timed part: the compiled strategy over the whole data. Returns the work done; raises when
    hftbacktest's wait_next_feed reports an error (the run did not reach the end of the data)."""
    out = np.zeros(6, dtype=np.int64)
    t0 = time.perf_counter()
    rc = market_maker(hbt, params["k_ticks"], params["size_lots"] * lot, params["requote_ticks"],
                      params["max_position_lots"] * lot, out)
    wall = time.perf_counter() - t0
    hbt.close()
    if rc != 1:
        raise RuntimeError(f"hftbacktest stopped with wait_next_feed() = {rc} ({ERRORS.get(rc, 'unknown code')}) "
                           f"at local time {out[5]} ns after {out[2]:,} feeds, before the end of the data")
    return dict(wall_s=wall, orders=int(out[0]), cancels=int(out[1]), book_callbacks=int(out[2]),
                fills=int(out[3]), position_lots=int(out[4]))
