from libc.stdint cimport int64_t
from extrema._core.book cimport OrderBook

# Feature kernels: each is a C struct of state plus nogil step functions in features.pyx, wrapped by
# a @cython.final cdef class. The class's update_c() is the compiled API (no GIL, no exceptions): it
# takes one observation and returns the kernel's current (primary) value, NaN until warm. The batch
# functions run the very same step function over numpy arrays, so batch and streaming agree bit for
# bit. Non-finite inputs are skipped (state and value unchanged, counted in `skipped`).


# Shared by every kernel: the current primary output and the update counters.
cdef struct KernelHead:
    double value           # NaN until warm
    int64_t count          # accepted updates
    int64_t skipped        # rejected updates: a non-finite (or, per kernel, invalid) input
    int64_t rebuilds       # O(period) rebuilds of running sums from the window (amortised O(1))


# The last `cap` accepted values. Once full, buf[pos] is the oldest (the next to be overwritten).
cdef struct Window:
    double *buf
    Py_ssize_t cap
    Py_ssize_t pos         # next slot to write
    Py_ssize_t n           # values held, <= cap


# TA-Lib's cancellation-free rolling variance (var.c): sums of (x - shift) and (x - shift)^2, the
# shift re-anchored on the window mean when the sums go stale. Used by StdDev and BollingerBands.
cdef struct ShiftedVar:
    double shift
    double s1
    double s2
    double inv_period
    int64_t period
    int64_t until_reseed
    bint anchored


# Rolling sum of non-negative terms with a running bound on its rounding error; rebuilt from the
# window when the bound exceeds a relative tolerance (so a huge term leaving cannot strand garbage).
cdef struct GuardedSum:
    double sum
    double err


# Rolling mean and variance of deviations from an anchor (a window value), with rounding-error bounds;
# rebuilt and re-anchored when a bound exceeds 1e-12 of the centred sum of squares. (ZScore: TA-Lib's
# variance errs by up to ~1e-8 after an outlier has passed, which is TA-Lib's to keep, not ours.)
cdef struct Moments:
    double k                # anchor
    double s1, s2           # sums of (x - k) and (x - k)^2
    double e1, e2           # their rounding-error bounds


# Rolling least squares over (x, y) deviations from an anchor (a window value, so a flat window is
# exactly 0), with a rounding-error bound per sum; the sums are rebuilt and re-anchored when any bound
# exceeds 1e-12 of what it is subtracted from.
cdef struct OlsSums:
    double kx, ky                       # anchors
    double sx, sy, sxx, syy, sxy        # sums of deviations from the anchors
    double ex, ey, exx, eyy, exy        # rounding-error bounds of the sums above


# The smoothing recurrences (EMA, MACD, RSI, ATR) step as v = fma(v, b, a * x): b the decay, a = 1 - b
# (see ex_features.h for why, and features.pyx for how that relates to TA-Lib's arithmetic).
cdef struct EmaState:
    KernelHead h
    int64_t period
    double a, b
    double seed

cdef struct SmaState:
    KernelHead h
    int64_t period
    double total                        # the sum of the window (of the values so far while it fills)
    Window w

cdef struct WmaState:
    KernelHead h
    int64_t period
    double divider
    double period_sum
    double period_sub
    double trailing
    int64_t until_reseed
    Window w

cdef struct RsiState:
    KernelHead h
    int64_t period
    double inv_period
    double a, b
    double gain
    double loss
    double prev

cdef struct MacdState:
    KernelHead h                        # h.value: the MACD line
    int64_t fast, slow, signal
    double coef[6]                      # a, b of the fast, the slow and the signal EMA
    double slow_seed, fast_seed
    double ema_fast, ema_slow
    double signal_sum                   # the signal EMA once seeded
    double signal_value, histogram

cdef struct StdDevState:
    KernelHead h
    double nbdev
    ShiftedVar v
    Window w

cdef struct BBandsState:
    KernelHead h                        # h.value: the middle band
    double nbdev_up, nbdev_dn
    double total
    double upper, lower
    ShiftedVar v
    Window w

cdef struct ZScoreState:
    KernelHead h
    Moments m
    Window w

cdef struct TrueRangeState:
    KernelHead h
    double prev_close

# ATR advances two bars per chain step (ex_features.h, ex_atr_body): the first bar of a pair is
# Wilder's step, the second is computed from the value before the pair.
cdef struct AtrState:
    KernelHead h
    int64_t period
    double alpha, beta, beta2           # beta = (period - 1) / period, alpha = 1 - beta, beta2 = beta * beta
    double anchor                       # the value before the current pair (phase 1)
    double pending                      # alpha * the true range of the pair's first bar (phase 1)
    int phase                           # 1 between the two bars of a pair
    double seed
    double prev_close
    double true_range                   # of the last accepted bar (NaN for the first)

cdef struct ReturnsState:
    KernelHead h
    int64_t period
    bint log
    Window w                            # the last period + 1 accepted prices

