"""Feature-kernel suite: extrema.features against talipp (streaming), TA-Lib and numpy (batch).

Figures (see benches/README.md for what each one means):
  1. streaming update from Cython      kernel.update_c(x) in a nogil loop of a Cython module compiled
                                       against the installed package (ns per update; target <= 20 ns)
  2. streaming update from Python      kernel.update(x) in a Python for loop vs talipp's indicator.add(x)
                                       (ns per update; target: >= 15x faster than talipp)
  3. batch on 1M samples               features.xxx(array) vs TA-Lib's function on the same array
                                       (ms per call, outputs allocated by each call on both sides;
                                       target: at least as fast as TA-Lib), and vs a vectorised numpy
                                       formulation where one exists (timed on its own, after)

Contenders of one figure are timed interleaved (harness.measure); every batch output is cross-checked
against TA-Lib / numpy after timing, so a figure cannot come from a kernel that computed something else.
The batch figure runs with glibc's malloc told to keep freed memory (mallopt, see _steady_heap): with
its defaults, whether an 8-24 MB output comes back as fresh pages (page faults, ~1300 per call for a
3-output function at 1M) depends on what the *previous* contender freed, so one side's allocation
pattern was billed to the other. Page faults per call are recorded in each row's note.
"""

from __future__ import annotations

import ctypes
import importlib.util
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import Case

PEERS = ["ta-lib", "talipp"]

FULL = dict(batch=1_000_000, book_batch=200_000, stream_py=20_000, stream_cy=1_000_000)
QUICK = dict(batch=100_000, book_batch=20_000, stream_py=4_000, stream_cy=200_000)

CYTHON_TARGET_NS = 20.0
PYTHON_TARGET_RATIO = 15.0


# --------------------------------------------------------------------------------------- workload

class Workload:
    """Seeded market-like series: a GBM price walk with ticks, bars around it, a second correlated
    series, trade sizes and sides, and 5-level book snapshots."""

    def __init__(self, n, n_book, seed):
        rng = np.random.default_rng(seed)
        self.close = np.round(30_000.0 * np.exp(np.cumsum(rng.standard_normal(n) * 5e-4)), 2)
        spread = np.abs(rng.standard_normal(n)) * 3e-4 * self.close
        self.high = self.close + spread * rng.random(n)
        self.low = self.close - spread * rng.random(n)
        self.other = self.close * np.exp(np.cumsum(rng.standard_normal(n) * 2e-4))
        self.size = np.round(rng.exponential(0.5, n), 3)
        self.is_buy = rng.random(n) < 0.5
        self.bid = self.close - 0.01
        self.ask = self.close + 0.01
        self.bid_size = np.round(rng.exponential(2.0, n), 3)
        self.ask_size = np.round(rng.exponential(2.0, n), 3)
        m = n_book
        self.tops = np.empty((m, 5, 4))
        self.tops[:, :, 0] = self.close[:m, None] - 0.01 * np.arange(1, 6)
        self.tops[:, :, 2] = self.close[:m, None] + 0.01 * np.arange(1, 6)
        self.tops[:, :, 1] = np.round(rng.exponential(2.0, (m, 5)), 3)
        self.tops[:, :, 3] = np.round(rng.exponential(2.0, (m, 5)), 3)


# ---------------------------------------------------------------------------- 1. Cython streaming

