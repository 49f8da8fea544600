"""The compiled feature kernels against TA-Lib and against tests/models/features_reference.py, on the
same hypothesis-generated series: random walks at every price scale from 1e-7 to 1e11, with flat
stretches, gaps (jumps up to 1e4x) and single-value spikes.

* TA-Lib: every kernel TA-Lib has equals it within 1e-9 relative. The absolute floor (1e-12 of the
  series' magnitude) is there for outputs that cross zero -- the MACD line and histogram, slopes,
  returns -- where an ulp of the *inputs* is not small relative to the output: extrema's recurrences
  (EMA, MACD, RSI, ATR, SMA, WMA) are TA-Lib's rearranged for a shorter dependency chain, and
  TA-Lib's own FMA-dispatched build rounds differently from its portable one.
* Reference: the TA-Lib transcriptions must match to the last bit; the whole-window definitions
  (exact rational arithmetic) within 1e-9 of the quantity's natural scale.
* Streaming: the value after each update() equals the batch output at that index, bit for bit.
* Bad input: NaN / inf anywhere is skipped -- the output equals that of the series without it, the
  previous value held at its index -- and TA-Lib's own leading-NaN handling is matched exactly.
"""
import math
import os
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from extrema import features as F
from models import features_reference as R

talib = pytest.importorskip("talib", reason="TA-Lib (pip install ta-lib) is the reference for the TA-Lib indicators")

# EXTREMA_FEATURE_EXAMPLES=1000 for a long soak; the default keeps the file well under a minute.
EXAMPLES = int(os.environ.get("EXTREMA_FEATURE_EXAMPLES", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REL = 1e-9


# ---------------------------------------------------------------------------------------------------
# Series
# ---------------------------------------------------------------------------------------------------

@st.composite
def price_series(draw, min_size=1, max_size=140):
    """A positive price series: a random walk at a random scale with flat runs, gaps and spikes."""
    n = draw(st.integers(min_size, max_size))
    log_price = draw(st.sampled_from([-7.0, -4.5, -2.0, 0.0, 2.0, 4.7, 7.5, 11.0])) + draw(st.floats(-0.5, 0.5))
    out = []
    while len(out) < n:
        kind = draw(st.sampled_from(["walk", "walk", "walk", "flat", "gap", "spike", "tick"]))
        if kind == "walk":
            for step in draw(st.lists(st.floats(-0.02, 0.02), min_size=1, max_size=30)):
                log_price += step / math.log(10)
                out.append(10.0 ** log_price)
        elif kind == "flat":
            out.extend([10.0 ** log_price] * draw(st.integers(1, 40)))
        elif kind == "gap":
            log_price = min(13.0, max(-9.0, log_price + draw(st.floats(-4.0, 4.0))))
            out.append(10.0 ** log_price)
        elif kind == "spike":
            out.append(10.0 ** (log_price + draw(st.sampled_from([-4.0, -2.0, 2.0, 4.0]))))
        else:   # prices on a tick grid: repeated values and exact differences
            tick = 10.0 ** (math.floor(log_price) - 2)
            base = round(10.0 ** log_price / tick)
            out.extend((base + d) * tick for d in draw(st.lists(st.integers(-3, 3), min_size=1, max_size=20)))
    return np.array(out[:n], dtype=float)


@st.composite
def bars(draw, max_size=120):
    close = draw(price_series(min_size=1, max_size=max_size))
    n = len(close)
    up = np.array(draw(st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.1]), min_size=n, max_size=n)))
    down = np.array(draw(st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.1]), min_size=n, max_size=n)))
    return close * (1 + up), close * (1 - down), close


@st.composite
def pairs(draw, max_size=120):
    """Two price series of one length: independent, or the second a noisy multiple of the first."""
    x = draw(price_series(min_size=1, max_size=max_size))
    if draw(st.booleans()):
        y = draw(price_series(min_size=len(x), max_size=len(x)))
    else:
        noise = np.array(draw(st.lists(st.floats(-0.01, 0.01), min_size=len(x), max_size=len(x))))
        y = x * draw(st.sampled_from([0.5, 1.0, 3.0])) * (1 + noise)
    return x, y


