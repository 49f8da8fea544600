"""Feature kernels: streaming O(1) updates and batch (numpy in, numpy out, no GIL) forms of the same maths.

    ema = Ema(14)                  # streaming: one observation at a time
    ema.update(101.5)              # -> the current value, NaN until warm
    ema.value, ema.is_ready, ema.count, ema.skipped
    ema.reset()

    out = ema_batch = features.ema(prices, 14)     # batch: the same step function over an array

From Cython, `update_c()` is the compiled API: `cdef double v = k.update_c(x)` without the GIL
(see features.pxd). Single-input kernels share the virtual `ScalarKernel.update_c(double)`.

Conventions (every kernel)
--------------------------
* Warm-up: the value is NaN until the kernel has seen enough accepted inputs (per class below); then
  `is_ready` is True. Where TA-Lib has the indicator, the warm-up, the seeding and the definition are
  TA-Lib's (C library 0.6+/0.8 default compatibility, no unstable period), so the first non-NaN index
  of a batch equals TA-Lib's lookback and the values agree to 1e-9 (tests/property). STDDEV, BBANDS,
  TRANGE, ROCP and BETA do TA-Lib's arithmetic operation for operation (bit-identical). The
  recurrences are rearranged so that each step puts one operation on the dependency chain -- EMA,
  MACD, RSI: v = fma(v, b, a * x); ATR: two bars per fma; SMA, WMA: one addition per running sum --
  which agrees with TA-Lib to a few ulps of the inputs' scale; LINEARREG sums windows of up to 32
  values afresh, as TA-Lib does. Every fused multiply-add is explicit and correctly rounded (the FMA
  instruction, or libm's fma() where the CPU lacks it), so the results are the same on every machine.
* Bad input is skipped, never propagated: an update with a NaN or +-inf input (or an input invalid
  for the kernel, e.g. a negative volume, a non-positive price for log returns) leaves the state and
  the value unchanged and increments `skipped`. A batch holds the previous value at that index. So a
  gap in the data costs one sample, not the rest of the series (TA-Lib's C functions instead poison
  every later output; its Python wrapper skips only *leading* NaNs, which this matches exactly).
* Batch and streaming run the same nogil step function: batch(x)[i] is bit-identical to the value
  after feeding x[0..i] to a fresh streaming kernel.
* Running sums that subtract (rolling windows) keep their rounding under control: TA-Lib's own
  re-anchoring where TA-Lib has the indicator, an explicit rounding-error bound elsewhere (rebuild the
  sums from the window when the bound passes 1e-12 of the quantity it would corrupt).
"""
cimport cython
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free
from libc.math cimport NAN, isnan, sqrt, log, fabs, fma

import numpy as np
cimport numpy as cnp

from extrema._core.book cimport OrderBook

cnp.import_array()

cdef extern from *:
    """
    /* Type-generic C99 classification, without libm's long-double prototypes. */
    static inline int ex_isfinite(double x) { return __builtin_isfinite(x); }
    static inline int ex_signbit(double x) { return __builtin_signbit(x) != 0; }
    /* TA-Lib's `if (v > greatest) greatest = v`, written so the compiler emits maxsd (same result,
       NaN included) instead of a branch that real prices mispredict half the time. */
    static inline double ex_greater(double greatest, double v) { return v > greatest ? v : greatest; }
    /* Compile-time constants, so the compiler folds them into the loops. */
    #define EX_UNIT_ROUNDOFF 1.1102230246251566e-16
    #define EX_REBUILD_TOLERANCE 1e-12
    #define EX_TA_EPSILON 1e-14
    """
    bint ex_isfinite(double x) noexcept nogil
    bint ex_signbit(double x) noexcept nogil
    double ex_greater(double greatest, double v) noexcept nogil
    # A bound on the relative rounding error of one floating-point operation (2**-53, rounded up).
    const double UNIT_ROUNDOFF "EX_UNIT_ROUNDOFF"
    # Rebuild a running sum when its accumulated rounding bound exceeds this fraction of what it feeds.
    const double REBUILD_TOLERANCE "EX_REBUILD_TOLERANCE"
    # TA-Lib's TA_IS_ZERO band (TA_EPSILON), used where TA-Lib uses it (BETA's zero-price guard).
    const double TA_EPSILON "EX_TA_EPSILON"

# The batch hot loops (ex_features.h): vectorised maps (SSE2, or AVX2 where the CPU has it) and the
# recurrences with explicit fused multiply-adds (the FMA instruction where the CPU has it, libm's
# correctly rounded fma() otherwise). Same per-element operations as the step functions, which call
# libm's fma(), so the same bits.
cdef extern from "ex_features.h":
    ctypedef struct ex_pair_state:
        double value, anchor, pending
        int phase
    int ex_force_baseline(int baseline) noexcept nogil
    Py_ssize_t ex_ema(const double *x, double *out, Py_ssize_t n, double *v_io, double a, double b) noexcept nogil
    Py_ssize_t ex_macd(const double *x, double *line_out, double *sig_out, double *hist_out, Py_ssize_t n,
                       double *ef_io, double *es_io, double *sig_io, const double *k) noexcept nogil
    Py_ssize_t ex_rsi(const double *x, double *out, Py_ssize_t n, double *prev_io, double *gain_io,
                      double *loss_io, double *value_io, double a, double b) noexcept nogil
    Py_ssize_t ex_atr(const double *hi, const double *lo, const double *cl, double *out, Py_ssize_t n,
                      ex_pair_state *st, double a, double b, double b2) noexcept nogil
    Py_ssize_t ex_trange_blocks(const double *hi, const double *lo, const double *cl, double *out,
                                Py_ssize_t n) noexcept nogil
    Py_ssize_t ex_sma(const double *x, double *out, Py_ssize_t start, Py_ssize_t n, Py_ssize_t p,
                      double *total_io) noexcept nogil
    ctypedef struct ex_beta_state:
        double shift_x, shift_y, sxx, sxy, syy, sx, sy, leaving_xx, leaving_yy
        int64_t until, rebuilds
    ctypedef void (*ex_beta_rebuild_fn)(void *owner, const double *x, const double *y,
                                        ex_beta_state *st) noexcept nogil
    enum: EX_BETA_MAX_PERIOD
    Py_ssize_t ex_beta(const double *x, const double *y, double *out, Py_ssize_t start, Py_ssize_t n,
                       Py_ssize_t p, ex_beta_state *st, ex_beta_rebuild_fn rebuild, void *owner) noexcept nogil
    Py_ssize_t ex_svar(const double *x, double *var_out, double *mean_out, double *upper, Py_ssize_t start,
                       Py_ssize_t n, Py_ssize_t p, double *shift_io, double *s1_io, double *s2_io, double *total_io,
                       int64_t *until_io, int64_t *rebuilds_io, double inv, int mode, double f1,
                       double f2) noexcept nogil
    int EX_SVAR_STDDEV, EX_SVAR_BBANDS
    const Py_ssize_t LINREG_DIRECT_MAX "EX_LINREG_DIRECT_MAX"
    Py_ssize_t ex_linreg_direct(const double *x, double *slope, double *icpt, double *r2, Py_ssize_t start,
                                Py_ssize_t n, Py_ssize_t p, const double *c) noexcept nogil
    Py_ssize_t ex_rocp(const double *x, double *out, Py_ssize_t start, Py_ssize_t n, Py_ssize_t p) noexcept nogil
    Py_ssize_t ex_wma(const double *x, double *out, Py_ssize_t start, Py_ssize_t n, Py_ssize_t p,
                      double *psum_io, double *psub_io, int64_t *until_io, int64_t *rebuilds_io,
                      double divider) noexcept nogil

MAX_PERIOD = 1 << 24


def _use_baseline_loops(bint baseline):
    """Testing hook: make the batch functions run their baseline loops (SSE2, libm's fma) instead of
    the AVX2 + FMA ones chosen for this CPU (False: back to the CPU's choice). Returns whether the
    AVX2 + FMA loops were in use. Both must give the same bits (tests/unit/test_features.py)."""
    return bool(ex_force_baseline(baseline))


# ---------------------------------------------------------------------------------------------------
# Window: the last `cap` accepted values, in a ring
# ---------------------------------------------------------------------------------------------------

cdef inline int win_init(Window *w, Py_ssize_t cap) noexcept nogil:
    w.buf = <double *>calloc(cap, sizeof(double))
    w.cap = cap
    w.pos = 0
    w.n = 0
    return 0 if w.buf != NULL else -1


cdef inline void win_free(Window *w) noexcept nogil:
    free(w.buf)
    w.buf = NULL


cdef inline void win_clear(Window *w) noexcept nogil:
    w.pos = 0
    w.n = 0


cdef inline double win_push(Window *w, double x) noexcept nogil:
    """Append x; return the value it replaced -- the oldest -- if the window was full (else garbage)."""
    cdef double old = w.buf[w.pos]
    w.buf[w.pos] = x
    w.pos += 1
    if w.pos == w.cap:
        w.pos = 0
    if w.n < w.cap:
        w.n += 1
    return old


cdef inline double win_oldest(const Window *w) noexcept nogil:
    return w.buf[w.pos] if w.n == w.cap else w.buf[0]


cdef inline double win_at(const Window *w, Py_ssize_t i) noexcept nogil:
    """The i-th value held, 0 = oldest."""
    cdef Py_ssize_t j = i
    if w.n == w.cap:
        j += w.pos
        if j >= w.cap:
            j -= w.cap
    return w.buf[j]


cdef inline bint win_full(const Window *w) noexcept nogil:
    return w.n == w.cap


cdef inline void head_init(KernelHead *h) noexcept nogil:
    h.value = NAN
    h.count = 0
    h.skipped = 0
    h.rebuilds = 0


cdef inline double head_skip(KernelHead *h) noexcept nogil:
    h.skipped += 1
    return h.value


# ---------------------------------------------------------------------------------------------------
# GuardedSum: a rolling sum of terms with a bound on its accumulated rounding error
# ---------------------------------------------------------------------------------------------------

cdef inline void gsum_clear(GuardedSum *g) noexcept nogil:
    g.sum = 0.0
    g.err = 0.0


cdef inline void gsum_add(GuardedSum *g, double t) noexcept nogil:
    # Each rounded operation errs by at most UNIT_ROUNDOFF * |result|.
    g.sum += t
    g.err += UNIT_ROUNDOFF * fabs(g.sum)


cdef inline bint gsum_stale(const GuardedSum *g) noexcept nogil:
    return g.err > REBUILD_TOLERANCE * fabs(g.sum)


# ---------------------------------------------------------------------------------------------------
# ShiftedVar: TA-Lib's rolling variance (ta_codegen/input/var/var.c, issues #118 and #243)
# ---------------------------------------------------------------------------------------------------

cdef inline void svar_init(ShiftedVar *v, int64_t period) noexcept nogil:
    v.period = period
    v.inv_period = 1.0 / <double>period
    v.shift = 0.0
    v.s1 = 0.0
    v.s2 = 0.0
    v.until_reseed = 32 * period
    v.anchored = False


cdef inline void svar_add(ShiftedVar *v, double x) noexcept nogil:
    """Account for a value while the window fills (TA-Lib anchors on the first window value)."""
    cdef double d
    if not v.anchored:
        v.shift = x
        v.anchored = True
    d = x - v.shift
    v.s1 += d
    v.s2 += d * d


cdef double svar_reseed(ShiftedVar *v, const Window *w) noexcept nogil:
    """Re-anchor the shift on the window mean and rebuild the sums (a fresh two-pass); returns the
    window's variance, floored to 0 under 1e-12 of its scale (var.c's only dead-zone)."""
    cdef Py_ssize_t i, n = w.n
    cdef double acc = 0.0, e, m1, var
    v.until_reseed = 32 * v.period
    for i in range(n):
        acc += win_at(w, i)
    v.shift = acc * v.inv_period
    v.s1 = 0.0
    v.s2 = 0.0
    for i in range(n):
        e = win_at(w, i) - v.shift
        v.s1 += e
        v.s2 += e * e
    m1 = v.s1 * v.inv_period
    var = v.s2 * v.inv_period - m1 * m1
    if var < 0.000000000001 * (v.s2 * v.inv_period):
        var = 0.0
    return var


cdef inline double svar_step(ShiftedVar *v, double x, const Window *w, int64_t *rebuilds) noexcept nogil:
    """x has just been pushed into the full window w: return the window's variance and take the
    oldest value (w's oldest, which leaves on the next push) out of the sums -- var.c's loop body."""
    cdef double d, m1, var, oldest
    d = x - v.shift
    v.s1 += d
    v.s2 += d * d
    m1 = v.s1 * v.inv_period
    var = v.s2 * v.inv_period - m1 * m1
    oldest = win_oldest(w)
    d = oldest - v.shift
    v.s1 -= d
    d *= d
    v.s2 -= d
    v.until_reseed -= 1
    # Re-anchor when the variance has shrunk below 1e-6 of the mean squared deviation it is
    # extracted from, when the value that left dwarfs what remains, or every 32 windows (var.c).
    if var < 0.000001 * (v.s2 * v.inv_period) or d > 1000000.0 * v.s2 or v.until_reseed <= 0:
        var = svar_reseed(v, w)
        rebuilds[0] += 1
        d = oldest - v.shift
        v.s1 -= d
        v.s2 -= d * d
    return var


# ---------------------------------------------------------------------------------------------------
# EMA, SMA, WMA, RSI, MACD (TA-Lib)
# ---------------------------------------------------------------------------------------------------

cdef inline void ema_coefficients(int64_t period, double *a, double *b) noexcept nogil:
    """TA-Lib's k = 2 / (period + 1) as the weight a = k of the new value and the decay b = 1 - k.
    The one of the two that is >= 1/2 is rounded once and the other is 1 minus it, which is exact
    (Sterbenz), so a + b is exactly 1."""
    if period <= 3:
        a[0] = 2.0 / <double>(period + 1)
        b[0] = 1.0 - a[0]
    else:
        b[0] = <double>(period - 1) / <double>(period + 1)
        a[0] = 1.0 - b[0]


cdef inline void ema_init(EmaState *s, int64_t period) noexcept nogil:
    head_init(&s.h)
    s.period = period
    ema_coefficients(period, &s.a, &s.b)
    s.seed = 0.0


cdef inline double ema_step(EmaState *s, double x) noexcept nogil:
    if not ex_isfinite(x):
        return head_skip(&s.h)
    s.h.count += 1
    if s.h.count > s.period:
        # TA-Lib: (x - v) * k + v, a subtraction and a multiply-add on the dependency chain; this is
        # the same weighted mean (1 - k) v + k x with only the fma on it (ex_features.h).
        s.h.value = fma(s.h.value, s.b, s.a * x)
    else:
        # TA-Lib seeds with the plain average of the first `period` values, summed from 0.0.
        s.seed += x
        if s.h.count == s.period:
            s.h.value = s.seed / <double>s.period
    return s.h.value


