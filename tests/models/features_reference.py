"""Plain-Python models of the feature kernels (extrema.features), for differential tests.

Two kinds of model live here, and each class says which one it is:

* TA-Lib transcriptions (Ema, Sma, Wma, Rsi, Macd, BollingerBands, StdDev, TrueRange, Atr, Beta,
  Returns): the indicator as the TA-Lib C library computes it -- same warm-up, same seeding, same
  re-anchoring of running sums -- in plain Python floats. Where extrema rearranges TA-Lib's
  arithmetic to shorten the dependency chain of a recurrence (EMA, MACD, RSI, ATR: one fused
  multiply-add per step; SMA, WMA: one addition per running sum per step; each class says how), the
  model follows extrema's order, with the fused multiply-add computed exactly (`fma` below). The
  compiled kernels must equal these to the last bit, and both must equal TA-Lib (tests/property)
  within 1e-9.
* Definitions (ZScore, RealizedVolatility, LinearRegression, RollingOls, Vwap, BookImbalance,
  Microprice, TradeFlowImbalance, LogReturns): the textbook formula over the whole window, in exact
  rational arithmetic (fractions.Fraction: every float is a dyadic rational) or math.fsum (correctly
  rounded sums), rounded once at the end -- no running-sum drift, no cancellation. The compiled
  kernels use O(1) running sums with error control and must agree within 1e-9.

Every model follows the same streaming contract as the compiled kernels:
* update(...) returns the current value (a float, or a tuple for several outputs); NaN until warm;
* an update whose inputs are not all finite (NaN, +-inf) -- or otherwise invalid for the kernel, as
  documented per class -- is skipped: the state and the value are unchanged and `skipped` counts it;
* `count` is the number of accepted updates.

`run(model, *columns)` feeds arrays through a model and stacks the values, which is what the batch
functions must return.
"""

import math
from collections import deque
from fractions import Fraction

import numpy as np

NAN = float("nan")
TA_EPSILON = 1e-14     # TA-Lib's TA_IS_ZERO band (ta_utility.h)


def _finite(*xs):
    return all(math.isfinite(x) for x in xs)


def fma(a, b, c):
    """a * b + c rounded once (IEEE 754 fusedMultiplyAdd, C's fma()): exact in rationals, then one
    correctly rounded conversion (int / int true division is correctly rounded in CPython). For the
    finite operands used here; math.fma where Python has it (3.13+)."""
    if _math_fma is not None:
        return _math_fma(a, b, c)
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:
        # The sign of an exact zero: -0 only when both a * b and c are zeros of negative sign.
        prod_neg = math.copysign(1.0, a) * math.copysign(1.0, b) < 0
        return -0.0 if (prod_neg and math.copysign(1.0, c) < 0) else 0.0
    return float(exact)


_math_fma = getattr(math, "fma", None)


def ema_coefficients(period):
    """(a, b): TA-Lib's k = 2 / (period + 1) and 1 - k, the one that is >= 1/2 rounded once and the
    other 1 minus it (exact), so a + b == 1."""
    if period <= 3:
        a = 2.0 / (period + 1)
        return a, 1.0 - a
    b = float(period - 1) / float(period + 1)
    return 1.0 - b, b


def run(model, *columns):
    """Feed the columns through `model` row by row; an (n,) array, or (n, k) for k outputs."""
    values = [model.update(*row) for row in zip(*columns)]
    out = np.array(values, dtype=float)
    return out


class _Model:
    outputs = 1

    def __init__(self):
        self.count = 0
        self.skipped = 0
        self.value = NAN if self.outputs == 1 else (NAN,) * self.outputs

    @property
    def is_ready(self):
        v = self.value if self.outputs == 1 else self.value[0]
        return not math.isnan(v)

    def _skip(self):
        self.skipped += 1
        return self.value


# ---------------------------------------------------------------------------------------------------
# TA-Lib transcriptions
# ---------------------------------------------------------------------------------------------------

