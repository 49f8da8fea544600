"""extrema.features: the compiled module, warm-up, bad-input policy, parameters, book integration and the
no-GIL Cython API. (Differential tests against TA-Lib and the reference: tests/property.)"""
import math
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import extrema
from extrema import features as F
from extrema._core import features as core_features

NAN = math.nan


def first_value_index(a):
    a = np.asarray(a[0] if isinstance(a, tuple) else a, float)
    ok = np.flatnonzero(~np.isnan(a))
    return int(ok[0]) if len(ok) else None


@pytest.fixture(scope="module")
def walk():
    rng = np.random.default_rng(42)
    return 100.0 * np.exp(np.cumsum(rng.standard_normal(300) * 0.01))


# ------------------------------------------------------------------------------------ the module

def test_the_compiled_module_is_what_ran():
    path = Path(core_features.__file__)
    assert path.name.endswith(sysconfig.get_config_var("EXT_SUFFIX")) and path.suffix == ".so"
    assert F.Ema is core_features.Ema and F.ema is core_features.ema
    assert type(F.ema).__name__ == "cython_function_or_method"
    assert not hasattr(F.Ema, "__dict__") or "__dict__" not in F.Ema.__dict__   # an extension type


def test_public_names_and_final_classes():
    for name in F.__all__:
        assert hasattr(F, name), name
    for cls in (F.Ema, F.Sma, F.Rsi, F.Macd, F.Atr, F.Vwap, F.BookImbalance):
        with pytest.raises(TypeError):
            type("Sub", (cls,), {})
    assert issubclass(F.Ema, F.ScalarKernel) and issubclass(F.Atr, F.Kernel)
    assert not issubclass(F.Atr, F.ScalarKernel)


def test_abstract_bases_do_not_pretend_to_work():
    with pytest.raises(TypeError, match="abstract"):
        F.ScalarKernel().value


# -------------------------------------------------------------------------------------- warm-up

WARMUP = [
    # (streaming factory, batch call on (x, x2) -> output, first index)
    (lambda: F.Ema(10), lambda x, y: F.ema(x, 10), 9),
    (lambda: F.Sma(10), lambda x, y: F.sma(x, 10), 9),
    (lambda: F.Wma(10), lambda x, y: F.wma(x, 10), 9),
    (lambda: F.Rsi(14), lambda x, y: F.rsi(x, 14), 14),
    (lambda: F.Macd(12, 26, 9), lambda x, y: F.macd(x, 12, 26, 9), 33),
    (lambda: F.BollingerBands(20), lambda x, y: F.bbands(x, 20), 19),
    (lambda: F.StdDev(20), lambda x, y: F.stddev(x, 20), 19),
    (lambda: F.ZScore(20), lambda x, y: F.zscore(x, 20), 19),
    (lambda: F.RealizedVolatility(20), lambda x, y: F.realized_volatility(x, 20), 20),
    (lambda: F.Returns(3), lambda x, y: F.returns(x, 3), 3),
    (lambda: F.LogReturns(3), lambda x, y: F.log_returns(x, 3), 3),
    (lambda: F.LinearRegression(14), lambda x, y: F.linear_regression(x, 14), 13),
    (lambda: F.RollingOls(14), lambda x, y: F.rolling_ols(x, y, 14), 13),
    (lambda: F.Beta(5), lambda x, y: F.beta(x, y, 5), 5),
    (lambda: F.Vwap(8), lambda x, y: F.vwap(x, y, 8), 7),
    (lambda: F.Vwap(), lambda x, y: F.vwap(x, y), 0),
]


@pytest.mark.parametrize("make, batch, first", WARMUP)
def test_warm_up_index_and_is_ready(walk, make, batch, first):
    y = walk[::-1].copy()
    assert first_value_index(batch(walk, y)) == first
    k = make()
    assert not k.is_ready and k.count == 0 and k.skipped == 0
    two_inputs = isinstance(k, (F.RollingOls, F.Beta, F.Vwap))
    for i in range(first + 1):
        assert not k.is_ready
        k.update(walk[i], y[i]) if two_inputs else k.update(walk[i])
    assert k.is_ready and k.count == first + 1