cdef inline int sma_init(SmaState *s, int64_t period) noexcept nogil:
    head_init(&s.h)
    s.period = period
    s.total = 0.0
    return win_init(&s.w, period)


cdef inline double sma_step(SmaState *s, double x) noexcept nogil:
    cdef double old
    if not ex_isfinite(x):
        return head_skip(&s.h)
    s.h.count += 1
    old = win_push(&s.w, x)
    # TA_SMA adds the new value to its running total and subtracts the leaving one: two additions on
    # the dependency chain. The difference of the two is formed first here, so one is (ex_features.h).
    if s.h.count > s.period:
        s.total += x - old
    else:
        s.total += x
    if s.h.count >= s.period:
        s.h.value = s.total / <double>s.period
    return s.h.value


cdef inline void wma_clear(WmaState *s) noexcept nogil:
    head_init(&s.h)
    s.period_sum = 0.0
    s.period_sub = 0.0
    s.trailing = 0.0
    s.until_reseed = 8 * s.period
    win_clear(&s.w)


cdef inline int wma_init(WmaState *s, int64_t period) noexcept nogil:
    s.period = period
    s.divider = <double>period * <double>(period + 1) / 2.0
    if win_init(&s.w, period) != 0:
        return -1
    wma_clear(s)
    return 0


cdef double wma_rebuild(WmaState *s) noexcept nogil:
    """Rebuild both running sums from the window, oldest first with weights 1..period, as TA-Lib
    does every 8 * period bars (wma.c, issue #255), so the residue of past rounding cannot grow."""
    cdef Py_ssize_t i
    cdef double v
    s.period_sub = 0.0
    s.period_sum = 0.0
    for i in range(s.w.n):
        v = win_at(&s.w, i)
        s.period_sub += v
        s.period_sum += v * <double>(i + 1)
    return s.period_sum


cdef inline double wma_step(WmaState *s, double x) noexcept nogil:
    if not ex_isfinite(x):
        return head_skip(&s.h)
    s.h.count += 1
    win_push(&s.w, x)
    if s.period == 1:
        s.h.value = x
        return x
    if s.h.count < s.period:
        s.period_sub += x
        s.period_sum += x * <double>s.h.count
        return s.h.value
    # periodSum holds x1 + 2 x2 + ... ; periodSub the plain sum: one subtraction shifts every weight.
    # TA_WMA's order (add x to periodSub, subtract the trailing value; add period * x to periodSum,
    # output, subtract periodSub) puts two additions per sum on the dependency chain; here the
    # differences are formed first, so one is (ex_features.h, ex_wma_body).
    s.period_sub += x - s.trailing
    s.until_reseed -= 1
    s.trailing = win_oldest(&s.w)
    if s.until_reseed <= 0:
        s.until_reseed = 8 * s.period
        s.h.value = wma_rebuild(s) / s.divider
        s.h.rebuilds += 1
        s.period_sum -= s.period_sub
    else:
        s.h.value = fma(x, <double>s.period, s.period_sum) / s.divider
        s.period_sum += fma(x, <double>s.period, -s.period_sub)
    return s.h.value


cdef inline void rsi_init(RsiState *s, int64_t period) noexcept nogil:
    head_init(&s.h)
    s.period = period
    s.inv_period = 1.0 / <double>period
    # Wilder's smoothing (g (period - 1) + up) / period as decay b = (period - 1) / period and a = 1 - b.
    s.b = <double>(period - 1) / <double>period
    s.a = 1.0 - s.b
    s.gain = 0.0
    s.loss = 0.0
    s.prev = NAN


cdef inline double rsi_value(const RsiState *s) noexcept nogil:
    # A flat series (no gain, no loss) reads 0, as TA-Lib 0.8 does.
    cdef double total = s.gain + s.loss
    return 100.0 * (s.gain / total) if total > 0.0 else 0.0


cdef inline double rsi_step(RsiState *s, double x) noexcept nogil:
    cdef double change, up
    if not ex_isfinite(x):
        return head_skip(&s.h)
    s.h.count += 1
    if s.h.count == 1:
        s.prev = x
        return s.h.value
    change = x - s.prev
    s.prev = x
    # Branch-free split into gain and loss (TA-Lib #410): up - change is the exact loss.
    up = change if change > 0.0 else 0.0
    if s.h.count > s.period + 1:
        # TA-Lib multiplies by period - 1, adds, divides by period: three operations on the chain.
        s.gain = fma(s.gain, s.b, s.a * up)
        s.loss = fma(s.loss, s.b, s.a * (up - change))
        s.h.value = rsi_value(s)
    else:
        s.gain += up
        s.loss += up - change
        if s.h.count == s.period + 1:
            s.loss *= s.inv_period
            s.gain *= s.inv_period
            s.h.value = rsi_value(s)
    return s.h.value


cdef inline void macd_init(MacdState *s, int64_t fast, int64_t slow, int64_t signal) noexcept nogil:
    cdef int64_t t
    head_init(&s.h)
    if slow < fast:           # TA-Lib swaps them
        t = slow
        slow = fast
        fast = t
    s.fast = fast
    s.slow = slow
    s.signal = signal
    ema_coefficients(fast, &s.coef[0], &s.coef[1])
    ema_coefficients(slow, &s.coef[2], &s.coef[3])
    ema_coefficients(signal, &s.coef[4], &s.coef[5])
    s.slow_seed = 0.0
    s.fast_seed = 0.0
    s.ema_fast = 0.0
    s.ema_slow = 0.0
    s.signal_sum = 0.0
    s.signal_value = NAN
    s.histogram = NAN


cdef inline double macd_step(MacdState *s, double x) noexcept nogil:
    cdef int64_t n
    cdef double line
    if not ex_isfinite(x):
        return head_skip(&s.h)
    s.h.count += 1
    n = s.h.count
    if n > s.slow:
        s.ema_fast = fma(s.ema_fast, s.coef[1], s.coef[0] * x)
        s.ema_slow = fma(s.ema_slow, s.coef[3], s.coef[2] * x)
    else:
        # Both EMAs are seeded on the bar `slow`; the fast one with the last `fast` values of that
        # first window (TA_MACD: "the fast window is the tail of the slow window").
        s.slow_seed += x
        if n > s.slow - s.fast:
            s.fast_seed += x
        if n < s.slow:
            return s.h.value
        s.ema_slow = s.slow_seed / <double>s.slow
        s.ema_fast = s.fast_seed / <double>s.fast
    line = s.ema_fast - s.ema_slow
    if n >= s.slow + s.signal - 1:
        if n == s.slow + s.signal - 1:
            # The signal EMA is seeded with the plain average of the first `signal` MACD values.
            s.signal_sum += line
            s.signal_sum = s.signal_sum / <double>s.signal
        else:
            s.signal_sum = fma(s.signal_sum, s.coef[5], s.coef[4] * line)
        s.h.value = line
        s.signal_value = s.signal_sum
        s.histogram = line - s.signal_sum
    else:
        s.signal_sum += line
    return s.h.value


# ---------------------------------------------------------------------------------------------------
# StdDev, Bollinger bands, z-score (TA-Lib's variance)
# ---------------------------------------------------------------------------------------------------

cdef inline int stddev_init(StdDevState *s, int64_t period, double nbdev) noexcept nogil:
    head_init(&s.h)
    s.nbdev = nbdev
    svar_init(&s.v, period)
    return win_init(&s.w, period)


cdef inline double stddev_step(StdDevState *s, double x) noexcept nogil:
    cdef double var
    if not ex_isfinite(x):
        return head_skip(&s.h)
    s.h.count += 1
    win_push(&s.w, x)
    if s.h.count < s.v.period:
        svar_add(&s.v, x)
        return s.h.value
    var = svar_step(&s.v, x, &s.w, &s.h.rebuilds)
    s.h.value = sqrt(var) * s.nbdev if s.nbdev != 1.0 else sqrt(var)
    return s.h.value


cdef inline int bbands_init(BBandsState *s, int64_t period, double up, double dn) noexcept nogil:
    head_init(&s.h)
    s.nbdev_up = up
    s.nbdev_dn = dn
    s.total = 0.0
    s.upper = NAN
    s.lower = NAN
    svar_init(&s.v, period)
    return win_init(&s.w, period)


cdef inline double bbands_step(BBandsState *s, double x) noexcept nogil:
    cdef double var, sd, mid, t
    if not ex_isfinite(x):
        return head_skip(&s.h)
    s.h.count += 1
    win_push(&s.w, x)
    s.total += x
    if s.h.count < s.v.period:
        svar_add(&s.v, x)
        return s.h.value
    # The middle band is TA_SMA's running total; the deviation is var.c's, on the same window.
    mid = s.total / <double>s.v.period
    s.total -= win_oldest(&s.w)
    var = svar_step(&s.v, x, &s.w, &s.h.rebuilds)
    sd = sqrt(var) if var != 0.0 else 0.0
    s.h.value = mid
    if s.nbdev_up == s.nbdev_dn:
        t = sd * s.nbdev_up
        s.upper = mid + t
        s.lower = mid - t
    else:
        s.upper = mid + sd * s.nbdev_up
        s.lower = mid - sd * s.nbdev_dn
    return mid


cdef inline void moments_clear(Moments *m) noexcept nogil:
    m.k = 0.0
    m.s1 = m.s2 = m.e1 = m.e2 = 0.0


cdef inline void moments_add(Moments *m, double d, double sign) noexcept nogil:
    """Add (sign 1) or remove (sign -1) a deviation from the anchor, bounding the rounding."""
    m.s1 += sign * d
    m.s2 += sign * (d * d)
    m.e1 += UNIT_ROUNDOFF * fabs(m.s1)
    m.e2 += UNIT_ROUNDOFF * (fabs(m.s2) + d * d)


cdef void moments_rebuild(Moments *m, const Window *w) noexcept nogil:
    """Re-anchor on the newest value (a value of the window, so a flat window is exactly 0) and
    rebuild the sums."""
    cdef Py_ssize_t i
    cdef double d
    m.k = win_at(w, w.n - 1)
    m.s1 = m.s2 = m.e1 = m.e2 = 0.0
    for i in range(w.n):
        d = win_at(w, i) - m.k
        m.s1 += d
        m.s2 += d * d


cdef inline int zscore_init(ZScoreState *s, int64_t period) noexcept nogil:
    head_init(&s.h)
    moments_clear(&s.m)
    return win_init(&s.w, period)


cdef inline double zscore_step(ZScoreState *s, double x) noexcept nogil:
    cdef double old, n, centred, err, mean_dev
    cdef bint full
    if not ex_isfinite(x):
        return head_skip(&s.h)
    s.h.count += 1
    full = win_full(&s.w)
    old = win_push(&s.w, x)
    if s.h.count == 1:
        s.m.k = x
    if full:
        moments_add(&s.m, old - s.m.k, -1.0)
    moments_add(&s.m, x - s.m.k, 1.0)
    if not win_full(&s.w):
        return s.h.value
    n = <double>s.w.n
    centred = s.m.s2 - s.m.s1 * s.m.s1 / n        # n * variance
    # Its error bound: the sums' own, the linear sum's effect on the square, this line's rounding.
    err = s.m.e2 + 2.0 * fabs(s.m.s1) * s.m.e1 / n + 4.0 * UNIT_ROUNDOFF * fabs(s.m.s2)
    if err > REBUILD_TOLERANCE * centred:
        moments_rebuild(&s.m, &s.w)
        s.h.rebuilds += 1
        centred = s.m.s2 - s.m.s1 * s.m.s1 / n
    mean_dev = s.m.s1 / n
    # (x - mean) / sd, with x and the mean both measured from the anchor; 0 for a flat window.
    s.h.value = ((x - s.m.k) - mean_dev) / sqrt(centred / n) if centred > 0.0 else 0.0
    return s.h.value


# ---------------------------------------------------------------------------------------------------
# True range and ATR (TA-Lib)
# ---------------------------------------------------------------------------------------------------

cdef inline double true_range(double high, double low, double prev_close) noexcept nogil:
    # TA-Lib's comparison order: high - low, then the two distances to the previous close.
    cdef double greatest = high - low
    greatest = ex_greater(greatest, fabs(prev_close - high))
    return ex_greater(greatest, fabs(prev_close - low))


cdef inline void trange_init(TrueRangeState *s) noexcept nogil:
    head_init(&s.h)
    s.prev_close = NAN


cdef inline double trange_step(TrueRangeState *s, double high, double low, double close) noexcept nogil:
    if not (ex_isfinite(high) and ex_isfinite(low) and ex_isfinite(close)):
        return head_skip(&s.h)
    s.h.count += 1
    if s.h.count > 1:
        s.h.value = true_range(high, low, s.prev_close)
    s.prev_close = close
    return s.h.value


cdef inline void atr_init(AtrState *s, int64_t period) noexcept nogil:
    head_init(&s.h)
    s.period = period
    # TA-Lib #338: beta first, alpha = 1 - beta, so alpha + beta is exactly 1.
    s.beta = <double>(period - 1) / <double>period
    s.alpha = 1.0 - s.beta
    s.beta2 = s.beta * s.beta
    s.anchor = 0.0
    s.pending = 0.0
    s.phase = 0
    s.seed = 0.0
    s.prev_close = NAN
    s.true_range = NAN


cdef inline double atr_step(AtrState *s, double high, double low, double close) noexcept nogil:
    cdef double tr
    cdef int64_t n
    if not (ex_isfinite(high) and ex_isfinite(low) and ex_isfinite(close)):
        return head_skip(&s.h)
    s.h.count += 1
    if s.h.count > 1:
        tr = true_range(high, low, s.prev_close)
        s.true_range = tr
        n = s.h.count - 1
        if n > s.period:
            # Wilder's smoothing, two bars per chain step (ex_features.h, ex_atr_body): the first bar
            # of a pair is TA-Lib's own fma(v, beta, alpha * tr); the second comes from the value
            # before the pair, so the dependency chain has one fma per two bars.
            if s.phase == 0:
                s.anchor = s.h.value
                s.pending = s.alpha * tr
                s.h.value = fma(s.h.value, s.beta, s.pending)
                s.phase = 1
            else:
                s.h.value = fma(s.anchor, s.beta2, fma(s.pending, s.beta, s.alpha * tr))
                s.phase = 0
        else:
            s.seed += tr
            if n == s.period:
                s.h.value = s.seed / <double>s.period
    s.prev_close = close
    return s.h.value


# ---------------------------------------------------------------------------------------------------
# Returns, log returns, realized volatility
# ---------------------------------------------------------------------------------------------------

cdef inline int returns_init(ReturnsState *s, int64_t period, bint log_returns) noexcept nogil:
    head_init(&s.h)
    s.period = period
    s.log = log_returns
    return win_init(&s.w, period + 1)