class Sma(_Model):
    """TA_SMA: running sum of the window started at 0.0, output = sum / period. Warm after `period`
    values. TA-Lib adds the new value, divides, then subtracts the leaving one; extrema adds
    (new - leaving), one addition per step on the chain (the sum differs from TA-Lib's by rounding)."""

    def __init__(self, period):
        super().__init__()
        self.period = period
        self.window = deque(maxlen=period)
        self.total = 0.0

    def update(self, x):
        if not _finite(x):
            return self._skip()
        self.count += 1
        if self.count > self.period:
            self.total += x - self.window[0]
        else:
            self.total += x
        self.window.append(x)
        if self.count >= self.period:
            self.value = self.total / self.period
        return self.value


class Ema(_Model):
    """TA_EMA, default compatibility: seeded with the SMA of the first `period` values (summed from
    0.0 in order), then TA-Lib's prev = (x - prev) * k + prev, k = 2 / (period + 1), as extrema
    computes it: prev = fma(prev, b, a * x) with a = k and b = 1 - k (ema_coefficients). Warm after
    `period`."""

    def __init__(self, period):
        super().__init__()
        self.period = period
        self.a, self.b = ema_coefficients(period)
        self.seed = 0.0

    def update(self, x):
        if not _finite(x):
            return self._skip()
        self.count += 1
        if self.count < self.period:
            self.seed += x
        elif self.count == self.period:
            self.seed += x
            self.value = self.seed / self.period
        else:
            self.value = fma(self.value, self.b, self.a * x)
        return self.value


class Wma(_Model):
    """TA_WMA: weights 1..period (newest heaviest) kept as two running sums, periodSum and periodSub,
    rebuilt from the window (oldest first, weights counting up from 1) every 8 * period outputs.
    Warm after `period` values; period 1 copies the input. extrema's order of the steps (one
    addition per sum on the chain): periodSub += x - trailing; output fma(x, period, periodSum) /
    divider; periodSum += fma(x, period, -periodSub)."""

    def __init__(self, period):
        super().__init__()
        self.period = period
        self.window = deque(maxlen=period)
        self.divider = float(period) * (period + 1) / 2.0
        self.period_sum = 0.0
        self.period_sub = 0.0
        self.trailing = 0.0
        self.until_reseed = 8 * period

    def update(self, x):
        if not _finite(x):
            return self._skip()
        p = self.period
        self.count += 1
        self.window.append(x)
        if p == 1:
            self.value = x
            return x
        if self.count < p:
            self.period_sub += x
            self.period_sum += x * self.count
            return self.value
        self.period_sub += x - self.trailing
        self.until_reseed -= 1
        self.trailing = self.window[0]
        if self.until_reseed <= 0:
            self.until_reseed = 8 * p
            self.period_sub = 0.0
            self.period_sum = 0.0
            for w, v in enumerate(self.window, 1):
                self.period_sub += v
                self.period_sum += v * w
            self.value = self.period_sum / self.divider
            self.period_sum -= self.period_sub
        else:
            self.value = fma(x, float(p), self.period_sum) / self.divider
            self.period_sum += fma(x, float(p), -self.period_sub)
        return self.value


class Rsi(_Model):
    """TA_RSI (Wilder): the first value only sets the previous price; the next `period` changes are
    summed (gains, and losses as positive numbers) and scaled by 1/period; then each change updates
    avg = (avg * (period - 1) + change) / period, which extrema computes as avg = fma(avg, b, a * change)
    with b = (period - 1) / period and a = 1 - b. RSI = 100 * gain / (gain + loss), 0 when both
    are 0 (a flat series). Warm after period + 1 values."""

    def __init__(self, period=14):
        super().__init__()
        self.period = period
        self.inv = 1.0 / period
        self.b = float(period - 1) / float(period)
        self.a = 1.0 - self.b
        self.gain = 0.0
        self.loss = 0.0
        self.prev = NAN

    def _rsi(self):
        total = self.gain + self.loss
        return 100.0 * (self.gain / total) if total > 0.0 else 0.0

    def update(self, x):
        if not _finite(x):
            return self._skip()
        self.count += 1
        if self.count == 1:
            self.prev = x
            return self.value
        change = x - self.prev
        self.prev = x
        up = change if change > 0.0 else 0.0
        if self.count <= self.period + 1:
            self.gain += up
            self.loss += up - change
            if self.count == self.period + 1:
                self.loss *= self.inv
                self.gain *= self.inv
                self.value = self._rsi()
            return self.value
        self.gain = fma(self.gain, self.b, self.a * up)
        self.loss = fma(self.loss, self.b, self.a * (up - change))
        self.value = self._rsi()
        return self.value


