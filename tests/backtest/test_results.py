"""BacktestResult and its statistics: the pinned dtypes, validation, hand-computed cases, and
hypothesis properties (drawdown never positive, Sharpe invariant to scaling, P&L = fills + unrealized,
FIFO round trips against a unit-lot reference)."""
import collections
import json
import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from extrema.backtest import results, stats as bstats
from extrema.backtest.results import (
    BacktestResult, EQUITY_DTYPE, FILL_DTYPE, ORDER_DTYPE, empty_equity, empty_fills, empty_orders)

from backtest_samples import SECOND, T0, equity_array, fills_array, hand_result, random_result


def test_dtypes_are_the_pinned_interface():
    assert FILL_DTYPE == np.dtype([
        ("ts", "i8"), ("client_order_id", "i8"), ("strategy", "i4"), ("instrument_id", "i4"), ("side", "i1"),
        ("price", "f8"), ("quantity", "f8"), ("fee", "f8"), ("liquidity", "i1"), ("latency_us", "i8")])
    assert ORDER_DTYPE == np.dtype([
        ("client_order_id", "i8"), ("strategy", "i4"), ("instrument_id", "i4"), ("side", "i1"),
        ("order_type", "i1"), ("time_in_force", "i1"), ("price", "f8"), ("quantity", "f8"),
        ("filled", "f8"), ("status", "i1"), ("reason", "i4"), ("submit_ts", "i8"),
        ("ack_ts", "i8"), ("done_ts", "i8")])
    assert EQUITY_DTYPE == np.dtype([
        ("ts", "i8"), ("equity", "f8"), ("realized", "f8"), ("unrealized", "f8"), ("fees", "f8"),
        ("gross_exposure", "f8")])


def _result(fills=None, equity=None, orders=None, **kw):
    args = dict(orders=empty_orders() if orders is None else orders, fills=empty_fills() if fills is None else fills,
                equity=empty_equity() if equity is None else equity, positions={}, instruments={7: "BTC_USDT"},
                strategies=["s"], meta={})
    args.update(kw)
    return BacktestResult(**args)


def test_validation_names_the_bad_row():
    good = fills_array([(T0, 0, 7, 1, 100.0, 1.0, 0.0, 1, 0)])
    with pytest.raises(TypeError, match="dtype"):
        _result(fills=np.zeros(1, dtype=[("ts", "i8")]))
    with pytest.raises(TypeError, match="numpy array"):
        _result(fills=[1, 2])
    bad = good.copy(); bad["side"] = 0
    with pytest.raises(ValueError, match="fill 0 has side 0"):
        _result(fills=bad)
    bad = good.copy(); bad["quantity"] = 0
    with pytest.raises(ValueError, match="quantity"):
        _result(fills=bad)
    bad = good.copy(); bad["price"] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        _result(fills=bad)
    bad = good.copy(); bad["strategy"] = 3
    with pytest.raises(ValueError, match="strategy index 3"):
        _result(fills=bad)
    bad = good.copy(); bad["instrument_id"] = 8
    with pytest.raises(ValueError, match=r"instrument ids \[8\]"):
        _result(fills=bad)
    with pytest.raises(ValueError, match="back in time"):
        _result(equity=equity_array([1.0, 2.0, 3.0], step=-SECOND))
    with pytest.raises(ValueError, match="lacks"):
        _result(positions={"BTC_USDT": {"quantity": 1.0}})
    assert _result(fills=good).stats()["summary"]["trades"] == 1