cdef struct RealizedVolState:
    KernelHead h
    double prev
    GuardedSum s
    Window w                            # squared log returns

cdef struct OlsState:
    KernelHead h                        # h.value: the slope
    double intercept, r2
    double inv_n                        # 1 / period
    OlsSums s
    Window wx
    Window wy

# LinearRegression: y against its position j = 0 (oldest) .. n-1 in the window. The x side is exact
# and constant (Sxx = n (n^2 - 1) / 12), so only three y sums are needed: of dy = y - anchor, of j * dy
# and of dy^2. Up to EX_LINREG_DIRECT_MAX (32) values they are computed afresh for every window,
# anchored on its newest value (as TA-Lib does; cheaper than the bookkeeping below at that size, and
# exact to ~p^2 ulps); above, they are slid in O(1) with TA-Lib's identity (every retained value moves
# down one position), each with a rounding-error bound that triggers a rebuild.
cdef struct LinRegState:
    KernelHead h                        # h.value: the slope
    double intercept, r2
    double ky                           # anchor: a value of the window, so a flat window is exactly 0
    double sy, q, syy                   # sums of dy, j * dy, dy^2
    double ey, eq, eyy                  # their rounding-error bounds
    double span                         # period - 1
    double half_span                    # (period - 1) / 2: the mean position
    double cxx, inv_cxx                 # sum of (j - mean)^2, exact, and its reciprocal
    double inv_n
    Window w

cdef struct BetaState:
    KernelHead h
    int64_t period
    double n
    double shift_x, shift_y
    double sxx, sxy, syy, sx, sy
    double leaving_xx, leaving_yy
    int64_t until_reseed
    Window wx                           # the last period + 1 prices of each series
    Window wy

cdef struct VwapState:
    KernelHead h
    bint rolling
    double pv, v                        # session: compensated sums (Neumaier)
    double pv_c, v_c
    GuardedSum rpv, rv                  # rolling sums
    Window wp
    Window wv

cdef struct FlowState:
    KernelHead h
    GuardedSum buy, sell
    Window w                            # signed sizes: +size a buy, -size a sell (-0.0 a zero sell)


# ---- classes --------------------------------------------------------------------------------------

cdef class Kernel:
    cdef KernelHead *_head              # points into the subclass's state struct


cdef class ScalarKernel(Kernel):
    # Virtual: the engine can drive any single-input kernel through this one signature.
    cdef double update_c(self, double x) noexcept nogil


cdef class Ema(ScalarKernel):
    cdef EmaState st

cdef class Sma(ScalarKernel):
    cdef SmaState st

cdef class Wma(ScalarKernel):
    cdef WmaState st

cdef class Rsi(ScalarKernel):
    cdef RsiState st

cdef class Macd(ScalarKernel):
    cdef MacdState st

cdef class BollingerBands(ScalarKernel):
    cdef BBandsState st

cdef class StdDev(ScalarKernel):
    cdef StdDevState st

cdef class ZScore(ScalarKernel):
    cdef ZScoreState st

cdef class RealizedVolatility(ScalarKernel):
    cdef RealizedVolState st

cdef class _ReturnsKernel(ScalarKernel):    # Returns and LogReturns: one state, one step
    cdef ReturnsState st

cdef class Returns(_ReturnsKernel):
    pass

cdef class LogReturns(_ReturnsKernel):
    pass

cdef class LinearRegression(ScalarKernel):
    cdef LinRegState st


cdef class TrueRange(Kernel):
    cdef TrueRangeState st
    cdef double update_c(self, double high, double low, double close) noexcept nogil

cdef class Atr(Kernel):
    cdef AtrState st
    cdef double update_c(self, double high, double low, double close) noexcept nogil

cdef class RollingOls(Kernel):
    cdef OlsState st
    cdef double update_c(self, double x, double y) noexcept nogil

cdef class Beta(Kernel):
    cdef BetaState st
    cdef double update_c(self, double x, double y) noexcept nogil

cdef class Vwap(Kernel):
    cdef VwapState st
    cdef double update_c(self, double price, double volume) noexcept nogil

cdef class TradeFlowImbalance(Kernel):
    cdef FlowState st
    cdef double update_c(self, double size, bint is_buy) noexcept nogil

cdef class Microprice(Kernel):
    cdef KernelHead st
    cdef double update_c(self, double bid, double bid_size, double ask, double ask_size) noexcept nogil
    cdef double update_book_c(self, OrderBook book) noexcept nogil

cdef class BookImbalance(Kernel):
    cdef KernelHead st
    cdef readonly Py_ssize_t levels
    # `top` is a C-contiguous (rows, 4) float64 array: bid price, bid size, ask price, ask size.
    cdef double update_c(self, const double *top, Py_ssize_t rows) noexcept nogil
    cdef double update_book_c(self, OrderBook book) noexcept nogil