DRIVER = r'''
# cython: language_level=3, boundscheck=False, wraparound=False
from extrema._core.features cimport (
    ScalarKernel, Ema, Sma, Wma, Rsi, Macd, BollingerBands, StdDev, ZScore, RealizedVolatility, Returns,
    LogReturns, LinearRegression, TrueRange, Atr, RollingOls, Beta, Vwap, TradeFlowImbalance, Microprice,
    BookImbalance)

# One loop per concrete class, so each call is the kernel's own update_c (through the module's vtable,
# as any cimporting module calls it); scalar_virtual goes through ScalarKernel's virtual slot.
''' + "\n".join(f'''
def {name.lower()}_loop({name} k, double[::1] x):
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            k.update_c(x[i])
''' for name in ("Ema", "Sma", "Wma", "Rsi", "Macd", "BollingerBands", "StdDev", "ZScore", "RealizedVolatility",
                 "Returns", "LogReturns", "LinearRegression")) + r'''

def scalar_virtual_loop(ScalarKernel k, double[::1] x):
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            k.update_c(x[i])

def truerange_loop(TrueRange k, double[::1] h, double[::1] l, double[::1] c):
    cdef Py_ssize_t i
    with nogil:
        for i in range(h.shape[0]):
            k.update_c(h[i], l[i], c[i])

def atr_loop(Atr k, double[::1] h, double[::1] l, double[::1] c):
    cdef Py_ssize_t i
    with nogil:
        for i in range(h.shape[0]):
            k.update_c(h[i], l[i], c[i])

def rollingols_loop(RollingOls k, double[::1] x, double[::1] y):
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            k.update_c(x[i], y[i])

def beta_loop(Beta k, double[::1] x, double[::1] y):
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            k.update_c(x[i], y[i])

def vwap_loop(Vwap k, double[::1] p, double[::1] v):
    cdef Py_ssize_t i
    with nogil:
        for i in range(p.shape[0]):
            k.update_c(p[i], v[i])

def tradeflowimbalance_loop(TradeFlowImbalance k, double[::1] s, unsigned char[::1] b):
    cdef Py_ssize_t i
    with nogil:
        for i in range(s.shape[0]):
            k.update_c(s[i], b[i] != 0)

def microprice_loop(Microprice k, double[::1] b, double[::1] bs, double[::1] a, double[::1] as_):
    cdef Py_ssize_t i
    with nogil:
        for i in range(b.shape[0]):
            k.update_c(b[i], bs[i], a[i], as_[i])

def bookimbalance_loop(BookImbalance k, double[:, :, ::1] tops):
    cdef Py_ssize_t i
    with nogil:
        for i in range(tops.shape[0]):
            k.update_c(&tops[i, 0, 0], tops.shape[1])
'''