def test_hand_computed_pnl_and_round_trips():
    s = hand_result().stats()
    pnl = s["pnl"]
    # BTC: +10 on the first close, +5 on the second; the short 1 @ 105 marked at 100 is +5; fees 0.5.
    # ETH: -2.
    assert pnl["realized"] == pytest.approx(13.0)
    assert pnl["unrealized"] == pytest.approx(5.0)
    assert pnl["fees"] == pytest.approx(0.5)
    assert pnl["pnl"] == pytest.approx(17.5)
    mm, momo = pnl["by_strategy"]["mm"], pnl["by_strategy"]["momo"]
    assert (mm["realized"], mm["unrealized"], mm["fees"], mm["pnl"]) == pytest.approx((15.0, 5.0, 0.5, 19.5))
    assert (momo["realized"], momo["unrealized"], momo["pnl"]) == pytest.approx((-2.0, 0.0, -2.0))
    btc = pnl["by_instrument"]["BTC_USDT"]
    assert btc["position"] == -1.0 and btc["max_abs_position"] == 2.0
    assert btc["mark"] == 100.0 and btc["mark_source"] == "meta"
    assert btc["notional"] == pytest.approx(200 + 110 + 210)
    # Round trips: 9.8 (10 - 0.1 - 0.1), 4.8 (5 - 0.1 - 0.1), -2.
    trips = s["round_trips"]
    assert trips["count"] == 3 and trips["wins"] == 2 and trips["losses"] == 1
    assert trips["win_rate"] == pytest.approx(2 / 3)
    assert trips["avg_win"] == pytest.approx(7.3)
    assert trips["avg_loss"] == pytest.approx(-2.0)
    assert trips["profit_factor"] == pytest.approx(14.6 / 2)
    rt = results_round_trips = bstats.round_trips(hand_result())
    assert rt["pnl"].tolist() == pytest.approx([9.8, 4.8, -2.0])     # in closing order
    assert rt["direction"].tolist() == [1, 1, -1]
    assert rt["open_ts"].tolist() == [T0 + SECOND, T0 + SECOND, T0 + 3 * SECOND]
    assert rt["close_ts"].tolist() == [T0 + 2 * SECOND, T0 + 4 * SECOND, T0 + 5 * SECOND]
    assert results_round_trips["entry_price"].tolist() == [100.0, 100.0, 50.0]


def test_hand_computed_orders_liquidity_latency_turnover():
    result = hand_result()
    s = result.stats()
    o = s["orders"]
    assert o["orders"] == 5
    assert o["fill_ratio_qty"] == pytest.approx(6.0 / 10.0)
    assert o["fill_ratio_orders"] == pytest.approx(4 / 5)
    assert o["orders_fully_filled"] == 2
    assert o["by_status"] == {"CANCELLED": 1, "FILLED": 2, "PARTIALLY_FILLED": 1, "REJECTED": 1}
    assert o["rejected_by_reason"] == {"POST_ONLY_WOULD_TAKE": 1}
    assert o["ack_latency_us"]["p50"] == 300
    liq = s["liquidity"]
    assert (liq["maker_fills"], liq["taker_fills"]) == (2, 3)
    assert liq["maker_share"] == pytest.approx(0.4)
    assert liq["maker_share_notional"] == pytest.approx((110 + 210) / (200 + 110 + 50 + 210 + 52))
    assert liq["maker_fees"] == pytest.approx(0.3) and liq["taker_fees"] == pytest.approx(0.2)
    lat = s["latency"]
    assert lat["fill_latency_us"]["p50"] == 5_000 and lat["fill_latency_us"]["max"] == 2_000_000
    buckets = {b["bucket"]: b for b in lat["pnl_by_latency"]}
    assert list(buckets) == ["<100us", "100us-1ms", "1ms-10ms", "10ms-100ms", ">=1s"]
    # Mark-outs to the final marks (BTC 100, ETH 52): buy 2 @ 100 -> 0 - 0.2; sell 1 @ 110 -> +10 - 0.1;
    # sell 1 ETH @ 50 -> -2; sell 2 @ 105 -> +10 - 0.2; buy ETH @ 52 -> 0.
    assert buckets["<100us"]["pnl"] == pytest.approx(-0.2)
    assert buckets["100us-1ms"]["pnl"] == pytest.approx(9.9)
    assert buckets["1ms-10ms"]["pnl"] == pytest.approx(-2.0)
    assert buckets[">=1s"]["pnl"] == pytest.approx(9.8)
    assert buckets[">=1s"]["pnl_bps"] == pytest.approx(9.8 / 210 * 1e4)
    assert sum(b["pnl"] for b in buckets.values()) == pytest.approx(s["pnl"]["pnl"])
    mean_equity = np.mean([1000.0, 1000.0, 1009.8, 1009.0, 1014.3, 1019.5])
    assert s["trading"]["turnover"] == pytest.approx(622.0 / mean_equity)
    ex = s["exposure"]
    assert ex["max_gross_exposure"] == 200.0 and ex["time_in_market"] == pytest.approx(5 / 6)
    summary = s["summary"]
    assert tuple(summary) == bstats.SUMMARY_KEYS
    assert summary["trades"] == 5 and summary["events"] == 1234 and summary["equity_pnl"] == pytest.approx(19.5)
    assert summary["start_ts"] == T0 and summary["end_ts"] == T0 + 5 * SECOND
    json.dumps(s, allow_nan=False)