cdef inline double returns_step(ReturnsState *s, double x) noexcept nogil:
    cdef double prev
    if not ex_isfinite(x) or (s.log and not x > 0.0):
        return head_skip(&s.h)
    s.h.count += 1
    win_push(&s.w, x)
    if s.h.count > s.period:
        prev = win_oldest(&s.w)
        if s.log:
            # log of the ratio, not a difference of logs: no cancellation for small returns.
            s.h.value = log(x / prev)
        else:
            # TA_ROCP; 0 when the reference price is 0, as TA-Lib answers.
            s.h.value = (x - prev) / prev if prev != 0.0 else 0.0
    return s.h.value


cdef inline int rvol_init(RealizedVolState *s, int64_t period) noexcept nogil:
    head_init(&s.h)
    s.prev = NAN
    gsum_clear(&s.s)
    return win_init(&s.w, period)


cdef void rvol_rebuild(RealizedVolState *s) noexcept nogil:
    cdef Py_ssize_t i
    gsum_clear(&s.s)
    # gsum_add, not a bare sum: the rebuilt sum's own rounding belongs in its bound (a large term
    # rebuilt into it must still trigger a rebuild when it leaves).
    for i in range(s.w.n):
        gsum_add(&s.s, win_at(&s.w, i))


cdef inline double rvol_step(RealizedVolState *s, double x) noexcept nogil:
    cdef double r, old
    cdef bint full
    if not (ex_isfinite(x) and x > 0.0):
        return head_skip(&s.h)
    s.h.count += 1
    if s.h.count > 1:
        r = log(x / s.prev)
        full = win_full(&s.w)
        old = win_push(&s.w, r * r)
        gsum_add(&s.s, r * r)
        if full:
            gsum_add(&s.s, -old)
        if gsum_stale(&s.s):
            rvol_rebuild(s)
            s.h.rebuilds += 1
        if win_full(&s.w):
            s.h.value = sqrt(s.s.sum) if s.s.sum > 0.0 else 0.0
    s.prev = x
    return s.h.value


# ---------------------------------------------------------------------------------------------------
# Rolling least squares (RollingOls, LinearRegression)
# ---------------------------------------------------------------------------------------------------

cdef inline int ols_init(OlsState *s, int64_t period) noexcept nogil:
    head_init(&s.h)
    s.intercept = NAN
    s.r2 = NAN
    s.inv_n = 1.0 / <double>period
    s.s.kx = 0.0
    s.s.ky = 0.0
    ols_clear_sums(&s.s)
    s.wx.buf = NULL
    s.wy.buf = NULL
    if win_init(&s.wy, period) != 0:
        return -1
    return win_init(&s.wx, period)


cdef inline void ols_clear_sums(OlsSums *o) noexcept nogil:
    o.sx = o.sy = o.sxx = o.syy = o.sxy = 0.0
    o.ex = o.ey = o.exx = o.eyy = o.exy = 0.0


cdef inline void ols_accumulate(OlsSums *o, double dx, double dy, double sign) noexcept nogil:
    """Add (sign = 1) or remove (sign = -1) a point's deviations, bounding the rounding of each sum."""
    o.sx += sign * dx
    o.sy += sign * dy
    o.sxx += sign * (dx * dx)
    o.syy += sign * (dy * dy)
    o.sxy += sign * (dx * dy)
    # dx * dx etc. round too: count them with the sum they feed.
    o.ex += UNIT_ROUNDOFF * fabs(o.sx)
    o.exx += UNIT_ROUNDOFF * (fabs(o.sxx) + dx * dx)
    o.ey += UNIT_ROUNDOFF * fabs(o.sy)
    o.eyy += UNIT_ROUNDOFF * (fabs(o.syy) + dy * dy)
    o.exy += UNIT_ROUNDOFF * (fabs(o.sxy) + fabs(dx * dy))


cdef void ols_rebuild(OlsState *s) noexcept nogil:
    """Re-anchor on the newest point and rebuild the sums from the window. Anchoring on a value of
    the window (not on a computed mean) keeps a flat window's deviations exactly 0."""
    cdef Py_ssize_t i, n = s.wy.n
    cdef double dx, dy
    s.s.kx = win_at(&s.wx, n - 1)
    s.s.ky = win_at(&s.wy, n - 1)
    ols_clear_sums(&s.s)
    for i in range(n):
        dx = win_at(&s.wx, i) - s.s.kx
        dy = win_at(&s.wy, i) - s.s.ky
        s.s.sx += dx
        s.s.sy += dy
        s.s.sxx += dx * dx
        s.s.syy += dy * dy
        s.s.sxy += dx * dy


cdef inline double ols_step(OlsState *s, double x, double y) noexcept nogil:
    cdef double old_x, old_y, inv_n, cxx, cyy, cxy, tol, err_xx, err_yy, err_xy, mean_x, mean_y, slope
    cdef bint full
    if not (ex_isfinite(x) and ex_isfinite(y)):
        return head_skip(&s.h)
    s.h.count += 1
    full = win_full(&s.wy)
    old_y = win_push(&s.wy, y)
    old_x = win_push(&s.wx, x)
    if full:
        ols_accumulate(&s.s, old_x - s.s.kx, old_y - s.s.ky, -1.0)
    if s.h.count == 1:
        s.s.kx = x
        s.s.ky = y
    ols_accumulate(&s.s, x - s.s.kx, y - s.s.ky, 1.0)
    if not win_full(&s.wy):
        return s.h.value
    # Multiplying by 1/n (not dividing) keeps the divides off the update path; the error bounds below
    # cover the extra rounding.
    inv_n = s.inv_n
    cxx = s.s.sxx - s.s.sx * s.s.sx * inv_n
    cyy = s.s.syy - s.s.sy * s.s.sy * inv_n
    cxy = s.s.sxy - s.s.sx * s.s.sy * inv_n
    # Bounds on the error of the centred sums: the running sums' own bounds, what an error in the
    # linear sums does to the squared term, and the rounding of the three lines above.
    err_xx = s.s.exx + 2.0 * fabs(s.s.sx) * s.s.ex * inv_n + 5.0 * UNIT_ROUNDOFF * fabs(s.s.sxx)
    err_yy = s.s.eyy + 2.0 * fabs(s.s.sy) * s.s.ey * inv_n + 5.0 * UNIT_ROUNDOFF * fabs(s.s.syy)
    err_xy = (s.s.exy + (fabs(s.s.sx) * s.s.ey + fabs(s.s.sy) * s.s.ex) * inv_n
              + 5.0 * UNIT_ROUNDOFF * fabs(s.s.sxy))
    tol = REBUILD_TOLERANCE
    if (err_xx > tol * cxx or err_yy > tol * cyy
            or err_xy * err_xy > tol * tol * cxx * cyy and err_xy > 0.0):
        ols_rebuild(s)
        s.h.rebuilds += 1
        cxx = s.s.sxx - s.s.sx * s.s.sx * inv_n
        cyy = s.s.syy - s.s.sy * s.s.sy * inv_n
        cxy = s.s.sxy - s.s.sx * s.s.sy * inv_n
    mean_x = s.s.kx + s.s.sx * inv_n
    mean_y = s.s.ky + s.s.sy * inv_n
    if cxx > 0.0:
        slope = cxy / cxx
        s.h.value = slope
        s.r2 = slope * cxy / cyy if cyy > 0.0 else 0.0
        if s.r2 > 1.0:
            s.r2 = 1.0
    else:
        # x does not vary: no slope to speak of (TA-Lib's BETA answers 0 the same way).
        s.h.value = 0.0
        s.r2 = 0.0
    s.intercept = mean_y - s.h.value * mean_x
    return s.h.value


# ---------------------------------------------------------------------------------------------------
# LinearRegression: the rolling line against position (TA-Lib's LINEARREG family)
# ---------------------------------------------------------------------------------------------------

cdef inline void linreg_clear(LinRegState *s) noexcept nogil:
    head_init(&s.h)
    s.intercept = NAN
    s.r2 = NAN
    s.ky = 0.0
    s.sy = s.q = s.syy = 0.0
    s.ey = s.eq = s.eyy = 0.0
    win_clear(&s.w)


cdef inline int linreg_init(LinRegState *s, int64_t period) noexcept nogil:
    cdef double p = <double>period
    s.span = p - 1.0
    s.half_span = 0.5 * (p - 1.0)
    s.cxx = p * (p * p - 1.0) / 12.0       # exact: an integer below 2**53 for any allowed period
    s.inv_cxx = 1.0 / s.cxx
    s.inv_n = 1.0 / p
    s.w.buf = NULL
    if win_init(&s.w, period) != 0:
        return -1
    linreg_clear(s)
    return 0


cdef inline void linreg_add(LinRegState *s, double dy, double j) noexcept nogil:
    """A value at position j while the window fills."""
    s.sy += dy
    s.q += j * dy
    s.syy += dy * dy
    s.ey += UNIT_ROUNDOFF * fabs(s.sy)
    s.eq += UNIT_ROUNDOFF * (fabs(s.q) + fabs(j * dy))
    s.eyy += UNIT_ROUNDOFF * (s.syy + dy * dy)


cdef inline void linreg_slide(LinRegState *s, double dy_old, double dy) noexcept nogil:
    """The oldest value (position 0) leaves, every other moves down one position, dy enters last."""
    cdef double sy_kept = s.sy - dy_old
    cdef double q_kept = s.q - sy_kept
    cdef double syy_kept = s.syy - dy_old * dy_old
    s.q = q_kept + s.span * dy
    s.sy = sy_kept + dy
    s.syy = syy_kept + dy * dy
    s.ey += UNIT_ROUNDOFF * (fabs(sy_kept) + fabs(s.sy))
    s.eq += UNIT_ROUNDOFF * (fabs(q_kept) + fabs(s.q) + fabs(s.span * dy))
    s.eyy += UNIT_ROUNDOFF * (fabs(syy_kept) + s.syy + dy * dy + dy_old * dy_old)


cdef void linreg_rebuild(LinRegState *s, const double *w, Py_ssize_t n) noexcept nogil:
    """Re-anchor on the newest value and rebuild the sums from the window w[0:n], oldest first."""
    cdef Py_ssize_t j
    cdef double dy
    s.ky = w[n - 1]
    s.sy = s.q = s.syy = 0.0
    s.ey = s.eq = s.eyy = 0.0
    for j in range(n):
        dy = w[j] - s.ky
        s.sy += dy
        s.q += <double>j * dy
        s.syy += dy * dy
    s.h.rebuilds += 1


cdef void linreg_rebuild_ring(LinRegState *s) noexcept nogil:
    cdef Py_ssize_t j, n = s.w.n
    cdef double dy
    s.ky = win_at(&s.w, n - 1)
    s.sy = s.q = s.syy = 0.0
    s.ey = s.eq = s.eyy = 0.0
    for j in range(n):
        dy = win_at(&s.w, j) - s.ky
        s.sy += dy
        s.q += <double>j * dy
        s.syy += dy * dy
    s.h.rebuilds += 1


cdef inline bint linreg_stale(const LinRegState *s) noexcept nogil:
    """Do the rounding bounds exceed the tolerance of the centred sums they feed?"""
    cdef double cxy = s.q - s.half_span * s.sy
    cdef double cyy = s.syy - s.sy * s.sy * s.inv_n
    cdef double err_xy = s.eq + s.half_span * s.ey + 2.0 * UNIT_ROUNDOFF * (fabs(s.q) + fabs(s.half_span * s.sy))
    cdef double err_yy = s.eyy + 2.0 * fabs(s.sy) * s.ey * s.inv_n + 4.0 * UNIT_ROUNDOFF * s.syy
    return (err_yy > REBUILD_TOLERANCE * cyy
            or err_xy * err_xy > REBUILD_TOLERANCE * REBUILD_TOLERANCE * s.cxx * cyy and err_xy > 0.0)


cdef inline double linreg_output(LinRegState *s) noexcept nogil:
    cdef double cxy = s.q - s.half_span * s.sy
    cdef double cyy = s.syy - s.sy * s.sy * s.inv_n
    cdef double slope = cxy * s.inv_cxx
    s.h.value = slope
    s.r2 = slope * cxy / cyy if cyy > 0.0 else 0.0
    if s.r2 > 1.0:
        s.r2 = 1.0
    # The line at the oldest value, position 0 (TA_LINEARREG_INTERCEPT); the mean position is
    # half_span after it.
    s.intercept = (s.ky + s.sy * s.inv_n) - slope * s.half_span
    return slope


cdef double linreg_direct(LinRegState *s) noexcept nogil:
    """A full short window's sums afresh, anchored on its newest value (ex_features.h,
    ex_linreg_direct: the same operations in the same order, oldest to newest -- the ring read as its
    two contiguous runs), then the outputs."""
    cdef Py_ssize_t k, cap = s.w.cap, pos = s.w.pos
    cdef const double *buf = s.w.buf
    cdef double dy, sy = 0.0, q = 0.0, syy = 0.0, j = 0.0, ky
    ky = buf[pos - 1] if pos > 0 else buf[cap - 1]
    s.ky = ky
    for k in range(pos, cap):
        dy = buf[k] - ky
        sy += dy
        q += j * dy
        syy += dy * dy
        j += 1.0
    for k in range(pos):
        dy = buf[k] - ky
        sy += dy
        q += j * dy
        syy += dy * dy
        j += 1.0
    s.sy = sy
    s.q = q
    s.syy = syy
    return linreg_output(s)


cdef inline double linreg_step(LinRegState *s, double y) noexcept nogil:
    cdef double old
    cdef bint full
    if not ex_isfinite(y):
        return head_skip(&s.h)
    s.h.count += 1
    if s.w.cap <= LINREG_DIRECT_MAX:
        win_push(&s.w, y)
        return linreg_direct(s) if win_full(&s.w) else s.h.value
    full = win_full(&s.w)
    old = win_push(&s.w, y)
    if s.h.count == 1:
        s.ky = y
    if full:
        linreg_slide(s, old - s.ky, y - s.ky)
    else:
        linreg_add(s, y - s.ky, <double>(s.w.n - 1))
        if not win_full(&s.w):
            return s.h.value
    if linreg_stale(s):
        linreg_rebuild_ring(s)
    return linreg_output(s)


# ---------------------------------------------------------------------------------------------------
# Beta (TA-Lib's BETA, ta_codegen/input/beta/beta.c, issue #242; TA-Lib 0.8's build also re-anchors
# when a large y return leaves, which beta.c as published does not -- matched here, verified bit for
# bit against the wheel)
# ---------------------------------------------------------------------------------------------------

cdef inline void beta_clear(BetaState *s) noexcept nogil:
    head_init(&s.h)
    s.shift_x = 0.0
    s.shift_y = 0.0
    s.sxx = s.sxy = s.syy = s.sx = s.sy = 0.0
    s.leaving_xx = 0.0
    s.leaving_yy = 0.0
    s.until_reseed = 32 * s.period
    win_clear(&s.wx)
    win_clear(&s.wy)