def with_bad_values(draw, x):
    """x with NaN / +-inf inserted at random places; returns (dirty, keep mask)."""
    n_bad = draw(st.integers(1, 8))
    out = list(x)
    keep = [True] * len(out)
    for _ in range(n_bad):
        i = draw(st.integers(0, len(out)))
        out.insert(i, draw(st.sampled_from([math.nan, math.inf, -math.inf])))
        keep.insert(i, False)
    return np.array(out), np.array(keep)


# ---------------------------------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------------------------------

def assert_close(got, expected, *, atol, what, rel=REL):
    got, expected = np.asarray(got, float), np.asarray(expected, float)
    assert got.shape == expected.shape, what
    assert np.array_equal(np.isnan(got), np.isnan(expected)), f"{what}: warm-up / NaN positions differ"
    ok = np.isnan(expected) | (np.abs(got - expected) <= rel * np.abs(expected) + atol)
    if not ok.all():
        i = int(np.argmin(ok))
        raise AssertionError(f"{what}: index {i}: got {got[i]!r}, expected {expected[i]!r} "
                             f"(|diff| {abs(got[i] - expected[i]):.3g}, atol {np.broadcast_to(atol, got.shape)[i]:.3g})")


def assert_same(got, expected, what):
    assert np.array_equal(np.asarray(got, float), np.asarray(expected, float), equal_nan=True), what


def scale(*arrays):
    return max(float(np.max(np.abs(a))) for a in arrays) if len(arrays[0]) else 1.0


def streaming(kernel, *columns):
    """The value after each update of a fresh streaming kernel (tuples stacked as columns)."""
    return np.array([kernel.update(*row) for row in zip(*columns)], dtype=float)


def stack(outputs):
    return np.column_stack(outputs) if isinstance(outputs, tuple) else outputs


# ---------------------------------------------------------------------------------------------------
# TA-Lib indicators
# ---------------------------------------------------------------------------------------------------

SINGLE = [
    # (name, batch, streaming class, reference class, talib call, params)
    ("SMA", F.sma, F.Sma, R.Sma, talib.SMA),
    ("EMA", F.ema, F.Ema, R.Ema, talib.EMA),
    ("WMA", F.wma, F.Wma, R.Wma, talib.WMA),
]


@SETTINGS
@given(x=price_series(), period=st.integers(1, 40))
def test_moving_averages(x, period):
    atol = 1e-12 * scale(x)
    for name, batch, cls, ref, ta in SINGLE:
        got = batch(x, period)
        assert_close(got, ta(x, period), atol=atol, what=f"{name}({period}) vs TA-Lib")
        assert_same(got, R.run(ref(period), x), f"{name}({period}) vs reference")
        assert_same(streaming(cls(period), x), got, f"{name}({period}) streaming vs batch")


@SETTINGS
@given(x=price_series(), period=st.integers(2, 40))
def test_rsi(x, period):
    got = F.rsi(x, period)
    assert_close(got, talib.RSI(x, period), atol=1e-9 * 100, what=f"RSI({period}) vs TA-Lib")
    assert_same(got, R.run(R.Rsi(period), x), "RSI vs reference")
    assert_same(streaming(F.Rsi(period), x), got, "RSI streaming vs batch")


@SETTINGS
@given(x=price_series(max_size=160), fast=st.integers(2, 20), slow=st.integers(2, 40), signal=st.integers(1, 15))
def test_macd(x, fast, slow, signal):
    got = F.macd(x, fast, slow, signal)
    atol = 1e-12 * scale(x)
    for part, g, t in zip(("line", "signal", "histogram"), got, talib.MACD(x, fast, slow, signal)):
        assert_close(g, t, atol=atol, what=f"MACD({fast},{slow},{signal}) {part} vs TA-Lib")
    assert_same(stack(got), R.run(R.Macd(fast, slow, signal), x), "MACD vs reference")
    assert_same(streaming(F.Macd(fast, slow, signal), x), stack(got), "MACD streaming vs batch")


@SETTINGS
@given(x=price_series(), period=st.integers(2, 40),
       up=st.sampled_from([1.0, 2.0, 2.5]), dn=st.sampled_from([1.0, 2.0, 1.5]))