def test_hand_computed_returns_sharpe_sortino():
    values = [100.0, 101.0, 100.0, 102.0, 102.0]
    equity = equity_array(values, step=3600 * SECOND)
    r = [101 / 100 - 1, 100 / 101 - 1, 102 / 100 - 1, 0.0]
    ppy = 365 * 24
    out = bstats.returns_stats(equity)
    assert out["interval_s"] == 3600 and out["periods_per_year"] == ppy
    assert out["sharpe"] == pytest.approx(statistics.mean(r) / statistics.stdev(r) * math.sqrt(ppy))
    downside = math.sqrt(sum(min(x, 0) ** 2 for x in r) / len(r))
    assert out["sortino"] == pytest.approx(statistics.mean(r) / downside * math.sqrt(ppy))
    assert out["total_return"] == pytest.approx(0.02)
    # A final sample closer than the interval and a repeated timestamp do not change the annualisation.
    irregular = np.concatenate([equity, equity[-1:]])
    irregular[-1]["equity"] = 103.0
    out2 = bstats.returns_stats(irregular)
    assert out2["periods_per_year"] == ppy and out2["samples"] == 5
    assert out2["total_return"] == pytest.approx(0.03)
    # Undefined cases are None, not a number.
    assert bstats.returns_stats(equity_array([100.0, 100.0, 100.0]))["sharpe"] is None
    assert bstats.returns_stats(equity_array([100.0, 101.0, 102.0]))["sortino"] is None
    assert bstats.returns_stats(equity_array([100.0]))["sharpe"] is None
    negative = bstats.returns_stats(equity_array([100.0, -5.0, 10.0, 20.0]))
    assert negative["sharpe"] is None and "not positive" in negative["note"]
    assert bstats.returns_stats(equity, periods_per_year=252)["sharpe"] == pytest.approx(
        statistics.mean(r) / statistics.stdev(r) * math.sqrt(252))


def test_hand_computed_drawdown():
    equity = equity_array([100.0, 110.0, 105.0, 90.0, 95.0, 112.0, 100.0])
    dd = bstats.drawdown_stats(equity)
    assert dd["max_drawdown"] == -20.0
    assert dd["max_drawdown_pct"] == pytest.approx(-20 / 110)
    assert (dd["start_ts"], dd["trough_ts"], dd["recovery_ts"]) == (T0 + SECOND, T0 + 3 * SECOND, T0 + 5 * SECOND)
    assert dd["max_duration_s"] == 4.0 and dd["episodes"] == 2
    assert dd["underwater_fraction"] == pytest.approx(3 / 6)
    # Not recovered by the end: recovery None, duration runs to the last sample.
    dd2 = bstats.drawdown_stats(equity_array([100.0, 120.0, 100.0, 90.0, 95.0]))
    assert dd2["recovery_ts"] is None and dd2["max_duration_s"] == 3.0 and dd2["max_drawdown"] == -30.0
    # A peak held over several samples: the drawdown starts at the last one.
    dd3 = bstats.drawdown_stats(equity_array([100.0, 110.0, 110.0, 99.0]))
    assert dd3["start_ts"] == T0 + 2 * SECOND and dd3["max_drawdown"] == -11.0
    flat = bstats.drawdown_stats(equity_array([1.0, 2.0, 3.0]))
    assert flat["max_drawdown"] == 0.0 and flat["start_ts"] is None and flat["max_duration_s"] == 0.0


def test_marks_come_from_meta_then_positions_then_last_fill():
    fills = fills_array([(T0, 0, 7, 1, 100.0, 2.0, 0.0, 1, 0), (T0 + 1, 0, 7, 1, 102.0, 1.0, 0.0, 1, 0)])
    last = _result(fills=fills).stats()["pnl"]["by_instrument"]["BTC_USDT"]
    assert last["mark_source"] == "last_fill" and last["mark"] == 102.0
    assert last["unrealized"] == pytest.approx(4.0)
    positions = {"BTC_USDT": {"quantity": 3.0, "avg_price": 100.0 + 2 / 3, "realized": 0.0, "unrealized": 7.0}}
    pos = _result(fills=fills, positions=positions).stats()["pnl"]["by_instrument"]["BTC_USDT"]
    assert pos["mark_source"] == "positions" and pos["mark"] == pytest.approx(103.0)
    meta = _result(fills=fills, positions=positions, meta={"marks": {"BTC_USDT": 90.0}}).stats()
    assert meta["pnl"]["by_instrument"]["BTC_USDT"]["mark_source"] == "meta"
    assert meta["pnl"]["unrealized"] == pytest.approx(-32.0)
    mult = _result(fills=fills, meta={"marks": {"BTC_USDT": 90.0}, "multipliers": {"BTC_USDT": 0.5}}).stats()
    assert mult["pnl"]["unrealized"] == pytest.approx(-16.0)
    assert mult["trading"]["notional"] == pytest.approx(151.0)