cdef inline int beta_init(BetaState *s, int64_t period) noexcept nogil:
    s.period = period
    s.n = <double>period
    s.wx.buf = NULL
    s.wy.buf = NULL
    if win_init(&s.wx, period + 1) != 0 or win_init(&s.wy, period + 1) != 0:
        return -1
    beta_clear(s)
    return 0


cdef inline bint ta_is_zero(double v) noexcept nogil:
    return -TA_EPSILON < v < TA_EPSILON


cdef inline double beta_dev(double price, double prev, double shift) noexcept nogil:
    """The return from prev to price minus the shift; a return from a zero price counts as 0."""
    if not ta_is_zero(prev):
        return (price - prev) / prev - shift
    return -shift


cdef void beta_rebuild(BetaState *s) noexcept nogil:
    cdef Py_ssize_t j, n = s.wx.n
    cdef double ax, ay, bx, by, acc_x = 0.0, acc_y = 0.0, ex, ey
    for j in range(1, n):
        ax = win_at(&s.wx, j - 1)
        bx = win_at(&s.wx, j)
        ay = win_at(&s.wy, j - 1)
        by = win_at(&s.wy, j)
        if not ta_is_zero(ax):
            acc_x += (bx - ax) / ax
        if not ta_is_zero(ay):
            acc_y += (by - ay) / ay
    s.shift_x = acc_x / s.n
    s.shift_y = acc_y / s.n
    s.sxx = s.sxy = s.syy = s.sx = s.sy = 0.0
    for j in range(1, n):
        ex = beta_dev(win_at(&s.wx, j), win_at(&s.wx, j - 1), s.shift_x)
        ey = beta_dev(win_at(&s.wy, j), win_at(&s.wy, j - 1), s.shift_y)
        s.sxx += ex * ex
        s.sxy += ex * ey
        s.syy += ey * ey
        s.sx += ex
        s.sy += ey


cdef inline double beta_step(BetaState *s, double x, double y) noexcept nogil:
    cdef double px, py, dx, dy, denom, denom_scale, ex, ey
    if not (ex_isfinite(x) and ex_isfinite(y)):
        return head_skip(&s.h)
    s.h.count += 1
    if s.h.count > 1:
        px = win_at(&s.wx, s.wx.n - 1)
        py = win_at(&s.wy, s.wy.n - 1)
    win_push(&s.wx, x)
    win_push(&s.wy, y)
    if s.h.count == 1:
        return s.h.value
    if s.h.count == 2:
        # TA-Lib anchors the shift on the window's first return.
        s.shift_x = (x - px) / px if not ta_is_zero(px) else 0.0
        s.shift_y = (y - py) / py if not ta_is_zero(py) else 0.0
    dx = beta_dev(x, px, s.shift_x)
    dy = beta_dev(y, py, s.shift_y)
    s.sxx += dx * dx
    s.sxy += dx * dy
    s.syy += dy * dy
    s.sx += dx
    s.sy += dy
    if s.h.count <= s.period:
        return s.h.value
    denom_scale = s.n * s.sxx
    denom = denom_scale - s.sx * s.sx
    s.until_reseed -= 1
    # Re-anchor when the denominator has shrunk below 1e-6 of its scale, when the x or y return
    # that left dwarfed what remains (a bad tick's residue would otherwise stay), or every 32 windows.
    if (denom < 0.000001 * denom_scale or s.leaving_xx > 1000.0 * s.sxx or s.leaving_yy > 1000.0 * s.syy
            or s.until_reseed <= 0):
        s.until_reseed = 32 * s.period
        beta_rebuild(s)
        s.h.rebuilds += 1
        denom_scale = s.n * s.sxx
        denom = denom_scale - s.sx * s.sx
        if denom < 0.0:
            denom = 0.0
    # The oldest return of the window leaves after this output.
    ex = beta_dev(win_at(&s.wx, 1), win_at(&s.wx, 0), s.shift_x)
    ey = beta_dev(win_at(&s.wy, 1), win_at(&s.wy, 0), s.shift_y)
    if denom > TA_EPSILON * denom_scale:
        s.h.value = (s.n * s.sxy - s.sx * s.sy) / denom
    else:
        s.h.value = 0.0
    s.leaving_xx = ex * ex
    s.leaving_yy = ey * ey
    s.sxx -= ex * ex
    s.sxy -= ex * ey
    s.syy -= ey * ey
    s.sx -= ex
    s.sy -= ey
    return s.h.value


# ---------------------------------------------------------------------------------------------------
# VWAP, trade-flow imbalance, microprice, book imbalance
# ---------------------------------------------------------------------------------------------------

cdef inline int vwap_init(VwapState *s, int64_t window) noexcept nogil:
    head_init(&s.h)
    s.rolling = window > 0
    s.pv = s.v = s.pv_c = s.v_c = 0.0
    gsum_clear(&s.rpv)
    gsum_clear(&s.rv)
    s.wp.buf = NULL
    s.wv.buf = NULL
    if s.rolling:
        if win_init(&s.wp, window) != 0:
            return -1
        return win_init(&s.wv, window)
    return 0


cdef inline void neumaier_add(double *total, double *compensation, double t) noexcept nogil:
    """A compensated running sum: the error stays ~1 ulp of the total however many terms it takes."""
    cdef double s = total[0] + t
    if fabs(total[0]) >= fabs(t):
        compensation[0] += (total[0] - s) + t
    else:
        compensation[0] += (t - s) + total[0]
    total[0] = s


cdef void vwap_rebuild(VwapState *s) noexcept nogil:
    cdef Py_ssize_t i
    gsum_clear(&s.rpv)
    gsum_clear(&s.rv)
    for i in range(s.wv.n):     # gsum_add: see rvol_rebuild
        gsum_add(&s.rpv, win_at(&s.wp, i) * win_at(&s.wv, i))
        gsum_add(&s.rv, win_at(&s.wv, i))


cdef inline double vwap_step(VwapState *s, double price, double volume) noexcept nogil:
    cdef double old_p, old_v, vol
    cdef bint full
    if not (ex_isfinite(price) and ex_isfinite(volume) and volume >= 0.0):
        return head_skip(&s.h)
    s.h.count += 1
    if not s.rolling:
        neumaier_add(&s.pv, &s.pv_c, price * volume)
        neumaier_add(&s.v, &s.v_c, volume)
        vol = s.v + s.v_c
        if vol > 0.0:
            s.h.value = (s.pv + s.pv_c) / vol
        return s.h.value
    full = win_full(&s.wv)
    old_p = win_push(&s.wp, price)
    old_v = win_push(&s.wv, volume)
    gsum_add(&s.rpv, price * volume)
    gsum_add(&s.rv, volume)
    if full:
        gsum_add(&s.rpv, -(old_p * old_v))
        gsum_add(&s.rv, -old_v)
    if gsum_stale(&s.rv) or gsum_stale(&s.rpv):
        vwap_rebuild(s)
        s.h.rebuilds += 1
    if win_full(&s.wv):
        s.h.value = s.rpv.sum / s.rv.sum if s.rv.sum > 0.0 else NAN
    return s.h.value


cdef inline int flow_init(FlowState *s, int64_t window) noexcept nogil:
    head_init(&s.h)
    gsum_clear(&s.buy)
    gsum_clear(&s.sell)
    return win_init(&s.w, window)


cdef void flow_rebuild(FlowState *s) noexcept nogil:
    cdef Py_ssize_t i
    cdef double v
    gsum_clear(&s.buy)
    gsum_clear(&s.sell)
    for i in range(s.w.n):     # gsum_add: see rvol_rebuild (a 1e6 trade rebuilt into the buy sum
        v = win_at(&s.w, i)     # left ~1e-10 of garbage behind it when it went)
        if ex_signbit(v):
            gsum_add(&s.sell, -v)
        else:
            gsum_add(&s.buy, v)


cdef inline double flow_step(FlowState *s, double size, bint is_buy) noexcept nogil:
    cdef double old, total
    cdef bint full
    if not (ex_isfinite(size) and size >= 0.0):
        return head_skip(&s.h)
    s.h.count += 1
    full = win_full(&s.w)
    # One ring of signed sizes: the sign bit is the side, so a zero-size sell (-0.0) stays a sell.
    old = win_push(&s.w, size if is_buy else -size)
    if is_buy:
        gsum_add(&s.buy, size)
    else:
        gsum_add(&s.sell, size)
    if full:
        if ex_signbit(old):
            gsum_add(&s.sell, old)
        else:
            gsum_add(&s.buy, -old)
    if gsum_stale(&s.buy) or gsum_stale(&s.sell):
        flow_rebuild(s)
        s.h.rebuilds += 1
    if win_full(&s.w):
        total = s.buy.sum + s.sell.sum
        s.h.value = (s.buy.sum - s.sell.sum) / total if total > 0.0 else 0.0
    return s.h.value


cdef inline double microprice_step(KernelHead *h, double bid, double bid_size, double ask,
                                   double ask_size) noexcept nogil:
    if not (ex_isfinite(bid) and ex_isfinite(bid_size) and ex_isfinite(ask) and ex_isfinite(ask_size)
            and bid_size >= 0.0 and ask_size >= 0.0 and bid_size + ask_size > 0.0):
        return head_skip(h)
    h.count += 1
    # OrderBook.microprice()'s formula: the mid leans towards the side with less size.
    h.value = (bid * ask_size + ask * bid_size) / (bid_size + ask_size)
    return h.value


cdef inline double imbalance_value(KernelHead *h, double bid, double ask) noexcept nogil:
    if not (bid + ask > 0.0):
        return head_skip(h)
    h.count += 1
    h.value = (bid - ask) / (bid + ask)
    return h.value


cdef inline double imbalance_step(KernelHead *h, const double *top, Py_ssize_t rows,
                                  Py_ssize_t levels) noexcept nogil:
    cdef Py_ssize_t i
    cdef double bid = 0.0, ask = 0.0, b, a
    if rows > levels:
        rows = levels
    for i in range(rows):
        b = top[4 * i + 1]
        a = top[4 * i + 3]
        # NaN sizes are levels the book does not have (OrderBook.top pads with NaN).
        if not isnan(b):
            if not (b >= 0.0 and b < 1.0 / 0.0):
                return head_skip(h)
            bid += b
        if not isnan(a):
            if not (a >= 0.0 and a < 1.0 / 0.0):
                return head_skip(h)
            ask += a
    return imbalance_value(h, bid, ask)


# ---------------------------------------------------------------------------------------------------
# Classes
# ---------------------------------------------------------------------------------------------------

cdef int64_t _period(value, str name, int64_t minimum) except -1:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not minimum <= value <= MAX_PERIOD:
        raise ValueError(f"{name} must be between {minimum} and {MAX_PERIOD}, got {value}")
    return value


cdef double _factor(value, str name) except? -1.0:
    cdef double f = value
    if not ex_isfinite(f):
        raise ValueError(f"{name} must be finite, got {value}")
    return f


cdef class Kernel:
    """Base of every feature kernel: `value`, `is_ready`, `count`, `skipped`. Not used directly."""

    def __cinit__(self, *args, **kwargs):
        self._head = NULL

    def _check(self):
        if self._head == NULL:
            raise TypeError(f"{type(self).__name__} is abstract")

    @property
    def value(self):
        """The current value (NaN until warm)."""
        self._check()
        return self._head.value

    @property
    def is_ready(self):
        """True once the kernel is warm (its value is no longer NaN)."""
        self._check()
        return not isnan(self._head.value)

    @property
    def count(self):
        """Accepted updates."""
        self._check()
        return self._head.count

    @property
    def skipped(self):
        """Updates rejected for a non-finite (or, per kernel, invalid) input; they changed nothing."""
        self._check()
        return self._head.skipped

    @property
    def rebuilds(self):
        """How many times a rolling kernel rebuilt its running sums from the window (an O(period)
        step, taken rarely -- when the sums' rounding-error bound, or TA-Lib's re-anchoring rule, calls
        for it -- so an update stays O(1) amortised)."""
        self._check()
        return self._head.rebuilds

    def _params(self):
        return {}

    def __repr__(self):
        self._check()
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return (f"{type(self).__name__}({params}) <value={self.value!r}, count={self._head.count}, "
                f"skipped={self._head.skipped}>")


cdef class ScalarKernel(Kernel):
    """A kernel fed one float per update; `update_c(double)` is virtual for the engine."""

    cdef double update_c(self, double x) noexcept nogil:
        return NAN


@cython.final
cdef class Ema(ScalarKernel):
    """Exponential moving average, TA_EMA: k = 2 / (period + 1), seeded with the SMA of the first
    `period` values. Warm after `period` values (TA-Lib lookback period - 1)."""

    def __cinit__(self, period, *args, **kwargs):
        ema_init(&self.st, _period(period, "period", 1))
        self._head = &self.st.h

    def __init__(self, period):
        pass

    cdef double update_c(self, double x) noexcept nogil:
        return ema_step(&self.st, x)

    @cython.always_allow_keywords(False)    # METH_O: the cheapest call from Python
    def update(self, double x):
        """Add one value; returns the current EMA."""
        return ema_step(&self.st, x)

    def reset(self):
        ema_init(&self.st, self.st.period)

    @property
    def period(self):
        return self.st.period

    def _params(self):
        return {"period": self.st.period}


@cython.final
cdef class Sma(ScalarKernel):
    """Simple moving average, TA_SMA (a running total). Warm after `period` values."""

    def __cinit__(self, period, *args, **kwargs):
        if sma_init(&self.st, _period(period, "period", 1)) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, period):
        pass

    def __dealloc__(self):
        win_free(&self.st.w)

    cdef double update_c(self, double x) noexcept nogil:
        return sma_step(&self.st, x)

    @cython.always_allow_keywords(False)    # METH_O: the cheapest call from Python
    def update(self, double x):
        """Add one value; returns the current SMA."""
        return sma_step(&self.st, x)

    def reset(self):
        head_init(&self.st.h)
        self.st.total = 0.0
        win_clear(&self.st.w)

    @property
    def period(self):
        return self.st.period

    def _params(self):
        return {"period": self.st.period}


@cython.final
cdef class Wma(ScalarKernel):
    """Linearly weighted moving average (weights 1..period, newest heaviest), TA_WMA. Warm after
    `period` values."""

    def __cinit__(self, period, *args, **kwargs):
        if wma_init(&self.st, _period(period, "period", 1)) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, period):
        pass

    def __dealloc__(self):
        win_free(&self.st.w)

    cdef double update_c(self, double x) noexcept nogil:
        return wma_step(&self.st, x)

    @cython.always_allow_keywords(False)    # METH_O: the cheapest call from Python
    def update(self, double x):
        """Add one value; returns the current WMA."""
        return wma_step(&self.st, x)

    def reset(self):
        wma_clear(&self.st)

    @property
    def period(self):
        return self.st.period

    def _params(self):
        return {"period": self.st.period}