def test_warm_up_matches_talib_lookbacks(walk):
    talib = pytest.importorskip("talib")
    h, l, c = walk * 1.01, walk * 0.99, walk
    pairs = [
        (F.ema(walk, 10), talib.EMA(walk, 10)), (F.sma(walk, 7), talib.SMA(walk, 7)),
        (F.wma(walk, 7), talib.WMA(walk, 7)), (F.rsi(walk, 14), talib.RSI(walk, 14)),
        (F.macd(walk, 12, 26, 9)[0], talib.MACD(walk, 12, 26, 9)[0]),
        (F.bbands(walk, 20)[0], talib.BBANDS(walk, 20)[0]), (F.stddev(walk, 5), talib.STDDEV(walk, 5)),
        (F.atr(h, l, c, 14), talib.ATR(h, l, c, 14)), (F.trange(h, l, c), talib.TRANGE(h, l, c)),
        (F.returns(walk, 4), talib.ROCP(walk, 4)), (F.beta(walk, walk[::-1].copy(), 5), talib.BETA(walk, walk[::-1].copy(), 5)),
        (F.linear_regression(walk, 14)[0], talib.LINEARREG_SLOPE(walk, 14)),
    ]
    for ours, theirs in pairs:
        assert first_value_index(ours) == first_value_index(theirs)


def test_true_range_and_atr_warm_up():
    h, l, c = np.array([3.0, 4, 5, 6]), np.array([1.0, 2, 3, 4]), np.array([2.0, 3, 4, 5])
    assert first_value_index(F.trange(h, l, c)) == 1
    assert first_value_index(F.atr(h, l, c, 2)) == 2
    atr = F.Atr(2)
    assert [atr.update(*bar) for bar in zip(h, l, c)][2:] == [2.0, 2.0]
    assert atr.true_range == 2.0


# ------------------------------------------------------------------------------- known values