def test_bbands_and_stddev(x, period, up, dn):
    atol = 1e-12 * scale(x)
    got = F.bbands(x, period, up, dn)
    for part, g, t in zip(("upper", "middle", "lower"), got, talib.BBANDS(x, period, up, dn)):
        assert_close(g, t, atol=atol, what=f"BBANDS({period},{up},{dn}) {part} vs TA-Lib")
    assert_same(stack(got), R.run(R.BollingerBands(period, up, dn), x), "BBANDS vs reference")
    assert_same(streaming(F.BollingerBands(period, up, dn), x), stack(got), "BBANDS streaming vs batch")

    sd = F.stddev(x, period, up)
    assert_close(sd, talib.STDDEV(x, period, up), atol=atol, what=f"STDDEV({period},{up}) vs TA-Lib")
    assert_same(sd, R.run(R.StdDev(period, up), x), "STDDEV vs reference")
    assert_same(streaming(F.StdDev(period, up), x), sd, "STDDEV streaming vs batch")


@SETTINGS
@given(hlc=bars(), period=st.integers(1, 30))
def test_atr_and_true_range(hlc, period):
    h, l, c = hlc
    atol = 1e-12 * scale(h, l, c)
    got = F.atr(h, l, c, period)
    assert_close(got, talib.ATR(h, l, c, period), atol=atol, what=f"ATR({period}) vs TA-Lib")
    assert_same(got, R.run(R.Atr(period), h, l, c), "ATR vs reference")
    assert_same(streaming(F.Atr(period), h, l, c), got, "ATR streaming vs batch")

    tr = F.trange(h, l, c)
    assert_close(tr, talib.TRANGE(h, l, c), atol=atol, what="TRANGE vs TA-Lib")
    assert_same(tr, R.run(R.TrueRange(), h, l, c), "TRANGE vs reference")
    assert_same(streaming(F.TrueRange(), h, l, c), tr, "TRANGE streaming vs batch")


@SETTINGS
@given(x=price_series(), period=st.integers(1, 30))
def test_returns(x, period):
    got = F.returns(x, period)
    assert_close(got, talib.ROCP(x, period), atol=1e-15, what=f"ROCP({period}) vs TA-Lib")
    assert_close(got * 100.0, talib.ROC(x, period), atol=1e-12, what=f"ROC({period}) vs TA-Lib")
    assert_same(got, R.run(R.Returns(period), x), "returns vs reference")
    assert_same(streaming(F.Returns(period), x), got, "returns streaming vs batch")

    logret = F.log_returns(x, period)
    with np.errstate(divide="ignore", invalid="ignore"):
        assert_close(logret, np.log(talib.ROCR(x, period)), atol=1e-15, what=f"log(ROCR({period})) vs TA-Lib")
    assert_same(logret, R.run(R.LogReturns(period), x), "log returns vs reference")
    assert_same(streaming(F.LogReturns(period), x), logret, "log returns streaming vs batch")


def exact_beta(x, y, period, i):
    """TA_BETA's definition at index i in exact rational arithmetic (a return from a price within
    TA-Lib's 1e-14 of zero counts as 0)."""
    def returns(p):
        return [(Fraction(p[j]) - Fraction(p[j - 1])) / Fraction(p[j - 1]) if abs(p[j - 1]) >= R.TA_EPSILON
                else Fraction(0) for j in range(i - period + 1, i + 1)]
    rx, ry = returns(x), returns(y)
    n, sx, sy = period, sum(rx), sum(ry)
    denom = n * sum(r * r for r in rx) - sx * sx
    return float((n * sum(a * b for a, b in zip(rx, ry)) - sx * sy) / denom) if denom > 0 else 0.0