@cython.final
cdef class Rsi(ScalarKernel):
    """Wilder's relative strength index, TA_RSI: 0..100, 0 on a flat series. Warm after
    period + 1 values (TA-Lib lookback `period`)."""

    def __cinit__(self, period=14, *args, **kwargs):
        rsi_init(&self.st, _period(period, "period", 2))
        self._head = &self.st.h

    def __init__(self, period=14):
        pass

    cdef double update_c(self, double x) noexcept nogil:
        return rsi_step(&self.st, x)

    @cython.always_allow_keywords(False)    # METH_O: the cheapest call from Python
    def update(self, double x):
        """Add one value; returns the current RSI."""
        return rsi_step(&self.st, x)

    def reset(self):
        rsi_init(&self.st, self.st.period)

    @property
    def period(self):
        return self.st.period

    def _params(self):
        return {"period": self.st.period}


@cython.final
cdef class Macd(ScalarKernel):
    """MACD, TA_MACD: (macd, signal, histogram). The line is EMA(fast) - EMA(slow), both seeded on the
    bar `slow`; the signal is an EMA of the line seeded with the average of its first `signal`
    values. All three are NaN until slow + signal - 1 values (TA-Lib lookback slow + signal - 2).
    update_c() returns the line; the signal and histogram are `signal_value` / `histogram`."""

    def __cinit__(self, fast=12, slow=26, signal=9, *args, **kwargs):
        macd_init(&self.st, _period(fast, "fast", 2), _period(slow, "slow", 2), _period(signal, "signal", 1))
        self._head = &self.st.h

    def __init__(self, fast=12, slow=26, signal=9):
        pass

    cdef double update_c(self, double x) noexcept nogil:
        return macd_step(&self.st, x)

    @cython.always_allow_keywords(False)    # METH_O: the cheapest call from Python
    def update(self, double x):
        """Add one value; returns (macd, signal, histogram)."""
        macd_step(&self.st, x)
        return (self.st.h.value, self.st.signal_value, self.st.histogram)

    def reset(self):
        macd_init(&self.st, self.st.fast, self.st.slow, self.st.signal)

    @property
    def value(self):
        """(macd, signal, histogram)."""
        return (self.st.h.value, self.st.signal_value, self.st.histogram)

    @property
    def macd(self):
        return self.st.h.value

    @property
    def signal_value(self):
        return self.st.signal_value

    @property
    def histogram(self):
        return self.st.histogram

    def _params(self):
        return {"fast": self.st.fast, "slow": self.st.slow, "signal": self.st.signal}


@cython.final
cdef class BollingerBands(ScalarKernel):
    """Bollinger bands, TA_BBANDS with an SMA middle band: (upper, middle, lower) with
    upper/lower = middle +- nbdev * population stddev of the window. Warm after `period` values.
    update_c() returns the middle band; `upper` and `lower` hold the others."""

    def __cinit__(self, period=20, nbdev_up=2.0, nbdev_dn=2.0, *args, **kwargs):
        if bbands_init(&self.st, _period(period, "period", 2), _factor(nbdev_up, "nbdev_up"),
                       _factor(nbdev_dn, "nbdev_dn")) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, period=20, nbdev_up=2.0, nbdev_dn=2.0):
        pass

    def __dealloc__(self):
        win_free(&self.st.w)

    cdef double update_c(self, double x) noexcept nogil:
        return bbands_step(&self.st, x)

    @cython.always_allow_keywords(False)    # METH_O: the cheapest call from Python
    def update(self, double x):
        """Add one value; returns (upper, middle, lower)."""
        bbands_step(&self.st, x)
        return (self.st.upper, self.st.h.value, self.st.lower)

    def reset(self):
        head_init(&self.st.h)
        self.st.total = 0.0
        self.st.upper = NAN
        self.st.lower = NAN
        svar_init(&self.st.v, self.st.v.period)
        win_clear(&self.st.w)

    @property
    def value(self):
        """(upper, middle, lower)."""
        return (self.st.upper, self.st.h.value, self.st.lower)

    @property
    def upper(self):
        return self.st.upper

    @property
    def middle(self):
        return self.st.h.value

    @property
    def lower(self):
        return self.st.lower

    @property
    def period(self):
        return self.st.v.period

    def _params(self):
        return {"period": self.st.v.period, "nbdev_up": self.st.nbdev_up, "nbdev_dn": self.st.nbdev_dn}


@cython.final
cdef class StdDev(ScalarKernel):
    """Rolling population standard deviation times nbdev, TA_STDDEV. Warm after `period` values."""

    def __cinit__(self, period, nbdev=1.0, *args, **kwargs):
        if stddev_init(&self.st, _period(period, "period", 2), _factor(nbdev, "nbdev")) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, period, nbdev=1.0):
        pass

    def __dealloc__(self):
        win_free(&self.st.w)

    cdef double update_c(self, double x) noexcept nogil:
        return stddev_step(&self.st, x)

    @cython.always_allow_keywords(False)    # METH_O: the cheapest call from Python
    def update(self, double x):
        """Add one value; returns the current standard deviation."""
        return stddev_step(&self.st, x)

    def reset(self):
        head_init(&self.st.h)
        svar_init(&self.st.v, self.st.v.period)
        win_clear(&self.st.w)

    @property
    def period(self):
        return self.st.v.period

    def _params(self):
        return {"period": self.st.v.period, "nbdev": self.st.nbdev}


@cython.final
cdef class ZScore(ScalarKernel):
    """(x - mean) / stddev of the last `period` values including x (population stddev); 0 for a flat
    window. Warm after `period` values."""

    def __cinit__(self, period, *args, **kwargs):
        if zscore_init(&self.st, _period(period, "period", 2)) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, period):
        pass

    def __dealloc__(self):
        win_free(&self.st.w)

    cdef double update_c(self, double x) noexcept nogil:
        return zscore_step(&self.st, x)

    @cython.always_allow_keywords(False)    # METH_O: the cheapest call from Python
    def update(self, double x):
        """Add one value; returns its z-score in the current window."""
        return zscore_step(&self.st, x)

    def reset(self):
        head_init(&self.st.h)
        moments_clear(&self.st.m)
        win_clear(&self.st.w)

    @property
    def period(self):
        return self.st.w.cap

    def _params(self):
        return {"period": self.st.w.cap}


@cython.final
cdef class RealizedVolatility(ScalarKernel):
    """sqrt(sum of the last `period` squared log returns) -- not annualised: multiply by
    sqrt(periods per year / period) for that. Only positive prices are accepted. Warm after
    period + 1 prices."""

    def __cinit__(self, period, *args, **kwargs):
        if rvol_init(&self.st, _period(period, "period", 1)) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, period):
        pass

    def __dealloc__(self):
        win_free(&self.st.w)

    cdef double update_c(self, double x) noexcept nogil:
        return rvol_step(&self.st, x)

    @cython.always_allow_keywords(False)    # METH_O: the cheapest call from Python
    def update(self, double x):
        """Add one price; returns the current realized volatility."""
        return rvol_step(&self.st, x)

    def reset(self):
        head_init(&self.st.h)
        self.st.prev = NAN
        gsum_clear(&self.st.s)
        win_clear(&self.st.w)

    @property
    def period(self):
        return self.st.w.cap

    def _params(self):
        return {"period": self.st.w.cap}


cdef class _ReturnsKernel(ScalarKernel):
    """Shared body of Returns and LogReturns (one state struct; `log` is fixed by the class)."""

    def __cinit__(self, period=1, *args, **kwargs):
        if returns_init(&self.st, _period(period, "period", 1), type(self) is LogReturns) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, period=1):
        pass

    def __dealloc__(self):
        win_free(&self.st.w)

    cdef double update_c(self, double x) noexcept nogil:
        return returns_step(&self.st, x)

    @cython.always_allow_keywords(False)    # METH_O: the cheapest call from Python
    def update(self, double x):
        """Add one price; returns the current (log) return."""
        return returns_step(&self.st, x)

    def reset(self):
        head_init(&self.st.h)
        win_clear(&self.st.w)

    @property
    def period(self):
        return self.st.period

    def _params(self):
        return {"period": self.st.period}


@cython.final
cdef class Returns(_ReturnsKernel):
    """Simple return over `period` values, (x - x[-period]) / x[-period] (TA_ROCP; 0 when the old
    price is 0). Warm after period + 1 values."""


@cython.final
cdef class LogReturns(_ReturnsKernel):
    """Log return over `period` values, log(x / x[-period]). Only positive prices are accepted (others
    are skipped). Warm after period + 1 values."""


@cython.final
cdef class LinearRegression(ScalarKernel):
    """Least-squares line through the last `period` values against their positions 0..period-1:
    (slope, intercept, r2), TA-Lib's LINEARREG convention -- the intercept is the line at the oldest
    value (TA_LINEARREG_INTERCEPT); the line at the newest (TA_LINEARREG) is `line_end`. r2 is 0 for
    a flat window. Warm after `period` values. update_c() returns the slope."""

    def __cinit__(self, period, *args, **kwargs):
        if linreg_init(&self.st, _period(period, "period", 2)) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, period):
        pass

    def __dealloc__(self):
        win_free(&self.st.w)

    cdef double update_c(self, double x) noexcept nogil:
        return linreg_step(&self.st, x)

    @cython.always_allow_keywords(False)    # METH_O: the cheapest call from Python
    def update(self, double x):
        """Add one value; returns (slope, intercept, r2)."""
        linreg_step(&self.st, x)
        return (self.st.h.value, self.st.intercept, self.st.r2)

    def reset(self):
        linreg_clear(&self.st)

    @property
    def value(self):
        """(slope, intercept, r2)."""
        return (self.st.h.value, self.st.intercept, self.st.r2)

    @property
    def slope(self):
        return self.st.h.value

    @property
    def intercept(self):
        return self.st.intercept

    @property
    def r2(self):
        return self.st.r2

    @property
    def line_end(self):
        """The line at the newest value: intercept + slope * (period - 1) (TA_LINEARREG)."""
        return self.st.intercept + self.st.h.value * self.st.span

    @property
    def period(self):
        return self.st.w.cap

    def _params(self):
        return {"period": self.st.w.cap}


@cython.final
cdef class TrueRange(Kernel):
    """True range, TA_TRANGE: max(high - low, |prev close - high|, |prev close - low|). Warm from the
    second bar."""

    def __cinit__(self, *args, **kwargs):
        trange_init(&self.st)
        self._head = &self.st.h

    def __init__(self):
        pass

    cdef double update_c(self, double high, double low, double close) noexcept nogil:
        return trange_step(&self.st, high, low, close)

    def update(self, double high, double low, double close):
        """Add one bar; returns its true range."""
        return trange_step(&self.st, high, low, close)

    def reset(self):
        trange_init(&self.st)


@cython.final
cdef class Atr(Kernel):
    """Average true range, TA_ATR (Wilder): the mean of the first `period` true ranges, then
    atr = (1 - b) * tr + b * atr with b = (period - 1) / period. Warm after period + 1 bars."""

    def __cinit__(self, period=14, *args, **kwargs):
        atr_init(&self.st, _period(period, "period", 1))
        self._head = &self.st.h

    def __init__(self, period=14):
        pass

    cdef double update_c(self, double high, double low, double close) noexcept nogil:
        return atr_step(&self.st, high, low, close)

    def update(self, double high, double low, double close):
        """Add one bar; returns the current ATR."""
        return atr_step(&self.st, high, low, close)

    def reset(self):
        atr_init(&self.st, self.st.period)

    @property
    def true_range(self):
        """The true range of the last accepted bar."""
        return self.st.true_range

    @property
    def period(self):
        return self.st.period

    def _params(self):
        return {"period": self.st.period}


@cython.final
cdef class RollingOls(Kernel):
    """Least squares y = intercept + slope * x over the last `period` (x, y) pairs: (slope,
    intercept, r2). A window where x does not vary gives slope 0 and r2 0 (and r2 is 0 where y does
    not vary). Warm after `period` pairs. update_c() returns the slope."""

    def __cinit__(self, period, *args, **kwargs):
        if ols_init(&self.st, _period(period, "period", 2)) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, period):
        pass

    def __dealloc__(self):
        win_free(&self.st.wx)
        win_free(&self.st.wy)

    cdef double update_c(self, double x, double y) noexcept nogil:
        return ols_step(&self.st, x, y)

    def update(self, double x, double y):
        """Add one (x, y) pair; returns (slope, intercept, r2)."""
        ols_step(&self.st, x, y)
        return (self.st.h.value, self.st.intercept, self.st.r2)

    def reset(self):
        head_init(&self.st.h)
        self.st.intercept = NAN
        self.st.r2 = NAN
        ols_clear_sums(&self.st.s)
        win_clear(&self.st.wx)
        win_clear(&self.st.wy)

    @property
    def value(self):
        """(slope, intercept, r2)."""
        return (self.st.h.value, self.st.intercept, self.st.r2)

    @property
    def slope(self):
        return self.st.h.value

    @property
    def intercept(self):
        return self.st.intercept

    @property
    def r2(self):
        return self.st.r2

    @property
    def period(self):
        return self.st.wy.cap

    def _params(self):
        return {"period": self.st.wy.cap}


@cython.final
cdef class Beta(Kernel):
    """Beta of y against x, TA_BETA(x, y, period): the regression slope of y's returns on x's returns
    over the last `period` returns (x is the market, TA-Lib's inReal0; y the asset). A return from a
    zero price counts as 0; a window where x's returns do not vary gives 0. Warm after period + 1
    pairs."""

    def __cinit__(self, period=5, *args, **kwargs):
        if beta_init(&self.st, _period(period, "period", 1)) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, period=5):
        pass

    def __dealloc__(self):
        win_free(&self.st.wx)
        win_free(&self.st.wy)

    cdef double update_c(self, double x, double y) noexcept nogil:
        return beta_step(&self.st, x, y)

    def update(self, double x, double y):
        """Add one pair of prices; returns the current beta."""
        return beta_step(&self.st, x, y)

    def reset(self):
        beta_clear(&self.st)

    @property
    def period(self):
        return self.st.period

    def _params(self):
        return {"period": self.st.period}


@cython.final
cdef class Vwap(Kernel):
    """Volume-weighted average price. window=0: since the session started (reset() starts a new
    one), with compensated sums; window=N: over the last N trades. A negative volume is skipped; a
    zero-volume trade counts in the window but weighs nothing. NaN until there is volume (and, rolling,
    until N trades)."""

    def __cinit__(self, window=0, *args, **kwargs):
        if vwap_init(&self.st, _period(window, "window", 0)) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, window=0):
        pass

    def __dealloc__(self):
        win_free(&self.st.wp)
        win_free(&self.st.wv)

    cdef double update_c(self, double price, double volume) noexcept nogil:
        return vwap_step(&self.st, price, volume)

    def update(self, double price, double volume):
        """Add one trade; returns the current VWAP."""
        return vwap_step(&self.st, price, volume)

    def reset(self):
        """Start a new session (or empty the rolling window)."""
        head_init(&self.st.h)
        self.st.pv = self.st.v = self.st.pv_c = self.st.v_c = 0.0
        gsum_clear(&self.st.rpv)
        gsum_clear(&self.st.rv)
        if self.st.rolling:
            win_clear(&self.st.wp)
            win_clear(&self.st.wv)

    @property
    def window(self):
        return self.st.wv.cap if self.st.rolling else 0

    @property
    def volume(self):
        """The volume the current value is weighted by."""
        return self.st.rv.sum if self.st.rolling else self.st.v + self.st.v_c

    def _params(self):
        return {"window": self.window}