def test_known_values():
    x = np.array([1.0, 2, 3, 4, 5])
    np.testing.assert_array_equal(F.sma(x, 3), [NAN, NAN, 2, 3, 4])
    np.testing.assert_array_equal(F.wma(x, 3), [NAN, NAN, 14 / 6, 20 / 6, 26 / 6])
    np.testing.assert_array_equal(F.ema(x, 3), [NAN, NAN, 2, 3, 4])
    np.testing.assert_array_equal(F.returns(x, 1), [NAN, 1, 0.5, 1 / 3, 0.25])
    np.testing.assert_array_equal(F.rsi(x, 2), [NAN, NAN, 100, 100, 100])
    slope, icpt, r2 = F.linear_regression(2.0 * x + 7.0, 3)
    np.testing.assert_allclose(slope[2:], 2.0, rtol=1e-15)
    np.testing.assert_allclose(icpt[2:], [9.0, 11.0, 13.0], rtol=1e-15)     # the line at the oldest value
    np.testing.assert_allclose(r2[2:], 1.0, rtol=1e-15)
    slope, icpt, r2 = F.rolling_ols(x, 3.0 * x - 1.0, 4)
    np.testing.assert_allclose(np.c_[slope, icpt, r2][3:], [[3.0, -1.0, 1.0]] * 2, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(F.vwap([10.0, 20.0, 30.0], [1.0, 3.0, 0.0]), [10.0, 17.5, 17.5])
    np.testing.assert_allclose(F.vwap([10.0, 20.0, 30.0], [1.0, 3.0, 1.0], window=2), [NAN, 17.5, 22.5])
    np.testing.assert_allclose(F.trade_flow_imbalance([1.0, 3.0, 2.0], [True, False, True], 2),
                               [NAN, -0.5, -0.2])
    np.testing.assert_allclose(F.microprice([99.0], [3.0], [101.0], [1.0]), [100.5])
    np.testing.assert_allclose(F.realized_volatility([1.0, math.e, 1.0], 2), [NAN, NAN, math.sqrt(2.0)])


def test_flat_series():
    x = np.full(40, 101.25)
    assert np.all(F.rsi(x, 14)[14:] == 0.0)                   # TA-Lib 0.8: a flat RSI reads 0
    assert np.all(F.stddev(x, 10)[9:] == 0.0)
    assert np.all(F.zscore(x, 10)[9:] == 0.0)
    upper, middle, lower = F.bbands(x, 10)
    assert np.all(upper[9:] == 101.25) and np.all(lower[9:] == 101.25) and np.all(middle[9:] == 101.25)
    slope, icpt, r2 = F.linear_regression(x, 10)
    assert np.all(slope[9:] == 0.0) and np.all(icpt[9:] == 101.25) and np.all(r2[9:] == 0.0)
    assert np.all(F.realized_volatility(x, 5)[5:] == 0.0)
    slope, icpt, r2 = F.rolling_ols(x, np.arange(40.0), 5)    # x constant: no slope
    assert np.all(slope[4:] == 0.0) and np.all(r2[4:] == 0.0)
    np.testing.assert_array_equal(icpt[4:], np.arange(2.0, 38.0))   # the mean of y
    macd, signal, hist = F.macd(x)
    assert np.all(macd[33:] == 0.0) and np.all(hist[33:] == 0.0)


def test_macd_swaps_fast_and_slow_like_talib(walk):
    for a, b in zip(F.macd(walk, 26, 12, 9), F.macd(walk, 12, 26, 9)):
        np.testing.assert_array_equal(a, b)
    assert F.Macd(26, 12, 9)._params() == {"fast": 12, "slow": 26, "signal": 9}


def test_multi_output_kernels(walk):
    m = F.Macd(3, 6, 2)
    for v in walk[:10]:
        out = m.update(v)
    assert out == m.value == (m.macd, m.signal_value, m.histogram)
    assert m.histogram == m.macd - m.signal_value
    b = F.BollingerBands(5, 2.0, 1.0)
    for v in walk[:10]:
        out = b.update(v)
    assert out == b.value == (b.upper, b.middle, b.lower)
    assert b.upper - b.middle == pytest.approx(2 * (b.middle - b.lower))
    lr = F.LinearRegression(5)
    for v in walk[:10]:
        lr.update(v)
    assert lr.line_end == pytest.approx(lr.intercept + 4 * lr.slope)


# --------------------------------------------------------------------------- bad input is skipped

def test_nan_and_inf_are_skipped_and_counted():
    e = F.Ema(2)
    assert math.isnan(e.update(NAN)) and e.skipped == 1 and e.count == 0
    e.update(1.0)
    assert e.update(3.0) == 2.0
    for bad in (NAN, math.inf, -math.inf):
        assert e.update(bad) == 2.0
    assert (e.count, e.skipped, e.value) == (2, 4, 2.0)
    np.testing.assert_array_equal(F.ema([1.0, NAN, 3.0, math.inf, 5.0], 2), [NAN, NAN, 2.0, 2.0, 4.0])
    atr = F.Atr(1)
    atr.update(2.0, 1.0, 1.5)
    assert atr.update(NAN, 1.0, 1.5) is not None and atr.skipped == 1 and atr.count == 1


def test_kernel_specific_invalid_input():
    v = F.Vwap()
    v.update(10.0, 1.0)
    assert v.update(20.0, -1.0) == 10.0 and v.skipped == 1            # negative volume
    assert v.update(20.0, 0.0) == 10.0 and v.skipped == 1             # zero volume: accepted, weighs nothing
    assert math.isnan(F.Vwap().update(10.0, 0.0))                    # no volume yet
    lr = F.LogReturns()
    for bad in (0.0, -5.0):
        lr.update(bad)
    assert lr.skipped == 2 and lr.count == 0
    rv = F.RealizedVolatility(2)
    rv.update(-1.0)
    assert rv.skipped == 1
    t = F.TradeFlowImbalance(2)
    t.update(-1.0, True)
    assert t.skipped == 1
    mp = F.Microprice()
    assert math.isnan(mp.update(99.0, -1.0, 101.0, 1.0)) and math.isnan(mp.update(99.0, 0.0, 101.0, 0.0))
    assert mp.skipped == 2
    np.testing.assert_array_equal(F.returns([0.0, 1.0, 2.0], 1), [NAN, 0.0, 1.0])   # TA_ROCP: 0 from 0


def test_book_imbalance_from_arrays():
    top = np.array([[99.0, 2.0, 101.0, 1.0], [98.0, 1.0, 102.0, NAN], [NAN, NAN, NAN, NAN]])
    k = F.BookImbalance(levels=3)
    assert k.update(top) == pytest.approx((3.0 - 1.0) / 4.0)          # NaN: a missing level
    assert F.BookImbalance(levels=1).update(top) == pytest.approx(1.0 / 3.0)
    bad = top.copy()
    bad[0, 1] = -1.0
    assert k.update(bad) == pytest.approx(0.5) and k.skipped == 1
    bad[0, 1] = math.inf
    k.update(bad)
    empty = np.full((2, 4), NAN)
    k.update(empty)
    assert k.skipped == 3 and k.count == 1
    with pytest.raises(ValueError):
        k.update(np.zeros((3, 3)))
    np.testing.assert_allclose(F.book_imbalance(np.stack([top, top]), 3), [0.5, 0.5])


def test_book_kernels_read_an_order_book():
    book = extrema.OrderBook(2, 3)
    mp, imb = F.Microprice(), F.BookImbalance(levels=2)
    assert math.isnan(mp.update_book(book)) and math.isnan(imb.update_book(book))
    assert mp.skipped == 1 and imb.skipped == 1
    book.update(extrema.BookSide.BID, 100.00, 2.0)
    book.update(extrema.BookSide.BID, 99.99, 1.5)
    book.update(extrema.BookSide.BID, 99.98, 9.0)
    book.update(extrema.BookSide.ASK, 100.02, 0.5)
    assert mp.update_book(book) == pytest.approx(book.microprice, rel=1e-15)
    assert imb.update_book(book) == pytest.approx(book.imbalance(2), rel=1e-15)
    assert mp.update(*book.top(1)[0]) == pytest.approx(book.microprice, rel=1e-15)
    assert F.BookImbalance(2).update(book.top(5)) == pytest.approx(book.imbalance(2), rel=1e-15)


# ----------------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("make", [
    lambda p: F.Ema(p), lambda p: F.Sma(p), lambda p: F.Wma(p), lambda p: F.StdDev(p), lambda p: F.Atr(p),
    lambda p: F.TradeFlowImbalance(p), lambda p: F.Beta(p), lambda p: F.LinearRegression(p),
    lambda p: F.ema([1.0], p), lambda p: F.rsi([1.0], p), lambda p: F.Vwap(p) if p > 0 else F.Vwap(p - 1),
])
def test_period_validation(make):
    for bad in (0, -3, F.MAX_PERIOD + 1):
        with pytest.raises(ValueError):
            make(bad)
    for bad in (2.5, "3", True, None):
        with pytest.raises(TypeError):
            make(bad)