class Macd(_Model):
    """TA_MACD, default compatibility. The slow and fast EMAs are both seeded on the bar `slow`
    (the fast one with the SMA of the last `fast` values of that first window), the MACD line is
    fast - slow, the signal EMA is seeded with the plain average of the first `signal` MACD values.
    Every output is NaN until the signal is seeded, after slow + signal - 1 values. fast > slow is
    swapped, as TA-Lib does. Outputs: (macd, signal, histogram). Each EMA steps as Ema does:
    fma(prev, b, a * x) with ema_coefficients(p)."""

    outputs = 3

    def __init__(self, fast=12, slow=26, signal=9):
        super().__init__()
        if slow < fast:
            fast, slow = slow, fast
        self.fast, self.slow, self.signal = fast, slow, signal
        self.af, self.bf = ema_coefficients(fast)
        self.as_, self.bs = ema_coefficients(slow)
        self.ag, self.bg = ema_coefficients(signal)
        self.slow_seed = 0.0
        self.fast_seed = 0.0
        self.ema_fast = self.ema_slow = self.sig = 0.0

    def update(self, x):
        if not _finite(x):
            return self._skip()
        self.count += 1
        n, s, g = self.count, self.slow, self.signal
        if n <= s:
            self.slow_seed += x
            if n > s - self.fast:
                self.fast_seed += x
            if n < s:
                return self.value
            self.ema_slow = self.slow_seed / s
            self.ema_fast = self.fast_seed / self.fast
        else:
            self.ema_fast = fma(self.ema_fast, self.bf, self.af * x)
            self.ema_slow = fma(self.ema_slow, self.bs, self.as_ * x)
        macd = self.ema_fast - self.ema_slow
        if n < s + g - 1:
            self.sig += macd
            return self.value
        if n == s + g - 1:
            self.sig += macd
            self.sig = self.sig / g
        else:
            self.sig = fma(self.sig, self.bg, self.ag * macd)
        self.value = (macd, self.sig, macd - self.sig)
        return self.value


class _ShiftedVariance:
    """TA-Lib's cancellation-free rolling variance (var.c, issue #118/#243): sums of (x - shift) and
    (x - shift)^2, with the shift re-anchored on the window mean (a fresh two-pass) when the variance
    falls below 1e-6 of the mean squared deviation, when the value leaving the window dwarfs what
    remains (1e6), or every 32 windows; a re-anchored variance under 1e-12 of its scale is 0."""

    def __init__(self, period):
        self.period = period
        self.inv = 1.0 / period
        self.shift = NAN
        self.s1 = 0.0
        self.s2 = 0.0
        self.until_reseed = 32 * period

    def add(self, x):
        """Account for a new value (before the window is full)."""
        if math.isnan(self.shift):
            self.shift = x
        d = x - self.shift
        self.s1 += d
        self.s2 += d * d

    def step(self, x, window):
        """x has just been appended to `window` (which now holds the full window, oldest first):
        return the window's variance and drop its oldest value from the sums."""
        self.add(x)
        m1 = self.s1 * self.inv
        var = self.s2 * self.inv - m1 * m1
        oldest = window[0]
        d = oldest - self.shift
        self.s1 -= d
        d *= d
        self.s2 -= d
        self.until_reseed -= 1
        if var < 1e-6 * (self.s2 * self.inv) or d > 1e6 * self.s2 or self.until_reseed <= 0:
            self.until_reseed = 32 * self.period
            acc = 0.0
            for v in window:
                acc += v
            self.shift = acc * self.inv
            self.s1 = 0.0
            self.s2 = 0.0
            for v in window:
                e = v - self.shift
                self.s1 += e
                self.s2 += e * e
            m1 = self.s1 * self.inv
            var = self.s2 * self.inv - m1 * m1
            if var < 1e-12 * (self.s2 * self.inv):
                var = 0.0
            e = oldest - self.shift
            self.s1 -= e
            self.s2 -= e * e
        return var