@SETTINGS
@given(xy=pairs(), period=st.integers(1, 30))
def test_beta(xy, period):
    x, y = xy
    got = F.beta(x, y, period)
    ta = talib.BETA(x, y, period)
    assert np.array_equal(np.isnan(got), np.isnan(ta)), "BETA warm-up differs from TA-Lib"
    # Equal to TA-Lib within 1e-9; where not, TA-Lib's own rounding is the larger error: TA-Lib's
    # re-anchoring of its shifted return sums differs from this (its published) form after a 100x
    # spike, and it then errs by up to ~1e-8. There the kernel must be within 1e-9 of the exact
    # value and no further from it than TA-Lib.
    for i in np.flatnonzero(~np.isnan(ta) & (np.abs(got - ta) > REL * np.maximum(1.0, np.abs(ta)))):
        exact = exact_beta(x, y, period, i)
        assert abs(got[i] - exact) <= REL * max(1.0, abs(exact)), f"BETA({period}) index {i}: {got[i]} vs exact {exact}"
        assert abs(got[i] - exact) <= abs(ta[i] - exact), f"BETA({period}) index {i}: further from exact than TA-Lib"
    assert_same(got, R.run(R.Beta(period), x, y), "BETA vs reference")
    assert_same(streaming(F.Beta(period), x, y), got, "BETA streaming vs batch")


def _window_stats(xs, ys, period):
    """Per index: (|mean x|, |mean y|, slope scale sqrt(Syy/Sxx)) of the window ending there."""
    n = len(ys)
    mx, my, sc = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(period - 1, n):
        wx, wy = xs[i - period + 1:i + 1], ys[i - period + 1:i + 1]
        mx[i], my[i] = abs(np.mean(wx)), abs(np.mean(wy))
        sxx, syy = np.sum((wx - wx.mean()) ** 2), np.sum((wy - wy.mean()) ** 2)
        sc[i] = math.sqrt(syy / sxx) if sxx > 0 else 0.0
    return mx, my, sc


def assert_regression(got, expected, xs, ys, period, what):
    slope, icpt, r2 = got
    mx, my, sc = _window_stats(xs, ys, period)
    e_slope, e_icpt, e_r2 = expected.T
    slope_tol = REL * (np.abs(e_slope) + sc) + 1e-300
    assert_close(slope, e_slope, rel=0.0, atol=slope_tol, what=f"{what} slope")
    assert_close(icpt, e_icpt, rel=0.0, atol=REL * (my + (np.abs(e_slope) + sc) * mx) + 1e-300, what=f"{what} intercept")
    assert_close(r2, e_r2, rel=0.0, atol=REL, what=f"{what} r2")


@SETTINGS
@given(x=price_series(max_size=120), period=st.one_of(st.integers(2, 32), st.integers(33, 70)))
def test_linear_regression(x, period):
    # (periods up to 32 sum every window afresh, longer ones slide error-bounded sums: both paths)
    got = F.linear_regression(x, period)
    expected = R.run(R.LinearRegression(period), x)
    mx, my, sc = _window_stats(np.arange(len(x), dtype=float), x, period)
    slope, icpt, r2 = got
    assert_close(slope, expected[:, 0], rel=0.0, atol=REL * (np.abs(expected[:, 0]) + sc) + 1e-300,
                 what=f"LinearRegression({period}) slope vs reference")
    tol_icpt = REL * (my + (np.abs(expected[:, 0]) + sc) * (period - 1) / 2) + 1e-300
    assert_close(icpt, expected[:, 1], rel=0.0, atol=tol_icpt, what=f"LinearRegression({period}) intercept vs reference")
    assert_close(r2, expected[:, 2], rel=0.0, atol=REL, what=f"LinearRegression({period}) r2 vs reference")
    assert_same(streaming(F.LinearRegression(period), x), stack(got), "LinearRegression streaming vs batch")
    # TA-Lib's LINEARREG family: the same line. TA-Lib's running sums are not cancellation-free
    # (TA-Lib issue #254 leaves that part open), so its own error sets this tolerance.
    ta_slope = talib.LINEARREG_SLOPE(x, period)
    assert_close(slope, ta_slope, rel=0.0, atol=REL * (np.abs(ta_slope) + sc) + 1e-12 * scale(x) / period,
                 what=f"LINEARREG_SLOPE({period}) vs TA-Lib")
    ta_icpt = talib.LINEARREG_INTERCEPT(x, period)
    assert_close(icpt, ta_icpt, rel=0.0, atol=tol_icpt + 1e-12 * scale(x), what=f"LINEARREG_INTERCEPT({period}) vs TA-Lib")
    end = F.LinearRegression(period)
    for v in x:
        end.update(v)
    if len(x) >= period:
        assert math.isclose(end.line_end, talib.LINEARREG(x, period)[-1], rel_tol=REL,
                            abs_tol=tol_icpt[-1] * period + 1e-12 * scale(x))