def test_other_parameter_validation():
    with pytest.raises(ValueError):
        F.Rsi(1)                                                   # TA-Lib's range starts at 2
    with pytest.raises(ValueError):
        F.BollingerBands(20, NAN)
    with pytest.raises(ValueError):
        F.bbands([1.0, 2.0], 2, 2.0, math.inf)
    with pytest.raises(ValueError, match="one-dimensional"):
        F.sma(np.ones((3, 2)), 2)
    with pytest.raises(ValueError, match="same length"):
        F.atr([1.0, 2.0], [1.0], [1.0, 2.0], 2)
    with pytest.raises(ValueError):
        F.vwap([1.0, 2.0], [1.0, 1.0], session=[1])
    with pytest.raises(ValueError):
        F.book_imbalance(np.ones((3, 4)))
    assert F.sma([], 3).shape == (0,)
    assert F.sma([1, 2, 3], 2).dtype == np.float64                 # ints are converted
    assert F.sma(np.arange(10.0)[::2], 2)[2] == 3.0                 # so are strided views


def test_reset_starts_over(walk):
    kernels = [F.Ema(5), F.Sma(5), F.Wma(5), F.Rsi(5), F.Macd(3, 6, 2), F.BollingerBands(5), F.StdDev(5),
               F.ZScore(5), F.RealizedVolatility(5), F.Returns(2), F.LogReturns(2), F.LinearRegression(5)]
    for k in kernels:
        first = [k.update(v) for v in walk[:40]]
        k.update(NAN)
        k.reset()
        assert (k.count, k.skipped, k.is_ready) == (0, 0, False)
        np.testing.assert_array_equal([k.update(v) for v in walk[:40]], first, err_msg=type(k).__name__)
    pair_kernels = [F.RollingOls(5), F.Beta(5), F.Vwap(5), F.Vwap()]
    for k in pair_kernels:
        first = [k.update(a, b) for a, b in zip(walk[:40], walk[40:80])]
        k.reset()
        np.testing.assert_array_equal([k.update(a, b) for a, b in zip(walk[:40], walk[40:80])], first,
                                      err_msg=type(k).__name__)