class StdDev(_Model):
    """TA_STDDEV: sqrt of TA_VAR (population variance, shifted sums, see _ShiftedVariance), times
    nbdev when nbdev != 1. Warm after `period` values."""

    def __init__(self, period, nbdev=1.0):
        super().__init__()
        self.period = period
        self.nbdev = nbdev
        self.window = deque(maxlen=period)
        self.var = _ShiftedVariance(period)

    def update(self, x):
        if not _finite(x):
            return self._skip()
        self.count += 1
        self.window.append(x)
        if self.count < self.period:
            self.var.add(x)
            return self.value
        v = self.var.step(x, self.window)
        self.value = math.sqrt(v) * self.nbdev if self.nbdev != 1.0 else math.sqrt(v)
        return self.value


class BollingerBands(_Model):
    """TA_BBANDS with an SMA middle band: middle = SMA (TA_SMA's running sum), the deviation is the
    shifted-sum standard deviation of the same window; upper/lower = middle +- deviation * nbdev.
    Outputs (upper, middle, lower); warm after `period` values."""

    outputs = 3

    def __init__(self, period=20, nbdev_up=2.0, nbdev_dn=2.0):
        super().__init__()
        self.period = period
        self.up, self.dn = nbdev_up, nbdev_dn
        self.window = deque(maxlen=period)
        self.total = 0.0
        self.var = _ShiftedVariance(period)

    def update(self, x):
        if not _finite(x):
            return self._skip()
        self.count += 1
        self.window.append(x)
        self.total += x
        if self.count < self.period:
            self.var.add(x)
            return self.value
        mid = self.total / self.period
        self.total -= self.window[0]
        v = self.var.step(x, self.window)
        sd = math.sqrt(v) if v != 0.0 else 0.0
        if self.up == self.dn:
            t = sd * self.up
            self.value = (mid + t, mid, mid - t)
        else:
            self.value = (mid + sd * self.up, mid, mid - sd * self.dn)
        return self.value


def _true_range(high, low, prev_close):
    greatest = high - low
    v2 = abs(prev_close - high)
    if v2 > greatest:
        greatest = v2
    v3 = abs(prev_close - low)
    if v3 > greatest:
        greatest = v3
    return greatest


class TrueRange(_Model):
    """TA_TRANGE: max(high - low, |prev close - high|, |prev close - low|); NaN for the first bar."""

    def __init__(self):
        super().__init__()
        self.prev_close = NAN

    def update(self, high, low, close):
        if not _finite(high, low, close):
            return self._skip()
        self.count += 1
        if self.count > 1:
            self.value = _true_range(high, low, self.prev_close)
        self.prev_close = close
        return self.value


class Atr(_Model):
    """TA_ATR: the mean of the first `period` true ranges (from the second bar), then Wilder's
    smoothing atr = a * tr + b * atr with b = (period - 1) / period and a = 1 - b (TA-Lib's #338
    two-coefficient form). Warm after period + 1 bars. As extrema computes it, the smoothing steps go
    in pairs: the first bar of a pair is TA-Lib's FMA build's atr = fma(atr, b, a * tr); the second
    is computed from the value before the pair, fma(before, b * b, fma(a * tr1, b, a * tr2)), so the
    compiled loop's dependency chain has one fused multiply-add per two bars."""

    def __init__(self, period=14):
        super().__init__()
        self.period = period
        self.beta = float(period - 1) / float(period)
        self.alpha = 1.0 - self.beta
        self.beta2 = self.beta * self.beta
        self.anchor = self.pending = 0.0
        self.second = False
        self.prev_close = NAN
        self.seed = 0.0

    def update(self, high, low, close):
        if not _finite(high, low, close):
            return self._skip()
        self.count += 1
        if self.count > 1:
            tr = _true_range(high, low, self.prev_close)
            n = self.count - 1
            if n < self.period:
                self.seed += tr
            elif n == self.period:
                self.seed += tr
                self.value = self.seed / self.period
            elif not self.second:
                self.anchor = self.value
                self.pending = self.alpha * tr
                self.value = fma(self.value, self.beta, self.pending)
                self.second = True
            else:
                self.value = fma(self.anchor, self.beta2, fma(self.pending, self.beta, self.alpha * tr))
                self.second = False
        self.prev_close = close
        return self.value