def test_summary_text_for_terminals():
    text = bstats.summary_text(hand_result().stats())
    lines = dict(line.split(None, 1) for line in text.splitlines())
    assert list(lines) == list(bstats.SUMMARY_KEYS)
    assert lines["pnl"] == "17.5" and lines["win_rate"] == "66.67%" and lines["trades"] == "5"
    assert lines["start_ts"] == "2026-01-01T00:00:00.000000Z" and lines["sharpe"] != "-"
    starts = {len(line) - len(line.split(None, 1)[1]) for line in text.splitlines()}
    assert starts == {max(map(len, bstats.SUMMARY_KEYS)) + 2}                # values in one column
    assert bstats.summary_text(_result().stats()).count(" -\n") >= 5


def test_float_dust_does_not_open_a_phantom_lot():
    fills = fills_array([(T0, 0, 7, 1, 10.0, 0.3, 0.0, 1, 0), (T0 + 1, 0, 7, -1, 11.0, 0.1, 0.0, 1, 0),
                         (T0 + 2, 0, 7, -1, 12.0, 0.2, 0.0, 1, 0)])
    books = bstats.fifo_books(_result(fills=fills))
    book = books[(0, 7)]
    assert not book.lots and book.sign == 0 and book.position == 0.0
    assert book.realized == pytest.approx(0.1 + 0.4)
    assert len(book.round_trips) == 2


def test_empty_result_has_stats():
    s = _result().stats()
    assert s["summary"]["trades"] == 0 and s["summary"]["pnl"] == 0.0
    assert s["summary"]["sharpe"] is None and s["summary"]["win_rate"] is None
    assert s["summary"]["fill_ratio_qty"] is None and s["latency"]["pnl_by_latency"] == []
    json.dumps(s, allow_nan=False)


# -------------------------------------------------------------------------------------- properties
def _unit_lot_fifo(fills):
    """Independent reference: integer quantities expanded into unit lots, matched one unit at a time."""
    realized = collections.defaultdict(float)
    queues = collections.defaultdict(collections.deque)   # entries: (sign, price)
    for f in sorted(fills, key=lambda f: f[0]):
        ts, s, iid, side, price, qty = f[:6]
        q = queues[(s, iid)]
        for _ in range(int(qty)):
            if q and q[0][0] == -side:
                sign, entry = q.popleft()
                realized[(s, iid)] += (price - entry) * sign
            else:
                q.append((side, price))
    return realized, queues


fill_rows = st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 1), st.sampled_from([7, 9]), st.sampled_from([-1, 1]),
              st.integers(1, 400).map(float), st.integers(1, 6).map(float),
              st.integers(-5, 20).map(lambda x: x / 10), st.sampled_from([1, 2]), st.integers(0, 3_000_000)),
    min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(rows=fill_rows, mark_btc=st.integers(1, 400), mark_eth=st.integers(1, 400))