def test_vwap_sessions():
    price = np.array([10.0, 20.0, 30.0, 40.0])
    out = F.vwap(price, np.ones(4), session=np.array([7, 7, 8, 8]))
    np.testing.assert_allclose(out, [10.0, 15.0, 30.0, 35.0])
    v = F.Vwap()
    v.update(10.0, 1.0)
    v.reset()                                                      # a new session
    assert v.update(30.0, 2.0) == 30.0 and v.volume == 2.0


def test_repr(walk):
    k = F.Rsi(14)
    k.update(1.0)
    assert repr(k) == "Rsi(period=14) <value=nan, count=1, skipped=0>"
    assert "BookImbalance(levels=5)" in repr(F.BookImbalance())


# ------------------------------------------------------------------- long runs stay accurate

def test_rolling_sums_do_not_drift_over_a_long_run():
    """Half a million updates at a high price level with huge spikes passing through the windows:
    the error-bounded running sums still agree with a fresh per-window computation."""
    rng = np.random.default_rng(7)
    n, w = 500_000, 50
    price = 30_000.0 * np.exp(np.cumsum(rng.standard_normal(n) * 1e-4))
    size = rng.exponential(1.0, n)
    spikes = rng.integers(0, n, 40)
    price[spikes] *= 1e4
    size[spikes] *= 1e6
    windows = np.lib.stride_tricks.sliding_window_view
    tail = slice(n - 2000, n)
    got = F.vwap(price, size, w)[tail]
    pv, v = windows(price * size, w), windows(size, w)
    expected = (np.sum(pv, axis=1) / np.sum(v, axis=1))[-2000:]
    np.testing.assert_allclose(got, expected, rtol=1e-11)
    r = np.log(price[1:] / price[:-1])
    expected_rv = np.sqrt(np.sum(windows(r * r, w), axis=1))[-2000:]
    np.testing.assert_allclose(F.realized_volatility(price, w)[tail], expected_rv, rtol=1e-11)
    slope = F.linear_regression(price, w)[0][tail]
    xs = np.arange(w) - (w - 1) / 2
    wins = windows(price, w)[-2000:]
    expected_slope = (wins - wins.mean(axis=1, keepdims=True)) @ xs / np.sum(xs * xs)
    np.testing.assert_allclose(slope, expected_slope, rtol=1e-8, atol=1e-12 * price.max())


