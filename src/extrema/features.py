"""Feature kernels: streaming O(1) updates and batch (numpy in, numpy out) forms of the same maths.

Streaming (one observation per update, O(1); `update()` returns the current value, NaN until warm):

    from extrema import features
    rsi = features.Rsi(14)
    for price in prices:
        value = rsi.update(price)
    rsi.value, rsi.is_ready, rsi.count, rsi.skipped, rsi.reset()

Batch (the same step function in a loop without the GIL, so `features.rsi(prices, 14)[i]` is
bit-identical to the streaming value after prices[:i + 1]):

    features.rsi(prices, 14)
    upper, middle, lower = features.bbands(prices, 20, 2.0, 2.0)

From Cython, `cimport extrema._core.features` and call `kernel.update_c(...)` without the GIL; every
single-input kernel is an `extrema._core.features.ScalarKernel` with `cdef double update_c(double)`.

Kernels, warm-up (the first index that is not NaN, 0-based, with no skipped input), TA-Lib name:

=====================================  ======================  =========================  ==============
streaming                              batch                   first value at index       TA-Lib
=====================================  ======================  =========================  ==============
Ema(period)                            ema                     period - 1                 EMA
Sma(period)                            sma                     period - 1                 SMA
Wma(period)                            wma                     period - 1                 WMA
Rsi(period=14)                         rsi                     period                     RSI
Macd(fast=12, slow=26, signal=9)       macd -> 3 arrays        slow + signal - 2          MACD
BollingerBands(20, 2.0, 2.0)           bbands -> 3 arrays      period - 1                 BBANDS (SMA)
StdDev(period, nbdev=1.0)              stddev                  period - 1                 STDDEV
ZScore(period)                         zscore                  period - 1                 -
RealizedVolatility(period)             realized_volatility     period                     -
Returns(period=1)                      returns                 period                     ROCP
LogReturns(period=1)                   log_returns             period                     log(ROCR)
LinearRegression(period)               linear_regression -> 3  period - 1                 LINEARREG_SLOPE
                                                                                          / _INTERCEPT
TrueRange()                            trange                  1                          TRANGE
Atr(period=14)                         atr                     period                     ATR
RollingOls(period)  (x, y)             rolling_ols -> 3        period - 1                 -
Beta(period=5)  (x, y)                 beta                    period                     BETA
Vwap(window=0)  (price, volume)        vwap                    first volume / window - 1  -
TradeFlowImbalance(window)             trade_flow_imbalance    window - 1                 -
Microprice()                           microprice              0                          -
BookImbalance(levels=5)                book_imbalance          0                          -
=====================================  ======================  =========================  ==============

Bad input is skipped, not propagated: an update with a NaN or +-inf input (or one invalid for the
kernel: a negative volume or size, a non-positive price for log returns and realized volatility)
changes nothing and is counted in `skipped`; a batch repeats the previous value at that index.
"""

from extrema._core.features import (
    Kernel, ScalarKernel,
    Ema, Sma, Wma, Rsi, Macd, BollingerBands, StdDev, ZScore, RealizedVolatility, Returns, LogReturns,
    LinearRegression, TrueRange, Atr, RollingOls, Beta, Vwap, TradeFlowImbalance, Microprice,
    BookImbalance,
    ema, sma, wma, rsi, macd, bbands, stddev, zscore, realized_volatility, returns, log_returns,
    linear_regression, trange, atr, rolling_ols, beta, vwap, trade_flow_imbalance, microprice,
    book_imbalance,
    MAX_PERIOD,
)

__all__ = [
    "Kernel", "ScalarKernel",
    "Ema", "Sma", "Wma", "Rsi", "Macd", "BollingerBands", "StdDev", "ZScore", "RealizedVolatility",
    "Returns", "LogReturns", "LinearRegression", "TrueRange", "Atr", "RollingOls", "Beta", "Vwap",
    "TradeFlowImbalance", "Microprice", "BookImbalance",
    "ema", "sma", "wma", "rsi", "macd", "bbands", "stddev", "zscore", "realized_volatility", "returns",
    "log_returns", "linear_regression", "trange", "atr", "rolling_ols", "beta", "vwap",
    "trade_flow_imbalance", "microprice", "book_imbalance",
    "MAX_PERIOD",
]