def test_pnl_is_fills_cash_flow_plus_marked_position(rows, mark_btc, mark_eth):
    rows = [(T0 + r[0], *r[1:]) for r in rows]
    result = BacktestResult(orders=empty_orders(), fills=fills_array(rows), equity=empty_equity(), positions={},
                            instruments={7: "BTC_USDT", 9: "ETH_USDT"}, strategies=["a", "b"],
                            meta={"marks": {"BTC_USDT": float(mark_btc), "ETH_USDT": float(mark_eth)}})
    s = result.stats()
    marks = {7: mark_btc, 9: mark_eth}
    cash = sum(-side * price * qty for _, _, _, side, price, qty, *_ in rows)
    position_value = sum(side * qty * marks[iid] for _, _, iid, side, _, qty, *_ in rows)
    fees = sum(r[6] for r in rows)
    total = s["pnl"]["pnl"]
    assert total == pytest.approx(cash + position_value - fees, abs=1e-6)
    assert total == pytest.approx(s["pnl"]["realized"] + s["pnl"]["unrealized"] - s["pnl"]["fees"], abs=1e-6)
    for group in ("by_strategy", "by_instrument"):
        parts = s["pnl"][group].values()
        for field in ("pnl", "realized", "unrealized", "fees"):
            assert sum(p[field] for p in parts) == pytest.approx(s["pnl"][field], abs=1e-6)
    assert sum(b["pnl"] for b in s["latency"]["pnl_by_latency"]) == pytest.approx(total, abs=1e-6)
    assert sum(b["fills"] for b in s["latency"]["pnl_by_latency"]) == len(rows)

    # FIFO matching against the unit-lot reference, per (strategy, instrument).
    books = bstats.fifo_books(result)
    ref_realized, ref_queues = _unit_lot_fifo(rows)
    for key, book in books.items():
        assert book.realized == pytest.approx(ref_realized[key], abs=1e-6)
        ref_lots = ref_queues[key]
        assert book.position == sum(sign for sign, _ in ref_lots)
        assert sorted(p for lot in book.lots for p in [lot[1]] * int(round(lot[0]))) == sorted(p for _, p in ref_lots)
    trips = bstats.round_trips(result)
    assert trips["gross"].sum() == pytest.approx(s["pnl"]["realized"], abs=1e-6)
    assert (trips["open_ts"] <= trips["close_ts"]).all()
    # Every fill that reduces an open position closes exactly one round trip.
    closing = 0
    position = collections.defaultdict(float)
    for r in sorted(rows, key=lambda r: r[0]):
        key = (r[1], r[2])
        if position[key] * r[3] < 0:
            closing += 1
        position[key] += r[3] * r[5]
    assert s["round_trips"]["count"] == closing == len(trips)


equity_values = st.lists(st.floats(1.0, 1e6, allow_nan=False), min_size=2, max_size=60)


@settings(max_examples=150, deadline=None)
@given(values=equity_values, scale=st.floats(1e-3, 1e3), step_s=st.integers(1, 86400))
def test_drawdown_never_positive_and_ratios_invariant_to_scaling(values, scale, step_s):
    equity = equity_array(values, step=step_s * SECOND)
    absolute, pct = bstats.drawdown_series(equity)
    assert (absolute <= 0).all() and (pct <= 0).all() and (pct >= -1).all()
    dd = bstats.drawdown_stats(equity)
    assert dd["max_drawdown"] <= 0 and -1 <= dd["max_drawdown_pct"] <= 0
    assert dd["max_drawdown"] == absolute.min()
    if dd["start_ts"] is not None:
        assert dd["start_ts"] < dd["trough_ts"] and (dd["recovery_ts"] is None or dd["recovery_ts"] > dd["trough_ts"])

    scaled = equity_array([v * scale for v in values], step=step_s * SECOND)
    a, b = bstats.returns_stats(equity), bstats.returns_stats(scaled)
    r = np.diff(values) / np.asarray(values[:-1])
    # Scaling changes the returns only by rounding (~1e-16); the ratios are compared where their
    # denominators are far above that (a near-constant series has an ill-conditioned Sharpe anyway).
    if len(r) >= 2 and r.std(ddof=1) > 1e-6:
        assert b["sharpe"] == pytest.approx(a["sharpe"], rel=1e-6, abs=1e-6)
    if np.sqrt(np.mean(np.minimum(r, 0) ** 2)) > 1e-6:
        assert b["sortino"] == pytest.approx(a["sortino"], rel=1e-6, abs=1e-6)
    dd_scaled = bstats.drawdown_stats(scaled)
    assert dd_scaled["max_drawdown_pct"] == pytest.approx(dd["max_drawdown_pct"], rel=1e-9, abs=1e-12)
    assert dd_scaled["max_drawdown"] == pytest.approx(dd["max_drawdown"] * scale, rel=1e-9, abs=1e-9)


def test_random_run_stats_are_consistent():
    result = random_result(3)
    s = result.stats()
    assert s["summary"]["trades"] == 500 and s["summary"]["orders"] == 600
    assert set(s["pnl"]["by_strategy"]) == {"mm", "momo", "ml"}
    assert sum(g["fills"] for g in s["pnl"]["by_strategy"].values()) == 500
    assert s["summary"]["latency_p50_us"] <= s["summary"]["latency_p99_us"]
    assert 0 < s["summary"]["maker_share"] < 1 and s["summary"]["turnover"] > 0
    assert s["meta"]["models"]["queue"] == "ConservativeQueue()"
    json.dumps(s, allow_nan=False)