def test_rebuilds_are_rare_so_updates_stay_o1_amortised():
    """An O(period) rebuild of a kernel's running sums happens when its rounding bound (or TA-Lib's
    re-anchoring rule) calls for it; on a market-like walk that is rare enough that the amortised
    cost of an update stays O(1). (LinearRegression at 33, the shortest window that slides its sums:
    shorter ones sum each window afresh and never rebuild.)"""
    rng = np.random.default_rng(3)
    n = 100_000
    price = np.round(30_000.0 * np.exp(np.cumsum(rng.standard_normal(n) * 5e-4)), 2)
    other = price * np.exp(np.cumsum(rng.standard_normal(n) * 2e-4))
    size = rng.exponential(0.5, n)
    cases = [(F.ZScore(20), (price,)), (F.RealizedVolatility(20), (price,)), (F.LinearRegression(33), (price,)),
             (F.RollingOls(20), (other, price)), (F.Vwap(100), (price, size)), (F.StdDev(20), (price,)),
             (F.Wma(20), (price,)), (F.Beta(5), (other, price)), (F.TradeFlowImbalance(100), (size, size > 0.5))]
    for k, cols in cases:
        for row in zip(*cols):
            k.update(*row)
        period = getattr(k, "period", None) or getattr(k, "window", 20)
        # at most one rebuild per 4 windows on average: the rebuild work is <= 1/4 of the updates'
        assert k.rebuilds * period <= n / 4, (type(k).__name__, k.rebuilds)
    assert F.Ema(5).rebuilds == 0


def test_bar_kernels_skip_a_bar_with_any_one_bad_input():
    """ATR and TRANGE over long series (many vectorised blocks) with a NaN or inf in only the high,
    only the low or only the close of a bar: that bar is skipped -- the output is that of the series
    without it, the previous value held -- in batch and in streaming alike."""
    rng = np.random.default_rng(5)
    n = 3000
    close = 100.0 * np.exp(np.cumsum(rng.standard_normal(n) * 1e-2))
    high, low = close * (1 + rng.random(n) * 1e-2), close * (1 - rng.random(n) * 1e-2)
    bad = {300: (0, NAN), 301: (1, math.inf), 1200: (2, NAN), 1201: (2, -math.inf), 2500: (0, -math.inf),
           2777: (1, NAN), 2999: (2, math.inf)}
    dirty = [high.copy(), low.copy(), close.copy()]
    for i, (col, v) in bad.items():
        dirty[col][i] = v
    keep = np.ones(n, bool)
    keep[list(bad)] = False
    for batch, cls, args in ((F.atr, F.Atr, (14,)), (F.trange, F.TrueRange, ())):
        clean = batch(high[keep], low[keep], close[keep], *args)
        expected = np.empty(n)
        j, last = 0, NAN
        for i in range(n):
            if keep[i]:
                last = clean[j]
                j += 1
            expected[i] = last
        np.testing.assert_array_equal(batch(*dirty, *args), expected)
        k = cls(*args)
        np.testing.assert_array_equal([k.update(*row) for row in zip(*dirty)], expected)
        assert (k.count, k.skipped) == (n - len(bad), len(bad))


def test_baseline_loops_give_the_same_bits(walk):
    """The batch loops exist twice -- AVX2 + FMA where the CPU has both, SSE2 with libm's correctly
    rounded fma() otherwise -- and must compute the same bits (every fma explicit, no contraction).
    Runs both on this machine: with a hundred NaN gaps and a spike so that the fast paths hand over
    to the step functions too."""
    rng = np.random.default_rng(11)
    x = 30_000.0 * np.exp(np.cumsum(rng.standard_normal(20_000) * 1e-3))
    y = x * np.exp(np.cumsum(rng.standard_normal(len(x)) * 5e-4))
    high, low = x * (1 + rng.random(len(x)) * 1e-3), x * (1 - rng.random(len(x)) * 1e-3)
    gappy = x.copy()
    gappy[rng.integers(100, len(x), 100)] = np.nan
    gappy[5000] *= 1e4
    calls = []
    for s in (x, gappy):
        calls += [lambda s=s: F.ema(s, 14), lambda s=s: F.sma(s, 20), lambda s=s: F.wma(s, 20),
                  lambda s=s: F.rsi(s, 14), lambda s=s: F.macd(s), lambda s=s: F.bbands(s),
                  lambda s=s: F.stddev(s, 20, 1.5), lambda s=s: F.returns(s, 10),
                  lambda s=s: F.linear_regression(s, 14), lambda s=s: F.linear_regression(s, 40),
                  lambda s=s: F.beta(y, s, 5), lambda s=s: F.atr(high, low, s, 14),
                  lambda s=s: F.trange(high, low, s)]
    fast = [c() for c in calls]
    was_fast = core_features._use_baseline_loops(True)
    try:
        base = [c() for c in calls]
    finally:
        core_features._use_baseline_loops(False)
    assert core_features._use_baseline_loops(False) == was_fast
    for a, b in zip(fast, base):
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            assert np.array_equal(u, v, equal_nan=True)
            assert np.array_equal(np.signbit(u), np.signbit(v))