class Returns(_Model):
    """TA_ROCP: (x - x[-period]) / x[-period], 0 when x[-period] is 0. Warm after period + 1 values."""

    def __init__(self, period=1):
        super().__init__()
        self.period = period
        self.window = deque(maxlen=period + 1)

    def update(self, x):
        if not _finite(x):
            return self._skip()
        self.count += 1
        self.window.append(x)
        if self.count > self.period:
            prev = self.window[0]
            self.value = (x - prev) / prev if prev != 0.0 else 0.0
        return self.value


class Beta(_Model):
    """TA_BETA: the slope of the regression of y's returns (the asset, TA-Lib's inReal1) on x's
    returns (the market, inReal0) over the last `period` returns. Returns against a price within
    1e-14 of 0 count as 0. Sums are of returns minus a shift, re-anchored on the window mean when the
    denominator falls below 1e-6 of its scale, when the x or the y return that left dwarfs the rest
    (1e3; the y test is in TA-Lib 0.8's build, not yet in beta.c as published), or every 32 windows;
    a denominator at or under 1e-14 of its scale gives 0. Warm after period + 1."""

    def __init__(self, period=5):
        super().__init__()
        self.period = period
        self.n = float(period)
        self.prices = deque(maxlen=period + 1)     # the window's returns need period + 1 prices
        self.shift_x = self.shift_y = 0.0
        self.sxx = self.sxy = self.syy = self.sx = self.sy = 0.0
        self.leaving_xx = self.leaving_yy = 0.0
        self.until_reseed = 32 * period

    @staticmethod
    def _ret(price, prev):
        return (price - prev) / prev if not (-TA_EPSILON < prev < TA_EPSILON) else None

    def _dev(self, price, prev, shift):
        r = self._ret(price, prev)
        return r - shift if r is not None else -shift

    def update(self, x, y):
        if not _finite(x, y):
            return self._skip()
        self.count += 1
        self.prices.append((x, y))
        if self.count == 1:
            return self.value
        (px, py) = self.prices[-2]
        if self.count == 2:
            rx, ry = self._ret(x, px), self._ret(y, py)
            self.shift_x = rx if rx is not None else 0.0
            self.shift_y = ry if ry is not None else 0.0
        dx = self._dev(x, px, self.shift_x)
        dy = self._dev(y, py, self.shift_y)
        self.sxx += dx * dx
        self.sxy += dx * dy
        self.syy += dy * dy
        self.sx += dx
        self.sy += dy
        if self.count <= self.period:
            return self.value
        n = self.n
        denom_scale = n * self.sxx
        denom = denom_scale - self.sx * self.sx
        self.until_reseed -= 1
        if (denom < 1e-6 * denom_scale or self.leaving_xx > 1000.0 * self.sxx
                or self.leaving_yy > 1000.0 * self.syy or self.until_reseed <= 0):
            self.until_reseed = 32 * self.period
            pts = list(self.prices)
            sx = sy = 0.0
            for (ax, ay), (bx, by) in zip(pts, pts[1:]):
                r = self._ret(bx, ax)
                if r is not None:
                    sx += r
                r = self._ret(by, ay)
                if r is not None:
                    sy += r
            self.shift_x = sx / n
            self.shift_y = sy / n
            self.sxx = self.sxy = self.syy = self.sx = self.sy = 0.0
            for (ax, ay), (bx, by) in zip(pts, pts[1:]):
                ex = self._dev(bx, ax, self.shift_x)
                ey = self._dev(by, ay, self.shift_y)
                self.sxx += ex * ex
                self.sxy += ex * ey
                self.syy += ey * ey
                self.sx += ex
                self.sy += ey
            denom_scale = n * self.sxx
            denom = denom_scale - self.sx * self.sx
            if denom < 0.0:
                denom = 0.0
        (ax, ay), (bx, by) = self.prices[0], self.prices[1]
        ex = self._dev(bx, ax, self.shift_x)
        ey = self._dev(by, ay, self.shift_y)
        if denom > TA_EPSILON * denom_scale:
            self.value = (n * self.sxy - self.sx * self.sy) / denom
        else:
            self.value = 0.0
        self.leaving_xx = ex * ex
        self.leaving_yy = ey * ey
        self.sxx -= ex * ex
        self.sxy -= ex * ey
        self.syy -= ey * ey
        self.sx -= ex
        self.sy -= ey
        return self.value