@SETTINGS
@given(xy=pairs(max_size=100), period=st.integers(2, 30))
def test_rolling_ols(xy, period):
    x, y = xy
    got = F.rolling_ols(x, y, period)
    assert_regression(got, R.run(R.RollingOls(period), x, y), x, y, period, f"RollingOls({period}) vs reference")
    assert_same(streaming(F.RollingOls(period), x, y), stack(got), "RollingOls streaming vs batch")


@SETTINGS
@given(x=price_series(), period=st.integers(2, 30))
def test_zscore(x, period):
    got = F.zscore(x, period)
    expected = R.run(R.ZScore(period), x)
    assert_close(got, expected, rel=0.0, atol=REL * np.maximum(1.0, np.abs(np.nan_to_num(expected))), what=f"ZScore({period})")
    assert_same(streaming(F.ZScore(period), x), got, "ZScore streaming vs batch")


@SETTINGS
@given(x=price_series(), period=st.integers(1, 30))
def test_realized_volatility(x, period):
    got = F.realized_volatility(x, period)
    assert_close(got, R.run(R.RealizedVolatility(period), x), atol=1e-300, what=f"RealizedVolatility({period})")
    assert_same(streaming(F.RealizedVolatility(period), x), got, "RealizedVolatility streaming vs batch")


@st.composite
def trades(draw, max_size=140):
    price = draw(price_series(min_size=1, max_size=max_size))
    n = len(price)
    size = np.array(draw(st.lists(st.sampled_from([0.0, 0.001, 0.5, 1.0, 3.0, 250.0, 1e6]), min_size=n, max_size=n)))
    is_buy = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return price, size, is_buy


@SETTINGS
@given(t=trades(), window=st.integers(0, 30), n_sessions=st.integers(1, 4))
def test_vwap(t, window, n_sessions):
    price, size, _ = t
    got = F.vwap(price, size, window)
    assert_close(got, R.run(R.Vwap(window), price, size), atol=1e-300, what=f"Vwap({window})")
    assert_same(streaming(F.Vwap(window), price, size), got, "Vwap streaming vs batch")
    session = np.sort(np.random.default_rng(len(price)).integers(0, n_sessions, len(price)))
    assert_close(F.vwap(price, size, window, session=session), R.run_vwap_sessions(price, size, session, window),
                 atol=1e-300, what="Vwap with sessions")


@SETTINGS
@given(t=trades(), window=st.integers(1, 30))
def test_trade_flow_imbalance(t, window):
    _, size, is_buy = t
    got = F.trade_flow_imbalance(size, is_buy, window)
    assert_close(got, R.run(R.TradeFlowImbalance(window), size, is_buy), rel=0.0, atol=REL, what="TradeFlowImbalance")
    assert_same(streaming(F.TradeFlowImbalance(window), size, is_buy), got, "TradeFlowImbalance streaming vs batch")


@st.composite
def books(draw):
    n_snap = draw(st.integers(1, 40))
    depth = draw(st.integers(1, 8))
    sizes = st.one_of(st.sampled_from([0.0, math.nan]), st.floats(0.001, 1e4))
    tops = np.empty((n_snap, depth, 4))
    for i in range(n_snap):
        mid = draw(st.floats(1.0, 1e5))
        for j in range(depth):
            tops[i, j] = (mid - j - 0.5, draw(sizes), mid + j + 0.5, draw(sizes))
    return tops