# ----------------------------------------------------------------------- Cython, without the GIL

DOWNSTREAM = r'''
# cython: language_level=3
from extrema._core.features cimport Ema, Atr, Vwap, BookImbalance, ScalarKernel, Rsi
import numpy as np

def drive(Ema ema, Rsi rsi, Atr atr, Vwap vwap, double[::1] prices):
    """Update each kernel for every price, without the GIL; return the last values."""
    cdef Py_ssize_t i
    cdef double e = 0, r = 0, a = 0, v = 0
    with nogil:
        for i in range(prices.shape[0]):
            e = ema.update_c(prices[i])
            r = rsi.update_c(prices[i])
            a = atr.update_c(prices[i] * 1.01, prices[i] * 0.99, prices[i])
            v = vwap.update_c(prices[i], 2.0)
    return e, r, a, v

def drive_generic(list kernels, double[::1] prices):
    """Any single-input kernel through the virtual ScalarKernel.update_c."""
    cdef Py_ssize_t i, j, n = len(kernels)
    cdef ScalarKernel k
    out = []
    for j in range(n):
        k = kernels[j]
        with nogil:
            for i in range(prices.shape[0]):
                k.update_c(prices[i])
        out.append(k.value)
    return out

def book(BookImbalance k, double[:, ::1] top):
    cdef double v
    with nogil:
        v = k.update_c(&top[0, 0], top.shape[0])
    return v
'''


@pytest.fixture(scope="module")
def downstream(tmp_path_factory):
    from test_cimport import compile_against_extrema
    return compile_against_extrema(DOWNSTREAM, "features_downstream", tmp_path_factory.mktemp("features"))


def test_cython_caller_updates_kernels_without_the_gil(downstream, walk):
    kernels = (F.Ema(10), F.Rsi(14), F.Atr(5), F.Vwap(20))
    got = downstream.drive(*kernels, walk)
    assert got == tuple(k.value for k in kernels)
    assert got[0] == F.ema(walk, 10)[-1] and got[1] == F.rsi(walk, 14)[-1]
    assert got[2] == F.atr(walk * 1.01, walk * 0.99, walk, 5)[-1]
    assert got[3] == pytest.approx(F.vwap(walk, np.full(len(walk), 2.0), 20)[-1], rel=1e-15)
    generic = [F.Sma(7), F.Macd(), F.BollingerBands(), F.ZScore(9), F.LinearRegression(6), F.LogReturns()]
    values = downstream.drive_generic(generic, walk)
    assert values[0] == F.sma(walk, 7)[-1]
    assert values[1] == tuple(a[-1] for a in F.macd(walk))
    assert values[2] == tuple(a[-1] for a in F.bbands(walk))
    assert values[3] == F.zscore(walk, 9)[-1]
    assert values[4] == tuple(a[-1] for a in F.linear_regression(walk, 6))
    assert values[5] == F.log_returns(walk)[-1]
    top = np.array([[99.0, 2.0, 101.0, 1.0], [98.0, 1.0, 102.0, 3.0]])
    assert downstream.book(F.BookImbalance(2), top) == pytest.approx(-1.0 / 7.0)