def compile_driver(work: Path):
    """Cythonize and build the driver against the installed package only (tests/unit/test_cimport.py's
    recipe, at -O2), the way a user's Cython strategy is built."""
    import extrema
    pkg_dir = Path(extrema.__file__).parent
    pyx = work / "features_driver.pyx"
    pyx.write_text(DRIVER)
    c_file = work / "features_driver.c"
    subprocess.run([sys.executable, "-m", "cython", "-3", "-I", str(pkg_dir.parent), str(pyx), "-o", str(c_file)],
                   check=True, capture_output=True, text=True)
    so = work / ("features_driver" + sysconfig.get_config_var("EXT_SUFFIX"))
    cc = sysconfig.get_config_var("CC").split()
    import numpy
    subprocess.run(cc + ["-shared", "-fPIC", "-O2", f"-I{sysconfig.get_paths()['include']}",
                         f"-I{pkg_dir / '_core'}", f"-I{numpy.get_include()}", str(c_file), "-o", str(so)],
                   check=True, capture_output=True, text=True)
    spec = importlib.util.spec_from_file_location("features_driver", so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cython_streaming(ctx, p, F, w) -> list:
    n = p["stream_cy"]
    x = w.close[:n]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="extrema-features-bench-") as tmp:
        try:
            drv = compile_driver(Path(tmp))
        except (subprocess.CalledProcessError, OSError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            ctx.note(f"Cython driver did not compile, figure 1 skipped: {detail[-500:]}")
            return []
    ctx.log(f"compiled the Cython driver in {time.perf_counter() - t0:.1f} s")
    sides = w.is_buy[:n].astype(np.uint8)
    nb = min(n, len(w.tops))
    kernels = {
        # label: (factory, loop, args, n_updates)
        "EMA(14)": (lambda: F.Ema(14), drv.ema_loop, (x,), n),
        "SMA(20)": (lambda: F.Sma(20), drv.sma_loop, (x,), n),
        "WMA(20)": (lambda: F.Wma(20), drv.wma_loop, (x,), n),
        "RSI(14)": (lambda: F.Rsi(14), drv.rsi_loop, (x,), n),
        "MACD(12,26,9)": (lambda: F.Macd(12, 26, 9), drv.macd_loop, (x,), n),
        "Bollinger(20,2)": (lambda: F.BollingerBands(20, 2.0, 2.0), drv.bollingerbands_loop, (x,), n),
        "StdDev(20)": (lambda: F.StdDev(20), drv.stddev_loop, (x,), n),
        "ZScore(20)": (lambda: F.ZScore(20), drv.zscore_loop, (x,), n),
        "RealizedVol(20)": (lambda: F.RealizedVolatility(20), drv.realizedvolatility_loop, (x,), n),
        "Returns(1)": (lambda: F.Returns(1), drv.returns_loop, (x,), n),
        "LogReturns(1)": (lambda: F.LogReturns(1), drv.logreturns_loop, (x,), n),
        "LinearRegression(14)": (lambda: F.LinearRegression(14), drv.linearregression_loop, (x,), n),
        "TrueRange": (lambda: F.TrueRange(), drv.truerange_loop, (w.high[:n], w.low[:n], x), n),
        "ATR(14)": (lambda: F.Atr(14), drv.atr_loop, (w.high[:n], w.low[:n], x), n),
        "RollingOls(20)": (lambda: F.RollingOls(20), drv.rollingols_loop, (w.other[:n], x), n),
        "Beta(5)": (lambda: F.Beta(5), drv.beta_loop, (w.other[:n], x), n),
        "VWAP session": (lambda: F.Vwap(), drv.vwap_loop, (x, w.size[:n]), n),
        "VWAP rolling(100)": (lambda: F.Vwap(100), drv.vwap_loop, (x, w.size[:n]), n),
        "TradeFlowImbalance(100)": (lambda: F.TradeFlowImbalance(100), drv.tradeflowimbalance_loop,
                                    (w.size[:n], sides), n),
        "Microprice": (lambda: F.Microprice(), drv.microprice_loop,
                       (w.bid[:n], w.bid_size[:n], w.ask[:n], w.ask_size[:n]), n),
        "BookImbalance(5 levels)": (lambda: F.BookImbalance(5), drv.bookimbalance_loop, (w.tops[:nb],), nb),
        "EMA(14) via virtual ScalarKernel": (lambda: F.Ema(14), drv.scalar_virtual_loop, (x,), n),
    }
    cases = {label: Case(lambda k, loop=loop, args=args: loop(k, *args), count, factory)
             for label, (factory, loop, args, count) in kernels.items()}
    t = ctx.measure(cases)
    # The driver really updated the kernels: a fresh kernel driven once equals the batch function.
    check = F.Ema(14)
    drv.ema_loop(check, x)
    if check.value != F.ema(x, 14)[-1]:
        ctx.note("MISMATCH: the Cython-driven EMA differs from the batch EMA")
    rows = []
    for label, timing in t.items():
        rows.append(ctx.row(f"stream from Cython: {label}", timing.median, "ns/update", None, None,
                            target=f"<= {CYTHON_TARGET_NS:.0f} ns", target_met=timing.median <= CYTHON_TARGET_NS,
                            note=f"{kernels[label][3]:,} dependent updates per repeat in one nogil loop; "
                                 f"median of {len(timing.samples)}, spread {timing.spread:.0%}"))
    return rows


# ---------------------------------------------------------------------------- 2. Python streaming

def _python_streaming(ctx, p, F, w) -> list:
    try:
        import talipp
        from talipp import indicators as ti
        from talipp.ohlcv import OHLCV
        try:
            from importlib.metadata import version as _dist_version
            version = _dist_version("talipp")
        except Exception:  # noqa: BLE001
            version = getattr(talipp, "__version__", "?")
    except ImportError as exc:
        ctx.note(f"talipp not importable ({exc}); figure 2 has no peer. Install it with: "
                 "python benches/run.py features --install-peers")
        ti = None
    n = p["stream_py"]
    xs = w.close[:n].tolist()
    bars = list(zip(w.high[:n].tolist(), w.low[:n].tolist(), xs))
    trades = list(zip(xs, w.size[:n].tolist()))
    if ti is not None:
        t0 = time.perf_counter()
        ohlcv = [OHLCV(c, h, l, c, v) for (h, l, c), v in zip(bars, w.size[:n].tolist())]
        ctx.log(f"peer: talipp {version}; built {n:,} OHLCV objects in {time.perf_counter() - t0:.2f} s (not timed)")

    def one_input(update, values):
        for v in values:
            update(v)

    def bar_input(update, values):
        for h, l, c in values:
            update(h, l, c)

    def two_inputs(update, values):
        for a, b in values:
            update(a, b)

    def talipp_add(ind, values):
        add = ind.add
        for v in values:
            add(v)

    def empty(values):
        for v in values:
            pass

    specs = [
        # label, extrema factory, extrema loop, inputs, talipp factory, talipp inputs, talipp name
        ("EMA(14)", lambda: F.Ema(14), one_input, xs, lambda: ti.EMA(14), xs, "EMA"),
        ("SMA(20)", lambda: F.Sma(20), one_input, xs, lambda: ti.SMA(20), xs, "SMA"),
        ("WMA(20)", lambda: F.Wma(20), one_input, xs, lambda: ti.WMA(20), xs, "WMA"),
        ("RSI(14)", lambda: F.Rsi(14), one_input, xs, lambda: ti.RSI(14), xs, "RSI"),
        ("MACD(12,26,9)", lambda: F.Macd(12, 26, 9), one_input, xs, lambda: ti.MACD(12, 26, 9), xs, "MACD"),
        ("Bollinger(20,2)", lambda: F.BollingerBands(20, 2.0, 2.0), one_input, xs, lambda: ti.BB(20, 2.0), xs, "BB"),
        ("StdDev(20)", lambda: F.StdDev(20), one_input, xs, lambda: ti.StdDev(20), xs, "StdDev"),
        ("ATR(14)", lambda: F.Atr(14), bar_input, bars, lambda: ti.ATR(14), "ohlcv", "ATR"),
        ("Returns(10) [talipp ROC]", lambda: F.Returns(10), one_input, xs, lambda: ti.ROC(10), xs, "ROC"),
        ("VWAP rolling(20) [talipp VWMA]", lambda: F.Vwap(20), two_inputs, trades, lambda: ti.VWMA(20), "ohlcv", "VWMA"),
        ("VWAP session [talipp VWAP]", lambda: F.Vwap(), two_inputs, trades, lambda: ti.VWAP(), "ohlcv", "VWAP"),
    ]
    cases = {"loop": Case(empty, n, lambda: xs)}
    for label, make, loop, values, tmake, tvalues, _ in specs:
        cases[f"x:{label}"] = Case(lambda st, loop=loop: loop(*st), n,
                                   lambda make=make, values=values: (make().update, values))
        if ti is not None:
            tv = ohlcv if isinstance(tvalues, str) else tvalues
            cases[f"t:{label}"] = Case(lambda st: talipp_add(*st), n, lambda tmake=tmake, tv=tv: (tmake(), tv))
    t = ctx.measure(cases)
    rows = []
    for label, *_, tname in specs:
        ex = t[f"x:{label}"]
        note = (f"{n:,} updates per repeat from a Python for loop (its own cost, {t['loop'].median:.0f} ns/op, "
                f"is included on both sides); median of {len(ex.samples)}, spread {ex.spread:.0%}")
        if ti is None:
            rows.append(ctx.row(f"stream from Python: {label}", ex.median, "ns/update", None, None,
                                target=f">= {PYTHON_TARGET_RATIO:.0f}x talipp", target_met=None, note=note))
            continue
        peer = t[f"t:{label}"]
        if tname in ("ATR", "VWMA", "VWAP"):
            note += "; talipp is fed prebuilt OHLCV objects (their construction is not timed)"
        if tname == "VWAP":
            note += "; talipp's VWAP weights the typical price (h+l+c)/3, extrema's the trade price"
        rows.append(ctx.row(f"stream from Python: {label}", ex.median, "ns/update", f"talipp {tname}.add",
                            peer.median, target=f">= {PYTHON_TARGET_RATIO:.0f}x talipp",
                            target_met=peer.median / ex.median >= PYTHON_TARGET_RATIO, note=note))
    return rows


# --------------------------------------------------------------------------------------- 3. batch

def _numpy_sma(x, p):
    c = np.cumsum(np.r_[0.0, x])
    return (c[p:] - c[:-p]) / p


def _numpy_std(x, p):
    return np.lib.stride_tricks.sliding_window_view(x, p).std(axis=1)


def _numpy_slope(x, p):
    pos = np.arange(p) - (p - 1) / 2.0
    return np.convolve(x, pos[::-1], "valid") / np.sum(pos * pos)


def _numpy_rolling_sum(a, p):
    c = np.cumsum(np.r_[0.0, a])
    return c[p:] - c[:-p]


def _numpy_ols(x, y, p):
    s = lambda a: _numpy_rolling_sum(a, p)   # noqa: E731
    sx, sy, sxx, sxy, syy = s(x), s(y), s(x * x), s(x * y), s(y * y)
    cxx, cxy, cyy = sxx - sx * sx / p, sxy - sx * sy / p, syy - sy * sy / p
    slope = cxy / cxx
    return slope, (sy - slope * sx) / p, cxy * cxy / (cxx * cyy)


def _numpy_zscore(x, p):
    win = np.lib.stride_tricks.sliding_window_view(x, p)
    return (x[p - 1:] - win.mean(axis=1)) / win.std(axis=1)


def _steady_heap(ctx) -> bool:
    """Keep freed memory on the heap for the rest of the process (glibc mallopt: no mmap for blocks
    under 1 GiB, no trimming under 2 GiB), so that every call of the batch figure finds its outputs'
    pages already mapped, whichever contender freed them. Returns False where this is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 1 << 30) == 1 and libc.mallopt(m_trim_threshold, (1 << 31) - 1) == 1
    except (OSError, AttributeError):
        ok = False
    ctx.log("heap: glibc mallopt(M_MMAP_THRESHOLD=1 GiB, M_TRIM_THRESHOLD=2 GiB) for the batch figure" if ok
            else "heap: mallopt unavailable (not glibc); batch figures include page faults of fresh outputs")
    return ok


def _minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _counted(fn, faults: list):
    """A Case body that also records the page faults of each call."""
    def body(st):
        before = _minflt()
        fn()
        faults.append(_minflt() - before)
    return body


def _batch(ctx, p, F, w) -> list:
    steady = _steady_heap(ctx)
    try:
        import talib
        ctx.log(f"peer: TA-Lib {talib.__version__} (C library {talib.__ta_version__.decode()})")
    except ImportError as exc:
        talib = None
        ctx.note(f"TA-Lib not importable ({exc}); figure 3 has no TA-Lib peer. Install it with: "
                 "python benches/run.py features --install-peers")
    n = p["batch"]
    x, h, l, o = w.close[:n], w.high[:n], w.low[:n], w.other[:n]
    size, buy = w.size[:n], w.is_buy[:n]
    tops = w.tops[:p["book_batch"]]
    label_n = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
    specs = [
        # label, extrema call, TA-Lib call or None, numpy call or None, compare (ours, theirs) -> arrays
        ("EMA(14)", lambda: F.ema(x, 14), talib and (lambda: talib.EMA(x, 14)), None),
        ("SMA(20)", lambda: F.sma(x, 20), talib and (lambda: talib.SMA(x, 20)), lambda: _numpy_sma(x, 20)),
        ("WMA(20)", lambda: F.wma(x, 20), talib and (lambda: talib.WMA(x, 20)),
         lambda: np.convolve(x, np.arange(20, 0, -1.0), "valid") / 210.0),
        ("RSI(14)", lambda: F.rsi(x, 14), talib and (lambda: talib.RSI(x, 14)), None),
        ("MACD(12,26,9)", lambda: F.macd(x, 12, 26, 9), talib and (lambda: talib.MACD(x, 12, 26, 9)), None),
        ("BBANDS(20,2)", lambda: F.bbands(x, 20, 2.0, 2.0), talib and (lambda: talib.BBANDS(x, 20, 2.0, 2.0)),
         lambda: (_numpy_sma(x, 20) + 2 * _numpy_std(x, 20), _numpy_sma(x, 20), _numpy_sma(x, 20) - 2 * _numpy_std(x, 20))),
        ("STDDEV(20)", lambda: F.stddev(x, 20), talib and (lambda: talib.STDDEV(x, 20)), lambda: _numpy_std(x, 20)),
        ("ATR(14)", lambda: F.atr(h, l, x, 14), talib and (lambda: talib.ATR(h, l, x, 14)), None),
        ("TRANGE", lambda: F.trange(h, l, x), talib and (lambda: talib.TRANGE(h, l, x)),
         lambda: np.maximum.reduce([h[1:] - l[1:], np.abs(x[:-1] - h[1:]), np.abs(x[:-1] - l[1:])])),
        ("ROCP(10) = returns", lambda: F.returns(x, 10), talib and (lambda: talib.ROCP(x, 10)),
         lambda: x[10:] / x[:-10] - 1.0),
        ("BETA(5)", lambda: F.beta(o, x, 5), talib and (lambda: talib.BETA(o, x, 5)), None),
        ("LINEARREG(14): slope + intercept (+ r2)", lambda: F.linear_regression(x, 14),
         talib and (lambda: (talib.LINEARREG_SLOPE(x, 14), talib.LINEARREG_INTERCEPT(x, 14))),
         lambda: _numpy_slope(x, 14)),
        ("log returns", lambda: F.log_returns(x), None, lambda: np.log(x[1:] / x[:-1])),
        ("z-score(20)", lambda: F.zscore(x, 20), None, lambda: _numpy_zscore(x, 20)),
        ("realized vol(20)", lambda: F.realized_volatility(x, 20), None,
         lambda: np.sqrt(_numpy_rolling_sum(np.log(x[1:] / x[:-1]) ** 2, 20))),
        ("rolling OLS(20)", lambda: F.rolling_ols(o, x, 20), None, lambda: _numpy_ols(o, x, 20)),
        ("VWAP rolling(100)", lambda: F.vwap(x, size, 100), None,
         lambda: _numpy_rolling_sum(x * size, 100) / _numpy_rolling_sum(size, 100)),
        ("trade-flow imbalance(100)", lambda: F.trade_flow_imbalance(size, buy, 100), None,
         lambda: _numpy_rolling_sum(np.where(buy, size, -size), 100) / _numpy_rolling_sum(size, 100)),
        ("microprice", lambda: F.microprice(w.bid[:n], w.bid_size[:n], w.ask[:n], w.ask_size[:n]), None,
         lambda: (w.bid[:n] * w.ask_size[:n] + w.ask[:n] * w.bid_size[:n]) / (w.bid_size[:n] + w.ask_size[:n])),
        (f"book imbalance, 5 levels ({len(tops) // 1000}k snapshots)", lambda: F.book_imbalance(tops, 5), None,
         lambda: (lambda b, a: (b - a) / (b + a))(np.nansum(tops[:, :, 1], axis=1), np.nansum(tops[:, :, 3], axis=1))),
    ]
    ref = _load_reference(ctx)
    models = {
        "log returns": (lambda: ref.LogReturns(1), (x,), 2), "z-score(20)": (lambda: ref.ZScore(20), (x,), 20),
        "realized vol(20)": (lambda: ref.RealizedVolatility(20), (x,), 21),
        "rolling OLS(20)": (lambda: ref.RollingOls(20), (o, x), 20), "VWAP rolling(100)": (lambda: ref.Vwap(100), (x, size), 100),
        "trade-flow imbalance(100)": (lambda: ref.TradeFlowImbalance(100), (size, buy), 100),
    }
    rows = []
    repeats = max(ctx.repeats, 5 if ctx.quick else 15)
    for label, ours, theirs, numpy_ref in specs:
        # extrema and its peer interleaved, call for call; the numpy formulation (10-400 ms, heavy on
        # temporaries) timed on its own afterwards, so that it never runs between the two.
        faults = {"extrema": [], "talib": []}
        cases = {"extrema": Case(_counted(ours, faults["extrema"]), 1)}
        if theirs:
            cases["talib"] = Case(_counted(theirs, faults["talib"]), 1)
        t = ctx.measure(cases, repeats=repeats)
        if numpy_ref:
            t.update(ctx.measure({"numpy": Case(lambda st, f=numpy_ref: f(), 1)}))
        if theirs:
            _cross_check(ctx, label, ours(), theirs(), 1e-12 * float(np.max(np.abs(x))))
        elif ref is not None and label in models:
            make, cols, warm = models[label]
            _check_tail(ctx, label, ours(), make(), cols, warm)
        ex = t["extrema"]
        note = f"median of {len(ex.samples)}, spread {ex.spread:.0%}"
        flt = lambda k: max(sorted(faults[k])[len(faults[k]) // 2], 0)   # noqa: E731 (median, timed calls)
        note += f"; page faults per call: extrema {flt('extrema')}"
        if theirs:
            note += f", TA-Lib {flt('talib')}"
        if not steady:
            note += " (default malloc)"
        if numpy_ref:
            note += f"; numpy reference {t['numpy'].median / 1e6:.2f} ms ({t['numpy'].median / ex.median:.1f}x extrema's time)"
        elif theirs:
            note += "; numpy: no vectorised form (a recursion)"
        figure = f"batch {label_n}: {label}"
        if theirs:
            rows.append(ctx.row(figure, ex.median / 1e6, "ms", "TA-Lib", t["talib"].median / 1e6,
                                target="<= TA-Lib time", target_met=ex.median <= t["talib"].median, note=note))
        else:
            rows.append(ctx.row(figure, ex.median / 1e6, "ms", "numpy", t["numpy"].median / 1e6, note=note))
    return rows


def _as_tuple(a):
    return a if isinstance(a, tuple) else (a,)


def _cross_check(ctx, label, ours, theirs, atol):
    """Every output must equal TA-Lib's within 1e-9 relative, or `atol` (1e-12 of the input's
    magnitude, for outputs that cross zero and for TA-Lib's own rounding)."""
    for a, b in zip(_as_tuple(ours), _as_tuple(theirs)):
        if not (np.array_equal(np.isnan(a), np.isnan(b)) and np.allclose(a, b, rtol=1e-9, atol=atol, equal_nan=True)):
            ctx.note(f"MISMATCH: {label}: extrema differs from TA-Lib")


def _check_tail(ctx, label, ours, model, columns, warm, tail=600):
    """A windowed kernel's last outputs depend only on its last inputs: run the plain-Python model
    (tests/models/features_reference.py) over the tail and compare (1e-9, scale-aware)."""
    if model is None:
        return
    expected = np.array([model.update(*row) for row in zip(*(c[-tail:] for c in columns))], dtype=float)
    got = np.column_stack(_as_tuple(ours))[-tail:] if isinstance(ours, tuple) else ours[-tail:]
    expected, got = expected[warm:], got[warm:]
    scale = np.max(np.abs(expected), axis=0)
    if not np.allclose(got, expected, rtol=1e-9, atol=1e-9 * np.maximum(scale, 1e-300)):
        ctx.note(f"MISMATCH: {label}: extrema differs from the plain-Python reference")


def _load_reference(ctx):
    """tests/models/features_reference.py, by path (the tests' oracle; not a package)."""
    path = Path(ctx.repo) / "tests" / "models" / "features_reference.py"
    try:
        spec = importlib.util.spec_from_file_location("features_reference", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except Exception as exc:  # noqa: BLE001
        ctx.note(f"plain-Python reference unavailable ({exc}); non-TA-Lib batch outputs are not cross-checked")
        return None


# --------------------------------------------------------------------------------------------- run

def run(ctx) -> list[dict]:
    try:
        from extrema import features as F
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"features suite: extrema.features is not importable ({type(exc).__name__}: {exc}); "
                         "build it first: pip install -e .") from exc
    p = QUICK if ctx.quick else FULL
    t0 = time.perf_counter()
    w = Workload(max(p["batch"], p["stream_cy"]), p["book_batch"], ctx.seed)
    ctx.log(f"workload: {len(w.close):,} prices (GBM around 30,000, tick 0.01), bars, a second series, trades, "
            f"{len(w.tops):,} 5-level books; generated in {time.perf_counter() - t0:.1f} s")
    rows = []
    rows += _cython_streaming(ctx, p, F, w)
    rows += _python_streaming(ctx, p, F, w)
    rows += _batch(ctx, p, F, w)
    return rows