@cython.final
cdef class TradeFlowImbalance(Kernel):
    """(buy volume - sell volume) / (buy volume + sell volume) over the last `window` trades, by the
    aggressor's side (is_buy: the buyer lifted the ask). 0 for a window without volume. Negative sizes
    are skipped. Warm after `window` trades."""

    def __cinit__(self, window, *args, **kwargs):
        if flow_init(&self.st, _period(window, "window", 1)) != 0:
            raise MemoryError()
        self._head = &self.st.h

    def __init__(self, window):
        pass

    def __dealloc__(self):
        win_free(&self.st.w)

    cdef double update_c(self, double size, bint is_buy) noexcept nogil:
        return flow_step(&self.st, size, is_buy)

    def update(self, double size, bint is_buy):
        """Add one trade; returns the current imbalance."""
        return flow_step(&self.st, size, is_buy)

    def reset(self):
        head_init(&self.st.h)
        gsum_clear(&self.st.buy)
        gsum_clear(&self.st.sell)
        win_clear(&self.st.w)

    @property
    def window(self):
        return self.st.w.cap

    def _params(self):
        return {"window": self.st.w.cap}


@cython.final
cdef class Microprice(Kernel):
    """Size-weighted mid, (bid * ask_size + ask * bid_size) / (bid_size + ask_size), as
    OrderBook.microprice(). A quote with a non-finite input, a negative size or no size is skipped."""

    def __cinit__(self, *args, **kwargs):
        head_init(&self.st)
        self._head = &self.st

    def __init__(self):
        pass

    cdef double update_c(self, double bid, double bid_size, double ask, double ask_size) noexcept nogil:
        return microprice_step(&self.st, bid, bid_size, ask, ask_size)

    def update(self, double bid, double bid_size, double ask, double ask_size):
        """Add one quote; returns the microprice."""
        return microprice_step(&self.st, bid, bid_size, ask, ask_size)

    cdef double update_book_c(self, OrderBook book) noexcept nogil:
        """From a book's touch (its raw sizes: the formula does not depend on the size unit)."""
        if not (book.has_best(0) and book.has_best(1)):
            return head_skip(&self.st)
        return microprice_step(&self.st, book._px(book.best_price_raw(0)), <double>book.best_qty_raw(0),
                               book._px(book.best_price_raw(1)), <double>book.best_qty_raw(1))

    def update_book(self, OrderBook book not None):
        """Add the book's current touch; returns the microprice."""
        return self.update_book_c(book)

    def reset(self):
        head_init(&self.st)


@cython.final
cdef class BookImbalance(Kernel):
    """(bid size - ask size) / (bid size + ask size) over the best `levels` levels, from a top-N array
    (rows [bid price, bid size, ask price, ask size], as OrderBook.top(n) gives; NaN rows are missing
    levels) or from an OrderBook. A snapshot without size, or with a negative or infinite size, is
    skipped."""

    def __cinit__(self, levels=5, *args, **kwargs):
        self.levels = _period(levels, "levels", 1)
        head_init(&self.st)
        self._head = &self.st

    def __init__(self, levels=5):
        pass

    cdef double update_c(self, const double *top, Py_ssize_t rows) noexcept nogil:
        return imbalance_step(&self.st, top, rows, self.levels)

    @cython.always_allow_keywords(False)
    def update(self, top):
        """Add one top-N snapshot (an (n, 4) array); returns the imbalance."""
        cdef cnp.ndarray a = _as_rows(top, "top")
        return imbalance_step(&self.st, <const double *>cnp.PyArray_DATA(a), a.shape[0], self.levels)

    cdef double update_book_c(self, OrderBook book) noexcept nogil:
        # Raw sizes: the ratio does not depend on the size unit.
        return imbalance_value(&self.st, <double>book._depth_raw(0, self.levels),
                               <double>book._depth_raw(1, self.levels))

    def update_book(self, OrderBook book not None):
        """Add the book's current depth over `levels` levels; returns the imbalance."""
        return self.update_book_c(book)

    def reset(self):
        head_init(&self.st)

    def _params(self):
        return {"levels": self.levels}


# ---------------------------------------------------------------------------------------------------
# Batch fast paths. A batch runs TA-Lib's own tight loop -- reading the departing values straight from
# the input array, no ring, no per-value bookkeeping -- for as long as the inputs are finite. At the
# first input the step function would skip, the fast path stops and leaves the state exactly as the
# step function would have left it after the same inputs (the ring refilled from the array), and the
# batch carries on with the step function. The arithmetic is the step function's, operation for
# operation, so the result is bit-identical either way (tests/property checks batch == streaming,
# with and without non-finite values).
# ---------------------------------------------------------------------------------------------------

cdef inline void win_fill(Window *w, const double *x, Py_ssize_t end) noexcept nogil:
    """Make w hold the last min(end, cap) values of x[0:end], as pushing x[0:end] one by one would."""
    cdef Py_ssize_t j, start = end - w.cap if end > w.cap else 0
    win_clear(w)
    for j in range(start, end):
        win_push(w, x[j])