@SETTINGS
@given(tops=books(), levels=st.integers(1, 10))
def test_book_imbalance_and_microprice(tops, levels):
    got = F.book_imbalance(tops, levels)
    assert_close(got, R.run(R.BookImbalance(levels), tops), rel=0.0, atol=1e-12, what="BookImbalance")
    assert_same(streaming(F.BookImbalance(levels), tops), got, "BookImbalance streaming vs batch")
    cols = (tops[:, 0, 0], tops[:, 0, 1], tops[:, 0, 2], tops[:, 0, 3])
    mp = F.microprice(*cols)
    assert_same(mp, R.run(R.Microprice(), *cols), "Microprice vs reference")
    assert_same(streaming(F.Microprice(), *cols), mp, "Microprice streaming vs batch")


# ---------------------------------------------------------------------------------------------------
# Bad input: skipped, never propagated
# ---------------------------------------------------------------------------------------------------

SCALAR_KERNELS = [
    (F.sma, F.Sma, (5,)), (F.ema, F.Ema, (5,)), (F.wma, F.Wma, (5,)), (F.rsi, F.Rsi, (5,)),
    (F.stddev, F.StdDev, (5,)), (F.zscore, F.ZScore, (5,)), (F.realized_volatility, F.RealizedVolatility, (4,)),
    (F.returns, F.Returns, (2,)), (F.log_returns, F.LogReturns, (2,)),
    (F.macd, F.Macd, (3, 6, 3)), (F.bbands, F.BollingerBands, (5, 2.0, 2.0)),
    (F.linear_regression, F.LinearRegression, (5,)), (F.linear_regression, F.LinearRegression, (34,)),
]


def held(values, keep):
    """The clean series' outputs spread over the dirty positions, the previous value held at a bad one."""
    values = np.asarray(values, float)
    out = np.empty((len(keep),) + values.shape[1:])
    j, last = 0, np.full(values.shape[1:], np.nan)
    for i, k in enumerate(keep):
        if k:
            last = values[j]
            j += 1
        out[i] = last
    return out


@settings(max_examples=max(EXAMPLES * 5 // 8, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), x=price_series(max_size=60))
def test_non_finite_input_is_skipped(data, x):
    dirty, keep = with_bad_values(data.draw, x)
    for batch, cls, args in SCALAR_KERNELS:
        clean = stack(batch(x, *args))
        assert_same(stack(batch(dirty, *args)), held(clean, keep), f"{cls.__name__} batch with NaN/inf")
        k = cls(*args)
        assert_same(streaming(k, dirty), held(clean, keep), f"{cls.__name__} streaming with NaN/inf")
        assert (k.count, k.skipped) == (len(x), int((~keep).sum()))
    # The multi-input kernels skip a row when any of its inputs is bad.
    y = x[::-1].copy()
    ydirty = np.where(keep, 0.0, 0.0)
    ydirty[keep] = y
    assert_same(F.beta(dirty, ydirty, 3), held(F.beta(x, y, 3), keep), "Beta with NaN/inf")
    assert_same(stack(F.rolling_ols(dirty, ydirty, 3)), held(stack(F.rolling_ols(x, y, 3)), keep), "RollingOls with NaN/inf")
    assert_same(F.atr(dirty, dirty, dirty, 3), held(F.atr(x, x, x, 3), keep), "Atr with NaN/inf")
    assert_same(F.vwap(dirty, ydirty, 3), held(F.vwap(x, y, 3), keep), "Vwap with NaN/inf")


@settings(max_examples=max(EXAMPLES * 5 // 8, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=price_series(min_size=1, max_size=80), lead=st.integers(1, 20))
def test_leading_nans_match_talib(x, lead):
    """TA-Lib's wrapper starts after leading NaNs; skipping them gives the same output, index for index."""
    padded = np.r_[np.full(lead, np.nan), x]
    atol = 1e-12 * scale(x)
    assert_close(F.ema(padded, 4), talib.EMA(padded, 4), atol=atol, what="EMA with leading NaNs")
    assert_close(F.sma(padded, 4), talib.SMA(padded, 4), atol=atol, what="SMA with leading NaNs")
    assert_close(F.rsi(padded, 4), talib.RSI(padded, 4), atol=1e-7, what="RSI with leading NaNs")
    for g, t in zip(F.bbands(padded, 4), talib.BBANDS(padded, 4)):
        assert_close(g, t, atol=atol, what="BBANDS with leading NaNs")