# ---------------------------------------------------------------------------------------------------
# Definitions (whole-window recomputation with math.fsum)
# ---------------------------------------------------------------------------------------------------

class LogReturns(_Model):
    """log(x / x[-period]). Only positive finite prices are accepted (others are skipped)."""

    def __init__(self, period=1):
        super().__init__()
        self.period = period
        self.window = deque(maxlen=period + 1)

    def update(self, x):
        if not (_finite(x) and x > 0.0):
            return self._skip()
        self.count += 1
        self.window.append(x)
        if self.count > self.period:
            self.value = math.log(x / self.window[0])
        return self.value


def _exact_centred(xs, ys):
    """Exact (mean x, mean y, Sxx, Syy, Sxy) of the centred sums, as Fractions."""
    n = len(xs)
    fx = [Fraction(x) for x in xs]
    fy = [Fraction(y) for y in ys]
    mx, my = sum(fx) / n, sum(fy) / n
    sxx = sum((x - mx) ** 2 for x in fx)
    syy = sum((y - my) ** 2 for y in fy)
    sxy = sum((x - mx) * (y - my) for x, y in zip(fx, fy))
    return mx, my, sxx, syy, sxy


class ZScore(_Model):
    """(x - mean) / stddev over the last `period` values including x (population stddev); 0 when
    the window is flat. Warm after `period` values."""

    def __init__(self, period):
        super().__init__()
        self.period = period
        self.window = deque(maxlen=period)

    def update(self, x):
        if not _finite(x):
            return self._skip()
        self.count += 1
        self.window.append(x)
        if self.count >= self.period:
            w = list(self.window)
            mean, _, sxx, _, _ = _exact_centred(w, w)
            var = sxx / len(w)
            self.value = float(Fraction(x) - mean) / math.sqrt(var) if var > 0 else 0.0
        return self.value


class RealizedVolatility(_Model):
    """sqrt(sum of the last `period` squared log returns); positive finite prices only. Warm after
    period + 1 prices. (Annualise by multiplying with sqrt(periods per year / period).)"""

    def __init__(self, period):
        super().__init__()
        self.period = period
        self.prev = NAN
        self.squares = deque(maxlen=period)

    def update(self, x):
        if not (_finite(x) and x > 0.0):
            return self._skip()
        self.count += 1
        if self.count > 1:
            r = math.log(x / self.prev)
            self.squares.append(r * r)
            if len(self.squares) == self.period:
                self.value = math.sqrt(math.fsum(self.squares))
        self.prev = x
        return self.value


def _ols(xs, ys):
    """(slope, intercept, r2, slope scale) of y = a + b x by least squares, exactly; slope 0 and r2 0
    when x (or y, for r2) does not vary. The slope scale sqrt(Syy / Sxx) is what a slope error is
    relative to."""
    mx, my, sxx, syy, sxy = _exact_centred(xs, ys)
    if sxx == 0:
        return 0.0, float(my), 0.0, 0.0
    slope = sxy / sxx
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else Fraction(0)
    return float(slope), float(my - slope * mx), float(min(r2, 1)), math.sqrt(float(syy / sxx))


class RollingOls(_Model):
    """Least squares y = intercept + slope * x over the last `period` (x, y) pairs: outputs
    (slope, intercept, r2). Slope 0, intercept mean(y), r2 0 when x is constant; r2 0 when y is
    constant. Warm after `period` pairs."""

    outputs = 3

    def __init__(self, period):
        super().__init__()
        self.period = period
        self.window = deque(maxlen=period)
        self.slope_scale = NAN

    def update(self, x, y):
        if not _finite(x, y):
            return self._skip()
        self.count += 1
        self.window.append((x, y))
        if self.count >= self.period:
            xs, ys = zip(*self.window)
            slope, intercept, r2, self.slope_scale = _ols(xs, ys)
            self.value = (slope, intercept, r2)
        return self.value