cdef inline void fill_nan(double *out, Py_ssize_t start, Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(start, end):
        out[j] = NAN


cdef Py_ssize_t sma_fast(SmaState *s, const double *x, double *out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0, p = s.period
    cdef double total = 0.0, v, value = NAN, dp = <double>p
    while i < n and i < p:
        v = x[i]
        if not ex_isfinite(v):
            break
        total += v
        if i == p - 1:
            value = total / dp
        out[i] = value
        i += 1
    if i == p:
        # Unchecked blocks (ex_sma); the block with a bad input is redone here, up to that input.
        i = ex_sma(x, out, i, n, p, &total)
        if i > p:
            value = out[i - 1]
        while i < n:
            v = x[i]
            if not ex_isfinite(v):
                break
            total += v - x[i - p]
            value = total / dp
            out[i] = value
            i += 1
    s.total = total
    s.h.count = i
    s.h.value = value
    win_fill(&s.w, x, i)
    return i


cdef Py_ssize_t ema_fast(EmaState *s, const double *x, double *out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0, p = s.period
    cdef double seed = 0.0, v, value = NAN
    while i < n and i < p:
        v = x[i]
        if not ex_isfinite(v):
            break
        seed += v
        if i == p - 1:
            value = seed / <double>p
        out[i] = value
        i += 1
    if i == p:
        i += ex_ema(x + i, out + i, n - i, &value, s.a, s.b)
    s.seed = seed
    s.h.count = i
    s.h.value = value
    return i


cdef Py_ssize_t wma_fast(WmaState *s, const double *x, double *out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0, j, p = s.period
    cdef double v, value = NAN, psum = 0.0, psub = 0.0, trailing = 0.0, dp = <double>p, divider = s.divider
    cdef int64_t until_reseed = 8 * p
    if p == 1:
        while i < n and ex_isfinite(x[i]):
            value = x[i]
            out[i] = value
            i += 1
    else:
        while i < n and i < p - 1:
            v = x[i]
            if not ex_isfinite(v):
                break
            psub += v
            psum += v * <double>(i + 1)
            out[i] = NAN
            i += 1
        if i == p - 1 and i < n and ex_isfinite(x[i]):
            # The first full window: nothing leaves yet (wma_step with trailing 0).
            v = x[i]
            psub += v
            until_reseed -= 1
            value = fma(v, dp, psum) / divider
            psum += fma(v, dp, -psub)
            out[i] = value
            i += 1
            trailing = x[0]
            # Unchecked blocks (ex_wma); the block with a bad input is redone here, up to that input.
            i = ex_wma(x, out, i, n, p, &psum, &psub, &until_reseed, &s.h.rebuilds, divider)
            if i > p:
                value = out[i - 1]
            while i < n:
                v = x[i]
                if not ex_isfinite(v):
                    break
                psub += v - x[i - p]
                until_reseed -= 1
                if until_reseed <= 0:
                    until_reseed = 8 * p
                    psub = 0.0
                    psum = 0.0
                    for j in range(p):
                        psub += x[i - p + 1 + j]
                        psum += x[i - p + 1 + j] * <double>(j + 1)
                    s.h.rebuilds += 1
                    value = psum / divider
                    psum -= psub
                else:
                    value = fma(v, dp, psum) / divider
                    psum += fma(v, dp, -psub)
                out[i] = value
                i += 1
            trailing = x[i - p]
    s.period_sum = psum
    s.period_sub = psub
    s.trailing = trailing
    s.until_reseed = until_reseed
    s.h.count = i
    s.h.value = value
    win_fill(&s.w, x, i)
    return i


cdef Py_ssize_t rsi_fast(RsiState *s, const double *x, double *out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0, p = s.period
    cdef double v, change, up, gain = 0.0, loss = 0.0, prev = NAN, value = NAN, total
    cdef double inv = s.inv_period
    if n > 0 and ex_isfinite(x[0]):
        prev = x[0]
        out[0] = NAN
        i = 1
        while i < n and i <= p:
            v = x[i]
            if not ex_isfinite(v):
                break
            change = v - prev
            prev = v
            up = change if change > 0.0 else 0.0
            gain += up
            loss += up - change
            if i == p:
                loss *= inv
                gain *= inv
                total = gain + loss
                value = 100.0 * (gain / total) if total > 0.0 else 0.0
            out[i] = value
            i += 1
        if i == p + 1:
            i += ex_rsi(x + i, out + i, n - i, &prev, &gain, &loss, &value, s.a, s.b)
    s.gain = gain
    s.loss = loss
    s.prev = prev
    s.h.count = i
    s.h.value = value
    return i


cdef Py_ssize_t macd_fast(MacdState *s, const double *x, double *line_out, double *sig_out, double *hist_out,
                          Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0, j, fast = s.fast, slow = s.slow, signal = s.signal
    cdef double v, line = NAN, slow_seed = 0.0, fast_seed = 0.0, ef = 0.0, es = 0.0, sig = 0.0
    cdef double out_line = NAN, out_sig = NAN, out_hist = NAN
    while i < n and i < slow:
        v = x[i]
        if not ex_isfinite(v):
            break
        slow_seed += v
        if i + 1 > slow - fast:
            fast_seed += v
        i += 1
        if i == slow:
            es = slow_seed / <double>slow
            ef = fast_seed / <double>fast
            line = ef - es
            if i == slow + signal - 1:
                sig += line
                sig = sig / <double>signal
                out_line = line
                out_sig = sig
                out_hist = line - sig
            else:
                sig += line
        line_out[i - 1] = out_line
        sig_out[i - 1] = out_sig
        hist_out[i - 1] = out_hist
    if i == slow:
        while i < n and i < slow + signal - 1:
            v = x[i]
            if not ex_isfinite(v):
                break
            ef = fma(ef, s.coef[1], s.coef[0] * v)
            es = fma(es, s.coef[3], s.coef[2] * v)
            line = ef - es
            sig += line
            i += 1
            if i == slow + signal - 1:
                sig = sig / <double>signal
                out_line = line
                out_sig = sig
                out_hist = line - sig
            line_out[i - 1] = out_line
            sig_out[i - 1] = out_sig
            hist_out[i - 1] = out_hist
        if i == slow + signal - 1:
            j = ex_macd(x + i, line_out + i, sig_out + i, hist_out + i, n - i, &ef, &es, &sig, s.coef)
            if j > 0:
                i += j
                out_line = line_out[i - 1]
                out_sig = sig_out[i - 1]
                out_hist = hist_out[i - 1]
    s.slow_seed = slow_seed
    s.fast_seed = fast_seed
    s.ema_fast = ef
    s.ema_slow = es
    s.signal_sum = sig
    s.h.count = i
    s.h.value = out_line
    s.signal_value = out_sig
    s.histogram = out_hist
    return i


cdef Py_ssize_t svar_fast(ShiftedVar *sv, KernelHead *h, Window *win, double *total_io, bint want_mean,
                          const double *x, double *var_out, double *mean_out, double *upper, int mode, double f1,
                          double f2, Py_ssize_t n) noexcept nogil:
    """TA-Lib's VAR loop (and, with want_mean, TA_SMA's running total beside it, as BBANDS fuses them),
    mapped to the outputs by ex_svar (mode EX_SVAR_STDDEV: var_out[i] = the standard deviation times
    f1; EX_SVAR_BBANDS: upper / mean_out / var_out = the bands, factors f1 / f2); NaN during warm-up."""
    cdef Py_ssize_t i = 0, p = sv.period
    cdef double v, d, total = 0.0
    cdef double shift = 0.0, s1 = 0.0, s2 = 0.0, inv = sv.inv_period
    cdef int64_t until_reseed = 32 * p
    cdef bint anchored = False
    while i < n and i < p - 1:
        v = x[i]
        if not ex_isfinite(v):
            break
        if not anchored:
            shift = v
            anchored = True
        d = v - shift
        s1 += d
        s2 += d * d
        total += v
        var_out[i] = NAN
        if want_mean:
            mean_out[i] = NAN
        i += 1
    if i == p - 1:
        # (anchored by now: StdDev and BBANDS need a period of 2 or more) The loop is ex_svar.
        i = ex_svar(x, var_out, mean_out if want_mean else NULL, upper, i, n, p, &shift, &s1, &s2, &total,
                    &until_reseed, &h.rebuilds, inv, mode, f1, f2)
    sv.shift = shift
    sv.s1 = s1
    sv.s2 = s2
    sv.until_reseed = until_reseed
    sv.anchored = anchored
    total_io[0] = total
    h.count = i
    win_fill(win, x, i)
    return i


cdef Py_ssize_t atr_fast(AtrState *s, const double *hi, const double *lo, const double *cl, double *out,
                         Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0, p = s.period
    cdef double tr = NAN, seed = 0.0, value = NAN, prev_close = NAN
    cdef ex_pair_state ps
    if n > 0 and ex_isfinite(hi[0]) and ex_isfinite(lo[0]) and ex_isfinite(cl[0]):
        prev_close = cl[0]
        out[0] = NAN
        i = 1
        while i < n and i <= p:
            if not (ex_isfinite(hi[i]) and ex_isfinite(lo[i]) and ex_isfinite(cl[i])):
                break
            tr = true_range(hi[i], lo[i], prev_close)
            seed += tr
            if i == p:
                value = seed / <double>p
            out[i] = value
            prev_close = cl[i]
            i += 1
        if i == p + 1:
            # Blocks of vectorised true ranges, then the chain over them (ex_atr); a block with a bad
            # input is left to the step function.
            ps.value = value
            ps.anchor = s.anchor
            ps.pending = s.pending
            ps.phase = s.phase
            i = i - 1 + ex_atr(hi + i - 1, lo + i - 1, cl + i - 1, out + i - 1, n - i + 1, &ps, s.alpha, s.beta,
                               s.beta2)
            value = ps.value
            s.anchor = ps.anchor
            s.pending = ps.pending
            s.phase = ps.phase
            prev_close = cl[i - 1]
            if i > p + 1:
                tr = true_range(hi[i - 1], lo[i - 1], cl[i - 2])
    s.seed = seed
    s.true_range = tr
    s.prev_close = prev_close
    s.h.count = i
    s.h.value = value
    return i


cdef Py_ssize_t trange_fast(TrueRangeState *s, const double *hi, const double *lo, const double *cl, double *out,
                            Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0, e
    cdef double value = NAN, prev_close = NAN
    if n > 0 and ex_isfinite(hi[0]) and ex_isfinite(lo[0]) and ex_isfinite(cl[0]):
        out[0] = NAN
        i = 1
        # Vectorised blocks while every input is finite (ex_trange_blocks); the block with a bad input
        # is redone by the checked loop, up to that input.
        i = ex_trange_blocks(hi, lo, cl, out, n)
        prev_close = cl[i - 1]
        if i > 1:
            value = out[i - 1]
        while i < n:
            if not (ex_isfinite(hi[i]) and ex_isfinite(lo[i]) and ex_isfinite(cl[i])):
                break
            value = true_range(hi[i], lo[i], prev_close)
            out[i] = value
            prev_close = cl[i]
            i += 1
    s.prev_close = prev_close
    s.h.count = i
    s.h.value = value
    return i


cdef Py_ssize_t returns_fast(ReturnsState *s, const double *x, double *out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0, p = s.period
    cdef double v, prev, value = NAN
    while i < n and i < p:
        v = x[i]
        if not ex_isfinite(v) or (s.log and not v > 0.0):
            break
        out[i] = NAN
        i += 1
    if i == p:
        if s.log:
            while i < n:
                v = x[i]
                if not (ex_isfinite(v) and v > 0.0):
                    break
                value = log(v / x[i - p])
                out[i] = value
                i += 1
        else:
            # Vectorised blocks (ex_rocp); the block with a bad input is redone here, up to it.
            i = ex_rocp(x, out, i, n, p)
            if i > p:
                value = out[i - 1]
            while i < n:
                v = x[i]
                if not ex_isfinite(v):
                    break
                prev = x[i - p]
                value = (v - prev) / prev if prev != 0.0 else 0.0
                out[i] = value
                i += 1
    s.h.count = i
    s.h.value = value
    win_fill(&s.w, x, i)
    return i


cdef void beta_rebuild_array(BetaState *s, const double *x, const double *y) noexcept nogil:
    """beta_rebuild over the contiguous prices x[0:period+1], y[0:period+1]: same operations, same order."""
    cdef Py_ssize_t j, n = s.period + 1
    cdef double acc_x = 0.0, acc_y = 0.0, ex, ey
    for j in range(1, n):
        if not ta_is_zero(x[j - 1]):
            acc_x += (x[j] - x[j - 1]) / x[j - 1]
        if not ta_is_zero(y[j - 1]):
            acc_y += (y[j] - y[j - 1]) / y[j - 1]
    s.shift_x = acc_x / s.n
    s.shift_y = acc_y / s.n
    s.sxx = s.sxy = s.syy = s.sx = s.sy = 0.0
    for j in range(1, n):
        ex = beta_dev(x[j], x[j - 1], s.shift_x)
        ey = beta_dev(y[j], y[j - 1], s.shift_y)
        s.sxx += ex * ex
        s.sxy += ex * ey
        s.syy += ey * ey
        s.sx += ex
        s.sy += ey


cdef void beta_rebuild_cb(void *owner, const double *x, const double *y, ex_beta_state *es) noexcept nogil:
    """ex_beta's rebuild: beta_rebuild_array on the owner's state, the results handed back."""
    cdef BetaState *s = <BetaState *>owner
    beta_rebuild_array(s, x, y)
    es.shift_x = s.shift_x
    es.shift_y = s.shift_y
    es.sxx = s.sxx
    es.sxy = s.sxy
    es.syy = s.syy
    es.sx = s.sx
    es.sy = s.sy


cdef Py_ssize_t beta_fast(BetaState *s, const double *x, const double *y, double *out, Py_ssize_t n) noexcept nogil:
    """beta_step's operations over arrays: the first window here, then ex_beta (ex_features.h), which
    takes the divisions out of the serial loop."""
    cdef Py_ssize_t i = 0, p = s.period
    cdef double dx, dy, denom, denom_scale, ex, ey, nn = s.n
    cdef ex_beta_state es
    while i < n:
        if i == p + 1 and p <= EX_BETA_MAX_PERIOD:
            es.shift_x = s.shift_x
            es.shift_y = s.shift_y
            es.sxx = s.sxx
            es.sxy = s.sxy
            es.syy = s.syy
            es.sx = s.sx
            es.sy = s.sy
            es.leaving_xx = s.leaving_xx
            es.leaving_yy = s.leaving_yy
            es.until = s.until_reseed
            es.rebuilds = s.h.rebuilds
            i = ex_beta(x, y, out, i, n, p, &es, beta_rebuild_cb, s)
            s.shift_x = es.shift_x
            s.shift_y = es.shift_y
            s.sxx = es.sxx
            s.sxy = es.sxy
            s.syy = es.syy
            s.sx = es.sx
            s.sy = es.sy
            s.leaving_xx = es.leaving_xx
            s.leaving_yy = es.leaving_yy
            s.until_reseed = es.until
            s.h.rebuilds = es.rebuilds
            if i > p + 1:
                s.h.value = out[i - 1]
            if i >= n:
                break
        if not (ex_isfinite(x[i]) and ex_isfinite(y[i])):
            break
        if i == 0:
            out[0] = NAN
            i = 1
            continue
        if i == 1:
            s.shift_x = (x[1] - x[0]) / x[0] if not ta_is_zero(x[0]) else 0.0
            s.shift_y = (y[1] - y[0]) / y[0] if not ta_is_zero(y[0]) else 0.0
        dx = beta_dev(x[i], x[i - 1], s.shift_x)
        dy = beta_dev(y[i], y[i - 1], s.shift_y)
        s.sxx += dx * dx
        s.sxy += dx * dy
        s.syy += dy * dy
        s.sx += dx
        s.sy += dy
        if i < p:
            out[i] = NAN
            i += 1
            continue
        denom_scale = nn * s.sxx
        denom = denom_scale - s.sx * s.sx
        s.until_reseed -= 1
        if (denom < 0.000001 * denom_scale or s.leaving_xx > 1000.0 * s.sxx or s.leaving_yy > 1000.0 * s.syy
                or s.until_reseed <= 0):
            s.until_reseed = 32 * s.period
            beta_rebuild_array(s, x + (i - p), y + (i - p))
            s.h.rebuilds += 1
            denom_scale = nn * s.sxx
            denom = denom_scale - s.sx * s.sx
            if denom < 0.0:
                denom = 0.0
        ex = beta_dev(x[i - p + 1], x[i - p], s.shift_x)
        ey = beta_dev(y[i - p + 1], y[i - p], s.shift_y)
        if denom > TA_EPSILON * denom_scale:
            s.h.value = (nn * s.sxy - s.sx * s.sy) / denom
        else:
            s.h.value = 0.0
        out[i] = s.h.value
        s.leaving_xx = ex * ex
        s.leaving_yy = ey * ey
        s.sxx -= ex * ex
        s.sxy -= ex * ey
        s.syy -= ey * ey
        s.sx -= ex
        s.sy -= ey
        i += 1
    s.h.count = i
    win_fill(&s.wx, x, i)
    win_fill(&s.wy, y, i)
    return i


cdef Py_ssize_t linreg_fast(LinRegState *s, const double *x, double *slope, double *icpt, double *r2,
                           Py_ssize_t n) noexcept nogil:
    """linreg_step's operations, reading the departing value and the rebuild window from the array."""
    cdef Py_ssize_t i = 0, p = s.w.cap
    cdef double v
    cdef double c[5]
    if p <= LINREG_DIRECT_MAX:
        # Short windows: every window's sums afresh (ex_linreg_direct), as linreg_step does.
        while i < n and i < p - 1:
            if not ex_isfinite(x[i]):
                break
            slope[i] = NAN
            icpt[i] = NAN
            r2[i] = NAN
            i += 1
        if i == p - 1:
            c[0] = s.span
            c[1] = s.half_span
            c[2] = s.cxx
            c[3] = s.inv_cxx
            c[4] = s.inv_n
            i = ex_linreg_direct(x, slope, icpt, r2, i, n, p, c)
            if i >= p:
                s.h.value = slope[i - 1]
                s.intercept = icpt[i - 1]
                s.r2 = r2[i - 1]
                s.ky = x[i - 1]
        s.h.count = i
        win_fill(&s.w, x, i)
        return i
    while i < n and i < p:
        v = x[i]
        if not ex_isfinite(v):
            break
        if i == 0:
            s.ky = v
        linreg_add(s, v - s.ky, <double>i)
        if i == p - 1:
            if linreg_stale(s):
                linreg_rebuild(s, x, p)
            linreg_output(s)
        slope[i] = s.h.value
        icpt[i] = s.intercept
        r2[i] = s.r2
        i += 1
    if i == p:
        while i < n:
            v = x[i]
            if not ex_isfinite(v):
                break
            linreg_slide(s, x[i - p] - s.ky, v - s.ky)
            if linreg_stale(s):
                linreg_rebuild(s, x + (i - p + 1), p)
            slope[i] = linreg_output(s)
            icpt[i] = s.intercept
            r2[i] = s.r2
            i += 1
    s.h.count = i
    win_fill(&s.w, x, i)
    return i


cdef inline Py_ssize_t skip_leading(KernelHead *h, const double *x, double *out, Py_ssize_t n) noexcept nogil:
    """Leading non-finite inputs change nothing but `skipped` (TA-Lib's wrapper starts after them too):
    count them, write NaN, and let the fast path start after them."""
    cdef Py_ssize_t k = 0
    while k < n and not ex_isfinite(x[k]):
        out[k] = NAN
        k += 1
    h.skipped = k
    return k


cdef inline Py_ssize_t skip_leading_returns(KernelHead *h, const double *x, double *out, Py_ssize_t n,
                                            bint log_returns) noexcept nogil:
    cdef Py_ssize_t k = 0
    while k < n and not (ex_isfinite(x[k]) and (not log_returns or x[k] > 0.0)):
        out[k] = NAN
        k += 1
    h.skipped = k
    return k


cdef inline Py_ssize_t skip_leading2(KernelHead *h, const double *a, const double *b, double *out,
                                     Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k = 0
    while k < n and not (ex_isfinite(a[k]) and ex_isfinite(b[k])):
        out[k] = NAN
        k += 1
    h.skipped = k
    return k


cdef inline Py_ssize_t skip_leading3(KernelHead *h, const double *a, const double *b, const double *c,
                                     double *out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k = 0
    while k < n and not (ex_isfinite(a[k]) and ex_isfinite(b[k]) and ex_isfinite(c[k])):
        out[k] = NAN
        k += 1
    h.skipped = k
    return k


# ---------------------------------------------------------------------------------------------------
# Batch functions: numpy in, numpy out, the streaming step function in a nogil loop
# ---------------------------------------------------------------------------------------------------

cdef cnp.ndarray _as_series(x, str name):
    cdef cnp.ndarray a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {np.shape(a)}")
    return a


cdef cnp.ndarray _as_rows(x, str name):
    cdef cnp.ndarray a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{name} must have shape (levels, 4), got {np.shape(a)}")
    return a


cdef Py_ssize_t _same_length(list arrays, tuple names) except -1:
    cdef Py_ssize_t n = arrays[0].shape[0]
    for a, name in zip(arrays[1:], names[1:]):
        if a.shape[0] != n:
            raise ValueError(f"{names[0]} and {name} must have the same length, got {n} and {a.shape[0]}")
    return n


cdef cnp.ndarray _empty(Py_ssize_t n):
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    return cnp.PyArray_EMPTY(1, dims, cnp.NPY_FLOAT64, 0)


cdef tuple _empty3(Py_ssize_t n):
    """Three output arrays of length n, as the rows of one (3, n) array: one allocation instead of
    three. (At 1M values, glibc keeps one 24 MB block on its heap between calls -- under its 32 MB
    mmap ceiling -- while three 8 MB blocks freed together exceed its trim threshold and come back
    as fresh pages, ~1300 page faults per call measured; see benches/README.md.)"""
    cdef cnp.npy_intp dims[2]
    dims[0] = 3
    dims[1] = n
    cdef cnp.ndarray a = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT64, 0)
    return a[0], a[1], a[2]


cdef inline const double *_src(cnp.ndarray a):
    return <const double *>cnp.PyArray_DATA(a)


cdef inline double *_dst(cnp.ndarray a):
    return <double *>cnp.PyArray_DATA(a)


def ema(x, period):
    """EMA of a series (TA_EMA); see Ema."""
    cdef cnp.ndarray xa = _as_series(x, "x")
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *src = _src(xa)
    cdef double *dst = _dst(out)
    cdef EmaState st
    ema_init(&st, _period(period, "period", 1))
    with nogil:
        k = skip_leading(&st.h, src, dst, n)
        for i in range(k + ema_fast(&st, src + k, dst + k, n - k), n):
            dst[i] = ema_step(&st, src[i])
    return out


def sma(x, period):
    """SMA of a series (TA_SMA); see Sma."""
    cdef cnp.ndarray xa = _as_series(x, "x")
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *src = _src(xa)
    cdef double *dst = _dst(out)
    cdef SmaState st
    if sma_init(&st, _period(period, "period", 1)) != 0:
        raise MemoryError()
    with nogil:
        k = skip_leading(&st.h, src, dst, n)
        for i in range(k + sma_fast(&st, src + k, dst + k, n - k), n):
            dst[i] = sma_step(&st, src[i])
        win_free(&st.w)
    return out


def wma(x, period):
    """WMA of a series (TA_WMA); see Wma."""
    cdef cnp.ndarray xa = _as_series(x, "x")
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *src = _src(xa)
    cdef double *dst = _dst(out)
    cdef WmaState st
    if wma_init(&st, _period(period, "period", 1)) != 0:
        raise MemoryError()
    with nogil:
        k = skip_leading(&st.h, src, dst, n)
        for i in range(k + wma_fast(&st, src + k, dst + k, n - k), n):
            dst[i] = wma_step(&st, src[i])
        win_free(&st.w)
    return out


def rsi(x, period=14):
    """RSI of a series (TA_RSI); see Rsi."""
    cdef cnp.ndarray xa = _as_series(x, "x")
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *src = _src(xa)
    cdef double *dst = _dst(out)
    cdef RsiState st
    rsi_init(&st, _period(period, "period", 2))
    with nogil:
        k = skip_leading(&st.h, src, dst, n)
        for i in range(k + rsi_fast(&st, src + k, dst + k, n - k), n):
            dst[i] = rsi_step(&st, src[i])
    return out


def macd(x, fast=12, slow=26, signal=9):
    """(macd, signal, histogram) arrays of a series (TA_MACD); see Macd."""
    cdef cnp.ndarray xa = _as_series(x, "x")
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray line, sig, hist
    line, sig, hist = _empty3(n)
    cdef const double *src = _src(xa)
    cdef double *d_line = _dst(line)
    cdef double *d_sig = _dst(sig)
    cdef double *d_hist = _dst(hist)
    cdef MacdState st
    macd_init(&st, _period(fast, "fast", 2), _period(slow, "slow", 2), _period(signal, "signal", 1))
    with nogil:
        k = skip_leading(&st.h, src, d_line, n)
        fill_nan(d_sig, 0, k)
        fill_nan(d_hist, 0, k)
        for i in range(k + macd_fast(&st, src + k, d_line + k, d_sig + k, d_hist + k, n - k), n):
            d_line[i] = macd_step(&st, src[i])
            d_sig[i] = st.signal_value
            d_hist[i] = st.histogram
    return line, sig, hist


def bbands(x, period=20, nbdev_up=2.0, nbdev_dn=2.0):
    """(upper, middle, lower) Bollinger band arrays of a series (TA_BBANDS, SMA); see BollingerBands."""
    cdef cnp.ndarray xa = _as_series(x, "x")
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray upper, middle, lower
    upper, middle, lower = _empty3(n)
    cdef const double *src = _src(xa)
    cdef double *d_up = _dst(upper)
    cdef double *d_mid = _dst(middle)
    cdef double *d_lo = _dst(lower)
    cdef BBandsState st
    if bbands_init(&st, _period(period, "period", 2), _factor(nbdev_up, "nbdev_up"),
                   _factor(nbdev_dn, "nbdev_dn")) != 0:
        raise MemoryError()
    cdef Py_ssize_t start, warm
    with nogil:
        k = skip_leading(&st.h, src, d_mid, n)
        fill_nan(d_up, 0, k)
        fill_nan(d_lo, 0, k)
        start = k + svar_fast(&st.v, &st.h, &st.w, &st.total, True, src + k, d_lo + k, d_mid + k, d_up + k,
                              EX_SVAR_BBANDS, st.nbdev_up, st.nbdev_dn, n - k)
        warm = k + st.v.period - 1 if k + st.v.period - 1 < start else start
        fill_nan(d_up, k, warm)
        if start > k:
            st.h.value = d_mid[start - 1]
            st.upper = d_up[start - 1]
            st.lower = d_lo[start - 1]
        for i in range(start, n):
            d_mid[i] = bbands_step(&st, src[i])
            d_up[i] = st.upper
            d_lo[i] = st.lower
        win_free(&st.w)
    return upper, middle, lower


def stddev(x, period, nbdev=1.0):
    """Rolling population standard deviation (TA_STDDEV); see StdDev."""
    cdef cnp.ndarray xa = _as_series(x, "x")
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *src = _src(xa)
    cdef double *dst = _dst(out)
    cdef StdDevState st
    if stddev_init(&st, _period(period, "period", 2), _factor(nbdev, "nbdev")) != 0:
        raise MemoryError()
    cdef Py_ssize_t start
    cdef double unused_total = 0.0
    with nogil:
        k = skip_leading(&st.h, src, dst, n)
        start = k + svar_fast(&st.v, &st.h, &st.w, &unused_total, False, src + k, dst + k, NULL, NULL,
                              EX_SVAR_STDDEV, st.nbdev, 1.0, n - k)
        if start > k:
            st.h.value = dst[start - 1]
        for i in range(start, n):
            dst[i] = stddev_step(&st, src[i])
        win_free(&st.w)
    return out


def zscore(x, period):
    """Rolling z-score of each value in its window; see ZScore."""
    cdef cnp.ndarray xa = _as_series(x, "x")
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *src = _src(xa)
    cdef double *dst = _dst(out)
    cdef ZScoreState st
    if zscore_init(&st, _period(period, "period", 2)) != 0:
        raise MemoryError()
    with nogil:
        for i in range(n):
            dst[i] = zscore_step(&st, src[i])
        win_free(&st.w)
    return out


def realized_volatility(x, period):
    """Rolling realized volatility of a price series; see RealizedVolatility."""
    cdef cnp.ndarray xa = _as_series(x, "x")
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *src = _src(xa)
    cdef double *dst = _dst(out)
    cdef RealizedVolState st
    if rvol_init(&st, _period(period, "period", 1)) != 0:
        raise MemoryError()
    with nogil:
        for i in range(n):
            dst[i] = rvol_step(&st, src[i])
        win_free(&st.w)
    return out


cdef cnp.ndarray _returns(x, period, bint log_returns):
    cdef cnp.ndarray xa = _as_series(x, "x")
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *src = _src(xa)
    cdef double *dst = _dst(out)
    cdef ReturnsState st
    if returns_init(&st, _period(period, "period", 1), log_returns) != 0:
        raise MemoryError()
    with nogil:
        k = skip_leading_returns(&st.h, src, dst, n, st.log)
        for i in range(k + returns_fast(&st, src + k, dst + k, n - k), n):
            dst[i] = returns_step(&st, src[i])
        win_free(&st.w)
    return out


def returns(x, period=1):
    """Simple returns over `period` values (TA_ROCP); see Returns."""
    return _returns(x, period, False)


def log_returns(x, period=1):
    """Log returns over `period` values; see LogReturns."""
    return _returns(x, period, True)


def linear_regression(x, period):
    """(slope, intercept, r2) arrays of the rolling line against position (TA_LINEARREG_SLOPE /
    _INTERCEPT convention); see LinearRegression."""
    cdef cnp.ndarray xa = _as_series(x, "x")
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray slope, intercept, r2
    slope, intercept, r2 = _empty3(n)
    cdef const double *src = _src(xa)
    cdef double *d_slope = _dst(slope)
    cdef double *d_icpt = _dst(intercept)
    cdef double *d_r2 = _dst(r2)
    cdef LinRegState st
    if linreg_init(&st, _period(period, "period", 2)) != 0:
        raise MemoryError()
    with nogil:
        k = skip_leading(&st.h, src, d_slope, n)
        fill_nan(d_icpt, 0, k)
        fill_nan(d_r2, 0, k)
        for i in range(k + linreg_fast(&st, src + k, d_slope + k, d_icpt + k, d_r2 + k, n - k), n):
            d_slope[i] = linreg_step(&st, src[i])
            d_icpt[i] = st.intercept
            d_r2[i] = st.r2
        win_free(&st.w)
    return slope, intercept, r2


def rolling_ols(x, y, period):
    """(slope, intercept, r2) arrays of the rolling regression of y on x; see RollingOls."""
    cdef cnp.ndarray xa = _as_series(x, "x"), ya = _as_series(y, "y")
    cdef Py_ssize_t i, n = _same_length([xa, ya], ("x", "y"))
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray slope, intercept, r2
    slope, intercept, r2 = _empty3(n)
    cdef const double *sx = _src(xa)
    cdef const double *sy = _src(ya)
    cdef double *d_slope = _dst(slope)
    cdef double *d_icpt = _dst(intercept)
    cdef double *d_r2 = _dst(r2)
    cdef OlsState st
    if ols_init(&st, _period(period, "period", 2)) != 0:
        win_free(&st.wx)
        win_free(&st.wy)
        raise MemoryError()
    with nogil:
        for i in range(n):
            d_slope[i] = ols_step(&st, sx[i], sy[i])
            d_icpt[i] = st.intercept
            d_r2[i] = st.r2
        win_free(&st.wx)
        win_free(&st.wy)
    return slope, intercept, r2


def beta(x, y, period=5):
    """Rolling beta of y against x (TA_BETA(x, y, period)); see Beta."""
    cdef cnp.ndarray xa = _as_series(x, "x"), ya = _as_series(y, "y")
    cdef Py_ssize_t i, n = _same_length([xa, ya], ("x", "y"))
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *sx = _src(xa)
    cdef const double *sy = _src(ya)
    cdef double *dst = _dst(out)
    cdef BetaState st
    if beta_init(&st, _period(period, "period", 1)) != 0:
        win_free(&st.wx)
        win_free(&st.wy)
        raise MemoryError()
    with nogil:
        k = skip_leading2(&st.h, sx, sy, dst, n)
        for i in range(k + beta_fast(&st, sx + k, sy + k, dst + k, n - k), n):
            dst[i] = beta_step(&st, sx[i], sy[i])
        win_free(&st.wx)
        win_free(&st.wy)
    return out


def trange(high, low, close):
    """True range of each bar (TA_TRANGE); see TrueRange."""
    cdef cnp.ndarray h = _as_series(high, "high"), l = _as_series(low, "low"), c = _as_series(close, "close")
    cdef Py_ssize_t i, n = _same_length([h, l, c], ("high", "low", "close"))
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *sh = _src(h)
    cdef const double *sl = _src(l)
    cdef const double *sc = _src(c)
    cdef double *dst = _dst(out)
    cdef TrueRangeState st
    trange_init(&st)
    with nogil:
        k = skip_leading3(&st.h, sh, sl, sc, dst, n)
        for i in range(k + trange_fast(&st, sh + k, sl + k, sc + k, dst + k, n - k), n):
            dst[i] = trange_step(&st, sh[i], sl[i], sc[i])
    return out


def atr(high, low, close, period=14):
    """Average true range (TA_ATR); see Atr."""
    cdef cnp.ndarray h = _as_series(high, "high"), l = _as_series(low, "low"), c = _as_series(close, "close")
    cdef Py_ssize_t i, n = _same_length([h, l, c], ("high", "low", "close"))
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *sh = _src(h)
    cdef const double *sl = _src(l)
    cdef const double *sc = _src(c)
    cdef double *dst = _dst(out)
    cdef AtrState st
    atr_init(&st, _period(period, "period", 1))
    with nogil:
        k = skip_leading3(&st.h, sh, sl, sc, dst, n)
        for i in range(k + atr_fast(&st, sh + k, sl + k, sc + k, dst + k, n - k), n):
            dst[i] = atr_step(&st, sh[i], sl[i], sc[i])
    return out


def vwap(price, volume, window=0, session=None):
    """VWAP of a trade series; see Vwap. window=0: cumulative within each session, where `session` is
    an optional array of labels (e.g. timestamps // 86_400_000_000 for UTC days) and a change of
    label starts a new session; window=N: over the last N trades (sessions then also reset the
    window)."""
    cdef cnp.ndarray p = _as_series(price, "price"), v = _as_series(volume, "volume")
    cdef cnp.ndarray labels
    cdef Py_ssize_t i, n = _same_length([p, v], ("price", "volume"))
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *sp = _src(p)
    cdef const double *sv = _src(v)
    cdef const cnp.int64_t *lab = NULL
    cdef double *dst = _dst(out)
    cdef VwapState st
    cdef int64_t w = _period(window, "window", 0)
    if session is not None:
        labels = np.ascontiguousarray(session, dtype=np.int64)
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(f"session must be a 1-D array of {n} labels, got shape {np.shape(labels)}")
        lab = <const cnp.int64_t *>cnp.PyArray_DATA(labels)
    if vwap_init(&st, w) != 0:
        win_free(&st.wp)
        win_free(&st.wv)
        raise MemoryError()
    with nogil:
        for i in range(n):
            if lab != NULL and i > 0 and lab[i] != lab[i - 1]:
                head_init(&st.h)
                st.pv = st.v = st.pv_c = st.v_c = 0.0
                gsum_clear(&st.rpv)
                gsum_clear(&st.rv)
                if st.rolling:
                    win_clear(&st.wp)
                    win_clear(&st.wv)
            dst[i] = vwap_step(&st, sp[i], sv[i])
        win_free(&st.wp)
        win_free(&st.wv)
    return out


def trade_flow_imbalance(size, is_buy, window):
    """Rolling trade-flow imbalance; see TradeFlowImbalance. is_buy: booleans (or 0/1)."""
    cdef cnp.ndarray s = _as_series(size, "size")
    cdef cnp.ndarray b = np.ascontiguousarray(is_buy, dtype=np.bool_)
    cdef Py_ssize_t i, n = s.shape[0]
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out
    cdef const double *ss = _src(s)
    cdef const cnp.npy_bool *sb
    cdef double *dst
    cdef FlowState st
    if b.ndim != 1 or b.shape[0] != n:
        raise ValueError(f"is_buy must be a 1-D array of {n} flags, got shape {np.shape(b)}")
    sb = <const cnp.npy_bool *>cnp.PyArray_DATA(b)
    out = _empty(n)
    dst = _dst(out)
    if flow_init(&st, _period(window, "window", 1)) != 0:
        raise MemoryError()
    with nogil:
        for i in range(n):
            dst[i] = flow_step(&st, ss[i], sb[i] != 0)
        win_free(&st.w)
    return out


def microprice(bid, bid_size, ask, ask_size):
    """Microprice of each quote; see Microprice."""
    cdef cnp.ndarray b = _as_series(bid, "bid"), bs = _as_series(bid_size, "bid_size")
    cdef cnp.ndarray a = _as_series(ask, "ask"), as_ = _as_series(ask_size, "ask_size")
    cdef Py_ssize_t i, n = _same_length([b, bs, a, as_], ("bid", "bid_size", "ask", "ask_size"))
    cdef Py_ssize_t k = 0
    cdef cnp.ndarray out = _empty(n)
    cdef const double *sb = _src(b)
    cdef const double *sbs = _src(bs)
    cdef const double *sa = _src(a)
    cdef const double *sas = _src(as_)
    cdef double *dst = _dst(out)
    cdef KernelHead h
    head_init(&h)
    with nogil:
        for i in range(n):
            dst[i] = microprice_step(&h, sb[i], sbs[i], sa[i], sas[i])
    return out


def book_imbalance(tops, levels=5):
    """Imbalance of each snapshot of a (T, N, 4) array of top-N books; see BookImbalance."""
    cdef cnp.ndarray a = np.ascontiguousarray(tops, dtype=np.float64)
    cdef Py_ssize_t i, n, rows
    cdef cnp.ndarray out
    cdef const double *src
    cdef double *dst
    cdef KernelHead h
    cdef Py_ssize_t lv = _period(levels, "levels", 1)
    if a.ndim != 3 or a.shape[2] != 4:
        raise ValueError(f"tops must have shape (snapshots, levels, 4), got {np.shape(a)}")
    n = a.shape[0]
    rows = a.shape[1]
    out = _empty(n)
    src = _src(a)
    dst = _dst(out)
    head_init(&h)
    with nogil:
        for i in range(n):
            dst[i] = imbalance_step(&h, src + i * rows * 4, rows, lv)
    return out