class LinearRegression(_Model):
    """Least squares line through the last `period` values against their position 0..period-1
    (oldest = 0), TA-Lib's LINEARREG convention: outputs (slope, intercept, r2), the intercept being
    the line at the oldest value (TA_LINEARREG_INTERCEPT) -- the line at the newest value
    (TA_LINEARREG) is intercept + slope * (period - 1). Warm after `period` values."""

    outputs = 3

    def __init__(self, period):
        super().__init__()
        self.period = period
        self.window = deque(maxlen=period)
        self.slope_scale = NAN

    def update(self, y):
        if not _finite(y):
            return self._skip()
        self.count += 1
        self.window.append(y)
        if self.count >= self.period:
            xs = [float(i) for i in range(self.period)]
            slope, intercept, r2, self.slope_scale = _ols(xs, list(self.window))
            self.value = (slope, intercept, r2)
        return self.value


class Vwap(_Model):
    """Volume-weighted average price: sum(price * volume) / sum(volume) since the session started
    (window=0; reset() starts a new session) or over the last `window` trades. A trade with a
    negative volume (or any non-finite input) is skipped; a zero-volume trade counts in the window
    but weighs nothing. NaN until the volume is positive (and, rolling, until `window` trades)."""

    def __init__(self, window=0):
        super().__init__()
        self.window_size = window
        self.trades = deque(maxlen=window) if window else []

    def reset(self):
        self.__init__(self.window_size)

    def update(self, price, volume):
        if not (_finite(price, volume) and volume >= 0.0):
            return self._skip()
        self.count += 1
        self.trades.append((price, volume))
        if self.window_size and self.count < self.window_size:
            return self.value
        vol = math.fsum(v for _, v in self.trades)
        if vol > 0.0:
            self.value = math.fsum(p * v for p, v in self.trades) / vol
        elif self.window_size:
            self.value = NAN
        return self.value


def run_vwap_sessions(price, volume, session, window=0):
    """The session VWAP of a batch with session labels: the model is reset where the label changes."""
    model = Vwap(window)
    out = np.empty(len(price))
    last = None
    for i, (p, v, s) in enumerate(zip(price, volume, session)):
        if s != last:
            model.reset()
            last = s
        out[i] = model.update(p, v)
    return out


class BookImbalance(_Model):
    """(bid size - ask size) / (bid size + ask size) summed over the best `levels` levels of a top-N
    array (rows [bid price, bid size, ask price, ask size], as OrderBook.top(n) gives). NaN sizes are
    missing levels (0). A snapshot with no size at all, a negative or an infinite size is skipped."""

    def __init__(self, levels=5):
        super().__init__()
        self.levels = levels

    def update(self, top):
        rows = np.asarray(top, dtype=float)[: self.levels]
        bid = [s for s in rows[:, 1] if not math.isnan(s)]
        ask = [s for s in rows[:, 3] if not math.isnan(s)]
        if any(s < 0.0 or math.isinf(s) for s in bid + ask):
            return self._skip()
        b, a = math.fsum(bid), math.fsum(ask)
        if b + a <= 0.0:
            return self._skip()
        self.count += 1
        self.value = (b - a) / (b + a)
        return self.value


class Microprice(_Model):
    """Size-weighted mid (bid * ask size + ask * bid size) / (bid size + ask size), as
    OrderBook.microprice(). Skipped when an input is not finite, a size is negative or both are 0."""

    def __init__(self):
        super().__init__()

    def update(self, bid, bid_size, ask, ask_size):
        if not (_finite(bid, bid_size, ask, ask_size) and bid_size >= 0.0 and ask_size >= 0.0
                and bid_size + ask_size > 0.0):
            return self._skip()
        self.count += 1
        self.value = (bid * ask_size + ask * bid_size) / (bid_size + ask_size)
        return self.value


class TradeFlowImbalance(_Model):
    """(buy volume - sell volume) / (buy volume + sell volume) over the last `window` trades, the
    side being the aggressor's (is_buy: the buyer took the ask). Negative or non-finite sizes are
    skipped. 0 when the window has no volume. Warm after `window` trades."""

    def __init__(self, window):
        super().__init__()
        self.window = deque(maxlen=window)
        self.window_size = window

    def update(self, size, is_buy):
        if not (_finite(size) and size >= 0.0):
            return self._skip()
        self.count += 1
        self.window.append((size, bool(is_buy)))
        if self.count >= self.window_size:
            buy = math.fsum(s for s, b in self.window if b)
            sell = math.fsum(s for s, b in self.window if not b)
            self.value = (buy - sell) / (buy + sell) if buy + sell > 0.0 else 0.0
        return self.value
